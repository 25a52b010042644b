//! The Raft log on raft-engine (TiKV's log-structured, CRC-checked store for
//! Raft logs). One `persist` call writes every entry and the hard state of a
//! Ready cycle in one batch with one fsync: that is Rafter's group commit.
//! The same handle implements `raft::Storage`, which raft-rs reads from.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use raft_engine::{Config, Engine, LogBatch, MessageExt, ReadableSize, RecoveryMode};

use crate::entry_cache::EntryCache;

/// The single Raft group id inside raft-engine (Rafter runs one group).
const GROUP_ID: u64 = 1;
const KEY_HARD_STATE: &[u8] = b"hard_state";
const KEY_CONF_STATE: &[u8] = b"conf_state";
/// Index and term of the last entry removed by log compaction or replaced by
/// an installed snapshot; the log's first index is one past it.
const KEY_TRUNCATED: &[u8] = b"truncated";
/// A snapshot the store is being replaced by (see `record_pending_snapshot`).
const KEY_PENDING_SNAPSHOT: &[u8] = b"pending_snapshot";
/// Bound on the newest entries kept in memory (see `entry_cache.rs`): at
/// 10,000 puts/s of 256 B values about a second of log, so a follower that
/// falls briefly behind is still served from memory. It counts against a
/// member's resident memory under a sustained write load.
const ENTRY_CACHE_BYTES: usize = 4 << 20;

/// Tells raft-engine how to read an index out of a raft-rs entry.
#[derive(Clone, Copy)]
struct EntryExt;

impl MessageExt for EntryExt {
    type Entry = Entry;
    fn index(e: &Entry) -> u64 {
        e.index
    }
}

/// Errors from the Raft log. Any of them means the member can no longer
/// promise durability, so the caller stops acknowledging writes.
#[derive(Debug, thiserror::Error)]
pub enum RaftLogError {
    #[error("raft log engine: {0}")]
    Engine(#[from] raft_engine::Error),
    /// A log file's header is damaged. Nothing was modified.
    #[error(
        "the Raft log is corrupt: the header of {file} is damaged ({detail}). No file was \
         changed. To recover, remove this member (rafter member remove / etcdctl member remove), \
         delete its data directory and add it again, or restore the cluster from a snapshot \
         (rafter snapshot restore)"
    )]
    CorruptHeader { file: String, detail: String },
    /// The log engine gave up on a write or an fsync (it panics when an
    /// fsync fails). What it was writing may not be on disk; the member
    /// must stop without acknowledging it, and never retry the fsync.
    #[error(
        "the Raft log could not be written or synced ({0}): nothing that was not yet durable \
         was acknowledged, and a failed fsync is never retried. Check the disk (free space, \
         I/O errors in the kernel log), then restart the member"
    )]
    DiskFailed(String),
    #[error("raft log record decode: {0}")]
    Decode(#[from] protobuf::ProtobufError),
    /// Damage in the log that is not a torn final write: records after it
    /// hold entries this member acknowledged. Nothing was modified.
    #[error(
        "the Raft log is corrupt: {file} is damaged at byte {offset} ({detail}); \
         it and the records after it hold entries {first_lost}..={last_needed}, which this \
         member had made durable. No file was changed. To recover, remove this member \
         (rafter member remove / etcdctl member remove), delete its data directory and add \
         it again, or restore the cluster from a snapshot (rafter snapshot restore)"
    )]
    Corrupt {
        file: String,
        offset: u64,
        detail: String,
        first_lost: u64,
        last_needed: u64,
    },
}

/// What opening the log had to repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogRecovery {
    /// Every record was intact.
    Intact,
    /// A torn final write (never acknowledged) was cut off, as etcd's WAL
    /// does: `file` now ends at `offset`.
    TornTailTruncated { file: String, offset: u64 },
}

fn box_error(msg: String) -> Box<dyn std::error::Error + Send + Sync> {
    msg.into()
}

/// Copies every file of `from` into a new directory `to`.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Length of a raft-engine batch header (two big-endian u64s: the batch
/// length, shifted left 8 bits over the compression type, and the offset
/// of its items).
const BATCH_HEADER_BYTES: usize = 16;

/// Whether the damage at `offset` of `file` is confined to the last record:
/// nothing but zeros (raft-engine's preallocated space) follows it, or its
/// header is intact and the data ends within the length it declares (a
/// record whose write did not complete).
fn damage_is_final_record(file: &std::path::Path, offset: u64) -> bool {
    let Ok(bytes) = std::fs::read(file) else {
        return false;
    };
    let offset = offset as usize;
    let data_end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    if data_end <= offset {
        return true;
    }
    let Some(header) = bytes.get(offset..offset + BATCH_HEADER_BYTES) else {
        return false;
    };
    let declared = u64::from_be_bytes(header[..8].try_into().expect("8 bytes")) >> 8;
    let declared = usize::try_from(declared).unwrap_or(usize::MAX);
    declared >= BATCH_HEADER_BYTES
        && offset.saturating_add(declared) <= bytes.len()
        && data_end <= offset + declared
}

/// The first file (by name) that is shorter in `repaired` than in
/// `original`, and its length there: where the damage starts.
fn first_shrunk_file(
    original: &std::path::Path,
    repaired: &std::path::Path,
) -> Option<(String, u64)> {
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(original)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    names.into_iter().find_map(|name| {
        let before = std::fs::metadata(original.join(&name)).ok()?.len();
        let after = std::fs::metadata(repaired.join(&name)).map_or(0, |m| m.len());
        (after < before).then(|| (original.join(&name).display().to_string(), after))
    })
}

/// raft-engine's file header: a magic string, the format version (u64)
/// and, from version 2, the block alignment (u64) its reader trusts.
const FILE_MAGIC: &[u8] = b"RAFT-LOG-FILE-HEADER-9986AB3E47F320B394C8E84916EB0ED5";

/// Refuses log files whose header declares a block alignment: this member
/// never writes aligned files, and raft-engine's reader would trust the
/// number (a damaged one makes it allocate without bound). Only the
/// header's unchecksummed fields need this; records carry checksums.
fn check_file_headers(dir: &std::path::Path) -> Result<(), RaftLogError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let alignment_at = FILE_MAGIC.len() + 8;
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if !path
            .extension()
            .is_some_and(|x| x == "raftlog" || x == "rewrite")
        {
            continue;
        }
        let mut header = [0u8; FILE_MAGIC.len() + 16];
        let read = std::fs::File::open(&path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header));
        if read.is_err() || !header.starts_with(FILE_MAGIC) {
            continue; // raft-engine's own checks report it
        }
        let alignment = u64::from_be_bytes(
            header[alignment_at..alignment_at + 8]
                .try_into()
                .expect("8 bytes"),
        );
        let version = u64::from_be_bytes(
            header[FILE_MAGIC.len()..alignment_at]
                .try_into()
                .expect("8 bytes"),
        );
        if version >= 2 && alignment != 0 {
            return Err(RaftLogError::CorruptHeader {
                file: path.display().to_string(),
                detail: format!(
                    "it declares a block alignment of {alignment} bytes, which this member never writes"
                ),
            });
        }
    }
    Ok(())
}

/// The newest file of a queue (`.raftlog` or `.rewrite`) when it holds
/// nothing but zeros: a file whose header never reached the disk (created,
/// then a crash before its first fsync). raft-engine calls its header
/// broken; it never held a record, so nothing in it was acknowledged.
fn unsynced_new_file(dir: &std::path::Path) -> Option<(String, u64)> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    ["raftlog", "rewrite"].into_iter().find_map(|queue| {
        let newest = files
            .iter()
            .rfind(|p| p.extension().is_some_and(|x| x == queue))?;
        let bytes = std::fs::read(newest).ok()?;
        bytes
            .iter()
            .all(|b| *b == 0)
            .then(|| (newest.display().to_string(), 0))
    })
}

/// Durable Raft log plus hard state and membership, shared between the Raft
/// loop (writer) and raft-rs (reader through `raft::Storage`).
#[derive(Clone)]
pub struct RaftLog {
    engine: Arc<Engine>,
    fsync_count: Arc<AtomicU64>,
    /// What raft-rs reads on every step, kept in memory: the newest entries
    /// and the truncation point.
    cache: Arc<Mutex<LogCache>>,
}

/// The in-memory copy of the log's hot part, changed only after the write
/// it mirrors succeeded.
#[derive(Debug)]
struct LogCache {
    entries: EntryCache,
    /// `KEY_TRUNCATED` as last written or read (`None`: not read yet).
    truncated: Option<(u64, u64)>,
}

impl RaftLog {
    /// Opens (or creates) the log in `dir`, refusing any damaged record
    /// (raft-engine verifies every record's checksum).
    pub fn open(dir: &std::path::Path) -> Result<Self, RaftLogError> {
        Self::open_with(dir, RecoveryMode::AbsoluteConsistency)
    }

    fn open_with(dir: &std::path::Path, mode: RecoveryMode) -> Result<Self, RaftLogError> {
        Self::open_with_cache(dir, mode, ENTRY_CACHE_BYTES)
    }

    fn open_with_cache(
        dir: &std::path::Path,
        mode: RecoveryMode,
        cache_size_bytes: usize,
    ) -> Result<Self, RaftLogError> {
        let cfg = Config {
            dir: dir.to_string_lossy().into_owned(),
            target_file_size: ReadableSize::mb(64),
            purge_threshold: ReadableSize::gb(1),
            recovery_mode: mode,
            ..Default::default()
        };
        let engine = Engine::open(cfg)?;
        Ok(RaftLog {
            engine: Arc::new(engine),
            fsync_count: Arc::new(AtomicU64::new(0)),
            cache: Arc::new(Mutex::new(LogCache {
                entries: EntryCache::new(cache_size_bytes),
                truncated: None,
            })),
        })
    }

    /// Opens the log of a member whose state machine holds every entry up
    /// to `applied_index`, telling a torn final write from corruption as
    /// etcd's WAL does. A damaged record is examined on a copy of the
    /// directory: if cutting the log at the damage keeps every entry the
    /// member is known to have made durable (up to `applied_index` and the
    /// recorded commit index), the damage was a final write that never
    /// completed (so never acknowledged), and the log is cut there.
    /// Otherwise records after the damage held acknowledged entries: the
    /// open fails with [`RaftLogError::Corrupt`] and no file is changed.
    pub fn open_checked(
        dir: &std::path::Path,
        applied_index: u64,
    ) -> Result<(Self, LogRecovery), RaftLogError> {
        check_file_headers(dir)?;
        let error = match Self::open(dir) {
            Ok(log) => return Ok((log, LogRecovery::Intact)),
            Err(RaftLogError::Engine(e @ raft_engine::Error::Corruption(_))) => e,
            Err(e) => return Err(e),
        };
        let copy = dir.with_extension("check");
        let _ = std::fs::remove_dir_all(&copy);
        copy_dir(dir, &copy).map_err(|e| RaftLogError::Engine(e.into()))?;
        let examined =
            Self::open_with(&copy, RecoveryMode::TolerateTailCorruption).and_then(|log| {
                let last = raft::Storage::last_index(&log).map_err(|e| {
                    RaftLogError::Engine(raft_engine::Error::Other(box_error(e.to_string())))
                })?;
                let commit = raft::Storage::initial_state(&log)
                    .map(|s| s.hard_state.commit)
                    .unwrap_or(0);
                // A store restored from a snapshot the log was not cut to
                // yet (see `record_pending_snapshot`) needs nothing of the
                // log up to its applied index.
                let store_covered = log
                    .pending_snapshot()
                    .ok()
                    .flatten()
                    .is_some_and(|p| p.index == applied_index);
                Ok((last, commit, store_covered))
            });
        let damage = first_shrunk_file(dir, &copy).or_else(|| unsynced_new_file(dir));
        let _ = std::fs::remove_dir_all(&copy);
        let (file, offset) = damage.unwrap_or_else(|| (dir.display().to_string(), 0));
        // Damage outside the last file (the copy does not open): never a
        // torn write.
        let (last_index, commit, store_covered) = examined.unwrap_or((0, u64::MAX, false));
        let needed = if store_covered {
            commit
        } else {
            applied_index.max(commit)
        };
        // etcd's rule: only an incomplete final record is repaired. The
        // recorded commit may be stale and a follower persists entries
        // before either index mentions them, so the indexes alone cannot
        // tell; the bytes must show that no record follows the damaged one.
        let final_record = damage_is_final_record(std::path::Path::new(&file), offset);
        if final_record && last_index >= needed {
            let log = Self::open_with(dir, RecoveryMode::TolerateTailCorruption)?;
            return Ok((log, LogRecovery::TornTailTruncated { file, offset }));
        }
        Err(RaftLogError::Corrupt {
            file,
            offset,
            detail: error.to_string(),
            first_lost: last_index + 1,
            last_needed: needed,
        })
    }

    /// True when nothing has ever been written (a member that must bootstrap).
    pub fn is_empty(&self) -> Result<bool, RaftLogError> {
        Ok(self
            .engine
            .get_message::<ConfState>(GROUP_ID, KEY_CONF_STATE)?
            .is_none())
    }

    /// Records the initial membership of a newly bootstrapped member.
    pub fn bootstrap(&self, conf_state: &ConfState) -> Result<(), RaftLogError> {
        let mut batch = LogBatch::default();
        batch.put_message(GROUP_ID, KEY_CONF_STATE.to_vec(), conf_state)?;
        self.write(&mut batch, true)
    }

    /// Starts the log of a founding member of a new cluster: it begins
    /// after index 1 (term 1), which stands for the founding membership the
    /// state machine records at index 1. A member that joins later has no
    /// entry 1 to replay, so the leader sends it a snapshot, which carries
    /// the membership.
    pub fn bootstrap_cluster(&self, conf_state: &ConfState) -> Result<(), RaftLogError> {
        let mut batch = LogBatch::default();
        let truncated = SnapshotMetadata {
            index: 1,
            term: 1,
            ..Default::default()
        };
        let hard_state = HardState {
            term: 1,
            commit: 1,
            ..Default::default()
        };
        batch.put_message(GROUP_ID, KEY_TRUNCATED.to_vec(), &truncated)?;
        batch.put_message(GROUP_ID, KEY_HARD_STATE.to_vec(), &hard_state)?;
        batch.put_message(GROUP_ID, KEY_CONF_STATE.to_vec(), conf_state)?;
        self.write(&mut batch, true)?;
        let mut cache = self.cache();
        cache.entries.clear();
        cache.truncated = Some((truncated.index, truncated.term));
        Ok(())
    }

    /// Appends `entries` (replacing any conflicting suffix) and stores the
    /// hard state, in one batch; with `sync` one fsync covers all of it.
    pub fn persist(
        &self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
        sync: bool,
    ) -> Result<(), RaftLogError> {
        let mut batch = LogBatch::default();
        if !entries.is_empty() {
            batch.add_entries::<EntryExt>(GROUP_ID, entries)?;
        }
        if let Some(hs) = hard_state {
            batch.put_message(GROUP_ID, KEY_HARD_STATE.to_vec(), hs)?;
        }
        self.write(&mut batch, sync)?;
        self.cache().entries.append(entries);
        Ok(())
    }

    /// Stores a new membership (applied conf change).
    pub fn set_conf_state(&self, conf_state: &ConfState) -> Result<(), RaftLogError> {
        let mut batch = LogBatch::default();
        batch.put_message(GROUP_ID, KEY_CONF_STATE.to_vec(), conf_state)?;
        self.write(&mut batch, true)
    }

    /// Drops entries before `index` (they are reflected in durable state).
    pub fn compact_to(&self, index: u64, term: u64) -> Result<(), RaftLogError> {
        let meta = SnapshotMetadata {
            index: index - 1,
            term,
            ..Default::default()
        };
        let mut batch = LogBatch::default();
        batch.put_message(GROUP_ID, KEY_TRUNCATED.to_vec(), &meta)?;
        self.write(&mut batch, true)?;
        self.engine.compact_to(GROUP_ID, index);
        let mut cache = self.cache();
        cache.entries.compact_to(index);
        cache.truncated = Some((meta.index, meta.term));
        Ok(())
    }

    /// Replaces the log by an installed snapshot: every entry goes, the
    /// truncation point becomes the snapshot's index/term and the membership
    /// its conf state. Durable on return.
    pub fn apply_snapshot(&self, meta: &SnapshotMetadata) -> Result<(), RaftLogError> {
        let hard_state = self
            .engine
            .get_message::<HardState>(GROUP_ID, KEY_HARD_STATE)?
            .unwrap_or_default();
        // One synced batch, applied in order: the log is either as it was
        // or cut to the snapshot, never empty in between (which would look
        // like a member that was never started). The clean also drops the
        // pending snapshot record.
        let mut batch = LogBatch::default();
        batch.add_command(GROUP_ID, raft_engine::Command::Clean);
        let truncated = SnapshotMetadata {
            index: meta.index,
            term: meta.term,
            ..Default::default()
        };
        batch.put_message(GROUP_ID, KEY_TRUNCATED.to_vec(), &truncated)?;
        batch.put_message(GROUP_ID, KEY_CONF_STATE.to_vec(), meta.get_conf_state())?;
        batch.put_message(GROUP_ID, KEY_HARD_STATE.to_vec(), &hard_state)?;
        self.write(&mut batch, true)?;
        let mut cache = self.cache();
        cache.entries.clear();
        cache.truncated = Some((truncated.index, truncated.term));
        Ok(())
    }

    /// Records, durably, that the store is about to be replaced by the
    /// snapshot `meta` describes. The store is restored first and the log
    /// cut to the snapshot second ([`RaftLog::apply_snapshot`]); a crash in
    /// between leaves a store ahead of its log, which
    /// [`RaftLog::pending_snapshot`] lets the next start finish.
    pub fn record_pending_snapshot(&self, meta: &SnapshotMetadata) -> Result<(), RaftLogError> {
        let mut batch = LogBatch::default();
        batch.put_message(GROUP_ID, KEY_PENDING_SNAPSHOT.to_vec(), meta)?;
        self.write(&mut batch, true)
    }

    /// The snapshot being installed when the member stopped, if its log
    /// was not cut to it yet.
    pub fn pending_snapshot(&self) -> Result<Option<SnapshotMetadata>, RaftLogError> {
        Ok(self
            .engine
            .get_message::<SnapshotMetadata>(GROUP_ID, KEY_PENDING_SNAPSHOT)?)
    }

    /// Settles a snapshot install a crash interrupted, at start: if the
    /// store was restored (its applied index is the snapshot's), the log is
    /// cut to the snapshot now and the snapshot returned; otherwise the
    /// record goes (the leader sends the snapshot again).
    pub fn settle_pending_snapshot(
        &self,
        applied_index: u64,
    ) -> Result<Option<SnapshotMetadata>, RaftLogError> {
        let Some(pending) = self.pending_snapshot()? else {
            return Ok(None);
        };
        if applied_index == pending.index {
            self.apply_snapshot(&pending)?;
            return Ok(Some(pending));
        }
        let mut batch = LogBatch::default();
        batch.delete(GROUP_ID, KEY_PENDING_SNAPSHOT.to_vec());
        self.write(&mut batch, true)?;
        Ok(None)
    }

    /// The current membership.
    pub fn conf_state(&self) -> Result<ConfState, RaftLogError> {
        Ok(self
            .engine
            .get_message::<ConfState>(GROUP_ID, KEY_CONF_STATE)?
            .unwrap_or_default())
    }

    /// How many fsyncs the log has issued since it was opened (group-commit
    /// evidence: far fewer than the number of entries under load).
    pub fn fsync_count(&self) -> u64 {
        self.fsync_count.load(Ordering::Relaxed)
    }

    fn write(&self, batch: &mut LogBatch, sync: bool) -> Result<(), RaftLogError> {
        if batch.is_empty() {
            return Ok(());
        }
        use rafter_core::fault::{active, Fault};
        let sync = sync && !active(Fault::LogSkipsFsync);
        let written = match crate::disk_panic::catch(|| self.engine.write(batch, sync)) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(raft_engine::Error::Io(e))) => Err(describe_io(&e)),
            Ok(Err(e)) => Err(e.to_string()),
            Err(panic) => Err(panic),
        };
        if let Err(cause) = written {
            // The engine syncs its file when dropped, which would panic (or
            // worse, succeed over lost pages): it is never dropped now.
            std::mem::forget(Arc::clone(&self.engine));
            return Err(RaftLogError::DiskFailed(cause));
        }
        if sync {
            self.fsync_count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn cache(&self) -> MutexGuard<'_, LogCache> {
        self.cache.lock().expect("raft log cache lock poisoned")
    }

    /// Index and term of the last entry before the log's first.
    fn truncated(&self) -> Result<(u64, u64), RaftLogError> {
        let mut cache = self.cache();
        if let Some(truncated) = cache.truncated {
            return Ok(truncated);
        }
        let meta = self
            .engine
            .get_message::<SnapshotMetadata>(GROUP_ID, KEY_TRUNCATED)?
            .unwrap_or_default();
        cache.truncated = Some((meta.index, meta.term));
        Ok((meta.index, meta.term))
    }

    fn storage_err(e: RaftLogError) -> raft::Error {
        raft::Error::Store(StorageError::Other(Box::new(e)))
    }
}

/// An I/O error as the operator needs it: raft-engine keeps the kind and
/// the failed call, not the errno's text.
fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::StorageFull => format!("{e}: No space left on device"),
        kind => format!("{e}: {kind}"),
    }
}

impl raft::Storage for RaftLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let hard_state = self
            .engine
            .get_message::<HardState>(GROUP_ID, KEY_HARD_STATE)
            .map_err(|e| Self::storage_err(e.into()))?
            .unwrap_or_default();
        let conf_state = self
            .engine
            .get_message::<ConfState>(GROUP_ID, KEY_CONF_STATE)
            .map_err(|e| Self::storage_err(e.into()))?
            .unwrap_or_default();
        Ok(RaftState {
            hard_state,
            conf_state,
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let first = self.first_index()?;
        if low < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        let last = self.last_index()?;
        assert!(
            high <= last + 1,
            "entries({low}, {high}) past last index {last}"
        );
        let max_size = max_size.into();
        if let Some(cached) = self.cache().entries.slice(low, high, max_size) {
            return Ok(cached);
        }
        let mut out = Vec::with_capacity((high - low) as usize);
        let max = max_size.map(|m| m as usize);
        self.engine
            .fetch_entries_to::<EntryExt>(GROUP_ID, low, high, max, &mut out)
            .map_err(|e| Self::storage_err(e.into()))?;
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if let Some(term) = self.cache().entries.term(idx) {
            return Ok(term);
        }
        let (truncated_index, truncated_term) = self.truncated().map_err(Self::storage_err)?;
        if idx == truncated_index {
            return Ok(truncated_term);
        }
        if idx < truncated_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        match self
            .engine
            .get_entry::<EntryExt>(GROUP_ID, idx)
            .map_err(|e| Self::storage_err(e.into()))?
        {
            Some(e) => Ok(e.term),
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        match self.engine.first_index(GROUP_ID) {
            Some(i) => Ok(i),
            None => Ok(self.truncated().map_err(Self::storage_err)?.0 + 1),
        }
    }

    fn last_index(&self) -> raft::Result<u64> {
        match self.engine.last_index(GROUP_ID) {
            Some(i) => Ok(i),
            None => Ok(self.truncated().map_err(Self::storage_err)?.0),
        }
    }

    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}

impl std::fmt::Debug for RaftLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftLog")
            .field("path", &self.engine.path())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: format!("e{index}").into_bytes().into(),
            ..Default::default()
        }
    }

    #[test]
    fn persist_reopen_and_overwrite_suffix() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = RaftLog::open(dir.path()).unwrap();
            assert!(log.is_empty().unwrap());
            let cs = ConfState {
                voters: vec![1],
                ..Default::default()
            };
            log.bootstrap(&cs).unwrap();
            let ents: Vec<_> = (1..=5).map(|i| entry(i, 1)).collect();
            let hs = HardState {
                term: 1,
                commit: 3,
                ..Default::default()
            };
            log.persist(&ents, Some(&hs), true).unwrap();
            // A new leader's conflicting entries replace the suffix from 4 on.
            log.persist(&[entry(4, 2)], None, true).unwrap();
            assert_eq!(log.last_index().unwrap(), 4);
            assert_eq!(log.fsync_count(), 3);
        }
        let log = RaftLog::open(dir.path()).unwrap();
        assert!(!log.is_empty().unwrap());
        let st = log.initial_state().unwrap();
        assert_eq!(st.hard_state.commit, 3);
        assert_eq!(st.conf_state.voters, vec![1]);
        assert_eq!(log.first_index().unwrap(), 1);
        assert_eq!(log.last_index().unwrap(), 4);
        assert_eq!(log.term(4).unwrap(), 2);
        let got = log
            .entries(2, 5, None, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(
            got.iter().map(|e| e.index).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
    }

    /// The data file's bytes, and where its records end.
    fn log_file(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>, usize) {
        let path = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "raftlog"))
            .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
        (path, bytes, end)
    }

    #[test]
    fn a_snapshot_cut_replaces_the_log_in_one_write_and_clears_the_pending_record() {
        let dir = tempfile::tempdir().unwrap();
        let log = RaftLog::open(dir.path()).unwrap();
        log.bootstrap(&ConfState {
            voters: vec![1],
            ..Default::default()
        })
        .unwrap();
        let ents: Vec<_> = (1..=5).map(|i| entry(i, 1)).collect();
        log.persist(&ents, None, true).unwrap();
        let meta = SnapshotMetadata {
            index: 40,
            term: 3,
            conf_state: Some(ConfState {
                voters: vec![1, 2],
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        log.record_pending_snapshot(&meta).unwrap();
        assert_eq!(log.pending_snapshot().unwrap().unwrap().index, 40);
        let syncs = log.fsync_count();
        log.apply_snapshot(&meta).unwrap();
        assert_eq!(log.fsync_count(), syncs + 1, "one synced write");
        drop(log);
        let log = RaftLog::open(dir.path()).unwrap();
        assert_eq!(log.pending_snapshot().unwrap(), None);
        assert_eq!(log.first_index().unwrap(), 41);
        assert_eq!(log.last_index().unwrap(), 40);
        assert_eq!(log.conf_state().unwrap().voters, vec![1, 2]);
    }

    #[test]
    fn a_torn_tail_after_a_pending_snapshot_the_store_holds_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = RaftLog::open(dir.path()).unwrap();
            let ents: Vec<_> = (1..=5).map(|i| entry(i, 1)).collect();
            log.persist(&ents, None, true).unwrap();
            log.record_pending_snapshot(&SnapshotMetadata {
                index: 40,
                term: 3,
                ..Default::default()
            })
            .unwrap();
        }
        // A record whose write stopped halfway: its header declares more
        // bytes than follow it.
        let (path, mut bytes, end) = log_file(dir.path());
        let torn: Vec<u8> = [(1000u64 << 8).to_be_bytes(), 16u64.to_be_bytes()]
            .concat()
            .into_iter()
            .chain((0..100).map(|i| i as u8 | 1))
            .collect();
        bytes.truncate(end);
        bytes.extend(torn);
        // raft-engine's preallocated space.
        bytes.resize(end + 4096, 0);
        std::fs::write(&path, &bytes).unwrap();
        // The store applied the snapshot (index 40): the log's 5 entries
        // are all it needs; without the pending record 40 would be missing.
        let (log, recovery) = RaftLog::open_checked(dir.path(), 40).unwrap();
        assert!(
            matches!(recovery, LogRecovery::TornTailTruncated { .. }),
            "{recovery:?}"
        );
        assert_eq!(log.pending_snapshot().unwrap().unwrap().index, 40);
    }

    #[test]
    fn a_damaged_alignment_in_a_file_header_is_refused_before_the_engine_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = RaftLog::open(dir.path()).unwrap();
            log.persist(&[entry(1, 1)], None, true).unwrap();
        }
        let (path, mut bytes, _) = log_file(dir.path());
        let at = FILE_MAGIC.len() + 8;
        bytes[at..at + 8].copy_from_slice(&0x001a_28c0_0000_0000u64.to_be_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let error = RaftLog::open_checked(dir.path(), 0)
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(error, RaftLogError::CorruptHeader { .. })
                && error.to_string().contains("block alignment"),
            "{error}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "no file changed");
    }

    #[test]
    fn compaction_moves_first_index() {
        let dir = tempfile::tempdir().unwrap();
        let log = RaftLog::open(dir.path()).unwrap();
        let ents: Vec<_> = (1..=10).map(|i| entry(i, 1)).collect();
        log.persist(&ents, None, true).unwrap();
        log.compact_to(6, 1).unwrap();
        assert_eq!(log.first_index().unwrap(), 6);
        assert_eq!(log.term(5).unwrap(), 1);
        assert!(log
            .entries(3, 7, None, GetEntriesContext::empty(false))
            .is_err());
    }

    /// What the test persisted, as raft-rs must read it back.
    #[derive(Default)]
    struct ModelLog {
        truncated: (u64, u64),
        entries: Vec<Entry>,
    }

    impl ModelLog {
        fn last(&self) -> u64 {
            self.entries.last().map_or(self.truncated.0, |e| e.index)
        }
        fn term(&self, idx: u64) -> Option<u64> {
            if idx == self.truncated.0 {
                return Some(self.truncated.1);
            }
            self.entries.iter().find(|e| e.index == idx).map(|e| e.term)
        }
    }

    /// One random run of appends (overwriting suffixes), compactions,
    /// snapshot installs and reopenings, with a cache small enough that
    /// reads cross from the cached entries to raft-engine's. Returns the
    /// first read that differs from the model.
    fn cache_mismatch(seed: u64) -> Option<String> {
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n.max(1)
        };
        let dir = tempfile::tempdir().unwrap();
        let open = |dir: &std::path::Path| {
            RaftLog::open_with_cache(dir, RecoveryMode::AbsoluteConsistency, 2048).unwrap()
        };
        let mut log = open(dir.path());
        let mut model = ModelLog::default();
        let mut term = 1;
        for step in 0..300 {
            match next(20) {
                0..=11 => {
                    let last = model.last();
                    let from = last.saturating_sub(next(4)).max(model.truncated.0) + 1;
                    if from <= last {
                        term += 1;
                    }
                    let ents: Vec<Entry> = (from..from + 1 + next(8))
                        .map(|index| Entry {
                            index,
                            term,
                            data: vec![index as u8; 10 + next(200) as usize].into(),
                            ..Default::default()
                        })
                        .collect();
                    log.persist(&ents, None, true).unwrap();
                    model.entries.retain(|e| e.index < from);
                    model.entries.extend(ents);
                }
                12..=14 if !model.entries.is_empty() => {
                    let first = model.truncated.0 + 1;
                    let index = first + next(model.last() - first + 1);
                    let before = model.term(index - 1).unwrap();
                    log.compact_to(index, before).unwrap();
                    model.entries.retain(|e| e.index >= index);
                    model.truncated = (index - 1, before);
                }
                15 => {
                    let meta = SnapshotMetadata {
                        index: model.last() + next(5),
                        term,
                        ..Default::default()
                    };
                    log.apply_snapshot(&meta).unwrap();
                    model.entries.clear();
                    model.truncated = (meta.index, meta.term);
                }
                16 => {
                    drop(log);
                    log = open(dir.path());
                }
                _ => {}
            }
            let (first, last) = (model.truncated.0 + 1, model.last());
            let got = (log.first_index().unwrap(), log.last_index().unwrap());
            if got != (first, last) {
                return Some(format!(
                    "step {step}: first/last {got:?}, want {:?}",
                    (first, last)
                ));
            }
            for idx in model.truncated.0..=last {
                let got = log.term(idx).ok();
                if got != model.term(idx) {
                    return Some(format!(
                        "step {step}: term({idx}) = {got:?}, want {:?}",
                        model.term(idx)
                    ));
                }
            }
            let low = first + next(last + 1 - first + 1);
            let high = low + next(last + 1 - low + 1);
            let got = log
                .entries(low, high, None, GetEntriesContext::empty(false))
                .unwrap();
            let want: Vec<Entry> = model
                .entries
                .iter()
                .filter(|e| (low..high).contains(&e.index))
                .cloned()
                .collect();
            if got != want {
                return Some(format!("step {step}: entries({low}, {high}) differ"));
            }
            let limited = log
                .entries(low, high, Some(300), GetEntriesContext::empty(false))
                .unwrap();
            if low < high && (limited.is_empty() || !want.starts_with(&limited)) {
                return Some(format!(
                    "step {step}: entries({low}, {high}, 300) is no prefix"
                ));
            }
        }
        None
    }

    /// The log raft-rs reads (terms, entries, first and last index) is the
    /// one persisted, whether the entry cache or raft-engine answers. Under
    /// `fault-log-cache-stale` (its mutation check in scripts/test.sh) the
    /// stale cache must be caught.
    #[test]
    fn entry_cache_reads_match_the_persisted_log() {
        let found: Vec<String> = (0..20).filter_map(cache_mismatch).collect();
        if rafter_core::fault::active(rafter_core::fault::Fault::LogCacheStale) {
            assert!(!found.is_empty(), "the stale entry cache went unnoticed");
        } else {
            assert!(found.is_empty(), "{found:?}");
        }
    }
}
