//! Safety invariants checked while a simulation runs: at most one leader per
//! term, every member applies the same entry at the same index (log matching
//! and state-machine safety), and revisions never go backwards.

use std::collections::BTreeMap;

use super::member::SimMember;

#[derive(Debug, Default)]
pub struct Invariants {
    leaders: BTreeMap<u64, u64>,
    /// index -> (term, payload crc) of the first member that applied it.
    applied: BTreeMap<u64, (u64, u32)>,
    /// Last (index, revision) applied per member since its last restart.
    last: BTreeMap<usize, (u64, i64)>,
    pub violations: Vec<String>,
}

impl Invariants {
    pub fn violate(&mut self, v: String) {
        if self.violations.len() < 20 {
            self.violations.push(v);
        }
    }

    pub fn check_leaders(&mut self, now_ms: u64, members: &[SimMember]) {
        for m in members.iter().filter(|m| m.is_leader()) {
            match self.leaders.get(&m.term()) {
                Some(&other) if other != m.id => self.violate(format!(
                    "election safety: at {now_ms} ms members {other} and {} both lead term {}",
                    m.id,
                    m.term()
                )),
                Some(_) => {}
                None => {
                    self.leaders.insert(m.term(), m.id);
                }
            }
        }
    }

    pub fn applied(&mut self, member: usize, index: u64, term: u64, data_crc: u32, revision: i64) {
        match self.applied.get(&index) {
            Some(&(t, c)) if (t, c) != (term, data_crc) => self.violate(format!(
                "state-machine safety: member {} applied ({term}, {data_crc:x}) at index {index}, another member applied ({t}, {c:x})",
                member + 1
            )),
            Some(_) => {}
            None => {
                self.applied.insert(index, (term, data_crc));
            }
        }
        if let Some(&(last_index, last_rev)) = self.last.get(&member) {
            if index > last_index && revision < last_rev {
                self.violate(format!(
                    "revisions: member {} went from revision {last_rev} to {revision} at index {index}",
                    member + 1
                ));
            }
        }
        self.last.insert(member, (index, revision));
    }
}
