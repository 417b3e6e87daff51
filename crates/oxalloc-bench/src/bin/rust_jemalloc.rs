//! Rust-native workloads with the `tikv-jemallocator` crate as the global allocator.
#[global_allocator]
static A: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    oxalloc_bench::rust_native::main("jemalloc");
}
