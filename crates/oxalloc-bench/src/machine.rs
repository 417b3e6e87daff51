//! What machine and code a result came from: core count, kernel, CPU, git commit.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Machine and source information recorded with every result.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    /// Cores available to this process.
    pub nproc: usize,
    /// `uname -r`.
    pub kernel: String,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Total memory, MiB (from /proc/meminfo).
    pub mem_total_mib: u64,
    /// `git rev-parse HEAD` of the workspace ("unknown" outside git).
    pub git_commit: String,
    /// Whether the work tree had uncommitted changes.
    pub git_dirty: bool,
    /// Seconds since the Unix epoch when the run started.
    pub unix_time: u64,
}

/// `model name` from cpuinfo text.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| {
            l.starts_with("model name") || l.starts_with("Model") || l.starts_with("cpu model")
        })
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

fn git(ws: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(ws)
        .args(args)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Collects the machine information (workspace for git).
pub fn collect(workspace: Option<&Path>) -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let ws = workspace.unwrap_or(Path::new("."));
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        cpu_model: cpu_model(&read("/proc/cpuinfo")).unwrap_or_else(|| "unknown".into()),
        mem_total_mib: mem_kib / 1024,
        git_commit: git(ws, &["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into()),
        git_dirty: git(ws, &["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.is_empty()),
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_cpu_model() {
        let t =
            "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t: x";
        assert_eq!(super::cpu_model(t).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(super::cpu_model("nothing"), None);
    }
}
