//! Threads and the per-thread caches: `tests/hardened/threads.c` under the hardened
//! library (preloaded, and linked statically). The clean case must exit 0 and its leak
//! report must list exactly the blocks leaked (cached slots are not leaks); each misuse
//! done across threads must end with SIGABRT and the right report.

mod common;
use common::*;

fn programs() -> [(std::path::PathBuf, bool); 2] {
    let lib = static_lib();
    [
        (build("threads", "cc", "threads.c", &["-lpthread"]), true),
        (
            build(
                "threads-static",
                "cc",
                "threads.c",
                &[lib.to_str().unwrap(), "-lpthread", "-ldl", "-lm", "-lgcc_s"],
            ),
            false,
        ),
    ]
}

#[test]
fn threads_with_cross_thread_frees_exit_and_fork_run_clean() {
    for (prog, preload) in programs() {
        let out = run(&prog, &["clean"], preload, &[("OXALLOC_LEAKS", "1")]);
        expect_ok(&out, "threads clean");
        let err = String::from_utf8_lossy(&out.stderr);
        // The 5 blocks of 777 bytes a thread leaked before exiting, grouped as one site;
        // nothing of the 777-byte class that the other threads freed or cached.
        assert!(
            err.contains("oxalloc: 3885 bytes in 5 blocks leaked, allocated at 0x"),
            "preloaded {preload}: {err}"
        );
        assert_eq!(err.matches("777 bytes").count(), 0, "{err}");
    }
}

#[test]
fn misuse_across_threads_is_reported() {
    for (prog, preload) in programs() {
        for (case, needles) in THREAD_CASES {
            let out = run(&prog, &[case], preload, &[]);
            let what = format!("threads {case} (preload {preload})");
            expect_signal(&out, SIGABRT, needles, &what);
        }
    }
}
