//! The statistics API's trim, purge and options: memory given back and counted,
//! options set and read back, bad values refused with an error value.
//!
//! The tests take turns (`serial`): they change process-wide options and read
//! process-wide figures. The exact per-figure checks are in `stats_exact.rs`, alone in
//! their binary.

use oxalloc::options::{self, OptionError, RuntimeOption};
use oxalloc::stats;
use std::sync::{Mutex, MutexGuard};

#[global_allocator]
static ALLOC: oxalloc::Oxalloc = oxalloc::Oxalloc;

const MIB: u64 = 1 << 20;

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Bytes given back to the OS so far.
fn returned() -> u64 {
    let t = stats::totals();
    t.purged_bytes + t.unmapped_bytes
}

/// Puts the run-time options back as they were when dropped, also when a test fails
/// (so one failure does not cascade into the others).
struct Restore([u64; RuntimeOption::ALL.len()]);

impl Restore {
    fn new() -> Restore {
        Restore(RuntimeOption::ALL.map(|o| o.get()))
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        for (o, v) in RuntimeOption::ALL.into_iter().zip(self.0) {
            o.set(v).unwrap();
        }
    }
}

/// Sets the options so that nothing gives freed memory back on its own for a minute:
/// a purge delay of a minute, no cache cap to speak of, no demand window. They are
/// restored when the result is dropped.
fn keep_everything() -> Restore {
    let old = Restore::new();
    RuntimeOption::PurgeDelayMs.set(60_000).unwrap();
    RuntimeOption::CacheMaxMib.set(1 << 20).unwrap();
    RuntimeOption::DemandWindowMs.set(0).unwrap();
    old
}

#[test]
fn trim_gives_a_freed_burst_back() {
    let _turn = serial();
    let _restore = keep_everything();
    const BURST: u64 = 20 * MIB;
    let blocks: Vec<Vec<u8>> = (0..BURST / 1000).map(|i| vec![i as u8; 1000]).collect();
    let before = returned();
    let in_use = stats::totals().in_use_bytes;
    assert!(in_use >= BURST, "{in_use} bytes in use with the burst live");
    drop(blocks);
    assert_eq!(returned(), before, "the free gave memory back by itself");

    let released = oxalloc::trim() as u64;
    let t = stats::totals();
    assert!(
        released >= BURST * 9 / 10,
        "trim released {released} of the {BURST} bytes freed"
    );
    assert!(
        t.purged_bytes + t.unmapped_bytes - before >= BURST * 9 / 10,
        "purged and unmapped rose by {} only",
        t.purged_bytes + t.unmapped_bytes - before
    );
    // What is cached now is at most what other threads freed since (test threads
    // exiting): far less than the burst.
    assert!(
        t.cached_bytes < 2 * MIB,
        "{} bytes still cached",
        t.cached_bytes
    );
    assert!(t.purge_calls >= 1);
}

#[test]
fn purge_keeps_recent_pages_until_the_delay_says_they_are_due() {
    let _turn = serial();
    let _restore = keep_everything();
    // Nothing older than this test's start is left to purge.
    oxalloc::trim();
    const BURST: u64 = 8 * MIB;
    // Large blocks (256 KiB): their spans go back to the central pool when freed.
    let blocks: Vec<Vec<u8>> = (0..BURST / (256 << 10))
        .map(|i| vec![i as u8; 256 << 10])
        .collect();
    drop(blocks);
    // The test harness's other threads allocate meanwhile (their output, their
    // results): a new small span for them comes out of the freed memory. Seen once on
    // musl: 2 slices (128 KiB) of the 8 MiB.
    const SLACK: u64 = MIB;
    let cached = stats::totals().cached_bytes;
    assert!(
        cached + SLACK >= BURST,
        "{cached} bytes cached after freeing {BURST}"
    );

    // Freed just now, with a purge delay of a minute: nothing is due.
    oxalloc::purge();
    let still = stats::totals().cached_bytes;
    assert!(
        still + SLACK >= BURST,
        "purge gave back recent pages: {still} cached"
    );

    // With no delay, all of it is due.
    let before = returned();
    RuntimeOption::PurgeDelayMs.set(0).unwrap();
    oxalloc::purge();
    let after = stats::totals();
    assert!(
        after.cached_bytes + BURST <= still + SLACK,
        "with no delay, purge left {} of {still} bytes cached",
        after.cached_bytes
    );
    assert!(
        returned() - before + SLACK >= BURST,
        "purged and unmapped counts"
    );
}

#[test]
fn runtime_options_read_back_what_was_set() {
    let _turn = serial();
    let _restore = Restore::new();
    for o in RuntimeOption::ALL {
        let env = format!("{o}");
        assert!(env.starts_with("OXALLOC_"), "{env}");
        assert_eq!(RuntimeOption::from_name(&env), Some(o));
        assert_eq!(RuntimeOption::from_name(o.name()), Some(o));
        assert!(!o.doc().is_empty());
        let start = o.get();
        if std::env::var_os(&env).is_none() {
            assert_eq!(start, o.default_value(), "{env} without the variable");
        }
        assert_eq!(o.is_flag(), o.max() == 1, "{env}");
        // Set to the largest allowed, then to 0: read back each time; the previous
        // value is returned.
        assert_eq!(o.set(o.max()), Ok(start), "{env}");
        assert_eq!(o.get(), o.max(), "{env}");
        assert_eq!(options::get_by_name(&env), Ok(o.max()));
        // One more is refused and changes nothing.
        assert_eq!(
            o.set(o.max() + 1),
            Err(OptionError::OutOfRange {
                value: o.max() + 1,
                max: o.max()
            }),
            "{env}"
        );
        assert_eq!(o.get(), o.max(), "{env} changed by a refused value");
        assert_eq!(o.set(0), Ok(o.max()));
        assert_eq!(o.get(), 0);
        o.set(start).unwrap();
        assert_eq!(o.get(), start);
    }
}

#[test]
fn options_set_by_name_parse_like_the_environment() {
    let _turn = serial();
    let _restore = Restore::new();
    let start = RuntimeOption::PurgeDelayMs.get();
    assert_eq!(
        options::set_by_name("OXALLOC_PURGE_DELAY_MS", "25"),
        Ok(start)
    );
    assert_eq!(RuntimeOption::PurgeDelayMs.get(), 25);
    assert_eq!(options::set_by_name("purge_delay_ms", " 30 "), Ok(25));
    assert_eq!(options::get_by_name("Oxalloc_Purge_Delay_Ms"), Ok(30));

    // Bad values: an error value, and the option keeps its value.
    for bad in ["soon", "-1", "", "12x", "1.5", "99999999999999999999"] {
        assert_eq!(
            options::set_by_name("PURGE_DELAY_MS", bad),
            Err(OptionError::InvalidValue),
            "{bad:?}"
        );
    }
    assert_eq!(
        options::set_by_name("PURGE_DELAY_MS", "3600001"),
        Err(OptionError::OutOfRange {
            value: 3_600_001,
            max: 3_600_000
        })
    );
    assert_eq!(
        options::set_by_name("FOREIGN_FREE", "3"),
        Err(OptionError::OutOfRange { value: 3, max: 2 })
    );
    assert_eq!(
        RuntimeOption::PurgeDelayMs.get(),
        30,
        "changed by a refused value"
    );

    // Flags take the environment's spellings.
    let verbose = RuntimeOption::Verbose.get();
    assert_eq!(options::set_by_name("VERBOSE", "on"), Ok(verbose));
    assert_eq!(RuntimeOption::Verbose.get(), 1);
    assert_eq!(options::set_by_name("VERBOSE", "No"), Ok(1));
    assert_eq!(RuntimeOption::Verbose.get(), 0);
    assert_eq!(
        options::set_by_name("VERBOSE", "maybe"),
        Err(OptionError::InvalidValue)
    );
    RuntimeOption::Verbose.set(verbose).unwrap();

    // Unknown names and options fixed at start.
    assert_eq!(
        options::set_by_name("NO_SUCH_OPTION", "1"),
        Err(OptionError::UnknownName)
    );
    assert_eq!(
        options::get_by_name("OXALLOC_"),
        Err(OptionError::UnknownName)
    );
    for (name, fixed) in [
        ("OXALLOC_BACKGROUND_PURGE", "BACKGROUND_PURGE"),
        ("page_source", "PAGE_SOURCE"),
        ("STATS_FILE", "STATS_FILE"),
        ("OXALLOC_STATS_SHM", "STATS_SHM"),
    ] {
        assert_eq!(
            options::set_by_name(name, "0"),
            Err(OptionError::FixedAtStart(fixed)),
            "{name}"
        );
    }
    if std::env::var_os("OXALLOC_BACKGROUND_PURGE").is_none() {
        assert_eq!(options::get_by_name("BACKGROUND_PURGE"), Ok(1));
    }
    if std::env::var_os("OXALLOC_PAGE_SOURCE").is_none() {
        assert_eq!(options::get_by_name("PAGE_SOURCE"), Ok(0));
    }
    assert_eq!(
        options::get_by_name("STATS_FILE"),
        Err(OptionError::FixedAtStart("STATS_FILE"))
    );

    // The errors explain themselves.
    let msg = OptionError::FixedAtStart("PAGE_SOURCE").to_string();
    assert!(msg.contains("OXALLOC_PAGE_SOURCE"), "{msg}");
    let msg = OptionError::OutOfRange { value: 3, max: 2 }.to_string();
    assert!(msg.contains('3') && msg.contains('2'), "{msg}");
    let e: Box<dyn std::error::Error> = Box::new(OptionError::InvalidValue);
    assert!(e.to_string().contains("invalid value"));

    RuntimeOption::PurgeDelayMs.set(start).unwrap();
}

#[test]
fn readings_are_consistent() {
    let _turn = serial();
    let live: Vec<Box<[u8; 100]>> = (0..1000).map(|_| Box::new([1; 100])).collect();
    let t = stats::totals();
    assert_eq!(t.committed_bytes, t.in_use_bytes + t.cached_bytes);
    assert!(t.mapped_bytes >= t.committed_bytes, "{t:?}");
    assert!(t.peak_mapped_bytes >= t.mapped_bytes);
    assert!(t.peak_in_use_bytes >= t.in_use_bytes);
    assert!(t.allocs >= t.frees + 1000, "{t:?}");
    assert!(t.live_small_bytes >= 1000 * 112, "{t:?}");
    assert!(t.bytes_allocated >= t.live_small_bytes);
    assert_eq!(ALLOC.totals().heaps, t.heaps);

    let classes = stats::size_classes();
    let c112 = stats::size_class_for(100).unwrap();
    assert_eq!(c112.size, 112);
    assert!(classes[c112.index].live_blocks >= 1000);
    // The classes add up to the totals' small bytes.
    let live_bytes: u64 = classes.iter().map(|c| c.live_bytes).sum();
    let allocs: u64 = classes.iter().map(|c| c.allocs).sum();
    let now = stats::totals();
    assert!(
        live_bytes.abs_diff(now.live_small_bytes) < 64 << 10,
        "classes {live_bytes}, totals {}",
        now.live_small_bytes
    );
    assert!(allocs <= now.allocs);
    assert!(stats::size_class_for(stats::MAX_SMALL_SIZE).is_some());
    assert!(stats::size_class_for(stats::MAX_SMALL_SIZE + 1).is_none());

    let heaps = stats::heaps();
    let mine = heaps
        .iter()
        .find(|h| h.current)
        .expect("this thread's heap");
    assert!(!mine.abandoned && mine.thread_id != 0);
    assert!(mine.live_small_bytes >= 1000 * 112);
    assert_eq!(stats::current_heap().map(|h| h.id), Some(mine.id));
    let ids: std::collections::BTreeSet<u64> = heaps.iter().map(|h| h.id).collect();
    assert_eq!(ids.len(), heaps.len(), "heap ids are unique");
    drop(live);
}
