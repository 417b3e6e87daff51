//! The misuse battery: each C program run does one misuse under the hardened library
//! (preloaded, and linked statically) and must end with SIGABRT and the right report,
//! or with SIGSEGV where the access itself faults (freed large block, guard page,
//! `malloc(0)` memory).

mod common;
use common::*;

#[test]
fn each_misuse_is_reported_under_ld_preload() {
    let prog = build("misuse", "cc", "misuse.c", &[]);
    for &(case, sig, needles) in CASES {
        let out = run(&prog, &[case], true, &[]);
        expect_signal(&out, sig, needles, case);
        if sig == SIGABRT {
            // The stack names the program's code, not the allocator's: the first frame
            // is inside the test program (a PIE, mapped low), not in the .so.
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("\n  at: 0x"), "{case}: no stack:\n{err}");
        }
    }
}

#[test]
fn overwritten_free_list_link_is_caught_before_malloc_returns_it() {
    let prog = build("misuse", "cc", "misuse.c", &[]);
    let no_quarantine = [("OXALLOC_QUARANTINE", "0")];
    let out = run(&prog, &["freelist_foreign"], true, &no_quarantine);
    expect_signal(
        &out,
        SIGABRT,
        &[
            "write after free of 0x",
            "in malloc(): the free list handed out a block that is outside the heap",
        ],
        "freelist_foreign",
    );
    let out = run(&prog, &["freelist_interior"], true, &no_quarantine);
    expect_signal(
        &out,
        SIGABRT,
        &["in malloc(): the free list handed out a block that is not a block of its size class"],
        "freelist_interior",
    );
}

#[test]
fn misuse_is_reported_when_linked_statically() {
    let lib = static_lib();
    let lib = lib.to_str().unwrap();
    let prog = build(
        "misuse-static",
        "cc",
        "misuse.c",
        &[lib, "-lpthread", "-ldl", "-lm", "-lgcc_s"],
    );
    for &(case, sig, needles) in CASES.iter().step_by(3) {
        let out = run(&prog, &[case], false, &[]);
        expect_signal(&out, sig, needles, case);
    }
}

#[test]
fn a_one_mib_linear_overflow_hits_a_guard_slice_preloaded_and_static() {
    let prog = build("misuse", "cc", "misuse.c", &[]);
    let lib = static_lib();
    let lib = lib.to_str().unwrap();
    let stat = build(
        "misuse-static",
        "cc",
        "misuse.c",
        &[lib, "-lpthread", "-ldl", "-lm", "-lgcc_s"],
    );
    for case in ["overflow_1mib_small", "overflow_1mib_medium"] {
        expect_signal(&run(&prog, &[case], true, &[]), SIGSEGV, &[], case);
        expect_signal(&run(&stat, &[case], false, &[]), SIGSEGV, &[], case);
    }
}

#[test]
fn a_string_filling_its_block_without_terminator_ends_at_the_canary() {
    let prog = build("misuse", "cc", "misuse.c", &[]);
    let lib = static_lib();
    let lib = lib.to_str().unwrap();
    let stat = build(
        "misuse-static",
        "cc",
        "misuse.c",
        &[lib, "-lpthread", "-ldl", "-lm", "-lgcc_s"],
    );
    for out in [
        run(&prog, &["unterminated_string"], true, &[]),
        run(&stat, &["unterminated_string"], false, &[]),
    ] {
        expect_ok(&out, "unterminated_string");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("strlen 45\n"), "{stdout}");
    }
}

#[test]
fn cxx_new_delete_and_malloc_family_mismatches_are_reported_preloaded_and_static() {
    let prog = build("cxx", "c++", "cxx.cpp", &[]);
    let lib = static_lib();
    let lib = lib.to_str().unwrap();
    let stat = build(
        "cxx-static",
        "c++",
        "cxx.cpp",
        &[lib, "-lpthread", "-ldl", "-lm", "-lgcc_s"],
    );
    for &(case, op, family) in KIND_MISMATCHES {
        let within = format!("in {op}(): the block was allocated by {family} ");
        let needles = ["mismatched allocation and deallocation of 0x", &within];
        expect_signal(&run(&prog, &[case], true, &[]), SIGABRT, &needles, case);
        expect_signal(&run(&stat, &[case], false, &[]), SIGABRT, &needles, case);
    }
    let out = run(&stat, &["clean"], false, &[]);
    expect_ok(&out, "cxx clean, static");
    assert!(String::from_utf8_lossy(&out.stdout).contains("cxx clean ok"));
}

#[test]
fn cxx_sized_and_aligned_delete_mismatches_are_reported() {
    let prog = build("cxx", "c++", "cxx.cpp", &[]);
    let cases: &[(&str, &[&str])] = &[
        (
            "sized_delete_wrong",
            &[
                "size mismatch of 0x",
                "in operator delete(): freed with size 40, allocated with size 48",
            ],
        ),
        (
            "aligned_delete_wrong",
            &[
                "alignment mismatch of 0x",
                "freed with alignment 128, allocated with alignment 64",
            ],
        ),
        (
            "double_delete",
            &["double free of 0x", "in operator delete()"],
        ),
        (
            "delete_large_wrong_size",
            &[
                "size mismatch of 0x",
                "freed with size 1000, allocated with size 1048576",
            ],
        ),
    ];
    for &(case, needles) in cases {
        let out = run(&prog, &[case], true, &[]);
        expect_signal(&out, SIGABRT, needles, case);
    }
    // Clean C++ use, including std::bad_alloc thrown by our operator new.
    let out = run(&prog, &["clean"], true, &[]);
    expect_ok(&out, "cxx clean");
    assert!(String::from_utf8_lossy(&out.stdout).contains("cxx clean ok"));
}
