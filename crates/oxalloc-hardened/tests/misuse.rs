//! The misuse battery: each C program run does one misuse under the hardened library
//! (preloaded, and linked statically) and must end with SIGABRT and the right report,
//! or with SIGSEGV where the access itself faults (freed large block, guard page,
//! `malloc(0)` memory).

mod common;
use common::*;

const SIGABRT: i32 = 6;
const SIGSEGV: i32 = 11;

/// (case, expected signal, words the report must contain)
const CASES: &[(&str, i32, &[&str])] = &[
    (
        "double_free_small",
        SIGABRT,
        &["double free of 0x", "(size 48, class 48)", "in free()"],
    ),
    (
        "double_free_large",
        SIGABRT,
        &["double free of 0x", "size 262144", "in free()"],
    ),
    (
        "invalid_free_stack",
        SIGABRT,
        &["invalid free of 0x", "looks like a stack address"],
    ),
    (
        "invalid_free_static",
        SIGABRT,
        &["invalid free of 0x", "not a block returned by malloc"],
    ),
    (
        "interior_small",
        SIGABRT,
        &[
            "invalid free",
            "interior pointer, 16 bytes into",
            "class 48",
        ],
    ),
    (
        "interior_large",
        SIGABRT,
        &[
            "invalid free",
            "interior pointer, 4096 bytes into the large block",
        ],
    ),
    (
        "unaligned_small",
        SIGABRT,
        &["invalid free", "unaligned pointer, 1 bytes into"],
    ),
    (
        "unaligned_large",
        SIGABRT,
        &["invalid free", "1 bytes into the large block"],
    ),
    (
        "never_handed_out",
        SIGABRT,
        &["invalid free", "never handed out by malloc"],
    ),
    (
        "write_after_free_small",
        SIGABRT,
        &[
            "write after free of 0x",
            "byte 8 of the freed block is 0x41",
            "left the quarantine",
        ],
    ),
    (
        "write_after_free_check",
        SIGABRT,
        &[
            "write after free of 0x",
            "byte 0 of the freed block is 0x42",
            "ox_hardened_check",
        ],
    ),
    (
        "write_after_free_trim",
        SIGABRT,
        &[
            "write after free of 0x",
            "byte 5 of the freed block is 0x43",
        ],
    ),
    ("read_after_free_large", SIGSEGV, &[]),
    // A freed block whose mapping keeps its pages for reuse is as closed as one whose
    // pages were discarded (and a reused one held no stale byte: exit 3 otherwise).
    ("reused_large_read_after_free", SIGSEGV, &[]),
    (
        "reused_large_double_free",
        SIGABRT,
        &["double free of 0x", "size 81920", "in free()"],
    ),
    ("write_after_free_large", SIGSEGV, &[]),
    (
        "overflow_small",
        SIGABRT,
        &[
            "heap overflow of 0x",
            "(size 45, class 48)",
            "1 bytes past its end",
        ],
    ),
    (
        "overflow_large_canary",
        SIGABRT,
        &["heap overflow of 0x", "size 262141", "1 bytes past its end"],
    ),
    ("overflow_large", SIGSEGV, &[]),
    (
        "overflow_aligned",
        SIGABRT,
        &[
            "heap overflow of 0x",
            "(size 40, class 48)",
            "1 bytes past its end",
        ],
    ),
    (
        "usable_size_bad",
        SIGABRT,
        &[
            "invalid pointer of 0x",
            "in malloc_usable_size()",
            "interior pointer",
        ],
    ),
    (
        "usable_size_freed",
        SIGABRT,
        &["use after free of 0x", "in malloc_usable_size()"],
    ),
    (
        "realloc_freed_small",
        SIGABRT,
        &["double free of 0x", "in realloc()", "already freed"],
    ),
    (
        "realloc_freed_large",
        SIGABRT,
        &[
            "double free of 0x",
            "in realloc()",
            "large block was already freed",
        ],
    ),
    (
        "realloc_invalid",
        SIGABRT,
        &["invalid free of 0x", "in realloc()"],
    ),
    (
        "free_sized_freed",
        SIGABRT,
        &["double free of 0x", "in free_sized()"],
    ),
    (
        "free_sized_wrong_small",
        SIGABRT,
        &[
            "size mismatch of 0x",
            "in free_sized(): freed with size 40, allocated with size 48",
        ],
    ),
    (
        "free_sized_wrong_large",
        SIGABRT,
        &[
            "size mismatch of 0x",
            "freed with size 262136, allocated with size 262144",
        ],
    ),
    (
        "free_aligned_sized_wrong_align",
        SIGABRT,
        &[
            "alignment mismatch of 0x",
            "in free_aligned_sized(): freed with alignment 128, allocated with alignment 64",
        ],
    ),
    (
        "free_aligned_sized_wrong_size",
        SIGABRT,
        &["size mismatch of 0x", "in free_aligned_sized()"],
    ),
    ("underflow_into_metadata", SIGSEGV, &[]),
    ("overflow_1mib_small", SIGSEGV, &[]),
    ("overflow_1mib_medium", SIGSEGV, &[]),
    ("malloc0_access", SIGSEGV, &[]),
    (
        "malloc0_double_free",
        SIGABRT,
        &["double free of 0x", "(size 0, class 0)"],
    ),
];

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

/// (case, the function in the report, the family that allocated the block)
const KIND_MISMATCHES: &[(&str, &str, &str)] = &[
    ("delete_of_new_array", "operator delete", "operator new[]"),
    ("delete_array_of_new", "operator delete[]", "operator new"),
    ("free_of_new", "free", "operator new"),
    ("free_of_new_array", "free", "operator new[]"),
    ("delete_of_malloc", "operator delete", "malloc"),
    ("realloc_of_new", "realloc", "operator new"),
    (
        "delete_of_new_array_large",
        "operator delete",
        "operator new[]",
    ),
    ("free_of_new_large", "free", "operator new"),
    ("free_of_new_array_zero", "free", "operator new[]"),
    (
        "delete_array_of_new_nothrow",
        "operator delete[]",
        "operator new",
    ),
];

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
