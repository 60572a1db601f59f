#!/usr/bin/env bash
# Compatibility check on newer OBS: builds a Debian trixie (OBS 30.2.3) or sid (OBS 32.x) root with debootstrap,
# installs that Debian's OBS in it, and runs our headless runner + plugin — the very binaries built here on
# bookworm — inside it, streaming to our receiver running on this machine over loopback: one layer, three simulcast
# layers, and AV1 from that OBS's own SVT-AV1 encoder. Opt-in (downloads
# ~1 GB per root, several minutes): `make compat` or `scripts/compat.sh trixie|sid`.
# Needs root (debootstrap, chroot, mounts). The roots stay in target/compat/<suite> and are reused; while the
# script runs, this checkout is bind-mounted at <root>/work (unmounted on exit) — never delete a root by hand
# while something is mounted in it (`mount | grep target/compat`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/receiver.sh
source scripts/compat-root.sh
suite="${1:-trixie}"
root_build "$suite"
root_mount "$root"

version=$(chroot "$root" dpkg-query -W -f='${Version}' obs-studio)
echo "compat: Debian $suite, OBS $version"
clip=target/compat/flash-beep-v3-640x360.mkv
scripts/demo-clip.sh "$clip" 8 640x360
out=$(mktemp -d)
# stream_in_root NAME [ARGS...]: our receiver, and the headless runner in the root streaming the clip to it for 6 s
# (the same binaries as on bookworm; OBS's own modules and data are the root's); output in $out/NAME.txt and
# $out/NAME-receiver.txt.
stream_in_root() {
  local name=$1; shift
  start_receiver 60 "$out/$name-receiver.txt"
  chroot "$root" /usr/bin/xvfb-run -a -s "-screen 0 1280x720x24" /work/target/debug/examples/headless \
    --plugin /work/target/debug/librtc_studio.so --plugin-data /work/data --media "/work/$clip" --duration 6 \
    --bframes 0 --url "$url" "$@" >"$out/$name.txt" 2>&1 || true
  wait "$sfu" || true
}
stream_in_root obs
grep -E '\[rtc-studio\]' "$out/obs.txt" | sed 's/^[a-z]*: //' | head -20 || true
summary=$(sed -n 's/^summary //p' "$out/obs.txt")
report=$(tail -n 1 "$out/obs-receiver.txt")
echo "obs      $summary"
echo "receiver $report"
direct=$(grep -c 'packets come straight from the encoders' "$out/obs.txt" || true)
python3 - "$summary" "$report" "$suite" "$version" "$direct" <<'PY'
import json, sys
s, r, suite, version = json.loads(sys.argv[1] or "{}"), json.loads(sys.argv[2] or "{}"), sys.argv[3], sys.argv[4]
direct = sys.argv[5] not in ("", "0")
# Loads and streams: connected, stopped cleanly, >= 98 % of the frames decoded, Opus decoded, WHIP DELETE seen,
# packets taken straight from the encoders (the interleaver bypass works on this libobs).
# Reported beside it (not judged here): libobs's leak count at shutdown and the content-measured A/V offset.
ok = (direct and s.get("connected") and s.get("stop_code") == 0
      and r.get("video_frames_decoded", 0) >= 0.98 * (s.get("total_frames") or 1e9) - 3
      and r.get("decode_errors") == 0 and r.get("audio_packets", 0) > 150 and r.get("delete_received"))
print(f"compat {suite} (OBS {version}): {'PASS' if ok else 'FAIL'} — decoded {r.get('video_frames_decoded')} of "
      f"{s.get('total_frames')} frames, {r.get('audio_packets')} Opus packets, A/V {r.get('av_offset_ms')} ms, "
      f"libobs leak count at shutdown {s.get('leaks')}, "
      f"{'straight from the encoders' if direct else 'NOT straight from the encoders'}")
sys.exit(0 if ok else 1)
PY

# Simulcast on this libobs: three layers from the plugin's own scaled encoders, each decoded by the receiver.
stream_in_root obs3 --layers 3
grep -E '\[rtc-studio\] simulcast' "$out/obs3.txt" | sed 's/^[a-z]*: //' || true
python3 - "$(sed -n 's/^summary //p' "$out/obs3.txt")" "$(tail -n 1 "$out/obs3-receiver.txt")" "$suite" "$version" <<'PY'
import json, sys
s, r, suite, version = json.loads(sys.argv[1] or "{}"), json.loads(sys.argv[2] or "{}"), sys.argv[3], sys.argv[4]
frames = s.get("total_frames") or 1e9
layers = {"f": r, **(r.get("layers") or {})}
want = {"f": (640, 360), "h": (320, 180), "q": (160, 90)}
ok = s.get("connected") and all(
    rid in layers and (layers[rid].get("width"), layers[rid].get("height")) == size
    and layers[rid].get("video_frames_decoded", 0) >= 0.95 * frames - 3 and layers[rid].get("decode_errors") == 0
    for rid, size in want.items())
shown = ", ".join(f"{rid} {l.get('width')}x{l.get('height')} {l.get('video_frames_decoded')} frames"
                  for rid, l in layers.items())
print(f"compat {suite} (OBS {version}) simulcast: {'PASS' if ok else 'FAIL'} — {shown} of {s.get('total_frames')}")
sys.exit(0 if ok else 1)
PY

# AV1 on this libobs: OBS's own SVT-AV1 encoder, every frame the plugin sent decoded by the receiver (libavcodec).
stream_in_root obsav1 --video-encoder ffmpeg_svt_av1
grep -E '\[rtc-studio\] (video codec|stream ended)' "$out/obsav1.txt" | sed 's/^[a-z]*: //' || true
sent=$(sed -n 's/.*stream ended: \([0-9]*\) video.*/\1/p' "$out/obsav1.txt" | tail -n 1)
python3 - "$(sed -n 's/^summary //p' "$out/obsav1.txt")" "$(tail -n 1 "$out/obsav1-receiver.txt")" "$suite" "$version" "${sent:-0}" <<'PY'
import json, sys
s, r, suite, version = json.loads(sys.argv[1] or "{}"), json.loads(sys.argv[2] or "{}"), sys.argv[3], sys.argv[4]
sent = int(sys.argv[5])
ok = (s.get("connected") and s.get("stop_code") == 0 and r.get("video_codec") == "AV1" and sent >= 60
      and r.get("video_frames_decoded") == sent and r.get("decode_errors") == 0 and r.get("audio_packets", 0) > 150)
print(f"compat {suite} (OBS {version}) AV1: {'PASS' if ok else 'FAIL'} — {r.get('video_codec')} "
      f"{r.get('width')}x{r.get('height')}, decoded {r.get('video_frames_decoded')} of {sent} sent, "
      f"{r.get('decode_errors')} errors, A/V {r.get('av_offset_ms')} ms over {r.get('av_pairs')} pairs")
sys.exit(0 if ok else 1)
PY
