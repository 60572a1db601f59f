#!/usr/bin/env bash
# Makes the demo clip: a moving test pattern with a white flash and a 1 kHz beep at the same instant every second.
# Usage: scripts/demo-clip.sh OUT.mkv [SECONDS]
set -euo pipefail
out="$1"; secs="${2:-10}"
[ -s "$out" ] && exit 0
mkdir -p "$(dirname "$out")"
ffmpeg -v error -y \
  -f lavfi -i "testsrc2=size=1280x720:rate=30,drawbox=c=white:t=fill:enable='lt(mod(t\,1)\,0.0334)'" \
  -f lavfi -i "sine=frequency=1000:sample_rate=48000,volume='if(lt(mod(t\,1)\,0.05)\,1\,0)':eval=frame" \
  -t "$secs" -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a flac "$out"
