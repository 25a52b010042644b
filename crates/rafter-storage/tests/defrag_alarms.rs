//! Online defragmentation and alarms in the store.
//!
//! Defragmentation: entries applied from another thread while the copy is
//! taken end up in the new file (its state equals that of a store that
//! applied the same entries without defragmenting), the file shrinks after
//! deletes and compaction, a leftover copy from a crash is removed at open,
//! and a snapshot installed meanwhile makes it give up, not swap in a stale
//! copy. Alarms: NOSPACE refuses only writes that add data, CORRUPT every
//! mutation, and both survive a snapshot and a reopen.

use std::sync::Arc;

use rafter_proto::etcdserverpb::alarm_request::AlarmAction;
use rafter_proto::etcdserverpb::{
    AlarmRequest, AlarmType, CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, PutRequest,
    RangeRequest,
};
use rafter_storage::mvcc::{ApplyEntry, KvResponse, MvccError};
use rafter_storage::{KvRequest, MvccStore};

fn put(key: String, value_bytes: usize) -> KvRequest {
    KvRequest::Put(PutRequest {
        key: key.into_bytes(),
        value: vec![b'v'; value_bytes],
        ..Default::default()
    })
}

/// Applies `request` as entry `index`; returns its result.
fn apply_at(store: &MvccStore, index: u64, request: &KvRequest) -> Result<KvResponse, MvccError> {
    let entry = ApplyEntry {
        index,
        request: Some(request),
        client: None,
        stamp: None,
    };
    let (_, mut results) = store.apply(&[entry], false).expect("apply");
    results.pop().flatten().expect("a result")
}

/// The workload both stores apply: many keys, then most of them deleted
/// and the history compacted, then more puts.
fn workload() -> Vec<KvRequest> {
    let mut out = Vec::new();
    for i in 0..3000 {
        out.push(put(format!("key/{i:05}"), 1024));
    }
    out.push(KvRequest::DeleteRange(DeleteRangeRequest {
        key: b"key/0".to_vec(),
        range_end: b"key/3".to_vec(),
        ..Default::default()
    }));
    out.push(KvRequest::Compaction(CompactionRequest {
        revision: 3002,
        physical: false,
    }));
    out
}

fn tail() -> Vec<KvRequest> {
    (0..2000)
        .map(|i| put(format!("tail/{:04}", i % 300), 200))
        .collect()
}

#[test]
fn defragment_while_applying_keeps_every_entry_and_shrinks_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kv.redb");
    let store = Arc::new(MvccStore::open(&path).expect("open"));
    let reference = MvccStore::open_in_memory().expect("reference");
    let mut index = 0;
    for r in workload() {
        index += 1;
        apply_at(&store, index, &r).expect("applies");
        apply_at(&reference, index, &r).expect("applies");
    }
    store.sync().expect("sync");
    let before = store.db_size_bytes();

    // Apply the tail from another thread while the defragmentation runs.
    let tail = tail();
    let applier = {
        let store = store.clone();
        let tail = tail.clone();
        std::thread::spawn(move || {
            for (i, r) in tail.iter().enumerate() {
                apply_at(&store, index + 1 + i as u64, r).expect("applies");
            }
        })
    };
    let report = store.defragment().expect("defragment");
    applier.join().expect("applier");
    for (i, r) in tail.iter().enumerate() {
        apply_at(&reference, index + 1 + i as u64, r).expect("applies");
    }
    store.sync().expect("sync");

    assert_eq!(store.state().unwrap(), reference.state().unwrap());
    assert_eq!(
        store.hash_kv(0).unwrap(),
        reference.hash_kv(0).unwrap(),
        "the defragmented store must hold what the reference holds"
    );
    assert_eq!(
        store.snapshot_data().unwrap().0,
        reference.snapshot_data().unwrap().0
    );
    println!("{report:?}");
    assert!(
        report.size_after_bytes < before / 2,
        "the file must shrink: {before} -> {}",
        report.size_after_bytes
    );
    assert!(!dir.path().join("kv.defrag").exists());

    // Reopened, it is the compact file with the same state.
    let state = store.state().unwrap();
    drop(store);
    let reopened = MvccStore::open(&path).expect("reopen");
    assert_eq!(reopened.state().unwrap(), state);
    assert_eq!(reopened.hash_kv(0).unwrap(), reference.hash_kv(0).unwrap());
}

#[test]
fn a_copy_left_by_a_crash_is_removed_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kv.redb");
    {
        let store = MvccStore::open(&path).expect("open");
        apply_at(&store, 1, &put("a".into(), 10)).expect("applies");
        store.sync().unwrap();
    }
    std::fs::write(dir.path().join("kv.defrag"), b"half a copy").unwrap();
    let store = MvccStore::open(&path).expect("open");
    assert!(!dir.path().join("kv.defrag").exists());
    assert_eq!(store.state().unwrap().applied_index, 1);
}

#[test]
fn a_snapshot_installed_during_the_copy_makes_it_give_up() {
    let store = MvccStore::open_in_memory().expect("store");
    let source = MvccStore::open_in_memory().expect("source");
    for i in 1..=50 {
        apply_at(&store, i, &put(format!("k{i}"), 10)).unwrap();
        apply_at(&source, i, &put(format!("other{i}"), 10)).unwrap();
    }
    let mut copy = store.defrag_begin().expect("begin");
    apply_at(&store, 51, &put("during".into(), 10)).unwrap();
    store.defrag_catch_up(&mut copy).expect("catch up");
    let (blob, _) = source.snapshot_data().unwrap();
    store.restore(&blob).expect("restore");
    let err = store.defrag_finish(copy).expect_err("must give up");
    assert!(err.to_string().contains("abandoned"), "{err}");
    assert_eq!(store.hash_kv(0).unwrap(), source.hash_kv(0).unwrap());
}

fn alarm(action: AlarmAction, member_id: u64, kind: AlarmType) -> KvRequest {
    KvRequest::Alarm(AlarmRequest {
        action: action as i32,
        member_id,
        alarm: kind as i32,
    })
}

#[test]
fn alarms_refuse_writes_through_the_log_and_persist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kv.redb");
    let store = MvccStore::open(&path).expect("open");
    apply_at(&store, 1, &put("a".into(), 10)).unwrap();
    let raised = apply_at(
        &store,
        2,
        &alarm(AlarmAction::Activate, 7, AlarmType::Nospace),
    )
    .unwrap();
    assert!(matches!(&raised, KvResponse::Alarm(a) if a.len() == 1));
    assert_eq!(
        apply_at(&store, 3, &put("b".into(), 10)),
        Err(MvccError::NoSpace)
    );
    assert_eq!(
        apply_at(
            &store,
            4,
            &KvRequest::LeaseGrant(LeaseGrantRequest { ttl: 10, id: 5 })
        ),
        Err(MvccError::NoSpace)
    );
    // Deletes and compaction free space and stay allowed.
    apply_at(
        &store,
        5,
        &KvRequest::DeleteRange(DeleteRangeRequest {
            key: b"a".to_vec(),
            ..Default::default()
        }),
    )
    .expect("a delete is allowed");
    apply_at(
        &store,
        6,
        &KvRequest::Compaction(CompactionRequest {
            revision: 2,
            physical: false,
        }),
    )
    .expect("a compaction is allowed");
    store.sync().unwrap();
    drop(store);

    let store = MvccStore::open(&path).expect("reopen");
    assert_eq!(store.alarms().unwrap().len(), 1, "alarms are durable");
    // A snapshot carries them to another member.
    let other = MvccStore::open_in_memory().unwrap();
    other.restore(&store.snapshot_data().unwrap().0).unwrap();
    assert_eq!(other.alarms().unwrap(), store.alarms().unwrap());

    apply_at(
        &store,
        7,
        &alarm(AlarmAction::Deactivate, 7, AlarmType::Nospace),
    )
    .unwrap();
    apply_at(&store, 8, &put("b".into(), 10)).expect("writes again once disarmed");

    apply_at(
        &store,
        9,
        &alarm(AlarmAction::Activate, 2, AlarmType::Corrupt),
    )
    .unwrap();
    assert_eq!(
        apply_at(
            &store,
            10,
            &KvRequest::DeleteRange(DeleteRangeRequest {
                key: b"b".to_vec(),
                ..Default::default()
            })
        ),
        Err(MvccError::Corrupt)
    );
    // Reads are still served.
    let got = store
        .range(&RangeRequest {
            key: b"b".to_vec(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(got.kvs.len(), 1);
}

#[test]
fn the_bytes_in_use_are_measured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MvccStore::open(&dir.path().join("kv.redb")).expect("open");
    for i in 1..=200 {
        apply_at(&store, i, &put(format!("k{i}"), 10_000)).unwrap();
    }
    store.sync().unwrap();
    assert_eq!(
        store.last_db_size_in_use_bytes(),
        None,
        "nothing measured yet"
    );
    let in_use = store.db_size_in_use_bytes().unwrap();
    println!("file {} in use {in_use}", store.db_size_bytes());
    assert!(in_use >= 200 * 10_000, "{in_use}");
    assert!(in_use <= store.db_size_bytes());
    assert_eq!(store.last_db_size_in_use_bytes(), Some(in_use));
}
