# RTC Studio — the commands a newcomer needs. Each installs its own Debian packages when missing.
SHELL := /bin/bash
CLIP := target/demo/flash-beep-v3.mkv
XVFB := xvfb-run -a -s "-screen 0 1280x720x24"

.PHONY: deps build demo test test-fast bench soak fuzz compat package package-check install uninstall clean

deps:
	@scripts/deps.sh

build: deps
	cargo build --lib --examples

# Streams a test scene from real libobs through the plugin over WHIP to our receiver and prints what arrived.
demo: build
	@scripts/demo.sh

# The whole test suite (unit, layout, real libobs under Xvfb). The plugin is also checked for Windows (the code
# only Windows compiles, the bindings' Windows layout assertions, the obs.dll import library); make package builds it.
WINDOWS := x86_64-pc-windows-gnu
test: build
	cargo clippy --all-targets -- -D warnings
	@rustup target list --installed | grep -qx $(WINDOWS) || rustup target add $(WINDOWS)
	cargo clippy --lib --target $(WINDOWS) -- -D warnings
	cargo test --no-fail-fast 2>&1

# The tests that need no running libobs, no Xvfb and no root: session policies with fake time, the stop handshake
# and queue policy against a fake OBS output, the media core and signalling (seconds).
test-fast: deps
	cargo test --lib

# Benchmarks print numbers (never part of make test). The replay benchmark needs root (network namespaces); it ends
# with the loss table (RTC_BENCH_ONLY=loss runs just that). The link-steps benchmark (release plugin and runner,
# real libobs, Chromium, GStreamer) prints its table and writes target/bench/link-steps.png.
bench: build
	cargo build --release --lib --examples
	cargo bench --bench packetize
	cargo bench --bench replay
	cargo bench --bench link_steps
	scripts/bench-capture-wire.sh
	scripts/bench-first-frame.sh 20
	scripts/bench-keyframe.sh
	scripts/bench-simulcast.sh

# One long stream (default 60 min; RTC_SOAK_MINUTES=N for another length) with 1 % loss, link cuts and a server
# crash: RSS, threads and files every 10 s, each outage's repair, frames decodable; target/bench/soak.png.
soak: build
	cargo build --release --lib --examples
	cargo bench --bench soak

# 1 M inputs per fuzz target, everything the network or an encoder reaches (installs cargo-fuzz when missing;
# stable toolchain via RUSTC_BOOTSTRAP).
FUZZ_TARGETS := annexb depacketize av1 hevc whip_response sdp_answer janus_json turn_stream opus ant_media
fuzz: deps
	@command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
	cd fuzz && for t in $(FUZZ_TARGETS); do RUSTC_BOOTSTRAP=1 cargo fuzz run $$t -- -runs=1000000 -max_len=8192 || exit 1; done

# The same binaries on newer OBS: Debian trixie (30.2.3) and sid, each in a debootstrap root (opt-in, root, ~1 GB).
compat: build
	scripts/compat.sh trixie
	scripts/compat.sh sid
	scripts/compat-frontend-simulcast.sh sid

# Packages people install, in dist/: a .deb for the system's OBS and its -dbgsym, a per-user tarball, the debug
# info, and a zip for OBS on Windows x86-64 (cross-built with mingw-w64; built and checked, not run on Windows).
# Release builds; version from Cargo.toml, entry in docs/changelog.md.
package: deps
	@scripts/deps.sh dpkg-dev zip unzip
	scripts/package.sh
	scripts/package-windows.sh

# That .deb installed into the make-compat Debian roots (OBS 30.2.3, 32.x) and this machine (29.0.2): pulls in
# nothing else, streams from the system plugin path, purges clean (opt-in, root, as make compat).
package-check: package build
	scripts/package-check.sh --host
	scripts/package-check.sh trixie
	scripts/package-check.sh sid

install: deps
	scripts/install.sh

uninstall:
	scripts/install.sh --uninstall

clean:
	cargo clean
