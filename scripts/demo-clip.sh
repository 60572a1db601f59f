#!/usr/bin/env bash
# Makes the demo clip: a moving test pattern with a white flash (one frame) and a 1 kHz beep (50 ms) starting at the
# same instant every second. The beep is generated per sample (aevalsrc), so its onset is exact.
# Usage: scripts/demo-clip.sh OUT.mkv [SECONDS] [SIZE] [FPS]
set -euo pipefail
out="$1"; secs="${2:-10}"; size="${3:-1280x720}"; fps="${4:-30}"
[ -s "$out" ] && exit 0
mkdir -p "$(dirname "$out")"
ffmpeg -v error -y \
  -f lavfi -i "testsrc2=size=${size}:rate=${fps},drawbox=c=white:t=fill:enable='lt(mod(t\,1)\,0.5/${fps})'" \
  -f lavfi -i "aevalsrc='if(lt(mod(t\,1)\,0.05)\,0.5*sin(2*PI*1000*t)\,0)|if(lt(mod(t\,1)\,0.05)\,0.5*sin(2*PI*1000*t)\,0)':s=48000" \
  -t "$secs" -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a flac "$out"
