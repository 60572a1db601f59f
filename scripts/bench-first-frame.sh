#!/usr/bin/env bash
# Time to first frame, over N starts (default 20): for each, a fresh receiver (examples/mock_sfu) and a fresh
# headless OBS (examples/headless) publishing the flash/beep clip with x264 zerolatency; prints per-start numbers and
# the median and p90 of
#   connect:      obs_output_start → the output active (WHIP + ICE + DTLS), from the runner's summary, and its
#                 steps from the plugin's "connect timeline" log line (offer ready, answer, ICE connected, DTLS
#                 connected: each from the session's start)
#   first frame:  the WHIP POST's arrival → the first decoded frame, from the receiver
# A benchmark: it prints numbers and never fails on them. Part of `make bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/receiver.sh
n="${1:-20}"
clip=target/bench/flash-beep-v3-640x360.mkv
scripts/demo-clip.sh "$clip" 8 640x360
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
connect=(); first=(); offer=(); answer=(); ice=(); connected=()
for i in $(seq "$n"); do
  start_receiver 20 "$out/r.txt"
  xvfb-run -a -s "-screen 0 1280x720x24" target/debug/examples/headless --media "$clip" --duration 1.5 \
    --tune zerolatency --bframes 0 --url "$url" >"$out/o.txt" 2>&1 || true
  wait "$sfu" || true
  c=$(sed -n 's/^summary //p' "$out/o.txt" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("start_ms"))')
  f=$(tail -n 1 "$out/r.txt" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("first_frame_ms"))')
  # "connect timeline: offer ready 3 ms (…), answer 9 ms, ICE connected 10 ms, DTLS connected 33 ms"
  o=; a=; ice_at=; d=
  read -r o a ice_at d < <(sed -n 's/.*connect timeline: offer ready \([0-9]*\) ms.*answer \([0-9]*\) ms, ICE connected \([0-9]*\) ms, DTLS connected \([0-9]*\) ms.*/\1 \2 \3 \4/p' \
    "$out/o.txt" | head -n 1) || true
  printf 'start %2d: connect %s ms (offer ready %s, answer %s, ICE connected %s, DTLS connected %s), first frame %s ms\n' \
    "$i" "$c" "${o:-None}" "${a:-None}" "${ice_at:-None}" "${d:-None}" "$f"
  connect+=("$c"); first+=("$f"); offer+=("${o:-None}"); answer+=("${a:-None}"); ice+=("${ice_at:-None}")
  connected+=("${d:-None}")
done
python3 - "${connect[*]}" "${first[*]}" "${offer[*]}" "${answer[*]}" "${connected[*]}" "${ice[*]}" <<'PY'
import sys
def stats(name, text):
    v = sorted(float(x) for x in text.split() if x not in ("None", "null"))
    if not v:
        print(f"{name}: no data"); return
    q = lambda p: v[min(len(v) - 1, int(round(p * (len(v) - 1))))]
    print(f"{name}: median {q(0.5):.0f} ms, p90 {q(0.9):.0f} ms, min {v[0]:.0f}, max {v[-1]:.0f} ({len(v)} starts)")
stats("connect (start -> active)", sys.argv[1])
stats("  of which offer ready", sys.argv[3])
stats("  answer received", sys.argv[4])
stats("  ICE connected", sys.argv[6])
stats("  DTLS connected", sys.argv[5])
stats("first frame (WHIP POST -> decoded)", sys.argv[2])
PY
