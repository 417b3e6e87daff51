//! Rust-native workloads under the system allocator (glibc, or whatever is preloaded).
fn main() {
    oxalloc_bench::rust_native::main("system");
}
