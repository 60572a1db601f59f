//! A process's figures from /proc, for the benchmarks.

/// The number after `name` (e.g. `"VmRSS:"`; memory fields are in kB) in the text of a /proc/<pid>/status, or 0.
pub fn status_field(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `name` of process `pid`'s /proc/<pid>/status now, or 0.
pub fn process_status_field(pid: u32, name: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status_field(&status, name)
}
