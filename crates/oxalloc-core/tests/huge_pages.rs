//! `OXALLOC_HUGE_PAGES`: off by default; on, the segments and huge regions mapped from
//! then on carry the kernel's huge-page advice (`hg` in their smaps `VmFlags`), which
//! holds whether or not THP is enabled at the moment.
//!
//! Linux only: transparent huge pages and `/proc/self/smaps` (on Windows
//! `prefer_huge_pages` declines: large pages need a privilege).
#![cfg(target_os = "linux")]

use oxalloc_core::{api, options};

/// The `VmFlags` line of the mapping that holds `p`, from `/proc/self/smaps`.
fn vm_flags(p: *mut u8) -> String {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("read /proc/self/smaps");
    let addr = p as usize;
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((lo, hi)) = range.split_once('-') {
                if let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                {
                    inside = (lo..hi).contains(&addr);
                    continue;
                }
            }
        }
        if inside {
            if let Some(flags) = line.strip_prefix("VmFlags:") {
                return flags.to_string();
            }
        }
    }
    panic!("no mapping holds {p:p}");
}

fn advised(p: *mut u8) -> bool {
    vm_flags(p).split_whitespace().any(|f| f == "hg")
}

#[test]
fn huge_page_advice_only_when_asked() {
    if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
        eprintln!("skipped: this kernel has no transparent huge pages");
        return;
    }
    // Off by default: a small block's segment and a huge block's region.
    let small = api::malloc(64);
    let huge = api::malloc(3 << 20);
    assert!(!small.is_null() && !huge.is_null());
    assert!(!options::HUGE_PAGES.on());
    assert!(!advised(small), "segment advised by default");
    assert!(!advised(huge), "huge region advised by default");

    options::HUGE_PAGES.set(1);
    // Enough 512 KiB blocks to need a new segment (each holds under 4 MiB of them),
    // and a huge block bigger than the free room of the first region (256 MiB).
    let large: Vec<*mut u8> = (0..16).map(|_| api::malloc(512 << 10)).collect();
    let big = api::malloc(300 << 20);
    assert!(large.iter().all(|p| !p.is_null()) && !big.is_null());
    assert!(
        large.iter().any(|&p| advised(p)),
        "a segment mapped with OXALLOC_HUGE_PAGES=1 has no huge-page advice"
    );
    assert!(
        advised(big),
        "a huge region mapped with OXALLOC_HUGE_PAGES=1 has no advice"
    );
    options::HUGE_PAGES.set(0);
    // SAFETY: every pointer is a live block of ours, freed once.
    unsafe {
        for p in large.into_iter().chain([small, huge, big]) {
            api::free(p);
        }
    }
}
