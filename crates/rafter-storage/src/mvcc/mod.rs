//! The MVCC key-value store on redb, etcd's `mvcc` + `backend` in one: a
//! global revision bumped once per mutating request, create/mod revision and
//! version per key, tombstones, reads at past revisions and compaction.
//!
//! Applying committed Raft entries happens in [`MvccStore::apply`]: a whole
//! batch in one write transaction that also stores the applied index, so after
//! a crash the state and the index that describes it always agree.

pub mod alarms;
mod compact;
pub mod conflicts;
pub mod defrag;
mod history;
pub mod keyrange;
pub mod local_writes;
pub mod membership;
mod range_stream;
mod read;
pub mod read_only;
pub mod record;
pub mod sessions;
mod snapshot;
mod tables;
mod txn;
pub mod validate;
mod write;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rafter_proto::etcdserverpb::{
    CompactionResponse, DeleteRangeResponse, LeaseGrantResponse, LeaseRevokeResponse, PutResponse,
    RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata};

pub use range_stream::RangeChunks;
pub use read::RevisionBounds;
use tables::*;

/// Everything that can go wrong in the KV layer, request errors (mapped to
/// etcd's gRPC codes at the API edge) and storage failures alike.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MvccError {
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    #[error("mvcc: required revision is a future revision")]
    FutureRevision,
    #[error("key is not provided")]
    EmptyKey,
    #[error("key not found")]
    KeyNotFound,
    #[error("value is provided")]
    ValueProvided,
    #[error("lease is provided")]
    LeaseProvided,
    #[error("requested lease not found")]
    LeaseNotFound,
    #[error("lease already exists")]
    LeaseExists,
    #[error("too many operations in txn request")]
    TooManyOps,
    #[error("duplicate key given in txn request")]
    DuplicateKey,
    /// A txn with a put or delete was given to [`MvccStore::txn_read`] (a
    /// caller's mistake: such a txn must be proposed through Raft).
    #[error("mvcc: a txn that writes cannot be served as a read")]
    NotReadOnly,
    /// The request's client session is gone (expired or closed, or never
    /// opened): the request was not applied.
    #[error("rafter: session expired")]
    SessionExpired,
    #[error("rafter: session already exists")]
    SessionExists,
    /// The request was cancelled (its timeout passed) before it was
    /// ordered: it never changes the store.
    #[error("rafter: request cancelled")]
    Cancelled,
    /// A retry of a request the client had already acknowledged.
    #[error("rafter: request already acknowledged")]
    AlreadyAcknowledged,
    /// The cluster's NOSPACE alarm is raised: writes that add data are
    /// refused until it is disarmed.
    #[error("mvcc: database space exceeded")]
    NoSpace,
    /// The cluster's CORRUPT alarm is raised: no mutation is applied.
    #[error("corrupt cluster")]
    Corrupt,
    #[error("storage: {0}")]
    Storage(String),
}

impl MvccError {
    /// Every variant but `Storage` (which is never an answer) in code
    /// order: a kept session answer stores the code, never the text.
    const CODED: [MvccError; 17] = [
        MvccError::Compacted,
        MvccError::FutureRevision,
        MvccError::EmptyKey,
        MvccError::KeyNotFound,
        MvccError::ValueProvided,
        MvccError::LeaseProvided,
        MvccError::LeaseNotFound,
        MvccError::LeaseExists,
        MvccError::TooManyOps,
        MvccError::DuplicateKey,
        MvccError::NotReadOnly,
        MvccError::SessionExpired,
        MvccError::SessionExists,
        MvccError::Cancelled,
        MvccError::AlreadyAcknowledged,
        MvccError::NoSpace,
        MvccError::Corrupt,
    ];

    /// The stable code of an answer-error (`None` for storage failures).
    pub fn code(&self) -> Option<u32> {
        Self::CODED
            .iter()
            .position(|e| std::mem::discriminant(e) == std::mem::discriminant(self))
            .map(|i| i as u32 + 1)
    }

    pub fn from_code(code: u32) -> Option<MvccError> {
        let i = usize::try_from(code).ok()?.checked_sub(1)?;
        Self::CODED.get(i).cloned()
    }
}

macro_rules! storage_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for MvccError {
            fn from(e: $t) -> Self {
                MvccError::Storage(e.to_string())
            }
        }
    )*};
}
storage_error_from!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError,
    redb::SetDurabilityError
);

/// A mutating request as replicated through Raft (the payload of a
/// `rafterpb.RaftCommand`).
pub use rafter_proto::rafterpb::raft_command::Request as KvRequest;

/// The result of applying a [`KvRequest`]; the header carries only the
/// revision, the server adds member, cluster and term.
#[derive(Debug, Clone, PartialEq)]
pub enum KvResponse {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compact(CompactionResponse),
    /// A member's attributes were recorded (no KV change).
    MemberAttributes,
    /// A membership change was recorded (no KV change).
    Membership,
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    LeaseCheckpoint,
    SessionOpened {
        session_id: u64,
    },
    SessionAlive,
    SessionClosed,
    /// What a `SessionCancel` decided.
    Outcome(sessions::RequestOutcome),
    ClockAdvanced,
    /// One answer per write of a `LocalWrites` round.
    LocalWrites(Vec<local_writes::LocalWriteApplied>),
    /// A conflict policy was set.
    ConflictPolicySet,
    /// The alarms an `AlarmRequest` activated or deactivated.
    Alarm(Vec<rafter_proto::etcdserverpb::AlarmMember>),
}

impl KvResponse {
    fn with_revision(mut self, revision: i64) -> Self {
        let header = Some(txn::rev_header(revision));
        match &mut self {
            KvResponse::Put(r) => r.header = header,
            KvResponse::DeleteRange(r) => r.header = header,
            KvResponse::Txn(r) => r.header = header,
            KvResponse::Compact(r) => r.header = header,
            KvResponse::LeaseGrant(r) => r.header = header,
            KvResponse::LeaseRevoke(r) => r.header = header,
            KvResponse::MemberAttributes
            | KvResponse::Membership
            | KvResponse::LeaseCheckpoint
            | KvResponse::SessionOpened { .. }
            | KvResponse::SessionAlive
            | KvResponse::SessionClosed
            | KvResponse::Outcome(_)
            | KvResponse::ClockAdvanced => {}
            KvResponse::LocalWrites(_) | KvResponse::ConflictPolicySet | KvResponse::Alarm(_) => {}
        }
        self
    }
}

/// One committed log entry for [`MvccStore::apply`]: its index, and the
/// request it carries (`None` for entries with no KV effect, such as a new
/// leader's empty entry).
pub struct ApplyEntry<'a> {
    pub index: u64,
    pub request: Option<&'a KvRequest>,
    /// The request's client session tag, if it has one.
    pub client: Option<&'a rafter_proto::rafterpb::ClientTag>,
    /// The proposer's clock stamp, on client mutations.
    pub stamp: Option<&'a rafter_proto::rafterpb::HlcStamp>,
}

/// What the applied state looks like after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppliedState {
    pub applied_index: u64,
    pub current_revision: i64,
    pub compact_revision: i64,
}

/// What applying a batch did: the state after it, one result per entry, and
/// the changes for watches.
pub struct ApplyOutcome {
    pub state: AppliedState,
    pub results: Vec<Option<Result<KvResponse, MvccError>>>,
    pub events: Vec<rafter_proto::mvccpb::Event>,
    /// Leases granted, revoked or checkpointed, for the lessor.
    pub lease_changes: Vec<rafter_core::lease::LeaseChange>,
    /// Open sessions after the batch, when the batch opened, closed or
    /// expired any.
    pub sessions_open: Option<u64>,
    /// Local writes applied: (member, seq), in order.
    pub local_dots: Vec<(u64, u64)>,
}

/// The MVCC store. Reads run concurrently with the single writer.
pub struct MvccStore {
    /// The database. Replaced whole when a defragmentation finishes;
    /// readers take a reference and keep the file they began on.
    db: RwLock<Arc<Database>>,
    path: PathBuf,
    /// Held by every write transaction, so a defragmentation's final
    /// catch-up and swap see no apply in between.
    writer: Mutex<()>,
    /// While a defragmentation copies the store: the entries applied since
    /// its copy was taken (see `defrag.rs`).
    journal: Mutex<Option<defrag::Journal>>,
    /// One defragmentation at a time.
    defragmenting: Mutex<()>,
    /// The database file's size as of the last write (what the space
    /// quota is checked against on every write request).
    size_bytes: AtomicU64,
    /// The bytes the store's data occupies (etcd's `dbSizeInUse`), as of
    /// the last time it was measured, and when (ms since the store opened).
    in_use: Mutex<Option<(u64, std::time::Instant)>>,
}

impl MvccStore {
    /// Opens or creates the store file at `path`.
    pub fn open(path: &Path) -> Result<Self, MvccError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`MvccStore::open`] keeping at most `cache_bytes` of the file's
    /// pages in memory.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Self, MvccError> {
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(path)?;
        Self::init(db, path.to_path_buf())
    }

    /// A store that lives in memory only (for the deterministic simulator,
    /// where a crash loses the store and the log is replayed into a new one).
    pub fn open_in_memory() -> Result<Self, MvccError> {
        let db = redb::Builder::new().create_with_backend(redb::backends::InMemoryBackend::new())?;
        Self::init(db, PathBuf::new())
    }

    fn init(db: Database, path: PathBuf) -> Result<Self, MvccError> {
        defrag::remove_leftover(&path)?;
        let store = MvccStore {
            db: RwLock::new(Arc::new(db)),
            path,
            writer: Mutex::new(()),
            journal: Mutex::new(None),
            defragmenting: Mutex::new(()),
            size_bytes: AtomicU64::new(0),
            in_use: Mutex::new(None),
        };
        let txn = store.db().begin_write()?;
        {
            if let Err(redb::TableError::TableTypeMismatch { .. }) = txn.open_table(KV_REVS) {
                return Err(MvccError::Storage(
                    "this store was written by an earlier Rafter, whose storage layout kept \
                     history in kv_revs; this version keeps it in kv_history and cannot read it"
                        .into(),
                ));
            }
            txn.open_table(KV_REVS)?;
            txn.open_table(KV_LATEST)?;
            txn.open_table(KV_HISTORY)?;
            txn.open_table(META)?;
            txn.open_table(MEMBERS)?;
            txn.open_table(LEASES)?;
            txn.open_table(LEASE_KEYS)?;
            txn.open_table(SESSIONS)?;
            txn.open_table(SESSION_RESULTS)?;
            txn.open_table(LOCAL_DOTS)?;
            txn.open_table(CONFLICT_STATE)?;
        }
        txn.commit()?;
        store.refresh_size();
        Ok(store)
    }

    /// The database as of now (a defragmentation may replace it later; the
    /// reference keeps this one open).
    fn db(&self) -> Arc<Database> {
        self.db.read().expect("store lock poisoned").clone()
    }

    /// Takes the writer's turn (see `MvccStore::writer`).
    fn write_turn(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writer.lock().expect("store writer lock poisoned")
    }

    fn refresh_size(&self) {
        let size = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        self.size_bytes.store(size, Ordering::Relaxed);
    }

    /// Applied index and revisions as of the last committed apply.
    pub fn state(&self) -> Result<AppliedState, MvccError> {
        let txn = self.db().begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(AppliedState {
            applied_index: meta_get(&meta, META_APPLIED_INDEX, 0)?,
            current_revision: meta_get(&meta, META_CURRENT_REV, 1)? as i64,
            compact_revision: compact_revision(&meta)?,
        })
    }

    /// Serves a Range from a read snapshot (never blocks the writer).
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        read::ReadView::open(&self.db())?.range(req)
    }

    /// One page of a RangeStream: `req`'s first `limit` keys; `count` and
    /// `more` only when `count_total` (see [`read::ReadView::range_page`]).
    pub fn range_page(
        &self,
        req: &RangeRequest,
        count_total: bool,
    ) -> Result<RangeResponse, MvccError> {
        read::ReadView::open(&self.db())?.range_page(req, count_total)
    }

    /// Serves a read-only Txn (see [`read_only::is_read_only`]; nested txns
    /// included) from one read snapshot, never blocking the writer. The
    /// answer, errors included, is the one applying the same txn through
    /// [`MvccStore::apply`] would give at this point: both run the same code
    /// (`mvcc/txn.rs`). The header carries the store's current revision.
    pub fn txn_read(&self, req: &TxnRequest) -> Result<TxnResponse, MvccError> {
        if !read_only::is_read_only(req) {
            return Err(MvccError::NotReadOnly);
        }
        let mut view = read::ReadView::open(&self.db())?;
        let mut resp = txn::run(&mut view, req)?;
        resp.header = Some(txn::rev_header(view.bounds.current));
        Ok(resp)
    }

    /// Applies a batch of committed entries in one write transaction and
    /// records the last index as applied in that same transaction. Returns
    /// one result per entry that carried a request. With `durable` the commit
    /// is fsynced; without, it becomes durable with the next durable commit
    /// (until then the Raft log still holds the entries to replay).
    #[allow(clippy::type_complexity)]
    pub fn apply(
        &self,
        entries: &[ApplyEntry<'_>],
        durable: bool,
    ) -> Result<(AppliedState, Vec<Option<Result<KvResponse, MvccError>>>), MvccError> {
        let outcome = self.apply_with_events(entries, durable)?;
        Ok((outcome.state, outcome.results))
    }

    /// [`MvccStore::apply`], also returning every change the batch made
    /// (with each key's previous value) in revision order, for watches.
    pub fn apply_with_events(
        &self,
        entries: &[ApplyEntry<'_>],
        durable: bool,
    ) -> Result<ApplyOutcome, MvccError> {
        let _turn = self.write_turn();
        let outcome = apply_to(&self.db(), entries, durable)?;
        self.journal_applied(entries);
        self.refresh_size();
        Ok(outcome)
    }

    /// The conflict policies in force, in prefix order.
    pub fn conflict_policies(
        &self,
    ) -> Result<Vec<rafter_proto::rafterpb::ConflictPolicySet>, MvccError> {
        let txn = self.db().begin_read()?;
        conflicts::policies(&txn.open_table(CONFLICT_STATE)?)
    }

    /// The conflict log (oldest first, on keys starting with `prefix`, at
    /// most `limit` records, 0: all), with the state it was read at.
    pub fn conflicts(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<(Vec<rafter_proto::rafterpb::ConflictRecord>, AppliedState), MvccError> {
        let txn = self.db().begin_read()?;
        let meta = txn.open_table(META)?;
        let state = AppliedState {
            applied_index: meta_get(&meta, META_APPLIED_INDEX, 0)?,
            current_revision: meta_get(&meta, META_CURRENT_REV, 1)? as i64,
            compact_revision: compact_revision(&meta)?,
        };
        let records = conflicts::records(&txn.open_table(CONFLICT_STATE)?, prefix, limit)?;
        Ok((records, state))
    }

    /// How many records the conflict log holds.
    pub fn conflict_count(&self) -> Result<u64, MvccError> {
        let txn = self.db().begin_read()?;
        conflicts::record_count(&txn.open_table(CONFLICT_STATE)?)
    }

    /// The stamp of `key`'s last change, kept for last-writer-wins keys.
    pub fn key_stamp(
        &self,
        key: &[u8],
    ) -> Result<Option<rafter_proto::rafterpb::HlcStamp>, MvccError> {
        let txn = self.db().begin_read()?;
        conflicts::stamp_get(&txn.open_table(CONFLICT_STATE)?, key)
    }

    /// The last of `member_id`'s local writes the store applied (0: none).
    pub fn local_applied_seq(&self, member_id: u64) -> Result<u64, MvccError> {
        let txn = self.db().begin_read()?;
        Ok(txn
            .open_table(LOCAL_DOTS)?
            .get(member_id)?
            .map_or(0, |v| v.value()))
    }

    /// How many session answers (and cancel marks) the store keeps.
    pub fn kept_answers(&self) -> Result<u64, MvccError> {
        let txn = self.db().begin_read()?;
        Ok(redb::ReadableTableMetadata::len(
            &txn.open_table(SESSION_RESULTS)?,
        )?)
    }

    /// How many client sessions are open (what the leader's cluster clock
    /// waits for: with none open, cluster time need not advance).
    pub fn sessions_open(&self) -> Result<u64, MvccError> {
        let txn = self.db().begin_read()?;
        Ok(redb::ReadableTableMetadata::len(
            &txn.open_table(SESSIONS)?,
        )?)
    }

    /// Every lease: (id, granted TTL, checkpointed remaining TTL or 0), in
    /// id order (what a lessor starts from).
    pub fn leases(&self) -> Result<Vec<(i64, i64, i64)>, MvccError> {
        let txn = self.db().begin_read()?;
        let mut out = Vec::new();
        for item in txn.open_table(LEASES)?.iter()? {
            let (k, v) = item?;
            let (ttl, remaining) = v.value();
            out.push((k.value(), ttl, remaining));
        }
        Ok(out)
    }

    /// One lease's granted TTL, and its attached keys when `with_keys`.
    #[allow(clippy::type_complexity)]
    pub fn lease(
        &self,
        id: i64,
        with_keys: bool,
    ) -> Result<Option<(i64, Vec<Vec<u8>>)>, MvccError> {
        let txn = self.db().begin_read()?;
        let Some(ttl) = txn.open_table(LEASES)?.get(id)?.map(|v| v.value().0) else {
            return Ok(None);
        };
        let mut keys = Vec::new();
        if with_keys {
            let table = txn.open_table(LEASE_KEYS)?;
            for item in table.range((id, &[][..])..)? {
                let (k, _) = item?;
                let (lease, key) = k.value();
                if lease != id {
                    break;
                }
                keys.push(key.to_vec());
            }
        }
        Ok(Some((ttl, keys)))
    }

    /// Forces everything applied so far to disk.
    pub fn sync(&self) -> Result<(), MvccError> {
        let _turn = self.write_turn();
        let mut txn = self.db().begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        self.refresh_size();
        Ok(())
    }

    /// Attributes members published through the log, by member id.
    pub fn member_attributes(
        &self,
    ) -> Result<Vec<rafter_proto::rafterpb::MemberAttributes>, MvccError> {
        let txn = self.db().begin_read()?;
        membership::load(&txn.open_table(MEMBERS)?)
    }

    /// Records the founding members of a new cluster, as of index 1 (the
    /// log of a new cluster starts after it): a store that applied nothing
    /// yet (new, or restored from a snapshot) starts at index 1 with them.
    pub fn bootstrap_members(
        &self,
        members: &[rafter_proto::rafterpb::MemberAttributes],
    ) -> Result<(), MvccError> {
        let _turn = self.write_turn();
        let db = self.db();
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let applied = meta_get(&meta, META_APPLIED_INDEX, 0)?;
            if applied > 1 {
                return Err(MvccError::Storage(format!(
                    "bootstrap of a store that applied up to {applied}"
                )));
            }
            meta.insert(META_APPLIED_INDEX, 1)?;
            let mut table = txn.open_table(MEMBERS)?;
            membership::apply_change(
                &mut table,
                &rafter_proto::rafterpb::MembershipChange {
                    kind: rafter_proto::rafterpb::membership_change::Kind::Bootstrap as i32,
                    members: members.to_vec(),
                },
            )?;
        }
        txn.commit()?;
        self.refresh_size();
        Ok(())
    }

    /// The whole state as one checksummed blob (a Raft snapshot's data).
    pub fn snapshot_data(&self) -> Result<(Vec<u8>, u64), MvccError> {
        snapshot::dump(&self.db())
    }

    /// [`MvccStore::snapshot_data`] and the membership records it holds.
    pub fn snapshot_with_members(
        &self,
    ) -> Result<(Vec<u8>, u64, Vec<rafter_proto::rafterpb::MemberAttributes>), MvccError> {
        snapshot::dump_with_members(&self.db())
    }

    /// Replaces the state with a snapshot blob, durably and atomically.
    /// A defragmentation under way gives up (its copy predates the
    /// snapshot).
    pub fn restore(&self, data: &[u8]) -> Result<AppliedState, MvccError> {
        let _turn = self.write_turn();
        self.abandon_defrag();
        snapshot::restore(&self.db(), data)?;
        self.refresh_size();
        self.state()
    }

    /// Replaces the state with a snapshot taken from another cluster, for a
    /// member of a new one (`rafter snapshot restore`, etcdutl's
    /// semantics): keys, revisions, leases and sessions are kept; the
    /// applied index starts over at 0 (the new cluster's log starts empty)
    /// and the old cluster's member attributes are dropped.
    pub fn restore_for_new_cluster(&self, data: &[u8]) -> Result<AppliedState, MvccError> {
        let _turn = self.write_turn();
        let db = self.db();
        snapshot::restore(&db, data)?;
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(META_APPLIED_INDEX, 0)?;
            alarms::clear(&mut meta)?;
            txn.delete_table(MEMBERS)?;
            txn.open_table(MEMBERS)?;
        }
        txn.commit()?;
        self.refresh_size();
        self.state()
    }

    /// Live keys at the current revision.
    pub fn key_count(&self) -> Result<u64, MvccError> {
        let txn = self.db().begin_read()?;
        Ok(redb::ReadableTableMetadata::len(
            &txn.open_table(KV_LATEST)?,
        )?)
    }

    /// etcd's HashKV: a hash of all retained revisions up to `revision`
    /// (0 = current). Returns (hash, revision hashed, compaction revision).
    pub fn hash_kv(&self, revision: i64) -> Result<(u32, i64, i64), MvccError> {
        let state = self.state()?;
        let rev = RevisionBounds {
            current: state.current_revision,
            compacted: state.compact_revision,
        }
        .resolve(revision)?;
        Ok((
            snapshot::hash_kv(&self.db(), rev as u64)?,
            rev,
            state.compact_revision,
        ))
    }

    /// Size of the database file in bytes (etcd's `dbSize`), as of the
    /// last write.
    pub fn db_size_bytes(&self) -> u64 {
        self.size_bytes.load(Ordering::Relaxed)
    }

    /// The bytes the store's pages hold (etcd's `dbSizeInUse`): the file
    /// less its free pages. Measuring walks every table (on a snapshot, so
    /// applies go on), so a measurement is reused for `IN_USE_MAX_AGE`.
    pub fn db_size_in_use_bytes(&self) -> Result<u64, MvccError> {
        if let Some((bytes, at)) = *self.in_use.lock().expect("in-use lock poisoned") {
            if at.elapsed() < IN_USE_MAX_AGE {
                return Ok(bytes);
            }
        }
        // The pages every table's tree occupies (what they store, their
        // metadata and the unused space inside their pages), read from a
        // snapshot: redb's whole-database statistics need the write
        // transaction, and walking a 1 GiB file under it stopped applies
        // for 0.6 s. Free pages, and redb's own small system tables, are
        // not counted.
        let txn = self.db().begin_read()?;
        let mut in_tables = 0u64;
        for handle in txn.list_tables()? {
            let stats = txn.open_untyped_table(handle)?.stats()?;
            in_tables += stats.stored_bytes() + stats.metadata_bytes() + stats.fragmented_bytes();
        }
        let bytes = in_tables.min(self.db_size_bytes());
        // Not held across the walk: `/metrics` reads the last measurement.
        *self.in_use.lock().expect("in-use lock poisoned") =
            Some((bytes, std::time::Instant::now()));
        Ok(bytes)
    }

    /// The last `dbSizeInUse` measured (by a `Status`), however old, or
    /// `None` before the first: what `/metrics` reports, since measuring
    /// walks every page of the store.
    pub fn last_db_size_in_use_bytes(&self) -> Option<u64> {
        self.in_use
            .lock()
            .expect("in-use lock poisoned")
            .map(|(bytes, _)| bytes.min(self.db_size_bytes()))
    }

    /// Test-only: replaces `key`'s current value in place, keeping its
    /// revisions, as silent disk corruption would (what the corruption
    /// check must find). Compiled only with the test-only bugs.
    #[cfg(feature = "faults")]
    pub fn corrupt_value_for_tests(&self, key: &[u8], value: &[u8]) -> Result<(), MvccError> {
        let _turn = self.write_turn();
        let txn = self.db().begin_write()?;
        {
            let mut latest = txn.open_table(KV_LATEST)?;
            let mut rec = latest_get(&latest, key)?
                .ok_or_else(|| MvccError::Storage("no such key to corrupt".into()))?;
            rec.value = value.to_vec();
            latest.insert(key, rec.encode().as_slice())?;
            let rev = rec.mod_revision as u64;
            let sub = txn
                .open_table(KV_REVS)?
                .get((key, rev))?
                .expect("a live key's revision is indexed")
                .value();
            txn.open_table(KV_HISTORY)?
                .insert((rev, sub), tables::history_row(key, &rec).as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The alarms raised, in (member, alarm) order.
    pub fn alarms(&self) -> Result<Vec<rafter_proto::etcdserverpb::AlarmMember>, MvccError> {
        let txn = self.db().begin_read()?;
        alarms::list(&txn.open_table(META)?)
    }
}

/// The store's page cache by default (redb's own default is 1 GiB). The
/// kernel's page cache still holds the rest of the file, so reads past it
/// cost a system call and a copy, not a disk read; the bound keeps a
/// member's resident memory well below etcd's, which maps the whole file
/// (a million 256 B keys: about 1 GiB per etcd member, see BENCHMARKS.md).
/// A page read past the cache is in the kernel's page cache as well, so a
/// larger cache mostly holds a second copy: 64 MiB holds the hot pages of
/// the benchmarks' workloads and served a million keys as fast as 256 MiB
/// (benchmarks/NOTES.md, "Change 3").
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// How long a measurement of the bytes in use is reused.
const IN_USE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(10);

/// Applies a batch to `db` in one write transaction (the body of
/// [`MvccStore::apply_with_events`], also run by a defragmentation to
/// bring its copy up to date: the same entries on the same state give the
/// same state).
pub(crate) fn apply_to(
    db: &Database,
    entries: &[ApplyEntry<'_>],
    durable: bool,
) -> Result<ApplyOutcome, MvccError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(if durable {
        Durability::Immediate
    } else {
        Durability::None
    })?;
    let mut results = Vec::with_capacity(entries.len());
    let state;
    let events;
    let lease_changes;
    let sessions_open;
    let local_dots;
    {
        let mut meta = txn.open_table(META)?;
        let mut applied = meta_get(&meta, META_APPLIED_INDEX, 0)?;
        let mut w = write::Writer::new(
            write::WriteTables {
                latest: txn.open_table(KV_LATEST)?,
                revs: txn.open_table(KV_REVS)?,
                history: txn.open_table(KV_HISTORY)?,
                members: txn.open_table(MEMBERS)?,
                leases: txn.open_table(LEASES)?,
                lease_keys: txn.open_table(LEASE_KEYS)?,
                sessions: txn.open_table(SESSIONS)?,
                session_results: txn.open_table(SESSION_RESULTS)?,
                local_dots: txn.open_table(LOCAL_DOTS)?,
                conflict_state: txn.open_table(CONFLICT_STATE)?,
            },
            meta_get(&meta, META_CURRENT_REV, 1)? as i64,
            compact_revision(&meta)?,
            meta_get(&meta, META_CLUSTER_TIME, 0)?,
        )?;
        w.alarms = alarms::load(&meta)?;
        for e in entries {
            if e.index <= applied {
                // Already reflected in the state (replay after restart).
                results.push(None);
                continue;
            }
            assert_eq!(e.index, applied + 1, "entries must be applied in log order");
            applied = e.index;
            w.stamp = e.stamp.cloned();
            let result = match e.request {
                None => None,
                Some(r) => match w.apply(r, e.client) {
                    // A failing disk stops the batch: nothing of it commits.
                    Err(MvccError::Storage(s)) => return Err(MvccError::Storage(s)),
                    other => Some(other),
                },
            };
            results.push(result);
        }
        if w.alarms_changed {
            alarms::store(&mut meta, &w.alarms)?;
        }
        meta.insert(META_APPLIED_INDEX, applied)?;
        meta.insert(META_CURRENT_REV, w.current_rev as u64)?;
        if w.compact_rev >= 0 {
            meta.insert(META_COMPACT_REV, w.compact_rev as u64)?;
        }
        state = AppliedState {
            applied_index: applied,
            current_revision: w.current_rev,
            compact_revision: w.compact_rev,
        };
        meta.insert(META_CLUSTER_TIME, w.cluster_time_ms)?;
        sessions_open = if w.sessions_touched {
            Some(redb::ReadableTableMetadata::len(&w.sessions)?)
        } else {
            None
        };
        events = std::mem::take(&mut w.events);
        lease_changes = std::mem::take(&mut w.lease_changes);
        local_dots = std::mem::take(&mut w.local_dots_changed);
    }
    txn.commit()?;
    Ok(ApplyOutcome {
        state,
        results,
        events,
        lease_changes,
        sessions_open,
        local_dots,
    })
}

impl std::fmt::Debug for MvccStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MvccStore")
            .field("path", &self.path)
            .finish()
    }
}
