#!/usr/bin/env bash
# Takes the docs' screenshot of OBS's Settings → Stream with "WHIP" selected, on a Debian OBS that has no WHIP output
# of its own (trixie's 30.2.3): run after `scripts/compat.sh trixie` has built the root. The WHIP entry and its
# Server/Bearer Token fields exist there only because RTC Studio registers the WHIP protocol and provides the
# `whip_custom` service. The profile's service.json is what OBS itself saves when a streamer picks WHIP (OBS finds
# the entry to show by its "service": "WHIP" setting). Writes docs/img/obs-30-settings-stream-whip.png.
# Needs root (chroot, mounts).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/compat-root.sh
suite="${1:-trixie}"
root="$PWD/target/compat/$suite"
[ -x "$root/usr/bin/obs" ] || { echo "run scripts/compat.sh $suite first"; exit 2; }
chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends xdotool >/dev/null
root_mount "$root"

home=target/compat/home-$suite
obs_home "$home" 503316480
printf '[General]\nName=P\n\n[Output]\nMode=Simple\n\n[Video]\nBaseCX=640\nBaseCY=360\nOutputCX=640\nOutputCY=360\n' >"$cfg/basic/profiles/P/basic.ini"
printf '{"type":"whip_custom","settings":{"service":"WHIP","server":"https://sfu.example.com/whip/endpoint/room1","bearer_token":"example-token"}}' >"$cfg/basic/profiles/P/service.json"
printf '{"current_scene":"Scene","current_program_scene":"Scene","name":"C","scene_order":[{"name":"Scene"}],"sources":[{"id":"scene","versioned_id":"scene","name":"Scene","settings":{"id_counter":0,"items":[]}}]}' >"$cfg/basic/scenes/C.json"

cat >"$home/shot.sh" <<'EOF'
obs --profile P --collection C --multi >/dev/null 2>&1 & P=$!
xdotool search --sync --onlyvisible --name '^OBS ' windowfocus --sync >/dev/null
sleep 4
# File → Settings (keyboard: the File menu's Settings entry), then the Stream page.
xdotool key alt+f; sleep 1; xdotool key s; sleep 3
xdotool search --sync --onlyvisible --name '^Settings' windowfocus --sync >/dev/null
ffmpeg -loglevel error -y -f x11grab -video_size 1280x720 -i "$DISPLAY" -frames:v 1 "$HOME/settings-general.png"
xdotool mousemove 87 89 click 1; sleep 2
ffmpeg -loglevel error -y -f x11grab -video_size 1280x720 -i "$DISPLAY" -frames:v 1 "$HOME/settings-stream.png"
xdotool mousemove 710 28 click 1; sleep 1
ffmpeg -loglevel error -y -f x11grab -video_size 1280x720 -i "$DISPLAY" -frames:v 1 "$HOME/settings-stream-list.png"
kill -INT $P; sleep 2; kill -9 $P 2>/dev/null || true
EOF
obs_in_root "$home" shot.sh
ls -la "$home"/*.png
cp "$home/settings-stream.png" docs/img/obs-30-settings-stream-whip.png
echo "wrote docs/img/obs-30-settings-stream-whip.png"
