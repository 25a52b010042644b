//! Test-only bugs for the mutation checks: each one breaks a guarantee on
//! purpose, and CI proves the simulator's checks (or a live test) catch
//! it. They are compiled in only with the `faults` feature (which the
//! workspace's test build has, through rafter-sim's dev-dependencies), and
//! which one is on is chosen when the process starts, from `RAFTER_FAULT`
//! (a name such as `fault-local-reads`), so the tests' one build serves
//! every mutation check.
//! Without the feature [`active`] is a constant `false` the compiler
//! removes, so release builds carry none of them.

/// Every test-only bug, by the name `RAFTER_FAULT` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Linearizable reads are served without ReadIndex.
    LocalReads,
    /// A leader applies and acknowledges entries as it appends them.
    AckUncommitted,
    /// A read is granted when its read index is known, before the store
    /// applied it.
    ReadBeforeApplied,
    /// A snapshot is handed to the state machine after entries that follow
    /// it.
    SnapshotLate,
    /// A proposal is answered by whatever entry lands in the log slot it
    /// was appended at.
    SlotByIndex,
    /// A watch whose outbox is full skips the events it had no room for.
    WatchSkipFull,
    /// A watch that falls behind resumes one revision early.
    WatchDup,
    /// A follower answers a keep-alive itself without telling the leader.
    LeaseRenewAnywhere,
    /// A session request whose cancel was ordered first is applied anyway.
    ApplyAfterCancel,
    /// A session request's answer is not kept, so a retry applies it again.
    ForgetSessionResult,
    /// A copy of an applied local write applies again.
    LocalWriteTwice,
    /// A local write is applied whatever its conflict policy decided.
    ConflictIgnored,
    /// The simulator's shell tells Raft the log is durable before the
    /// fsync completed.
    AckBeforeFsync,
    /// rafter-client's consistent cache reads skip the catch-up (the bug
    /// lives in rafter-client; named here so servers started under that
    /// check know the name).
    CacheNoCatchUp,
    /// A defragmentation's copy leaves out the revision history table.
    DefragDropHistory,
    /// A committed promotion updates the recorded membership but not
    /// raft-rs's configuration (the learner never becomes a voter there).
    PromoteSkipsRaft,
    /// The server's Raft log writes without fsync, so a power cut loses
    /// entries it acknowledged.
    LogSkipsFsync,
    /// The server's Raft log entry cache keeps the suffix a conflicting
    /// append replaced, so raft-rs reads terms and entries the log no
    /// longer holds.
    LogCacheStale,
}

impl Fault {
    pub const ALL: [Fault; 18] = [
        Fault::LocalReads,
        Fault::AckUncommitted,
        Fault::ReadBeforeApplied,
        Fault::SnapshotLate,
        Fault::SlotByIndex,
        Fault::WatchSkipFull,
        Fault::WatchDup,
        Fault::LeaseRenewAnywhere,
        Fault::ApplyAfterCancel,
        Fault::ForgetSessionResult,
        Fault::LocalWriteTwice,
        Fault::ConflictIgnored,
        Fault::AckBeforeFsync,
        Fault::CacheNoCatchUp,
        Fault::DefragDropHistory,
        Fault::PromoteSkipsRaft,
        Fault::LogSkipsFsync,
        Fault::LogCacheStale,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::LocalReads => "fault-local-reads",
            Fault::AckUncommitted => "fault-ack-uncommitted",
            Fault::ReadBeforeApplied => "fault-read-before-applied",
            Fault::SnapshotLate => "fault-snapshot-late",
            Fault::SlotByIndex => "fault-slot-by-index",
            Fault::WatchSkipFull => "fault-watch-skip-full",
            Fault::WatchDup => "fault-watch-dup",
            Fault::LeaseRenewAnywhere => "fault-lease-renew-anywhere",
            Fault::ApplyAfterCancel => "fault-apply-after-cancel",
            Fault::ForgetSessionResult => "fault-forget-session-result",
            Fault::LocalWriteTwice => "fault-local-write-twice",
            Fault::ConflictIgnored => "fault-conflict-ignored",
            Fault::AckBeforeFsync => "fault-ack-before-fsync",
            Fault::CacheNoCatchUp => "fault-cache-no-catch-up",
            Fault::DefragDropHistory => "fault-defrag-drop-history",
            Fault::PromoteSkipsRaft => "fault-promote-skips-raft",
            Fault::LogSkipsFsync => "fault-log-skips-fsync",
            Fault::LogCacheStale => "fault-log-cache-stale",
        }
    }

    pub fn from_name(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// The bug `RAFTER_FAULT` turns on in this process, if any. Panics on a
/// name that is no bug, so a misspelt mutation check cannot pass by
/// testing nothing.
#[cfg(feature = "faults")]
pub fn selected() -> Option<Fault> {
    static SELECTED: std::sync::OnceLock<Option<Fault>> = std::sync::OnceLock::new();
    *SELECTED.get_or_init(|| {
        let name = std::env::var("RAFTER_FAULT")
            .ok()
            .filter(|n| !n.is_empty())?;
        Some(Fault::from_name(&name).unwrap_or_else(|| {
            panic!("RAFTER_FAULT={name} names no test-only bug (see rafter_core::fault)")
        }))
    })
}

/// Without the `faults` feature no bug can be on.
#[cfg(not(feature = "faults"))]
pub fn selected() -> Option<Fault> {
    None
}

/// Test-only crash points: with `RAFTER_CRASH_POINT=<name>` (and the
/// `faults` feature) the process aborts when it reaches the point named,
/// so a test can stop a member at the worst moment and check that it
/// recovers. A no-op otherwise.
pub fn crash_point(name: &str) {
    if cfg!(feature = "faults")
        && std::env::var("RAFTER_CRASH_POINT").is_ok_and(|point| point == name)
    {
        eprintln!("RAFTER_CRASH_POINT: aborting at {name}");
        std::process::abort();
    }
}

/// Whether test-only bug `f` is on in this process.
#[inline(always)]
pub fn active(f: Fault) -> bool {
    cfg!(feature = "faults") && selected() == Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in Fault::ALL {
            assert_eq!(Fault::from_name(f.name()), Some(f));
        }
        assert_eq!(Fault::from_name("fault-none"), None);
    }
}
