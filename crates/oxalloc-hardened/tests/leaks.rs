//! The leak report: text summary on stderr, the machine file for `oxalloc leaks`, and
//! an address from it that `addr2line` resolves to the leaking function.

mod common;
use common::*;
use std::process::Command;

#[test]
fn leak_report_names_the_leaking_function() {
    let prog = build("leak", "cc", "leak.c", &[]);
    let dir = profile_dir().join("hardened-programs");
    let pattern = dir.join("leaks-%p.txt");
    let out = run(
        &prog,
        &[],
        true,
        &[
            ("OXALLOC_LEAKS", "1"),
            ("OXALLOC_LEAKS_FILE", pattern.to_str().unwrap()),
        ],
    );
    expect_ok(&out, "leak");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("oxalloc: 3000 bytes in 3 blocks leaked, allocated at 0x"),
        "{err}"
    );
    assert!(
        err.contains("SUMMARY: oxalloc: 3000 bytes leaked in 3 allocations"),
        "{err}"
    );

    // The child's PID names the file; find the newest leaks-*.txt for our program.
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("leaks-")
        })
        .max_by_key(|p| p.metadata().unwrap().modified().unwrap())
        .expect("a leak file");
    let text = std::fs::read_to_string(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("oxalloc-leaks 1 pid="), "{header}");
    let leak = lines.next().unwrap();
    let words: Vec<&str> = leak.split_whitespace().collect();
    assert_eq!(&words[..3], &["leak", "3000", "3"], "{leak}");
    assert!(words[3..].iter().all(|w| w.starts_with("0x")), "{leak}");
    assert_eq!(lines.next(), Some("maps"));
    let maps: Vec<&str> = lines.collect();

    // Symbolise the innermost address: find the program's first mapping (its load
    // base), then addr2line the offset.
    let addr = u64::from_str_radix(words[3].trim_start_matches("0x"), 16).unwrap();
    let exe = prog.canonicalize().unwrap();
    let base = maps
        .iter()
        .filter(|l| l.ends_with(exe.to_str().unwrap()))
        .filter_map(|l| {
            let range = l.split_whitespace().next()?;
            let off = u64::from_str_radix(l.split_whitespace().nth(2)?, 16).ok()?;
            let start = u64::from_str_radix(range.split('-').next()?, 16).ok()?;
            (off == 0).then_some(start)
        })
        .next()
        .expect("program mapping in maps");
    let a2l = Command::new("addr2line")
        .args(["-f", "-e"])
        .arg(&exe)
        .arg(format!("{:#x}", addr - 1 - base))
        .output()
        .expect("addr2line");
    let sym = String::from_utf8_lossy(&a2l.stdout);
    assert!(sym.starts_with("leaky_function"), "addr2line said {sym}");
    assert!(sym.contains("leak.c:9"), "addr2line said {sym}");
}

#[test]
fn no_report_without_the_option() {
    let prog = build("leak", "cc", "leak.c", &[]);
    let out = run(&prog, &[], true, &[]);
    expect_ok(&out, "leak without OXALLOC_LEAKS");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("leaked"));
}
