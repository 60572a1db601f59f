#!/usr/bin/env bash
# Makes the demo clip: a moving test pattern with a white flash and a 1 kHz beep (50 ms) every second, timed so that
# OBS shows the flash on the same output frame at which the beep starts.
#
# OBS shows a media source's frames on its own frame ticks. A one-frame flash in a clip at OBS's own rate sits exactly
# on a tick and is shown on that tick or the next depending on scheduling jitter (measured at 30 fps: 0 or -33 ms,
# changing from run to run). So the clip runs at twice OBS's rate and the flash covers two clip frames, starting half
# an OBS frame after each second; OBS shows it from that instant (measured: the same to 0.1 ms in every run), and the
# beep starts there too, per sample (aevalsrc), so its onset is exact.
# Usage: scripts/demo-clip.sh OUT.mkv [SECONDS] [SIZE] [FPS]   (FPS: OBS's frame rate, default 30)
set -euo pipefail
out="$1"; secs="${2:-10}"; size="${3:-1280x720}"; fps="${4:-30}"
[ -s "$out" ] && exit 0
mkdir -p "$(dirname "$out")"
rate=$((fps * 2))
ffmpeg -v error -y \
  -f lavfi -i "testsrc2=size=${size}:rate=${rate},drawbox=c=white:t=fill:enable='between(mod(t\,1)\,0.25/${fps}\,1.25/${fps})'" \
  -f lavfi -i "aevalsrc='if(between(mod(t\,1)-0.5/${fps}\,0\,0.05)\,0.5*sin(2*PI*1000*t)\,0)|if(between(mod(t\,1)-0.5/${fps}\,0\,0.05)\,0.5*sin(2*PI*1000*t)\,0)':s=48000" \
  -t "$secs" -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a flac "$out"
