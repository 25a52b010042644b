#!/bin/sh
# Builds the Rafter container image from this repository alone (no
# registry is reachable, so no base image): a root filesystem holding the
# `rafter` binary and the shared libraries it links (as `ldd` lists them),
# in an image `FROM scratch`.
#
#   scripts/docker-image.sh [TAG] [BINARY]
#
# TAG defaults to rafter:local; BINARY to a fresh release build
# (target/release/rafter). The tests pass the binary they already built.
set -eu
cd "$(dirname "$0")/.."

tag=${1:-rafter:local}
binary=${2:-}
if [ -z "$binary" ]; then
    cargo build --release -p rafter
    binary=target/release/rafter
fi
[ -x "$binary" ] || { echo "no executable at $binary" >&2; exit 1; }

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/rootfs/data" "$context/rootfs/tmp"
cp "$binary" "$context/rootfs/rafter"
# The dynamic loader and every library the binary needs, at their paths.
for lib in $(ldd "$binary" | awk '/=> \// { print $3 } /^\t\/[^ ]+/ { print $1 }'); do
    mkdir -p "$context/rootfs$(dirname "$lib")"
    cp -L "$lib" "$context/rootfs$lib"
done
cat > "$context/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
VOLUME /data
EXPOSE 2379 2380
WORKDIR /data
ENTRYPOINT ["/rafter"]
CMD ["--data-dir", "/data", "--listen-client-urls", "http://0.0.0.0:2379", "--advertise-client-urls", "http://127.0.0.1:2379"]
DOCKERFILE
docker build --quiet -t "$tag" "$context"
echo "built image $tag"
