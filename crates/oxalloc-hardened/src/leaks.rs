//! Leak reports at exit (`OXALLOC_LEAKS=1`): every block still live, grouped by its
//! allocation stack (captured at malloc time and kept out of line), largest site first.
//!
//! Text on stderr, in the spirit of LeakSanitizer:
//! ```text
//! oxalloc: 4096 bytes in 4 blocks leaked, allocated at 0x55d0c3a011a9 0x55d0c3a01210 ...
//! SUMMARY: oxalloc: 4160 bytes leaked in 5 allocations from 2 sites
//! ```
//! and, with `OXALLOC_LEAKS_FILE=/path/leaks-%p.txt` (`%p` becomes the PID), the
//! machine format that `oxalloc leaks` symbolises:
//! ```text
//! oxalloc-leaks 1 pid=<pid>
//! leak <bytes> <count> <addr1> <addr2> ...
//! maps
//! <contents of /proc/self/maps>
//! ```
//! Every block still live is listed (reachable or not: there is no pointer scan), so
//! buffers libc never frees (stdio) show up too. Grouping uses a scratch mapping, not
//! malloc; output goes through stack buffers and `write(2)`.

use core::ffi::CStr;

use crate::backtrace::Stack;
use crate::fmt::Buf;
use crate::heap;
use crate::mitigations::{OPTIONS, STACK_DEPTH};
use oxalloc_sys::{AsRawFd, PAGE_SIZE};

#[derive(Clone, Copy)]
struct Site {
    stack: Stack,
    bytes: u64,
    count: u64,
}

fn hash(s: &Stack) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &ip in s {
        h = (h ^ ip as u64).wrapping_mul(0x100_0000_01b3);
    }
    (h ^ (h >> 31)) as usize
}

/// Writes through a stack buffer to a file descriptor.
struct Out {
    fd: i32,
    buf: Buf<4096>,
}

impl Out {
    fn room(&mut self, need: usize) -> &mut Buf<4096> {
        if self.buf.len() + need > 4096 {
            self.flush();
        }
        &mut self.buf
    }
    fn flush(&mut self) {
        oxalloc_sys::write_fd(self.fd, self.buf.as_bytes());
        self.buf.clear();
    }
}

/// Runs at exit (from `.fini_array`): a last check of the quarantine, so a write after
/// free into a block that never left it is still reported; then the leak report, if
/// asked for.
pub extern "C" fn at_exit() {
    if !heap::ensure_init() {
        return;
    }
    heap::check_now(crate::stack_marker!());
    if OPTIONS.leaks() {
        report();
    }
}

fn report() {
    let blocks = heap::totals().1;
    let cap = (blocks * 2).next_power_of_two().max(64);
    let bytes = (cap * core::mem::size_of::<Site>()).next_multiple_of(PAGE_SIZE);
    let Some(mem) = oxalloc_sys::map(bytes) else {
        oxalloc_sys::write_stderr(b"oxalloc: no memory for the leak report\n");
        return;
    };
    // SAFETY: a fresh zeroed mapping of `cap` sites; all-zero is a valid (empty) Site.
    let sites = unsafe { core::slice::from_raw_parts_mut(mem.as_ptr().cast::<Site>(), cap) };
    let mut used = 0;
    // Shards are walked one at a time, so other threads may allocate meanwhile: new
    // sites beyond half the table are left out rather than filling it.
    heap::for_each_live(|size, stack| {
        let mut i = hash(stack) & (cap - 1);
        loop {
            let e = &mut sites[i];
            if e.count == 0 {
                if used * 2 >= cap {
                    break; // full (blocks allocated meanwhile): leave this site out
                }
                *e = Site {
                    stack: *stack,
                    bytes: size as u64,
                    count: 1,
                };
                used += 1;
                break;
            }
            if e.stack == *stack {
                e.bytes += size as u64;
                e.count += 1;
                break;
            }
            i = (i + 1) & (cap - 1);
        }
    });
    // Compact, then sort by bytes, largest first (core's sort does not allocate).
    let mut n = 0;
    for i in 0..cap {
        if sites[i].count != 0 {
            sites[n] = sites[i];
            n += 1;
        }
    }
    let sites = &mut sites[..n];
    sites.sort_unstable_by(|a, b| b.bytes.cmp(&a.bytes).then(b.count.cmp(&a.count)));
    let (total, count) = sites
        .iter()
        .fold((0u64, 0u64), |(b, c), s| (b + s.bytes, c + s.count));

    let mut err = Out {
        fd: 2,
        buf: Buf::new(),
    };
    for site in sites.iter() {
        let b = err.room(400);
        b.str("oxalloc: ")
            .num(site.bytes)
            .str(" bytes in ")
            .num(site.count)
            .str(if site.count == 1 { " block" } else { " blocks" })
            .str(" leaked, allocated at");
        stack_words(b, &site.stack);
        b.str("\n");
    }
    err.room(200)
        .str("SUMMARY: oxalloc: ")
        .num(total)
        .str(" bytes leaked in ")
        .num(count)
        .str(" allocations from ")
        .num(used as u64)
        .str(" sites\n");
    err.flush();
    write_file(sites);
    // SAFETY: the scratch mapping is ours and `sites` is not used after this.
    unsafe { oxalloc_sys::unmap(mem.as_ptr(), bytes) };
}

fn stack_words(b: &mut Buf<4096>, s: &Stack) {
    if s[0] == 0 {
        b.str(" (no stack)");
    }
    for &ip in s.iter().take(STACK_DEPTH).take_while(|&&ip| ip != 0) {
        b.str(" ").hex(ip as u64);
    }
}

/// The machine-readable report, if `OXALLOC_LEAKS_FILE` is set.
fn write_file(sites: &[Site]) {
    let Some(pattern) = oxalloc_sys::env_var(b"OXALLOC_LEAKS_FILE") else {
        return;
    };
    let pid = oxalloc_sys::process_id();
    let mut path: Buf<1024> = Buf::new();
    let mut i = 0;
    while i < pattern.len() {
        if pattern[i] == b'%' && pattern.get(i + 1) == Some(&b'p') {
            path.num(pid as u64);
            i += 2;
        } else {
            path.bytes(&pattern[i..i + 1]);
            i += 1;
        }
    }
    path.bytes(b"\0");
    let Ok(cpath) = CStr::from_bytes_with_nul(path.as_bytes()) else {
        return;
    };
    let Some(fd) = oxalloc_sys::create_file(cpath) else {
        oxalloc_sys::write_stderr(b"oxalloc: cannot create OXALLOC_LEAKS_FILE\n");
        return;
    };
    let mut out = Out {
        fd: fd.as_raw_fd(),
        buf: Buf::new(),
    };
    out.room(64)
        .str("oxalloc-leaks 1 pid=")
        .num(pid as u64)
        .str("\n");
    for site in sites {
        let b = out.room(400);
        b.str("leak ").num(site.bytes).str(" ").num(site.count);
        for &ip in site.stack.iter().take_while(|&&ip| ip != 0) {
            b.str(" ").hex(ip as u64);
        }
        b.str("\n");
    }
    out.room(8).str("maps\n");
    out.flush();
    if let Some(maps) = oxalloc_sys::open_read(c"/proc/self/maps") {
        let mut chunk = [0u8; 4096];
        loop {
            let n = oxalloc_sys::read_fd(maps.as_raw_fd(), &mut chunk);
            if n == 0 {
                break;
            }
            oxalloc_sys::write_fd(out.fd, &chunk[..n]);
        }
    }
}
