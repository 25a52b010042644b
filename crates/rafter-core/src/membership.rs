//! The cluster's membership as the member core applies it: which members
//! exist (voters and learners), their peer URLs, and which ids were removed
//! and may never come back. A membership change is checked here with
//! etcd's rules (`ValidateConfigurationChange`) when its entry commits, on
//! every member alike, so every member accepts or refuses the same changes
//! and raft-rs's configuration always matches the recorded one.

use std::collections::BTreeMap;

use raft::eraftpb::{ConfChange, ConfChangeType, ConfState};
use rafter_proto::rafterpb::membership_change::Kind;
use rafter_proto::rafterpb::{MemberAttributes, MembershipChange};

/// At most this many learners at a time (etcd's `maxLearners`).
pub const MAX_LEARNERS: usize = 1;

/// A learner may be promoted once its log matches at least this share of
/// the leader's (etcd's `readyPercent`).
pub const LEARNER_READY_SHARE: f64 = 0.9;

/// Why a membership change was refused (etcd's membership errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("member ID already exist")]
    IdExists,
    #[error("Peer URLs already exists")]
    PeerUrlExists,
    #[error("member ID removed")]
    IdRemoved,
    #[error("member not found")]
    NotFound,
    #[error("can only promote a learner member")]
    NotLearner,
    #[error("can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("too many learner members in cluster")]
    TooManyLearners,
    /// Removing the last voter (or too many unstarted voters): etcd's
    /// strict reconfiguration check.
    #[error("re-configuration failed due to not enough started members")]
    NotEnoughStarted,
    /// Another change is not applied yet (raft-rs allows one at a time).
    #[error("a membership change is in progress")]
    InProgress,
    #[error("given member URLs are invalid")]
    BadUrls,
    /// The state machine records no membership (a data directory from
    /// before membership changes): changing it would lose the founders.
    #[error("this cluster's data predates membership records; membership changes need a cluster started by this version")]
    Unrecorded,
}

/// True when the record is a current member (not removed, with peer URLs).
pub fn is_member(record: &MemberAttributes) -> bool {
    !record.removed && !record.peer_urls.is_empty()
}

/// Members and removed ids, by id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Membership {
    records: BTreeMap<u64, MemberAttributes>,
}

impl Membership {
    pub fn new(records: impl IntoIterator<Item = MemberAttributes>) -> Self {
        Membership {
            records: records.into_iter().map(|r| (r.member_id, r)).collect(),
        }
    }

    /// True when no membership was ever recorded (a store from before
    /// membership changes, or a member that has not caught up yet).
    pub fn is_empty(&self) -> bool {
        !self.records.values().any(is_member)
    }

    /// The current members, by id.
    pub fn members(&self) -> impl Iterator<Item = &MemberAttributes> {
        self.records.values().filter(|r| is_member(r))
    }

    /// Every record, removed members included.
    pub fn records(&self) -> Vec<MemberAttributes> {
        self.records.values().cloned().collect()
    }

    pub fn get(&self, id: u64) -> Option<&MemberAttributes> {
        self.records.get(&id).filter(|r| is_member(r))
    }

    pub fn is_removed(&self, id: u64) -> bool {
        self.records.get(&id).is_some_and(|r| r.removed)
    }

    /// raft-rs's configuration for this membership.
    pub fn conf_state(&self) -> ConfState {
        let mut cs = ConfState::default();
        for m in self.members() {
            if m.is_learner {
                cs.learners.push(m.member_id);
            } else {
                cs.voters.push(m.member_id);
            }
        }
        cs
    }

    /// etcd's checks of a change against the applied membership.
    pub fn validate(&self, change: &MembershipChange) -> Result<(), MembershipError> {
        let kind = Kind::try_from(change.kind).map_err(|_| MembershipError::BadUrls)?;
        if kind == Kind::Bootstrap {
            return Ok(());
        }
        let [target] = change.members.as_slice() else {
            return Err(MembershipError::NotFound);
        };
        let id = target.member_id;
        match kind {
            Kind::Bootstrap => Ok(()),
            Kind::Add => {
                if target.peer_urls.is_empty() || id == 0 {
                    return Err(MembershipError::BadUrls);
                }
                if self.is_removed(id) {
                    return Err(MembershipError::IdRemoved);
                }
                if self.get(id).is_some() {
                    return Err(MembershipError::IdExists);
                }
                self.check_urls_free(id, &target.peer_urls)?;
                if target.is_learner
                    && self.members().filter(|m| m.is_learner).count() >= MAX_LEARNERS
                {
                    return Err(MembershipError::TooManyLearners);
                }
                Ok(())
            }
            Kind::Remove => {
                let member = self.existing(id)?;
                let voters = self.members().filter(|m| !m.is_learner).count();
                if !member.is_learner && voters <= 1 {
                    return Err(MembershipError::NotEnoughStarted);
                }
                Ok(())
            }
            Kind::Update => {
                self.existing(id)?;
                if target.peer_urls.is_empty() {
                    return Err(MembershipError::BadUrls);
                }
                self.check_urls_free(id, &target.peer_urls)
            }
            Kind::Promote => {
                if !self.existing(id)?.is_learner {
                    return Err(MembershipError::NotLearner);
                }
                Ok(())
            }
        }
    }

    fn existing(&self, id: u64) -> Result<&MemberAttributes, MembershipError> {
        if self.is_removed(id) {
            return Err(MembershipError::IdRemoved);
        }
        self.get(id).ok_or(MembershipError::NotFound)
    }

    fn check_urls_free(&self, id: u64, urls: &[String]) -> Result<(), MembershipError> {
        let taken = self
            .members()
            .filter(|m| m.member_id != id)
            .any(|m| m.peer_urls.iter().any(|u| urls.contains(u)));
        if taken {
            Err(MembershipError::PeerUrlExists)
        } else {
            Ok(())
        }
    }

    /// Applies a validated change; returns raft-rs's change for it (`None`
    /// for a bootstrap or an update, which do not change the
    /// configuration).
    pub fn apply(&mut self, change: &MembershipChange) -> Option<ConfChange> {
        let kind = Kind::try_from(change.kind).ok()?;
        for target in &change.members {
            let id = target.member_id;
            let record = self.records.entry(id).or_insert_with(|| MemberAttributes {
                member_id: id,
                ..Default::default()
            });
            match kind {
                Kind::Bootstrap => *record = target.clone(),
                Kind::Add => {
                    record.peer_urls = target.peer_urls.clone();
                    record.is_learner = target.is_learner;
                }
                Kind::Remove => {
                    record.removed = true;
                    record.is_learner = false;
                }
                Kind::Update => record.peer_urls = target.peer_urls.clone(),
                Kind::Promote => record.is_learner = false,
            }
        }
        (!matches!(kind, Kind::Bootstrap | Kind::Update)).then(|| proposed_conf_change(change))
    }
}

/// What raft-rs is asked to propose for a change (the command travels as
/// the entry's context).
pub fn proposed_conf_change(change: &MembershipChange) -> ConfChange {
    let target = change.members.first();
    let change_type = match (Kind::try_from(change.kind), target) {
        (Ok(Kind::Add), Some(t)) if t.is_learner => ConfChangeType::AddLearnerNode,
        (Ok(Kind::Add | Kind::Promote), _) => ConfChangeType::AddNode,
        (Ok(Kind::Remove), _) => ConfChangeType::RemoveNode,
        // An update changes no configuration (raft-rs has no such change;
        // the core never applies this one), but going through raft-rs as a
        // configuration change keeps it one at a time with the others.
        _ => ConfChangeType::AddNode,
    };
    ConfChange {
        change_type,
        node_id: target.map_or(0, |t| t.member_id),
        ..Default::default()
    }
}

/// Merges published attributes (name, client URLs) into a membership
/// record, keeping what membership changes set.
pub fn merge_attributes(record: &mut MemberAttributes, published: &MemberAttributes) {
    record.name = published.name.clone();
    record.client_urls = published.client_urls.clone();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, url: &str, learner: bool) -> MemberAttributes {
        MemberAttributes {
            member_id: id,
            peer_urls: vec![url.to_string()],
            is_learner: learner,
            ..Default::default()
        }
    }

    fn change(kind: Kind, m: MemberAttributes) -> MembershipChange {
        MembershipChange {
            kind: kind as i32,
            members: vec![m],
        }
    }

    #[test]
    fn etcd_rules_refuse_what_etcd_refuses() {
        let mut ms = Membership::new([member(1, "http://a", false)]);
        assert_eq!(
            ms.validate(&change(Kind::Add, member(1, "http://b", false))),
            Err(MembershipError::IdExists)
        );
        assert_eq!(
            ms.validate(&change(Kind::Add, member(2, "http://a", false))),
            Err(MembershipError::PeerUrlExists)
        );
        assert_eq!(
            ms.validate(&change(Kind::Remove, member(1, "", false))),
            Err(MembershipError::NotEnoughStarted)
        );
        assert_eq!(
            ms.validate(&change(Kind::Promote, member(1, "", false))),
            Err(MembershipError::NotLearner)
        );
        let add = change(Kind::Add, member(2, "http://b", true));
        ms.validate(&add).unwrap();
        let cc = ms.apply(&add).unwrap();
        assert_eq!(cc.change_type, ConfChangeType::AddLearnerNode);
        assert_eq!(
            ms.validate(&change(Kind::Add, member(3, "http://c", true))),
            Err(MembershipError::TooManyLearners)
        );
        let promote = change(Kind::Promote, member(2, "", false));
        ms.apply(&promote);
        assert_eq!(ms.conf_state().voters, vec![1, 2]);
        let remove = change(Kind::Remove, member(2, "", false));
        ms.validate(&remove).unwrap();
        ms.apply(&remove);
        assert_eq!(
            ms.validate(&change(Kind::Add, member(2, "http://b", false))),
            Err(MembershipError::IdRemoved)
        );
        assert_eq!(
            ms.validate(&change(Kind::Update, member(7, "http://x", false))),
            Err(MembershipError::NotFound)
        );
        assert_eq!(ms.conf_state().voters, vec![1]);
    }
}
