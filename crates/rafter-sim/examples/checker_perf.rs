//! Measures the linearizability checker on a correct 10,000-operation
//! register history over 8 keys (8 clients with overlapping operations, 1%
//! of answers lost). Run with `cargo run --release -p rafter-sim --example
//! checker_perf [ops] [seed] [clients] [values] [lost per mille] [broken]`
//! (fewer distinct values and more clients or lost answers make the search
//! harder; `broken` makes a read in the middle return a value never written,
//! to time finding and explaining a violation).

use std::time::{Duration, Instant};

use rafter_sim::checker::register::{Register, RegisterOutput};
use rafter_sim::checker::synth::{register_history, SynthConfig};
use rafter_sim::checker::{check, CheckResult};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ops: usize = args.get(1).map_or(10_000, |a| a.parse().expect("ops"));
    let seed: u64 = args.get(2).map_or(1, |a| a.parse().expect("seed"));
    let mut config = SynthConfig::new(seed, ops);
    if let Some(clients) = args.get(3) {
        config.clients = clients.parse().expect("clients");
    }
    if let Some(values) = args.get(4) {
        config.values = values.parse().expect("values");
    }
    if let Some(lost) = args.get(5) {
        config.indeterminate_per_mille = lost.parse().expect("lost per mille");
    }
    let broken = args.get(6).is_some_and(|a| a == "broken");
    let mut history = register_history(&config);
    if broken {
        let read = (history.len() / 2..)
            .find(|&i| matches!(history[i].output, Some(RegisterOutput::Get(_))))
            .expect("a read in the second half");
        history[read].output = Some(RegisterOutput::Get(Some(u64::MAX)));
    }
    let lost = history.iter().filter(|op| !op.is_determinate()).count();
    let started = Instant::now();
    let result = check(&Register::new(), &history, Duration::from_secs(60));
    let elapsed = started.elapsed();
    let verdict = match &result {
        CheckResult::Ok => "ok".to_string(),
        CheckResult::Illegal(v) => format!("violation at #{}", v.op),
        CheckResult::Unknown { .. } => result.to_string(),
    };
    println!(
        "{ops} operations, {} keys, {} clients, {} values, {lost} indeterminate: {verdict} in {:.1} ms",
        config.keys,
        config.clients,
        config.values,
        elapsed.as_secs_f64() * 1000.0
    );
    if broken {
        println!("{result}");
        assert!(
            result.violation().is_some(),
            "a read of a value never written"
        );
    } else {
        assert_eq!(
            result,
            CheckResult::Ok,
            "a correct register's history must check ok"
        );
    }
}
