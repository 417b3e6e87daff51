//! Background purging: a helper thread that gives free pages back to the OS when the
//! program has gone quiet.
//!
//! Without it, pages freed in a burst would stay resident until the program allocates
//! again (purging happens on allocator activity), and users watch RSS fall after a burst
//! (the most common complaint about allocators). The thread is started the first time a
//! span is given back to the central pool, not at start-up, so programs that never free
//! much never get it. It sleeps on a futex while nothing is cached, and otherwise wakes
//! every `OXALLOC_PURGE_DELAY_MS` to purge what the page-return policy (`page_return`)
//! says is due; while the policy keeps everything cached for recent demand, it wakes
//! once an epoch of the demand window instead.
//! `OXALLOC_BACKGROUND_PURGE=0` turns it off (single-threaded sandboxes, `unshare`).
#![allow(unsafe_code)]

use crate::central::CENTRAL;
use crate::options;
use crate::page_return;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

static STARTED: AtomicBool = AtomicBool::new(false);
/// 1 while the central pool holds dirty memory: the futex word the thread sleeps on.
static WANTED: AtomicU32 = AtomicU32::new(0);

/// Called when memory starts waiting to be purged (central dirty spans, cached huge
/// mappings).
pub fn wanted() {
    if WANTED.load(Ordering::Relaxed) == 0 {
        WANTED.store(1, Ordering::Relaxed);
        oxalloc_sys::futex_wake_one(&WANTED);
    }
}

/// Starts the thread if it is not running. Call with no allocator lock held.
#[inline]
pub fn ensure_started() {
    if STARTED.load(Ordering::Relaxed) || !options::BACKGROUND_PURGE.on() {
        return;
    }
    if !STARTED.swap(true, Ordering::Relaxed) {
        // SAFETY: `run` ignores its argument.
        unsafe { oxalloc_sys::spawn_detached(run, core::ptr::null_mut()) };
    }
}

/// In a fork child the thread does not exist; the next free starts a new one.
pub fn after_fork_child() {
    STARTED.store(false, Ordering::Relaxed);
}

extern "C" fn run(_: *mut core::ffi::c_void) -> *mut core::ffi::c_void {
    loop {
        while WANTED.load(Ordering::Relaxed) == 0 {
            oxalloc_sys::futex_wait(&WANTED, 0);
        }
        let pause = if page_return::keeping(oxalloc_sys::now_ns()) {
            page_return::recheck_ms()
        } else {
            options::PURGE_DELAY_MS.get()
        };
        oxalloc_sys::sleep_ms(pause.max(1));
        // Clear the flag before looking, so a `wanted()` that races with the check
        // sets it again and nothing is left waiting unseen.
        WANTED.store(0, Ordering::Relaxed);
        let dirty = {
            let mut central = CENTRAL.lock();
            central.purge(false);
            // The live figures (`oxalloc trace`, `map`) follow frees and purges even
            // while the program itself is quiet (no allocation publishes them then).
            crate::stats::publish_shared(&central);
            central.dirty_bytes()
        };
        crate::huge::purge_cache(false);
        if dirty > 0 || crate::huge::cached_bytes() > 0 {
            WANTED.store(1, Ordering::Relaxed);
        }
    }
}
