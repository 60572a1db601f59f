//! Debian's Chromium, headless, opening a page of ours served from 127.0.0.1; the page posts its result back to
//! `/result` as JSON. Everything is bounded: the page gets a deadline, Chromium is killed after it.
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Serves `page` at `/page.html` and returns what it posts to `/result` (or an error after `limit`).
pub fn run_page(
    page: &Path,
    query: &str,
    limit: Duration,
    profile_dir: &Path,
) -> Result<Value, String> {
    run_page_with(page, query, limit, profile_dir, &[])
}

/// [`run_page`] with more Chromium flags (a fake camera, another origin allowed, …).
pub fn run_page_with(
    page: &Path,
    query: &str,
    limit: Duration,
    profile_dir: &Path,
    flags: &[&str],
) -> Result<Value, String> {
    let html = std::fs::read(page).map_err(|e| format!("{}: {e}", page.display()))?;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(64) {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length.min(64 << 20)];
            let _ = reader.read_exact(&mut body);
            let (status, content) = if request_line.starts_with("GET /page.html") {
                ("200 OK", html.clone())
            } else if request_line.starts_with("POST /result") {
                if let Ok(v) = serde_json::from_slice(&body) {
                    let _ = tx.send(v);
                }
                ("200 OK", b"ok".to_vec())
            } else {
                ("404 Not Found", b"not here".to_vec())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                content.len()
            );
            let _ = conn
                .write_all(head.as_bytes())
                .and_then(|_| conn.write_all(&content));
        }
    });
    let _ = std::fs::remove_dir_all(profile_dir);
    let url = format!("http://127.0.0.1:{port}/page.html?{query}");
    let mut chromium = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
            "--autoplay-policy=no-user-gesture-required",
            // Our own host candidates, not mDNS names (the server cannot resolve those).
            "--disable-features=WebRtcHideLocalIpsWithMdns",
        ])
        .args(flags)
        .arg(format!("--user-data-dir={}", profile_dir.display()))
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("chromium (make deps): {e}"))?;
    let result = rx
        .recv_timeout(limit)
        .map_err(|_| format!("the page posted no result within {limit:?}"));
    let _ = chromium.kill();
    let _ = chromium.wait();
    result
}

/// Writes a `data:image/png;base64,…` URL's bytes to `path`.
pub fn save_data_url_png(data_url: &str, path: &Path) -> Result<(), String> {
    use base64::Engine;
    let b64 = data_url
        .strip_prefix("data:image/png;base64,")
        .ok_or("not a PNG data URL")?;
    let png = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| e.to_string())?;
    std::fs::write(path, png).map_err(|e| e.to_string())
}

/// Writes `svg` (`width`×`height`) beside `png` and has headless Chromium screenshot it into `png`; says which it
/// made.
pub fn svg_to_png(svg: &str, png: &Path, width: u32, height: u32) {
    let svg_path = png.with_extension("svg");
    std::fs::write(&svg_path, svg).unwrap();
    let profile = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("chromium-plot");
    let status = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", svg_path.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => println!("plot: {}", png.display()),
        _ => println!(
            "plot: {} (Chromium could not make the PNG)",
            svg_path.display()
        ),
    }
}
