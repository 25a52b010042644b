//! Local writes in the store: a member's writes apply once each and in its
//! seq order, copies and writes that come too early change nothing, a
//! change to the key after the write's context revision is reported as
//! concurrent, and the applied seqs survive a snapshot.

use rafter_proto::etcdserverpb::{PutRequest, RangeRequest};
use rafter_proto::rafterpb::{LocalWrite, LocalWriteBatch};
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
        self.index += 1;
        let entry = ApplyEntry {
            index: self.index,
            request: Some(&request),
            client: None,
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
