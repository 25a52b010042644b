//! The member's Prometheus metrics, under etcd's names and labels where
//! Rafter has the same quantity (so etcd's dashboards and alerts work) and
//! under `rafter_` for its own. Counters and histograms are updated where
//! things happen (the Raft loop, the apply thread, the gRPC layer); gauges
//! are read from the member's status when scraped.

use std::sync::atomic::Ordering;

use std::collections::HashMap;
use std::time::Instant;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::handle::NodeHandle;

/// etcd's buckets for disk durations: 1 ms to about 8 s, doubling.
fn disk_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.001, 2.0, 14).expect("valid buckets")
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// One scrape at a time catches the counters up (two at once would
    /// both add the same difference).
    rendering: std::sync::Mutex<()>,
    has_leader: IntGauge,
    is_leader: IntGauge,
    pub leader_changes: IntCounter,
    proposals_committed: IntGauge,
    proposals_applied: IntGauge,
    proposals_pending: IntGauge,
    pub proposals_failed: IntCounter,
    pub wal_fsync_seconds: Histogram,
    pub backend_commit_seconds: Histogram,
    db_size_bytes: IntGauge,
    db_size_in_use_bytes: IntGauge,
    current_revision: IntGauge,
    compact_revision: IntGauge,
    peer_rtt_seconds: HistogramVec,
    /// When the heartbeat each peer has not answered yet was sent (the
    /// Raft loop's alone).
    heartbeats_out: std::sync::Mutex<HashMap<u64, Instant>>,
    pub grpc_started: IntCounterVec,
    pub grpc_handled: IntCounterVec,
    raft_term: IntGauge,
    raft_applied_index: IntGauge,
    raft_commit_index: IntGauge,
    db_size_legacy: IntGauge,
    proposals_total: IntCounter,
    entries_applied: IntCounter,
    apply_commits: IntCounter,
    ready_cycles: IntCounter,
    wal_fsyncs: IntCounter,
    store_syncs: IntCounter,
    store_sync_us: IntCounter,
    conflict_log_records: IntGauge,
    messages_sent: IntCounterVec,
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid gauge");
    registry
        .register(Box::new(g.clone()))
        .expect("registered once");
    g
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid counter");
    registry
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

fn histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(disk_buckets()))
        .expect("valid histogram");
    registry
        .register(Box::new(h.clone()))
        .expect("registered once");
    h
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter");
    registry
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

impl Default for Metrics {
    fn default() -> Self {
        let r = Registry::new();
        let grpc_labels = ["grpc_type", "grpc_service", "grpc_method"];
        Metrics {
            rendering: std::sync::Mutex::new(()),
            has_leader: gauge(&r, "etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not."),
            is_leader: gauge(&r, "etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise."),
            leader_changes: counter(&r, "etcd_server_leader_changes_seen_total", "The number of leader changes seen."),
            proposals_committed: gauge(&r, "etcd_server_proposals_committed_total", "The total number of consensus proposals committed."),
            proposals_applied: gauge(&r, "etcd_server_proposals_applied_total", "The total number of consensus proposals applied."),
            proposals_pending: gauge(&r, "etcd_server_proposals_pending", "The current number of pending proposals to commit."),
            proposals_failed: counter(&r, "etcd_server_proposals_failed_total", "The total number of failed proposals seen."),
            wal_fsync_seconds: histogram(&r, "etcd_disk_wal_fsync_duration_seconds", "The latency distributions of fsync called by WAL."),
            backend_commit_seconds: histogram(&r, "etcd_disk_backend_commit_duration_seconds", "The latency distributions of commit called by backend."),
            db_size_bytes: gauge(&r, "etcd_mvcc_db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes."),
            db_size_in_use_bytes: gauge(&r, "etcd_mvcc_db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes."),
            current_revision: gauge(&r, "etcd_debugging_mvcc_current_revision", "The current revision of store."),
            compact_revision: gauge(&r, "etcd_debugging_mvcc_compact_revision", "The revision of the last compaction in store."),
            peer_rtt_seconds: {
                // etcd's buckets: 0.1 ms to about 3.3 s, doubling.
                let h = HistogramVec::new(
                    HistogramOpts::new(
                        "etcd_network_peer_round_trip_time_seconds",
                        "Round-Trip-Time histogram between peers",
                    )
                    .buckets(prometheus::exponential_buckets(0.0001, 2.0, 16).expect("valid buckets")),
                    &["To"],
                )
                .expect("valid histogram");
                r.register(Box::new(h.clone())).expect("registered once");
                h
            },
            heartbeats_out: std::sync::Mutex::new(HashMap::new()),
            grpc_started: counter_vec(&r, "grpc_server_started_total", "Total number of RPCs started on the server.", &grpc_labels),
            grpc_handled: counter_vec(
                &r,
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
                &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
            ),
            raft_term: gauge(&r, "rafter_raft_term", "Current Raft term."),
            raft_applied_index: gauge(&r, "rafter_raft_applied_index", "Last applied Raft index."),
            raft_commit_index: gauge(&r, "rafter_raft_commit_index", "Raft commit index."),
            db_size_legacy: gauge(&r, "rafter_db_size_bytes", "Size of the state machine file."),
            proposals_total: counter(&r, "rafter_proposals_total", "Proposals accepted into the Raft log."),
            entries_applied: counter(&r, "rafter_entries_applied_total", "Raft entries applied to the store."),
            apply_commits: counter(&r, "rafter_apply_commits_total", "Store transactions that applied Raft entries."),
            ready_cycles: counter(&r, "rafter_ready_cycles_total", "Raft Ready cycles processed."),
            wal_fsyncs: counter(&r, "rafter_wal_fsyncs_total", "Fsyncs of the Raft log."),
            store_syncs: counter(&r, "rafter_store_syncs_total", "Durable commits of the state machine store."),
            store_sync_us: counter(
                &r,
                "rafter_store_sync_microseconds_total",
                "Time spent in durable commits of the state machine store.",
            ),
            conflict_log_records: gauge(
                &r,
                "rafter_conflict_log_records",
                "Local writes the conflict log records as concurrent with a committed change (until compacted).",
            ),
            messages_sent: counter_vec(&r, "rafter_raft_messages_sent_total", "Raft messages sent to peers, by type.", &["type"]),
            registry: r,
        }
    }
}

impl Metrics {
    /// A leader change seen by the Raft loop: `from` → `to` (0: none).
    pub fn leader_changed(&self, from: u64, to: u64) {
        if to != 0 && to != from {
            self.leader_changes.inc();
        }
    }

    /// Raft messages leave for peers: a heartbeat to a peer with none
    /// outstanding starts a round-trip measurement.
    pub fn messages_sent(&self, messages: &[raft::eraftpb::Message]) {
        let mut out = self
            .heartbeats_out
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for m in messages {
            if m.get_msg_type() == raft::eraftpb::MessageType::MsgHeartbeat {
                out.entry(m.to).or_insert_with(Instant::now);
            }
        }
    }

    /// A peer's message arrived: a heartbeat response ends the peer's
    /// round-trip measurement (etcd's label: the peer id in hex).
    pub fn message_received(&self, m: &raft::eraftpb::Message) {
        if m.get_msg_type() != raft::eraftpb::MessageType::MsgHeartbeatResponse {
            return;
        }
        let sent = self
            .heartbeats_out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&m.from);
        if let Some(sent) = sent {
            self.peer_rtt_seconds
                .with_label_values(&[&format!("{:x}", m.from)])
                .observe(sent.elapsed().as_secs_f64());
        }
    }

    /// Every metric in Prometheus text format, gauges read now.
    pub fn render(&self, node: &NodeHandle) -> String {
        let _one_at_a_time = self.rendering.lock().unwrap_or_else(|e| e.into_inner());
        let s = &node.status;
        let leader = s.leader_id.load(Ordering::Relaxed);
        self.has_leader.set(i64::from(leader != 0));
        self.is_leader
            .set(i64::from(leader != 0 && leader == node.member_id));
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as i64;
        self.proposals_committed.set(load(&s.commit_index));
        self.proposals_applied.set(load(&s.applied_index));
        self.proposals_pending.set(load(&s.proposals_pending));
        self.raft_term.set(load(&s.term));
        self.raft_applied_index.set(load(&s.applied_index));
        self.raft_commit_index.set(load(&s.commit_index));
        // Counters kept as atomics where they happen, caught up here.
        for (counter, now) in [
            (&self.proposals_total, &s.proposals),
            (&self.entries_applied, &s.entries_applied),
            (&self.apply_commits, &s.apply_commits),
            (&self.ready_cycles, &s.ready_cycles),
            (&self.wal_fsyncs, &s.wal_fsyncs),
            (&self.store_syncs, &s.store_syncs),
            (&self.store_sync_us, &s.store_sync_us),
        ] {
            counter.inc_by(now.load(Ordering::Relaxed).saturating_sub(counter.get()));
        }
        let db = node.store.db_size_bytes() as i64;
        self.db_size_bytes.set(db);
        self.db_size_legacy.set(db);
        self.db_size_in_use_bytes.set(
            node.store
                .last_db_size_in_use_bytes()
                .map_or(db, |bytes| bytes as i64),
        );
        let (current, compacted) = node.revisions();
        self.current_revision.set(current);
        self.compact_revision.set(compacted.max(0));
        self.conflict_log_records
            .set(node.store.conflict_count().unwrap_or(0) as i64);
        for (kind, count) in s.messages_sent.snapshot() {
            let c = self.messages_sent.with_label_values(&[&kind]);
            c.inc_by(count.saturating_sub(c.get()));
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding never fails");
        String::from_utf8(out).expect("Prometheus text is UTF-8")
    }
}
