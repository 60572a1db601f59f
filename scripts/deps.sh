#!/usr/bin/env bash
# Installs the Debian packages the build, the demo and the tests need — only those missing.
# Usage: scripts/deps.sh            (the default set)
#        scripts/deps.sh PKG...     (extra packages, e.g. janus coturn chromium)
set -euo pipefail
base=(obs-studio libobs-dev libclang-dev xvfb x11-xkb-utils xauth pkg-config ffmpeg binutils libopus-dev ca-certificates xdotool
      janus coturn curl iproute2 chromium
      # A studio firewall (no UDP out) in a test namespace.
      nftables
      # The metrics test scrapes the plugin with the real Prometheus server.
      prometheus
      # mingw-w64's C compiler: the Windows ABI layout test, and make package's Windows build (with zip).
      gcc-mingw-w64-x86-64-win32
      # GStreamer's webrtcbin: the benchmark's reference publisher and the loss tests' second receiver.
      gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-nice
      gstreamer1.0-libav gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0 python3-gst-1.0 python3-gi)
want=("${base[@]}" "$@")
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
