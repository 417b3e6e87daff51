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
//! The rest of the interface, Windows style:
//! * [`env_var`] copies the value with `GetEnvironmentVariableA` into a static arena
//!   (no heap; each distinct lookup keeps its bytes for the life of the process).
//! * [`thread_key_create`]/[`thread_key_set`] are fiber-local storage (`FlsAlloc`),
//!   whose callback runs when a thread exits, like a `pthread` key destructor.
//! * [`atfork`] does nothing (there is no fork); [`brk`] always refuses, so
//!   `OXALLOC_PAGE_SOURCE=brk` falls back to `VirtualAlloc`.
//! * [`spawn_detached`] is `CreateThread` + `CloseHandle`.
//! * [`peak_rss_bytes`] is the peak working set (`K32GetProcessMemoryInfo`).
//! * The "file descriptors" of [`create_file`]/[`open_read`] are kernel handles, which
//!   fit in 32 bits on 64-bit Windows; 1 and 2 name stdout and stderr in [`write_fd`].
//! * `errno` is the CRT's (`_errno()`); [`write_stream`] is the CRT's `fwrite`.
//! * [`address_kind`] classifies foreign pointers with `VirtualQuery` (the Linux core
//!   reads `/proc/self/maps`).

use crate::{AddressKind, PAGE_SIZE};
use core::cell::UnsafeCell;
use core::ffi::{c_void, CStr};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use windows_sys::Win32::Foundation::{
    CloseHandle, GENERIC_READ, GENERIC_WRITE, HANDLE, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileA, ReadFile, WriteFile, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, FILE_SHARE_READ,
    FILE_SHARE_WRITE, OPEN_EXISTING,
};
use windows_sys::Win32::System::Console::{GetStdHandle, STD_ERROR_HANDLE, STD_OUTPUT_HANDLE};
use windows_sys::Win32::System::Environment::GetEnvironmentVariableA;
use windows_sys::Win32::System::Memory::{
    CreateFileMappingA, MapViewOfFile, FILE_MAP_WRITE, MEM_IMAGE, PAGE_READWRITE as PAGE_RW,
};
use windows_sys::Win32::System::Memory::{
    VirtualAlloc, VirtualFree, VirtualProtect, VirtualQuery, MEMORY_BASIC_INFORMATION, MEM_COMMIT,
    MEM_DECOMMIT, MEM_RELEASE, MEM_RESERVE, PAGE_NOACCESS, PAGE_READWRITE,
};
use windows_sys::Win32::System::Performance::{QueryPerformanceCounter, QueryPerformanceFrequency};
use windows_sys::Win32::System::ProcessStatus::{K32GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS};
use windows_sys::Win32::System::Threading::{
    CreateThread, FlsAlloc, FlsSetValue, FLS_OUT_OF_INDEXES,
};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetCurrentProcessId, GetCurrentThreadId, Sleep, SwitchToThread,
    TerminateProcess, WaitOnAddress, WakeByAddressSingle, INFINITE,
};

/// The page size: 4 KiB on x64 and arm64 Windows (`VirtualAlloc`'s 64 KiB is its
/// allocation granularity, not a page).
pub fn kernel_page_size() -> usize {
    PAGE_SIZE
}

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
///
/// First a plain [`map`]: its failure means the commit limit is reached (answered at
/// once, where probing for an aligned hole would reserve the whole size several times,
/// seconds under wine for the 32 TiB requests of the tests), and it is sometimes aligned
/// already. Otherwise: probe for an aligned hole, reserve exactly there (retried if
/// another thread took it meanwhile), then commit (a failure there is out of memory).
pub fn map_aligned(len: usize, align: usize) -> Option<NonNull<u8>> {
    debug_assert!(align.is_power_of_two() && align >= PAGE_SIZE);
    let first = map(len)?;
    if align <= ALLOCATION_GRANULARITY || first.as_ptr() as usize & (align - 1) == 0 {
        return Some(first);
    }
    // SAFETY: `first` is the base of the reservation made just above, unused.
    unsafe { VirtualFree(first.as_ptr().cast(), 0, MEM_RELEASE) };
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
        let p = unsafe { VirtualAlloc(start as *const c_void, len, MEM_RESERVE, PAGE_NOACCESS) };
        if p.is_null() {
            continue; // another thread took the range between the release and the claim
        }
        // SAFETY: `p` is our reservation of `len` bytes; committing gives zero pages.
        if !unsafe { VirtualAlloc(p, len, MEM_COMMIT, PAGE_READWRITE) }.is_null() {
            return NonNull::new(p.cast());
        }
        // SAFETY: `p` is the base of our reservation, holding nothing.
        unsafe { VirtualFree(p, 0, MEM_RELEASE) };
        return None;
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

/// Writes all of `bytes` to "file descriptor" 1 (stdout), 2 (stderr), or a handle of
/// [`create_file`] (by its [`AsRawFd::as_raw_fd`] number; real handles are multiples of
/// 4, so they never read as 1 or 2). Errors are dropped.
pub fn write_fd(fd: i32, bytes: &[u8]) {
    let which = match fd {
        1 => STD_OUTPUT_HANDLE,
        2 => STD_ERROR_HANDLE,
        _ => return write_handle(handle_of(fd), bytes),
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

/// The handle behind an [`AsRawFd::as_raw_fd`] number.
fn handle_of(fd: i32) -> HANDLE {
    // Kernel handles have 32 significant bits and are sign-extended (documented for
    // 64-bit Windows), which is what `as isize` does.
    fd as isize as HANDLE
}

/// An open file handle, closed on drop (the Windows side of Linux's `OwnedFd`).
pub struct OwnedFd(HANDLE);

impl Drop for OwnedFd {
    fn drop(&mut self) {
        // SAFETY: the handle was opened by us and is closed exactly once.
        unsafe { CloseHandle(self.0) };
    }
}

/// The number the other functions here accept for an [`OwnedFd`].
pub trait AsRawFd {
    /// The handle as a 32-bit number (see [`write_fd`]).
    fn as_raw_fd(&self) -> i32;
}

impl AsRawFd for OwnedFd {
    fn as_raw_fd(&self) -> i32 {
        self.0 as isize as i32
    }
}

fn open_with(path: &CStr, access: u32, disposition: u32) -> Option<HANDLE> {
    // SAFETY: `path` is NUL-terminated; null security attributes and template are allowed.
    let h = unsafe {
        CreateFileA(
            path.as_ptr().cast(),
            access,
            FILE_SHARE_READ | FILE_SHARE_WRITE,
            ptr::null(),
            disposition,
            FILE_ATTRIBUTE_NORMAL,
            ptr::null_mut(),
        )
    };
    (h != INVALID_HANDLE_VALUE && !h.is_null()).then_some(h)
}

/// Creates (or truncates) a file for writing.
pub fn create_file(path: &CStr) -> Option<OwnedFd> {
    open_with(path, GENERIC_WRITE, CREATE_ALWAYS).map(OwnedFd)
}

/// Opens a file read-only.
pub fn open_read(path: &CStr) -> Option<OwnedFd> {
    open_with(path, GENERIC_READ, OPEN_EXISTING).map(OwnedFd)
}

/// Reads into `buf` from a handle of [`open_read`]; the byte count, 0 at end or on error.
pub fn read_fd(fd: i32, buf: &mut [u8]) -> usize {
    let want = buf.len().min(u32::MAX as usize) as u32;
    let mut got = 0u32;
    // SAFETY: `buf` is valid for `want` bytes; a bad handle makes ReadFile fail.
    let ok = unsafe {
        ReadFile(
            handle_of(fd),
            buf.as_mut_ptr(),
            want,
            &mut got,
            ptr::null_mut(),
        )
    };
    if ok == 0 {
        0
    } else {
        got as usize
    }
}

/// Creates (or truncates) a file of `len` bytes and maps it shared and writable
/// (`CreateFileMappingA` + `MapViewOfFile`). The handles are closed again; the view
/// keeps the file alive.
pub fn map_shared_file(path: &CStr, len: usize) -> Option<NonNull<u8>> {
    let file = OwnedFd(open_with(
        path,
        GENERIC_READ | GENERIC_WRITE,
        CREATE_ALWAYS,
    )?);
    let size = len as u64;
    // SAFETY: `file.0` is an open handle; the mapping object extends the file to `len`.
    let mapping = unsafe {
        CreateFileMappingA(
            file.0,
            ptr::null(),
            PAGE_RW,
            (size >> 32) as u32,
            size as u32,
            ptr::null(),
        )
    };
    if mapping.is_null() {
        return None;
    }
    // SAFETY: `mapping` is the section just made, `len` bytes long.
    let view = unsafe { MapViewOfFile(mapping, FILE_MAP_WRITE, 0, 0, len) };
    // SAFETY: the view holds its own reference to the section.
    unsafe { CloseHandle(mapping) };
    NonNull::new(view.Value.cast())
}

/// Peak working set of this process in bytes.
pub fn peak_rss_bytes() -> u64 {
    // SAFETY: all-zero is a valid PROCESS_MEMORY_COUNTERS; the call fills it.
    let mut c: PROCESS_MEMORY_COUNTERS = unsafe { core::mem::zeroed() };
    let size = core::mem::size_of::<PROCESS_MEMORY_COUNTERS>() as u32;
    c.cb = size;
    // SAFETY: `c` is a valid out-pointer of `size` bytes.
    if unsafe { K32GetProcessMemoryInfo(GetCurrentProcess(), &mut c, size) } == 0 {
        return 0;
    }
    c.PeakWorkingSetSize as u64
}

/// There is no program break on Windows: always answers 0 ("no break"), which makes
/// the `brk` page source fall back to `VirtualAlloc`.
pub fn brk(_addr: usize) -> usize {
    0
}

/// There is no `fork` on Windows: nothing to register.
pub fn atfork(
    _prepare: extern "C" fn(),
    _parent: extern "C" fn(),
    _child: extern "C" fn(),
) -> bool {
    true
}

extern "C" {
    /// The CRT's per-thread `errno` (msvcrt and the UCRT both export it).
    fn _errno() -> *mut i32;
    fn fwrite(ptr: *const c_void, size: usize, count: usize, stream: *mut c_void) -> usize;
}

/// The calling thread's (CRT) `errno`.
pub fn errno() -> i32 {
    // SAFETY: `_errno` returns a valid pointer to this thread's errno.
    unsafe { *_errno() }
}

/// Sets the calling thread's (CRT) `errno`.
pub fn set_errno(code: i32) {
    // SAFETY: `_errno` returns a valid pointer to this thread's errno.
    unsafe { *_errno() = code };
}

/// `ENOMEM`, for the C layer (the CRT's value).
pub const ENOMEM: i32 = 12;
/// `EINVAL`, for the C layer (the CRT's value).
pub const EINVAL: i32 = 22;

/// Writes `bytes` to a C stdio stream (`FILE *`); false on a short write.
///
/// # Safety
/// `stream` is a valid `FILE *` of this CRT, open for writing.
pub unsafe fn write_stream(stream: *mut c_void, bytes: &[u8]) -> bool {
    // SAFETY: caller's contract; `bytes` is valid for its length.
    unsafe { fwrite(bytes.as_ptr().cast(), 1, bytes.len(), stream) == bytes.len() }
}

/// Bytes kept for environment values (options are few and short).
const ENV_ARENA: usize = 8192;

struct EnvArena(UnsafeCell<[u8; ENV_ARENA]>);
// SAFETY: each byte range is handed out once (through `ENV_USED`), written by the
// thread that claimed it before its slice is returned, and never written again.
unsafe impl Sync for EnvArena {}

static ENV_BYTES: EnvArena = EnvArena(UnsafeCell::new([0; ENV_ARENA]));
static ENV_USED: AtomicUsize = AtomicUsize::new(0);

/// Looks up an environment variable without the heap: `GetEnvironmentVariableA` copies
/// the value into a static arena, so the slice lives for the whole program (a later
/// change of the variable is not seen by an earlier lookup). `None` if unset, if the
/// name is too long, or when the arena is full.
pub fn env_var(name: &[u8]) -> Option<&'static [u8]> {
    let mut cname = [0u8; 128];
    if name.len() >= cname.len() || name.contains(&0) {
        return None;
    }
    cname[..name.len()].copy_from_slice(name);
    // SAFETY: `cname` is NUL-terminated; a null buffer of size 0 asks for the length.
    let need = unsafe { GetEnvironmentVariableA(cname.as_ptr(), ptr::null_mut(), 0) } as usize;
    if need == 0 {
        return None;
    }
    let start = ENV_USED.fetch_add(need, Ordering::Relaxed);
    if start.checked_add(need).is_none_or(|end| end > ENV_ARENA) {
        return None;
    }
    // SAFETY: `[start, start+need)` lies inside the arena and was claimed by us alone.
    let buf = unsafe { ENV_BYTES.0.get().cast::<u8>().add(start) };
    // SAFETY: `buf` is valid for `need` bytes; the call writes at most that many.
    let n = unsafe { GetEnvironmentVariableA(cname.as_ptr(), buf, need as u32) } as usize;
    if n == 0 || n >= need {
        return None; // unset meanwhile, or grew past the space we claimed
    }
    // SAFETY: the call wrote `n` bytes there, and the range is never written again.
    Some(unsafe { core::slice::from_raw_parts(buf, n) })
}

/// Thread-exit callbacks: FLS callbacks are `extern "system"` and get only the value,
/// so each key gets its own trampoline that calls the destructor stored for it.
const MAX_KEYS: usize = 4;
static KEY_DTORS: [AtomicUsize; MAX_KEYS] = [const { AtomicUsize::new(0) }; MAX_KEYS];
static KEYS_USED: AtomicUsize = AtomicUsize::new(0);

unsafe extern "system" fn fls_callback<const N: usize>(value: *const c_void) {
    let d = KEY_DTORS[N].load(Ordering::Acquire);
    if d == 0 || value.is_null() {
        return;
    }
    // SAFETY: slot N holds the destructor given to `thread_key_create`, stored before
    // the key could be set.
    let dtor = unsafe { core::mem::transmute::<usize, unsafe extern "C" fn(*mut c_void)>(d) };
    // SAFETY: the value is what `thread_key_set` stored, which the destructor expects.
    unsafe { dtor(value.cast_mut()) };
}

const FLS_CALLBACKS: [unsafe extern "system" fn(*const c_void); MAX_KEYS] = [
    fls_callback::<0>,
    fls_callback::<1>,
    fls_callback::<2>,
    fls_callback::<3>,
];

/// A fiber-local storage key whose callback runs `dtor` when a thread exits (also when
/// a fiber is deleted; oxalloc uses one key). At most 4 keys per process.
pub fn thread_key_create(dtor: unsafe extern "C" fn(*mut c_void)) -> Option<u32> {
    let n = KEYS_USED.fetch_add(1, Ordering::Relaxed);
    if n >= MAX_KEYS {
        return None;
    }
    KEY_DTORS[n].store(dtor as usize, Ordering::Release);
    // SAFETY: the callback is a plain function that lives for the whole program.
    let key = unsafe { FlsAlloc(Some(FLS_CALLBACKS[n])) };
    (key != FLS_OUT_OF_INDEXES).then_some(key)
}

/// Attaches `value` to `key` for the calling thread, so the key's callback sees it.
///
/// # Safety
/// `value` is what the key's destructor expects to receive at thread exit.
pub unsafe fn thread_key_set(key: u32, value: *mut c_void) -> bool {
    // SAFETY: `key` came from `thread_key_create`.
    unsafe { FlsSetValue(key, value) != 0 }
}

/// Threads being started: `CreateThread` wants an `extern "system"` function returning
/// `u32`, so the C-style entry and its argument wait here for the new thread.
const SPAWN_SLOTS: usize = 4;
static SPAWN_FN: [AtomicUsize; SPAWN_SLOTS] = [const { AtomicUsize::new(0) }; SPAWN_SLOTS];
static SPAWN_ARG: [AtomicUsize; SPAWN_SLOTS] = [const { AtomicUsize::new(0) }; SPAWN_SLOTS];

unsafe extern "system" fn spawn_entry(slot: *mut c_void) -> u32 {
    let i = slot as usize;
    let arg = SPAWN_ARG[i].load(Ordering::Relaxed) as *mut c_void;
    let f = SPAWN_FN[i].swap(0, Ordering::AcqRel);
    // SAFETY: `spawn_detached` stored a function of this type in slot `i` (non-zero
    // while the slot is claimed) before it started this thread.
    let f = unsafe { core::mem::transmute::<usize, extern "C" fn(*mut c_void) -> *mut c_void>(f) };
    f(arg);
    0
}

/// Starts a detached thread running `f(arg)`. Returns false if the system refuses.
///
/// # Safety
/// `arg` is valid for whatever `f` does with it, for as long as the thread runs.
pub unsafe fn spawn_detached(
    f: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
) -> bool {
    let Some(i) = (0..SPAWN_SLOTS).find(|&i| {
        SPAWN_FN[i]
            .compare_exchange(0, usize::MAX, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }) else {
        return false;
    };
    SPAWN_ARG[i].store(arg as usize, Ordering::Relaxed);
    SPAWN_FN[i].store(f as usize, Ordering::Release);
    // SAFETY: default attributes and stack size; the entry is a plain function that
    // reads slot `i`, which stays claimed until it does.
    let h = unsafe {
        CreateThread(
            ptr::null(),
            0,
            Some(spawn_entry),
            i as *mut c_void,
            0,
            ptr::null_mut(),
        )
    };
    if h.is_null() {
        SPAWN_FN[i].store(0, Ordering::Release);
        return false;
    }
    // SAFETY: the handle was just returned to us; closing it detaches the thread.
    unsafe { CloseHandle(h) };
    true
}

/// Classifies `p` (for misuse reports): `stack_addr` is an address on the calling
/// thread's stack.
pub fn address_kind(p: usize, stack_addr: usize) -> AddressKind {
    let query = |a: usize| {
        // SAFETY: all-zero is a valid MEMORY_BASIC_INFORMATION.
        let mut info: MEMORY_BASIC_INFORMATION = unsafe { core::mem::zeroed() };
        let size = core::mem::size_of::<MEMORY_BASIC_INFORMATION>();
        // SAFETY: `info` is a valid out-pointer of `size` bytes; any address may be asked.
        let ok = unsafe { VirtualQuery(a as *const c_void, &mut info, size) } != 0;
        ok.then_some(info)
    };
    let Some(info) = query(p) else {
        return AddressKind::Unmapped;
    };
    if info.State != MEM_COMMIT {
        return AddressKind::Unmapped;
    }
    if info.Type == MEM_IMAGE {
        return AddressKind::Image;
    }
    match query(stack_addr) {
        Some(s) if s.AllocationBase == info.AllocationBase => AddressKind::Stack,
        _ => AddressKind::Other,
    }
}
