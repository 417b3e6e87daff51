//! The platform layer: the only code in oxalloc that talks to the kernel or libc.
//!
//! Everything above this crate is written against these few functions, so a port
//! to another OS is one module here with the same functions and nothing else:
//! `windows.rs` (`VirtualAlloc`/`VirtualFree`) and `macos.rs` (`mmap` through libc;
//! type-checked only, never run). On Linux, this file: memory calls go straight to the
//! kernel through `rustix`'s raw Linux backend; libc is used only for what the kernel
//! cannot do for us (`pthread` keys and `atfork`, `errno`, `environ`).
//!
//! # Contracts
//! * Nothing here allocates on the heap. This code runs *inside* `malloc`, so a call
//!   that allocates would recurse into the allocator.
//! * Lengths and addresses passed to the memory functions are multiples of
//!   [`PAGE_SIZE`]; the `unsafe` ones state what else they need.
//! * Failures are values (`None`, `false`), never panics: the caller decides.
//! * With the test-only feature `fault-injection`, `fault` can make any chosen call
//!   that maps or changes memory fail as the kernel would, to test every refusal.
#![no_std]

#[cfg(windows)]
mod windows;

#[cfg(target_os = "macos")]
mod macos;

mod tls_slot;

#[cfg(all(feature = "fault-injection", target_os = "linux"))]
pub mod fault;

/// Returns `$refused` from the calling wrapper when the fault hook (feature
/// `fault-injection`, tests only) says this call of kind `$kind` fails; without the
/// feature it expands to nothing.
#[cfg(target_os = "linux")]
macro_rules! refuse_if_injected {
    ($kind:ident, $refused:expr) => {
        #[cfg(feature = "fault-injection")]
        if fault::hit(fault::Call::$kind) {
            return $refused;
        }
    };
}

#[cfg(target_os = "macos")]
pub use macos::*;
#[cfg(windows)]
pub use windows::*;

/// What a foreign address points into, for misuse reports: the answer of
/// `address_kind(p, stack_addr)` where the OS has no `/proc/self/maps` (Windows asks
/// `VirtualQuery`, macOS `mach_vm_region`; on Linux the core reads the maps itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressKind {
    /// Nothing mapped there (or, on Windows, reserved-only address space).
    Unmapped,
    /// A thread stack (on Windows: the calling thread's).
    Stack,
    /// A loaded image (an executable or library: code, constants, data, bss).
    Image,
    /// Some other mapped memory.
    Other,
}

#[cfg(target_os = "linux")]
use core::ffi::{c_void, CStr};
#[cfg(target_os = "linux")]
use core::ptr::{self, NonNull};
#[cfg(target_os = "linux")]
use core::sync::atomic::AtomicU32;
#[cfg(target_os = "linux")]
use rustix::mm::{Advice, MapFlags, MprotectFlags, MremapFlags, ProtFlags};

// musl: link libc right after this crate. The `libc` crate names libc for the linker
// only when it is built as part of std, and rustc places std's `-lc` before the no_std
// crates that do not depend on std (this one, oxalloc-core, rustix). With a static
// `libc.a` (the default `crt-static` musl target) the linker scans it once, at that
// position, so what only these crates use (`getrusage`, `dlsym`, ...) stays undefined.
// The attributes are the ones `libc` itself uses inside std. glibc needs nothing: its
// `libc.so` is linked as a shared library, whose symbols resolve wherever it appears.
#[cfg(all(target_os = "linux", target_env = "musl"))]
#[cfg_attr(
    target_feature = "crt-static",
    link(name = "c", kind = "static", modifiers = "-bundle")
)]
#[cfg_attr(not(target_feature = "crt-static"), link(name = "c"))]
extern "C" {}

/// The page size the allocator plans with. x86-64 and the usual aarch64 kernels use
/// 4 KiB pages; on a kernel with larger ones ([`kernel_page_size`]) the calls below
/// never let the kernel widen a range past what the caller gave (see [`discard`]).
pub const PAGE_SIZE: usize = 4096;

/// The kernel's page size (`AT_PAGESZ`): 4 KiB on x86-64 and most aarch64 kernels, 16
/// KiB on Apple silicon (Asahi), 64 KiB on some arm64 server kernels. Read once.
#[cfg(target_os = "linux")]
pub fn kernel_page_size() -> usize {
    use core::sync::atomic::{AtomicUsize, Ordering};
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let p = PAGE.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    let p = rustix::param::page_size();
    let p = if p.is_power_of_two() && p >= PAGE_SIZE {
        p
    } else {
        PAGE_SIZE
    };
    PAGE.store(p, Ordering::Relaxed);
    p
}

/// Whether `[ptr, ptr+len)` is made of whole kernel pages. `madvise` and `mprotect`
/// round a length *up* to whole pages: on a 64 KiB-page kernel a 4 KiB range at the
/// start of a page would take the page's other 60 KiB (maybe live blocks) with it.
#[cfg(target_os = "linux")]
fn whole_kernel_pages(ptr: *mut u8, len: usize) -> bool {
    (ptr as usize | len) & (kernel_page_size() - 1) == 0
}

/// Maps `len` bytes of fresh, zeroed, read-write memory, or `None` when the kernel
/// refuses (for example under `ulimit -v`).
///
/// `MAP_NORESERVE`: address space is reserved, physical pages arrive on first touch, so
/// a mapping costs resident memory only for what the program really uses.
#[cfg(target_os = "linux")]
pub fn map(len: usize) -> Option<NonNull<u8>> {
    refuse_if_injected!(Map, None);
    map_anonymous(len)
}

/// Flags of every anonymous mapping.
#[cfg(all(target_os = "linux", not(miri)))]
const MAP_FLAGS: MapFlags = MapFlags::PRIVATE.union(MapFlags::NORESERVE);

/// [`map`] without the fault hook, for [`map_aligned`] (which counts as one call).
/// Inlined: without the feature, `map` is the `mmap` it always was.
#[cfg(all(target_os = "linux", not(miri)))]
#[inline(always)]
fn map_anonymous(len: usize) -> Option<NonNull<u8>> {
    debug_assert!(len > 0 && len.is_multiple_of(PAGE_SIZE));
    // SAFETY: a null hint lets the kernel choose the address, so no existing mapping
    // can be replaced; an anonymous private mapping has no other preconditions.
    let p = unsafe {
        rustix::mm::mmap_anonymous(
            ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MAP_FLAGS,
        )
    };
    p.ok().and_then(|p| NonNull::new(p.cast()))
}

/// Under Miri (`scripts/sanitizers.sh`): Miri models a mapping as one object and cannot
/// unmap part of one (which [`map_aligned`] does), so zeroed blocks from its allocator
/// stand in for mappings, and [`unmap`] frees them whole (what the typed allocators, the
/// code Miri runs, always do).
#[cfg(all(target_os = "linux", miri))]
fn miri_map(len: usize, align: usize) -> Option<NonNull<u8>> {
    let mut p: *mut c_void = ptr::null_mut();
    // SAFETY: `align` is a power of two and a multiple of the pointer size.
    if unsafe { libc::posix_memalign(&mut p, align, len) } != 0 {
        return None;
    }
    // SAFETY: a fresh block of `len` bytes.
    unsafe { ptr::write_bytes(p.cast::<u8>(), 0, len) };
    NonNull::new(p.cast())
}

#[cfg(all(target_os = "linux", miri))]
fn map_anonymous(len: usize) -> Option<NonNull<u8>> {
    miri_map(len, PAGE_SIZE)
}

/// [`map_aligned`] under Miri: see [`miri_map`].
#[cfg(all(target_os = "linux", miri))]
pub fn map_aligned(len: usize, align: usize) -> Option<NonNull<u8>> {
    miri_map(len, align)
}

/// Maps `len` bytes aligned to `align` (a power of two, at least a page).
///
/// Maps `len + align - PAGE_SIZE` and unmaps the unaligned head and the tail, the usual
/// way to get alignment from `mmap`, which only promises page alignment.
#[cfg(all(target_os = "linux", not(miri)))]
pub fn map_aligned(len: usize, align: usize) -> Option<NonNull<u8>> {
    debug_assert!(align.is_power_of_two() && align >= PAGE_SIZE);
    refuse_if_injected!(MapAligned, None);
    let over = len.checked_add(align - PAGE_SIZE)?;
    let base = map_anonymous(over)?.as_ptr() as usize;
    let start = (base + align - 1) & !(align - 1);
    let head = start - base;
    let tail = over - head - len;
    // SAFETY: both ranges lie inside the mapping made just above and hold nothing yet.
    unsafe {
        if head > 0 {
            unmap(base as *mut u8, head);
        }
        if tail > 0 {
            unmap((start + len) as *mut u8, tail);
        }
    }
    NonNull::new(start as *mut u8)
}

/// Gives a mapping back to the kernel.
///
/// # Safety
/// `[ptr, ptr+len)` was mapped by [`map`]/[`map_aligned`] and holds no live object.
#[cfg(target_os = "linux")]
pub unsafe fn unmap(ptr: *mut u8, len: usize) {
    #[cfg(miri)]
    {
        // SAFETY: under Miri every mapping is a block of `miri_map`, unmapped whole.
        let _ = len;
        unsafe { libc::free(ptr.cast()) };
    }
    #[cfg(not(miri))]
    // SAFETY: caller's contract. A failure (EINVAL on a bad range) leaks address
    // space but cannot corrupt memory, so it is ignored.
    let _ = unsafe { rustix::mm::munmap(ptr.cast(), len) };
}

/// Returns the physical pages behind the range to the kernel; the range stays mapped
/// and reads back as zeroes. `MADV_DONTNEED` rather than `MADV_FREE`: resident memory
/// drops at once (users watch RSS) and the pages are known to be zero afterwards,
/// which lets `calloc` skip its memset. See `madvise(2)`.
///
/// # Safety
/// The range is page aligned, mapped by us, and holds no live object.
///
/// On a kernel with pages larger than the range's alignment, only the whole kernel
/// pages inside are given back; the parts of pages at the ends are zeroed by hand (the
/// range still reads as zeroes, and the neighbours' bytes in those pages are kept).
#[cfg(target_os = "linux")]
pub unsafe fn discard(ptr: *mut u8, len: usize) -> bool {
    refuse_if_injected!(Discard, false);
    if !whole_kernel_pages(ptr, len) {
        // SAFETY: caller's contract.
        return unsafe { discard_inside(ptr, len) };
    }
    // SAFETY: caller's contract; MADV_DONTNEED never unmaps or moves the range.
    unsafe { rustix::mm::madvise(ptr.cast(), len, Advice::LinuxDontNeed).is_ok() }
}

/// [`discard`] of a range that is not whole kernel pages: zeroes the parts of kernel
/// pages at its ends and discards the whole pages between (if any).
///
/// # Safety
/// As for [`discard`]; the range is read-write.
#[cfg(target_os = "linux")]
#[cold]
unsafe fn discard_inside(ptr: *mut u8, len: usize) -> bool {
    // SAFETY: caller's contract.
    let Some((inner, inner_len)) = (unsafe { zero_page_ends(ptr, len, kernel_page_size()) }) else {
        return true;
    };
    // SAFETY: whole kernel pages of the caller's range, which holds nothing live.
    if unsafe { rustix::mm::madvise(inner.cast(), inner_len, Advice::LinuxDontNeed) }.is_ok() {
        return true;
    }
    // SAFETY: as above. Still reads as zeroes, as promised.
    unsafe { ptr::write_bytes(inner, 0, inner_len) };
    false
}

/// Zeroes by hand the parts of kernel pages (`page` bytes) at the ends of `[ptr,
/// ptr+len)` and returns the whole pages between, to be given back by the caller; None
/// (all of it zeroed by hand) when there are none. For a discard that must not reach
/// the neighbours' bytes in those pages.
///
/// # Safety
/// The range is ours, read-write, and holds no live object.
#[cfg(any(target_os = "linux", target_os = "macos"))]
unsafe fn zero_page_ends(ptr: *mut u8, len: usize, page: usize) -> Option<(*mut u8, usize)> {
    let (start, end) = (ptr as usize, ptr as usize + len);
    let inner_start = start.next_multiple_of(page);
    let inner_end = end & !(page - 1);
    if inner_start >= inner_end {
        // SAFETY: caller's contract: the range is ours and nothing in it is live.
        unsafe { core::ptr::write_bytes(ptr, 0, len) };
        return None;
    }
    // SAFETY: the head and tail are parts of the caller's range.
    unsafe {
        core::ptr::write_bytes(ptr, 0, inner_start - start);
        core::ptr::write_bytes(inner_end as *mut u8, 0, end - inner_end);
    }
    Some((inner_start as *mut u8, inner_end - inner_start))
}

/// Calls `f(object, start, len)` for every `PT_LOAD` segment of every loaded object
/// (the executable is object 0, then the libraries), as loaded (`.bss` included),
/// until it returns false. From `dl_iterate_phdr`.
#[cfg(target_os = "linux")]
pub fn for_each_load_segment(f: &mut dyn FnMut(usize, usize, usize) -> bool) {
    struct Walk<'a> {
        f: &'a mut dyn FnMut(usize, usize, usize) -> bool,
        object: usize,
    }
    unsafe extern "C" fn visit(info: *mut libc::dl_phdr_info, _: usize, data: *mut c_void) -> i32 {
        // SAFETY: the loader passes a valid record whose `dlpi_phdr` array holds
        // `dlpi_phnum` entries, for the duration of the call; `data` is the `Walk` below.
        unsafe {
            let walk = &mut *data.cast::<Walk>();
            let info = &*info;
            for i in 0..info.dlpi_phnum as usize {
                let ph = &*info.dlpi_phdr.add(i);
                let start = (info.dlpi_addr as usize).wrapping_add(ph.p_vaddr as usize);
                if ph.p_type == libc::PT_LOAD && !(walk.f)(walk.object, start, ph.p_memsz as usize)
                {
                    return 1;
                }
            }
            walk.object += 1;
        }
        0
    }
    let mut walk = Walk { f, object: 0 };
    // SAFETY: `visit` matches the callback type and only uses the `Walk` it is given.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&raw mut walk).cast()) };
}

/// Whether `p` lies in the memory image of a loaded object (the executable or a
/// library): inside one of its `PT_LOAD` segments as loaded, `.bss` included. It says
/// so exactly where `/proc/self/maps` cannot: the kernel merges an anonymous mapping
/// made right after an object's `.bss` into it (musl's `malloc` got one there in a
/// static binary, and its block looked like static data).
#[cfg(target_os = "linux")]
pub fn in_loaded_image(p: usize) -> bool {
    let mut found = false;
    for_each_load_segment(&mut |_, start, len| {
        found = p.wrapping_sub(start) < len;
        !found
    });
    found
}

/// Asks the kernel to back a range with transparent huge pages (`MADV_HUGEPAGE`),
/// which matters where THP is in `madvise` mode (Debian's default). Returns false if
/// the kernel refused (THP not built in).
///
/// # Safety
/// The range is page aligned and mapped by us.
#[cfg(target_os = "linux")]
pub unsafe fn prefer_huge_pages(ptr: *mut u8, len: usize) -> bool {
    refuse_if_injected!(HugePages, false);
    if !whole_kernel_pages(ptr, len) {
        return false;
    }
    // SAFETY: caller's contract; the advice only changes how later faults are served.
    unsafe { rustix::mm::madvise(ptr.cast(), len, Advice::LinuxHugepage).is_ok() }
}

/// Makes a range inaccessible (`PROT_NONE`) or read-write again.
///
/// # Safety
/// The range is page aligned and mapped by us; no live object in it is used while it
/// is inaccessible.
///
/// False (nothing changed) for a range that is not whole kernel pages: the kernel would
/// change the protection of the rest of the last page too.
#[cfg(target_os = "linux")]
pub unsafe fn protect(ptr: *mut u8, len: usize, accessible: bool) -> bool {
    refuse_if_injected!(Protect, false);
    if !whole_kernel_pages(ptr, len) {
        return false;
    }
    let flags = if accessible {
        MprotectFlags::READ | MprotectFlags::WRITE
    } else {
        MprotectFlags::empty()
    };
    // SAFETY: caller's contract.
    unsafe { rustix::mm::mprotect(ptr.cast(), len, flags).is_ok() }
}

/// Grows or shrinks a mapping without moving it (`mremap` without `MREMAP_MAYMOVE`).
/// Returns false when the pages after it are taken; nothing changed then.
///
/// # Safety
/// `[ptr, ptr+old_len)` is one mapping of ours; on shrinking, the cut tail holds no
/// live object.
#[cfg(target_os = "linux")]
pub unsafe fn resize_in_place(ptr: *mut u8, old_len: usize, new_len: usize) -> bool {
    refuse_if_injected!(Resize, false);
    // SAFETY: caller's contract; without MAYMOVE the kernel never moves the mapping.
    unsafe {
        rustix::mm::mremap(ptr.cast(), old_len, new_len, MremapFlags::empty())
            .map(|p| p == ptr.cast::<c_void>())
            .unwrap_or(false)
    }
}

/// Moves the program break to `addr` and returns where the break is afterwards (the
/// old break if the kernel refused); `brk(0)` reads the current break. Goes through
/// libc's `brk`/`sbrk` (which never allocate) rather than the raw system call, so that
/// libc's cached break stays right for a program that also calls `sbrk` itself.
#[cfg(target_os = "linux")]
pub fn brk(addr: usize) -> usize {
    // SAFETY: sbrk(0) only reads the break.
    let current = || unsafe { libc::sbrk(0) } as usize;
    if addr == 0 {
        return current();
    }
    // A refused move leaves errno ENOMEM, as libc's `brk` does.
    refuse_if_injected!(Brk, {
        set_errno(ENOMEM);
        current()
    });
    // SAFETY: moving the break is what the caller asks for; memory below the old
    // break is not touched by growing, and the caller owns what a shrink gives up.
    if unsafe { libc::brk(addr as *mut c_void) } == 0 {
        addr
    } else {
        current()
    }
}

/// Monotonic clock in nanoseconds, to the kernel's tick (1-4 ms): the page-return
/// policy's delays and windows are milliseconds and more, and the central pool reads
/// the clock on every take and give. The coarse clock is a read of the vDSO's data
/// page (7 ns here); the exact one reads the TSC through the hypervisor's clock (30 ns
/// on this 2-core VM: 30% of the time of a program churning 64-512 KiB blocks).
#[cfg(target_os = "linux")]
pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    (t.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(t.tv_nsec as u64)
}

/// 64 random bits from the kernel, or a clock-derived value if `getrandom` fails.
#[cfg(target_os = "linux")]
pub fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    match rustix::rand::getrandom(&mut buf, rustix::rand::GetRandomFlags::NONBLOCK) {
        Ok(_) => u64::from_ne_bytes(buf),
        Err(_) => now_ns().wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (thread_id() as u64),
    }
}

/// The kernel's id of the calling thread.
#[cfg(target_os = "linux")]
pub fn thread_id() -> u32 {
    rustix::thread::gettid().as_raw_nonzero().get() as u32
}

/// The process id.
#[cfg(target_os = "linux")]
pub fn process_id() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// Writes all of `bytes` to file descriptor `fd`, retrying short writes; errors are
/// dropped (there is nowhere left to report them).
#[cfg(target_os = "linux")]
pub fn write_fd(fd: i32, mut bytes: &[u8]) {
    // SAFETY: `fd` is only borrowed for the duration of the call; a closed or invalid
    // descriptor makes write(2) fail with EBADF, which ends the loop.
    let fd = unsafe { rustix::fd::BorrowedFd::borrow_raw(fd) };
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(0) | Err(_) => return,
            Ok(n) => bytes = &bytes[n..],
        }
    }
}

/// Writes to standard error.
#[cfg(target_os = "linux")]
pub fn write_stderr(bytes: &[u8]) {
    write_fd(2, bytes);
}

/// Creates (or truncates) a file for writing and returns its descriptor.
#[cfg(target_os = "linux")]
pub fn create_file(path: &CStr) -> Option<rustix::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        path,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .ok()
}

#[cfg(target_os = "linux")]
pub use rustix::fd::{AsRawFd, OwnedFd};

/// Creates (or truncates) a file of `len` bytes and maps it shared and writable, so
/// another process can read what we store in it. The descriptor is closed again.
#[cfg(target_os = "linux")]
pub fn map_shared_file(path: &CStr, len: usize) -> Option<NonNull<u8>> {
    refuse_if_injected!(MapShared, None);
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .ok()?;
    rustix::fs::ftruncate(&fd, len as u64).ok()?;
    // SAFETY: a null hint lets the kernel choose the address; the file is ours and
    // `len` long, so the shared mapping covers only what we created.
    let p = unsafe {
        rustix::mm::mmap(
            ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            &fd,
            0,
        )
    };
    p.ok().and_then(|p| NonNull::new(p.cast()))
}

/// Peak resident set size of this process in bytes (`getrusage`).
#[cfg(target_os = "linux")]
pub fn peak_rss_bytes() -> u64 {
    // SAFETY: all-zero is a valid `rusage`, and getrusage only writes into it.
    let mut u: libc::rusage = unsafe { core::mem::zeroed() };
    // SAFETY: `u` is a valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    (u.ru_maxrss as u64) * 1024
}

/// Sleeps until `word` no longer holds `expected` (or a spurious wake-up).
#[cfg(target_os = "linux")]
pub fn futex_wait(word: &AtomicU32, expected: u32) {
    use rustix::thread::futex;
    let _ = futex::wait(word, futex::Flags::PRIVATE, expected, None);
}

/// Wakes one thread sleeping on `word`.
#[cfg(target_os = "linux")]
pub fn futex_wake_one(word: &AtomicU32) {
    use rustix::thread::futex;
    let _ = futex::wake(word, futex::Flags::PRIVATE, 1);
}

/// Sleeps for `ms` milliseconds (`nanosleep`).
#[cfg(target_os = "linux")]
pub fn sleep_ms(ms: u64) {
    let t = rustix::time::Timespec {
        tv_sec: (ms / 1000) as i64,
        tv_nsec: ((ms % 1000) * 1_000_000) as i64,
    };
    let _ = rustix::thread::nanosleep(&t);
}

/// Starts a detached thread running `f(arg)`. Returns false if the system refuses.
/// glibc's `pthread_create` may call malloc for the thread's TLS; callers must hold
/// no allocator lock.
///
/// # Safety
/// `arg` is valid for whatever `f` does with it, for as long as the thread runs.
#[cfg(target_os = "linux")]
pub unsafe fn spawn_detached(
    f: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
) -> bool {
    // `pthread_t` is opaque: an integer on glibc, a pointer on musl. It is only read
    // after `pthread_create` has written it, so no placeholder value is needed.
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
#[cfg(target_os = "linux")]
pub fn yield_now() {
    rustix::thread::sched_yield();
}

/// Sets the calling thread's `errno`.
#[cfg(target_os = "linux")]
pub fn set_errno(code: i32) {
    // SAFETY: __errno_location returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() = code };
}

/// glibc's `struct mallinfo2`, returned by both allocators' `mallinfo2()`: each fills the
/// fields it can tell (in its own docs) and leaves the rest 0.
#[repr(C)]
#[derive(Default, Debug, Clone, Copy)]
pub struct Mallinfo2 {
    /// Non-mmapped space allocated (bytes).
    pub arena: usize,
    /// Number of free chunks.
    pub ordblks: usize,
    /// Number of free fastbin blocks.
    pub smblks: usize,
    /// Number of mmapped regions.
    pub hblks: usize,
    /// Space in mmapped regions.
    pub hblkhd: usize,
    /// Maximum total allocated space.
    pub usmblks: usize,
    /// Space in freed fastbin blocks.
    pub fsmblks: usize,
    /// Total allocated space.
    pub uordblks: usize,
    /// Total free space.
    pub fordblks: usize,
    /// Top-most releasable space.
    pub keepcost: usize,
}

/// glibc's older `struct mallinfo`: the fields of [`Mallinfo2`] as `int`, each capped at
/// `INT_MAX` (glibc wraps them instead, which is why `mallinfo2` exists).
#[repr(C)]
#[derive(Default, Debug, Clone, Copy)]
pub struct Mallinfo {
    /// See [`Mallinfo2`].
    pub arena: i32,
    /// See [`Mallinfo2`].
    pub ordblks: i32,
    /// See [`Mallinfo2`].
    pub smblks: i32,
    /// See [`Mallinfo2`].
    pub hblks: i32,
    /// See [`Mallinfo2`].
    pub hblkhd: i32,
    /// See [`Mallinfo2`].
    pub usmblks: i32,
    /// See [`Mallinfo2`].
    pub fsmblks: i32,
    /// See [`Mallinfo2`].
    pub uordblks: i32,
    /// See [`Mallinfo2`].
    pub fordblks: i32,
    /// See [`Mallinfo2`].
    pub keepcost: i32,
}

impl From<Mallinfo2> for Mallinfo {
    fn from(m: Mallinfo2) -> Mallinfo {
        let cap = |v: usize| v.min(i32::MAX as usize) as i32;
        Mallinfo {
            arena: cap(m.arena),
            ordblks: cap(m.ordblks),
            smblks: cap(m.smblks),
            hblks: cap(m.hblks),
            hblkhd: cap(m.hblkhd),
            usmblks: cap(m.usmblks),
            fsmblks: cap(m.fsmblks),
            uordblks: cap(m.uordblks),
            fordblks: cap(m.fordblks),
            keepcost: cap(m.keepcost),
        }
    }
}

/// Writes `bytes` to a C stdio stream (`FILE *`); false on a short write.
///
/// # Safety
/// `stream` is a valid `FILE *` open for writing.
#[cfg(target_os = "linux")]
pub unsafe fn write_stream(stream: *mut c_void, bytes: &[u8]) -> bool {
    // SAFETY: caller's contract; `bytes` is valid for its length.
    unsafe { libc::fwrite(bytes.as_ptr().cast(), 1, bytes.len(), stream.cast()) == bytes.len() }
}

/// The calling thread's `errno`.
#[cfg(target_os = "linux")]
pub fn errno() -> i32 {
    // SAFETY: __errno_location returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// `ENOMEM`, for the C layer.
#[cfg(target_os = "linux")]
pub const ENOMEM: i32 = libc::ENOMEM;
/// `EINVAL`, for the C layer.
#[cfg(target_os = "linux")]
pub const EINVAL: i32 = libc::EINVAL;

/// Ends the process with SIGABRT, without running exit handlers.
#[cfg(target_os = "linux")]
pub fn abort() -> ! {
    // SAFETY: abort(3) has no preconditions and does not return.
    unsafe { libc::abort() }
}

#[cfg(target_os = "linux")]
extern "C" {
    static environ: *const *const libc::c_char;
}

/// Looks up an environment variable by walking the raw `environ` array.
///
/// `std::env` allocates and `getenv` is not safe to call from inside malloc on every
/// libc, so we read the array libc was given at start-up. The returned slice lives as
/// long as the program does not change that variable.
#[cfg(target_os = "linux")]
pub fn env_var(name: &[u8]) -> Option<&'static [u8]> {
    // SAFETY: `environ` is a libc global: null or a null-terminated array of pointers
    // to NUL-terminated strings. We only read it.
    let mut entry = unsafe { environ };
    if entry.is_null() {
        return None;
    }
    loop {
        // SAFETY: `entry` points into the array and the array ends with a null entry,
        // which stops the loop before we read past it.
        let s = unsafe { *entry };
        if s.is_null() {
            return None;
        }
        // SAFETY: every non-null entry is a NUL-terminated string owned by libc.
        let bytes = unsafe { CStr::from_ptr(s) }.to_bytes();
        if bytes.len() > name.len() && bytes.starts_with(name) && bytes[name.len()] == b'=' {
            return Some(&bytes[name.len() + 1..]);
        }
        // SAFETY: the current entry was not the terminator, so the next one exists.
        entry = unsafe { entry.add(1) };
    }
}

/// A `pthread` key whose destructor runs when a thread exits.
///
/// Used to learn about thread exit without Rust's `thread_local!` destructors, which
/// register through `__cxa_thread_atexit_impl` and may call `calloc` on glibc.
#[cfg(target_os = "linux")]
pub fn thread_key_create(dtor: unsafe extern "C" fn(*mut c_void)) -> Option<u32> {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer; the destructor is a plain C function.
    let rc = unsafe { libc::pthread_key_create(&mut key, Some(dtor)) };
    (rc == 0).then_some(key)
}

/// Attaches `value` to `key` for the calling thread, so the key's destructor sees it.
/// glibc stores the first 32 keys in the thread descriptor; later keys may allocate.
///
/// # Safety
/// `value` is what the key's destructor expects to receive at thread exit.
#[cfg(target_os = "linux")]
pub unsafe fn thread_key_set(key: u32, value: *mut c_void) -> bool {
    // SAFETY: `key` came from `thread_key_create`.
    unsafe { libc::pthread_setspecific(key, value) == 0 }
}

/// Registers fork handlers (`pthread_atfork`).
#[cfg(target_os = "linux")]
pub fn atfork(prepare: extern "C" fn(), parent: extern "C" fn(), child: extern "C" fn()) -> bool {
    // SAFETY: the handlers are plain C functions that live for the whole program.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) == 0 }
}

/// Reserves `len` bytes of address space with no access (`PROT_NONE`, `MAP_NORESERVE`):
/// it costs neither memory nor commit charge until [`protect`] opens parts of it. The
/// hardened allocator lays out its regions and guard pages this way.
#[cfg(target_os = "linux")]
pub fn reserve(len: usize) -> Option<NonNull<u8>> {
    debug_assert!(len > 0 && len.is_multiple_of(PAGE_SIZE));
    refuse_if_injected!(Reserve, None);
    // SAFETY: a null hint lets the kernel choose the address, so no existing mapping
    // can be replaced; an anonymous private mapping has no other preconditions.
    let p = unsafe {
        rustix::mm::mmap_anonymous(
            ptr::null_mut(),
            len,
            ProtFlags::empty(),
            MapFlags::PRIVATE | MapFlags::NORESERVE,
        )
    };
    p.ok().and_then(|p| NonNull::new(p.cast()))
}

/// Turns a mapped range back into a reservation in one call: its pages are freed and
/// any access faults (`mmap` with `MAP_FIXED`, `PROT_NONE`, over the range). Where
/// `protect` then `discard` would take two system calls (and two TLB shootdowns in a
/// threaded process).
///
/// # Safety
/// The range is page aligned, mapped by us, and nothing in it is used again until it
/// is opened with [`protect`] (or unmapped).
///
/// False (nothing changed) for a range that is not whole kernel pages (see [`protect`]).
#[cfg(target_os = "linux")]
pub unsafe fn decommit(ptr: *mut u8, len: usize) -> bool {
    refuse_if_injected!(Decommit, false);
    if !whole_kernel_pages(ptr, len) {
        return false;
    }
    // SAFETY: caller's contract: the range is ours, so MAP_FIXED replaces only our own
    // pages, which hold nothing still in use.
    let p = unsafe {
        rustix::mm::mmap_anonymous(
            ptr.cast(),
            len,
            ProtFlags::empty(),
            MapFlags::PRIVATE | MapFlags::NORESERVE | MapFlags::FIXED,
        )
    };
    p.is_ok_and(|q| q == ptr.cast())
}

/// Opens a file read-only (for `/proc/self/maps`), without allocating.
#[cfg(target_os = "linux")]
pub fn open_read(path: &CStr) -> Option<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()
}

/// Reads into `buf` from `fd`; returns the byte count, 0 at end of file or on error.
#[cfg(target_os = "linux")]
pub fn read_fd(fd: i32, buf: &mut [u8]) -> usize {
    // SAFETY: `fd` is only borrowed for the duration of the call; an invalid one makes
    // read(2) fail with EBADF.
    let fd = unsafe { rustix::fd::BorrowedFd::borrow_raw(fd) };
    rustix::io::read(fd, buf).unwrap_or(0)
}

/// Looks a symbol up in the global scope (`dlsym(RTLD_DEFAULT, name)`), null if absent.
/// May take the loader lock and allocate (`dlerror` state): never call it while holding
/// an allocator lock.
#[cfg(target_os = "linux")]
pub fn lookup_symbol(name: &CStr) -> *mut c_void {
    // SAFETY: `name` is NUL-terminated; RTLD_DEFAULT searches the loaded objects.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

/// Looks up the next definition of a symbol after the calling object in the lookup
/// order (`dlsym(RTLD_NEXT, name)`): the one an interposed function replaces. Null if
/// there is none. As [`lookup_symbol`]: no allocator lock may be held.
#[cfg(target_os = "linux")]
pub fn next_symbol(name: &CStr) -> *mut c_void {
    // SAFETY: `name` is NUL-terminated; RTLD_NEXT searches the objects after ours.
    unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) }
}

/// Looks a symbol up in a shared library, loading it if it is not loaded yet
/// (`dlopen(lib, RTLD_NOW)` then `dlsym`); null if either fails. The handle is kept
/// (the library stays loaded). Loads and allocates: the error path only, with no
/// allocator lock held.
#[cfg(target_os = "linux")]
pub fn library_symbol(lib: &CStr, name: &CStr) -> *mut c_void {
    // SAFETY: both names are NUL-terminated; a null handle is checked before dlsym.
    unsafe {
        let h = libc::dlopen(lib.as_ptr(), libc::RTLD_NOW);
        if h.is_null() {
            return core::ptr::null_mut();
        }
        libc::dlsym(h, name.as_ptr())
    }
}
