//! The MVCC store as the member core's [`StateMachine`]: the core hands it
//! ordered batches of committed commands; it applies each batch in one redb
//! transaction that also records the applied index.

use rafter_core::{Command, StateMachine};

use crate::mvcc::{ApplyEntry, KvResponse};
use crate::{MvccError, MvccStore};

impl StateMachine for MvccStore {
    type Response = Result<KvResponse, MvccError>;
    type Error = MvccError;

    fn apply(
        &self,
        commands: &[Command<'_>],
    ) -> Result<(u64, Vec<Option<Self::Response>>), MvccError> {
        let entries: Vec<ApplyEntry<'_>> = commands
            .iter()
            .map(|c| ApplyEntry {
                index: c.index,
                request: c.request,
            })
            .collect();
        let (state, results) = MvccStore::apply(self, &entries, false)?;
        Ok((state.applied_index, results))
    }

    fn snapshot(&self) -> Result<(Vec<u8>, u64), MvccError> {
        self.snapshot_data()
    }

    fn restore(&self, data: &[u8]) -> Result<u64, MvccError> {
        Ok(MvccStore::restore(self, data)?.applied_index)
    }
}
