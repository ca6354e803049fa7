//! Micro-benchmarks of the core (placeholder until the first benchmark lands).

fn main() {}
