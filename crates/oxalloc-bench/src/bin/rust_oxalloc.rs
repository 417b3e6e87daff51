//! Rust-native workloads with the `oxalloc` crate as the global allocator
//! (built only with the `oxalloc` feature of oxalloc-bench).
#[global_allocator]
static A: oxalloc::Oxalloc = oxalloc::Oxalloc;

fn main() {
    oxalloc_bench::rust_native::main("oxalloc");
}
