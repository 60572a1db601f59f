#!/usr/bin/env bash
# The demo: our WHIP receiver on loopback, real libobs streaming a flash/beep clip through the plugin to it for
# 10 s, then what the receiver decoded and measured. Run through `make demo` (which builds first).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/receiver.sh
clip=target/demo/flash-beep-v3.mkv
scripts/demo-clip.sh "$clip" 10
out=$(mktemp -d)
trap 'kill $sfu 2>/dev/null || true; rm -rf "$out"' EXIT
start_receiver 60 "$out/receiver.txt"
echo "receiver listening at $url"
xvfb-run -a -s "-screen 0 1280x720x24" target/debug/examples/headless --media "$clip" --duration 10 \
  --width 1280 --height 720 --url "$url" > "$out/obs.txt" 2>&1 || true
grep -E '\[rtc-studio\]' "$out/obs.txt" | sed 's/^[a-z]*: //'
wait $sfu || true
summary=$(sed -n 's/^summary //p' "$out/obs.txt")
report=$(tail -n 1 "$out/receiver.txt")
# What the plugin itself sent: "stream ended: N video and M audio packets, …".
sent=$(sed -n 's/.*stream ended: \([0-9]*\) video and \([0-9]*\) audio packets.*/\1 \2/p' "$out/obs.txt" | tail -n 1)
echo "obs      $summary"
echo "receiver $report"
python3 - "$summary" "$report" "${sent:-? ?}" <<'PY'
import json, sys
s, r = json.loads(sys.argv[1]), json.loads(sys.argv[2])
video, audio = sys.argv[3].split()
print()
print(f"The plugin sent {video} video frames and {audio} Opus packets; the receiver decoded {r['video_frames_decoded']} "
      f"frames ({r['width']}x{r['height']} at {r['fps']} fps, {r['decode_errors']} decode errors) "
      f"and {r['audio_packets']} Opus packets ({r['audio_decode_errors']} errors). (OBS's own counter says "
      f"{s.get('total_frames')} frames: it counts what its interleaver handed over, while the plugin takes the "
      f"packets straight from the encoders — a few more, at the start and while the stream closes.)")
print(f"First frame decoded {r['first_frame_ms']} ms after the WHIP offer arrived; "
      f"audio vs video: {r['av_offset_ms']} ms over {r['av_pairs']} flash/beep pairs (positive = audio late; "
      f"{r['flashes']} flashes in the video, {r['beeps']} beeps in the audio).")
print(f"Stop: obs_output_stop returned in {s.get('stop_call_ms')} ms; WHIP DELETE "
      f"{'received' if r['delete_received'] else 'MISSING'}; libobs leaks: {s.get('leaks')}.")
PY
