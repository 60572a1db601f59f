#!/usr/bin/env bash
# What simulcast costs: headless OBS (real libobs, x264 veryfast zerolatency at 30 fps) streams the demo clip for
# 20 s to our receiver with 1, 2 and 3 layers, at 640x360 (1000 kbit/s) and 1280x720 (2500 kbit/s). Prints per run the OBS process's CPU time
# (user + system, per second of stream, and against one layer), its peak RSS, and what the receiver decoded of each
# layer (size, frames, mean bitrate). A benchmark: it prints numbers and never fails on them. Part of `make bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/receiver.sh
command -v /usr/bin/time >/dev/null || scripts/deps.sh time
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
seconds=20
obs=$(dpkg-query -W -f='${Version}' libobs0 2>/dev/null || echo "?")
for size_kbps in 640x360:1000 1280x720:2500; do
size=${size_kbps%:*} kbps=${size_kbps#*:}
clip=target/demo/flash-beep-$size.mkv
[ -f "$clip" ] || { mkdir -p target/demo; scripts/demo-clip.sh "$clip" 8 "$size" >/dev/null; }
echo "simulcast cost (OBS $obs, $size 30 fps, x264 veryfast zerolatency $kbps kbit/s, ${seconds} s; smaller layers at 25 % each):"
base=""
for layers in 1 2 3; do
  start_receiver 60 "$out/r.txt"
  /usr/bin/time -f "%U %S %M" -o "$out/time.txt" \
    xvfb-run -a -s "-screen 0 1280x720x24" target/release/examples/headless --media "$clip" \
      --duration "$seconds" --width "${size%x*}" --height "${size#*x}" --bitrate "$kbps" --tune zerolatency \
      --layers "$layers" --url "$url" >"$out/o.txt" 2>&1 || true
  wait "$sfu" || true
  read -r user sys rss <"$out/time.txt"
  cpu=$(python3 -c "print(round(($user + $sys) * 1000 / $seconds, 1))")
  [ -z "$base" ] && base=$cpu
  tail -n 1 "$out/r.txt" | python3 -c '
import json, sys
r = json.load(sys.stdin)
layers, cpu, base, rss = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
rows = [("f", r)] + sorted((r.get("layers") or {}).items())
def row(rid, l):
    w, h, n = l.get("width"), l.get("height"), l.get("video_frames_decoded")
    kbps = l.get("kbps") or l.get("video_kbps")
    return f"{rid} {w}x{h} {n} frames {kbps} kbit/s"
shown = ", ".join(row(rid, l) for rid, l in rows)
print(f"  {layers} layer(s): OBS CPU {cpu:.0f} ms/s ({cpu / base:.2f}x one layer), peak RSS {rss / 1024:.0f} MiB; "
      f"received: {shown}")
' "$layers" "$cpu" "$base" "$rss"
done
done
