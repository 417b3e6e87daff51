//! `realloc` within a block: it moves only the bytes between the old and the new size
//! (and the size word), so check that the canary still covers exactly the bytes past
//! the new size, that an overflow made before the `realloc` is still reported by it,
//! and that contents survive. Misuse cases run in a child process (this test binary
//! re-executed with `OX_CASE` set), which must die of SIGABRT with the report.

use oxalloc_hardened::Hardened;
use std::alloc::{GlobalAlloc, Layout};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

fn l(n: usize) -> Layout {
    Layout::from_size_align(n, 8).unwrap()
}

fn child_case(case: &str) {
    let h = Hardened;
    // SAFETY: deliberately wrong uses, each ending in an abort from the allocator.
    unsafe {
        match case {
            // 40 and 44 bytes share a 64-byte block (class 48): the realloc stays.
            "grow_then_overflow" => {
                let p = h.alloc(l(40));
                let p = h.realloc(p, l(40), 44);
                p.add(44).write(2);
                h.dealloc(p, l(44));
            }
            "shrink_then_overflow" => {
                let p = h.alloc(l(44));
                let p = h.realloc(p, l(44), 36);
                p.add(36).write(2);
                h.dealloc(p, l(36));
            }
            "overflow_then_grow" => {
                let p = h.alloc(l(40));
                p.add(40).write(2);
                h.realloc(p, l(40), 44);
            }
            // The last canary byte (offset len - 9) of a block with 7.8 KiB of slack
            // (a 33000-byte request in a 40960-byte block), changed before a realloc
            // that grows in place.
            "far_overflow_then_grow" => {
                let p = h.alloc(l(33000));
                p.add(40960 - 9).write(0x5A);
                h.realloc(p, l(33000), 33001);
            }
            _ => panic!("unknown case {case}"),
        }
    }
}

/// The child entry: does nothing in a normal test run.
#[test]
fn child_entry() {
    if let Ok(case) = std::env::var("OX_CASE") {
        child_case(&case);
        println!("survived");
    }
}

fn run_child(case: &str) -> (Option<i32>, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env("OX_CASE", case)
        .output()
        .unwrap();
    (
        out.status.signal(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn overflows_around_an_in_place_realloc_are_reported() {
    let cases = [
        (
            "grow_then_overflow",
            "at offset 44 (1 bytes past its end)",
            "GlobalAlloc::dealloc()",
        ),
        (
            "shrink_then_overflow",
            "at offset 36 (1 bytes past its end)",
            "GlobalAlloc::dealloc()",
        ),
        (
            "overflow_then_grow",
            "at offset 40 (1 bytes past its end)",
            "realloc()",
        ),
        ("far_overflow_then_grow", "at offset 40951", "realloc()"),
    ];
    for (case, needle, within) in cases {
        let (sig, err) = run_child(case);
        assert_eq!(sig, Some(6), "{case}: {err}");
        assert!(err.contains("heap overflow of 0x"), "{case}: {err}");
        assert!(err.contains(needle), "{case}: {err}");
        assert!(err.contains(&format!("in {within}")), "{case}: {err}");
    }
}

#[test]
fn in_place_growth_and_shrinking_keep_the_contents_and_the_canary() {
    let h = Hardened;
    for start in [1, 40, 100, 1000, 5000, 40000] {
        // SAFETY: each block is used within its current size and freed once with it.
        unsafe {
            let mut n = start;
            let mut p = h.alloc(l(n));
            for i in 0..n {
                p.add(i).write(i as u8);
            }
            // Up by 1..=13 bytes at a time, then down again, each size checked by the
            // next realloc (which validates the canary) and the contents kept.
            let sizes: Vec<usize> = (0..40)
                .map(|k| start + k * 7 % 13 + k)
                .chain((0..40).rev().map(|k| start + k / 2))
                .collect();
            for &m in &sizes {
                p = h.realloc(p, l(n), m);
                assert!(!p.is_null());
                for i in n..m {
                    p.add(i).write(i as u8);
                }
                n = m;
                assert!((0..n).all(|i| *p.add(i) == i as u8), "{start}: {n}");
                assert_eq!(libc_usable_size(p), n);
            }
            h.dealloc(p, l(n));
        }
    }
}

/// `malloc_usable_size` of the hardened build: the requested size.
fn libc_usable_size(p: *mut u8) -> usize {
    // SAFETY: `p` is a live block of this allocator.
    unsafe { oxalloc_hardened::capi::malloc_usable_size(p.cast()) }
}
