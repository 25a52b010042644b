//! etcd's HTTP/JSON gateway, differentially: the same `curl`-style requests
//! go to the real etcd and to Rafter over HTTP on their client ports, and
//! the answers must be the same JSON (member and cluster ids and the Raft
//! term set aside) with the same HTTP status: every KV path with options and
//! errors, the lease paths with a client-chosen id, and a watch streamed
//! over HTTP while keys change. Plus `/health`, `/livez`, `/readyz` and
//! `/version`, and the status and member list paths (whose sizes and ids
//! differ, so only their shape is compared).

mod common;

use std::time::Duration;

use common::{Server, Target};
use futures_util::StreamExt;
use serde_json::{json, Value};

fn b64(s: &str) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = s.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(CHARS[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Drops what legitimately differs between two clusters.
fn normalize(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Object(h)) = map.get_mut("header") {
                    h.remove("cluster_id");
                    h.remove("member_id");
                    h.remove("raft_term");
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

struct Both {
    etcd: Server,
    rafter: Server,
    http: reqwest::Client,
}

impl Both {
    async fn start() -> Both {
        Both {
            etcd: Server::start_target(Target::Etcd, &[]).await,
            rafter: Server::start_target(Target::Rafter, &[]).await,
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, server: &Server, path: &str, body: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", server.endpoint()))
            .body(body.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path} to {:?}: {e}", server.target()));
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("a body");
        let value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "{:?} answered {path} with no JSON ({e}): {text}",
                server.target()
            )
        });
        (status, normalize(value))
    }

    /// Sends the request to both and asserts the same status and JSON.
    async fn same(&self, path: &str, body: Value) -> Value {
        self.same_but(path, body, None).await
    }

    /// [`Both::same`], with top-level field `skip` (a count-down that
    /// depends on when it was read) left out of the comparison.
    async fn same_but(&self, path: &str, body: Value, skip: Option<&str>) -> Value {
        let body = body.to_string();
        let (etcd_status, mut etcd) = self.post(&self.etcd, path, &body).await;
        let (rafter_status, mut rafter) = self.post(&self.rafter, path, &body).await;
        if let Some(field) = skip {
            for v in [&mut etcd, &mut rafter] {
                if let Some(map) = v.as_object_mut() {
                    map.remove(field);
                }
            }
        }
        assert_eq!(
            (rafter_status, &rafter),
            (etcd_status, &etcd),
            "POST {path} {body}: Rafter (left) and etcd (right) differ"
        );
        rafter
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_and_lease_paths_answer_as_etcd() {
    let both = Both::start().await;
    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3"), ("a", "4")] {
        both.same(
            "/v3/kv/put",
            json!({"key": b64(k), "value": b64(v), "prev_kv": true}),
        )
        .await;
    }
    both.same("/v3/kv/range", json!({"key": b64("a")})).await;
    both.same("/v3/kv/range", json!({"key": b64("a"), "range_end": b64("z"), "limit": "2", "sort_order": "DESCEND", "sort_target": "MOD"}))
        .await;
    both.same(
        "/v3/kv/range",
        json!({"key": b64("a"), "range_end": "AA==", "keys_only": true, "revision": "3"}),
    )
    .await;
    both.same(
        "/v3/kv/range",
        json!({"key": b64("a"), "range_end": "AA==", "count_only": true}),
    )
    .await;
    both.same("/v3/kv/range", json!({"key": b64("a"), "revision": "99"}))
        .await;
    both.same("/v3/kv/range", json!({})).await;
    let txn = json!({
        "compare": [{"key": b64("a"), "target": "VALUE", "result": "EQUAL", "value": b64("4")}],
        "success": [
            {"request_put": {"key": b64("t"), "value": b64("yes")}},
            {"request_range": {"key": b64("t")}}
        ],
        "failure": [{"request_delete_range": {"key": b64("b")}}]
    });
    both.same("/v3/kv/txn", txn.clone()).await;
    let failing = json!({
        "compare": [{"key": b64("a"), "target": "VERSION", "result": "GREATER", "version": "5"}],
        "failure": [{"request_delete_range": {"key": b64("b"), "prev_kv": true}}]
    });
    both.same("/v3/kv/txn", failing).await;
    both.same(
        "/v3/kv/deleterange",
        json!({"key": b64("c"), "prev_kv": true}),
    )
    .await;
    both.same("/v3/kv/deleterange", json!({"key": b64("nothing")}))
        .await;
    both.same("/v3/kv/compaction", json!({"revision": "3"}))
        .await;
    both.same("/v3/kv/range", json!({"key": b64("a"), "revision": "2"}))
        .await;
    both.same("/v3/kv/compaction", json!({"revision": "2"}))
        .await;
    both.same("/v3/kv/put", json!({"value": b64("no key")}))
        .await;

    // Leases, with a client-chosen id so both clusters use the same one.
    both.same("/v3/lease/grant", json!({"TTL": "60", "ID": "4242"}))
        .await;
    both.same("/v3/lease/grant", json!({"TTL": "60", "ID": "4242"}))
        .await;
    both.same(
        "/v3/kv/put",
        json!({"key": b64("leased"), "value": b64("x"), "lease": "4242"}),
    )
    .await;
    both.same(
        "/v3/kv/put",
        json!({"key": b64("leased"), "value": b64("x"), "lease": "77"}),
    )
    .await;
    // The remaining TTL counts down from the grant, read a moment apart on
    // the two servers: compared separately.
    let ttl = both
        .same_but(
            "/v3/lease/timetolive",
            json!({"ID": "4242", "keys": true}),
            Some("TTL"),
        )
        .await;
    assert_eq!(ttl["grantedTTL"], "60", "{ttl}");
    for server in [&both.etcd, &both.rafter] {
        let (_, ttl) = both
            .post(server, "/v3/lease/timetolive", r#"{"ID":"4242"}"#)
            .await;
        let left: i64 = ttl["TTL"].as_str().unwrap().parse().unwrap();
        assert!((55..=60).contains(&left), "{:?}: {ttl}", server.target());
    }
    both.same_but(
        "/v3/kv/lease/timetolive",
        json!({"ID": "4242"}),
        Some("TTL"),
    )
    .await;
    both.same("/v3/lease/timetolive", json!({"ID": "999"}))
        .await;
    both.same("/v3/lease/leases", json!({})).await;
    both.same("/v3/kv/lease/leases", json!({})).await;
    let alive = both
        .same("/v3/lease/keepalive", json!({"ID": "4242"}))
        .await;
    assert_eq!(alive["result"]["TTL"], "60", "{alive}");
    both.same("/v3/lease/revoke", json!({"ID": "4242"})).await;
    both.same("/v3/kv/lease/revoke", json!({"ID": "4242"}))
        .await;
    both.same("/v3/kv/range", json!({"key": b64("leased")}))
        .await;

    // Malformed JSON: the same code and HTTP status (Go's and Rust's JSON
    // parsers word their messages differently).
    for server in [&both.etcd, &both.rafter] {
        let (status, body) = both.post(server, "/v3/kv/range", "{bad").await;
        assert_eq!(
            (status, &body["code"]),
            (400, &json!(3)),
            "{:?}: {body}",
            server.target()
        );
    }

    // Status and member list: what differs is sizes and ids, so compare
    // the fields present.
    for path in ["/v3/maintenance/status", "/v3/cluster/member/list"] {
        let (etcd_status, etcd) = both.post(&both.etcd, path, "{}").await;
        let (rafter_status, rafter) = both.post(&both.rafter, path, "{}").await;
        assert_eq!((rafter_status, etcd_status), (200, 200));
        let keys = |v: &Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        for key in keys(&etcd) {
            assert!(
                rafter.get(&key).is_some(),
                "{path}: Rafter lacks {key}: {rafter} (etcd: {etcd})"
            );
        }
    }
    let (_, members) = both
        .post(&both.rafter, "/v3/cluster/member/list", "{}")
        .await;
    assert_eq!(
        members["members"][0]["clientURLs"][0],
        both.rafter.endpoint()
    );
}

/// Reads streamed lines from a gateway watch until `events` events came;
/// says on `created` when the watch was created.
async fn watch_lines(
    http: reqwest::Client,
    endpoint: String,
    body: Value,
    events: usize,
    created: tokio::sync::mpsc::Sender<()>,
) -> Vec<Value> {
    let resp = http
        .post(format!("{endpoint}/v3/watch"))
        .body(body.to_string())
        .send()
        .await
        .expect("open a watch over HTTP");
    assert_eq!(resp.status().as_u16(), 200);
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    let mut lines = Vec::new();
    let mut seen = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen < events {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("{endpoint}: only {seen} of {events} events: {lines:?}"))
            .expect("the stream stays open")
            .expect("a chunk");
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let value = normalize(serde_json::from_slice(&line).expect("a JSON line"));
            if value["result"]["created"] == json!(true) {
                created.send(()).await.expect("the writer waits");
            }
            seen += value["result"]["events"].as_array().map_or(0, Vec::len);
            lines.push(value);
        }
    }
    lines
}

/// The created line, then every event in order (servers may group events
/// into responses differently).
fn flatten(lines: &[Value]) -> (Value, Vec<Value>) {
    let created = lines[0].clone();
    let events = lines
        .iter()
        .flat_map(|l| {
            l["result"]["events"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    (created, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_streams_over_http_as_etcd() {
    let both = Both::start().await;
    both.same(
        "/v3/kv/put",
        json!({"key": b64("w/0"), "value": b64("before")}),
    )
    .await;
    let body = json!({"create_request": {
        "key": b64("w/"), "range_end": b64("w0"), "prev_kv": true, "start_revision": "2"
    }});
    let (created, mut ready) = tokio::sync::mpsc::channel(2);
    let watches: Vec<_> = [&both.etcd, &both.rafter]
        .iter()
        .map(|server| {
            tokio::spawn(watch_lines(
                both.http.clone(),
                server.endpoint(),
                body.clone(),
                4,
                created.clone(),
            ))
        })
        .collect();
    for _ in 0..2 {
        ready.recv().await.expect("both watches were created");
    }
    // The replayed put at revision 2, then three changes while watched.
    both.same(
        "/v3/kv/put",
        json!({"key": b64("w/1"), "value": b64("one")}),
    )
    .await;
    both.same(
        "/v3/kv/put",
        json!({"key": b64("w/0"), "value": b64("after")}),
    )
    .await;
    both.same("/v3/kv/deleterange", json!({"key": b64("w/1")}))
        .await;
    let mut results = Vec::new();
    for w in watches {
        results.push(flatten(&w.await.expect("the watch reader")));
    }
    assert_eq!(
        results[1], results[0],
        "Rafter (left) and etcd (right) differ"
    );
    assert_eq!(results[1].1.len(), 4, "{results:?}");
    assert_eq!(results[1].1[3]["type"], "DELETE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_probes_and_version() {
    let server = Server::start_target(Target::Rafter, &[]).await;
    let http = reqwest::Client::new();
    let get = |path: &'static str| {
        let http = http.clone();
        let url = format!("{}{path}", server.endpoint());
        async move {
            let resp = http.get(url).send().await.expect("GET");
            (resp.status().as_u16(), resp.text().await.expect("a body"))
        }
    };
    let (status, body) = get("/health").await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"health":"true","reason":""}"#)
    );
    assert_eq!(get("/livez").await, (200, "ok".to_string()));
    assert_eq!(get("/readyz").await, (200, "ok".to_string()));
    let (status, version) = get("/version").await;
    assert_eq!(status, 200);
    let version: Value = serde_json::from_str(&version).expect("JSON");
    assert!(
        version["etcdserver"].as_str().unwrap().starts_with("3."),
        "{version}"
    );
    let (status, metrics) = get("/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("rafter_raft_applied_index"), "{metrics}");
}

/// A Python virtualenv under `target/` with etcd3gw installed (from PyPI,
/// once).
fn etcd3gw_python() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = root.join("target/etcd3gw-venv");
    let python = venv.join("bin/python");
    let installed = std::process::Command::new(&python)
        .args(["-c", "import etcd3gw"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        let run = |cmd: &mut std::process::Command| {
            let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
            assert!(
                out.status.success(),
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv));
        run(std::process::Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "etcd3gw"]));
    }
    python
}

/// Python's etcd3gw (a client that speaks only the JSON gateway) runs the
/// same calls unchanged against etcd and against Rafter
/// (`tests/etcd3gw/exercise.py`: keys, create and replace, leases with
/// keys, a lock, a watch, status, members).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_etcd3gw_works_unchanged() {
    let python = etcd3gw_python();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/etcd3gw/exercise.py");
    for target in [Target::Etcd, Target::Rafter] {
        let server = Server::start_target(target, &[]).await;
        let port = server
            .address()
            .rsplit(':')
            .next()
            .expect("a port")
            .to_string();
        let out = tokio::process::Command::new(&python)
            .arg(&script)
            .args(["127.0.0.1", &port])
            .output();
        let out = tokio::time::timeout(Duration::from_secs(60), out)
            .await
            .expect("etcd3gw finished within 60 s")
            .expect("run python");
        assert!(
            out.status.success(),
            "etcd3gw against {target:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
