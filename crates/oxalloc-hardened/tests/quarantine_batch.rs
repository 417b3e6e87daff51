//! The quarantine lets blocks out in batches (when the ring holds a quarter more bytes
//! than `OXALLOC_QUARANTINE_BYTES`, back down to it): a freed block must still wait at
//! least until the blocks freed after it hold the limit's bytes, and no longer than
//! until they hold a quarter more. Observed through a write after free, which is
//! reported when the written block leaves the ring: the child (this test binary
//! re-executed with `OX_CASE` set) counts its frees on stderr until it dies.

use oxalloc_hardened::Hardened;
use std::alloc::{GlobalAlloc, Layout};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

/// Bytes of blocks the child's quarantine holds (100 blocks of 64 bytes).
const LIMIT: usize = 6400;

fn child() {
    let h = Hardened;
    // 48 bytes: a 64-byte block.
    let l = Layout::from_size_align(48, 8).unwrap();
    let mut err = std::io::stderr();
    let _ = writeln!(err, "start");
    // SAFETY: a deliberate write after free, then ordinary pairs.
    unsafe {
        let x = h.alloc(l);
        h.dealloc(x, l);
        x.add(8).write(0x41);
        for k in 1..=1000 {
            let p = h.alloc(l);
            let _ = writeln!(err, "free {k}");
            h.dealloc(p, l);
        }
    }
}

/// The child entry: does nothing in a normal test run.
#[test]
fn child_entry() {
    if std::env::var("OX_CASE").is_ok() {
        child();
        println!("survived");
    }
}

#[test]
fn a_freed_block_waits_for_the_limit_and_at_most_a_quarter_more() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env("OX_CASE", "batch")
        .env("OXALLOC_QUARANTINE_BYTES", LIMIT.to_string())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(6), "{err}");
    assert!(err.contains("write after free of 0x"), "{err}");
    assert!(err.contains("byte 8 of the freed block is 0x41"), "{err}");
    let last: usize = err
        .lines()
        .filter_map(|l| l.strip_prefix("free "))
        .next_back()
        .and_then(|n| n.parse().ok())
        .expect("frees counted");
    // The block (64 bytes) and the k blocks freed after it: it may leave once they
    // pass the limit (k = 100), and must have left once they pass it by a quarter.
    let (least, most) = (LIMIT / 64, (LIMIT + LIMIT / 4) / 64);
    assert!(
        (least..=most).contains(&last),
        "left the quarantine at free {last}, not in {least}..={most}: {err}"
    );
}
