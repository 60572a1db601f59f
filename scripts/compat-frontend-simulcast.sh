#!/usr/bin/env bash
# OBS 32.1+'s own simulcast ("Total Layers" under Settings → Stream for WHIP) through RTC Studio: Debian sid's real
# `obs` frontend (32.2.2) in the `make compat` root, a profile with the RTC Studio "WHIP" service (`whip_custom`,
# server = our receiver) and `WHIPSimulcastTotalLayers=3`, started with --startstreaming for 12 s. The frontend makes
# the smaller layers' encoders itself and attaches them to the streaming output; the plugin must send them (instead
# of making its own), and our receiver decode each layer. Prints the plugin's simulcast lines and what the receiver
# decoded per layer; exits non-zero unless three layers were decoded. Run after `scripts/compat.sh sid`. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/receiver.sh
source scripts/compat-root.sh
suite="${1:-sid}"
root="$PWD/target/compat/$suite"
[ -x "$root/usr/bin/obs" ] || { echo "run scripts/compat.sh $suite first"; exit 2; }
root_mount "$root"

out=$(mktemp -d)
start_receiver 60 "$out/receiver.txt"
home=target/compat/home-simulcast-$suite
obs_home "$home" 536870912
printf '[General]\nName=P\n\n[Output]\nMode=Simple\n\n[SimpleOutput]\nVBitrate=1500\nPreset=veryfast\n\n[Stream1]\nWHIPSimulcastTotalLayers=3\n\n[Video]\nBaseCX=1280\nBaseCY=720\nOutputCX=1280\nOutputCY=720\n' >"$cfg/basic/profiles/P/basic.ini"
printf '{"type":"whip_custom","settings":{"service":"WHIP","server":"%s","bearer_token":""}}' "$url" >"$cfg/basic/profiles/P/service.json"
printf '{"current_scene":"Scene","current_program_scene":"Scene","name":"C","scene_order":[{"name":"Scene"}],"sources":[{"id":"color_source_v3","versioned_id":"color_source_v3","name":"Colour","settings":{"color":4283215696,"width":1280,"height":720}},{"id":"scene","versioned_id":"scene","name":"Scene","settings":{"id_counter":1,"items":[{"name":"Colour","id":1,"visible":true}]}}]}' >"$cfg/basic/scenes/C.json"
cat >"$home/run.sh" <<'EOS'
obs --profile P --collection C --multi --startstreaming >"$HOME/obs.txt" 2>&1 & P=$!
sleep 14
kill -INT $P; sleep 3; kill -9 $P 2>/dev/null || true
EOS
obs_in_root "$home" run.sh
wait "$sfu" || true
grep -iE 'simulcast|rtc-studio\] (streaming|stream ended)|multiple video' "$home/obs.txt" | sed 's/^[0-9:.]* //' | head -20 || true
tail -n 1 "$out/receiver.txt" | python3 -c '
import json, sys
r = json.load(sys.stdin)
layers = {"f": r, **(r.get("layers") or {})}
shown = ", ".join("%s %sx%s %s frames" % (rid, l.get("width"), l.get("height"), l.get("video_frames_decoded")) for rid, l in layers.items())
ok = len(layers) == 3 and all((l.get("video_frames_decoded") or 0) > 100 and l.get("decode_errors") == 0 for l in layers.values())
print("OBS frontend simulcast (Total Layers 3):", "PASS" if ok else "FAIL", "-", shown)
sys.exit(0 if ok else 1)
'
