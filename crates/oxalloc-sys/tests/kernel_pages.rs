//! The memory calls never reach past the range they are given, whatever the kernel's
//! page size: `madvise` and `mprotect` widen a range to whole kernel pages, so on a
//! 16 or 64 KiB-page kernel a 4 KiB range would take its neighbours with it.
//! `scripts/test.sh` also runs this under qemu-user told the pages are 64 KiB.
#![cfg(target_os = "linux")]

use oxalloc_sys::{discard, kernel_page_size, map_aligned, protect, unmap, PAGE_SIZE};

const FILL: u8 = 0xAB;

/// Two kernel pages (at least 64 KiB each way), aligned to a kernel page, filled.
fn filled_region() -> (*mut u8, usize) {
    let page = kernel_page_size().max(64 << 10);
    let len = 2 * page;
    let p = map_aligned(len, page).expect("map").as_ptr();
    // SAFETY: a fresh mapping of `len` bytes.
    unsafe { p.write_bytes(FILL, len) };
    (p, len)
}

/// Checks `[p, p+len)`: zero in `zero`, FILL elsewhere.
fn expect(p: *mut u8, len: usize, zero: std::ops::Range<usize>, what: &str) {
    // SAFETY: the region is mapped and readable.
    let bytes = unsafe { std::slice::from_raw_parts(p, len) };
    for (i, &b) in bytes.iter().enumerate() {
        let want = if zero.contains(&i) { 0 } else { FILL };
        assert_eq!(b, want, "{what}: byte {i:#x} is {b:#x}, want {want:#x}");
    }
}

#[test]
fn discard_zeroes_its_range_and_keeps_the_rest_of_the_kernel_page() {
    let page = kernel_page_size();
    assert!(page.is_power_of_two() && page >= PAGE_SIZE);
    // One 4 KiB page at the start of a kernel page, one inside it, and a range with
    // parts of pages at both ends (not even 4 KiB aligned: the hand-zeroing path on
    // any kernel).
    for (off, n) in [
        (0, PAGE_SIZE),
        (PAGE_SIZE, PAGE_SIZE),
        (100, 3 * PAGE_SIZE + 28),
    ] {
        let (p, len) = filled_region();
        // SAFETY: inside our mapping; nothing live in it.
        unsafe { discard(p.add(off), n) };
        expect(p, len, off..off + n, &format!("discard({off:#x}, {n:#x})"));
        // SAFETY: the whole mapping.
        unsafe { unmap(p, len) };
    }
    // Whole kernel pages: given back to the kernel, read back as zeroes.
    let (p, len) = filled_region();
    // SAFETY: as above.
    assert!(unsafe { discard(p, page) });
    expect(p, len, 0..page, "discard of one whole kernel page");
    // SAFETY: the whole mapping.
    unsafe { unmap(p, len) };
}

#[test]
fn protect_changes_whole_kernel_pages_only() {
    let page = kernel_page_size();
    let (p, len) = filled_region();
    // SAFETY: our mapping; nothing in it is used while protected.
    let done = unsafe { protect(p, PAGE_SIZE, false) };
    assert_eq!(
        done,
        page == PAGE_SIZE,
        "protect of 4 KiB with {page}-byte kernel pages"
    );
    if done {
        // SAFETY: as above.
        assert!(unsafe { protect(p, PAGE_SIZE, true) });
    }
    // The rest of the kernel page stays readable and intact.
    expect(p, len, 0..0, "after protect");
    // SAFETY: whole kernel pages of our mapping.
    assert!(unsafe { protect(p, page, false) && protect(p, page, true) });
    // SAFETY: the whole mapping.
    unsafe { unmap(p, len) };
}
