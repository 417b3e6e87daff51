//! Runs one child process and measures it: wall time from spawn to exit, and peak RSS, minor
//! page faults and CPU time from the `rusage` that `wait4` returns for that child.
//!
//! Peak RSS floor: Linux starts a child's `ru_maxrss` at its parent's resident set (fork
//! copies the RSS counters; with vfork/posix_spawn exec records the shared mm's high-water
//! mark). So before each spawn we reset our own high-water mark (`5` to
//! `/proc/self/clear_refs`, Linux 4.0+), and the suite keeps its own RSS small: every child's
//! peak then has the same floor, the suite's current RSS (~3 MiB), whatever the allocator.
//!
//! Timeouts: a watchdog thread kills the child when it overruns. To make the kill safe the
//! parent first waits with `waitid(WNOWAIT)`, which leaves the child a zombie (its pid cannot
//! be reused), stops the watchdog, and only then reaps the child with `wait4`.

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct Job {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Extra environment variables.
    pub env: Vec<(OsString, OsString)>,
    /// `LD_PRELOAD` for the child; `None` removes any inherited one.
    pub preload: Option<PathBuf>,
    /// A file to connect to the child's stdin (default: `/dev/null`).
    pub stdin: Option<PathBuf>,
    /// Kill the child after this long.
    pub timeout: Duration,
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this status.
    Code(i32),
    /// Killed by this signal (not by our watchdog).
    Signal(i32),
    /// Killed by the watchdog after [`Job::timeout`].
    TimedOut,
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Seconds from spawn to exit.
    pub wall_s: f64,
    /// Peak resident set of the child, KiB (`ru_maxrss`).
    pub max_rss_kib: u64,
    /// User CPU seconds.
    pub user_s: f64,
    /// System CPU seconds.
    pub sys_s: f64,
    /// Minor page faults of the child (`ru_minflt`): pages it touched first, or touched
    /// again after they were given back, without I/O.
    pub minor_faults: u64,
    /// How it ended.
    pub exit: Exit,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// The last 8 KiB it wrote to stderr.
    pub stderr_tail: String,
}

impl Outcome {
    /// True for exit status 0.
    pub fn success(&self) -> bool {
        self.exit == Exit::Code(0)
    }

    /// A one-line description of a failure, for tables and logs.
    pub fn failure(&self) -> String {
        let why = match self.exit {
            Exit::Code(c) => format!("exit {c}"),
            Exit::Signal(s) => format!("signal {s}"),
            Exit::TimedOut => "timed out".to_string(),
        };
        let last = self
            .stderr_tail
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty());
        match last {
            Some(l) => format!("{why}: {}", l.trim()),
            None => why,
        }
    }
}

fn read_all(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

fn timeval_s(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 * 1e-6
}

/// Runs `job` to completion (or timeout) and measures it.
pub fn run(job: &Job) -> std::io::Result<Outcome> {
    let mut cmd = Command::new(&job.program);
    cmd.args(&job.args).env_remove("LD_PRELOAD");
    for (k, v) in &job.env {
        cmd.env(k, v);
    }
    if let Some(p) = &job.preload {
        cmd.env("LD_PRELOAD", p);
    }
    cmd.stdin(match &job.stdin {
        Some(p) => Stdio::from(std::fs::File::open(p)?),
        None => Stdio::null(),
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());

    // Best effort: without it the child's peak would start at our own peak (see above).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let start = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    let out = child.stdout.take().map(read_all);
    let err = child.stderr.take().map(read_all);

    let done = Arc::new((Mutex::new(false), Condvar::new()));
    let timed_out = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (done, timed_out, timeout) = (done.clone(), timed_out.clone(), job.timeout);
        std::thread::spawn(move || {
            let (m, c) = &*done;
            let g = m.lock().unwrap_or_else(|e| e.into_inner());
            let (g, _) = c
                .wait_timeout_while(g, timeout, |d| !*d)
                .unwrap_or_else(|e| e.into_inner());
            if !*g {
                timed_out.store(true, Ordering::SeqCst);
                // SAFETY: `pid` is our unreaped child (the parent reaps it only after this
                // thread is joined), so the signal cannot reach another process.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        })
    };

    loop {
        // SAFETY: an all-zero siginfo_t is a valid value for waitid to overwrite.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid out-pointer; WNOWAIT leaves the child unreaped.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break;
        }
    }
    let wall_s = start.elapsed().as_secs_f64();
    {
        let (m, c) = &*done;
        *m.lock().unwrap_or_else(|e| e.into_inner()) = true;
        c.notify_all();
    }
    let _ = watchdog.join();

    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointers; `pid` is our child, exited and not yet reaped.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    if r != pid {
        return Err(std::io::Error::last_os_error());
    }
    let exit = if timed_out.load(Ordering::SeqCst) {
        Exit::TimedOut
    } else if libc::WIFEXITED(status) {
        Exit::Code(libc::WEXITSTATUS(status))
    } else {
        Exit::Signal(libc::WTERMSIG(status))
    };
    let stdout = out
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    let stderr = err
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    let tail = &stderr[stderr.len().saturating_sub(8192)..];
    Ok(Outcome {
        wall_s,
        max_rss_kib: ru.ru_maxrss.max(0) as u64,
        user_s: timeval_s(ru.ru_utime),
        sys_s: timeval_s(ru.ru_stime),
        minor_faults: ru.ru_minflt.max(0) as u64,
        exit,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr_tail: String::from_utf8_lossy(tail).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout_ms: u64) -> Outcome {
        run(&Job {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            timeout: Duration::from_millis(timeout_ms),
            ..Job::default()
        })
        .unwrap()
    }

    #[test]
    fn captures_output_status_and_rss() {
        let o = sh("echo hello; echo oops >&2; exit 3", 10_000);
        assert_eq!(o.exit, Exit::Code(3));
        assert_eq!(o.stdout.trim(), "hello");
        assert!(o.failure().contains("oops"));
        assert!(o.max_rss_kib > 0);
        assert!(o.minor_faults > 0, "{o:?}"); // exec alone maps and touches pages
    }

    #[test]
    fn kills_on_timeout() {
        let o = sh("sleep 5", 200);
        assert_eq!(o.exit, Exit::TimedOut);
        assert!(o.wall_s < 4.0);
    }
}
