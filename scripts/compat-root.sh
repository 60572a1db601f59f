# Sourced by the compat scripts (root needed).
# root_build SUITE: the Debian SUITE root in target/compat/SUITE (debootstrap, once; ~1 GB) with that Debian's OBS
# installed; sets $root and $suite.
root_build() {
  suite="$1"
  root="$PWD/target/compat/$suite"
  local mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
  [ "$(id -u)" -eq 0 ] || { echo "compat: needs root (debootstrap, chroot)"; exit 2; }
  command -v debootstrap >/dev/null || scripts/deps.sh debootstrap
  if [ ! -x "$root/usr/bin/apt-get" ]; then
    echo "compat: building a Debian $suite root in $root (once)"
    mkdir -p "$root"
    debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$root.debootstrap.log" 2>&1 \
      || { tail -20 "$root.debootstrap.log"; exit 1; }
  fi
  # That Debian's OBS; libobs-dev brings the unversioned libobs-opengl.so that libobs opens by that name.
  chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    obs-studio libobs-dev xvfb xauth ffmpeg ca-certificates >/dev/null
}
# root_mount ROOT: mounts /proc, /sys, /dev, /dev/pts and this checkout (at ROOT/work) into the debootstrap root, and
# on exit unmounts them and stops our receiver ($sfu) if one was started.
root_mount() {
  root_dir="$1"
  trap root_cleanup EXIT
  mkdir -p "$root_dir/work"
  mount --bind /proc "$root_dir/proc"; mount --bind /sys "$root_dir/sys"
  mount --bind /dev "$root_dir/dev"; mount --bind /dev/pts "$root_dir/dev/pts"
  mount --bind "$PWD" "$root_dir/work"
}
root_cleanup() {
  for m in dev/pts dev proc sys work; do umount -l "$root_dir/$m" 2>/dev/null || true; done
  [ -n "${sfu:-}" ] && kill "$sfu" 2>/dev/null || true
}
# obs_home HOME LAST_VERSION: a fresh home for OBS's frontend in the root (HOME relative to this checkout): the plugin
# linked in as a user plugin, and a global.ini that opens profile P and scene collection C (which the caller writes
# into $cfg/basic/profiles/P and $cfg/basic/scenes/C.json) with obs-websocket off. Sets $cfg.
obs_home() {
  rm -rf "$1"
  cfg="$1/.config/obs-studio"
  mkdir -p "$cfg/basic/profiles/P" "$cfg/basic/scenes" "$1/plugins/bin" "$1/plugins/data"
  ln -s /work/target/debug/librtc_studio.so "$1/plugins/bin/rtc-studio.so"
  ln -s /work/data "$1/plugins/data/rtc-studio"
  printf '[General]\nFirstRun=true\nLastVersion=%s\n\n[Basic]\nProfile=P\nProfileDir=P\nSceneCollection=C\nSceneCollectionFile=C\n\n[OBSWebSocket]\nServerEnabled=false\nFirstLoad=false\n' "$2" >"$cfg/global.ini"
}
# obs_in_root HOME SCRIPT: runs SCRIPT (a file in HOME) under Xvfb inside the root, with HOME and the plugin paths set.
obs_in_root() {
  chroot "$root_dir" /usr/bin/env HOME="/work/$1" OBS_PLUGINS_PATH="/work/$1/plugins/bin" \
    OBS_PLUGINS_DATA_PATH="/work/$1/plugins/data" \
    timeout 90 xvfb-run -a -s "-screen 0 1280x720x24" sh "/work/$1/$2" || true
}
