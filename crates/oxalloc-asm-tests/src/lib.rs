//! Test-only crate: `tests/asm.rs` assembles each program of `examples/asm/` with
//! `nasm`, links it with `cc` (against `liboxalloc.a`, `liboxalloc.so`, or nothing at
//! all for the raw-system-call programs), runs it and checks its output.
//!
//! The library itself is empty; everything is in the integration test.
#![forbid(unsafe_code)]
