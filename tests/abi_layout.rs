//! Our own libobs declarations (`obs-headers/rtc-obs.h`, through bindgen) against the system's libobs-dev headers:
//! every struct size, field offset and constant we declare must match what a C compiler sees in `<obs.h>`, and
//! every function we declare must be exported by the installed libobs (or libX11).
use rtc_studio::obs::sys;
use std::collections::HashMap;
use std::mem::{offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;

struct Layout {
    name: &'static str,
    size: usize,
    /// Fields present in libobs 29.0 (checked one by one against C).
    fields: Vec<(&'static str, usize)>,
    /// Offset of the first field appended after 29.0, which must equal the 29.0 `sizeof`.
    appended_at: Option<usize>,
}

macro_rules! layout {
    ($s:ident { $($f:ident),* $(,)? } $(appended $first:ident)?) => {
        Layout {
            name: stringify!($s),
            size: size_of::<sys::$s>(),
            fields: vec![$((stringify!($f), offset_of!(sys::$s, $f))),*],
            appended_at: None $(.or(Some(offset_of!(sys::$s, $first))))?,
        }
    };
}

macro_rules! constants {
    ($($c:ident),* $(,)?) => { vec![$((stringify!($c), sys::$c as i64)),*] };
}

fn layouts() -> Vec<Layout> {
    vec![
        layout!(encoder_packet {
            data,
            size,
            pts,
            dts,
            timebase_num,
            timebase_den,
            type_,
            keyframe,
            dts_usec,
            sys_dts_usec,
            priority,
            drop_priority,
            track_idx,
            encoder
        }),
        layout!(obs_video_info {
            graphics_module,
            fps_num,
            fps_den,
            base_width,
            base_height,
            output_width,
            output_height,
            output_format,
            adapter,
            gpu_conversion,
            colorspace,
            range,
            scale_type
        }),
        layout!(obs_audio_info {
            samples_per_sec,
            speakers
        }),
        layout!(obs_output_info {
            id, flags, get_name, create, destroy, start, stop, raw_video, raw_audio, encoded_packet, update,
            get_defaults, get_properties, unused1, get_total_bytes, get_dropped_frames, type_data, free_type_data,
            get_congestion, get_connect_time_ms, encoded_video_codecs, encoded_audio_codecs, raw_audio2
        } appended protocols),
        layout!(obs_service_info {
            id, get_name, create, destroy, activate, deactivate, update, get_defaults, get_properties, initialize,
            get_url, get_key, get_username, get_password, deprecated_1, apply_encoder_settings, type_data,
            free_type_data, get_output_type, get_supported_resolutions, get_max_fps, get_max_bitrate,
            get_supported_video_codecs
        } appended get_protocol),
        layout!(obs_source_info {
            id,
            type_,
            output_flags,
            get_name,
            create,
            destroy,
            get_width,
            get_height,
            get_defaults,
            get_properties,
            update,
            activate,
            deactivate,
            show,
            hide,
            video_tick,
            video_render,
            filter_video,
            filter_audio,
            enum_active_sources,
            save,
            load,
            mouse_click,
            mouse_move,
            mouse_wheel,
            focus,
            key_click,
            filter_remove,
            type_data,
            free_type_data,
            audio_render,
            enum_all_sources,
            transition_start,
            transition_stop,
            get_defaults2,
            get_properties2,
            audio_mix,
            icon_type,
            media_play_pause,
            media_restart,
            media_stop,
            media_next,
            media_previous,
            media_get_duration,
            media_get_time,
            media_set_time,
            media_get_state,
            version,
            unversioned_id,
            missing_files,
            video_get_color_space
        }),
    ]
}

fn constants() -> Vec<(&'static str, i64)> {
    constants!(
        OBS_OUTPUT_VIDEO,
        OBS_OUTPUT_AUDIO,
        OBS_OUTPUT_AV,
        OBS_OUTPUT_ENCODED,
        OBS_OUTPUT_SERVICE,
        OBS_OUTPUT_SUCCESS,
        OBS_OUTPUT_BAD_PATH,
        OBS_OUTPUT_CONNECT_FAILED,
        OBS_OUTPUT_INVALID_STREAM,
        OBS_OUTPUT_ERROR,
        OBS_OUTPUT_DISCONNECTED,
        OBS_OUTPUT_UNSUPPORTED,
        OBS_OUTPUT_NO_SPACE,
        OBS_OUTPUT_ENCODE_ERROR,
        LOG_ERROR,
        LOG_WARNING,
        LOG_INFO,
        LOG_DEBUG,
        OBS_VIDEO_SUCCESS,
        MODULE_SUCCESS,
        OBS_ENCODER_AUDIO,
        OBS_ENCODER_VIDEO,
        OBS_ENCODER_CAP_DYN_BITRATE,
        VIDEO_FORMAT_NONE,
        VIDEO_FORMAT_I420,
        VIDEO_FORMAT_NV12,
        VIDEO_CS_DEFAULT,
        VIDEO_CS_601,
        VIDEO_CS_709,
        VIDEO_RANGE_DEFAULT,
        VIDEO_RANGE_PARTIAL,
        VIDEO_RANGE_FULL,
        OBS_SCALE_DISABLE,
        OBS_SCALE_POINT,
        OBS_SCALE_BICUBIC,
        SPEAKERS_UNKNOWN,
        SPEAKERS_MONO,
        SPEAKERS_STEREO,
        OBS_TEXT_DEFAULT,
        OBS_TEXT_PASSWORD,
        OBS_TEXT_MULTILINE,
        OBS_TEXT_INFO,
        OBS_COMBO_TYPE_INVALID,
        OBS_COMBO_TYPE_EDITABLE,
        OBS_COMBO_TYPE_LIST,
        OBS_COMBO_FORMAT_INVALID,
        OBS_COMBO_FORMAT_INT,
        OBS_COMBO_FORMAT_FLOAT,
        OBS_COMBO_FORMAT_STRING,
        OBS_NIX_PLATFORM_X11_EGL,
        OBS_SOURCE_TYPE_INPUT,
        OBS_SOURCE_CAP_DISABLED,
        OBS_GROUP_NORMAL,
        OBS_PROPERTIES_DEFER_UPDATE,
        RTLD_LAZY,
        RTLD_NOLOAD,
    )
}

/// `key` → C expression for every size, offset and constant we declare.
fn probes(layouts: &[Layout], constants: &[(&str, i64)]) -> Vec<(String, String)> {
    let mut probes = Vec::new();
    for l in layouts {
        probes.push((
            format!("size.{}", l.name),
            format!("sizeof(struct {})", l.name),
        ));
        for (f, _) in &l.fields {
            let cf = f.trim_end_matches('_'); // bindgen renames C's `type` to `type_`
            probes.push((
                format!("offset.{}.{f}", l.name),
                format!("offsetof(struct {}, {cf})", l.name),
            ));
        }
    }
    for (name, _) in constants {
        probes.push((format!("const.{name}"), format!("(long long)({name})")));
    }
    probes
}

fn probe_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("abi_layout");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// libobs-dev's compiler flags (`pkg-config --cflags libobs`).
fn libobs_cflags() -> Vec<String> {
    let cflags = Command::new("pkg-config")
        .args(["--cflags", "libobs"])
        .output()
        .expect("pkg-config (make deps)");
    assert!(
        cflags.status.success(),
        "pkg-config libobs failed: is libobs-dev installed? (make deps)"
    );
    String::from_utf8(cflags.stdout)
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn compiled(out: std::process::Output, what: &str) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{what} did not compile:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Compiles and runs a C program against the system headers; returns its `key value` lines.
fn system_values(layouts: &[Layout], constants: &[(&str, i64)]) -> HashMap<String, i64> {
    let mut c = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <obs.h>\n#include <obs-module.h>\n\
         #include <obs-nix-platform.h>\n#include <dlfcn.h>\nint main(void) {\n",
    );
    for (key, expr) in probes(layouts, constants) {
        c += &format!("printf(\"{key} %lld\\n\", (long long)({expr}));\n");
    }
    c += "return 0;\n}\n";
    let dir = probe_dir();
    let (src, bin) = (dir.join("layout.c"), dir.join("layout"));
    std::fs::write(&src, c).unwrap();
    let out = Command::new("cc")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .args(libobs_cflags())
        .output()
        .expect("run cc");
    compiled(out, "C layout probe");
    let run = Command::new(&bin).output().expect("run layout probe");
    assert!(run.status.success());
    String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

/// What mingw-w64's compiler makes of each probe for Windows x86-64 (LLP64) with `includes` (C source lines): the
/// values are compiled into constants and read back from its assembly, as nothing here can run a Windows program.
fn windows_values(
    probes: &[(String, String)],
    includes: &str,
    flags: &[String],
) -> HashMap<String, i64> {
    let mut c = format!("#include <stddef.h>\n{includes}\n");
    for (i, (_, expr)) in probes.iter().enumerate() {
        c += &format!("const long long rtc_probe_{i} = (long long)({expr});\n");
    }
    let dir = probe_dir();
    let src = dir.join(format!("windows-{:x}.c", includes.len()));
    std::fs::write(&src, c).unwrap();
    let out = Command::new("x86_64-w64-mingw32-gcc")
        .args(["-S", "-o", "-"])
        .arg(&src)
        .args(flags)
        .output()
        .expect("x86_64-w64-mingw32-gcc (gcc-mingw-w64-x86-64-win32: make deps)");
    let asm = String::from_utf8(compiled(out, "Windows layout probe")).unwrap();
    // `rtc_probe_N:` followed by `.quad VALUE` (`.space 8` for 0).
    let mut values = HashMap::new();
    let mut lines = asm.lines();
    while let Some(l) = lines.next() {
        if let Some(i) = l
            .strip_prefix("rtc_probe_")
            .and_then(|l| l.strip_suffix(':'))
        {
            let i: usize = i.parse().unwrap();
            let v = match lines.next().map(str::trim) {
                Some(".space 8") => 0,
                Some(v) if v.starts_with(".quad") => v[".quad".len()..].trim().parse().unwrap(),
                v => panic!("rtc_probe_{i}: followed by {v:?}:\n{asm}"),
            };
            values.insert(probes[i].0.clone(), v);
        }
    }
    assert_eq!(values.len(), probes.len(), "{asm}");
    values
}

#[test]
fn struct_layouts_and_constants_match_system_libobs_headers() {
    let layouts = layouts();
    let constants = constants();
    let c = system_values(&layouts, &constants);
    let mut mismatches = Vec::new();
    let mut checked = 0;
    for l in &layouts {
        let c_size = c[&format!("size.{}", l.name)] as usize;
        match l.appended_at {
            None if c_size != l.size => mismatches.push(format!("sizeof {}: ours {} system {c_size}", l.name, l.size)),
            Some(at) if at != c_size => mismatches.push(format!(
                "{}: our first post-29.0 field starts at {at}, but the system's struct is {c_size} bytes",
                l.name
            )),
            _ => {}
        }
        for (f, ours) in &l.fields {
            let sys = c[&format!("offset.{}.{f}", l.name)] as usize;
            checked += 1;
            if sys != *ours {
                mismatches.push(format!("offsetof {}.{f}: ours {ours} system {sys}", l.name));
            }
        }
    }
    for (name, ours) in &constants {
        checked += 1;
        let sys = c[&format!("const.{name}")];
        if sys != *ours {
            mismatches.push(format!("{name}: ours {ours} system {sys}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "our declarations differ from libobs-dev:\n{}",
        mismatches.join("\n")
    );
    assert!(checked > 100, "checked only {checked} items");
}

/// The same sizes, offsets and constants for Windows x86-64: our header against libobs-dev's (the same libobs
/// headers serve every platform), both compiled by mingw-w64's gcc. (That Rust lays our header out as clang does for
/// Windows is checked by the layout assertions bindgen adds to the Windows build: `make package`.)
#[test]
fn struct_layouts_and_constants_match_libobs_headers_for_windows() {
    let layouts = layouts();
    // Linux-only: the X11 platform enum and the dynamic loader's flags (Windows asks kernel32 instead).
    let constants: Vec<_> = constants()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("RTLD_") && !name.starts_with("OBS_NIX_"))
        .collect();
    let probes = probes(&layouts, &constants);
    // libobs's sse-intrin.h wants SIMDe (header-only, platform-neutral) outside MSVC; give the cross compiler that
    // one directory of the system's include tree, not the whole (Linux) tree.
    let simde = probe_dir().join("simde-include");
    std::fs::create_dir_all(&simde).unwrap();
    let link = simde.join("simde");
    if !link.exists() {
        std::os::unix::fs::symlink("/usr/include/simde", &link).unwrap();
    }
    let mut obs_flags: Vec<String> = libobs_cflags()
        .into_iter()
        .filter(|f| !f.starts_with("-m"))
        .collect();
    obs_flags.push(format!("-I{}", simde.display()));
    let system = windows_values(
        &probes,
        "#include <obs.h>\n#include <obs-module.h>",
        &obs_flags,
    );
    let header = concat!(env!("CARGO_MANIFEST_DIR"), "/obs-headers/rtc-obs.h");
    let ours = windows_values(&probes, &format!("#include \"{header}\""), &[]);
    let mismatches: Vec<String> = probes
        .iter()
        .filter(|(k, _)| ours[k] != system[k])
        .map(|(k, _)| format!("{k}: ours {} libobs {}", ours[k], system[k]))
        .collect();
    // Structs that grew after 29.0 are declared at their 29.0 size: compare where the first appended field starts.
    let grown: Vec<String> = layouts
        .iter()
        .filter(|l| l.appended_at.is_some())
        .map(|l| format!("size.{}", l.name))
        .collect();
    let mismatches: Vec<&String> = mismatches
        .iter()
        .filter(|m| !grown.iter().any(|g| m.starts_with(&format!("{g}:"))))
        .collect();
    assert!(
        mismatches.is_empty(),
        "for Windows, our declarations differ from libobs-dev's:\n{mismatches:#?}"
    );
    assert!(probes.len() > 100, "checked only {}", probes.len());
    // On Windows `long` is 32 bits: the probe really compiled for LLP64.
    let long = windows_values(&[("long".into(), "sizeof(long)".into())], "", &[]);
    assert_eq!(long["long"], 4);
}

fn our_header() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/obs-headers/rtc-obs.h"
    ))
    .unwrap()
}

/// Function names declared at top level in our header.
fn declared_functions() -> Vec<String> {
    let header = our_header();
    header
        .lines()
        .filter(|l| {
            let first = l.chars().next().unwrap_or(' ');
            first.is_ascii_alphabetic()
                && !["typedef", "struct", "enum", "#"]
                    .iter()
                    .any(|p| l.starts_with(p))
                && l.contains('(')
        })
        .filter_map(|l| {
            let before = &l[..l.find('(')?];
            let name: String = before
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            Some(name.chars().rev().collect())
        })
        .collect()
}

#[test]
fn every_declared_function_is_exported_by_the_system_libraries() {
    let mut exported = String::new();
    for lib in [
        "/usr/lib/x86_64-linux-gnu/libobs.so.0",
        "/usr/lib/x86_64-linux-gnu/libX11.so.6",
        "/lib/x86_64-linux-gnu/libc.so.6",
        FRONTEND_API,
    ] {
        let out = Command::new("nm")
            .args(["-D", "--defined-only", lib])
            .output()
            .expect("nm (binutils)");
        assert!(out.status.success(), "nm {lib} failed");
        exported += &String::from_utf8_lossy(&out.stdout);
    }
    let symbols: std::collections::HashSet<&str> = exported
        .lines()
        .filter_map(|l| l.split_whitespace().last()?.split('@').next())
        .collect();
    let declared = declared_functions();
    assert!(
        declared.len() > 80,
        "parsed only {} declarations",
        declared.len()
    );
    let missing: Vec<_> = declared
        .iter()
        .filter(|f| !symbols.contains(f.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "declared but not exported by libobs 29.0 / libX11 / libc: {missing:?}"
    );
    // The frontend functions we look up at run time (`<name>_fn` signature types) exist in OBS 29.0's frontend API.
    let frontend = frontend_function_types();
    assert!(frontend.len() >= 4, "parsed only {frontend:?}");
    let missing: Vec<_> = frontend
        .iter()
        .filter(|f| !symbols.contains(f.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "not exported by {FRONTEND_API}: {missing:?}"
    );
    // libobs functions looked up at run time because some versions lack them: 29.0 has the old pair (32 does not;
    // obs_service_get_connect_info is 29.1+).
    for f in ["obs_service_get_url", "obs_service_get_key"] {
        assert!(header_declares_fn_type(f), "{f}_fn is no longer declared");
        assert!(symbols.contains(f), "{f} not exported by libobs 29.0");
    }
    assert!(header_declares_fn_type("obs_service_get_connect_info"));
    for f in [
        "obs_service_get_url",
        "obs_service_get_key",
        "obs_service_get_connect_info",
    ] {
        assert!(
            !declared.iter().any(|d| d == f),
            "{f} must not be linked directly (missing in some libobs)"
        );
    }
}

fn header_declares_fn_type(name: &str) -> bool {
    let header = our_header();
    header.contains(&format!("(*{name}_fn)("))
}

const FRONTEND_API: &str = "/usr/lib/x86_64-linux-gnu/libobs-frontend-api.so.0";

/// `obs_frontend_x` for every `typedef ... (*obs_frontend_x_fn)(...)` in our header.
fn frontend_function_types() -> Vec<String> {
    let header = our_header();
    header
        .lines()
        .filter(|l| l.starts_with("typedef"))
        .filter_map(|l| {
            let start = l.find("(*obs_frontend_")? + 2;
            let end = start + l[start..].find("_fn)")?;
            Some(l[start..end].to_string())
        })
        .collect()
}
