//! Applying mutations inside one redb write transaction: Put, DeleteRange,
//! Txn and Compact with etcd's semantics. A request either fails its checks
//! before touching anything or is applied whole, so a batch of many requests
//! can share one transaction without a failed request leaving partial writes.

use rafter_core::lease::LeaseChange;
use rafter_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    LeaseCheckpointRequest, LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
};
use rafter_proto::mvccpb::event::EventType;
use rafter_proto::mvccpb::Event;
use rafter_proto::rafterpb::{ClientTag, ConflictPolicy, ConflictPolicySet, HlcStamp};
use redb::{ReadableTable, Table};

use super::keyrange::KeyRange;
use super::read::{self, RevisionBounds};
use super::record::Record;
use super::tables::latest_get;
use super::tables::SessionRow;
use super::txn::{self, rev_header, TxnTables};
use super::{KvRequest, KvResponse, MvccError};

/// The tables one apply transaction writes.
pub struct WriteTables<'t> {
    pub latest: Table<'t, &'static [u8], &'static [u8]>,
    pub revs: Table<'t, (&'static [u8], u64), u64>,
    pub history: Table<'t, (u64, u64), &'static [u8]>,
    pub members: Table<'t, u64, &'static [u8]>,
    pub leases: Table<'t, i64, (i64, i64)>,
    pub lease_keys: Table<'t, (i64, &'static [u8]), ()>,
    pub sessions: Table<'t, u64, SessionRow>,
    pub session_results: Table<'t, (u64, u64), &'static [u8]>,
    pub local_dots: Table<'t, u64, u64>,
    pub conflict_state: Table<'t, &'static [u8], &'static [u8]>,
}

/// The tables of one write transaction plus the revision bookkeeping of the
/// request being applied.
pub struct Writer<'t> {
    pub latest: Table<'t, &'static [u8], &'static [u8]>,
    pub revs: Table<'t, (&'static [u8], u64), u64>,
    pub history: Table<'t, (u64, u64), &'static [u8]>,
    pub members: Table<'t, u64, &'static [u8]>,
    pub leases: Table<'t, i64, (i64, i64)>,
    pub lease_keys: Table<'t, (i64, &'static [u8]), ()>,
    pub sessions: Table<'t, u64, SessionRow>,
    pub session_results: Table<'t, (u64, u64), &'static [u8]>,
    pub local_dots: Table<'t, u64, u64>,
    pub conflict_state: Table<'t, &'static [u8], &'static [u8]>,
    /// The conflict policies in force (see `conflicts.rs`).
    pub policies: Vec<ConflictPolicySet>,
    /// Some policy is last-writer-wins: changes of its keys keep stamps.
    pub(super) any_lww: bool,
    /// The stamp of the request being applied (its proposer's clock).
    pub stamp: Option<HlcStamp>,
    /// Members' local writes applied so far: (member, seq).
    pub local_dots_changed: Vec<(u64, u64)>,
    /// Cluster time (see `sessions.rs`).
    pub cluster_time_ms: u64,
    /// A session was opened, closed or expired in this batch.
    pub sessions_touched: bool,
    /// Revision of the last applied change.
    pub current_rev: i64,
    pub compact_rev: i64,
    /// Changes made by the request being applied (its sub-revisions).
    pub(super) changes: u64,
    /// Every change applied so far, with the key's previous value, in
    /// revision order: what watchers are told.
    pub events: Vec<Event>,
    /// Leases granted, revoked or checkpointed so far, for the lessor.
    pub lease_changes: Vec<LeaseChange>,
    /// The alarms raised (see `alarms.rs`), and whether this batch changed
    /// them.
    pub alarms: super::alarms::Alarms,
    pub alarms_changed: bool,
}

impl<'t> Writer<'t> {
    pub fn new(
        tables: WriteTables<'t>,
        current_rev: i64,
        compact_rev: i64,
        cluster_time_ms: u64,
    ) -> Result<Self, MvccError> {
        let policies = super::conflicts::policies(&tables.conflict_state)?;
        Ok(Writer {
            any_lww: has_lww(&policies),
            policies,
            stamp: None,
            conflict_state: tables.conflict_state,
            latest: tables.latest,
            revs: tables.revs,
            history: tables.history,
            members: tables.members,
            leases: tables.leases,
            lease_keys: tables.lease_keys,
            sessions: tables.sessions,
            session_results: tables.session_results,
            local_dots: tables.local_dots,
            local_dots_changed: Vec::new(),
            cluster_time_ms,
            sessions_touched: false,
            current_rev,
            compact_rev,
            changes: 0,
            events: Vec::new(),
            lease_changes: Vec::new(),
            alarms: Default::default(),
            alarms_changed: false,
        })
    }

    /// Applies one request, at most once per (session, seq) when it is a
    /// mutation tagged with a client session. On error nothing of the
    /// request was written (a session's bookkeeping aside).
    pub fn apply(
        &mut self,
        req: &KvRequest,
        client: Option<&ClientTag>,
    ) -> Result<KvResponse, MvccError> {
        match client {
            Some(tag) if super::sessions::is_session_scoped(req) => self.apply_in_session(tag, req),
            _ => self.apply_plain(req),
        }
    }

    /// Applies one request as such. On error nothing was written.
    pub(super) fn apply_plain(&mut self, req: &KvRequest) -> Result<KvResponse, MvccError> {
        let events_before = self.events.len();
        let leases_before = self.lease_changes.len();
        let resp = self.apply_request(req);
        if resp.is_err() {
            assert_eq!(
                self.changes, 0,
                "a failed request must not have written anything"
            );
            self.events.truncate(events_before);
            self.lease_changes.truncate(leases_before);
        }
        resp
    }

    fn apply_request(&mut self, req: &KvRequest) -> Result<KvResponse, MvccError> {
        self.changes = 0;
        if let Some(refused) = super::alarms::refusal(&self.alarms, req) {
            return Err(refused);
        }
        let resp = match req {
            KvRequest::Put(p) => {
                txn::check_put(&self.latest, &|id| self.lease_exists(id), p)?;
                KvResponse::Put(self.put(p)?)
            }
            KvRequest::LeaseGrant(g) => KvResponse::LeaseGrant(self.lease_grant(g)?),
            KvRequest::LeaseRevoke(r) => KvResponse::LeaseRevoke(self.lease_revoke(r)?),
            KvRequest::LeaseCheckpoint(c) => {
                self.lease_checkpoint(c)?;
                KvResponse::LeaseCheckpoint
            }
            KvRequest::DeleteRange(d) => KvResponse::DeleteRange(self.delete_range(d)?),
            KvRequest::Txn(t) => KvResponse::Txn(txn::run(self, t)?),
            KvRequest::Compaction(c) => KvResponse::Compact(self.compact(c)?),
            KvRequest::SessionOpen(o) => return self.session_open(o.session_id, o.timeout_ms),
            KvRequest::SessionKeepAlive(k) => return self.session_keep_alive(k.session_id),
            KvRequest::SessionClose(c) => return self.session_close(c.session_id),
            KvRequest::SessionCancel(c) => return self.session_cancel(c.session_id, c.seq),
            KvRequest::ClusterClock(c) => return self.cluster_clock(c.elapsed_ms),
            KvRequest::LocalWrites(b) => {
                return Ok(KvResponse::LocalWrites(self.local_write_batch(b)?))
            }
            KvRequest::ConflictPolicy(set) => {
                super::conflicts::set_policy(&mut self.conflict_state, set)?;
                self.policies = super::conflicts::policies(&self.conflict_state)?;
                self.any_lww = has_lww(&self.policies);
                KvResponse::ConflictPolicySet
            }
            KvRequest::Alarm(a) => {
                let (answer, changed) = super::alarms::apply(&mut self.alarms, a);
                self.alarms_changed |= changed;
                KvResponse::Alarm(answer)
            }
            KvRequest::MemberAttributes(a) => {
                super::membership::publish(&mut self.members, a)?;
                KvResponse::MemberAttributes
            }
            KvRequest::Membership(change) => {
                super::membership::apply_change(&mut self.members, change)?;
                KvResponse::Membership
            }
        };
        if self.changes > 0 {
            self.current_rev += 1;
        }
        Ok(resp.with_revision(self.current_rev))
    }

    /// The revision the request's changes get: one past the last applied.
    fn write_rev(&self) -> i64 {
        self.current_rev + 1
    }

    pub(super) fn put(&mut self, p: &PutRequest) -> Result<PutResponse, MvccError> {
        let rev = self.write_rev();
        let prev = latest_get(&self.latest, &p.key)?;
        let value = match (&prev, p.ignore_value) {
            (Some(prev), true) => prev.value.clone(),
            _ => p.value.clone(),
        };
        let lease = match (&prev, p.ignore_lease) {
            (Some(prev), true) => prev.lease,
            _ => p.lease,
        };
        let rec = Record {
            create_revision: prev.as_ref().map_or(rev, |r| r.create_revision),
            mod_revision: rev,
            version: prev.as_ref().map_or(1, |r| r.version + 1),
            lease,
            value,
            tombstone: false,
        };
        self.record_change(&p.key, &rec)?;
        let prev_lease = prev.as_ref().map_or(0, |r| r.lease);
        if prev_lease != rec.lease {
            if prev_lease != 0 {
                self.lease_keys.remove((prev_lease, p.key.as_slice()))?;
            }
            if rec.lease != 0 {
                self.lease_keys.insert((rec.lease, p.key.as_slice()), ())?;
            }
        }
        self.events.push(Event {
            r#type: EventType::Put as i32,
            kv: Some(rec.to_key_value(&p.key)),
            prev_kv: prev.as_ref().map(|r| r.to_key_value(&p.key)),
        });
        Ok(PutResponse {
            header: None,
            prev_kv: if p.prev_kv {
                prev.map(|r| r.to_key_value(&p.key))
            } else {
                None
            },
        })
    }

    fn delete_range(&mut self, d: &DeleteRangeRequest) -> Result<DeleteRangeResponse, MvccError> {
        let kr = KeyRange::new(&d.key, &d.range_end);
        let victims = txn::live_keys(&self.latest, &kr)?;
        let rev = self.write_rev();
        let mut prev_kvs = Vec::new();
        for (key, prev) in &victims {
            let tomb = Record {
                create_revision: 0,
                mod_revision: rev,
                version: 0,
                lease: 0,
                value: vec![],
                tombstone: true,
            };
            self.record_change(key, &tomb)?;
            if prev.lease != 0 {
                self.lease_keys.remove((prev.lease, key.as_slice()))?;
            }
            self.events.push(Event {
                r#type: EventType::Delete as i32,
                kv: Some(tomb.to_key_value(key)),
                prev_kv: Some(prev.to_key_value(key)),
            });
            if d.prev_kv {
                prev_kvs.push(prev.to_key_value(key));
            }
        }
        Ok(DeleteRangeResponse {
            header: None,
            deleted: victims.len() as i64,
            prev_kvs,
        })
    }

    pub fn lease_exists(&self, id: i64) -> Result<bool, MvccError> {
        Ok(self.leases.get(id)?.is_some())
    }

    fn lease_grant(&mut self, g: &LeaseGrantRequest) -> Result<LeaseGrantResponse, MvccError> {
        // The proposer picks an id when the client gave none; 0 is etcd's
        // "no lease" and can never be granted.
        if g.id == 0 {
            return Err(MvccError::LeaseNotFound);
        }
        if self.lease_exists(g.id)? {
            return Err(MvccError::LeaseExists);
        }
        self.leases.insert(g.id, (g.ttl, 0))?;
        self.lease_changes.push(LeaseChange::Granted {
            id: g.id,
            ttl_s: g.ttl,
        });
        Ok(LeaseGrantResponse {
            header: None,
            id: g.id,
            ttl: g.ttl,
            error: String::new(),
        })
    }

    /// Deletes the lease and every key attached to it, all in one revision.
    fn lease_revoke(&mut self, r: &LeaseRevokeRequest) -> Result<LeaseRevokeResponse, MvccError> {
        if !self.lease_exists(r.id)? {
            return Err(MvccError::LeaseNotFound);
        }
        let mut keys = Vec::new();
        for item in self.lease_keys.range((r.id, &[][..])..)? {
            let (k, _) = item?;
            let (lease, key) = k.value();
            if lease != r.id {
                break;
            }
            keys.push(key.to_vec());
        }
        let rev = self.write_rev();
        for key in &keys {
            let Some(prev) = latest_get(&self.latest, key)? else {
                continue;
            };
            let tomb = Record {
                create_revision: 0,
                mod_revision: rev,
                version: 0,
                lease: 0,
                value: vec![],
                tombstone: true,
            };
            self.record_change(key, &tomb)?;
            self.lease_keys.remove((r.id, key.as_slice()))?;
            self.events.push(Event {
                r#type: EventType::Delete as i32,
                kv: Some(tomb.to_key_value(key)),
                prev_kv: Some(prev.to_key_value(key)),
            });
        }
        self.leases.remove(r.id)?;
        self.lease_changes.push(LeaseChange::Revoked { id: r.id });
        Ok(LeaseRevokeResponse { header: None })
    }

    fn lease_checkpoint(&mut self, c: &LeaseCheckpointRequest) -> Result<(), MvccError> {
        for cp in &c.checkpoints {
            let ttl = self.leases.get(cp.id)?.map(|v| v.value().0);
            if let Some(ttl) = ttl {
                self.leases.insert(cp.id, (ttl, cp.remaining_ttl))?;
                self.lease_changes.push(LeaseChange::Checkpointed {
                    id: cp.id,
                    remaining_s: cp.remaining_ttl,
                });
            }
        }
        Ok(())
    }

    /// Writes one change of `key` at the request's revision.
    fn record_change(&mut self, key: &[u8], rec: &Record) -> Result<(), MvccError> {
        let rev = self.write_rev() as u64;
        // One encoding of the record serves both tables.
        let row = super::tables::history_row(key, rec);
        self.history.insert((rev, self.changes), row.as_slice())?;
        self.revs.insert((key, rev), self.changes)?;
        if rec.tombstone {
            self.latest.remove(key)?;
        } else {
            self.latest
                .insert(key, super::tables::history_row_record(&row, key))?;
        }
        self.changes += 1;
        if self.any_lww
            && super::conflicts::policy_for(&self.policies, key) == ConflictPolicy::LastWriterWins
        {
            let stamp = self.stamp.unwrap_or_default();
            super::conflicts::stamp_put(&mut self.conflict_state, key, &stamp)?;
        }
        Ok(())
    }

    fn compact(&mut self, c: &CompactionRequest) -> Result<CompactionResponse, MvccError> {
        if c.revision <= self.compact_rev {
            return Err(MvccError::Compacted);
        }
        if c.revision > self.current_rev {
            return Err(MvccError::FutureRevision);
        }
        super::compact::compact(
            &mut self.revs,
            &mut self.history,
            self.compact_rev.max(0) as u64,
            c.revision as u64,
        )?;
        super::conflicts::compact(&mut self.conflict_state, c.revision)?;
        self.compact_rev = c.revision;
        Ok(CompactionResponse { header: None })
    }
}

fn has_lww(policies: &[ConflictPolicySet]) -> bool {
    policies
        .iter()
        .any(|p| p.policy() == ConflictPolicy::LastWriterWins)
}

/// Requests inside a txn read and write this transaction's tables.
impl<'t> TxnTables for Writer<'t> {
    type Latest = Table<'t, &'static [u8], &'static [u8]>;

    fn latest(&self) -> &Self::Latest {
        &self.latest
    }

    fn lease_exists(&self, id: i64) -> Result<bool, MvccError> {
        Writer::lease_exists(self, id)
    }

    /// A read inside the request sees its own writes.
    fn read_bounds(&self) -> RevisionBounds {
        RevisionBounds {
            current: if self.changes > 0 {
                self.current_rev + 1
            } else {
                self.current_rev
            },
            compacted: self.compact_rev,
        }
    }

    fn range_in_txn(&self, r: &RangeRequest) -> Result<RangeResponse, MvccError> {
        read::range(
            &self.latest,
            self.read_bounds(),
            r,
            true,
            |kr, rev, limit, count_only| {
                read::scan_at(&self.revs, &self.history, kr, rev, limit, count_only)
            },
        )
    }

    fn put_in_txn(&mut self, p: &PutRequest) -> Result<PutResponse, MvccError> {
        let mut resp = self.put(p)?;
        resp.header = Some(rev_header(self.write_rev()));
        Ok(resp)
    }

    fn delete_in_txn(&mut self, d: &DeleteRangeRequest) -> Result<DeleteRangeResponse, MvccError> {
        let mut resp = self.delete_range(d)?;
        resp.header = Some(rev_header(self.read_bounds().current));
        Ok(resp)
    }
}
