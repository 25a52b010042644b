//! Seed 000 (Kubernetes issue 59848) against a running cluster: two API
//! servers answer from watch-fed caches; API-2 is cut off (a proxy in
//! front of its endpoint stops forwarding); a pod moves from K1 to K2;
//! K1 restarts and asks API-2 for its pods. With stale caches it runs the
//! moved pod a second time; with consistent caches it gets an error and
//! waits until API-2 is back.
//!
//! ```text
//! scripts/cluster.sh start     # or any etcd cluster
//! cargo run -p rafter-client --example seed000 -- \
//!     --endpoints 127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 [--cache stale|consistent]
//! ```
//!
//! API-2 talks to the last endpoint (through the proxy), API-1 to the
//! others. Without `--cache` both kinds are played.

mod scenario;
mod stall_proxy;

use scenario::{Mode, Scenario};
use stall_proxy::StallProxy;

fn usage() -> ! {
    eprintln!("usage: seed000 --endpoints HOST:PORT[,HOST:PORT...] [--cache stale|consistent]");
    std::process::exit(2)
}

async fn play(endpoints: &[String], mode: Mode) -> Result<(), String> {
    let last = endpoints.last().expect("at least one endpoint");
    let target = last.trim_start_matches("http://").to_string();
    let proxy = StallProxy::start(target)
        .await
        .map_err(|e| format!("start the proxy: {e}"))?;
    let api1: Vec<String> = if endpoints.len() > 1 {
        endpoints[..endpoints.len() - 1].to_vec()
    } else {
        endpoints.to_vec()
    };
    let api2 = vec![proxy.endpoint()];
    let mut s = Scenario::prepare(&api1, &api2, mode).await?;
    proxy.set_stalled(true);
    let cut = s.play().await;
    proxy.set_stalled(false);
    let healed = match &cut {
        Ok(_) => Some(s.after_heal().await),
        Err(_) => None,
    };
    for line in &s.log {
        println!("  {line}");
    }
    let cut = cut?;
    println!(
        "RESULT {mode:?} caches while API-2 was cut off: {}",
        if cut.duplicates.is_empty() {
            "no duplicate pod".to_string()
        } else {
            format!("duplicate pod {:?}", cut.duplicates)
        }
    );
    if let Some(healed) = healed {
        healed?;
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let mut endpoints = Vec::new();
    let mut modes = vec![Mode::Stale, Mode::Consistent];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--endpoints" => {
                let list = args.next().unwrap_or_else(|| usage());
                endpoints = list.split(',').map(String::from).collect();
            }
            "--cache" => {
                modes = match args.next().as_deref() {
                    Some("stale") => vec![Mode::Stale],
                    Some("consistent") => vec![Mode::Consistent],
                    _ => usage(),
                }
            }
            _ => usage(),
        }
    }
    if endpoints.is_empty() {
        usage();
    }
    for mode in modes {
        println!("== {mode:?} caches");
        if let Err(e) = play(&endpoints, mode).await {
            eprintln!("seed000: {e}");
            std::process::exit(1);
        }
    }
}
