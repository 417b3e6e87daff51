//! Starting the program under test and waiting for it.
//!
//! We reap the child with `wait4(2)` ourselves rather than `Child::wait`, because `wait4` also
//! returns the child's resource usage: its peak RSS (`ru_maxrss`) and CPU time. `Child` is
//! only used to spawn; it is never waited on through std afterwards.
//!
//! # Safety
//! This module owns the crate's only `unsafe`: `wait4(2)` into locals and `signal(2)` with a
//! handler that does nothing.
#![allow(unsafe_code)]

use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::Once;

use crate::error::Error;

/// How the child ended, with its resource usage.
#[derive(Clone, Copy, Debug)]
pub struct Exit {
    pub status: ExitStatus,
    pub peak_rss_bytes: u64,
    pub user_ns: u64,
    pub sys_ns: u64,
}

impl Exit {
    /// Exit code for the tool: the child's, or 128 + signal like a shell.
    pub fn code(&self) -> u8 {
        match (self.status.code(), self.status.signal()) {
            (Some(c), _) => c as u8,
            (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
            _ => 1,
        }
    }

    /// `"exited 0"` or `"killed by signal 11 (SIGSEGV)"`.
    pub fn describe(&self) -> String {
        match (self.status.code(), self.status.signal()) {
            (Some(c), _) => format!("exited {c}"),
            (None, Some(sig)) => format!("killed by signal {sig} ({})", signal_name(sig)),
            _ => "ended".into(),
        }
    }
}

pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => "signal",
    }
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// While the child runs, Ctrl-C and Ctrl-\ go to the child (it shares our process group) and
/// the tool stays alive to print its report, as `time(1)` does. We install a handler that does
/// nothing instead of `SIG_IGN`, because an ignored signal stays ignored across `exec` in the
/// child, while a handled one is reset to the default there.
fn survive_interrupts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for sig in [libc::SIGINT, libc::SIGQUIT] {
            let handler = ignore_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            // SAFETY: `ignore_signal` is async-signal-safe (it does nothing) and lives for the
            // whole program; replacing the disposition of SIGINT/SIGQUIT has no other effect.
            unsafe { libc::signal(sig, handler) };
        }
    });
}

/// Spawns `prog args` with extra environment variables. A missing or non-executable program
/// gets a one-line error.
pub fn spawn(argv: &[OsString], env: &[(String, OsString)]) -> Result<Child, Error> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| Error::new("no program given after `--`"))?;
    let mut cmd = Command::new(prog);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    survive_interrupts();
    cmd.spawn().map_err(|e| {
        let p = prog.to_string_lossy();
        match e.kind() {
            io::ErrorKind::NotFound => Error::new(format!("cannot run `{p}`: program not found")),
            io::ErrorKind::PermissionDenied => {
                Error::new(format!("cannot run `{p}`: permission denied"))
            }
            _ => Error::new(format!("cannot run `{p}`: {e}")),
        }
    })
}

fn tv_ns(tv: libc::timeval) -> u64 {
    (tv.tv_sec as u64).saturating_mul(1_000_000_000) + (tv.tv_usec as u64) * 1000
}

/// Reaps `child` if it has exited (`block = false`) or waits for it (`block = true`).
/// Returns `None` when it is still running.
pub fn wait(child: &Child, block: bool) -> Result<Option<Exit>, Error> {
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let flags = if block { 0 } else { libc::WNOHANG };
        // SAFETY: `status` and `ru` are valid, writable and live for the call; `pid` is our
        // own child, which std has not reaped (we never call `Child::wait`).
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut ru) };
        if r == 0 {
            return Ok(None);
        }
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::new(format!("waiting for the program failed: {e}")));
        }
        return Ok(Some(Exit {
            status: ExitStatus::from_raw(status),
            peak_rss_bytes: (ru.ru_maxrss as u64) * 1024,
            user_ns: tv_ns(ru.ru_utime),
            sys_ns: tv_ns(ru.ru_stime),
        }));
    }
}

/// A private temporary directory, removed on drop. Files the child writes (statistics, leak
/// reports, the live statistics mapping) go there.
pub struct TempDir {
    pub path: std::path::PathBuf,
}

impl TempDir {
    pub fn new(what: &str) -> Result<TempDir, Error> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("oxalloc-{what}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::new(format!("cannot create {}: {e}", path.display())))?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The command line as one string for titles.
pub fn command_line(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
