//! Rust-native workloads with the `mimalloc` crate as the global allocator.
#[global_allocator]
static A: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    oxalloc_bench::rust_native::main("mimalloc");
}
