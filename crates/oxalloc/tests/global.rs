//! oxalloc as the global allocator of a Rust test binary: std collections, threads,
//! large reallocs, zeroed and over-aligned allocations all go through it.

use std::collections::{BTreeMap, HashMap};

#[global_allocator]
static ALLOC: oxalloc::Oxalloc = oxalloc::Oxalloc;

#[test]
fn collections_work_and_are_counted() {
    let before = ALLOC.totals().allocs;
    let mut m: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for i in 0..20_000 {
        m.insert(format!("key-{i}"), vec![i as u8; i % 300]);
    }
    let total: usize = m.values().map(|v| v.len()).sum();
    assert_eq!(total, (0..20_000).map(|i| i % 300).sum::<usize>());
    let h: HashMap<u64, Box<[u64; 8]>> = (0..10_000u64).map(|i| (i, Box::new([i; 8]))).collect();
    assert_eq!(h[&777][3], 777);
    assert!(ALLOC.totals().allocs - before >= 40_000);
}

#[test]
fn vec_growth_reallocs_in_place_and_keeps_contents() {
    let mut v: Vec<u64> = Vec::new();
    for i in 0..3_000_000u64 {
        v.push(i);
    }
    assert_eq!(v.iter().sum::<u64>(), 3_000_000 * 2_999_999 / 2);
    v.truncate(10);
    v.shrink_to_fit();
    assert_eq!(v, (0..10).collect::<Vec<_>>());
}

#[test]
fn zeroed_and_aligned() {
    let z = vec![0u8; 5 << 20];
    assert!(z.iter().all(|&b| b == 0));
    #[repr(align(4096))]
    struct Page([u8; 4096]);
    let pages: Vec<Box<Page>> = (0..50).map(|_| Box::new(Page([3; 4096]))).collect();
    for p in &pages {
        assert_eq!(p.as_ref() as *const Page as usize % 4096, 0);
        assert_eq!(p.0[4095], 3);
    }
}

#[test]
fn threads_allocate_and_free_each_others_memory() {
    let handles: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                (0..20_000)
                    .map(|i| format!("{t}-{i}"))
                    .collect::<Vec<String>>()
            })
        })
        .collect();
    let all: Vec<Vec<String>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(all.iter().map(|v| v.len()).sum::<usize>(), 160_000);
    assert_eq!(all[3][19_999], "3-19999");
    drop(all);
    assert!(ALLOC.trim() > 0 || ALLOC.mallinfo().keepcost == 0);
}
