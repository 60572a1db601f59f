#!/usr/bin/env bash
# make package: a release build, packaged for people to install, into dist/:
#   rtc-studio_<version>_<arch>.deb          the plugin in the system's OBS paths (Debian 12, 13, sid; Ubuntu 24.04+ untried)
#   rtc-studio-dbgsym_<version>_<arch>.deb   its debug info under /usr/lib/debug/.build-id (gdb finds it there)
#   rtc-studio-<version>-linux-<cpu>.tar.gz  OBS's per-user layout: unpack into ~/.config/obs-studio/plugins/
#   rtc-studio-<version>.debug               the same debug info as one file, beside the tarball
# The version is Cargo.toml's; docs/changelog.md must have an entry for it. Each package is checked before it is
# kept: its files, its dependencies (computed from what the library links), the plugin's exported entry points.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in dpkg-deb dpkg-shlibdeps objcopy readelf; do
  command -v "$tool" >/dev/null || { echo "package: $tool is missing (dpkg-dev, binutils: make deps)"; exit 2; }
done
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
grep -q "^## $version " docs/changelog.md \
  || { echo "package: docs/changelog.md has no entry '## $version (date)' for version $version"; exit 1; }
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
cpu=$(uname -m)

cargo build --release --lib
so=target/release/librtc_studio.so
dist=dist
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$dist"
mkdir -p "$dist"

# The library without its debug info (kept apart, linked to it by build ID and by name).
objcopy --only-keep-debug "$so" "$work/rtc-studio.debug"
objcopy --strip-debug --strip-unneeded --add-gnu-debuglink="$work/rtc-studio.debug" "$so" "$work/rtc-studio.so"
build_id=$(readelf -n "$work/rtc-studio.so" | sed -n 's/^ *Build ID: *//p')
[ -n "$build_id" ] || { echo "package: the library has no build ID"; exit 1; }
# Still the plugin: OBS finds it by these.
for entry in obs_module_load obs_module_set_pointer obs_module_ver obs_module_unload; do
  readelf --dyn-syms -W "$work/rtc-studio.so" | grep -q " $entry\$" \
    || { echo "package: the stripped library does not export $entry"; exit 1; }
done

# Dependencies from what the library links, as dpkg computes them — but libobs by hand: the oldest libobs whose ABI
# the plugin is built against (29.0), under either of the names Debian and Ubuntu give its package (libobs0, and
# libobs0t64 since the 64-bit time_t transition).
mkdir -p "$work/shlibs/debian"
printf 'Source: rtc-studio\n\nPackage: rtc-studio\nArchitecture: any\n' >"$work/shlibs/debian/control"
depends=$(cd "$work/shlibs" && dpkg-shlibdeps -O -xlibobs0 -xlibobs0t64 "$work/rtc-studio.so" 2>/dev/null \
  | sed -n 's/^shlibs:Depends=//p')
depends="${depends:+$depends, }libobs0 (>= 29.0) | libobs0t64 (>= 29.0)"

# deb_control DIR PACKAGE DEPENDS SECTION DESCRIPTION...: DIR/DEBIAN/control, with the installed size of DIR.
deb_control() {
  local dir=$1 package=$2 deps=$3 section=$4; shift 4
  mkdir -p "$dir/DEBIAN"
  {
    echo "Package: $package"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Maintainer: RTC Studio developers <rtc-studio@users.noreply.github.com>"
    echo "Installed-Size: $(du -sk --exclude=DEBIAN "$dir" | cut -f1)"
    echo "Depends: $deps"
    echo "Section: $section"
    echo "Priority: optional"
    for line in "$@"; do echo "$line"; done
  } >"$dir/DEBIAN/control"
}
docs() {
  local dir=$1/usr/share/doc/$2
  mkdir -p "$dir"
  gzip -9n <docs/changelog.md >"$dir/changelog.gz"
  cat >"$dir/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: rtc-studio

Files: *
Copyright: RTC Studio developers
License: GPL-2.0-or-later
 On Debian systems the full text of the GNU General Public License version 2 is in
 /usr/share/common-licenses/GPL-2.
EOF
}

# The plugin package: where Debian's OBS keeps its own plugins and their data.
pkg=$work/rtc-studio
install -D -m 0644 "$work/rtc-studio.so" "$pkg/usr/lib/$multiarch/obs-plugins/rtc-studio.so"
mkdir -p "$pkg/usr/share/obs/obs-plugins/rtc-studio"
cp -r data/. "$pkg/usr/share/obs/obs-plugins/rtc-studio/"
docs "$pkg" rtc-studio
deb_control "$pkg" rtc-studio "$depends" video "Enhances: obs-studio" \
  "Description: OBS Studio output: publish over WebRTC (WHIP, Janus) with sub-second latency" \
  " RTC Studio takes OBS's encoded H.264 and Opus and publishes them over WebRTC to any WHIP server" \
  " (MediaMTX, LiveKit, Janus, Ant Media Enterprise, ...) or into a Janus VideoRoom, repairing" \
  " lost packets and following the available bandwidth. Pick it in OBS under Settings, Stream."
find "$pkg" -type d -exec chmod 0755 {} +
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$dist/rtc-studio_${version}_${arch}.deb" >/dev/null

# Its debug symbols, the way Debian ships them.
dbg=$work/rtc-studio-dbgsym
install -D -m 0644 "$work/rtc-studio.debug" "$dbg/usr/lib/debug/.build-id/${build_id:0:2}/${build_id:2}.debug"
docs "$dbg" rtc-studio-dbgsym
deb_control "$dbg" rtc-studio-dbgsym "rtc-studio (= $version)" debug "Auto-Built-Package: debug-symbols" \
  "Build-Ids: $build_id" "Description: debug symbols for rtc-studio"
find "$dbg" -type d -exec chmod 0755 {} +
dpkg-deb --root-owner-group -Zxz --build "$dbg" "$dist/rtc-studio-dbgsym_${version}_${arch}.deb" >/dev/null

# The per-user tarball: rtc-studio/bin/64bit/rtc-studio.so and rtc-studio/data/.
user=$work/user/rtc-studio
install -D -m 0755 "$work/rtc-studio.so" "$user/bin/64bit/rtc-studio.so"
mkdir -p "$user/data"
cp -r data/. "$user/data/"
tar -C "$work/user" --owner=0 --group=0 --sort=name -czf "$dist/rtc-studio-${version}-linux-${cpu}.tar.gz" rtc-studio
cp "$work/rtc-studio.debug" "$dist/rtc-studio-${version}.debug"

# What the .deb holds must be exactly this: the library, its data, its docs.
expected="./usr/lib/$multiarch/obs-plugins/rtc-studio.so
$(cd data && find . -type f | sed "s|^\./|./usr/share/obs/obs-plugins/rtc-studio/|")
./usr/share/doc/rtc-studio/changelog.gz
./usr/share/doc/rtc-studio/copyright"
got=$(dpkg-deb --contents "$dist/rtc-studio_${version}_${arch}.deb" | awk '$1 !~ /^d/ {print $6}' | sort)
if [ "$got" != "$(sort <<<"$expected")" ]; then
  echo "package: the .deb holds other files than expected:"; diff <(sort <<<"$expected") <(echo "$got") || true
  exit 1
fi
echo "package: rtc-studio $version ($arch), Depends: $depends"
(cd "$dist" && ls -l --block-size=K -- * | awk '{print "  " $5 "\t" $9}')
