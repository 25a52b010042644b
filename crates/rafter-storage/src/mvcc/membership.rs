//! The membership records in the `members` table: one row per member id
//! (removed members included, so an id never comes back), holding what
//! membership changes set (peer URLs, learner, removed) and what the member
//! published about itself (name, client URLs). The core decides which
//! changes are valid; this module only records them.

use rafter_core::membership::{merge_attributes, Membership};
use rafter_proto::rafterpb::{MemberAttributes, MembershipChange};
use redb::{ReadableTable, Table};

use super::MvccError;

pub fn decode(bytes: &[u8]) -> Result<MemberAttributes, MvccError> {
    prost::Message::decode(bytes)
        .map_err(|e| MvccError::Storage(format!("corrupt member record: {e}")))
}

/// Every record in the table.
pub fn load(
    table: &impl ReadableTable<u64, &'static [u8]>,
) -> Result<Vec<MemberAttributes>, MvccError> {
    let mut out = Vec::new();
    for item in table.iter()? {
        let (_, v) = item?;
        out.push(decode(v.value())?);
    }
    Ok(out)
}

fn store(
    table: &mut Table<'_, u64, &'static [u8]>,
    record: &MemberAttributes,
) -> Result<(), MvccError> {
    let encoded = prost::Message::encode_to_vec(record);
    table.insert(record.member_id, encoded.as_slice())?;
    Ok(())
}

/// Records a committed membership change (already checked by the core).
pub fn apply_change(
    table: &mut Table<'_, u64, &'static [u8]>,
    change: &MembershipChange,
) -> Result<(), MvccError> {
    let mut membership = Membership::new(load(table)?);
    let before = membership.records();
    membership.apply(change);
    for record in membership.records() {
        if !before.contains(&record) {
            store(table, &record)?;
        }
    }
    Ok(())
}

/// Records the attributes a member published, keeping its membership.
pub fn publish(
    table: &mut Table<'_, u64, &'static [u8]>,
    published: &MemberAttributes,
) -> Result<(), MvccError> {
    let mut record = match table.get(published.member_id)? {
        Some(v) => decode(v.value())?,
        None => MemberAttributes {
            member_id: published.member_id,
            ..Default::default()
        },
    };
    merge_attributes(&mut record, published);
    store(table, &record)
}
