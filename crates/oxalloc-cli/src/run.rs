//! `oxalloc run`: run a program with `liboxalloc.so` preloaded and report its statistics.
//!
//! The child gets `LD_PRELOAD=<lib>` and `OXALLOC_STATS_FILE=<tmp>/stats-%p.json`; at exit the
//! library replaces `%p` by its PID and writes one JSON object there without allocating. If
//! the program starts other programs, each writes its own file: we report the child's and
//! mention the others. Peak RSS comes from the kernel (`wait4`), not from the library.

use std::ffi::OsString;
use std::path::Path;
use std::time::Instant;

use crate::child::{self, TempDir};
use crate::error::{Error, Result};
use crate::lib_locate;
use crate::stats::{self, RunInfo, Stats};
use crate::term;

pub struct Args {
    pub hardened: bool,
    pub json: bool,
    pub no_color: bool,
    pub argv: Vec<OsString>,
}

/// `LD_PRELOAD` with our library first, keeping what the user already preloads.
pub fn preload_value(lib: &Path) -> OsString {
    let mut v = OsString::from(lib.as_os_str());
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|o| !o.is_empty()) {
        v.push(":");
        v.push(old);
    }
    v
}

/// Reads the statistics files in `dir`: the one of `pid`, and how many others there are.
fn collect(dir: &Path, pid: u32) -> (Option<std::result::Result<Stats, String>>, usize) {
    let mut mine = None;
    let mut others = 0;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (None, 0);
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("stats-") {
            continue;
        }
        if name == format!("stats-{pid}.json") {
            mine = Some(
                std::fs::read_to_string(e.path())
                    .map_err(|e| e.to_string())
                    .and_then(|t| Stats::parse(&t)),
            );
        } else {
            others += 1;
        }
    }
    (mine, others)
}

pub fn main(a: Args) -> Result<u8> {
    let lib = lib_locate::lib(a.hardened)?;
    let tmp = TempDir::new("run")?;
    let env = vec![
        ("LD_PRELOAD".to_string(), preload_value(&lib)),
        (
            "OXALLOC_STATS_FILE".to_string(),
            tmp.path.join("stats-%p.json").into_os_string(),
        ),
    ];
    let command = child::command_line(&a.argv);
    let t0 = Instant::now();
    let child = child::spawn(&a.argv, &env)?;
    let progress = term::Progress::start(format!("running {command}"), String::new);
    let exit = child::wait(&child, true)?.ok_or_else(|| Error::new("lost the program"))?;
    progress.finish();
    let wall_ns = t0.elapsed().as_nanos() as u64;
    let (mine, others) = collect(&tmp.path, child.id());

    let stats = match mine {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            eprintln!("oxalloc: the statistics the program wrote are unreadable: {e}");
            None
        }
        None => {
            eprintln!(
                "oxalloc: {} wrote no statistics ({}): was {} loaded? Static and setuid programs ignore LD_PRELOAD",
                a.argv[0].to_string_lossy(),
                exit.describe(),
                lib.display()
            );
            None
        }
    };

    if a.json {
        let v = serde_json::json!({
            "command": a.argv.iter().map(|s| s.to_string_lossy()).collect::<Vec<_>>(),
            "library": lib.display().to_string(),
            "pid": child.id(),
            "exit_code": exit.status.code(),
            "signal": std::os::unix::process::ExitStatusExt::signal(&exit.status),
            "wall_ns": wall_ns,
            "user_ns": exit.user_ns,
            "sys_ns": exit.sys_ns,
            "peak_rss_bytes": exit.peak_rss_bytes,
            "other_processes_with_stats": others,
            "stats": stats,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else if let Some(s) = &stats {
        let info = RunInfo {
            command: &command,
            status: &exit.describe(),
            wall_ns,
            peak_rss_bytes: exit.peak_rss_bytes,
            user_ns: exit.user_ns,
            sys_ns: exit.sys_ns,
            other_processes: others,
        };
        // The report goes to stderr, like `time`, so the program's own stdout stays clean
        // for pipes; `--json` goes to stdout for scripts.
        eprint!(
            "{}",
            stats::report(s, &info, term::use_color(a.no_color) && stderr_tty())
        );
    } else {
        eprintln!(
            "oxalloc: {} {}, wall time {}, peak RSS {}",
            command,
            exit.describe(),
            term::duration_ns(wall_ns),
            term::bytes(exit.peak_rss_bytes)
        );
    }
    Ok(exit.code())
}

fn stderr_tty() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}
