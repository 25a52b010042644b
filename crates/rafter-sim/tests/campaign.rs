//! CI's simulation budget: a fixed range of seeds with faults on must pass,
//! and a seed must replay byte for byte. With a test-only bug turned on
//! (CI's mutation checks: `RAFTER_FAULT=<name>`; the bugs are compiled in),
//! the same budget must instead catch the bug.

use rafter_sim::sim::{self, SimConfig};

/// Seeds CI runs on every change (`cargo run -p rafter-sim -- --seeds N` for
/// longer campaigns).
const CI_SEEDS: u64 = 300;

/// Seeds of local writers (no KV clients) CI runs beside them.
const LOCAL_WRITE_SEEDS: u64 = 60;

/// Seeds of local writers beside consistent clients, under every conflict
/// policy (`SimConfig::mixed_config`).
const MIXED_SEEDS: u64 = 60;

/// Seeds that add a member (learner, then promoted) and remove a founding
/// member under faults (`SimConfig::membership_config`).
const MEMBERSHIP_SEEDS: u64 = 60;

/// Every run of the budget, the kinds interleaved (five default seeds,
/// then one of each other kind), so a bug that only one kind can catch is
/// met early.
fn campaign_configs() -> impl Iterator<Item = SimConfig> {
    let per_round = CI_SEEDS / LOCAL_WRITE_SEEDS;
    const {
        assert!(
            LOCAL_WRITE_SEEDS == MIXED_SEEDS && MIXED_SEEDS == MEMBERSHIP_SEEDS,
            "rounds group them"
        )
    };
    (0..LOCAL_WRITE_SEEDS).flat_map(move |round| {
        (round * per_round..(round + 1) * per_round)
            .map(SimConfig::new)
            .chain([
                SimConfig::local_writes_config(round),
                SimConfig::mixed_config(round),
                SimConfig::membership_config(round),
            ])
    })
}

fn campaign() -> impl Iterator<Item = rafter_sim::Verdict> {
    campaign_configs().map(|config| rafter_sim::verdict(&sim::run(config)))
}

#[test]
fn replay_is_byte_for_byte() {
    let a = sim::run(SimConfig::new(4242));
    let b = sim::run(SimConfig::new(4242));
    assert!(!a.trace.is_empty());
    assert_eq!(a.trace, b.trace, "same seed, different trace");
    assert_eq!(format!("{:?}", a.history), format!("{:?}", b.history));
    let c = sim::run(SimConfig::new(4243));
    assert_ne!(a.trace, c.trace, "different seeds should differ");
}

/// The test-only bug this process runs with (mutation checks).
fn injected() -> Option<rafter_core::fault::Fault> {
    let selected = rafter_core::fault::selected();
    let asked = std::env::var("RAFTER_FAULT").is_ok_and(|v| !v.is_empty());
    // A check whose bug is not compiled in would pass without testing it.
    assert!(
        selected.is_some() || !asked,
        "RAFTER_FAULT is set but this build has no test-only bugs compiled in (feature faults)"
    );
    selected
}

#[test]
fn ci_seed_budget_passes() {
    if let Some(fault) = injected() {
        println!(
            "{} is on: ci_seed_budget_catches_the_injected_bug applies",
            fault.name()
        );
        return;
    }
    let failures: Vec<String> = campaign()
        .filter(|v| !v.is_ok())
        .map(|v| format!("{v}replay: cargo run -p rafter-sim -- --seed {}", v.seed))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// With an injected bug, some seed in the budget must fail, naming the
/// violated property. The check stops at the first run that catches it
/// (`rafter-sim --seeds N` with the bug on counts how many seeds do).
#[test]
fn ci_seed_budget_catches_the_injected_bug() {
    let Some(fault) = injected() else {
        println!("no test-only bug is on: ci_seed_budget_passes applies");
        return;
    };
    println!("mutation check: {}", fault.name());
    let mut runs = 0;
    let caught = campaign().find(|v| {
        runs += 1;
        !v.is_ok()
    });
    let Some(caught) = caught else {
        panic!("the injected bug went unnoticed in {runs} runs");
    };
    println!("caught by run {runs} of the budget:\n{caught}");
    assert!(
        caught.problems.iter().any(|p| [
            "linearizab",
            "safety",
            "watch:",
            "lease:",
            "exactly-once",
            "local write:"
        ]
        .iter()
        .any(|property| p.contains(property))),
        "report must name the violated property: {caught}"
    );
}

/// Lessees attach keys to their leases (no KV clients, whose history model
/// counts revisions exactly): keys go with their lease, watchers see them
/// go, and no kept-alive lease is revoked early.
#[test]
fn lease_keys_campaign_passes() {
    if injected().is_some() {
        return; // the mutation check is ci_seed_budget_catches_the_injected_bug
    }
    let failures: Vec<String> = (0..LEASE_KEY_SEEDS)
        .map(|seed| rafter_sim::verdict(&sim::run(SimConfig::lease_keys_config(seed))))
        .filter(|v| !v.is_ok())
        .map(|v| v.to_string())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Seeds of the lease-keys campaign CI runs.
const LEASE_KEY_SEEDS: u64 = 100;
