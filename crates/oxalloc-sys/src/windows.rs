//! The Windows back-end of the platform layer: `VirtualAlloc`, `VirtualFree`,
//! `VirtualProtect` and a few kernel32 calls, through `windows-sys`.
//!
//! Same names, signatures and contracts as the Linux functions in `lib.rs`, with these
//! differences, which follow from how Windows manages address space:
//! * **Commit charge.** Windows does not overcommit: [`map`] reserves *and* commits,
//!   so the whole length counts against the commit limit at once (Linux's
//!   `MAP_NORESERVE` defers that to first touch). [`reserve`] only reserves.
//! * **Reservations are released whole.** `VirtualFree(MEM_RELEASE)` takes the base
//!   of a reservation and frees all of it; there is no partial `munmap`. [`unmap`]
//!   releases when given exactly one whole reservation and otherwise *decommits* the
//!   range (memory and commit charge go back, the address space stays reserved).
//! * **Alignment.** Reservations are aligned to the allocation granularity (64 KiB),
//!   so [`map_aligned`] with a larger alignment reserves an oversized range, releases
//!   it and reserves again at the aligned address inside it (retrying if another
//!   thread took it meanwhile), as mimalloc does without `VirtualAlloc2`.
//! * [`discard`] decommits and recommits, so the pages read back as zero as on Linux;
//!   `MEM_RESET` would be cheaper but leaves the contents undefined.
//! * [`resize_in_place`] always answers false (a second reservation next to the
//!   first could not be released with it).
//!
//! Not ported yet (the rest of `lib.rs`, needed before `oxalloc-core` builds here):
//! `env_var` (needs `GetEnvironmentVariableW` into a static buffer), `thread_key_*`
//! (`FlsAlloc` has the destructor callback), `atfork` (no fork: a no-op),
//! `spawn_detached` (`CreateThread` + `CloseHandle`), `peak_rss_bytes`
//! (`K32GetProcessMemoryInfo`), the file functions (`create_file`, `open_read`,
//! `read_fd`, `map_shared_file` over `CreateFileW`/`CreateFileMappingW`),
//! `lookup_symbol` (`GetProcAddress`), and `set_errno` (the CRT's `_set_errno`).

use crate::PAGE_SIZE;
use core::ffi::c_void;
use core::ptr::{self, NonNull};
use core::sync::atomic::AtomicU32;
use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::Storage::FileSystem::WriteFile;
use windows_sys::Win32::System::Console::{GetStdHandle, STD_ERROR_HANDLE, STD_OUTPUT_HANDLE};
use windows_sys::Win32::System::Memory::{
    VirtualAlloc, VirtualFree, VirtualProtect, VirtualQuery, MEMORY_BASIC_INFORMATION, MEM_COMMIT,
    MEM_DECOMMIT, MEM_RELEASE, MEM_RESERVE, PAGE_NOACCESS, PAGE_READWRITE,
};
use windows_sys::Win32::System::Performance::{QueryPerformanceCounter, QueryPerformanceFrequency};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetCurrentProcessId, GetCurrentThreadId, Sleep, SwitchToThread,
    TerminateProcess, WaitOnAddress, WakeByAddressSingle, INFINITE,
};

/// Address-space granularity of `VirtualAlloc` reservations on every Windows version.
const ALLOCATION_GRANULARITY: usize = 64 * 1024;

/// Reserves and commits `len` bytes of zeroed read-write memory, or `None`.
pub fn map(len: usize) -> Option<NonNull<u8>> {
    debug_assert!(len > 0 && len & (PAGE_SIZE - 1) == 0);
    // SAFETY: a null address lets the system choose; a fresh reservation touches no
    // existing memory.
    let p = unsafe { VirtualAlloc(ptr::null(), len, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE) };
    NonNull::new(p.cast())
}

/// Reserves `len` bytes of address space with no access and no commit charge; parts
/// become usable through [`protect`], which commits them.
pub fn reserve(len: usize) -> Option<NonNull<u8>> {
    debug_assert!(len > 0 && len & (PAGE_SIZE - 1) == 0);
    // SAFETY: as in `map`.
    let p = unsafe { VirtualAlloc(ptr::null(), len, MEM_RESERVE, PAGE_NOACCESS) };
    NonNull::new(p.cast())
}

/// Maps `len` bytes aligned to `align` (a power of two, at least a page).
pub fn map_aligned(len: usize, align: usize) -> Option<NonNull<u8>> {
    debug_assert!(align.is_power_of_two() && align >= PAGE_SIZE);
    if align <= ALLOCATION_GRANULARITY {
        return map(len);
    }
    let over = len.checked_add(align)?;
    for _ in 0..8 {
        // Find an aligned hole: reserve more than needed, note the aligned address
        // inside, give the reservation back, then claim exactly that range.
        // SAFETY: a fresh reservation at a system-chosen address.
        let probe = unsafe { VirtualAlloc(ptr::null(), over, MEM_RESERVE, PAGE_NOACCESS) };
        if probe.is_null() {
            return None;
        }
        let start = (probe as usize + align - 1) & !(align - 1);
        // SAFETY: `probe` is the base of the reservation made just above, unused.
        unsafe { VirtualFree(probe, 0, MEM_RELEASE) };
        // SAFETY: asking for a specific address either gets that free range or fails;
        // it never replaces memory someone else holds.
        let p = unsafe {
            VirtualAlloc(
                start as *const c_void,
                len,
                MEM_RESERVE | MEM_COMMIT,
                PAGE_READWRITE,
            )
        };
        if !p.is_null() {
            return NonNull::new(p.cast());
        }
        // Another thread took the range between the release and the claim: retry.
    }
    None
}

/// The reservation containing `p`: its base and total length.
fn reservation_of(p: *const c_void) -> Option<(*mut c_void, usize)> {
    // SAFETY: all-zero is a valid MEMORY_BASIC_INFORMATION; VirtualQuery fills it.
    let mut info: MEMORY_BASIC_INFORMATION = unsafe { core::mem::zeroed() };
    let size = core::mem::size_of::<MEMORY_BASIC_INFORMATION>();
    // SAFETY: `info` is a valid out-pointer of `size` bytes; querying any address is safe.
    if unsafe { VirtualQuery(p, &mut info, size) } == 0 {
        return None;
    }
    let base = info.AllocationBase;
    // Walk the regions (runs of pages with equal state) of this reservation.
    let mut end = base as usize;
    loop {
        // SAFETY: as above.
        if unsafe { VirtualQuery(end as *const c_void, &mut info, size) } == 0
            || info.AllocationBase != base
        {
            break;
        }
        end = info.BaseAddress as usize + info.RegionSize;
    }
    Some((base, end - base as usize))
}

/// Gives memory back: releases the reservation if `[ptr, ptr+len)` is exactly one whole
/// reservation, else decommits the range (address space stays reserved).
///
/// # Safety
/// `[ptr, ptr+len)` was mapped by [`map`]/[`map_aligned`]/[`reserve`] and holds no
/// live object.
pub unsafe fn unmap(ptr: *mut u8, len: usize) {
    let p = ptr.cast::<c_void>();
    match reservation_of(p) {
        Some((base, total)) if base == p && total == len => {
            // SAFETY: caller's contract; `p` is the base of a reservation of ours.
            unsafe { VirtualFree(p, 0, MEM_RELEASE) };
        }
        _ => {
            // SAFETY: caller's contract; decommitting keeps the range reserved.
            unsafe { VirtualFree(p, len, MEM_DECOMMIT) };
        }
    }
}

/// Large pages on Windows need a privilege and memory committed up front: not used.
///
/// # Safety
/// The range is page aligned and mapped by us.
pub unsafe fn prefer_huge_pages(_ptr: *mut u8, _len: usize) -> bool {
    false
}

/// Returns the physical pages to the system; the range stays usable and reads back
/// as zeroes (decommit, then commit again).
///
/// # Safety
/// The range is page aligned, mapped by us, and holds no live object.
pub unsafe fn discard(ptr: *mut u8, len: usize) -> bool {
    let p = ptr.cast::<c_void>();
    // SAFETY: caller's contract: nothing live in the range.
    if unsafe { VirtualFree(p, len, MEM_DECOMMIT) } == 0 {
        return false;
    }
    // SAFETY: the range is still reserved by us; committing it gives zero pages.
    !unsafe { VirtualAlloc(p, len, MEM_COMMIT, PAGE_READWRITE) }.is_null()
}

/// Turns a committed range back into a reservation: its pages are freed and any
/// access faults, until [`protect`] opens it again.
///
/// # Safety
/// The range is page aligned, mapped by us, and nothing in it is used again until it
/// is opened again (or released).
pub unsafe fn decommit(ptr: *mut u8, len: usize) -> bool {
    // SAFETY: caller's contract: nothing in the range is used any more.
    unsafe { VirtualFree(ptr.cast::<c_void>(), len, MEM_DECOMMIT) != 0 }
}

/// Makes a range inaccessible or read-write (committing it if it was only reserved).
///
/// # Safety
/// The range is page aligned and mapped by us; no live object in it is used while it
/// is inaccessible.
pub unsafe fn protect(ptr: *mut u8, len: usize, accessible: bool) -> bool {
    let p = ptr.cast::<c_void>();
    if accessible {
        // MEM_COMMIT on committed pages only sets the protection; on reserved pages
        // (from `reserve`) it commits them, which VirtualProtect alone cannot do.
        // SAFETY: caller's contract.
        return !unsafe { VirtualAlloc(p, len, MEM_COMMIT, PAGE_READWRITE) }.is_null();
    }
    let mut old = 0u32;
    // SAFETY: caller's contract; `old` is a valid out-pointer.
    unsafe { VirtualProtect(p, len, PAGE_NOACCESS, &mut old) != 0 }
}

/// Always false on Windows: a reservation cannot be extended (see the module header).
///
/// # Safety
/// Same contract as the Linux version; nothing is touched.
pub unsafe fn resize_in_place(_ptr: *mut u8, _old_len: usize, _new_len: usize) -> bool {
    false
}

/// Monotonic clock in nanoseconds (`QueryPerformanceCounter`).
pub fn now_ns() -> u64 {
    let (mut count, mut freq) = (0i64, 0i64);
    // SAFETY: valid out-pointers; both calls always succeed on XP and later.
    unsafe {
        QueryPerformanceCounter(&mut count);
        QueryPerformanceFrequency(&mut freq);
    }
    let (count, freq) = (count as u128, freq.max(1) as u128);
    (count * 1_000_000_000 / freq) as u64
}

/// 64 bits mixed from the clock, the thread and the process (not cryptographic; the
/// Linux version reads `getrandom`; here `BCryptGenRandom` is the follow-up).
pub fn random_u64() -> u64 {
    let mut x = now_ns() ^ ((thread_id() as u64) << 32) ^ process_id() as u64;
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The system's id of the calling thread.
pub fn thread_id() -> u32 {
    // SAFETY: no preconditions.
    unsafe { GetCurrentThreadId() }
}

/// The process id.
pub fn process_id() -> u32 {
    // SAFETY: no preconditions.
    unsafe { GetCurrentProcessId() }
}

fn write_handle(h: HANDLE, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let chunk = bytes.len().min(u32::MAX as usize) as u32;
        let mut written = 0u32;
        // SAFETY: `bytes` is valid for `chunk` bytes; a bad handle makes WriteFile fail.
        let ok = unsafe { WriteFile(h, bytes.as_ptr(), chunk, &mut written, ptr::null_mut()) };
        if ok == 0 || written == 0 {
            return;
        }
        bytes = &bytes[written as usize..];
    }
}

/// Writes all of `bytes` to "file descriptor" 1 (stdout) or 2 (stderr); other numbers
/// are ignored (Windows handles are not small integers).
pub fn write_fd(fd: i32, bytes: &[u8]) {
    let which = match fd {
        1 => STD_OUTPUT_HANDLE,
        2 => STD_ERROR_HANDLE,
        _ => return,
    };
    // SAFETY: no preconditions; may return null or INVALID_HANDLE_VALUE, which makes
    // WriteFile fail harmlessly.
    let h = unsafe { GetStdHandle(which) };
    write_handle(h, bytes);
}

/// Writes to standard error.
pub fn write_stderr(bytes: &[u8]) {
    write_fd(2, bytes);
}

/// Sleeps until `word` no longer holds `expected` (or a spurious wake-up).
pub fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: both pointers are valid for 4 bytes for the duration of the call.
    unsafe {
        WaitOnAddress(
            word.as_ptr().cast::<c_void>(),
            (&expected as *const u32).cast::<c_void>(),
            4,
            INFINITE,
        )
    };
}

/// Wakes one thread sleeping on `word`.
pub fn futex_wake_one(word: &AtomicU32) {
    // SAFETY: the address is only used as a key.
    unsafe { WakeByAddressSingle(word.as_ptr().cast::<c_void>()) };
}

/// Sleeps for `ms` milliseconds.
pub fn sleep_ms(ms: u64) {
    // SAFETY: no preconditions.
    unsafe { Sleep(ms.min(u32::MAX as u64 - 1) as u32) };
}

/// Gives the rest of the time slice to another thread.
pub fn yield_now() {
    // SAFETY: no preconditions.
    unsafe { SwitchToThread() };
}

/// Ends the process at once with the status `abort()` uses on Windows (3), without
/// running exit handlers or DLL detach callbacks.
pub fn abort() -> ! {
    // SAFETY: no preconditions; terminating the current process does not return.
    unsafe { TerminateProcess(GetCurrentProcess(), 3) };
    #[allow(clippy::empty_loop)]
    loop {}
}
