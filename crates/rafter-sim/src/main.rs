//! `rafter-sim`: runs simulation campaigns. `--seeds N` runs N seeds from
//! `--start` (default 0); `--seed S` replays one seed and prints its trace.
//! `--keys K --clients C --run-ms T` size the workload (defaults as in CI);
//! `--lease-keys` runs lessees that attach keys, with no KV clients;
//! `--local-writes` runs local writers (`Set(consistent=false)` on random
//! members), with no KV clients (`--local-writers N` of them); `--mixed`
//! runs local writers beside consistent KV clients on keys under every
//! conflict policy; `--membership` adds a member (learner, then promoted)
//! and removes a founding member during the run.

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

fn config(args: &[String], seed: u64) -> SimConfig {
    let mut cfg = if args.iter().any(|a| a == "--lease-keys") {
        SimConfig::lease_keys_config(seed)
    } else if args.iter().any(|a| a == "--local-writes") {
        SimConfig::local_writes_config(seed)
    } else if args.iter().any(|a| a == "--mixed") {
        SimConfig::mixed_config(seed)
    } else if args.iter().any(|a| a == "--membership") {
        SimConfig::membership_config(seed)
    } else {
        SimConfig::new(seed)
    };
    if let Some(k) = arg(args, "--keys") {
        cfg.keys = k;
    }
    if let Some(c) = arg(args, "--clients") {
        cfg.clients = c;
    }
    if let Some(t) = arg(args, "--run-ms") {
        cfg.run_ms = t;
    }
    if let Some(w) = arg(args, "--local-writers") {
        cfg.local_writers = w;
    }
    cfg
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(seed) = arg::<u64>(&args, "--seed") {
        let outcome = sim::run(config(&args, seed));
        print!("{}", outcome.trace);
        let started = std::time::Instant::now();
        let verdict = rafter_sim::verdict(&outcome);
        println!("{verdict}");
        println!(
            "checked {} operations in {} ms",
            outcome.history.len(),
            started.elapsed().as_millis()
        );
        std::process::exit(if verdict.is_ok() { 0 } else { 1 });
    }
    let seeds: u64 = arg(&args, "--seeds").unwrap_or(100);
    let start: u64 = arg(&args, "--start").unwrap_or(0);
    let mut failed = 0u64;
    let started = std::time::Instant::now();
    for seed in start..start + seeds {
        let done = seed - start;
        if done > 0 && done.is_multiple_of(1000) {
            eprintln!(
                "{done}/{seeds} seeds, {failed} failed, {:.0} seeds/s",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
        let outcome = sim::run(config(&args, seed));
        let verdict = rafter_sim::verdict(&outcome);
        if !verdict.is_ok() {
            failed += 1;
            println!("{verdict}");
            println!("replay: cargo run -p rafter-sim -- --seed {seed}");
        }
    }
    println!("{} passed, {failed} failed", seeds - failed);
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
