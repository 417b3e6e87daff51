//! Rust-native workloads: std collections and boxes, served by whatever
//! `#[global_allocator]` the binary that runs them declares.
//!
//! The binaries `oxbench-rust-{system,mimalloc,jemalloc,oxalloc}` are one line each around
//! [`main`]; their command line is `WORKLOAD SCALE` and they print one
//! [`WorkOutput`](crate::workloads::WorkOutput) line, like the C workload child.
//! - `btree`: build a `BTreeMap<String, Vec<u8>>` of random keys and values, look up, remove
//!   half, insert more, drop (an index or a cache);
//! - `hashmap`: a `HashMap<u64, String>` with insert/remove churn at a steady size, then drop;
//! - `boxtree`: build and drop complete binary trees of `Box`ed nodes of several depths while
//!   one long-lived tree stays (after the binary-trees benchmark).

use crate::rng::Rng;
use crate::workloads::{scaled, WorkOutput};
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;

/// The Rust-native workload names.
pub const NAMES: [&str; 3] = ["btree", "hashmap", "boxtree"];

/// `BTreeMap<String, Vec<u8>>`: build, look up, remove half, insert more, drop.
pub fn btree(scale: f64) -> WorkOutput {
    let n = scaled(250_000, scale, 1000) as usize;
    let mut rng = Rng::new(0xB7EE);
    let key = |rng: &mut Rng| format!("key-{:016x}", rng.next_u64());
    let start = std::time::Instant::now();
    let mut map = BTreeMap::new();
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        let k = key(&mut rng);
        let v = vec![k.len() as u8; rng.below(128)];
        keys.push(k.clone());
        map.insert(k, v);
    }
    let mut found = 0usize;
    for _ in 0..n / 2 {
        found += map.get(&keys[rng.below(n)]).map_or(0, Vec::len);
    }
    for k in keys.iter().step_by(2) {
        map.remove(k);
    }
    for _ in 0..n / 4 {
        map.insert(key(&mut rng), vec![1; rng.below(128)]);
    }
    black_box(found);
    drop(map);
    drop(keys);
    WorkOutput {
        ops: Some((n + n / 2 + n / 4) as f64),
        secs: start.elapsed().as_secs_f64(),
        ..WorkOutput::default()
    }
}

/// `HashMap<u64, String>`: fill to a steady size, churn (remove one, insert one), drop.
pub fn hashmap(scale: f64) -> WorkOutput {
    let n = scaled(200_000, scale, 1000) as usize;
    let churn = 5 * n;
    let mut rng = Rng::new(0x4A54);
    let start = std::time::Instant::now();
    let mut map: HashMap<u64, String> = HashMap::new();
    let mut live: Vec<u64> = Vec::with_capacity(n);
    for _ in 0..n {
        let k = rng.next_u64();
        map.insert(k, "v".repeat(rng.range(1, 100)));
        live.push(k);
    }
    for _ in 0..churn {
        let i = rng.below(live.len());
        map.remove(&live[i]);
        let k = rng.next_u64();
        map.insert(k, "w".repeat(rng.range(1, 100)));
        live[i] = k;
    }
    drop(map);
    WorkOutput {
        ops: Some((n + churn) as f64),
        secs: start.elapsed().as_secs_f64(),
        ..WorkOutput::default()
    }
}

/// A binary tree node, boxed.
pub struct Node(Option<(Box<Node>, Box<Node>)>);

fn make(depth: u32) -> Box<Node> {
    Box::new(Node(
        (depth > 0).then(|| (make(depth - 1), make(depth - 1))),
    ))
}

fn check(n: &Node) -> u64 {
    1 + n.0.as_ref().map_or(0, |(l, r)| check(l) + check(r))
}

/// Binary trees of `Box`ed nodes, after the binary-trees benchmark.
pub fn boxtree(scale: f64) -> WorkOutput {
    let max_depth = (17.0 + scale.log2()).round().clamp(6.0, 22.0) as u32;
    let min_depth = 4;
    let start = std::time::Instant::now();
    let long_lived = make(max_depth);
    let mut nodes = 0u64;
    for depth in (min_depth..=max_depth).step_by(2) {
        let iterations = 1u64 << (max_depth - depth + min_depth);
        for _ in 0..iterations {
            nodes += check(&make(depth));
        }
    }
    nodes += check(&long_lived);
    drop(long_lived);
    WorkOutput {
        ops: Some(nodes as f64),
        secs: start.elapsed().as_secs_f64(),
        ..WorkOutput::default()
    }
}

/// Runs Rust-native workload `name`; `None` if unknown.
pub fn run(name: &str, scale: f64) -> Option<WorkOutput> {
    match name {
        "btree" => Some(btree(scale)),
        "hashmap" => Some(hashmap(scale)),
        "boxtree" => Some(boxtree(scale)),
        _ => None,
    }
}

/// `main` of the `#[global_allocator]` binaries: `BIN WORKLOAD [SCALE]`.
pub fn main(allocator: &str) {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map(String::as_str).unwrap_or("");
    let scale = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1.0);
    match run(name, scale) {
        Some(out) => println!("{}", out.to_line()),
        None => {
            eprintln!(
                "usage: {} {{{}}} [SCALE]   (global allocator: {allocator})",
                args.first().map(String::as_str).unwrap_or("oxbench-rust"),
                NAMES.join("|")
            );
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_runs_small() {
        for name in super::NAMES {
            assert!(super::run(name, 0.01).unwrap().ops.unwrap() > 0.0);
        }
    }
}
