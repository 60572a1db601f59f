#!/usr/bin/env bash
# The .deb that `make package` made, installed as a user would install it — into a Debian root as `make compat`
# builds them (trixie: OBS 30.2.3; sid: 32.x), or with --host into this machine (bookworm: 29.0.2) — and checked:
#   1. apt installs it and pulls in nothing else (that Debian's OBS is already there);
#   2. libobs loads the plugin from the system's plugin path, with its data from the system's data path, and it
#      streams to our receiver: connected, frames and Opus decoded, stopped cleanly;
#   3. apt purges it and none of its files is left.
# Usage: scripts/package-check.sh trixie|sid|--host   (root; after make package, and cargo build --examples for the
# headless runner and our receiver, which run as they are: built here, on bookworm).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/receiver.sh
source scripts/compat-root.sh
where="${1:-trixie}"
deb=$(ls dist/rtc-studio_*_"$(dpkg --print-architecture)".deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || { echo "package-check: no .deb in dist/ (make package)"; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "package-check: needs root (apt, chroot)"; exit 2; }
if [ "$where" = "--host" ]; then
  run() { /usr/bin/env "$@"; }
  top=$PWD
else
  root_build "$where"
  root_mount "$root"
  run() { chroot "$root" /usr/bin/env "$@"; }
  top=/work
fi
apt() { run DEBIAN_FRONTEND=noninteractive apt-get "$@"; }
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
obs_version=$(run dpkg-query -W -f='${Version}' libobs0 libobs0t64 2>/dev/null | head -c 40 || true)
run dpkg-query -W rtc-studio >/dev/null 2>&1 && { echo "package-check: rtc-studio is installed already"; exit 2; }
fail() { echo "package-check $where: FAIL — $*"; exit 1; }

# 1. What apt would install for it: the package alone.
pulled=$(apt install -s "$top/$deb" | sed -n 's/^Inst \([^ ]*\).*/\1/p' | sort | tr '\n' ' ')
[ "$pulled" = "rtc-studio " ] || fail "apt would install: $pulled"
# Whatever happens from here, the package does not stay installed (on this machine, OBS would load it).
trap 'apt purge -y -qq rtc-studio >/dev/null 2>&1 || true; [ "$where" = --host ] || root_cleanup' EXIT
apt install -y -qq "$top/$deb" >/dev/null
files=$(run dpkg -L rtc-studio)
so=/usr/lib/$multiarch/obs-plugins/rtc-studio.so
data=/usr/share/obs/obs-plugins/rtc-studio
grep -qx "$so" <<<"$files" || fail "the plugin is not at $so"

# 2. Streams from the system paths.
clip=target/compat/flash-beep-v3-640x360.mkv
scripts/demo-clip.sh "$clip" 8 640x360
out=$(mktemp -d)
start_receiver 60 "$out/receiver.txt"
run xvfb-run -a -s "-screen 0 1280x720x24" "$top/target/debug/examples/headless" --plugin "$so" --plugin-data "$data" \
  --media "$top/$clip" --duration 6 --bframes 0 --url "$url" >"$out/obs.txt" 2>&1 || true
wait "$sfu" || true
summary=$(sed -n 's/^summary //p' "$out/obs.txt")
report=$(tail -n 1 "$out/receiver.txt")
grep -E '\[rtc-studio\] (version|stream ended)' "$out/obs.txt" | sed 's/^[a-z]*: /  /' || true
python3 - "$summary" "$report" <<'PY' || fail "did not stream (log: $out/obs.txt)"
import json, sys
s, r = json.loads(sys.argv[1] or "{}"), json.loads(sys.argv[2] or "{}")
ok = (s.get("connected") and s.get("stop_code") == 0 and r.get("decode_errors") == 0
      and r.get("video_frames_decoded", 0) >= 0.98 * (s.get("total_frames") or 1e9) - 3
      and r.get("audio_packets", 0) > 150)
print(f"  streamed: {r.get('video_frames_decoded')} of {s.get('total_frames')} frames decoded, "
      f"{r.get('audio_packets')} Opus packets, stop code {s.get('stop_code')}")
sys.exit(0 if ok else 1)
PY

# 3. Purged: none of its files, nor its own directories, remain.
apt purge -y -qq rtc-studio >/dev/null
left=""
while read -r f; do
  case "$f" in
    "$so" | "$data"* | /usr/share/doc/rtc-studio*) run test -e "$f" && left="$left $f" ;;
  esac
done <<<"$files"
[ -z "$left" ] || fail "left behind:$left"
echo "package-check $where (libobs ${obs_version:-?}): PASS — installed alone, loaded from $so, streamed, purged clean"
