#!/usr/bin/env bash
# Takes the docs' screenshots of Tools → "RTC Studio settings…" (OBS's own properties dialog for the plugin's
# settings): on this machine's OBS (Debian 12, 29.0.2, Qt 5) and, given a suite, in its make-compat root (trixie:
# 30.2.3, Qt 6). The profile's service has a mistyped TURN server, so the dialog shows what it says about one.
# Writes docs/img/settings-dialog-<obs version>.png. The suite's root needs root (chroot, mounts).
# Usage: scripts/compat-settings-dialog.sh [host|trixie|sid]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/compat-root.sh
where="${1:-host}"

home=target/compat/home-dialog-$where
obs_home "$home" 486539266
printf '[PropertiesWindow]\ncx=760\ncy=712\n' >>"$cfg/global.ini"
printf '[General]\nName=P\n\n[Output]\nMode=Simple\n\n[Video]\nBaseCX=640\nBaseCY=360\nOutputCX=640\nOutputCY=360\n' >"$cfg/basic/profiles/P/basic.ini"
printf '{"type":"rtc_studio_service","settings":{"server":"https://sfu.example.com/whip/endpoint/room1","bearer_token":"example-token","ice_servers":"stun:stun.example.com:3478\\nturn.example.com:3478","ice_username":"obs","ice_credential":"example-password"}}' \
  >"$cfg/basic/profiles/P/service.json"
printf '{"current_scene":"Scene","current_program_scene":"Scene","name":"C","scene_order":[{"name":"Scene"}],"sources":[{"id":"scene","versioned_id":"scene","name":"Scene","settings":{"id_counter":0,"items":[]}}]}' >"$cfg/basic/scenes/C.json"

cat >"$home/shot.sh" <<'EOF'
obs --profile P --collection C --multi >/dev/null 2>&1 & P=$!
xdotool search --sync --onlyvisible --name '^OBS ' windowfocus --sync >/dev/null
sleep 4
# Tools, then the entry's mnemonic (e).
xdotool key alt+t; sleep 1; xdotool key e
W=$(xdotool search --sync --onlyvisible --name 'RTC Studio settings' | head -n 1)
xdotool windowmove "$W" 0 0; sleep 2
eval "$(xdotool getwindowgeometry --shell "$W")"
ffmpeg -loglevel error -y -f x11grab -video_size "${WIDTH}x${HEIGHT}" -i "$DISPLAY+0,0" -frames:v 1 "$HOME/dialog.png"
obs --version >"$HOME/version" 2>/dev/null || true
kill -INT $P; sleep 2; kill -9 $P 2>/dev/null || true
EOF

if [ "$where" = host ]; then
  # obs_home links the plugin as a root sees this checkout (/work); here it is $PWD.
  ln -sfn "$PWD/target/debug/librtc_studio.so" "$home/plugins/bin/rtc-studio.so"
  ln -sfn "$PWD/data" "$home/plugins/data/rtc-studio"
  HOME="$PWD/$home" OBS_PLUGINS_PATH="$PWD/$home/plugins/bin" OBS_PLUGINS_DATA_PATH="$PWD/$home/plugins/data" \
    timeout 90 xvfb-run -a -s "-screen 0 1280x720x24" sh "$home/shot.sh" || true
else
  root="$PWD/target/compat/$where"
  [ -x "$root/usr/bin/obs" ] || { echo "run scripts/compat.sh $where first"; exit 2; }
  chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends xdotool >/dev/null
  root_mount "$root"
  obs_in_root "$home" shot.sh
fi
[ -s "$home/dialog.png" ] || { echo "no screenshot taken"; exit 1; }
version=$(grep -o '[0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*' "$home/version" | head -n 1)
cp "$home/dialog.png" "docs/img/settings-dialog-obs-$version.png"
echo "wrote docs/img/settings-dialog-obs-$version.png"
