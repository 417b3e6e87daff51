//! A `#![no_std]` program with a 64 KiB `.bss` buffer as its heap.
//!
//! The C runtime provides `_start` and calls our `main`; we print with `libc::write`
//! (no `std`, no `printf`). `Vec`, `Box`, `String` and `BTreeMap` come from `alloc` and
//! allocate from [`GlobalStaticHeap`]. The output is checked by
//! `crates/oxalloc-typed/tests/no_std_example.rs`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use oxalloc_typed::GlobalStaticHeap;

#[global_allocator]
static HEAP: GlobalStaticHeap<{ 64 * 1024 }> = GlobalStaticHeap::new();

/// Formats into a fixed stack buffer, so printing never allocates.
struct Out {
    buf: [u8; 256],
    len: usize,
}

impl Write for Out {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let b = s.as_bytes();
        let n = b.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        Ok(())
    }
}

fn print(args: core::fmt::Arguments<'_>) {
    let mut o = Out {
        buf: [0; 256],
        len: 0,
    };
    let _ = o.write_fmt(args);
    // SAFETY: writing our own initialised stack buffer to stdout.
    unsafe { libc::write(1, o.buf.as_ptr().cast(), o.len) };
}

macro_rules! say {
    ($($t:tt)*) => { print(format_args!($($t)*)) };
}

#[unsafe(no_mangle)]
extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    let v: Vec<u64> = (1..=100).collect();
    say!("vec sum={}\n", v.iter().sum::<u64>());

    let b = Box::new(42u32);
    say!("box={}\n", *b);

    let mut s = String::new();
    for w in ["hello", " ", "no_std", " ", "heap"] {
        s.push_str(w);
    }
    say!("string={}\n", s);

    let mut m = BTreeMap::new();
    for i in 0..50u32 {
        m.insert(i, i * i);
    }
    say!("map len={} m[7]={}\n", m.len(), m[&7]);

    // Make holes: free every other block and look at the fragmentation report.
    let mut blocks: Vec<Option<Box<[u8; 200]>>> =
        (0..40).map(|_| Some(Box::new([1; 200]))).collect();
    for (i, b) in blocks.iter_mut().enumerate() {
        if i % 2 == 0 {
            *b = None;
        }
    }
    let st = HEAP.stats();
    say!(
        "holes: free_blocks={} frag_permille>0={}\n",
        st.free_blocks,
        st.fragmentation_permille() > 0
    );

    // Exhaustion is an error value, not a crash: ask for more than the heap has.
    let mut big: Vec<u8> = Vec::new();
    say!(
        "try_reserve 1 MiB ok={}\n",
        big.try_reserve(1 << 20).is_ok()
    );

    drop((v, b, s, m, blocks, big));
    let st = HEAP.stats();
    say!(
        "after free: used_blocks={} free_blocks={} frag_permille={} check={}\n",
        st.used_blocks,
        st.free_blocks,
        st.fragmentation_permille(),
        HEAP.check().is_ok()
    );
    say!("ok\n");
    0
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    print(format_args!("panic\n"));
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

/// The precompiled `alloc` refers to the unwinding personality routine even though this
/// program aborts on panic and never unwinds; this stub satisfies the linker and is
/// never called.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}
