#!/usr/bin/env bash
# Builds the plugin in release mode and installs it where OBS looks for per-user plugins:
#   ~/.config/obs-studio/plugins/rtc-studio/bin/64bit/rtc-studio.so
#   ~/.config/obs-studio/plugins/rtc-studio/data/locale/*.ini
# Usage: scripts/install.sh [--uninstall]
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${OBS_PLUGIN_HOME:-$HOME/.config/obs-studio/plugins}/rtc-studio"
if [ "${1:-}" = "--uninstall" ]; then
  rm -rf "$dest"
  echo "removed $dest"
  exit 0
fi
cargo build --release --lib
mkdir -p "$dest/bin/64bit" "$dest/data"
# Without its debug info (60 MB of the 70; `make package` keeps it in dist/ as a file of its own).
objcopy --strip-debug --strip-unneeded target/release/librtc_studio.so "$dest/bin/64bit/rtc-studio.so"
chmod 0755 "$dest/bin/64bit/rtc-studio.so"
rm -rf "$dest/data/locale"
cp -r data/locale "$dest/data/"
echo "installed $dest/bin/64bit/rtc-studio.so (restart OBS; pick the service under Settings → Stream)"
