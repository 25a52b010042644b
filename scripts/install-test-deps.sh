#!/bin/sh
# Installs the programs Rafter's integration tests use as an oracle and as a
# client: the real etcd server (`etcd`, Debian package etcd-server) and
# `etcdctl` (Debian package etcd-client).
#
# Idempotent: does nothing when both are already on PATH. Installing
# etcd-server would normally start a system etcd on 127.0.0.1:2379; this
# script prevents that (policy-rc.d) and stops one that got started anyway,
# because the tests start their own servers on free ports and a stray daemon
# only wastes resources.
set -eu

missing=""
command -v etcd >/dev/null 2>&1 || missing="$missing etcd-server"
command -v etcdctl >/dev/null 2>&1 || missing="$missing etcd-client"

if [ -z "$missing" ]; then
    echo "etcd and etcdctl are already installed:"
    etcd --version | head -n 1
    etcdctl version | head -n 1
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi

# Keep the package's service from starting during installation. An existing
# policy-rc.d (as in Docker images) is left untouched.
policy=/usr/sbin/policy-rc.d
created_policy=no
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    created_policy=yes
fi
cleanup() {
    if [ "$created_policy" = yes ]; then
        $SUDO rm -f "$policy"
    fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
# shellcheck disable=SC2086 # $missing is a list of package names.
$SUDO apt-get install -y --no-install-recommends $missing

# If a service manager started the packaged etcd anyway, stop and disable it.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now etcd >/dev/null 2>&1 || true
elif [ -x /etc/init.d/etcd ]; then
    $SUDO /etc/init.d/etcd stop >/dev/null 2>&1 || true
fi

if command -v ss >/dev/null 2>&1 && ss -ltn 'sport = :2379' | grep -q LISTEN; then
    echo "warning: something still listens on port 2379 (a system etcd?); the tests do not need it" >&2
fi

etcd --version | head -n 1
etcdctl version | head -n 1
