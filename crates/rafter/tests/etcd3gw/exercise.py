"""Python's etcd3gw, a client that speaks only etcd's JSON gateway, run
unchanged against a server: keys, prefixes, compare-and-swap, leases,
locks, a watch and status. Exits non-zero (with the failing assertion) if
any answer is not what etcd gives. Usage: exercise.py HOST PORT
"""

import sys

import etcd3gw

host, port = sys.argv[1], int(sys.argv[2])
client = etcd3gw.client(host=host, port=port)

assert client.api_path == "/v3/", client.api_path
assert client.put("gw/a", "1") is True
assert client.put("gw/b", "2") is True
assert client.get("gw/a") == [b"1"], client.get("gw/a")
assert client.get("gw/missing") == []
values = sorted(v for v, _ in client.get_prefix("gw/"))
assert values == [b"1", b"2"], values

# create: only if absent; replace: only if the value matches.
assert client.create("gw/c", "3") is True
assert client.create("gw/c", "again") is False
assert client.replace("gw/c", "3", "4") is True
assert client.replace("gw/c", "3", "5") is False
assert client.get("gw/c") == [b"4"]

# Metadata of a get.
(value, meta), = client.get("gw/a", metadata=True)
assert value == b"1" and meta["key"] == b"gw/a" and int(meta["version"]) == 1, meta

assert client.delete("gw/b") is True
assert client.delete("gw/b") is False
assert client.delete_prefix("gw/") is True
assert client.get_prefix("gw/") == []

# Leases: keys go with them.
lease = client.lease(ttl=30)
assert 0 < lease.ttl() <= 30, lease.ttl()
assert client.put("gw/leased", "x", lease=lease) is True
assert lease.keys() == [b"gw/leased"], lease.keys()
assert lease.refresh() == 30
assert lease.revoke() is True
assert client.get("gw/leased") == []

# A lock: held by one holder at a time.
lock = client.lock("gw-lock", ttl=30)
assert lock.acquire() is True
other = client.lock("gw-lock", ttl=30)
assert other.is_acquired() is False
assert lock.release() is True

# A watch from the next revision sees a put made after it was asked for,
# however long the watch takes to be set up.
next_revision = int(client.status()["header"]["revision"]) + 1
events, cancel = client.watch("gw/watched", start_revision=next_revision)
client.put("gw/watched", "seen")
event = next(events)
assert event["kv"]["key"] == b"gw/watched" and event["kv"]["value"] == b"seen", event
cancel()

status = client.status()
assert "version" in status and "header" in status, status
assert len(client.members()) == 1
print("etcd3gw: every call answered as expected")
