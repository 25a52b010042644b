//! What applying puts costs the MVCC store, without Raft or gRPC around
//! it: `cargo run --release -p rafter-storage --example apply_cost --
//! [PUTS] [BATCH] [KEYS] [VALUE_BYTES] [SYNC_EVERY_MS]`. Puts random keys
//! in batches of BATCH entries (one store transaction each, as the apply
//! thread does), with a durable commit every SYNC_EVERY_MS, and prints the
//! CPU time per put. Used to A/B storage-layout changes (issue 15).

use std::time::{Duration, Instant};

use rafter_proto::etcdserverpb::PutRequest;
use rafter_storage::mvcc::{ApplyEntry, KvRequest};
use rafter_storage::MvccStore;

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .map_or(default, |a| a.parse().expect("a number"))
}

/// This process's user + system CPU time (`/proc/self/stat`).
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<u64> = stat[stat.rfind(')').expect("stat") + 2..]
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|f| f.parse().expect("ticks"))
        .collect();
    Duration::from_millis((fields[0] + fields[1]) * 10)
}

fn main() {
    let (puts, batch, keys, value_bytes, sync_ms) = (
        arg(1, 200_000),
        arg(2, 12),
        arg(3, 10_000),
        arg(4, 256),
        arg(5, 50),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let store = MvccStore::open(&dir.path().join("store.redb")).expect("open");
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let value = vec![b'v'; value_bytes as usize];
    let (started, cpu_before) = (Instant::now(), cpu());
    let mut last_sync = Instant::now();
    let mut index = 0;
    let mut syncs = 0;
    while index < puts {
        let requests: Vec<KvRequest> = (0..batch)
            .map(|_| {
                KvRequest::Put(PutRequest {
                    key: format!("{:08}", next() % keys).into_bytes(),
                    value: value.clone(),
                    ..Default::default()
                })
            })
            .collect();
        let entries: Vec<ApplyEntry<'_>> = requests
            .iter()
            .map(|request| {
                index += 1;
                ApplyEntry {
                    index,
                    request: Some(request),
                    client: None,
                    stamp: None,
                }
            })
            .collect();
        store.apply_with_events(&entries, false).expect("apply");
        if last_sync.elapsed() >= Duration::from_millis(sync_ms) {
            store.sync().expect("sync");
            syncs += 1;
            last_sync = Instant::now();
        }
    }
    let spent = cpu() - cpu_before;
    println!(
        "{puts} puts in batches of {batch}, {keys} keys, {value_bytes} B values, sync every {sync_ms} ms ({syncs} syncs): {:.1} us CPU per put, {:.0} puts/s, file {} MB",
        spent.as_micros() as f64 / puts as f64,
        puts as f64 / started.elapsed().as_secs_f64(),
        store.db_size_bytes() / 1_000_000
    );
}
