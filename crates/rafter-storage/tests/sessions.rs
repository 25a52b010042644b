//! Client sessions in the store: a tagged mutation applies at most once and
//! a retry gets its original answer; a cancel decides a request's fate for
//! good; acknowledged answers are dropped; sessions expire by cluster time
//! only; all of it survives a snapshot.

use rafter_proto::etcdserverpb::PutRequest;
use rafter_proto::rafterpb::{
    ClientTag, ClusterClock, SessionCancel, SessionClose, SessionKeepAlive, SessionOpen,
};
use rafter_storage::mvcc::sessions::RequestOutcome;
use rafter_storage::mvcc::{ApplyEntry, KvResponse, MvccError};
use rafter_storage::{KvRequest, MvccStore};

struct Store {
    store: MvccStore,
    index: u64,
}

type Answer = Result<KvResponse, MvccError>;

impl Store {
    fn new() -> Self {
        Store {
            store: MvccStore::open_in_memory().expect("store"),
            index: 0,
        }
    }

    fn apply(&mut self, request: KvRequest, client: Option<ClientTag>) -> Answer {
        self.index += 1;
        let entry = ApplyEntry {
            index: self.index,
            stamp: None,
            request: Some(&request),
            client: client.as_ref(),
        };
        let (_, mut results) = self.store.apply(&[entry], false).expect("apply");
        results.pop().flatten().expect("a result")
    }

    fn open(&mut self, id: u64, timeout_ms: u64) {
        let r = self.apply(
            KvRequest::SessionOpen(SessionOpen {
                session_id: id,
                timeout_ms,
            }),
            None,
        );
        assert_eq!(r, Ok(KvResponse::SessionOpened { session_id: id }));
    }

    fn put(&mut self, session_id: u64, seq: u64, acked_below: u64, value: &str) -> Answer {
        self.apply(
            KvRequest::Put(PutRequest {
                key: b"k".to_vec(),
                value: value.as_bytes().to_vec(),
                ..Default::default()
            }),
            Some(ClientTag {
                session_id,
                seq,
                acked_below,
            }),
        )
    }

    fn cancel(&mut self, session_id: u64, seq: u64) -> RequestOutcome {
        match self.apply(
            KvRequest::SessionCancel(SessionCancel { session_id, seq }),
            None,
        ) {
            Ok(KvResponse::Outcome(o)) => o,
            other => panic!("cancel answered {other:?}"),
        }
    }

    fn clock(&mut self, elapsed_ms: u64) {
        let r = self.apply(KvRequest::ClusterClock(ClusterClock { elapsed_ms }), None);
        assert_eq!(r, Ok(KvResponse::ClockAdvanced));
    }

    fn revision(&self) -> i64 {
        self.store.state().expect("state").current_revision
    }
}

fn put_revision(a: &Answer) -> i64 {
    match a {
        Ok(KvResponse::Put(p)) => p.header.as_ref().expect("header").revision,
        other => panic!("not a put answer: {other:?}"),
    }
}

#[test]
fn a_retried_mutation_is_applied_once_and_gets_its_original_answer() {
    let mut s = Store::new();
    s.open(7, 10_000);
    let first = s.put(7, 1, 1, "a");
    let rev = s.revision();
    assert_eq!(put_revision(&first), rev);
    s.put(7, 2, 1, "b").expect("put applied");
    let retry = s.put(7, 1, 1, "a");
    assert_eq!(retry, first, "the retry gets the original answer");
    assert_eq!(s.revision(), rev + 1, "the retry did not apply again");
}

#[test]
fn a_cancel_first_means_never_applied() {
    let mut s = Store::new();
    s.open(7, 10_000);
    let rev = s.revision();
    assert_eq!(s.cancel(7, 1), RequestOutcome::Cancelled);
    assert_eq!(s.put(7, 1, 1, "a"), Err(MvccError::Cancelled));
    assert_eq!(s.revision(), rev, "a cancelled request changed the store");
    assert_eq!(
        s.cancel(7, 1),
        RequestOutcome::Cancelled,
        "decided for good"
    );
}

#[test]
fn a_cancel_after_the_request_reports_its_answer() {
    let mut s = Store::new();
    s.open(7, 10_000);
    let first = s.put(7, 1, 1, "a");
    assert_eq!(
        s.cancel(7, 1),
        RequestOutcome::Applied(Box::new(first.clone()))
    );
    assert_eq!(s.put(7, 1, 1, "a"), first);
}

#[test]
fn acknowledged_answers_are_refused_and_then_dropped() {
    let mut s = Store::new();
    s.open(7, 10_000);
    let first = s.put(7, 1, 1, "a");
    s.put(7, 2, 2, "b").expect("put applied");
    let rev = s.revision();
    assert_eq!(s.put(7, 1, 2, "a"), Err(MvccError::AlreadyAcknowledged));
    // Until a run of acknowledged answers is deleted, a question about one
    // still gets its answer (never a second application).
    assert_eq!(s.cancel(7, 1), RequestOutcome::Applied(Box::new(first)));
    for seq in 3..=70 {
        s.put(7, seq, seq, "c").expect("put applied");
    }
    assert_eq!(s.cancel(7, 1), RequestOutcome::Acknowledged);
    assert_eq!(s.cancel(7, 2), RequestOutcome::Acknowledged);
    assert_eq!(s.revision(), rev + 68);
}

#[test]
fn acknowledged_answers_do_not_pile_up() {
    let mut s = Store::new();
    s.open(7, 10_000);
    for seq in 1..=1_000 {
        s.put(7, seq, seq, "v").expect("put applied");
    }
    let kept = s.store.kept_answers().expect("count");
    assert!(
        kept <= 100,
        "{kept} answers kept for one outstanding request"
    );
    // The newest answer is still there for a retry.
    let rev = s.revision();
    let retry = s.put(7, 1_000, 1_000, "v");
    assert_eq!(put_revision(&retry), rev);
}

#[test]
fn sessions_expire_by_cluster_time_only() {
    let mut s = Store::new();
    s.open(7, 1_000);
    s.open(8, 1_000);
    s.clock(600);
    // Activity keeps a session alive; the idle one goes.
    s.put(7, 1, 1, "a").expect("put applied");
    assert_eq!(
        s.apply(
            KvRequest::SessionKeepAlive(SessionKeepAlive { session_id: 7 }),
            None
        ),
        Ok(KvResponse::SessionAlive)
    );
    s.clock(600);
    assert_eq!(s.store.sessions_open().expect("count"), 1);
    let rev = s.revision();
    assert_eq!(s.put(8, 1, 1, "x"), Err(MvccError::SessionExpired));
    assert_eq!(s.cancel(8, 1), RequestOutcome::SessionExpired);
    assert_eq!(s.revision(), rev, "an expired session's request applied");
    s.clock(1_000);
    assert_eq!(s.put(7, 2, 1, "b"), Err(MvccError::SessionExpired));
    assert_eq!(s.store.sessions_open().expect("count"), 0);
}

#[test]
fn a_closed_session_refuses_requests() {
    let mut s = Store::new();
    s.open(7, 10_000);
    let r = s.apply(
        KvRequest::SessionClose(SessionClose { session_id: 7 }),
        None,
    );
    assert_eq!(r, Ok(KvResponse::SessionClosed));
    assert_eq!(s.put(7, 1, 1, "a"), Err(MvccError::SessionExpired));
}

#[test]
fn sessions_and_kept_answers_survive_a_snapshot() {
    let mut s = Store::new();
    s.open(7, 1_000);
    s.clock(500);
    let first = s.put(7, 1, 1, "a");
    s.cancel(7, 2);
    let (blob, _) = s.store.snapshot_data().expect("snapshot");
    let mut t = Store::new();
    t.store.restore(&blob).expect("restore");
    t.index = s.index;
    assert_eq!(t.put(7, 1, 1, "a"), first);
    assert_eq!(t.put(7, 2, 1, "b"), Err(MvccError::Cancelled));
    // Cluster time came along: the session was last active at 500.
    t.clock(1_400);
    assert_eq!(t.put(7, 3, 1, "c"), Err(MvccError::SessionExpired));
}

#[test]
fn error_codes_round_trip() {
    for code in 1..=17 {
        let e = MvccError::from_code(code).expect("known code");
        assert_eq!(e.code(), Some(code));
    }
    assert_eq!(MvccError::from_code(0), None);
    assert_eq!(MvccError::from_code(18), None);
    assert_eq!(MvccError::Storage("x".into()).code(), None);
}
