#!/usr/bin/env bash
# make package (Windows part): the plugin cross-built for Windows x86-64 with mingw-w64, into dist/:
#   rtc-studio-<version>-windows-x64.zip    OBS's Windows layout: unpack into OBS's folder (C:\Program Files\obs-studio)
#                                           obs-plugins/64bit/rtc-studio.dll, data/obs-plugins/rtc-studio/
#   rtc-studio-<version>-windows-x64.debug  the DLL's debug info (DWARF, for gdb/addr2line), linked by name
# Checked before it is kept: the DLL exports OBS's module entry points; it imports only obs.dll and Windows's own
# DLLs (the frontend API is looked up at run time, never imported), and every function it takes from obs.dll is one
# libobs exports. Built and checked here; no Windows OBS runs on these machines.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-pc-windows-gnu
cross=x86_64-w64-mingw32
for tool in "$cross-gcc" "$cross-objcopy" "$cross-objdump" zip unzip; do
  command -v "$tool" >/dev/null || { echo "package-windows: $tool is missing (make deps)"; exit 2; }
done
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
grep -q "^## $version " docs/changelog.md \
  || { echo "package-windows: docs/changelog.md has no entry '## $version (date)' for version $version"; exit 1; }

cargo build --release --lib --target "$target"
dll=target/$target/release/rtc_studio.dll
dist=dist
name=rtc-studio-$version-windows-x64
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$dist"
rm -f "$dist/$name.zip" "$dist/$name.debug"

"$cross-objcopy" --only-keep-debug "$dll" "$work/$name.debug"
mkdir -p "$work/zip/obs-plugins/64bit" "$work/zip/data/obs-plugins/rtc-studio"
"$cross-objcopy" --strip-debug --strip-unneeded --add-gnu-debuglink="$work/$name.debug" \
  "$dll" "$work/zip/obs-plugins/64bit/rtc-studio.dll"
cp -r data/. "$work/zip/data/obs-plugins/rtc-studio/"

# Exports: the entry points OBS's module loader looks for.
headers=$("$cross-objdump" -p "$work/zip/obs-plugins/64bit/rtc-studio.dll")
exports=$(sed -n '/\[Ordinal\/Name Pointer\] Table/,/^$/p' <<<"$headers" | awk '/\[/ {print $NF}')
for entry in obs_module_load obs_module_unload obs_module_set_pointer obs_module_ver obs_current_module \
             obs_module_set_locale obs_module_free_locale; do
  grep -qx "$entry" <<<"$exports" || { echo "package-windows: the DLL does not export $entry"; exit 1; }
done
# Imports: obs.dll and Windows's own DLLs, nothing else (no MinGW runtime DLLs, no frontend API).
allowed='^(obs\.dll|kernel32\.dll|ntdll\.dll|advapi32\.dll|userenv\.dll|ws2_32\.dll|iphlpapi\.dll|bcrypt\.dll|bcryptprimitives\.dll|crypt32\.dll|msvcrt\.dll|api-ms-win-core-[a-z0-9-]+\.dll)$'
imports=$(sed -n 's/^\tDLL Name: //p' <<<"$headers" | tr 'A-Z' 'a-z' | sort -u)
unexpected=$(grep -Ev "$allowed" <<<"$imports" || true)
[ -z "$unexpected" ] || { echo "package-windows: the DLL imports unexpected DLLs: $unexpected"; exit 1; }
grep -qx 'obs.dll' <<<"$imports" || { echo "package-windows: the DLL does not import obs.dll"; exit 1; }
# The functions taken from obs.dll: each must be one libobs exports (checked against the system's libobs, which
# exports the same C API on every platform).
from_obs=$(awk '/DLL Name: obs.dll/ {on=1; next} /DLL Name:/ {on=0} on && /^\t[0-9a-f]+[[:space:]]+[0-9]+[[:space:]]+[A-Za-z_]/ {print $NF}' \
  <<<"$headers" | sort -u)
[ "$(wc -l <<<"$from_obs")" -gt 50 ] || { echo "package-windows: found only $(wc -l <<<"$from_obs") obs.dll imports"; exit 1; }
libobs=$(ls /usr/lib/*/libobs.so.0 2>/dev/null | head -n 1)
if [ -n "$libobs" ]; then
  missing=$(comm -23 <(echo "$from_obs") <(nm -D --defined-only "$libobs" | awk '{print $NF}' | sort -u))
  [ -z "$missing" ] || { echo "package-windows: imported from obs.dll but not a libobs function: $missing"; exit 1; }
fi
if grep -q 'obs_frontend_' <<<"$from_obs"; then
  echo "package-windows: the frontend API must be looked up at run time, not imported"; exit 1
fi

(cd "$work/zip" && find . -type d -exec chmod 0755 {} + && TZ=UTC zip -qrX9 "$work/$name.zip" obs-plugins data)
mv "$work/$name.zip" "$work/$name.debug" "$dist/"
echo "package-windows: $name.zip — exports the OBS module entry points; imports $(wc -l <<<"$from_obs") functions" \
     "from obs.dll and only system DLLs: $(grep -v '^obs.dll$' <<<"$imports" | tr '\n' ' ')"
(cd "$dist" && ls -l --block-size=K -- "$name".* | awk '{print "  " $5 "\t" $9}')
(cd "$dist" && unzip -l "$name.zip" | sed 's/^/  /')
