//! The durable queue of one member's local writes (`Set(consistent=false)`,
//! seed 004 "Case 2"): a write is acknowledged once it is fsynced here, so
//! it survives a crash of its member, and it stays here until the log has
//! applied it.
//!
//! # Format
//!
//! One append-only file, `local-writes.log`, of records
//! `[payload length: u32 LE][CRC-32 of the payload: u32 LE][payload]`,
//! the payload a protobuf `rafterpb.LocalWrite`. Appends are written and
//! fdatasynced before they are acknowledged. When every queued write has
//! been applied the file is truncated to nothing; until then applied
//! records stay in it and recovery skips them (their seq is at or below the
//! member's applied seq, which the replicated state knows).
//!
//! # Recovery
//!
//! A record cut short at the end of the file, or a bad checksum on the
//! file's last record, is a write that was never acknowledged (the crash
//! came during its append): it is cut off. A bad record followed by more
//! bytes is corruption: opening fails, naming the file and offset, and the
//! file is left as it is.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use prost::Message;
use rafter_proto::rafterpb::LocalWrite;

/// The queue's file name inside the data directory.
pub const FILE_NAME: &str = "local-writes.log";
/// Bytes before each payload.
const HEADER_BYTES: usize = 8;
/// Largest payload accepted back from disk (a write is bounded by the
/// request size limit long before this).
const MAX_RECORD_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LocalQueueError {
    #[error("local write queue {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "local write queue {path} is corrupt at byte {offset} ({reason}) with {after} bytes after it; \
         the file was not changed. Acknowledged local writes from that point on cannot be read: \
         move the file aside to start without them"
    )]
    Corrupt {
        path: PathBuf,
        offset: u64,
        after: u64,
        reason: String,
    },
}

/// The open queue file.
pub struct LocalQueue {
    path: PathBuf,
    file: File,
    /// Bytes in the file.
    len_bytes: u64,
}

impl LocalQueue {
    /// Opens (or creates) the queue in `dir` and returns it with the
    /// records it holds, oldest first, after cutting off a torn last record.
    pub fn open(dir: &Path) -> Result<(LocalQueue, Vec<LocalWrite>), LocalQueueError> {
        let path = dir.join(FILE_NAME);
        let io = |source| LocalQueueError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let (writes, good_len) = parse(&path, &bytes)?;
        if good_len < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                "cutting off a torn last record ({} bytes) of the local write queue: its write was never acknowledged",
                bytes.len() - good_len
            );
            file.set_len(good_len as u64).map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        Ok((
            LocalQueue {
                path,
                file,
                len_bytes: good_len as u64,
            },
            writes,
        ))
    }

    fn io(&self, source: std::io::Error) -> LocalQueueError {
        LocalQueueError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends `writes` and makes them durable: only then may they be
    /// acknowledged. A failed write or fsync leaves the queue unusable for
    /// acknowledgements (the caller must stop acknowledging).
    pub fn append(&mut self, writes: &[LocalWrite]) -> Result<(), LocalQueueError> {
        let buf = encode(writes);
        self.file.write_all(&buf).map_err(|e| self.io(e))?;
        self.file.sync_data().map_err(|e| self.io(e))?;
        self.len_bytes += buf.len() as u64;
        Ok(())
    }

    /// Replaces the whole file with `keep` (every queued write is
    /// applied: the caller keeps a marker of the last seq used, so a
    /// restart never hands out a seq again). Atomic: a new file is written,
    /// fsynced and renamed over the old one, and the directory fsynced.
    pub fn replace(&mut self, keep: &[LocalWrite]) -> Result<(), LocalQueueError> {
        let tmp = self.path.with_extension("log.tmp");
        let io = |source| LocalQueueError::Io {
            path: tmp.clone(),
            source,
        };
        let bytes = encode(keep);
        {
            let mut f = File::create(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| self.io(e))?;
        }
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.io(e))?;
        self.len_bytes = bytes.len() as u64;
        Ok(())
    }

    pub fn len_bytes(&self) -> u64 {
        self.len_bytes
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The records of `writes`, ready to append.
fn encode(writes: &[LocalWrite]) -> Vec<u8> {
    let mut buf = Vec::new();
    for w in writes {
        let payload = w.encode_to_vec();
        buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        buf.extend_from_slice(&payload);
    }
    buf
}

/// The records of `bytes` and how many bytes they span; a bad record with
/// nothing after it ends the list, one with anything after it is an error.
fn parse(path: &Path, bytes: &[u8]) -> Result<(Vec<LocalWrite>, usize), LocalQueueError> {
    let mut writes = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let corrupt = |reason: String, record_end: usize| {
            if record_end >= bytes.len() {
                None
            } else {
                Some(LocalQueueError::Corrupt {
                    path: path.to_path_buf(),
                    offset: at as u64,
                    after: (bytes.len() - record_end) as u64,
                    reason,
                })
            }
        };
        if rest.len() < HEADER_BYTES {
            break;
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        if len > MAX_RECORD_BYTES {
            // The length itself is damaged: where the record would end is
            // unknown, so only a record at the very end is a torn append.
            match corrupt(format!("record length {len}"), at + HEADER_BYTES) {
                Some(e) => return Err(e),
                None => break,
            }
        }
        let end = at + HEADER_BYTES + len;
        if end > bytes.len() {
            break;
        }
        let payload = &rest[HEADER_BYTES..HEADER_BYTES + len];
        if crc32fast::hash(payload) != crc {
            match corrupt("checksum mismatch".into(), end) {
                Some(e) => return Err(e),
                None => break,
            }
        }
        match LocalWrite::decode(payload) {
            Ok(w) => writes.push(w),
            Err(e) => match corrupt(format!("undecodable record: {e}"), end) {
                Some(e) => return Err(e),
                None => break,
            },
        }
        at = end;
    }
    Ok((writes, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(seq: u64) -> LocalWrite {
        LocalWrite {
            member_id: 7,
            seq,
            key: format!("k{seq}").into_bytes(),
            value: vec![b'v'; 100],
            context_revision: 3,
            hlc_physical_ms: 1000 + seq,
            hlc_logical: 0,
        }
    }

    #[test]
    fn appended_writes_come_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, found) = LocalQueue::open(dir.path()).unwrap();
        assert!(found.is_empty());
        q.append(&[write(1), write(2)]).unwrap();
        q.append(&[write(3)]).unwrap();
        drop(q);
        let (mut q, found) = LocalQueue::open(dir.path()).unwrap();
        assert_eq!(found, vec![write(1), write(2), write(3)]);
        q.replace(&[write(9)]).unwrap();
        drop(q);
        assert_eq!(LocalQueue::open(dir.path()).unwrap().1, vec![write(9)]);
    }

    #[test]
    fn a_torn_last_record_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = LocalQueue::open(dir.path()).unwrap();
        q.append(&[write(1), write(2)]).unwrap();
        let full = q.len_bytes();
        drop(q);
        let path = dir.path().join(FILE_NAME);
        // The crash came in the middle of the second record's append.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(full - 10).unwrap();
        drop(f);
        let (mut q, found) = LocalQueue::open(dir.path()).unwrap();
        assert_eq!(found, vec![write(1)]);
        q.append(&[write(2)]).unwrap();
        drop(q);
        assert_eq!(
            LocalQueue::open(dir.path()).unwrap().1,
            vec![write(1), write(2)]
        );
    }

    #[test]
    fn damage_before_the_end_is_refused_and_the_file_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = LocalQueue::open(dir.path()).unwrap();
        q.append(&[write(1), write(2), write(3)]).unwrap();
        drop(q);
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER_BYTES + 5] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let error = LocalQueue::open(dir.path())
            .err()
            .expect("corruption refused");
        let message = error.to_string();
        assert!(message.contains("corrupt at byte 0"), "{message}");
        assert!(message.contains(FILE_NAME), "{message}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "the file was changed");
    }
}
