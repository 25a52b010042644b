//! Linearizability of the simulator's client history, per key (each key is
//! an independent register with put, get and compare-and-swap): a Wing &
//! Gong / Lowe search with memoisation of (linearized set, register value),
//! as Porcupine does. Indeterminate operations (timed out, or their member
//! crashed) may take effect at any point after their call, or never. The
//! search is bounded by a step budget (deterministic, so replays agree) and
//! reports `Unknown`, never `Ok`, when the budget runs out.

use std::collections::{BTreeMap, HashSet};

use super::history::{HistoryOp, OpKind, OpResult};

/// Search steps allowed per key before giving up with `Unknown`.
pub const STEP_BUDGET_PER_KEY: u64 = 2_000_000;

#[derive(Debug, PartialEq, Eq)]
pub enum Linearizability {
    Ok,
    /// The key, and a human-readable window of the operations that could not
    /// be ordered.
    Violation(u8, String),
    Unknown(u8),
}

/// Checks every key's sub-history.
pub fn check(history: &[HistoryOp]) -> Linearizability {
    let mut by_key: BTreeMap<u8, Vec<&HistoryOp>> = BTreeMap::new();
    for op in history {
        // A read that never answered observed nothing: drop it.
        if op.result.is_none() && matches!(op.kind, OpKind::Get { .. }) {
            continue;
        }
        by_key.entry(op.kind.key()).or_default().push(op);
    }
    for (key, ops) in by_key {
        match check_key(&ops, STEP_BUDGET_PER_KEY) {
            KeyResult::Ok => {}
            KeyResult::Unknown => return Linearizability::Unknown(key),
            KeyResult::Stuck(window) => return Linearizability::Violation(key, window),
        }
    }
    Linearizability::Ok
}

enum KeyResult {
    Ok,
    Unknown,
    Stuck(String),
}

/// One call or return in time order.
#[derive(Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
}

/// Applies `op` to the register; `None` if its observed result is
/// impossible from `state`.
fn step(state: Option<u64>, op: &HistoryOp) -> Option<Option<u64>> {
    match (&op.kind, &op.result) {
        (OpKind::Put { value, .. }, _) => Some(Some(*value)),
        (OpKind::Get { .. }, Some(OpResult::Get(v))) => (*v == state).then_some(state),
        (OpKind::Cas { expected, new, .. }, Some(OpResult::Cas(true))) => {
            (state == *expected).then_some(Some(*new))
        }
        (OpKind::Cas { expected, .. }, Some(OpResult::Cas(false))) => {
            (state != *expected).then_some(state)
        }
        // An indeterminate CAS that failed had no effect, which is the same
        // as never linearizing it; so only its successful form is tried.
        (OpKind::Cas { expected, new, .. }, None) => (state == *expected).then_some(Some(*new)),
        _ => None,
    }
}

fn check_key(ops: &[&HistoryOp], step_budget: u64) -> KeyResult {
    // Events sorted by time; at equal times calls go first (so touching
    // operations count as concurrent); indeterminate returns at the end.
    let mut events: Vec<(u64, u8, usize, bool)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        events.push((op.call_ms, 0, i, true));
        let ret = if op.result.is_some() {
            op.return_ms.expect("determinate ops have returned")
        } else {
            u64::MAX
        };
        events.push((ret, 1, i, false));
    }
    events.sort_unstable();
    let ev: Vec<Event> = events
        .iter()
        .map(|&(_, _, op, is_call)| Event { op, is_call })
        .collect();
    let n = ev.len();
    // Doubly linked list over event positions; `n` is the head sentinel.
    let mut next: Vec<usize> = (1..=n).collect();
    next.push(0);
    let mut prev: Vec<usize> = (0..=n).map(|i| if i == 0 { n } else { i - 1 }).collect();
    next[n] = if n == 0 { usize::MAX } else { 0 };
    if n > 0 {
        next[n - 1] = usize::MAX;
    }
    let mut ret_pos = vec![0usize; ops.len()];
    for (pos, e) in ev.iter().enumerate() {
        if !e.is_call {
            ret_pos[e.op] = pos;
        }
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, p: usize| {
        let (a, b) = (prev[p], next[p]);
        next[a] = b;
        if b != usize::MAX {
            prev[b] = a;
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, p: usize| {
        let (a, b) = (prev[p], next[p]);
        next[a] = p;
        if b != usize::MAX {
            prev[b] = p;
        }
    };

    let mut linearized = vec![false; ops.len()];
    let mut cache: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut state: Option<u64> = None;
    let mut cur = next[n];
    let mut steps = 0u64;
    let mut deepest = (0usize, 0usize);
    loop {
        if cur == usize::MAX || (!ev[cur].is_call && ops[ev[cur].op].result.is_none()) {
            return KeyResult::Ok;
        }
        steps += 1;
        if steps > step_budget {
            return KeyResult::Unknown;
        }
        let e = ev[cur];
        if e.is_call {
            if let Some(new_state) = step(state, ops[e.op]) {
                linearized[e.op] = true;
                let key = (bits(&linearized), new_state);
                if cache.insert(key) {
                    stack.push((cur, state));
                    state = new_state;
                    unlink(&mut next, &mut prev, cur);
                    unlink(&mut next, &mut prev, ret_pos[e.op]);
                    cur = next[n];
                    continue;
                }
                linearized[e.op] = false;
            }
            cur = next[cur];
        } else {
            if stack.len() >= deepest.0 {
                deepest = (stack.len(), e.op);
            }
            let Some((call_pos, old_state)) = stack.pop() else {
                return KeyResult::Stuck(window(ops, deepest.1));
            };
            let op = ev[call_pos].op;
            linearized[op] = false;
            state = old_state;
            relink(&mut next, &mut prev, ret_pos[op]);
            relink(&mut next, &mut prev, call_pos);
            cur = next[call_pos];
        }
    }
}

fn bits(linearized: &[bool]) -> Vec<u64> {
    let mut out = vec![0u64; linearized.len().div_ceil(64)];
    for (i, &b) in linearized.iter().enumerate() {
        if b {
            out[i / 64] |= 1 << (i % 64);
        }
    }
    out
}

/// The operations overlapping the one that could not be linearized at the
/// deepest point the search reached, as a timeline.
fn window(ops: &[&HistoryOp], stuck: usize) -> String {
    let s = ops[stuck];
    let end = s.return_ms.unwrap_or(u64::MAX);
    let mut lines: Vec<&HistoryOp> = ops
        .iter()
        .copied()
        .filter(|o| o.call_ms <= end && o.return_ms.is_none_or(|r| r >= s.call_ms))
        .collect();
    lines.sort_by_key(|o| o.call_ms);
    let mut text = format!(
        "no linearization explains client {} {:?} -> {:?} [{}..{} ms]; overlapping operations:\n",
        s.client, s.kind, s.result, s.call_ms, end
    );
    for o in lines {
        let ret = o.return_ms.map_or("?".to_string(), |r| r.to_string());
        text.push_str(&format!(
            "    c{} [{}..{} ms] {:?} -> {}\n",
            o.client,
            o.call_ms,
            ret,
            o.kind,
            o.result
                .as_ref()
                .map_or("indeterminate".to_string(), |r| format!("{r:?}"))
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        client: usize,
        kind: OpKind,
        call: u64,
        ret: Option<u64>,
        result: Option<OpResult>,
    ) -> HistoryOp {
        HistoryOp {
            client,
            kind,
            call_ms: call,
            return_ms: ret,
            result,
        }
    }
    fn put(c: usize, v: u64, call: u64, ret: u64) -> HistoryOp {
        op(
            c,
            OpKind::Put { key: 0, value: v },
            call,
            Some(ret),
            Some(OpResult::Put),
        )
    }
    fn get(c: usize, v: Option<u64>, call: u64, ret: u64) -> HistoryOp {
        op(
            c,
            OpKind::Get { key: 0 },
            call,
            Some(ret),
            Some(OpResult::Get(v)),
        )
    }
    fn cas(c: usize, expected: Option<u64>, new: u64, ok: bool, call: u64, ret: u64) -> HistoryOp {
        op(
            c,
            OpKind::Cas {
                key: 0,
                expected,
                new,
            },
            call,
            Some(ret),
            Some(OpResult::Cas(ok)),
        )
    }

    #[test]
    fn concurrent_history_is_linearizable() {
        let h = vec![
            put(0, 1, 0, 10),
            get(1, Some(1), 5, 15),
            put(2, 2, 12, 20),
            get(0, Some(2), 21, 25),
        ];
        assert_eq!(check(&h), Linearizability::Ok);
    }

    #[test]
    fn stale_read_is_caught() {
        let h = vec![put(0, 1, 0, 10), put(0, 2, 11, 20), get(1, Some(1), 21, 25)];
        assert!(matches!(check(&h), Linearizability::Violation(0, _)));
    }

    #[test]
    fn lost_write_is_caught() {
        let h = vec![put(0, 1, 0, 10), get(1, None, 11, 15)];
        let Linearizability::Violation(_, w) = check(&h) else {
            panic!("not caught")
        };
        assert!(w.contains("Get"), "{w}");
    }

    #[test]
    fn indeterminate_write_may_explain_a_later_read() {
        let h = vec![
            op(0, OpKind::Put { key: 0, value: 7 }, 0, None, None),
            get(1, Some(7), 50, 60),
        ];
        assert_eq!(check(&h), Linearizability::Ok);
        let never = vec![
            op(0, OpKind::Put { key: 0, value: 7 }, 0, None, None),
            get(1, None, 50, 60),
        ];
        assert_eq!(check(&never), Linearizability::Ok);
    }

    #[test]
    fn cas_succeeding_twice_from_one_value_is_caught() {
        let h = vec![
            put(0, 1, 0, 5),
            cas(1, Some(1), 2, true, 10, 20),
            cas(2, Some(1), 3, true, 12, 22),
        ];
        assert!(matches!(check(&h), Linearizability::Violation(0, _)));
    }

    #[test]
    fn budget_exhaustion_is_unknown_never_ok() {
        // Many concurrent writes and a final impossible read force the search
        // through many orders; a tiny budget must give Unknown, not Ok.
        let mut h: Vec<HistoryOp> = (0..18).map(|i| put(i as usize, i, 0, 100)).collect();
        h.push(get(99, Some(1000), 200, 210));
        let ops: Vec<&HistoryOp> = h.iter().collect();
        assert!(matches!(check_key(&ops, 10), KeyResult::Unknown));
        let fine: Vec<HistoryOp> = (0..18).map(|i| put(i as usize, i, 0, 100)).collect();
        let fine_ops: Vec<&HistoryOp> = fine.iter().collect();
        assert!(matches!(check_key(&fine_ops, 1_000), KeyResult::Ok));
    }
}
