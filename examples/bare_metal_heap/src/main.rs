//! A bare-metal program (no OS, no libc) whose heap is a 32 KiB array in `.bss`.
//!
//! The seeds' picture of a process, on a microcontroller: code in flash, `.data` and
//! `.bss` in RAM, a stack at the top of RAM, and a heap that is just a static array
//! managed by [`GlobalStaticHeap`] (TLSF). `Vec`, `Box`, `String` and `BTreeMap` from
//! `alloc` use it. Built for `thumbv7em-none-eabihf` (Cortex-M4F) and run under
//! `qemu-system-arm -machine mps2-an386`; it prints through semihosting and exits with
//! status 0 when every check held. `scripts/bare-metal.sh` builds, runs and checks it.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use oxalloc_typed::GlobalStaticHeap;

#[global_allocator]
static HEAP: GlobalStaticHeap<{ 32 * 1024 }> = GlobalStaticHeap::new();

/// Where the heap's array lies: in RAM (`.bss`), not in flash.
fn heap_in_ram() -> bool {
    let a = &HEAP as *const _ as usize;
    (0x2000_0000..0x2040_0000).contains(&a)
}

#[entry]
fn main() -> ! {
    let mut ok = heap_in_ram();
    hprintln!("heap in .bss at {:p}: {}", &HEAP, ok);

    let v: Vec<u32> = (1..=100).collect();
    let sum: u32 = v.iter().sum();
    ok &= sum == 5050;
    hprintln!("vec sum={}", sum);

    let b = Box::new(42u64);
    ok &= *b == 42;
    hprintln!("box={}", *b);

    let mut s = String::new();
    for w in ["bare", " ", "metal", " ", "heap"] {
        s.push_str(w);
    }
    ok &= s == "bare metal heap";
    hprintln!("string={}", s);

    let mut m = BTreeMap::new();
    for i in 0..50u32 {
        m.insert(i, i * i);
    }
    ok &= m.len() == 50 && m[&7] == 49;
    hprintln!("map len={} m[7]={}", m.len(), m[&7]);

    // More than the heap holds is an error value, not a crash.
    let mut big: Vec<u8> = Vec::new();
    let refused = big.try_reserve(64 * 1024).is_err();
    ok &= refused;
    hprintln!("try_reserve 64 KiB refused={}", refused);

    drop((v, b, s, m, big));
    let st = HEAP.stats();
    let clean = st.used_blocks == 0 && st.free_blocks == 1 && HEAP.check().is_ok();
    ok &= clean;
    hprintln!(
        "after free: used_blocks={} free_blocks={} check={}",
        st.used_blocks,
        st.free_blocks,
        HEAP.check().is_ok()
    );
    hprintln!("{}", if ok { "ok" } else { "FAILED" });
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {}
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}
