//! State-machine snapshots: every table of the store serialized from one read
//! transaction (so it is exactly the state at one applied index), and the
//! atomic restore of such a snapshot on a member that fell behind the log.
//! Format: per row `table u8, key_len u32, key, value_len u32, value`, then a
//! CRC-32 of everything before it.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::record::Record;
use super::tables::*;
use super::MvccError;

/// (key, revision) -> sub (8 bytes little-endian).
const TAG_REVS: u8 = 1;
const TAG_LATEST: u8 = 2;
// Tag 3 was the revision index of the layout before `kv_history`; a
// snapshot holding it is refused.
/// (revision, sub) -> history row.
const TAG_HISTORY: u8 = 12;
const TAG_META: u8 = 4;
const TAG_MEMBERS: u8 = 5;
const TAG_LEASES: u8 = 6;
const TAG_LEASE_KEYS: u8 = 7;
const TAG_SESSIONS: u8 = 8;
const TAG_SESSION_RESULTS: u8 = 9;
const TAG_LOCAL_DOTS: u8 = 10;
const TAG_CONFLICT_STATE: u8 = 11;

fn push_row(out: &mut Vec<u8>, tag: u8, key: &[u8], value: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

fn rev_key(key: &[u8], rev: u64) -> Vec<u8> {
    let mut k = rev.to_be_bytes().to_vec();
    k.extend_from_slice(key);
    k
}

/// Serializes the whole store as of one read transaction; returns it with
/// the applied index of that same transaction (the snapshot's index, which
/// a concurrent apply must not skew).
pub fn dump(db: &redb::Database) -> Result<(Vec<u8>, u64), MvccError> {
    dump_with_members(db).map(|(data, applied, _)| (data, applied))
}

/// [`dump`], plus the membership records the image holds.
pub fn dump_with_members(
    db: &redb::Database,
) -> Result<(Vec<u8>, u64, Vec<rafter_proto::rafterpb::MemberAttributes>), MvccError> {
    let txn = db.begin_read()?;
    let applied_index = meta_get(&txn.open_table(META)?, META_APPLIED_INDEX, 0)?;
    let mut out = Vec::new();
    for item in txn.open_table(KV_REVS)?.iter()? {
        let (k, v) = item?;
        let (key, rev) = k.value();
        push_row(
            &mut out,
            TAG_REVS,
            &rev_key(key, rev),
            &v.value().to_le_bytes(),
        );
    }
    for item in txn.open_table(KV_LATEST)?.iter()? {
        let (k, v) = item?;
        push_row(&mut out, TAG_LATEST, k.value(), v.value());
    }
    for item in txn.open_table(KV_HISTORY)?.iter()? {
        let (k, v) = item?;
        let (rev, sub) = k.value();
        let mut key = rev.to_be_bytes().to_vec();
        key.extend_from_slice(&sub.to_be_bytes());
        push_row(&mut out, TAG_HISTORY, &key, v.value());
    }
    for item in txn.open_table(META)?.iter()? {
        let (k, v) = item?;
        push_row(
            &mut out,
            TAG_META,
            k.value().as_bytes(),
            &v.value().to_le_bytes(),
        );
    }
    let mut members = Vec::new();
    for item in txn.open_table(MEMBERS)?.iter()? {
        let (k, v) = item?;
        push_row(&mut out, TAG_MEMBERS, &k.value().to_be_bytes(), v.value());
        members.push(super::membership::decode(v.value())?);
    }
    for item in txn.open_table(LEASES)?.iter()? {
        let (k, v) = item?;
        let (ttl, remaining) = v.value();
        let mut value = ttl.to_le_bytes().to_vec();
        value.extend_from_slice(&remaining.to_le_bytes());
        push_row(&mut out, TAG_LEASES, &k.value().to_be_bytes(), &value);
    }
    for item in txn.open_table(LEASE_KEYS)?.iter()? {
        let (k, _) = item?;
        let (lease, key) = k.value();
        let mut row_key = lease.to_be_bytes().to_vec();
        row_key.extend_from_slice(key);
        push_row(&mut out, TAG_LEASE_KEYS, &row_key, &[]);
    }
    for item in txn.open_table(SESSIONS)?.iter()? {
        let (k, v) = item?;
        let (a, b, c, d) = v.value();
        let mut value = Vec::with_capacity(32);
        for word in [a, b, c, d] {
            value.extend_from_slice(&word.to_le_bytes());
        }
        push_row(&mut out, TAG_SESSIONS, &k.value().to_be_bytes(), &value);
    }
    for item in txn.open_table(SESSION_RESULTS)?.iter()? {
        let (k, v) = item?;
        let (id, seq) = k.value();
        let mut key = id.to_be_bytes().to_vec();
        key.extend_from_slice(&seq.to_be_bytes());
        push_row(&mut out, TAG_SESSION_RESULTS, &key, v.value());
    }
    for item in txn.open_table(LOCAL_DOTS)?.iter()? {
        let (k, v) = item?;
        push_row(
            &mut out,
            TAG_LOCAL_DOTS,
            &k.value().to_be_bytes(),
            &v.value().to_le_bytes(),
        );
    }
    for item in txn.open_table(CONFLICT_STATE)?.iter()? {
        let (k, v) = item?;
        push_row(&mut out, TAG_CONFLICT_STATE, k.value(), v.value());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok((out, applied_index, members))
}

/// One decoded row.
struct Row<'a> {
    tag: u8,
    key: &'a [u8],
    value: &'a [u8],
}

fn rows(data: &[u8]) -> Result<Vec<Row<'_>>, MvccError> {
    let corrupt = |what: &str| MvccError::Storage(format!("corrupt snapshot: {what}"));
    if data.len() < 4 {
        return Err(corrupt("shorter than its checksum"));
    }
    let (body, crc) = data.split_at(data.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(corrupt("checksum mismatch"));
    }
    let mut out = Vec::new();
    let mut rest = body;
    let need = |rest: &[u8], n: usize| -> Result<(), MvccError> {
        if rest.len() < n {
            return Err(corrupt("truncated row"));
        }
        Ok(())
    };
    while !rest.is_empty() {
        need(rest, 5)?;
        let tag = rest[0];
        let klen = u32::from_le_bytes(rest[1..5].try_into().expect("4 bytes")) as usize;
        rest = &rest[5..];
        need(rest, klen + 4)?;
        let key = &rest[..klen];
        let vlen = u32::from_le_bytes(rest[klen..klen + 4].try_into().expect("4 bytes")) as usize;
        rest = &rest[klen + 4..];
        need(rest, vlen)?;
        let value = &rest[..vlen];
        rest = &rest[vlen..];
        out.push(Row { tag, key, value });
    }
    Ok(out)
}

fn clear<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<(), MvccError> {
    txn.delete_table(def)?;
    txn.open_table(def)?;
    Ok(())
}

/// Replaces the whole store with a snapshot in one durable transaction.
pub fn restore(db: &redb::Database, data: &[u8]) -> Result<(), MvccError> {
    let rows = rows(data)?;
    let txn = db.begin_write()?;
    clear(&txn, KV_REVS)?;
    clear(&txn, KV_LATEST)?;
    clear(&txn, KV_HISTORY)?;
    clear(&txn, META)?;
    clear(&txn, MEMBERS)?;
    clear(&txn, LEASES)?;
    clear(&txn, LEASE_KEYS)?;
    clear(&txn, SESSIONS)?;
    clear(&txn, SESSION_RESULTS)?;
    clear(&txn, LOCAL_DOTS)?;
    clear(&txn, CONFLICT_STATE)?;
    {
        let mut conflict_state = txn.open_table(CONFLICT_STATE)?;
        let mut local_dots = txn.open_table(LOCAL_DOTS)?;
        let mut sessions = txn.open_table(SESSIONS)?;
        let mut session_results = txn.open_table(SESSION_RESULTS)?;
        let mut leases = txn.open_table(LEASES)?;
        let mut lease_keys = txn.open_table(LEASE_KEYS)?;
        let mut revs = txn.open_table(KV_REVS)?;
        let mut latest = txn.open_table(KV_LATEST)?;
        let mut history = txn.open_table(KV_HISTORY)?;
        let mut meta = txn.open_table(META)?;
        let mut members = txn.open_table(MEMBERS)?;
        let bad = || MvccError::Storage("corrupt snapshot: malformed row".into());
        for r in rows {
            match r.tag {
                TAG_REVS => {
                    if r.key.len() < 8 {
                        return Err(bad());
                    }
                    let rev = u64::from_be_bytes(r.key[..8].try_into().expect("8 bytes"));
                    let sub = u64::from_le_bytes(r.value.try_into().map_err(|_| bad())?);
                    revs.insert((&r.key[8..], rev), sub)?;
                }
                TAG_LATEST => {
                    if !Record::well_formed(r.value) {
                        return Err(bad());
                    }
                    latest.insert(r.key, r.value)?;
                }
                TAG_HISTORY => {
                    if r.key.len() != 16 || split_history_row(r.value).is_none() {
                        return Err(bad());
                    }
                    let rev = u64::from_be_bytes(r.key[..8].try_into().expect("8 bytes"));
                    let sub = u64::from_be_bytes(r.key[8..].try_into().expect("8 bytes"));
                    history.insert((rev, sub), r.value)?;
                }
                TAG_META => {
                    let name = std::str::from_utf8(r.key).map_err(|_| bad())?;
                    let v = u64::from_le_bytes(r.value.try_into().map_err(|_| bad())?);
                    meta.insert(name, v)?;
                }
                TAG_MEMBERS => {
                    let id = u64::from_be_bytes(r.key.try_into().map_err(|_| bad())?);
                    members.insert(id, r.value)?;
                }
                TAG_LEASES => {
                    let id = i64::from_be_bytes(r.key.try_into().map_err(|_| bad())?);
                    if r.value.len() != 16 {
                        return Err(bad());
                    }
                    let ttl = i64::from_le_bytes(r.value[..8].try_into().expect("8 bytes"));
                    let remaining = i64::from_le_bytes(r.value[8..].try_into().expect("8 bytes"));
                    leases.insert(id, (ttl, remaining))?;
                }
                TAG_LEASE_KEYS => {
                    if r.key.len() < 8 {
                        return Err(bad());
                    }
                    let id = i64::from_be_bytes(r.key[..8].try_into().expect("8 bytes"));
                    lease_keys.insert((id, &r.key[8..]), ())?;
                }
                TAG_SESSIONS => {
                    let id = u64::from_be_bytes(r.key.try_into().map_err(|_| bad())?);
                    if r.value.len() != 32 {
                        return Err(bad());
                    }
                    let word = |i: usize| {
                        u64::from_le_bytes(r.value[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
                    };
                    sessions.insert(id, (word(0), word(1), word(2), word(3)))?;
                }
                TAG_SESSION_RESULTS => {
                    if r.key.len() != 16 {
                        return Err(bad());
                    }
                    let id = u64::from_be_bytes(r.key[..8].try_into().expect("8 bytes"));
                    let seq = u64::from_be_bytes(r.key[8..].try_into().expect("8 bytes"));
                    session_results.insert((id, seq), r.value)?;
                }
                TAG_LOCAL_DOTS => {
                    let member = u64::from_be_bytes(r.key.try_into().map_err(|_| bad())?);
                    let seq = u64::from_le_bytes(r.value.try_into().map_err(|_| bad())?);
                    local_dots.insert(member, seq)?;
                }
                TAG_CONFLICT_STATE => {
                    conflict_state.insert(r.key, r.value)?;
                }
                _ => return Err(bad()),
            }
        }
    }
    txn.commit()?;
    Ok(())
}

/// CRC-32 over every retained revision at or below `revision`, in key order,
/// so members at the same revision (and compaction) agree (etcd's HashKV).
pub fn hash_kv(db: &redb::Database, revision: u64) -> Result<u32, MvccError> {
    let txn = db.begin_read()?;
    let history = txn.open_table(KV_HISTORY)?;
    let mut h = crc32fast::Hasher::new();
    for item in txn.open_table(KV_REVS)?.iter()? {
        let (k, sub) = item?;
        let (key, rev) = k.value();
        if rev <= revision {
            h.update(key);
            h.update(&rev.to_be_bytes());
            h.update(&history_record(&history, rev, sub.value())?.encode());
        }
    }
    Ok(h.finalize())
}
