//! The MVCC store as the member core's [`StateMachine`]: the core hands it
//! ordered batches of committed commands; it applies each batch in one redb
//! transaction that also records the applied index.

use rafter_core::{Command, SmApplied, StateMachine, WatchFeed};

use crate::mvcc::{ApplyEntry, KvResponse};
use crate::{MvccError, MvccStore};

impl StateMachine for MvccStore {
    type Response = Result<KvResponse, MvccError>;
    type Error = MvccError;

    fn apply(&self, commands: &[Command<'_>]) -> Result<SmApplied<Self::Response>, MvccError> {
        let entries: Vec<ApplyEntry<'_>> = commands
            .iter()
            .map(|c| ApplyEntry {
                index: c.index,
                request: c.request,
                client: c.client,
                stamp: c.stamp,
            })
            .collect();
        let outcome = self.apply_with_events(&entries, false)?;
        Ok(SmApplied {
            applied_index: outcome.state.applied_index,
            results: outcome.results,
            watch: WatchFeed {
                events: outcome.events,
                current_rev: outcome.state.current_revision,
                compact_rev: outcome.state.compact_revision,
            },
            leases: outcome.lease_changes,
            sessions_open: outcome.sessions_open,
            local_dots: outcome.local_dots,
        })
    }

    fn snapshot(&self) -> Result<rafter_core::SmSnapshot, MvccError> {
        let (data, applied_index, members) = self.snapshot_with_members()?;
        Ok(rafter_core::SmSnapshot {
            data,
            applied_index,
            members,
        })
    }

    fn restore(&self, data: &[u8]) -> Result<u64, MvccError> {
        Ok(MvccStore::restore(self, data)?.applied_index)
    }
}
