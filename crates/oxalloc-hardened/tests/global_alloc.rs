//! The `GlobalAlloc` path: `Hardened` used directly. Misuse cases run in a child
//! process (this test binary re-executed with `OX_CASE` set), which must die of SIGABRT
//! with the report.

use oxalloc_hardened::Hardened;
use std::alloc::{GlobalAlloc, Layout};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

fn child_case(case: &str) {
    let h = Hardened;
    let l = Layout::from_size_align(48, 8).unwrap();
    // SAFETY: deliberately wrong uses, each ending in an abort from the allocator.
    unsafe {
        match case {
            "double_dealloc" => {
                let p = h.alloc(l);
                h.dealloc(p, l);
                h.dealloc(p, l);
            }
            "wrong_layout_size" => {
                let p = h.alloc(l);
                h.dealloc(p, Layout::from_size_align(40, 8).unwrap());
            }
            "wrong_layout_align" => {
                let big = Layout::from_size_align(4096, 256).unwrap();
                let p = h.alloc(big);
                h.dealloc(p, Layout::from_size_align(4096, 512).unwrap());
            }
            "foreign_pointer" => {
                let x = [0u64; 8];
                h.dealloc(x.as_ptr() as *mut u8, l);
            }
            "overflow" => {
                let p = h.alloc(l);
                // One byte past the end, even (canary bytes are odd, so it always differs).
                p.add(48).write(2);
                h.dealloc(p, l);
            }
            "large_double_dealloc" => {
                let big = Layout::from_size_align(1 << 20, 8).unwrap();
                let p = h.alloc(big);
                h.dealloc(p, big);
                h.dealloc(p, big);
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
fn misuse_through_global_alloc_aborts_with_a_report() {
    let cases = [
        ("double_dealloc", "double free of 0x"),
        ("wrong_layout_size", "size mismatch of 0x"),
        ("wrong_layout_align", "alignment mismatch of 0x"),
        ("foreign_pointer", "invalid free of 0x"),
        ("overflow", "heap overflow of 0x"),
        ("large_double_dealloc", "double free of 0x"),
    ];
    for (case, needle) in cases {
        let (sig, err) = run_child(case);
        assert_eq!(sig, Some(6), "{case}: {err}");
        assert!(err.contains(needle), "{case}: {err}");
        assert!(err.contains("in GlobalAlloc::dealloc()"), "{case}: {err}");
    }
}

#[test]
fn global_alloc_round_trips() {
    let h = Hardened;
    for (size, align) in [
        (1, 1),
        (48, 8),
        (100, 16),
        (3000, 64),
        (70000, 8),
        (5000, 8192),
    ] {
        let l = Layout::from_size_align(size, align).unwrap();
        // SAFETY: valid non-zero layouts; each block is freed once with its layout.
        unsafe {
            let p = h.alloc_zeroed(l);
            assert!(!p.is_null() && (p as usize).is_multiple_of(align));
            assert!((0..size).all(|i| *p.add(i) == 0));
            p.write_bytes(7, size);
            let q = h.realloc(p, l, size * 2);
            assert!(!q.is_null() && (q as usize).is_multiple_of(align));
            assert!((0..size).all(|i| *q.add(i) == 7));
            h.dealloc(q, Layout::from_size_align(size * 2, align).unwrap());
        }
    }
}
