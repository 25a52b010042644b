//! A damaged Raft log (issue 18's first case, tried as a new user would):
//! damage in the middle of the log, followed by records that hold
//! acknowledged entries, makes the member refuse to start with a message
//! that names the file, the offset and the entries, and no file changes;
//! a torn final write (bytes that never formed a whole record) is cut off
//! and the member starts with every acknowledged write.

mod common;

use std::path::PathBuf;

use common::Server;

/// The Raft log's data files (raft-engine's `*.raftlog`), by name.
fn log_files(server: &Server) -> Vec<PathBuf> {
    let dir = server.data_path().join("member").join("raft");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "raftlog"))
        .collect();
    files.sort();
    files
}

/// Where the log's records end: raft-engine extends its files ahead of
/// the data with zeros.
fn records_end(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1)
}

async fn member_with_keys(n: usize) -> Server {
    let server = Server::start().await;
    let mut client = server.client().await;
    for i in 0..n {
        client
            .put(format!("k{i:04}"), format!("v{i}"), None)
            .await
            .expect("put");
    }
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_in_the_middle_of_the_log_is_refused_without_changing_a_file() {
    if common::Target::from_env() != common::Target::Rafter {
        return; // etcd's WAL is another format
    }
    let mut server = member_with_keys(200).await;
    server.kill9();
    let files = log_files(&server);
    let file = files.last().expect("a log file").clone();
    let mut bytes = std::fs::read(&file).expect("read the log");
    let middle = records_end(&bytes) / 2;
    for b in &mut bytes[middle..middle + 16] {
        *b ^= 0x5a;
    }
    std::fs::write(&file, &bytes).expect("damage the log");
    let (status, log) = server.restart_expecting_exit().await;
    println!("{log}");
    assert!(
        !status.success(),
        "a refused start exits with an error: {status}"
    );
    assert!(
        log.contains("the Raft log is corrupt") && log.contains(&file.display().to_string()),
        "the message names the damaged file:\n{log}"
    );
    assert!(
        log.contains("No file was changed") && log.contains("restore the cluster from a snapshot"),
        "the message says what to do:\n{log}"
    );
    assert!(!log.contains("panicked"), "no panic:\n{log}");
    assert_eq!(
        std::fs::read(&file).expect("read the log again"),
        bytes,
        "the log file is byte for byte what it was"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_final_write_is_cut_off_and_every_acknowledged_write_kept() {
    if common::Target::from_env() != common::Target::Rafter {
        return; // etcd's WAL is another format
    }
    let mut server = member_with_keys(50).await;
    server.kill9();
    let file = log_files(&server).last().expect("a log file").clone();
    // The start of a record that never completed: bytes after the last
    // whole record (what a crash during a write leaves).
    let mut bytes = std::fs::read(&file).expect("read the log");
    let intact = records_end(&bytes);
    // A record whose header was written (it declares 1,000 bytes) but
    // whose body stops after 300 bytes.
    let declared: u64 = 1_000;
    let mut torn = Vec::new();
    torn.extend_from_slice(&(declared << 8).to_be_bytes());
    torn.extend_from_slice(&16u64.to_be_bytes());
    torn.extend((0..284u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 1));
    bytes.splice(intact..intact + torn.len(), torn.iter().copied());
    std::fs::write(&file, &bytes).expect("write a torn record");
    server.restart().await;
    assert!(
        server.log().contains("torn write"),
        "the cut is logged:\n{}",
        server.log()
    );
    // Cut at the last whole record: the member's new records (or zeros)
    // are where the torn bytes were.
    let after = std::fs::read(&file).expect("log");
    assert_ne!(
        &after[intact..intact + torn.len()],
        &torn[..],
        "the torn bytes are gone"
    );
    let mut client = server.client().await;
    for i in 0..50 {
        let got = client.get(format!("k{i:04}"), None).await.expect("get");
        assert_eq!(got.kvs()[0].value(), format!("v{i}").as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_ahead_of_a_lost_log_is_refused_with_a_message_not_a_panic() {
    if common::Target::from_env() != common::Target::Rafter {
        return; // etcd's data directory is another layout
    }
    let mut server = member_with_keys(20).await;
    server.kill9();
    let raft_dir = server.data_path().join("member").join("raft");
    std::fs::remove_dir_all(&raft_dir).expect("lose the log");
    let (status, log) = server.restart_expecting_exit().await;
    assert!(
        !status.success(),
        "a refused start exits with an error: {status}"
    );
    assert!(
        log.contains("the store applied up to index") && log.contains("the Raft log ends at 0"),
        "the message names the contradiction:\n{log}"
    );
    assert!(!log.contains("panicked"), "no panic:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_stops_the_member_with_a_message_not_a_panic() {
    if common::Target::from_env() != common::Target::Rafter {
        return; // etcd's backend is another format
    }
    let mut server = Server::start().await;
    let mut client = server.client().await;
    let value = "x".repeat(2_000);
    for i in 0..300 {
        client
            .put(format!("k{i:04}"), value.as_str(), None)
            .await
            .expect("put");
    }
    server.kill9();
    let store = server.data_path().join("member").join("kv.redb");
    let mut bytes =
        std::fs::read(&store).unwrap_or_else(|e| panic!("read {}: {e}", store.display()));
    // Damage inside every page past the first (redb's header): whatever
    // pages hold the tables, they are hit.
    let page_bytes = 4096;
    let len = bytes.len();
    for page in (page_bytes..len).step_by(page_bytes) {
        for b in &mut bytes[page + 64..(page + 96).min(len)] {
            *b ^= 0xa5;
        }
    }
    std::fs::write(&store, &bytes).expect("damage the store");
    let (status, log) = server.restart_expecting_exit().await;
    println!("{log}");
    assert!(!status.success(), "{status}");
    assert!(
        log.contains(&store.display().to_string()) && log.to_lowercase().contains("corrupt"),
        "the message names the damaged store:\n{log}"
    );
    assert!(!log.contains("panicked"), "no panic:\n{log}");
}
