#!/usr/bin/env bash
# Capture → wire inside OBS: real libobs (headless runner) encodes the flash/beep clip with x264 + Opus and the
# plugin publishes it to our receiver; the plugin logs, per packet, now − encoder_packet.sys_dts_usec when the
# packet leaves on the wire, and the same up to the hand-off (the encoder's own delay when packets come straight
# from the encoders). Four runs: x264 default tune and zerolatency, each with packets straight from the encoders
# (default) and through libobs's interleaver (before the bypass). A benchmark: prints numbers, never fails on them.
# Part of `make bench`; alone: scripts/bench-capture-wire.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/receiver.sh
secs="${1:-8}"
clip=target/bench/flash-beep-v3-640x360.mkv
scripts/demo-clip.sh "$clip" 10 640x360
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-12s %-12s %-26s %-26s %-22s\n' "x264 tune" "packets from" "video capture→wire p50/p99" "audio capture→wire p50/p99" "encoder delay v / a p50"
for tune in default zerolatency; do
  for from in interleaver encoders; do
    start_receiver 40 "$out/r.txt"
    tune_args=()
    [ "$tune" = default ] || tune_args=(--tune "$tune")
    xvfb-run -a -s "-screen 0 1280x720x24" target/debug/examples/headless --media "$clip" --duration "$secs" \
      --bframes 0 "${tune_args[@]}" --packets-from "$from" --url "$url" >"$out/o.txt" 2>&1 || true
    wait "$sfu" || true
    line=$(grep -m1 'capture → wire:' "$out/o.txt" || true)
    python3 - "$tune" "$from" "$line" <<'PY'
import re, sys
tune, src, line = sys.argv[1:4]
q = lambda part: re.search(r"p50 ([\d.]+) ms, p99 ([\d.]+) ms", part) if part else None
m = re.match(r".*capture → wire: video (.*?); audio (.*?)\. Of that, capture → plugin \(encoder \+ libobs\): "
             r"video (.*?); audio (.*?);", line)
if not m:
    print(f"{tune:<12} {src:<12} (no measurement: see the runner's log)")
    sys.exit(0)
vw, aw, vh, ah = (q(g) for g in m.groups())
f = lambda x: f"{float(x.group(1)):.1f} / {float(x.group(2)):.1f} ms"
enc = f"{float(vh.group(1)):.1f} / {float(ah.group(1)):.1f} ms" if src == "encoders" else "-"
print(f"{tune:<12} {src:<12} {f(vw):<26} {f(aw):<26} {enc:<22}")
PY
  done
done
echo "(straight from the encoders, capture → plugin is the encoder's own delay; capture → wire minus it is the plugin)"
