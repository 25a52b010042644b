//! Online defragmentation: rewrites the store into a new, compact file
//! while the member keeps serving, then swaps it in.
//!
//! etcd's defragmentation holds its backend's lock for the whole rewrite,
//! so a member answers nothing for seconds (etcd issue 9222). Here the
//! rewrite runs beside the member:
//!
//! 1. Under the writer's turn (no apply in flight): open a read
//!    transaction, which fixes the state at one applied index, and start a
//!    journal of every entry applied from then on.
//! 2. Without any lock: copy every table from that read transaction into a
//!    new database (`<store>.defrag`), in bounded transactions, and pack it
//!    with redb's compaction (which needs the database to itself: it has
//!    the copy to itself). Reads and applies go on against the old file.
//! 3. Replay the journal into the copy with the apply code itself
//!    (`apply_to`: the same entries on the same state give the same state,
//!    the premise of replication), until little is left.
//! 4. Under the writer's turn again: replay the rest, commit the copy
//!    durably, rename it over the store's file and swap the database
//!    handle. Applies wait only for this last step.
//!
//! A crash at any point leaves either the old file (the leftover copy is
//! removed at open) or the complete, durable new one. A snapshot installed
//! meanwhile replaces the state the copy started from: the
//! defragmentation gives up and says so.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rafter_proto::rafterpb::{ClientTag, HlcStamp};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::tables::*;
use super::{apply_to, ApplyEntry, KvRequest, MvccError, MvccStore};

/// Bytes copied per write transaction of the copy. Each is made durable
/// on its own, so the disk takes the copy in small flushes and the
/// member's own fsyncs never queue behind one large one.
const BYTES_PER_TXN: usize = 4 << 20;
/// The journal is replayed outside the writer's turn until fewer entries
/// than this are left, so the pause at the swap stays short.
const SMALL_JOURNAL_ENTRIES: usize = 256;
/// Replay rounds outside the writer's turn before swapping anyway.
const MAX_CATCH_UP_ROUNDS: usize = 8;

/// Entries applied since a defragmentation took its copy.
#[derive(Default)]
pub struct Journal {
    entries: Vec<OwnedEntry>,
}

/// An applied entry, kept for replay into the copy.
struct OwnedEntry {
    index: u64,
    request: Option<KvRequest>,
    client: Option<ClientTag>,
    stamp: Option<HlcStamp>,
}

/// What a defragmentation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefragReport {
    pub size_before_bytes: u64,
    pub size_after_bytes: u64,
    /// The applied index the copy was taken at.
    pub copied_at_index: u64,
    pub rows_copied: u64,
    /// Entries applied during the copy and replayed into it.
    pub entries_replayed: u64,
    /// How long applies waited for the final catch-up and swap.
    pub pause_us: u64,
    pub total_ms: u64,
}

/// A defragmentation under way: the copy being brought up to date.
pub struct DefragCopy {
    db: Database,
    /// Where the copy's file is (none for an in-memory store).
    file: Option<PathBuf>,
    copied_at_index: u64,
    rows_copied: u64,
    entries_replayed: u64,
    size_before_bytes: u64,
    started: Instant,
}

/// The copy's file beside the store's.
fn copy_path(store: &Path) -> PathBuf {
    store.with_extension("defrag")
}

/// Removes a copy a crash left behind (the store's file is whole: the copy
/// only replaces it once complete and durable).
pub(super) fn remove_leftover(store: &Path) -> Result<(), MvccError> {
    if store.as_os_str().is_empty() {
        return Ok(());
    }
    match std::fs::remove_file(copy_path(store)) {
        Ok(()) => {
            tracing::warn!(
                "removed {} left by an interrupted defragmentation",
                copy_path(store).display()
            );
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(MvccError::Storage(format!(
            "removing {}: {e}",
            copy_path(store).display()
        ))),
    }
}

fn abandoned() -> MvccError {
    MvccError::Storage(
        "defragmentation abandoned: a snapshot replaced the store meanwhile; run it again".into(),
    )
}

impl MvccStore {
    /// Rewrites the store compactly while it keeps serving (see the module
    /// doc). One at a time: a second call waits for the first.
    pub fn defragment(&self) -> Result<DefragReport, MvccError> {
        let _one = self.defragmenting.lock().expect("defrag lock poisoned");
        let mut copy = self.defrag_begin()?;
        for _ in 0..MAX_CATCH_UP_ROUNDS {
            if self.defrag_catch_up(&mut copy)? < SMALL_JOURNAL_ENTRIES {
                break;
            }
        }
        // Make the bulk durable now, so the commit in the writer's turn
        // writes only the last few entries.
        let mut txn = copy.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        self.defrag_finish(copy)
    }

    /// Steps 1 and 2: fixes the state, starts the journal, copies every
    /// table. Public so the simulator can let applies happen between the
    /// steps; the server calls [`MvccStore::defragment`].
    pub fn defrag_begin(&self) -> Result<DefragCopy, MvccError> {
        let started = Instant::now();
        let size_before_bytes = self.db_size_bytes();
        let read = {
            let _turn = self.write_turn();
            let read = self.db().begin_read()?;
            *self.journal.lock().expect("journal lock poisoned") = Some(Journal::default());
            read
        };
        let copied_at_index = meta_get(&read.open_table(META)?, META_APPLIED_INDEX, 0)?;
        let (db, file) = if self.path.as_os_str().is_empty() {
            let db =
                redb::Builder::new().create_with_backend(redb::backends::InMemoryBackend::new())?;
            (db, None)
        } else {
            let file = copy_path(&self.path);
            remove_leftover(&self.path)?;
            (Database::create(&file)?, Some(file))
        };
        let mut db = db;
        let in_file = file.is_some();
        let copied = copy_tables(&read, &db).and_then(|rows| {
            // The copy is private: redb's own compaction (which needs the
            // database to itself) packs its pages and trims the file. An
            // in-memory store has no file to trim.
            if in_file {
                let mut txn = db.begin_write()?;
                txn.set_durability(Durability::Immediate)?;
                txn.commit()?;
                while db.compact()? {}
            }
            Ok(rows)
        });
        let rows_copied = match copied {
            Ok(rows) => rows,
            Err(e) => {
                self.abandon_defrag();
                drop(db);
                remove_leftover(&self.path)?;
                return Err(e);
            }
        };
        Ok(DefragCopy {
            db,
            file,
            copied_at_index,
            rows_copied,
            entries_replayed: 0,
            size_before_bytes,
            started,
        })
    }

    /// Step 3: replays what was applied since; returns how many entries.
    pub fn defrag_catch_up(&self, copy: &mut DefragCopy) -> Result<usize, MvccError> {
        let entries = {
            let mut journal = self.journal.lock().expect("journal lock poisoned");
            std::mem::take(&mut journal.as_mut().ok_or_else(abandoned)?.entries)
        };
        replay(copy, &entries)?;
        Ok(entries.len())
    }

    /// Step 4: the last catch-up and the swap, while applies wait.
    pub fn defrag_finish(&self, mut copy: DefragCopy) -> Result<DefragReport, MvccError> {
        let turn = self.write_turn();
        let paused = Instant::now();
        let journal = self.journal.lock().expect("journal lock poisoned").take();
        let Some(journal) = journal else {
            drop(turn);
            drop(copy);
            remove_leftover(&self.path)?;
            return Err(abandoned());
        };
        replay(&mut copy, &journal.entries)?;
        let mut txn = copy.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        if let Some(file) = &copy.file {
            std::fs::rename(file, &self.path).map_err(|e| {
                MvccError::Storage(format!(
                    "renaming {} over {}: {e}",
                    file.display(),
                    self.path.display()
                ))
            })?;
            sync_dir(&self.path)?;
        }
        let old = std::mem::replace(
            &mut *self.db.write().expect("store lock poisoned"),
            std::sync::Arc::new(copy.db),
        );
        self.refresh_size();
        *self.in_use.lock().expect("in-use lock poisoned") = None;
        let pause_us = paused.elapsed().as_micros() as u64;
        drop(turn);
        // Closing the old database flushes it (to its now unlinked file):
        // done after applies resume.
        drop(old);
        Ok(DefragReport {
            size_before_bytes: copy.size_before_bytes,
            size_after_bytes: self.db_size_bytes(),
            copied_at_index: copy.copied_at_index,
            rows_copied: copy.rows_copied,
            entries_replayed: copy.entries_replayed,
            pause_us,
            total_ms: copy.started.elapsed().as_millis() as u64,
        })
    }

    /// Records applied entries while a defragmentation copies the store
    /// (called in the writer's turn, after the batch committed).
    pub(super) fn journal_applied(&self, entries: &[ApplyEntry<'_>]) {
        let mut journal = self.journal.lock().expect("journal lock poisoned");
        if let Some(journal) = journal.as_mut() {
            journal.entries.extend(entries.iter().map(|e| OwnedEntry {
                index: e.index,
                request: e.request.cloned(),
                client: e.client.cloned(),
                stamp: e.stamp.cloned(),
            }));
        }
    }

    /// Makes a defragmentation under way give up (its copy no longer
    /// describes the store).
    pub(super) fn abandon_defrag(&self) {
        self.journal.lock().expect("journal lock poisoned").take();
    }
}

/// Applies journaled entries to the copy.
fn replay(copy: &mut DefragCopy, entries: &[OwnedEntry]) -> Result<(), MvccError> {
    if entries.is_empty() {
        return Ok(());
    }
    let batch: Vec<ApplyEntry<'_>> = entries
        .iter()
        .map(|e| ApplyEntry {
            index: e.index,
            request: e.request.as_ref(),
            client: e.client.as_ref(),
            stamp: e.stamp.as_ref(),
        })
        .collect();
    apply_to(&copy.db, &batch, false)?;
    copy.entries_replayed += entries.len() as u64;
    Ok(())
}

/// Copies every table of the store; returns the rows copied.
fn copy_tables(src: &redb::ReadTransaction, dst: &Database) -> Result<u64, MvccError> {
    let mut rows = 0;
    if !rafter_core::fault::active(rafter_core::fault::Fault::DefragDropHistory) {
        rows += copy_table(src, dst, KV_REVS)?;
    }
    rows += copy_table(src, dst, KV_LATEST)?;
    rows += copy_table(src, dst, KV_HISTORY)?;
    rows += copy_table(src, dst, META)?;
    rows += copy_table(src, dst, MEMBERS)?;
    rows += copy_table(src, dst, LEASES)?;
    rows += copy_table(src, dst, LEASE_KEYS)?;
    rows += copy_table(src, dst, SESSIONS)?;
    rows += copy_table(src, dst, SESSION_RESULTS)?;
    rows += copy_table(src, dst, LOCAL_DOTS)?;
    rows += copy_table(src, dst, CONFLICT_STATE)?;
    Ok(rows)
}

fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    src: &redb::ReadTransaction,
    dst: &Database,
    def: TableDefinition<K, V>,
) -> Result<u64, MvccError> {
    let table = src.open_table(def)?;
    let mut rows = table.iter()?;
    let mut copied = 0;
    loop {
        let mut txn = dst.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let mut more = false;
        {
            let mut out = txn.open_table(def)?;
            let mut bytes = 0;
            for item in rows.by_ref() {
                let (k, v) = item?;
                bytes +=
                    K::as_bytes(&k.value()).as_ref().len() + V::as_bytes(&v.value()).as_ref().len();
                out.insert(k.value(), v.value())?;
                copied += 1;
                if bytes >= BYTES_PER_TXN {
                    more = true;
                    break;
                }
            }
        }
        txn.commit()?;
        if !more {
            return Ok(copied);
        }
    }
}

/// Makes a rename in `file`'s directory durable.
fn sync_dir(file: &Path) -> Result<(), MvccError> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| MvccError::Storage(format!("syncing {}: {e}", dir.display())))
}
