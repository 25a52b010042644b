//! The fuzz targets: one function per decoder that reads bytes an
//! attacker or a damaged disk controls, each of which must return (an
//! error is fine) for any input, never panic, hang or allocate without
//! bound. libFuzzer drives them from `fuzz/` (`scripts/fuzz.sh`); the
//! smoke test runs them over their seeds, the regression inputs in
//! `regressions/` and deterministic mutations of both, on every CI run.

use prost::Message as _;
use rafter_proto::etcdserverpb::TxnRequest;
use rafter_proto::rafterpb::RaftCommand;
use rafter_storage::mvcc::validate;
use rafter_storage::mvcc::ApplyEntry;
use rafter_storage::{KvRequest, MvccStore};

/// Most txn ops a request may carry (the server's default).
const MAX_TXN_OPS: usize = 128;

/// A target: its name (the file under `fuzz/fuzz_targets/`) and function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("peer_message", peer_message),
    ("raft_command", raft_command),
    ("client_txn", client_txn),
    ("snapshot_file", snapshot_file),
    ("member_record", member_record),
    ("txn_text", txn_text),
    ("log_file", log_file),
    ("local_queue_file", local_queue_file),
];

/// A Raft message from a peer, as the peer service decodes it. What Raft
/// reads of it must survive a round trip; unknown fields need not keep
/// their form (rust-protobuf merges repeated singular messages and keeps
/// their unknown fields in a map, as `regressions/peer_message` shows).
pub fn peer_message(data: &[u8]) {
    if let Ok(message) = rafter_core::wire::decode_message(data) {
        let again = rafter_core::wire::encode_message(&message);
        let decoded = rafter_core::wire::decode_message(&again).expect("re-encoded message");
        assert_eq!(
            raft_view(&decoded),
            raft_view(&message),
            "a peer message survives a round trip"
        );
    }
}

/// The fields of a peer message raft-rs acts on.
fn raft_view(m: &raft::eraftpb::Message) -> impl PartialEq + std::fmt::Debug {
    let entries: Vec<_> = m
        .entries
        .iter()
        .map(|e| {
            (
                e.get_entry_type(),
                e.term,
                e.index,
                e.data.clone(),
                e.context.clone(),
            )
        })
        .collect();
    let snapshot = m.get_snapshot();
    let meta = snapshot.get_metadata();
    (
        (
            m.get_msg_type(),
            m.to,
            m.from,
            m.term,
            m.log_term,
            m.index,
            m.commit,
        ),
        (
            m.reject,
            m.reject_hint,
            m.context.clone(),
            m.request_snapshot,
            m.priority,
        ),
        entries,
        (snapshot.data.clone(), meta.index, meta.term),
        meta.get_conf_state().voters.clone(),
        meta.get_conf_state().learners.clone(),
    )
}

/// A committed log entry's payload: decoded, checked as the server checks
/// a client's request, then applied to a store.
pub fn raft_command(data: &[u8]) {
    let _ = rafter_core::command::peek_command_id(data);
    if let Ok(Some(command)) = rafter_core::command::decode_command(1, data) {
        if let Some(request) = &command.request {
            apply(request);
        }
    }
}

/// A client's Txn as the KV service receives it: decoded, checked, served
/// as a read when it only reads, then applied.
pub fn client_txn(data: &[u8]) {
    let Ok(txn) = TxnRequest::decode(data) else {
        return;
    };
    if validate::check_txn(&txn, MAX_TXN_OPS).is_err() {
        return;
    }
    with_store(|store| {
        let _ = store.txn_read(&txn);
    });
    apply(&KvRequest::Txn(txn));
}

/// A snapshot file or the snapshot a leader streams: its checksums, then
/// its rows restored into a store.
pub fn snapshot_file(data: &[u8]) {
    with_store(|store| {
        if let Ok(blob) = rafter_storage::snapshot_file::decode(data) {
            if store.restore(blob).is_ok() {
                read_everything(store);
            }
        }
        // A leader's snapshot message carries the blob without the file's
        // framing.
        if store.restore(data).is_ok() {
            read_everything(store);
        }
    });
}

/// What a member reads of a store it restored: every key at every kept
/// revision, the hash, leases, members, sessions, alarms and a snapshot.
fn read_everything(store: &MvccStore) {
    let Ok(state) = store.state() else {
        return;
    };
    let all = rafter_proto::etcdserverpb::RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    };
    let _ = store.range(&all);
    for revision in [state.compact_revision, state.current_revision] {
        let _ = store.range(&rafter_proto::etcdserverpb::RangeRequest {
            revision,
            ..all.clone()
        });
        let _ = store.hash_kv(revision);
    }
    let _ = store.leases();
    let _ = store.member_attributes();
    let _ = store.kept_answers();
    let _ = store.sessions_open();
    let _ = store.alarms();
    let _ = store.conflict_count();
    let _ = store.snapshot_data();
    if state.applied_index == u64::MAX {
        return;
    }
    apply_one(
        store,
        &KvRequest::Put(rafter_proto::etcdserverpb::PutRequest {
            key: b"a".to_vec(),
            value: b"after".to_vec(),
            ..Default::default()
        }),
    );
}

/// A membership row of the store.
pub fn member_record(data: &[u8]) {
    let _ = rafter_storage::mvcc::membership::decode(data);
}

/// The text `rafter txn` reads from standard input.
pub fn txn_text(data: &[u8]) {
    let mut input = data;
    let _ = rafter_cli::read_txn(&mut input, None);
}

/// Inputs run against one store before a fresh one is made: creating a
/// store per input would cost more than the input itself.
const INPUTS_PER_STORE: u32 = 1_000;

thread_local! {
    static STORE: std::cell::RefCell<Option<(MvccStore, u32)>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` on this thread's store: a few keys, and whatever earlier
/// inputs left, renewed every [`INPUTS_PER_STORE`] inputs.
fn with_store(f: impl FnOnce(&MvccStore)) {
    STORE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot
            .as_ref()
            .is_none_or(|(_, used)| *used >= INPUTS_PER_STORE)
        {
            let store = MvccStore::open_in_memory().expect("an in-memory store");
            let seed: Vec<KvRequest> = ["a", "b", "c"]
                .iter()
                .map(|key| {
                    KvRequest::Put(rafter_proto::etcdserverpb::PutRequest {
                        key: key.as_bytes().to_vec(),
                        value: b"v".to_vec(),
                        ..Default::default()
                    })
                })
                .collect();
            for request in &seed {
                apply_one(&store, request);
            }
            *slot = Some((store, 0));
        }
        let (store, used) = slot.as_mut().expect("just made");
        *used += 1;
        f(store);
    });
}

/// Applies one request as the next log entry.
fn apply_one(store: &MvccStore, request: &KvRequest) {
    let index = store.state().expect("the store's state").applied_index + 1;
    let entry = ApplyEntry {
        index,
        request: Some(request),
        client: None,
        stamp: None,
    };
    let _ = store.apply(&[entry], false);
}

/// Applies a request that passes the server's stateless checks.
/// A directory for one input's files: in memory where the machine has it.
fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let builder = tempfile::Builder::new().prefix("rafter-fuzz-").to_owned();
    if shm.is_dir() {
        builder.tempdir_in(shm)
    } else {
        builder.tempdir()
    }
    .expect("a scratch directory")
}

/// A Raft log data file as a member finds it at start: opened under the
/// torn-write rule (repaired, or refused with a message).
pub fn log_file(data: &[u8]) {
    let dir = scratch_dir();
    std::fs::write(dir.path().join("0000000000000001.raftlog"), data).expect("write the input");
    if let Ok((log, _)) = rafter_storage::RaftLog::open_checked(dir.path(), 0) {
        let _ = raft::Storage::initial_state(&log);
        let _ = log.pending_snapshot();
        let first = raft::Storage::first_index(&log).unwrap_or(1);
        let last = raft::Storage::last_index(&log).unwrap_or(0);
        if first <= last {
            let _ = raft::Storage::entries(
                &log,
                first,
                last + 1,
                None,
                raft::GetEntriesContext::empty(false),
            );
        }
    }
}

/// The local write queue's file as a member finds it at start.
pub fn local_queue_file(data: &[u8]) {
    let dir = scratch_dir();
    let path = dir.path().join(rafter_storage::local_queue::FILE_NAME);
    std::fs::write(&path, data).expect("write the input");
    let _ = rafter_storage::local_queue::LocalQueue::open(dir.path());
}

fn apply(request: &KvRequest) {
    let checked = match request {
        KvRequest::Put(p) => validate::check_put(p),
        KvRequest::DeleteRange(d) => validate::check_delete(d),
        KvRequest::Txn(t) => validate::check_txn(t, MAX_TXN_OPS),
        _ => Ok(()),
    };
    if checked.is_ok() {
        with_store(|store| apply_one(store, request));
    }
}

/// Valid inputs for each target, from which mutations start.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    use rafter_proto::etcdserverpb::{
        compare, request_op, Compare, PutRequest, RangeRequest, RequestOp,
    };
    let put = PutRequest {
        key: b"a".to_vec(),
        value: b"1".to_vec(),
        prev_kv: true,
        ..Default::default()
    };
    let txn = TxnRequest {
        compare: vec![Compare {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Value as i32,
            target_union: Some(compare::TargetUnion::Value(b"v".to_vec())),
        }],
        success: vec![
            RequestOp {
                request: Some(request_op::Request::RequestPut(put.clone())),
            },
            RequestOp {
                request: Some(request_op::Request::RequestRange(RangeRequest {
                    key: b"a".to_vec(),
                    range_end: b"\0".to_vec(),
                    ..Default::default()
                })),
            },
        ],
        failure: vec![],
    };
    match target {
        "peer_message" => {
            let mut message = raft::eraftpb::Message::default();
            message.set_msg_type(raft::eraftpb::MessageType::MsgAppend);
            message.from = 1;
            message.to = 2;
            message.term = 3;
            let entry = raft::eraftpb::Entry {
                data: RaftCommand::default().encode_to_vec().into(),
                ..Default::default()
            };
            message.entries = vec![entry].into();
            vec![rafter_core::wire::encode_message(&message)]
        }
        "raft_command" => vec![
            RaftCommand {
                id: 7,
                request: Some(KvRequest::Put(put)),
                ..Default::default()
            }
            .encode_to_vec(),
            RaftCommand {
                id: 8,
                request: Some(KvRequest::Txn(txn.clone())),
                ..Default::default()
            }
            .encode_to_vec(),
        ],
        "client_txn" => vec![txn.encode_to_vec()],
        "snapshot_file" => {
            let store = MvccStore::open_in_memory().expect("an in-memory store");
            apply_one(&store, &KvRequest::Txn(txn));
            let (blob, _) = store.snapshot_data().expect("a snapshot");
            vec![rafter_storage::snapshot_file::encode(&blob), blob]
        }
        "member_record" => vec![rafter_proto::rafterpb::MemberAttributes {
            member_id: 1,
            name: "m1".into(),
            client_urls: vec!["http://127.0.0.1:2379".into()],
            ..Default::default()
        }
        .encode_to_vec()],
        "txn_text" => vec![
            b"mod(\"a\") > \"0\"\nval(\"b\") = \"x\"\n\nput a 1\nget a --prefix\n\ndel b --prev-kv\n\n"
                .to_vec(),
        ],
        "log_file" => {
            let dir = scratch_dir();
            {
                let log = rafter_storage::RaftLog::open(dir.path()).expect("a log");
                log.bootstrap(&raft::eraftpb::ConfState {
                    voters: vec![1],
                    ..Default::default()
                })
                .expect("bootstrap");
                let entries: Vec<raft::eraftpb::Entry> = (1..=4)
                    .map(|index| raft::eraftpb::Entry {
                        index,
                        term: 1,
                        data: RaftCommand::default().encode_to_vec().into(),
                        ..Default::default()
                    })
                    .collect();
                let hard_state = raft::eraftpb::HardState {
                    term: 1,
                    commit: 3,
                    ..Default::default()
                };
                log.persist(&entries, Some(&hard_state), true).expect("persist");
            }
            let bytes =
                std::fs::read(dir.path().join("0000000000000001.raftlog")).expect("the log file");
            // Without raft-engine's zero fill, which only slows the fuzzer.
            let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
            vec![bytes[..end].to_vec()]
        }
        "local_queue_file" => {
            let dir = scratch_dir();
            let (mut queue, _) =
                rafter_storage::local_queue::LocalQueue::open(dir.path()).expect("a queue");
            let writes: Vec<rafter_proto::rafterpb::LocalWrite> = (1..=3)
                .map(|seq| rafter_proto::rafterpb::LocalWrite {
                    seq,
                    ..Default::default()
                })
                .collect();
            queue.append(&writes).expect("append");
            vec![std::fs::read(dir.path().join(rafter_storage::local_queue::FILE_NAME))
                .expect("the queue file")]
        }
        other => panic!("no target {other}"),
    }
}
