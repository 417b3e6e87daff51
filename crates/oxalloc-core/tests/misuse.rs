//! The default build stops double and invalid frees (issue 19): each case runs in a
//! child process (this test binary, re-run with `OXALLOC_MISUSE_CASE` set), which must
//! die of SIGABRT after writing the report; the cases that are not misuses must run to
//! the end without a report.

mod common;
use oxalloc_core::{api, heap, misuse::Op};
use std::process::{Command, ExitStatus};

const MIB: usize = 1 << 20;

static STATIC_WORD: [u64; 4] = [1, 2, 3, 4];

/// Runs one case in this process (the child).
fn run_case(case: &str) {
    // SAFETY: each case misuses the API on purpose; the child is expected to die of it
    // (or, for the allowed cases, to do nothing harmful).
    unsafe {
        match case {
            "small-double" => {
                let p = api::malloc(32);
                api::free(p);
                api::free(p);
            }
            // Not at once: caught when the block would be handed out a second time.
            "small-double-after-other-frees" => {
                let p = api::malloc(48);
                let others: Vec<_> = (0..100).map(|_| api::malloc(48)).collect();
                api::free(p);
                for q in others {
                    api::free(q);
                }
                let keep = api::malloc(48); // the span stays this heap's
                api::free(p);
                allocate_some(48);
                api::free(keep);
            }
            "small-double-remote" => {
                let p = api::malloc(64) as usize;
                std::thread::spawn(move || api::free(p as *mut u8))
                    .join()
                    .unwrap();
                api::free(p as *mut u8);
                allocate_some(64);
            }
            // Another thread's block, kept by the freeing thread for its own use
            // (`heap::foreign::keep`: its span of the class is used up), freed again.
            "small-double-kept" => {
                // The owner stays (its heap is not this thread's to adopt).
                let (tx, rx) = std::sync::mpsc::channel();
                let (_stay, wait) = std::sync::mpsc::channel::<()>();
                std::thread::spawn(move || {
                    tx.send(api::malloc(64) as usize).unwrap();
                    let _ = wait.recv();
                });
                let p = rx.recv().unwrap();
                while !(api::malloc(64) as usize + 64).is_multiple_of(64 << 10) {}
                api::free(p as *mut u8);
                api::free(p as *mut u8);
                allocate_some(64);
            }
            // Freed twice into the kept list, not at once: caught when the list hands
            // the block out the second time (on `malloc`'s fast path).
            "small-double-kept-later" => {
                let (tx, rx) = std::sync::mpsc::channel();
                let (_stay, wait) = std::sync::mpsc::channel::<()>();
                std::thread::spawn(move || {
                    let theirs: Vec<usize> = (0..8).map(|_| api::malloc(64) as usize).collect();
                    tx.send(theirs).unwrap();
                    let _ = wait.recv();
                });
                let theirs = rx.recv().unwrap();
                while !(api::malloc(64) as usize + 64).is_multiple_of(64 << 10) {}
                for &p in &theirs {
                    api::free(p as *mut u8);
                }
                api::free(theirs[2] as *mut u8);
                allocate_some(64);
            }
            "small-double-local-then-remote" => {
                let keep = api::malloc(64);
                let p = api::malloc(64);
                api::free(p);
                let p = p as usize;
                std::thread::spawn(move || api::free(p as *mut u8))
                    .join()
                    .unwrap();
                allocate_some(64);
                api::free(keep);
            }
            "small-double-empties-span" => {
                // The span's count reaches zero while `live` is still in use: caught
                // before the span goes back to the central pool.
                let blocks: Vec<_> = (0..64).map(|_| api::malloc(2048)).collect();
                let (a, live) = (blocks[10], blocks[11]);
                for (i, &q) in blocks.iter().enumerate() {
                    if i != 11 {
                        api::free(q);
                    }
                }
                api::free(a); // a second time: the count is now one short
                allocate_some(4096); // other classes: the 2 KiB span is not current
                std::hint::black_box(live);
            }
            "small-double-remote-empties-span" => {
                // Two other threads free `a`: its remote list loops, and the span's
                // count reaches zero while `live` is in use.
                let blocks: Vec<_> = (0..64).map(|_| api::malloc(2048) as usize).collect();
                let (a, live) = (blocks[10], blocks[11]);
                for (i, &q) in blocks.iter().enumerate() {
                    if i != 10 && i != 11 {
                        api::free(q as *mut u8);
                    }
                }
                for _ in 0..2 {
                    std::thread::spawn(move || api::free(a as *mut u8))
                        .join()
                        .unwrap();
                }
                allocate_some(2048);
                allocate_some(4096);
                std::hint::black_box(live);
            }
            "small-double-in-kept-span" | "small-double-in-kept-span-remote" => {
                // Rounds of four spans of 4 KiB blocks, all freed: the heap keeps some
                // of the emptied spans for its next ones (`heap::span_cache`). A block
                // of the last round's first span (not the current one, which the class
                // keeps) freed again lies in such a span.
                let mut last: Vec<usize> = Vec::new();
                for _ in 0..8 {
                    for &q in &last {
                        api::free(q as *mut u8);
                    }
                    last = (0..64).map(|_| api::malloc(4096) as usize).collect();
                }
                for &q in &last {
                    api::free(q as *mut u8);
                }
                let a = last[0];
                if case.ends_with("remote") {
                    std::thread::spawn(move || api::free(a as *mut u8))
                        .join()
                        .unwrap();
                } else {
                    api::free(a as *mut u8);
                }
            }
            "small-interior" => {
                let p = api::malloc(64);
                api::free(p.add(16));
            }
            "small-unaligned" => {
                let p = api::malloc(64);
                api::free(p.add(1));
            }
            "small-never-handed-out" => {
                let p = api::malloc(16);
                api::free(p.add(16 * 1000));
            }
            "metadata" => {
                let p = api::malloc(16) as usize;
                api::free(((p & !(4 * MIB - 1)) + 64) as *mut u8);
            }
            "large-double" => {
                let p = api::malloc(200 << 10);
                api::free(p);
                api::free(p);
            }
            // The first free keeps the span in the heap's cache (`heap::large`: the size
            // churned, so the cache has room); the second finds it no longer live.
            "large-double-kept" => {
                for _ in 0..4 {
                    api::free(api::malloc(200 << 10));
                }
                let p = api::malloc(200 << 10);
                api::free(p);
                api::free(p);
            }
            // Freed on another thread (which keeps it), then again here.
            "large-double-other-thread" => {
                let p = api::malloc(200 << 10) as usize;
                let (freed, wait_freed) = std::sync::mpsc::channel();
                let (_stay, wait) = std::sync::mpsc::channel::<()>();
                std::thread::spawn(move || {
                    for _ in 0..4 {
                        api::free(api::malloc(200 << 10));
                    }
                    api::free(p as *mut u8);
                    freed.send(()).unwrap();
                    // Alive while the second free runs: its cache still holds the span.
                    let _ = wait.recv();
                });
                wait_freed.recv().unwrap();
                api::free(p as *mut u8);
            }
            "large-interior" => {
                let p = api::malloc(200 << 10);
                api::free(p.add(4096));
            }
            "huge-double" => {
                let keep = api::malloc(5 * MIB);
                let p = api::malloc(5 * MIB);
                api::free(p);
                api::free(p);
                api::free(keep);
            }
            "huge-interior" => {
                let p = api::malloc(5 * MIB);
                api::free(p.add(64 << 10));
            }
            "stack" => {
                let local = [0u64; 4];
                api::free(std::hint::black_box(&local).as_ptr() as *mut u8);
            }
            "static" => {
                api::free(STATIC_WORD.as_ptr() as *mut u8);
            }
            "unmapped" => {
                api::free(0x1000 as *mut u8);
            }
            "realloc-freed" => {
                let p = api::malloc(100);
                api::free(p);
                api::realloc(p, 200);
            }
            "usable-size-interior" => {
                let p = api::malloc(100);
                api::malloc_usable_size(p.add(8));
            }
            "free-sized-mismatch" => {
                let p = api::malloc(32);
                api::free_sized(p, 400);
            }
            "free-sized-smaller-class" => {
                // A size of a smaller class than the block's (and no realloc made it).
                let p = api::malloc(64);
                api::free_sized(p, 20);
            }
            "dealloc-mismatch" => {
                let p = api::malloc(32);
                heap::free_sized(p, 3000, 8, Op::Dealloc);
            }
            "foreign-mapping" | "foreign-mapping-abort" => {
                let mut v = vec![0u8; 1 << 16]; // the test harness's own allocator
                api::free(v.as_mut_ptr().add(64));
                api::free(v.as_mut_ptr().add(128));
                println!("went on");
            }
            // Not misuses: must not be reported.
            "ok-sized-after-realloc" => {
                let p = api::malloc(64);
                let q = api::realloc(p, 40); // stays in place
                assert_eq!(p, q);
                api::free_sized(q, 40);
                let r = api::malloc(24);
                api::free_sized(r, 24);
                let a = api::aligned_alloc(256, 100);
                api::free_aligned_sized(a, 256, 100);
                let l = api::malloc(300 << 10);
                api::free_sized(l, 300 << 10);
                let h = api::malloc(3 * MIB);
                api::free_sized(h, 3 * MIB);
                println!("clean");
            }
            "ok-key-in-data" => {
                // A live block whose second word holds what a free block's would (the
                // key is the span's owner heap, which a program could only copy from a
                // freed block): it is freed normally, with no report.
                let a = api::malloc(32) as *mut usize;
                api::free(a.cast());
                let key = *a.add(1);
                let b = api::malloc(32) as *mut usize;
                *b.add(1) = key;
                api::free(b.cast());
                let c = api::malloc(32);
                let d = api::malloc(32);
                assert_ne!(c, d);
                println!("clean");
            }
            other => panic!("unknown case {other}"),
        }
    }
    println!("survived");
}

/// Allocates (and leaks) blocks of `size`, as a program goes on after a bug.
fn allocate_some(size: usize) {
    for _ in 0..2000 {
        std::hint::black_box(api::malloc(size));
    }
}

#[test]
fn child_entry() {
    if let Ok(case) = std::env::var("OXALLOC_MISUSE_CASE") {
        run_case(&case);
    }
}

/// Whether the child ended the way `oxalloc_sys::abort` ends a process: SIGABRT, or on
/// Windows `TerminateProcess` with status 3 (what the CRT's `abort` uses).
#[cfg(unix)]
fn aborted(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(6)
}

#[cfg(windows)]
fn aborted(status: ExitStatus) -> bool {
    status.code() == Some(3)
}

/// A command that runs this test binary again. A cross-compiled test runs under the
/// runner cargo was given (`CARGO_TARGET_<TRIPLE>_RUNNER`, qemu-user for the CI's
/// aarch64 run), whose variable the test inherits; the kernel cannot exec the binary
/// without it, so the child goes through the same runner.
fn this_binary() -> Command {
    let exe = std::env::current_exe().unwrap();
    let runner = common::emulator().unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(words).arg(exe);
            c
        }
        None => Command::new(exe),
    }
}

/// Runs `case` in a child; returns (killed by SIGABRT, stdout, stderr).
fn child(case: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let out = this_binary()
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env("OXALLOC_MISUSE_CASE", case)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        aborted(out.status),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn expect_abort(case: &str, words: &[&str]) {
    let (aborted, out, err) = child(case, &[]);
    assert!(aborted, "{case}: not aborted\nstdout: {out}\nstderr: {err}");
    assert!(!out.contains("survived"), "{case}: went on: {out}");
    for w in words {
        assert!(err.contains(w), "{case}: report lacks {w:?}:\n{err}");
    }
    assert!(err.contains("oxalloc: aborting"), "{case}: {err}");
}

#[test]
fn double_frees_of_small_blocks_are_stopped_on_any_thread() {
    // At once, in the second free.
    let words = [
        "oxalloc: double free of 0x",
        "in free()",
        "already freed",
        "at: 0x",
    ];
    expect_abort("small-double", &words);
    expect_abort("small-double-kept", &words);
    // Later, before the block is handed out a second time.
    let words = [
        "oxalloc: double free of 0x",
        "in malloc()",
        "freed twice",
        "at: 0x",
    ];
    expect_abort("small-double-after-other-frees", &words);
    expect_abort("small-double-remote", &words);
    expect_abort("small-double-kept-later", &words);
    expect_abort("small-double-local-then-remote", &words);
}

#[test]
fn a_double_free_that_empties_a_span_is_stopped_before_the_span_is_reused() {
    expect_abort(
        "small-double-empties-span",
        &[
            "oxalloc: double free of 0x",
            "(size 2048, class 2048) in free()",
            "freed twice",
        ],
    );
}

#[test]
fn a_double_free_into_an_emptied_span_its_heap_keeps_is_stopped() {
    let words = [
        "oxalloc: double free of 0x",
        "(size 4096, class 4096) in free()",
        "already freed",
    ];
    expect_abort("small-double-in-kept-span", &words);
    expect_abort("small-double-in-kept-span-remote", &words);
}

#[test]
fn a_double_free_by_other_threads_that_empties_a_span_is_stopped() {
    expect_abort(
        "small-double-remote-empties-span",
        &["oxalloc: double free", "(size 2048", "freed twice"],
    );
}

#[test]
fn pointers_into_small_spans_that_are_not_blocks_are_stopped() {
    expect_abort(
        "small-interior",
        &[
            "invalid free of 0x",
            "interior pointer, 16 bytes into the block at 0x",
            "(size 64, class 64)",
        ],
    );
    expect_abort(
        "small-unaligned",
        &["invalid free of 0x", "misaligned pointer, 1 bytes into"],
    );
    expect_abort(
        "small-never-handed-out",
        &["invalid free of 0x", "not in a block it handed out"],
    );
    expect_abort("metadata", &["invalid free of 0x", "metadata"]);
}

#[test]
fn large_and_huge_misuse_is_stopped() {
    expect_abort("large-double", &["double free of 0x", "in free()"]);
    expect_abort("large-double-kept", &["double free of 0x", "in free()"]);
    expect_abort(
        "large-double-other-thread",
        &["double free of 0x", "in free()"],
    );
    expect_abort(
        "large-interior",
        &["invalid free of 0x", "interior pointer, 4096 bytes into"],
    );
    expect_abort("huge-double", &["free of 0x", "in free()"]);
    expect_abort(
        "huge-interior",
        &["invalid free of 0x", "interior pointer, 65536 bytes into"],
    );
}

#[test]
fn pointers_outside_our_memory() {
    expect_abort("stack", &["invalid free of 0x", "on the stack"]);
    expect_abort("static", &["invalid free of 0x", "static data"]);
    expect_abort("unmapped", &["invalid free of 0x1000", "not mapped"]);
    // Another allocator's memory: reported once, then ignored (the default) ...
    let (aborted, out, err) = child("foreign-mapping", &[]);
    assert!(!aborted && out.contains("went on"), "{out}\n{err}");
    assert_eq!(err.matches("oxalloc: invalid free of").count(), 1, "{err}");
    assert!(
        err.contains("not oxalloc's") && err.contains("ignored"),
        "{err}"
    );
    // ... or an abort with OXALLOC_FOREIGN_FREE=2, or silence with 0.
    let (aborted, _, err) = child("foreign-mapping", &[("OXALLOC_FOREIGN_FREE", "2")]);
    assert!(aborted && err.contains("oxalloc: aborting"), "{err}");
    let (aborted, out, err) = child("foreign-mapping", &[("OXALLOC_FOREIGN_FREE", "0")]);
    assert!(
        !aborted && out.contains("went on") && !err.contains("oxalloc:"),
        "{err}"
    );
}

#[test]
fn other_calls_name_themselves() {
    expect_abort("realloc-freed", &["double free of 0x", "in realloc()"]);
    expect_abort(
        "usable-size-interior",
        &["invalid pointer of 0x", "in malloc_usable_size()"],
    );
    expect_abort(
        "free-sized-mismatch",
        &[
            "size mismatch of 0x",
            "in free_sized()",
            "freed with size 400",
        ],
    );
    expect_abort(
        "free-sized-smaller-class",
        &[
            "size mismatch of 0x",
            "in free_sized()",
            "freed with size 20",
        ],
    );
    expect_abort(
        "dealloc-mismatch",
        &["size mismatch of 0x", "in GlobalAlloc::dealloc()"],
    );
}

#[test]
fn correct_programs_get_no_report() {
    for case in ["ok-sized-after-realloc", "ok-key-in-data"] {
        let (aborted, out, err) = child(case, &[]);
        assert!(
            !aborted && out.contains("clean") && out.contains("survived"),
            "{case}: {out}\n{err}"
        );
        assert!(!err.contains("oxalloc"), "{case}: {err}");
    }
}
