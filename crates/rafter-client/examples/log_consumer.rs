//! The exactly-once log consumer (seed 004 "Case 1") against a running
//! cluster: producers append records to a log while consumers drain it,
//! then every record is checked to have been handed out exactly once.
//!
//! ```text
//! rafter serve &   # or a cluster
//! cargo run -p rafter-client --example log_consumer -- \
//!     --endpoints 127.0.0.1:2379 --producers 4 --records 10000 --consumers 8
//! ```
//!
//! Run it again with the same `--log` to continue that log, or with
//! `--role consume --name c1` to run one consumer process (kill and
//! restart it under the same name: it finishes its own claim first).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rafter_client::log_consumer::{LogConsumer, LogProducer, MAX_APPEND_BATCH};
use rafter_client::{Client, Error};

#[derive(Debug, Parser)]
struct Args {
    /// Cluster endpoints, comma separated
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    endpoints: Vec<String>,
    /// The log's name (its key prefix)
    #[arg(long, default_value = "example-log")]
    log: String,
    /// `demo`: producers and consumers in this process, then a check;
    /// `consume`: one consumer that prints what it is handed.
    #[arg(long, default_value = "demo")]
    role: String,
    /// Consumer name for `--role consume`
    #[arg(long, default_value = "c1")]
    name: String,
    #[arg(long, default_value_t = 2)]
    producers: usize,
    /// Records per producer
    #[arg(long, default_value_t = 10_000)]
    records: usize,
    #[arg(long, default_value_t = 4)]
    consumers: usize,
    /// Records per append Txn
    #[arg(long, default_value_t = 100)]
    batch: usize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let client = Client::connect(&args.endpoints).await?;
    if args.role == "consume" {
        return consume_forever(client, &args).await;
    }
    let started = Instant::now();
    let run = format!(
        "{}",
        started.elapsed().as_nanos() ^ std::process::id() as u128
    );
    let mut producers = Vec::new();
    for p in 0..args.producers {
        let client = client.clone();
        let log = args.log.clone();
        let (records, batch, run) = (args.records, args.batch.min(MAX_APPEND_BATCH), run.clone());
        producers.push(tokio::spawn(async move {
            let session = Arc::new(client.session(Duration::from_secs(30)).await?);
            let mut producer = LogProducer::new(session, &log);
            let all: Vec<Vec<u8>> = (0..records)
                .map(|i| format!("{run}/p{p}/{i}").into_bytes())
                .collect();
            for chunk in all.chunks(batch) {
                producer.append(chunk).await?;
            }
            Ok::<_, Error>(())
        }));
    }
    let expected = args.producers * args.records;
    let mut consumers = Vec::new();
    for c in 0..args.consumers {
        let client = client.clone();
        let log = args.log.clone();
        let run = run.clone();
        consumers.push(tokio::spawn(async move {
            let session = Arc::new(client.session(Duration::from_secs(30)).await?);
            let mut consumer = LogConsumer::new(session, &log, &format!("demo-c{c}"));
            let mut mine = Vec::new();
            let mut idle_since = Instant::now();
            // Stop after two idle seconds once this run's records stop coming.
            while idle_since.elapsed() < Duration::from_secs(2) {
                let batch = consumer.get_last_log().await?;
                if batch.is_empty() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                idle_since = Instant::now();
                mine.extend(
                    batch
                        .records
                        .iter()
                        .map(|r| String::from_utf8_lossy(r).into_owned())
                        .filter(|r| r.starts_with(&format!("{run}/"))),
                );
                consumer.ack(&batch).await?;
            }
            Ok::<_, Error>(mine)
        }));
    }
    for p in producers {
        p.await??;
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (c, handle) in consumers.into_iter().enumerate() {
        let mine = handle.await??;
        println!("consumer demo-c{c}: {} records", mine.len());
        for r in mine {
            *seen.entry(r).or_default() += 1;
        }
    }
    let twice = seen.values().filter(|&&n| n > 1).count();
    println!(
        "{expected} records appended, {} consumed, {twice} consumed more than once, in {:?}",
        seen.len(),
        started.elapsed()
    );
    if seen.len() != expected || twice > 0 {
        return Err("not exactly once".into());
    }
    Ok(())
}

/// One consumer that prints each batch, then acknowledges it.
async fn consume_forever(client: Client, args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let session = Arc::new(client.session(Duration::from_secs(10)).await?);
    let mut consumer = LogConsumer::new(session, &args.log, &args.name);
    loop {
        let batch = consumer.get_last_log().await?;
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        for (i, r) in batch.records.iter().enumerate() {
            println!("{} {}", batch.start + i as u64, String::from_utf8_lossy(r));
        }
        consumer.ack(&batch).await?;
    }
}
