#!/usr/bin/env bash
# Builds the Debian package of eipgw (make package): the binaries, the systemd units,
# the example configuration (a conffile: an upgrade never overwrites an edited one),
# the docs, and the maintainer scripts in packaging/deb. With dpkg-deb, which every
# Debian and Ubuntu has. Writes dist/eipgw_VERSION_ARCH.deb and prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
arch=$(dpkg --print-architecture)
# A tag when there is one, else the commit: 0.0~gitYYYYMMDD.SHA sorts before any
# release and after older commits.
if tag=$(git describe --tags --exact-match 2>/dev/null); then
	version="${tag#v}"
else
	version="0.0~git$(git log -1 --format=%cd --date=format:%Y%m%d).$(git rev-parse --short=12 HEAD)"
fi
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"
install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/eipgw" \
	"$stage/usr/share/doc/eipgw/examples"
CGO_ENABLED=0 go build -trimpath -buildvcs=auto -o "$stage/usr/bin/" ./cmd/eipd ./cmd/eipctl ./cmd/eipdp
install -m 0644 packaging/systemd/eipd.service packaging/systemd/eipd-agent.service "$stage/lib/systemd/system/"
install -m 0644 examples/eipd.json "$stage/etc/eipgw/eipd.json"
install -m 0644 examples/agent.json examples/profile.json examples/credentials.json "$stage/usr/share/doc/eipgw/examples/"
install -m 0644 README.md docs/*.md "$stage/usr/share/doc/eipgw/"
install -m 0755 packaging/deb/postinst packaging/deb/postrm "$stage/DEBIAN/"
echo /etc/eipgw/eipd.json >"$stage/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: eipgw
Version: $version
Architecture: $arch
Maintainer: eipgw developers <eipgw@users.noreply.github.com>
Installed-Size: $size
Section: net
Priority: optional
Homepage: https://github.com/eipgw/eipgw
Description: Elastic IP and NAT gateway for Linux hosts (eBPF dataplane)
 eipd serves the Alibaba Cloud VPC OpenAPI for EIPs, NAT gateways and shared
 bandwidth, and carries them in an XDP or TC dataplane that keeps forwarding
 while the daemon restarts. eipctl is its command line, eipdp the dataplane's.
CONTROL
mkdir -p "$out"
deb="$out/eipgw_${version}_${arch}.deb"
dpkg-deb --build --root-owner-group "$stage" "$deb" >/dev/null
echo "$deb"
