//! The cluster's alarms (etcd's `alarm` bucket): which member raised which
//! alarm. They are replicated state, changed only by applying an
//! `AlarmRequest` from the log, so every member refuses the same writes:
//! with NOSPACE raised, requests that add data (Put, a Txn that writes,
//! LeaseGrant) fail with "database space exceeded"; with CORRUPT raised,
//! every mutation fails with "corrupt cluster" (etcd's capped and corrupt
//! appliers). They live in the `meta` table, one row per alarm
//! (`alarm/<member id>/<alarm type>`), so snapshots carry them.

use std::collections::BTreeSet;

use rafter_proto::etcdserverpb::alarm_request::AlarmAction;
use rafter_proto::etcdserverpb::{AlarmMember, AlarmRequest, AlarmType};
use redb::{ReadableTable, Table};

use super::read_only::is_read_only;
use super::{KvRequest, MvccError};

const PREFIX: &str = "alarm/";

/// The alarms raised: (member id, `AlarmType` as i32).
pub type Alarms = BTreeSet<(u64, i32)>;

fn row_name(member_id: u64, alarm: i32) -> String {
    format!("{PREFIX}{member_id:016x}/{alarm}")
}

fn parse(name: &str) -> Option<(u64, i32)> {
    let rest = name.strip_prefix(PREFIX)?;
    let (member, alarm) = rest.split_once('/')?;
    Some((u64::from_str_radix(member, 16).ok()?, alarm.parse().ok()?))
}

/// The alarms recorded in `meta`.
pub fn load(meta: &impl ReadableTable<&'static str, u64>) -> Result<Alarms, MvccError> {
    let mut out = Alarms::new();
    for item in meta.range(PREFIX..)? {
        let (k, _) = item?;
        let name = k.value();
        if !name.starts_with(PREFIX) {
            break;
        }
        let alarm = parse(name)
            .ok_or_else(|| MvccError::Storage(format!("malformed alarm row {name:?}")))?;
        out.insert(alarm);
    }
    Ok(out)
}

/// The alarms as etcd lists them.
pub fn list(meta: &impl ReadableTable<&'static str, u64>) -> Result<Vec<AlarmMember>, MvccError> {
    Ok(load(meta)?
        .into_iter()
        .map(|(member_id, alarm)| AlarmMember { member_id, alarm })
        .collect())
}

/// Replaces the recorded alarms by `alarms`.
pub fn store(meta: &mut Table<'_, &'static str, u64>, alarms: &Alarms) -> Result<(), MvccError> {
    clear(meta)?;
    for &(member, alarm) in alarms {
        meta.insert(row_name(member, alarm).as_str(), 1)?;
    }
    Ok(())
}

/// Removes every alarm (a restored cluster starts without its source's).
pub fn clear(meta: &mut Table<'_, &'static str, u64>) -> Result<(), MvccError> {
    let names: Vec<(u64, i32)> = load(meta)?.into_iter().collect();
    for (member, alarm) in names {
        meta.remove(row_name(member, alarm).as_str())?;
    }
    Ok(())
}

/// Applies an `AlarmRequest` (etcd's semantics): ACTIVATE records the alarm
/// (answering it only if it is new), DEACTIVATE removes it (answering it
/// only if it was raised), GET lists the alarms of the given type (NONE:
/// all). Returns the answer and whether the set changed.
pub fn apply(alarms: &mut Alarms, req: &AlarmRequest) -> (Vec<AlarmMember>, bool) {
    let member = AlarmMember {
        member_id: req.member_id,
        alarm: req.alarm,
    };
    let key = (req.member_id, req.alarm);
    match AlarmAction::try_from(req.action) {
        Ok(AlarmAction::Activate) if req.alarm != AlarmType::None as i32 => {
            if alarms.insert(key) {
                (vec![member], true)
            } else {
                (vec![], false)
            }
        }
        Ok(AlarmAction::Deactivate) => {
            if alarms.remove(&key) {
                (vec![member], true)
            } else {
                (vec![], false)
            }
        }
        Ok(AlarmAction::Get) => (
            alarms
                .iter()
                .filter(|&&(_, a)| req.alarm == AlarmType::None as i32 || a == req.alarm)
                .map(|&(member_id, alarm)| AlarmMember { member_id, alarm })
                .collect(),
            false,
        ),
        _ => (vec![], false),
    }
}

/// Whether the raised alarms refuse `req`, and with which error.
pub fn refusal(alarms: &Alarms, req: &KvRequest) -> Option<MvccError> {
    let raised = |t: AlarmType| alarms.iter().any(|&(_, a)| a == t as i32);
    if raised(AlarmType::Corrupt) && is_mutation(req) {
        return Some(MvccError::Corrupt);
    }
    if raised(AlarmType::Nospace) && adds_data(req) {
        return Some(MvccError::NoSpace);
    }
    None
}

/// The requests etcd's corrupt applier refuses.
fn is_mutation(req: &KvRequest) -> bool {
    matches!(
        req,
        KvRequest::Put(_)
            | KvRequest::DeleteRange(_)
            | KvRequest::Txn(_)
            | KvRequest::Compaction(_)
            | KvRequest::LeaseGrant(_)
            | KvRequest::LeaseRevoke(_)
    )
}

/// The requests etcd's capped applier refuses: they can only grow the
/// store. Deletes, compaction and revokes free space and stay allowed.
pub fn adds_data(req: &KvRequest) -> bool {
    match req {
        KvRequest::Put(_) | KvRequest::LeaseGrant(_) => true,
        KvRequest::Txn(t) => !is_read_only(t),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(action: AlarmAction, member_id: u64, alarm: AlarmType) -> AlarmRequest {
        AlarmRequest {
            action: action as i32,
            member_id,
            alarm: alarm as i32,
        }
    }

    #[test]
    fn activate_deactivate_and_get_follow_etcd() {
        let mut alarms = Alarms::new();
        let (got, changed) = apply(
            &mut alarms,
            &req(AlarmAction::Activate, 7, AlarmType::Nospace),
        );
        assert!(changed);
        assert_eq!(got.len(), 1);
        // Raising it again answers nothing.
        let (got, changed) = apply(
            &mut alarms,
            &req(AlarmAction::Activate, 7, AlarmType::Nospace),
        );
        assert!(!changed && got.is_empty());
        apply(
            &mut alarms,
            &req(AlarmAction::Activate, 9, AlarmType::Corrupt),
        );
        let (all, _) = apply(&mut alarms, &req(AlarmAction::Get, 0, AlarmType::None));
        assert_eq!(all.len(), 2);
        let (corrupt, _) = apply(&mut alarms, &req(AlarmAction::Get, 0, AlarmType::Corrupt));
        assert_eq!(
            corrupt,
            vec![AlarmMember {
                member_id: 9,
                alarm: AlarmType::Corrupt as i32
            }]
        );
        // Activating NONE is not an alarm.
        let (got, changed) = apply(&mut alarms, &req(AlarmAction::Activate, 1, AlarmType::None));
        assert!(!changed && got.is_empty());
        let (got, changed) = apply(
            &mut alarms,
            &req(AlarmAction::Deactivate, 7, AlarmType::Nospace),
        );
        assert!(changed && got.len() == 1);
        let (got, changed) = apply(
            &mut alarms,
            &req(AlarmAction::Deactivate, 7, AlarmType::Nospace),
        );
        assert!(!changed && got.is_empty());
    }

    #[test]
    fn nospace_refuses_only_growth_and_corrupt_every_mutation() {
        use rafter_proto::etcdserverpb::*;
        let put = KvRequest::Put(PutRequest::default());
        let del = KvRequest::DeleteRange(DeleteRangeRequest::default());
        let read_txn = KvRequest::Txn(TxnRequest::default());
        let compact = KvRequest::Compaction(CompactionRequest::default());
        let mut alarms = Alarms::new();
        assert_eq!(refusal(&alarms, &put), None);
        alarms.insert((1, AlarmType::Nospace as i32));
        assert_eq!(refusal(&alarms, &put), Some(MvccError::NoSpace));
        assert_eq!(refusal(&alarms, &del), None);
        assert_eq!(refusal(&alarms, &read_txn), None);
        assert_eq!(refusal(&alarms, &compact), None);
        alarms.insert((2, AlarmType::Corrupt as i32));
        assert_eq!(refusal(&alarms, &del), Some(MvccError::Corrupt));
        assert_eq!(refusal(&alarms, &compact), Some(MvccError::Corrupt));
    }

    #[test]
    fn row_names_round_trip() {
        assert_eq!(parse(&row_name(u64::MAX, 2)), Some((u64::MAX, 2)));
        assert_eq!(parse("alarm/zz/1"), None);
    }
}
