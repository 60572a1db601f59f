//! Generates Rust bindings from our own libobs header (`obs-headers/rtc-obs.h`) and links libobs.
//!
//! Linux: libobs's SONAME is `libobs.so.0` on every version we support, so linking it here does not tie the plugin
//! to one OBS release. libX11 is linked for the headless runner's display; as-needed linking keeps it out of the
//! plugin `.so`, which never calls it.
//!
//! Windows (cross-built with mingw-w64): the bindings are generated for the Windows ABI (LLP64, `long` is 32 bits)
//! with the cross compiler's C headers, and `obs.dll` is linked through an import library made here from the
//! functions our header declares — no OBS build or SDK is needed.
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let header = "obs-headers/rtc-obs.h";
    println!("cargo:rerun-if-changed={header}");
    println!("cargo:rerun-if-changed=build.rs");
    let windows = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows");
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());

    let mut builder = bindgen::Builder::default()
        .header(header)
        .allowlist_file(".*rtc-obs\\.h")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .layout_tests(false)
        .derive_default(true)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    if windows {
        // bindgen passes clang the target; clang needs the cross compiler's include directories for <stdint.h> and
        // friends. Layout tests are compile-time assertions: the cross build checks clang's Windows layout of every
        // struct against Rust's.
        builder = builder.layout_tests(true);
        for dir in cross_include_dirs() {
            builder = builder.clang_arg(format!("-isystem{dir}"));
        }
    }
    let bindings = builder.generate().expect(
        "bindgen could not read obs-headers/rtc-obs.h (is libclang-dev installed? `make deps`; for Windows also \
         gcc-mingw-w64-x86-64)",
    );
    let out = out_dir.join("obs_bindings.rs");
    bindings.write_to_file(&out).expect("write bindings");

    if windows {
        obs_import_library(&out, &out_dir);
        println!("cargo:rustc-link-search=native={}", out_dir.display());
        println!("cargo:rustc-link-lib=dylib=obs");
    } else {
        println!("cargo:rustc-link-lib=dylib=obs");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
        println!("cargo:rustc-link-lib=dylib=X11");
    }
}

/// The C compiler for the target (cargo's `CC_<target>` convention, else mingw-w64's name).
fn cross_cc() -> String {
    let target = env::var("TARGET").unwrap();
    env::var(format!("CC_{}", target.replace('-', "_")))
        .unwrap_or_else(|_| "x86_64-w64-mingw32-gcc".into())
}

/// The `#include <…>` search list of the cross compiler (`gcc -E -v`).
fn cross_include_dirs() -> Vec<String> {
    let cc = cross_cc();
    let out = Command::new(&cc)
        .args(["-xc", "-E", "-v", "-"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cc}: {e} (gcc-mingw-w64-x86-64-win32: `make deps`)"));
    let text = String::from_utf8_lossy(&out.stderr);
    let dirs: Vec<String> = text
        .lines()
        .skip_while(|l| !l.starts_with("#include <...>"))
        .skip(1)
        .take_while(|l| !l.starts_with("End of search list"))
        .map(|l| l.trim().to_string())
        .collect();
    assert!(
        !dirs.is_empty(),
        "{cc} -E -v gave no include directories:\n{text}"
    );
    dirs
}

/// `libobs.dll.a` for `obs.dll`, made with mingw-w64's dlltool from the functions the bindings declare.
fn obs_import_library(bindings: &Path, out_dir: &Path) {
    let text = std::fs::read_to_string(bindings).unwrap();
    let functions: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub fn "))
        .filter_map(|l| l.split('(').next())
        .collect();
    assert!(
        functions.len() > 80,
        "only {} functions found in the bindings",
        functions.len()
    );
    let def = out_dir.join("obs.def");
    let mut body = String::from("LIBRARY obs.dll\nEXPORTS\n");
    for f in &functions {
        body += &format!("    {f}\n");
    }
    std::fs::write(&def, body).unwrap();
    let dlltool = cross_cc().replace("-gcc", "-dlltool");
    let status = Command::new(&dlltool)
        .arg("--input-def")
        .arg(&def)
        .args(["--dllname", "obs.dll", "--output-lib"])
        .arg(out_dir.join("libobs.dll.a"))
        .status()
        .unwrap_or_else(|e| panic!("{dlltool}: {e} (binutils-mingw-w64-x86-64)"));
    assert!(status.success(), "{dlltool} failed");
}
