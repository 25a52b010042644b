//! `rafter-sim`: runs simulation campaigns. `--seeds N` runs N seeds from
//! `--start` (default 0); `--seed S` replays one seed and prints its trace.

use rafter_sim::sim::{self, SimConfig};

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("bad value for {name}: {v}"))
        })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(seed) = arg::<u64>(&args, "--seed") {
        let outcome = sim::run(SimConfig::new(seed));
        print!("{}", outcome.trace);
        let verdict = rafter_sim::verdict(&outcome);
        println!("{verdict}");
        std::process::exit(if verdict.is_ok() { 0 } else { 1 });
    }
    let seeds: u64 = arg(&args, "--seeds").unwrap_or(100);
    let start: u64 = arg(&args, "--start").unwrap_or(0);
    let mut failed = 0u64;
    for seed in start..start + seeds {
        let outcome = sim::run(SimConfig::new(seed));
        let verdict = rafter_sim::verdict(&outcome);
        if !verdict.is_ok() {
            failed += 1;
            println!("seed {seed}: {verdict}");
            println!("replay: cargo run -p rafter-sim -- --seed {seed}");
        }
    }
    println!("{} passed, {failed} failed", seeds - failed);
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
