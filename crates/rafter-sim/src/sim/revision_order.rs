//! The linearizability check of runs that mix consistent operations with
//! local writes. Local writes enter the log at times no client call
//! brackets, so the model checker, which counts revisions exactly, cannot
//! judge such runs; but the store's revisions are a total order of every
//! change, and a history is linearizable in that order when:
//!
//! - every completed operation's answer is what the store held at the
//!   operation's own revision (a write is there, with its value, at its
//!   revision; a read saw the key's state at its header revision; a failed
//!   compare saw something else), judged by reading the final store at
//!   past revisions (the simulator never compacts); and
//! - the order respects real time: an operation called after another
//!   returned has a revision at least as high, and higher when it changed
//!   the store (it comes after everything the earlier one saw).
//!
//! Every value in the store came from a client operation or a local write
//! (no phantom writes). Transactions are left out of mixed runs' workload.

use std::collections::BTreeSet;

use rafter_proto::mvccpb::event::EventType;
use rafter_proto::mvccpb::Event;
use rafter_storage::MvccStore;

use super::history::{HistoryOp, OpKind, OpResult};
use super::ops;

/// A completed operation placed in the revision order.
struct Placed {
    index: usize,
    call_ms: u64,
    return_ms: u64,
    revision: u64,
    /// It changed the store (so it has a revision of its own).
    wrote: bool,
}

pub fn check(
    history: &[HistoryOp],
    store: &MvccStore,
    events: &[Event],
    local_values: &BTreeSet<u64>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut placed = Vec::new();
    for (index, op) in history.iter().enumerate() {
        let (Some(result), Some(return_ms)) = (&op.result, op.return_ms) else {
            continue;
        };
        if op.kind.is_serializable() {
            continue; // may be stale: checked in `Sim::finish`
        }
        match answer_at_revision(store, &op.kind, result) {
            Ok(Some((revision, wrote))) => placed.push(Placed {
                index,
                call_ms: op.call_ms,
                return_ms,
                revision,
                wrote,
            }),
            Ok(None) => {}
            Err(why) => problems.push(format!(
                "linearizability: operation #{index} (client {}, {:?} at {} ms) answered {result:?}, but {why}",
                op.client, op.kind, op.call_ms
            )),
        }
    }
    // Real time: walk calls in order, knowing the highest revision among
    // operations that returned before each call.
    let mut by_return: Vec<&Placed> = placed.iter().collect();
    by_return.sort_by_key(|p| p.return_ms);
    let mut by_call: Vec<&Placed> = placed.iter().collect();
    by_call.sort_by_key(|p| p.call_ms);
    let mut returned = 0;
    let mut floor: Option<&Placed> = None;
    for b in by_call {
        while returned < by_return.len() && by_return[returned].return_ms < b.call_ms {
            let a = by_return[returned];
            if floor.is_none_or(|f| a.revision > f.revision) {
                floor = Some(a);
            }
            returned += 1;
        }
        let Some(a) = floor else { continue };
        let too_early = if b.wrote {
            b.revision <= a.revision
        } else {
            b.revision < a.revision
        };
        if too_early {
            problems.push(format!(
                "linearizability: operation #{} (called at {} ms) is at revision {}, before operation #{} (revision {}) that returned at {} ms",
                b.index, b.call_ms, b.revision, a.index, a.revision, a.return_ms
            ));
        }
    }
    // No phantom writes.
    let issued: BTreeSet<u64> = history
        .iter()
        .filter_map(|op| match op.kind {
            OpKind::Put { value, .. } => Some(value),
            OpKind::Cas { new, .. } => Some(new),
            _ => None,
        })
        .chain(local_values.iter().copied())
        .collect();
    for e in events {
        let Some(kv) = &e.kv else { continue };
        if e.r#type != EventType::Put as i32 {
            continue;
        }
        let value = std::str::from_utf8(&kv.value)
            .ok()
            .and_then(|s| s.parse::<u64>().ok());
        if !value.is_some_and(|v| issued.contains(&v)) {
            problems.push(format!(
                "linearizability: revision {} holds a value nobody wrote: {:?}",
                kv.mod_revision,
                String::from_utf8_lossy(&kv.value)
            ));
        }
    }
    problems
}

/// Checks one answer against the store at its revision; returns the
/// revision and whether the operation changed the store (`None`: the
/// answer carries no revision to place it by).
fn answer_at_revision(
    store: &MvccStore,
    kind: &OpKind,
    result: &OpResult,
) -> Result<Option<(u64, bool)>, String> {
    let at = |key: u8, rev: u64| {
        ops::read_at(store, key, rev).map_err(|e| format!("revision {rev} cannot be read: {e}"))
    };
    let expect = |held: (Option<u64>, u64), want: (Option<u64>, u64), rev: u64| {
        if held == want {
            Ok(())
        } else {
            Err(format!(
                "the store held {:?} (mod {}) at revision {rev}",
                held.0, held.1
            ))
        }
    };
    Ok(Some(match (kind, result) {
        (
            OpKind::Put { key, value },
            OpResult::Put {
                revision: Some(rev),
            },
        ) => {
            expect(at(*key, *rev)?, (Some(*value), *rev), *rev)?;
            (*rev, true)
        }
        (
            OpKind::Get { key },
            OpResult::Get {
                value,
                mod_revision,
                revision,
            },
        ) => {
            expect(at(*key, *revision)?, (*value, *mod_revision), *revision)?;
            (*revision, false)
        }
        (
            OpKind::Delete { key },
            OpResult::Delete {
                deleted,
                revision: Some(rev),
            },
        ) => {
            expect(at(*key, *rev)?, (None, 0), *rev)?;
            if *deleted && at(*key, rev - 1)?.0.is_none() {
                return Err(format!(
                    "the key was already absent at revision {}",
                    rev - 1
                ));
            }
            (*rev, *deleted)
        }
        (
            OpKind::Cas { key, expected, new },
            OpResult::Cas {
                succeeded,
                revision: Some(rev),
            },
        ) => {
            if *succeeded {
                expect(at(*key, *rev)?, (Some(*new), *rev), *rev)?;
                let before = at(*key, rev - 1)?.0;
                if before != *expected {
                    return Err(format!(
                        "the key held {before:?} before, not the expected {expected:?}"
                    ));
                }
            } else if at(*key, *rev)?.0 == *expected {
                return Err(format!(
                    "the key held the expected {expected:?} at revision {rev}"
                ));
            }
            (*rev, *succeeded)
        }
        (OpKind::Scan { .. }, OpResult::Scan { revision, kvs }) => {
            let mut seen = kvs.iter().peekable();
            let keys = match kind {
                OpKind::Scan { keys } => *keys,
                _ => unreachable!(),
            };
            for key in 0..keys {
                let got = match seen.peek() {
                    Some((k, v, m)) if *k == key => {
                        seen.next();
                        (Some(*v), *m)
                    }
                    _ => (None, 0),
                };
                expect(at(key, *revision)?, got, *revision)
                    .map_err(|e| format!("for k{key}: {e}"))?;
            }
            (*revision, false)
        }
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rafter_storage::mvcc::ApplyEntry;
    use rafter_storage::MvccStore;

    use super::*;

    /// A store where k0 was written 10 (revision 2), then 11 (revision 3).
    fn store() -> MvccStore {
        let store = MvccStore::open_in_memory().expect("store");
        for (index, value) in [(1, 10), (2, 11)] {
            let request = ops::request_for(&OpKind::Put { key: 0, value });
            store
                .apply(
                    &[ApplyEntry {
                        index,
                        request: Some(&request),
                        client: None,
                        stamp: None,
                    }],
                    false,
                )
                .expect("apply");
        }
        store
    }

    fn op(kind: OpKind, result: OpResult, call_ms: u64, return_ms: u64) -> HistoryOp {
        HistoryOp {
            client: 0,
            kind,
            call_ms,
            return_ms: Some(return_ms),
            result: Some(result),
        }
    }

    fn problems(history: &[HistoryOp]) -> Vec<String> {
        let store = store();
        let events = crate::sim::watchers::full_history(&store);
        check(history, &store, &events, &BTreeSet::new())
    }

    fn put(value: u64, revision: u64, call: u64, ret: u64) -> HistoryOp {
        op(
            OpKind::Put { key: 0, value },
            OpResult::Put {
                revision: Some(revision),
            },
            call,
            ret,
        )
    }

    fn get(value: u64, revision: u64, call: u64, ret: u64) -> HistoryOp {
        op(
            OpKind::Get { key: 0 },
            OpResult::Get {
                value: Some(value),
                mod_revision: revision,
                revision,
            },
            call,
            ret,
        )
    }

    #[test]
    fn a_history_in_revision_and_real_time_order_passes() {
        let h = [put(10, 2, 0, 5), put(11, 3, 6, 9), get(11, 3, 10, 12)];
        assert!(problems(&h).is_empty(), "{:?}", problems(&h));
    }

    #[test]
    fn a_stale_read_after_a_write_returned_is_caught() {
        let h = [put(10, 2, 0, 5), put(11, 3, 6, 9), get(10, 2, 10, 12)];
        let p = problems(&h);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("before operation #1"), "{p:?}");
    }

    #[test]
    fn an_answer_the_store_never_held_is_caught() {
        let h = [get(12, 3, 0, 1)];
        assert!(problems(&h)[0].contains("the store held Some(11)"));
    }

    #[test]
    fn a_value_nobody_wrote_is_caught() {
        let h = [put(10, 2, 0, 5)];
        let p = problems(&h);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("a value nobody wrote: \"11\""), "{p:?}");
    }
}
