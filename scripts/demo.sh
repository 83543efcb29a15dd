#!/usr/bin/env bash
# make demo: cgpol on two real runc containers.
#
# As root on Debian, this installs what it needs (apt-get), builds and
# installs cgpol (make install), then runs two containers whose config.json
# carries cgpol's OCI hooks:
#
#   allowed  cgpol.io/allow-ports=18080  connects to 127.0.0.1:18080 -> ok
#   denied   cgpol.io/allow-ports=443    connects to 127.0.0.1:18080 -> EPERM
#
# and a third whose annotation is invalid, which runc refuses to start.
#
# It prints what each tried and got, and `cgpol status` with the counters,
# then deletes the containers (the poststop hook removes their policies) and
# everything else it made. It can be run again. The programs stay installed
# (make uninstall removes them), and so do cgpol's pinned BPF programs
# (cgpol uninstall removes them).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=18080                      # the demo's listener, on 127.0.0.1
PREFIX=${PREFIX:-/usr/local}
WORK=/run/cgpol-demo            # bundles, rootfs, runc state: removed at exit
RUNC=(runc --root "$WORK/runc") # a private runc state, apart from other containers
CONTAINERS=(cgpol-demo-allowed cgpol-demo-denied cgpol-demo-invalid)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (cgpol loads BPF programs; runc runs containers): sudo make demo"
command -v apt-get >/dev/null || die "this demo installs its packages with apt-get (Debian or Ubuntu)"
command -v go >/dev/null || die "Go 1.26 or newer is needed to build cgpol (https://go.dev/doc/install)"

cleanup() {
	for c in "${CONTAINERS[@]}"; do "${RUNC[@]}" delete --force "$c" >/dev/null 2>&1 || true; done
	[ -n "${LISTENER:-}" ] && kill "$LISTENER" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
cleanup # what an interrupted run left

say "Installing runc, busybox-static and jq"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc busybox-static jq >/dev/null

say "Building and installing cgpol (make install PREFIX=$PREFIX)"
make --no-print-directory install PREFIX="$PREFIX" >/dev/null
echo "installed $PREFIX/bin/cgpol, $PREFIX/bin/cgpol-hook, the hooks.d files and /etc/cgpol/config.yaml"
CGPOL=$PREFIX/bin/cgpol
"$CGPOL" install

say "Making a busybox root filesystem with a small network probe"
mkdir -p "$WORK"/rootfs/{bin,proc,sys,dev,tmp,etc}
cp /bin/busybox "$WORK/rootfs/bin/busybox"
ln -s busybox "$WORK/rootfs/bin/sh"
ln -s busybox "$WORK/rootfs/bin/sleep"
CGO_ENABLED=0 go build -o "$WORK/rootfs/probe" ./test/probe

# A listener on the host's loopback, which the containers share.
mkdir -p "$WORK/www"
busybox httpd -f -p "127.0.0.1:$PORT" -h "$WORK/www" &
LISTENER=$!

# bundle NAME PORTS: a runc bundle whose config.json has the annotation
# cgpol.io/allow-ports=PORTS and cgpol's hooks (the installed snippet). The
# container shares the host's network, tries 127.0.0.1:$PORT, then sleeps so
# that `cgpol status` can show it.
bundle() {
	local dir=$WORK/$1
	mkdir -p "$dir"
	runc spec --bundle "$dir"
	jq --arg rootfs "$WORK/rootfs" --arg ports "$2" --arg port "$PORT" \
		--slurpfile snippet "$PREFIX/share/cgpol/runc-hooks.json" '
		.process.terminal = false
		| .process.args = ["/bin/sh", "-c", "/probe connect tcp 127.0.0.1:" + $port + "; exec sleep 600"]
		| .root = {path: $rootfs, readonly: true}
		| .linux.namespaces |= map(select(.type != "network"))
		| .annotations = {"cgpol.io/allow-ports": $ports}
		| .hooks = $snippet[0].hooks' "$dir/config.json" >"$dir/config.new"
	mv "$dir/config.new" "$dir/config.json"
}

say "Running two runc containers"
mkdir -p "$WORK/runc"
bundle allowed "$PORT"
bundle denied 443
for c in cgpol-demo-allowed cgpol-demo-denied; do
	"${RUNC[@]}" run --detach --bundle "$WORK/${c#cgpol-demo-}" "$c" >"$WORK/$c.out" 2>&1
done
for c in cgpol-demo-allowed cgpol-demo-denied; do
	for _ in $(seq 100); do [ -s "$WORK/$c.out" ] && break; sleep 0.1; done
	ports=$(jq -r '.annotations["cgpol.io/allow-ports"]' "$WORK/${c#cgpol-demo-}/config.json")
	printf '%-20s cgpol.io/allow-ports=%-6s tried: %s\n' "$c" "$ports" "$(cat "$WORK/$c.out")"
done

say "cgpol status"
"$CGPOL" status

say "Deleting the containers: the poststop hook removes their policies"
for c in cgpol-demo-allowed cgpol-demo-denied; do "${RUNC[@]}" delete --force "$c"; done
"$CGPOL" status

say "An invalid annotation: runc refuses the container, with cgpol-hook's reason"
bundle invalid 80,99999
if "${RUNC[@]}" run --bundle "$WORK/invalid" cgpol-demo-invalid 2>&1; then
	die "the container with cgpol.io/allow-ports=80,99999 started"
fi

say "Done: the containers, bundles and listener are gone; cgpol stays installed (make uninstall, cgpol uninstall)"
