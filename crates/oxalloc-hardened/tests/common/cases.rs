//! The expected outcomes of the C and C++ test programs' cases, shared by the host
//! tests and the aarch64 ones (`aarch64.rs`).

pub const SIGABRT: i32 = 6;
pub const SIGSEGV: i32 = 11;

/// (case, expected signal, words the report must contain)
pub const CASES: &[(&str, i32, &[&str])] = &[
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

/// (case, the function in the report, the family that allocated the block)
pub const KIND_MISMATCHES: &[(&str, &str, &str)] = &[
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

/// Misuse across threads in `threads.c`: (case, words the report must contain); each
/// ends with SIGABRT.
pub const THREAD_CASES: &[(&str, &[&str])] = &[
    (
        "double_free",
        &["double free of 0x", "(size 48, class 48)", "in free()"],
    ),
    (
        "never_handed_out",
        &["invalid free of 0x", "never handed out by malloc"],
    ),
    (
        "recycled_slot",
        &["double free of 0x", "the block was already freed"],
    ),
    (
        "overflow",
        &[
            "heap overflow of 0x",
            "(size 40, class 48)",
            "1 bytes past its end",
        ],
    ),
    (
        "write_after_free",
        &[
            "write after free of 0x",
            "byte 8 of the freed block is 0x41",
            // The thread's own quarantine, checked by its exit (the thread caches and
            // the exit key are in use; the shared ring would be found later).
            "in thread exit()",
        ],
    ),
    (
        "usable_size",
        &["use after free of 0x", "in malloc_usable_size()"],
    ),
];
