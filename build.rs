//! Generates Rust bindings from our own libobs header (`obs-headers/rtc-obs.h`) and links libobs.
//!
//! libobs's SONAME is `libobs.so.0` on every version we support, so linking it here does not tie the plugin to
//! one OBS release. libX11 is linked for the headless runner's display; as-needed linking keeps it out of the
//! plugin `.so`, which never calls it.
use std::env;
use std::path::PathBuf;

fn main() {
    let header = "obs-headers/rtc-obs.h";
    println!("cargo:rerun-if-changed={header}");
    println!("cargo:rerun-if-changed=build.rs");

    let bindings = bindgen::Builder::default()
        .header(header)
        .allowlist_file(".*rtc-obs\\.h")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .layout_tests(false)
        .derive_default(true)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect(
            "bindgen could not read obs-headers/rtc-obs.h (is libclang-dev installed? `make deps`)",
        );

    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("obs_bindings.rs");
    bindings.write_to_file(&out).expect("write bindings");

    println!("cargo:rustc-link-lib=dylib=obs");
    println!("cargo:rustc-link-arg=-Wl,--as-needed");
    println!("cargo:rustc-link-lib=dylib=X11");
}
