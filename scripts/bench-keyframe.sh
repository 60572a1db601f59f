#!/usr/bin/env bash
# Time from a keyframe request to the keyframe, per encoder setting: headless OBS (examples/headless) streams its
# colour scene (no scene cuts of its own) for 20 s with a keyframe interval of 10 s to our receiver, which asks for a keyframe (PLI) a second
# in and then every 2 s. Prints, per setting, what the plugin logged (request → keyframe on the wire) and what the
# receiver saw (PLI sent → next keyframe received; keyframes in all). The encoders this machine has: x264 only (no
# hardware encoder; NVENC is asked differently, see plugin/keyframes.rs). A benchmark: it prints numbers and never
# fails on them. Part of `make bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/receiver.sh
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
obs=$(dpkg-query -W -f='${Version}' libobs0 2>/dev/null || echo "?")
echo "keyframe on request (OBS $obs, 20 s, keyframe interval 10 s, a PLI every 2 s):"
for tune in zerolatency none; do
  start_receiver 40 "$out/r.txt" --pli-every 2
  args=(--duration 20 --keyint 10 --bframes 0 --url "$url")
  [ "$tune" != none ] && args+=(--tune "$tune")
  xvfb-run -a -s "-screen 0 1280x720x24" target/debug/examples/headless "${args[@]}" >"$out/o.txt" 2>&1 || true
  wait "$sfu" || true
  plugin=$(sed -n 's/.*request → keyframe on the wire: //p' "$out/o.txt" | tail -n 1)
  why=$(sed -n 's/.*cannot be asked for one (\(.*\)): the next.*/\1/p' "$out/o.txt" | tail -n 1)
  tail -n 1 "$out/r.txt" | python3 -c '
import json, sys
r = json.load(sys.stdin); w = sorted(r.get("keyframe_waits_ms") or [])
q = lambda p: w[min(len(w) - 1, int(round(p * (len(w) - 1))))] if w else float("nan")
plis, keys = r.get("plis_sent"), r.get("keyframes")
print(f"  x264 tune {sys.argv[1]:<11}: receiver: {plis} PLIs, {keys} keyframes; "
      f"PLI -> keyframe median {q(0.5):.0f} ms, max {q(1.0):.0f} ms ({len(w)} answered)")
' "$tune"
  echo "    plugin: request -> keyframe on the wire: ${plugin:-none}${why:+ — not asked: $why}"
done
