//! One malloc/free pair, 16 B..64 KiB, one thread, under every allocator found.
//!
//! `LD_PRELOAD` cannot switch allocators inside one process, so each peer's shared object is
//! `dlopen`ed with `RTLD_LOCAL` and its `malloc`/`free` are called through function pointers
//! (for liboxalloc.so, `ox_malloc`/`ox_free` when exported). glibc is the process's own
//! `malloc`. The indirect call costs the same for every allocator, including glibc here.
//! A library that cannot be dlopened (e.g. one built for initial-exec TLS) is reported and
//! skipped. Run: `cargo bench -p oxalloc-bench --bench pair`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use oxalloc_bench::allocators;
use std::ffi::{c_void, CStr, CString};
use std::time::Duration;

type Malloc = unsafe extern "C" fn(usize) -> *mut c_void;
type Free = unsafe extern "C" fn(*mut c_void);

const SIZES: [usize; 7] = [16, 64, 256, 1024, 4096, 16384, 65536];

fn last_dl_error() -> String {
    // SAFETY: dlerror returns null or a valid C string owned by libdl.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "unknown dl error".into()
    } else {
        // SAFETY: non-null, NUL-terminated, valid until the next dl call.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

fn sym(handle: *mut c_void, names: &[&str]) -> Option<*mut c_void> {
    names.iter().find_map(|n| {
        let c = CString::new(*n).ok()?;
        // SAFETY: `handle` is a live dlopen handle and `c` a NUL-terminated name.
        let p = unsafe { libc::dlsym(handle, c.as_ptr()) };
        (!p.is_null()).then_some(p)
    })
}

/// The malloc/free pair of each available allocator.
fn load() -> Vec<(&'static str, Malloc, Free)> {
    let mut v: Vec<(&'static str, Malloc, Free)> = Vec::new();
    let ws = oxalloc_bench::suite::workspace_root();
    for a in allocators::discover(ws.as_deref()) {
        let Some(lib) = &a.lib else {
            if a.available() {
                v.push((a.name, libc::malloc, libc::free));
            } else {
                eprintln!(
                    "pair: {} missing: {}",
                    a.name,
                    a.missing.unwrap_or_default()
                );
            }
            continue;
        };
        let Ok(path) = CString::new(lib.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        // SAFETY: `path` is a NUL-terminated path; RTLD_LOCAL keeps the library's symbols
        // from interposing on this process's malloc.
        let h = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if h.is_null() {
            eprintln!(
                "pair: skipping {}: dlopen failed: {}",
                a.name,
                last_dl_error()
            );
            continue;
        }
        let (m, f) = match (
            sym(h, &["ox_malloc", "malloc"]),
            sym(h, &["ox_free", "free"]),
        ) {
            (Some(m), Some(f)) => (m, f),
            _ => {
                eprintln!("pair: skipping {}: no malloc/free symbols", a.name);
                continue;
            }
        };
        // SAFETY: these symbols are the C `malloc`/`free` (or `ox_` equivalents) of the
        // library, with exactly these signatures. The handle is never closed.
        let (m, f) = unsafe {
            (
                std::mem::transmute::<*mut c_void, Malloc>(m),
                std::mem::transmute::<*mut c_void, Free>(f),
            )
        };
        v.push((a.name, m, f));
    }
    v
}

fn pair(c: &mut Criterion) {
    let allocs = load();
    let mut g = c.benchmark_group("malloc_free_pair");
    for size in SIZES {
        for &(name, malloc, free) in &allocs {
            g.bench_with_input(BenchmarkId::new(name, size), &size, |b, &size| {
                b.iter(|| {
                    // SAFETY: the pointer from this allocator's malloc goes straight back to
                    // the same allocator's free (null is accepted by free).
                    unsafe {
                        let p = malloc(black_box(size));
                        free(black_box(p));
                    }
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30);
    targets = pair
}
criterion_main!(benches);
