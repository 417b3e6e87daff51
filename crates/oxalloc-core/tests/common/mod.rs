//! Shared by the core's integration tests (each binary uses some of it).
#![allow(dead_code)]

/// The runner cargo runs this cross-compiled test under (`CARGO_TARGET_<TRIPLE>_RUNNER`,
/// qemu-user for the CI's aarch64 run), if any; the test inherits cargo's environment.
pub fn emulator() -> Option<String> {
    let libc = if cfg!(target_env = "musl") {
        "MUSL"
    } else {
        "GNU"
    };
    let var = format!(
        "CARGO_TARGET_{}_UNKNOWN_LINUX_{libc}_RUNNER",
        std::env::consts::ARCH.to_uppercase()
    );
    std::env::var(var).ok().filter(|r| !r.trim().is_empty())
}

/// `OXALLOC_TEST_SCALE_DOWN=N` divides the work of the thread tests by N (at least 1):
/// the CI's emulated aarch64 run (qemu-user, some 20 times slower) sets it.
pub fn scale_down() -> usize {
    std::env::var("OXALLOC_TEST_SCALE_DOWN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize)
        .max(1)
}

/// Starts `threads` threads that each allocate `count` blocks of `size` bytes and exit
/// with them live (so each heap is abandoned holding them); a barrier keeps them alive
/// together, so each has a heap of its own. Returns the blocks, for the caller to free
/// from this thread (remote frees into the abandoned heaps' spans).
pub fn abandon_heaps_with_live_blocks(threads: usize, count: usize, size: usize) -> Vec<usize> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mine: Vec<usize> = (0..count)
                    .map(|_| {
                        let p = oxalloc_core::api::malloc(size);
                        assert!(!p.is_null());
                        p as usize
                    })
                    .collect();
                barrier.wait();
                mine
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect()
}

/// `malloc(size)`, checked not null, with every byte written (0x5A).
pub fn malloc_written(size: usize) -> usize {
    let p = oxalloc_core::api::malloc(size);
    assert!(!p.is_null());
    // SAFETY: p has `size` bytes.
    unsafe { std::ptr::write_bytes(p, 0x5A, size) };
    p as usize
}

/// Frees each block.
pub fn free_all(blocks: impl IntoIterator<Item = usize>) {
    for p in blocks {
        // SAFETY: each is a live block of the caller's, freed once.
        unsafe { oxalloc_core::api::free(p as *mut u8) };
    }
}

/// Allocates `size`-byte blocks (written) until the span they come from is used up to
/// its last block (64 KiB spans: the classes up to 512 bytes); returns them all, in
/// order. The class's next block must then come from elsewhere.
pub fn use_up_a_span(size: usize) -> Vec<usize> {
    const SPAN: usize = 64 << 10;
    let mut blocks = Vec::new();
    loop {
        let p = malloc_written(size);
        blocks.push(p);
        if (p + size).is_multiple_of(SPAN) {
            return blocks;
        }
    }
}
