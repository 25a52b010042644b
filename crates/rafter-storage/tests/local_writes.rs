//! Local writes in the store: a member's writes apply once each and in its
//! seq order, copies and writes that come too early change nothing, a
//! change to the key after the write's context revision is reported as
//! concurrent, and the applied seqs survive a snapshot. A concurrent write
//! is decided by its key's conflict policy and recorded in the conflict
//! log, which compaction trims and snapshots carry.

use rafter_proto::etcdserverpb::{CompactionRequest, DeleteRangeRequest};
use rafter_proto::etcdserverpb::{PutRequest, RangeRequest};
use rafter_proto::rafterpb::{
    ConflictDecision, ConflictPolicy, ConflictPolicySet, HlcStamp, LocalWrite, LocalWriteBatch,
};
use rafter_storage::mvcc::local_writes::LocalWriteApplied;
use rafter_storage::mvcc::{ApplyEntry, KvResponse};
use rafter_storage::{KvRequest, MvccStore};

fn write(member_id: u64, seq: u64, value: &str, context: i64) -> LocalWrite {
    LocalWrite {
        member_id,
        seq,
        key: b"k".to_vec(),
        value: value.into(),
        context_revision: context,
        hlc_physical_ms: 1,
        hlc_logical: 0,
    }
}

struct Store {
    store: MvccStore,
    index: u64,
}

impl Store {
    fn new() -> Self {
        Store {
            store: MvccStore::open_in_memory().expect("store"),
            index: 0,
        }
    }

    fn apply(&mut self, request: KvRequest) -> KvResponse {
        self.apply_stamped(request, None)
    }

    fn apply_stamped(&mut self, request: KvRequest, stamp: Option<HlcStamp>) -> KvResponse {
        self.index += 1;
        let entry = ApplyEntry {
            index: self.index,
            request: Some(&request),
            client: None,
            stamp: stamp.as_ref(),
        };
        let (_, mut results) = self.store.apply(&[entry], false).expect("apply");
        results.pop().flatten().expect("a result").expect("applies")
    }

    fn local(&mut self, member_id: u64, seq: u64, value: &str, context: i64) -> LocalWriteApplied {
        let mut answers = self.round(vec![write(member_id, seq, value, context)]);
        answers.pop().expect("one answer")
    }

    fn round(&mut self, writes: Vec<LocalWrite>) -> Vec<LocalWriteApplied> {
        match self.apply(KvRequest::LocalWrites(LocalWriteBatch { writes })) {
            KvResponse::LocalWrites(answers) => answers,
            other => panic!("{other:?}"),
        }
    }

    fn value(&self) -> (Vec<u8>, i64) {
        let r = self
            .store
            .range(&RangeRequest {
                key: b"k".to_vec(),
                ..Default::default()
            })
            .expect("range");
        (r.kvs[0].value.clone(), r.kvs[0].version)
    }

    fn revision(&self) -> i64 {
        self.store.state().expect("state").current_revision
    }
}

#[test]
fn each_write_applies_once_in_its_members_order() {
    let mut s = Store::new();
    let a = s.local(7, 1, "a", 1);
    assert!(a.applied && !a.concurrent, "{a:?}");
    assert_eq!(a.revision, 2);
    let rev = s.revision();
    assert!(!s.local(7, 1, "a", 1).applied, "a copy applies again");
    assert!(
        !s.local(7, 3, "c", 1).applied,
        "a write ahead of seq 2 applies"
    );
    assert_eq!(s.revision(), rev, "refused writes changed the store");
    assert!(s.local(7, 2, "b", 2).applied);
    assert!(s.local(9, 1, "x", 3).applied, "members count separately");
    assert_eq!(s.value(), (b"x".to_vec(), 3));
    assert_eq!(s.store.local_applied_seq(7).unwrap(), 2);
    assert_eq!(s.store.local_applied_seq(9).unwrap(), 1);
    assert_eq!(s.store.local_applied_seq(8).unwrap(), 0);
}

#[test]
fn a_round_applies_its_writes_in_order_each_with_its_own_revision() {
    let mut s = Store::new();
    let answers = s.round(vec![
        write(7, 1, "a", 1),
        write(7, 3, "c", 1),
        write(7, 2, "b", 1),
        write(7, 3, "c", 1),
    ]);
    let applied: Vec<(u64, bool, i64)> = answers
        .iter()
        .map(|a| (a.seq, a.applied, a.revision))
        .collect();
    assert_eq!(
        applied,
        vec![(1, true, 2), (3, false, 2), (2, true, 3), (3, true, 4)]
    );
    assert_eq!(s.value(), (b"c".to_vec(), 3));
}

#[test]
fn a_change_after_the_context_revision_is_concurrent() {
    let mut s = Store::new();
    assert!(!s.local(7, 1, "a", 1).concurrent);
    // Another write to the key lands (revision 3) while member 7, at
    // revision 2, accepts its next one.
    s.apply(KvRequest::Put(PutRequest {
        key: b"k".to_vec(),
        value: b"majority".to_vec(),
        ..Default::default()
    }));
    let b = s.local(7, 2, "b", 2);
    assert!(b.applied && b.concurrent, "{b:?}");
    assert_eq!(s.value().0, b"b", "commit order: applied where it commits");
    let c = s.local(7, 3, "c", s.revision());
    assert!(!c.concurrent, "nothing changed since its context");
}

#[test]
fn applied_seqs_survive_a_snapshot() {
    let mut s = Store::new();
    s.local(7, 1, "a", 1);
    s.local(7, 2, "b", 2);
    let (blob, _) = s.store.snapshot_data().expect("snapshot");
    let mut t = Store::new();
    t.store.restore(&blob).expect("restore");
    t.index = s.index;
    assert_eq!(t.store.local_applied_seq(7).unwrap(), 2);
    assert!(!t.local(7, 2, "b", 2).applied, "a copy after the snapshot");
    assert!(t.local(7, 3, "c", 3).applied);
}

fn policy(s: &mut Store, prefix: &str, policy: ConflictPolicy) {
    s.apply(KvRequest::ConflictPolicy(ConflictPolicySet {
        prefix: prefix.into(),
        policy: policy as i32,
    }));
}

/// A consistent write of `k` stamped at `physical_ms` by member 1.
fn majority_put(s: &mut Store, value: &str, physical_ms: u64) {
    s.apply_stamped(
        KvRequest::Put(PutRequest {
            key: b"k".to_vec(),
            value: value.into(),
            ..Default::default()
        }),
        Some(HlcStamp {
            physical_ms,
            logical: 0,
            member_id: 1,
        }),
    );
}

fn stamped(member_id: u64, seq: u64, value: &str, context: i64, physical_ms: u64) -> LocalWrite {
    LocalWrite {
        hlc_physical_ms: physical_ms,
        ..write(member_id, seq, value, context)
    }
}

fn decisions(s: &Store) -> Vec<(String, i32, bool)> {
    let (records, _) = s.store.conflicts(b"", 0).expect("conflicts");
    records
        .iter()
        .map(|r| {
            (
                String::from_utf8(r.local_value.clone()).unwrap(),
                r.decision,
                r.committed_exists,
            )
        })
        .collect()
}

#[test]
fn last_writer_wins_compares_stamps() {
    let mut s = Store::new();
    policy(&mut s, "k", ConflictPolicy::LastWriterWins);
    majority_put(&mut s, "m1", 100);
    let context = s.revision();
    majority_put(&mut s, "m2", 200);
    // Accepted at 150 before it saw m2 (stamped 200): it loses.
    let early = s.round(vec![stamped(7, 1, "early", context, 150)]);
    assert!(!early[0].applied && early[0].concurrent, "{early:?}");
    assert_eq!(s.value().0, b"m2");
    // Accepted at 300, concurrent with m2 too: it wins.
    let late = s.round(vec![stamped(7, 2, "late", context, 300)]);
    assert!(late[0].applied, "{late:?}");
    assert_eq!(s.value().0, b"late");
    assert_eq!(
        decisions(&s),
        vec![
            ("early".into(), ConflictDecision::LocalLost as i32, true),
            ("late".into(), ConflictDecision::LocalWon as i32, true)
        ]
    );
    // The record keeps the stamp it was compared with; the winner's stamp
    // is now the key's.
    let (records, _) = s.store.conflicts(b"", 0).unwrap();
    assert_eq!(records[1].committed_stamp.unwrap().physical_ms, 200);
    assert_eq!(s.store.key_stamp(b"k").unwrap().unwrap().physical_ms, 300);
}

#[test]
fn reject_if_changed_keeps_the_committed_value_and_logs_the_write() {
    let mut s = Store::new();
    policy(&mut s, "", ConflictPolicy::RejectIfChanged);
    let context = s.revision();
    majority_put(&mut s, "m", 100);
    let rev = s.revision();
    let r = s.local(7, 1, "local", context);
    assert!(!r.applied && r.concurrent);
    assert_eq!(s.revision(), rev, "a rejected write changes no revision");
    assert_eq!(s.value().0, b"m");
    assert_eq!(
        decisions(&s),
        vec![("local".into(), ConflictDecision::Rejected as i32, true)]
    );
    // Its seq is used: the member's next write goes on from it.
    assert!(s.local(7, 2, "next", s.revision()).applied);
    assert_eq!(s.store.local_applied_seq(7).unwrap(), 2);
}

#[test]
fn a_delete_after_the_context_is_a_concurrent_change() {
    let mut s = Store::new();
    policy(&mut s, "", ConflictPolicy::RejectIfChanged);
    majority_put(&mut s, "m", 100);
    let context = s.revision();
    s.apply(KvRequest::DeleteRange(DeleteRangeRequest {
        key: b"k".to_vec(),
        ..Default::default()
    }));
    let r = s.local(7, 1, "local", context);
    assert!(!r.applied && r.concurrent, "{r:?}");
    assert_eq!(
        decisions(&s),
        vec![("local".into(), ConflictDecision::Rejected as i32, false)]
    );
}

#[test]
fn commit_order_applies_and_logs_and_the_log_is_compacted_and_snapshotted() {
    let mut s = Store::new();
    let context = s.revision();
    majority_put(&mut s, "m", 100);
    let r = s.local(7, 1, "local", context);
    assert!(r.applied && r.concurrent);
    assert_eq!(s.value().0, b"local");
    assert_eq!(
        decisions(&s),
        vec![(
            "local".into(),
            ConflictDecision::AppliedInCommitOrder as i32,
            true
        )]
    );
    policy(&mut s, "x/", ConflictPolicy::LastWriterWins);
    let (blob, _) = s.store.snapshot_data().expect("snapshot");
    let mut t = Store::new();
    t.store.restore(&blob).expect("restore");
    t.index = s.index;
    assert_eq!(decisions(&t), decisions(&s));
    assert_eq!(t.store.conflict_policies().unwrap().len(), 1);
    // Compacting past the conflict's revision drops its record.
    let upto = t.revision();
    t.apply(KvRequest::Compaction(CompactionRequest {
        revision: upto,
        physical: false,
    }));
    assert_eq!(decisions(&t), decisions(&s), "kept at the compaction point");
    majority_put(&mut t, "later", 300);
    let upto = t.revision();
    t.apply(KvRequest::Compaction(CompactionRequest {
        revision: upto,
        physical: false,
    }));
    assert!(decisions(&t).is_empty());
}

#[test]
fn setting_commit_order_removes_a_policy_and_the_longest_prefix_decides() {
    let mut s = Store::new();
    policy(&mut s, "", ConflictPolicy::RejectIfChanged);
    policy(&mut s, "k", ConflictPolicy::CommitOrder);
    let listed: Vec<i32> = s
        .store
        .conflict_policies()
        .unwrap()
        .iter()
        .map(|p| p.policy)
        .collect();
    assert_eq!(listed, vec![ConflictPolicy::RejectIfChanged as i32]);
    policy(&mut s, "k", ConflictPolicy::LastWriterWins);
    let context = s.revision();
    majority_put(&mut s, "m", 100);
    assert!(
        s.round(vec![stamped(7, 1, "l", context, 500)])[0].applied,
        "the longer prefix (last-writer-wins) decides"
    );
}
