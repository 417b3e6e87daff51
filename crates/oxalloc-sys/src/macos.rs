//! The macOS back-end of the platform layer (`aarch64-apple-darwin`,
//! `x86_64-apple-darwin`): `mmap`/`munmap`/`mprotect` and a few libSystem calls, through
//! the `libc` crate.
//!
//! **Status: type-checked and compiled, never run.** Nothing can be linked for macOS on
//! the project's Linux machines (no SDK), so CI only compiles this module (the core,
//! facade and typed crates as libraries, warnings denied, see `scripts/test.sh`); no
//! test of the allocator has run on a Mac.
//!
//! Same names, signatures and contracts as the Linux functions in `lib.rs`, with these
//! differences:
//! * **Page size.** The kernel's page is 16 KiB on Apple silicon (4 KiB on Intel Macs
//!   and under Rosetta 2), while [`PAGE_SIZE`] stays the 4 KiB the allocator plans with.
//!   The core's purges and guards are whole 64 KiB slices, so they line up either way;
//!   for other ranges: [`map`] and [`unmap`] cover whole kernel pages (as `mmap` and
//!   `munmap` do), [`map_aligned`] trims its over-allocation at kernel pages, [`discard`]
//!   zeroes by hand the parts of kernel pages at its ends, and [`protect`]/[`decommit`]
//!   refuse (answer false) a range that is not whole kernel pages, rather than change
//!   the protection of a neighbour.
//! * **Purging.** [`discard`] maps fresh anonymous pages over the range (`mmap` with
//!   `MAP_FIXED`), not `madvise`. The core counts on a purged range reading back as
//!   zero (`calloc` skips its `memset` there; huge runs remember that they are zero),
//!   and no `madvise` advice gives that on XNU: `MADV_DONTNEED` keeps the contents,
//!   `MADV_FREE` and `MADV_FREE_REUSABLE` leave them undefined. mimalloc resets with
//!   `MADV_FREE_REUSABLE` (and `MADV_FREE_REUSE` before reuse, for the accounting)
//!   because it tracks which pages are zero itself; jemalloc's forced purge on systems
//!   whose `MADV_DONTNEED` does not zero is the same `MAP_FIXED` overlay as here. The
//!   old pages leave the process at once, so its footprint (what Activity Monitor and
//!   the memory-pressure killer read) drops at once too, and nothing has to be told when
//!   the range is used again. Not measured: the cost against `MADV_FREE_REUSABLE`.
//! * **No `mremap`.** [`resize_in_place`] always answers false (nothing in the core,
//!   the facade or the typed crate calls it today; a caller would copy instead).
//! * **No program break.** `brk`/`sbrk` are deprecated on macOS (libSystem only
//!   emulates them inside one small region), so [`brk`] always answers 0 ("no break")
//!   as on Windows, and `OXALLOC_PAGE_SOURCE=brk` falls back to `mmap`.
//! * **Huge pages.** There is no transparent huge page advice for an existing range:
//!   [`prefer_huge_pages`] answers false.
//! * **Futex.** `__ulock_wait`/`__ulock_wake` (see [`futex_wait`] for why).
//! * [`env_var`] is `getenv` (a pointer into the environment, no copy, no heap);
//!   `errno` is `__error()`; [`peak_rss_bytes`] is `getrusage`, whose `ru_maxrss` is in
//!   bytes on macOS (KiB on Linux); [`thread_id`] is `pthread_threadid_np`, cut to 32
//!   bits (it is only printed); [`now_ns`] is `CLOCK_UPTIME_RAW`, which, like Linux's
//!   `CLOCK_MONOTONIC`, stops while the machine sleeps (Rust's `Instant` reads it too).
//! * Thread exit: a `pthread` key destructor, as on Linux. The core's thread slot is its
//!   portable `thread_local!` (const-initialised, no destructor), not the initial-exec
//!   word of Linux. dyld creates each thread's thread-local block on first use with the
//!   *system* `malloc`, which the `#[global_allocator]` facade does not replace, so
//!   nothing recurses; a C `malloc` replacement on macOS would need another slot. dyld
//!   frees that block from a key destructor of its own; if it runs before the core's,
//!   the core's exit hook only makes dyld create the block again. Untested.
//! * [`address_kind`] classifies foreign pointers with `mach_vm_region` and `dladdr`
//!   (there is no `/proc/self/maps`).
//! * [`at_exit`] is `atexit(3)`: Mach-O has no `.fini_array` and dyld no longer runs
//!   `__mod_term_func`, so the core registers its exit hook from an initializer.

use crate::{AddressKind, PAGE_SIZE};
use core::ffi::{c_char, c_int, c_void, CStr};
use core::ptr::{self, NonNull};
use core::sync::atomic::AtomicU32;

/// The kernel's page: 16 KiB on Apple silicon; 4 KiB on Intel Macs, and for x86-64
/// processes under Rosetta 2, which get a 4 KiB address space of their own.
#[cfg(target_arch = "aarch64")]
const OS_PAGE: usize = 16 * 1024;
/// The kernel's page: 16 KiB on Apple silicon; 4 KiB on Intel Macs, and for x86-64
/// processes under Rosetta 2, which get a 4 KiB address space of their own.
#[cfg(not(target_arch = "aarch64"))]
const OS_PAGE: usize = 4096;

/// The kernel's page size (see [`OS_PAGE`]).
pub fn kernel_page_size() -> usize {
    OS_PAGE
}

const fn round_up(x: usize, to: usize) -> usize {
    (x + to - 1) & !(to - 1)
}

/// An anonymous private mapping at `addr` (a hint, or the exact place with
/// `MAP_FIXED` in `extra`), or `None`.
///
/// # Safety
/// With `MAP_FIXED`, `[addr, addr+len)` is ours and holds nothing still in use.
unsafe fn mmap_anon(addr: *mut u8, len: usize, prot: c_int, extra: c_int) -> Option<NonNull<u8>> {
    // SAFETY: caller's contract; an anonymous mapping has no other preconditions.
    // `MAP_NORESERVE` is not needed: XNU never reserves swap for anonymous memory.
    let p = unsafe {
        libc::mmap(
            addr.cast(),
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANON | extra,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    NonNull::new(p.cast())
}

/// Maps `len` bytes of fresh, zeroed, read-write memory, or `None` when the kernel
/// refuses. Whole kernel pages are mapped (the length is rounded up to one).
pub fn map(len: usize) -> Option<NonNull<u8>> {
    debug_assert!(len > 0 && len.is_multiple_of(PAGE_SIZE));
    // SAFETY: a null hint lets the kernel choose the address; nothing is replaced.
    unsafe { mmap_anon(ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, 0) }
}

/// Reserves `len` bytes of address space with no access (`PROT_NONE`); parts become
/// usable through [`protect`].
pub fn reserve(len: usize) -> Option<NonNull<u8>> {
    debug_assert!(len > 0 && len.is_multiple_of(PAGE_SIZE));
    // SAFETY: as in `map`.
    unsafe { mmap_anon(ptr::null_mut(), len, libc::PROT_NONE, 0) }
}

/// Maps `len` bytes aligned to `align` (a power of two, at least [`PAGE_SIZE`]).
///
/// Maps `len + align` and unmaps what lies before the aligned start and after the
/// kernel page that holds the end (both cuts fall on kernel pages).
pub fn map_aligned(len: usize, align: usize) -> Option<NonNull<u8>> {
    debug_assert!(align.is_power_of_two() && align >= PAGE_SIZE);
    if align <= OS_PAGE {
        return map(len); // every mapping starts on a kernel page
    }
    let over = len.checked_add(align)?;
    let base = map(over)?.as_ptr() as usize;
    let mapped_end = base + round_up(over, OS_PAGE);
    let start = round_up(base, align);
    let end = round_up(start + len, OS_PAGE);
    // SAFETY: both ranges lie inside the mapping made just above, hold nothing yet, and
    // start and end on kernel pages (`base` and `start` are page aligned, `align` is a
    // multiple of the page).
    unsafe {
        if start > base {
            unmap(base as *mut u8, start - base);
        }
        if mapped_end > end {
            unmap(end as *mut u8, mapped_end - end);
        }
    }
    NonNull::new(start as *mut u8)
}

/// Gives a mapping back to the kernel. A length that ends inside a kernel page covers
/// the rest of that page, as `munmap` itself does.
///
/// # Safety
/// `[ptr, ptr+len)` was mapped by [`map`]/[`map_aligned`]/[`reserve`] (rounded up to a
/// kernel page, it is still ours) and holds no live object.
pub unsafe fn unmap(ptr: *mut u8, len: usize) {
    // SAFETY: caller's contract. A failure (EINVAL on a bad range) leaks address space
    // but cannot corrupt memory, so it is ignored.
    let _ = unsafe { libc::munmap(ptr.cast(), round_up(len, OS_PAGE)) };
}

/// Returns the physical pages behind the range to the kernel; the range stays mapped
/// and reads back as zeroes: fresh anonymous pages are mapped over the whole kernel
/// pages inside it (see the module header for why not `madvise`), and the parts of
/// kernel pages at its ends are zeroed by hand. If the kernel refuses the mapping, the
/// range is zeroed by hand too (so it still reads as zero) and the answer is false.
///
/// # Safety
/// The range is page aligned, mapped by us, and holds no live object.
pub unsafe fn discard(ptr: *mut u8, len: usize) -> bool {
    // SAFETY: caller's contract.
    let Some((inner, inner_len)) = (unsafe { crate::zero_page_ends(ptr, len, OS_PAGE) }) else {
        return true;
    };
    // SAFETY: the inner range is ours and holds nothing live, so MAP_FIXED replaces only
    // our own unused pages.
    let fresh = unsafe {
        mmap_anon(
            inner,
            inner_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_FIXED,
        )
    };
    if fresh.is_some_and(|q| q.as_ptr() == inner) {
        return true;
    }
    // SAFETY: as above; a failed MAP_FIXED leaves the old pages in place.
    unsafe { ptr::write_bytes(inner, 0, inner_len) };
    false
}

/// No transparent huge pages to ask for on macOS: always false.
///
/// # Safety
/// The range is page aligned and mapped by us.
pub unsafe fn prefer_huge_pages(_ptr: *mut u8, _len: usize) -> bool {
    false
}

/// Whether `[ptr, ptr+len)` is made of whole kernel pages.
fn whole_kernel_pages(ptr: *mut u8, len: usize) -> bool {
    (ptr as usize | len) & (OS_PAGE - 1) == 0
}

/// Makes a range inaccessible (`PROT_NONE`) or read-write again. False (nothing
/// changed) for a range that is not whole kernel pages: XNU would widen it to whole
/// pages and change the protection of its neighbours too.
///
/// # Safety
/// The range is page aligned and mapped by us; no live object in it is used while it
/// is inaccessible.
pub unsafe fn protect(ptr: *mut u8, len: usize, accessible: bool) -> bool {
    if !whole_kernel_pages(ptr, len) {
        return false;
    }
    let prot = if accessible {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_NONE
    };
    // SAFETY: caller's contract.
    unsafe { libc::mprotect(ptr.cast(), len, prot) == 0 }
}

/// Turns a mapped range back into a reservation in one call (`mmap` with `MAP_FIXED`
/// and `PROT_NONE` over it): its pages are freed and any access faults. False for a
/// range that is not whole kernel pages (see [`protect`]).
///
/// # Safety
/// The range is page aligned, mapped by us, and nothing in it is used again until it
/// is opened with [`protect`] (or unmapped).
pub unsafe fn decommit(ptr: *mut u8, len: usize) -> bool {
    if !whole_kernel_pages(ptr, len) {
        return false;
    }
    // SAFETY: caller's contract: the range is ours, so MAP_FIXED replaces only our own
    // pages, which hold nothing still in use.
    let p = unsafe { mmap_anon(ptr, len, libc::PROT_NONE, libc::MAP_FIXED) };
    p.is_some_and(|q| q.as_ptr() == ptr)
}

/// Always false: macOS has no `mremap` (see the module header).
///
/// # Safety
/// Same contract as the Linux version; nothing is touched.
pub unsafe fn resize_in_place(_ptr: *mut u8, _old_len: usize, _new_len: usize) -> bool {
    false
}

/// There is no usable program break on macOS: always answers 0 ("no break"), which
/// makes the `brk` page source fall back to `mmap`.
pub fn brk(_addr: usize) -> usize {
    0
}

/// Monotonic clock in nanoseconds (`CLOCK_UPTIME_RAW`, read in user space).
pub fn now_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid out-pointer; the clock exists since macOS 10.12.
    unsafe { libc::clock_gettime(libc::CLOCK_UPTIME_RAW, &mut t) };
    (t.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(t.tv_nsec as u64)
}

/// 64 random bits from the kernel (`getentropy`), or a clock-derived value if it fails.
pub fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: `buf` is valid for its 8 bytes (getentropy takes at most 256).
    if unsafe { libc::getentropy(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        return u64::from_ne_bytes(buf);
    }
    let mut x = now_ns() ^ ((thread_id() as u64) << 32) ^ process_id() as u64;
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The system's id of the calling thread (`pthread_threadid_np`, a 64-bit counter,
/// cut to 32 bits: it is only shown in reports).
pub fn thread_id() -> u32 {
    let mut id = 0u64;
    // SAFETY: a null thread means the calling thread; `id` is a valid out-pointer.
    unsafe { libc::pthread_threadid_np(0, &mut id) };
    id as u32
}

/// The process id.
pub fn process_id() -> u32 {
    // SAFETY: no preconditions.
    unsafe { libc::getpid() as u32 }
}

/// Writes all of `bytes` to file descriptor `fd`, retrying short writes; errors are
/// dropped (there is nowhere left to report them).
pub fn write_fd(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is valid for its length; a bad descriptor makes write fail.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// Writes to standard error.
pub fn write_stderr(bytes: &[u8]) {
    write_fd(2, bytes);
}

/// An open file descriptor, closed on drop (what `rustix::fd::OwnedFd` is on Linux).
pub struct OwnedFd(c_int);

impl Drop for OwnedFd {
    fn drop(&mut self) {
        // SAFETY: the descriptor was opened by us and is closed exactly once.
        unsafe { libc::close(self.0) };
    }
}

/// The descriptor number behind an [`OwnedFd`].
pub trait AsRawFd {
    /// The descriptor, for [`write_fd`] and [`read_fd`].
    fn as_raw_fd(&self) -> i32;
}

impl AsRawFd for OwnedFd {
    fn as_raw_fd(&self) -> i32 {
        self.0
    }
}

fn open_with(path: &CStr, flags: c_int) -> Option<OwnedFd> {
    let mode: libc::c_uint = 0o644;
    // SAFETY: `path` is NUL-terminated; `open` is variadic and reads the mode (promoted
    // to an unsigned int) only with O_CREAT.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    (fd >= 0).then_some(OwnedFd(fd))
}

/// Creates (or truncates) a file for writing and returns its descriptor.
pub fn create_file(path: &CStr) -> Option<OwnedFd> {
    open_with(path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)
}

/// Opens a file read-only, without allocating.
pub fn open_read(path: &CStr) -> Option<OwnedFd> {
    open_with(path, libc::O_RDONLY)
}

/// Reads into `buf` from `fd`; returns the byte count, 0 at end of file or on error.
pub fn read_fd(fd: i32, buf: &mut [u8]) -> usize {
    // SAFETY: `buf` is valid for its length; a bad descriptor makes read fail.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    n.max(0) as usize
}

/// Creates (or truncates) a file of `len` bytes and maps it shared and writable, so
/// another process can read what we store in it. The descriptor is closed again.
pub fn map_shared_file(path: &CStr, len: usize) -> Option<NonNull<u8>> {
    let fd = open_with(path, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC)?;
    // SAFETY: `fd` is open for writing.
    if unsafe { libc::ftruncate(fd.0, len as libc::off_t) } != 0 {
        return None;
    }
    // SAFETY: a null hint lets the kernel choose the address; the file is ours and
    // `len` long, so the shared mapping covers only what we created.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.0,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    NonNull::new(p.cast())
}

/// Peak resident set size of this process in bytes (`getrusage`; `ru_maxrss` is in
/// bytes on macOS).
pub fn peak_rss_bytes() -> u64 {
    // SAFETY: all-zero is a valid `rusage`, and getrusage only writes into it.
    let mut u: libc::rusage = unsafe { core::mem::zeroed() };
    // SAFETY: `u` is a valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    u.ru_maxrss as u64
}

// The futex: `__ulock_wait`/`__ulock_wake` (XNU's compare-and-wait system calls, in
// libSystem since macOS 10.12, below the oldest macOS Rust supports: 10.12 for x86-64,
// 11.0 for arm64). Why these:
// * `os_sync_wait_on_address` is the public equivalent but exists only from macOS 14.4;
//   calling it on older systems needs weak linking, which stable Rust does not have, or
//   a `dlsym` lookup, which must not run inside the allocator (the loader may take its
//   lock and allocate).
// * `os_unfair_lock` is a whole lock, not a wait on a word: the core's mutex (three
//   states, spinning first) would have to be replaced on macOS alone.
// * The `__ulock` calls are what the system itself builds on: libc++'s
//   `std::atomic::wait` and `os_unfair_lock` call them, and the draft futex port of
//   Rust's std for Apple platforms (rust-lang/rust#122408, not merged) falls back to them
//   below 14.4. (Rust's std itself uses pthread mutexes on macOS today.)
// Being private API, they are linked by name here; an App Store review may flag the
// symbols. When the oldest supported macOS reaches 14.4, `os_sync_wait_on_address` and
// `os_sync_wake_by_address_any` (same arguments, public) replace them.

/// Compare-and-wait on a 32-bit word, private to the process (XNU's `bsd/sys/ulock.h`).
const UL_COMPARE_AND_WAIT: u32 = 1;
/// Return `-errno` instead of setting `errno`.
const ULF_NO_ERRNO: u32 = 0x0100_0000;

extern "C" {
    fn __ulock_wait(operation: u32, addr: *mut c_void, value: u64, timeout_us: u32) -> c_int;
    fn __ulock_wake(operation: u32, addr: *mut c_void, wake_value: u64) -> c_int;
}

/// Sleeps until `word` no longer holds `expected` (or a spurious wake-up).
pub fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: the word is valid for 4 bytes for the duration of the call; the kernel
    // only compares it with `expected` and uses its address as a key. Timeout 0: none.
    unsafe {
        __ulock_wait(
            UL_COMPARE_AND_WAIT | ULF_NO_ERRNO,
            word.as_ptr().cast(),
            expected as u64,
            0,
        )
    };
}

/// Wakes one thread sleeping on `word`.
pub fn futex_wake_one(word: &AtomicU32) {
    loop {
        // SAFETY: the address is only used as a key.
        let r =
            unsafe { __ulock_wake(UL_COMPARE_AND_WAIT | ULF_NO_ERRNO, word.as_ptr().cast(), 0) };
        // Interrupted: try again; anything else (woken one, or ENOENT: nobody waits).
        if r != -libc::EINTR {
            return;
        }
    }
}

/// Sleeps for `ms` milliseconds (`nanosleep`).
pub fn sleep_ms(ms: u64) {
    let t = libc::timespec {
        tv_sec: (ms / 1000) as libc::time_t,
        tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
    };
    // SAFETY: `t` is valid; a null remainder pointer is allowed.
    unsafe { libc::nanosleep(&t, ptr::null_mut()) };
}

/// Starts a detached thread running `f(arg)`. Returns false if the system refuses.
///
/// # Safety
/// `arg` is valid for whatever `f` does with it, for as long as the thread runs.
pub unsafe fn spawn_detached(
    f: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
) -> bool {
    let mut t = core::mem::MaybeUninit::<libc::pthread_t>::uninit();
    // SAFETY: `t` is a valid out-pointer, default attributes (null) are allowed and `f`
    // is a plain C function that lives for the whole program.
    let rc = unsafe { libc::pthread_create(t.as_mut_ptr(), ptr::null(), f, arg) };
    if rc != 0 {
        return false;
    }
    // SAFETY: `pthread_create` returned 0, so it stored the new thread's id in `t`.
    let t = unsafe { t.assume_init() };
    // SAFETY: `t` names the thread just created, detached exactly once.
    unsafe { libc::pthread_detach(t) };
    true
}

/// Gives the rest of the time slice to another thread.
pub fn yield_now() {
    // SAFETY: no preconditions.
    unsafe { libc::sched_yield() };
}

/// Sets the calling thread's `errno`.
pub fn set_errno(code: i32) {
    // SAFETY: __error returns a valid pointer to this thread's errno.
    unsafe { *libc::__error() = code };
}

/// The calling thread's `errno`.
pub fn errno() -> i32 {
    // SAFETY: __error returns a valid pointer to this thread's errno.
    unsafe { *libc::__error() }
}

/// `ENOMEM`, for the C layer.
pub const ENOMEM: i32 = libc::ENOMEM;
/// `EINVAL`, for the C layer.
pub const EINVAL: i32 = libc::EINVAL;

/// Ends the process with SIGABRT, without running exit handlers.
pub fn abort() -> ! {
    // SAFETY: abort(3) has no preconditions and does not return.
    unsafe { libc::abort() }
}

/// Writes `bytes` to a C stdio stream (`FILE *`); false on a short write.
///
/// # Safety
/// `stream` is a valid `FILE *` open for writing.
pub unsafe fn write_stream(stream: *mut c_void, bytes: &[u8]) -> bool {
    // SAFETY: caller's contract; `bytes` is valid for its length.
    unsafe { libc::fwrite(bytes.as_ptr().cast(), 1, bytes.len(), stream.cast()) == bytes.len() }
}

/// Looks up an environment variable with `getenv`, which returns a pointer into the
/// environment (no copy, no heap; it takes libc's environment lock, so a concurrent
/// `setenv` does not tear the walk). The returned slice lives as long as the program
/// does not change that variable. `None` if unset, or if the name is longer than 127
/// bytes or holds a NUL.
pub fn env_var(name: &[u8]) -> Option<&'static [u8]> {
    let mut cname = [0u8; 128];
    if name.len() >= cname.len() || name.contains(&0) {
        return None;
    }
    cname[..name.len()].copy_from_slice(name);
    // SAFETY: `cname` is NUL-terminated.
    let v = unsafe { libc::getenv(cname.as_ptr().cast::<c_char>()) };
    if v.is_null() {
        return None;
    }
    // SAFETY: a non-null result is a NUL-terminated string in the environment.
    Some(unsafe { CStr::from_ptr(v) }.to_bytes())
}

/// A `pthread` key whose destructor runs when a thread exits. (`pthread_key_t` is an
/// unsigned long on macOS; keys are small indices, so they fit in 32 bits.)
pub fn thread_key_create(dtor: unsafe extern "C" fn(*mut c_void)) -> Option<u32> {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer; the destructor is a plain C function.
    let rc = unsafe { libc::pthread_key_create(&mut key, Some(dtor)) };
    if rc != 0 {
        return None;
    }
    u32::try_from(key).ok()
}

/// Attaches `value` to `key` for the calling thread, so the key's destructor sees it.
///
/// # Safety
/// `value` is what the key's destructor expects to receive at thread exit.
pub unsafe fn thread_key_set(key: u32, value: *mut c_void) -> bool {
    // SAFETY: `key` came from `thread_key_create`.
    unsafe { libc::pthread_setspecific(key as libc::pthread_key_t, value) == 0 }
}

/// Registers fork handlers (`pthread_atfork`).
pub fn atfork(prepare: extern "C" fn(), parent: extern "C" fn(), child: extern "C" fn()) -> bool {
    // SAFETY: the handlers are plain C functions that live for the whole program.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) == 0 }
}

/// Runs `f` at process exit (`atexit(3)`; libSystem keeps its first handlers in a
/// static table). Mach-O has no `.fini_array`: the core calls this from an initializer.
pub fn at_exit(f: extern "C" fn()) -> bool {
    // SAFETY: `f` is a plain C function that lives for the whole program.
    unsafe { libc::atexit(f) == 0 }
}

/// Looks a symbol up in the global scope (`dlsym(RTLD_DEFAULT, name)`), null if absent.
/// May take the loader lock: never call it while holding an allocator lock.
pub fn lookup_symbol(name: &CStr) -> *mut c_void {
    // SAFETY: `name` is NUL-terminated; RTLD_DEFAULT searches the loaded images.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

/// Looks a symbol up in a library, loading it if it is not loaded yet (`dlopen` then
/// `dlsym`); null if either fails. The error path only, with no allocator lock held.
pub fn library_symbol(lib: &CStr, name: &CStr) -> *mut c_void {
    // SAFETY: both names are NUL-terminated; a null handle is checked before dlsym.
    unsafe {
        let h = libc::dlopen(lib.as_ptr(), libc::RTLD_NOW);
        if h.is_null() {
            return ptr::null_mut();
        }
        libc::dlsym(h, name.as_ptr())
    }
}

// `mach_vm_region` (declared here: the `libc` crate's Mach bindings are deprecated in
// favour of the `mach2` crate, a dependency for one call).
/// `VM_REGION_EXTENDED_INFO` (`mach/vm_region.h`).
const VM_REGION_EXTENDED_INFO: c_int = 13;
/// `VM_MEMORY_STACK`: the tag of thread stacks (`mach/vm_statistics.h`).
const VM_MEMORY_STACK: u32 = 30;

/// `struct vm_region_extended_info` (`mach/vm_region.h`). The kernel fills every
/// field; only the tag is read.
#[repr(C)]
#[derive(Default)]
#[allow(dead_code)]
struct VmRegionExtendedInfo {
    protection: c_int,
    user_tag: u32,
    pages_resident: u32,
    pages_shared_now_private: u32,
    pages_swapped_out: u32,
    pages_dirtied: u32,
    ref_count: u32,
    shadow_depth: u16,
    external_pager: u8,
    share_mode: u8,
    pages_reusable: u32,
}

extern "C" {
    static mach_task_self_: u32;
    fn mach_vm_region(
        task: u32,
        address: *mut u64,
        size: *mut u64,
        flavor: c_int,
        info: *mut c_int,
        count: *mut u32,
        object_name: *mut u32,
    ) -> c_int;
}

/// The region holding `p`, or the next one above it: (start, end, user tag).
fn region_at(p: usize) -> Option<(usize, usize, u32)> {
    let mut addr = p as u64;
    let mut size = 0u64;
    let mut info = VmRegionExtendedInfo::default();
    let mut count = (core::mem::size_of::<VmRegionExtendedInfo>() / 4) as u32;
    let mut object = 0u32;
    // SAFETY: every out-pointer is valid, and `count` tells the kernel how many 32-bit
    // words `info` holds. `mach_task_self_` is set by libSystem before any code of ours
    // runs. The object name comes back null for this flavour (no right to release).
    let kr = unsafe {
        mach_vm_region(
            mach_task_self_,
            &mut addr,
            &mut size,
            VM_REGION_EXTENDED_INFO,
            (&raw mut info).cast(),
            &mut count,
            &mut object,
        )
    };
    (kr == 0).then(|| {
        let start = addr as usize;
        (start, start.saturating_add(size as usize), info.user_tag)
    })
}

/// Classifies `p` (for misuse reports): `stack_addr` is an address on the calling
/// thread's stack. A region tagged as a stack, or the calling thread's own region, is
/// the stack; an address inside a loaded image's segments (`dladdr` finds its image)
/// is static data; any other region is "other"; no region is unmapped.
pub fn address_kind(p: usize, stack_addr: usize) -> AddressKind {
    let Some((start, end, tag)) = region_at(p) else {
        return AddressKind::Unmapped;
    };
    if !(start..end).contains(&p) {
        return AddressKind::Unmapped; // the region found starts above `p`
    }
    if tag == VM_MEMORY_STACK || (start..end).contains(&stack_addr) {
        return AddressKind::Stack;
    }
    // SAFETY: all-zero is a valid `Dl_info` (null pointers); dladdr only writes into it.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    // SAFETY: any address may be asked about; `info` is a valid out-pointer.
    if unsafe { libc::dladdr(p as *const c_void, &mut info) } != 0 && !info.dli_fbase.is_null() {
        return AddressKind::Image;
    }
    AddressKind::Other
}
