#!/bin/sh
# Installs the programs Rafter's integration tests need: the real etcd server
# (`etcd`, Debian package etcd-server) as the oracle, `etcdctl` (Debian package
# etcd-client) as a client, and `protoc` (Debian package protobuf-compiler),
# which the build script of the `etcd-client` crate (a dev-dependency) runs;
# `fusermount3` (Debian package fuse3), which mounts the fault disks of the
# disk fault tests (rafter-faultfs); and, on a machine with a Docker engine, its Compose tool (Debian package
# docker-compose) for the container test.
#
# Idempotent: does nothing when all of them are already on PATH. Installing
# etcd-server would normally start a system etcd on 127.0.0.1:2379; this
# script prevents that (policy-rc.d) and stops one that got started anyway,
# because the tests start their own servers on free ports and a stray daemon
# only wastes resources.
set -eu

report_versions() {
    etcd --version | head -n 1
    etcdctl version | head -n 1
    protoc --version
}

missing=""
command -v etcd >/dev/null 2>&1 || missing="$missing etcd-server"
command -v etcdctl >/dev/null 2>&1 || missing="$missing etcd-client"
command -v protoc >/dev/null 2>&1 || missing="$missing protobuf-compiler"
command -v fusermount3 >/dev/null 2>&1 || missing="$missing fuse3"
if command -v docker >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
    missing="$missing docker-compose"
fi

if [ -z "$missing" ]; then
    echo "etcd, etcdctl, protoc and fusermount3 are already installed:"
    report_versions
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

# If the packaged etcd service was started anyway, stop only that service:
# never `/etc/init.d/etcd stop`, which stops every process running
# /usr/bin/etcd, including test servers and other people's.
case "$missing" in
*etcd-server*)
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        $SUDO systemctl disable --now etcd >/dev/null 2>&1 || true
    elif [ -s /run/etcd.pid ]; then
        $SUDO start-stop-daemon --stop --quiet --pidfile /run/etcd.pid || true
    fi
    ;;
esac

if command -v ss >/dev/null 2>&1 && ss -ltn 'sport = :2379' | grep -q LISTEN; then
    echo "warning: something still listens on port 2379 (a system etcd?); the tests do not need it" >&2
fi

report_versions
