//! The checker on small hand-made histories whose verdict is known (each
//! anomaly the issue names, indeterminate operations both ways, the budget),
//! on generated histories (property tests), and on a 10,000-operation
//! history.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;

use super::kv::{Kv, KvCompare, KvInput, KvOutput, KvTxnOp, KvTxnResult};
use super::register::{Register, RegisterInput, RegisterOutput};
use super::synth::{kv_history, register_history, SynthConfig};
use super::*;

type Op = Operation<RegisterInput<&'static str, u64>, RegisterOutput<u64>>;

fn put(client: usize, call: u64, ret: u64, key: &'static str, value: u64) -> Op {
    Operation::ok(
        client,
        call,
        ret,
        RegisterInput::Put { key, value },
        RegisterOutput::Put,
    )
}

fn get(client: usize, call: u64, ret: u64, key: &'static str, read: Option<u64>) -> Op {
    Operation::ok(
        client,
        call,
        ret,
        RegisterInput::Get { key },
        RegisterOutput::Get(read),
    )
}

fn cas(
    client: usize,
    call: u64,
    ret: u64,
    key: &'static str,
    expected: Option<u64>,
    new: u64,
    swapped: bool,
) -> Op {
    let input = RegisterInput::Cas { key, expected, new };
    Operation::ok(client, call, ret, input, RegisterOutput::Cas(swapped))
}

fn lost_put(client: usize, call: u64, key: &'static str, value: u64) -> Op {
    Operation::indeterminate(client, call, call + 10, RegisterInput::Put { key, value })
}

fn run(history: &[Op]) -> CheckResult {
    check(&Register::new(), history, Duration::from_secs(10))
}

fn violation(history: &[Op]) -> Violation {
    match run(history) {
        CheckResult::Illegal(v) => v,
        other => panic!("expected a violation, got {other}"),
    }
}

/// The states where the search got furthest, which must be at the culprit.
fn states(v: &Violation) -> Vec<String> {
    let furthest = v
        .furthest
        .as_ref()
        .expect("the search said where it got stuck");
    assert_eq!(furthest.op, v.op, "stuck at the culprit");
    furthest.states.clone()
}

fn roles(v: &Violation) -> Vec<(usize, Role)> {
    v.window.iter().map(|w| (w.index, w.role)).collect()
}

#[test]
fn a_concurrent_linearizable_history_is_ok() {
    let history = [
        put(0, 0, 10, "x", 1),
        get(1, 5, 15, "x", None),
        get(2, 12, 20, "x", Some(1)),
        cas(1, 16, 30, "x", Some(1), 2, true),
        get(0, 20, 25, "x", Some(1)),
        get(2, 31, 40, "x", Some(2)),
        cas(0, 32, 38, "x", Some(1), 3, false),
    ];
    assert_eq!(run(&history), CheckResult::Ok);
    assert_eq!(run(&[]), CheckResult::Ok);
}

#[test]
fn a_stale_read_is_caught_and_shown_with_the_write_it_missed() {
    let history = [
        put(0, 0, 10, "x", 1),
        put(1, 20, 30, "x", 2),
        get(2, 40, 50, "x", Some(1)),
    ];
    let v = violation(&history);
    assert_eq!(v.partition, "key \"x\"");
    assert_eq!(v.op, 2);
    assert!(v.minimal);
    assert_eq!(states(&v), vec!["2"]);
    assert_eq!(roles(&v), vec![(1, Role::Context), (2, Role::Culprit)]);
    let text = v.to_string();
    assert!(
        text.contains("#2 (client 2: get(\"x\") => 1) cannot be linearized"),
        "{text}"
    );
    assert!(text.contains("put(\"x\", 2) => ok"), "{text}");
    assert!(
        !text.contains("put(\"x\", 1)"),
        "the first write is not part of the anomaly: {text}"
    );
}

#[test]
fn a_lost_write_is_caught() {
    let history = [
        put(0, 0, 10, "x", 1),
        get(1, 20, 30, "x", Some(1)),
        put(0, 40, 50, "x", 2),
        get(1, 60, 70, "x", Some(1)),
        get(2, 80, 90, "x", Some(2)),
    ];
    let v = violation(&history);
    assert_eq!(v.op, 3);
    assert_eq!(states(&v), vec!["2"]);
    assert_eq!(roles(&v), vec![(2, Role::Context), (3, Role::Culprit)]);
    assert_eq!(v.furthest.as_ref().map(|f| f.linearized), Some(3));
}

#[test]
fn operations_that_touch_at_an_instant_are_concurrent() {
    let history = [put(0, 0, 10, "x", 1), get(1, 10, 20, "x", None)];
    assert_eq!(run(&history), CheckResult::Ok);
    let history = [put(0, 0, 10, "x", 1), get(1, 11, 20, "x", None)];
    assert_eq!(violation(&history).op, 1);
}

#[test]
fn a_violation_not_narrowed_down_within_budget_says_so() {
    let history = [
        put(0, 0, 10, "x", 1),
        put(1, 20, 30, "x", 2),
        get(2, 40, 50, "x", Some(1)),
    ];
    let model = Register::new();
    let partition = model.partition(&history).remove(0);
    let view = view::View::new(&history, &partition);
    let v = explain::explain(&model, &view, &partition.label, Budget::steps(0));
    assert!(!v.minimal);
    assert_eq!(v.op, 2, "the last return is known to fail");
    assert!(v.furthest.is_none());
    assert_eq!(roles(&v), vec![(2, Role::Culprit)]);
    let text = v.to_string();
    assert!(text.contains("an earlier anomaly may exist"), "{text}");
    assert!(
        text.contains("before the search could say where it gets stuck"),
        "{text}"
    );
}

#[test]
fn an_indeterminate_write_explains_a_later_read() {
    let history = [
        put(0, 0, 10, "x", 1),
        lost_put(1, 15, "x", 2),
        get(2, 40, 50, "x", Some(2)),
        get(2, 60, 70, "x", Some(2)),
    ];
    assert_eq!(run(&history), CheckResult::Ok);
}

#[test]
fn an_indeterminate_write_may_take_effect_after_its_client_gave_up() {
    let history = [
        lost_put(1, 15, "x", 2),
        get(2, 100, 110, "x", None),
        get(2, 120, 130, "x", Some(2)),
    ];
    assert_eq!(run(&history), CheckResult::Ok);
}

#[test]
fn an_indeterminate_write_may_never_take_effect() {
    let history = [
        put(0, 0, 10, "x", 1),
        lost_put(1, 15, "x", 2),
        get(2, 40, 50, "x", Some(1)),
    ];
    assert_eq!(run(&history), CheckResult::Ok);
}

#[test]
fn an_indeterminate_write_cannot_explain_a_read_before_its_call() {
    let history = [
        put(0, 0, 10, "x", 1),
        get(2, 20, 30, "x", Some(2)),
        lost_put(1, 40, "x", 2),
    ];
    let v = violation(&history);
    assert_eq!(v.op, 1);
    assert_eq!(roles(&v), vec![(0, Role::Context), (1, Role::Culprit)]);
}

#[test]
fn an_indeterminate_write_takes_effect_at_most_once() {
    let history = [
        put(0, 0, 10, "x", 1),
        lost_put(1, 15, "x", 2),
        get(2, 20, 30, "x", Some(2)),
        put(0, 31, 35, "x", 3),
        get(2, 40, 50, "x", Some(2)),
    ];
    let v = violation(&history);
    assert_eq!(v.op, 4);
    assert_eq!(states(&v), vec!["3"]);
    assert_eq!(
        roles(&v),
        vec![
            (1, Role::Concurrent),
            (3, Role::Context),
            (4, Role::Culprit)
        ],
        "the lost write is open-ended, so concurrent with everything after it"
    );
}

#[test]
fn a_cas_that_succeeded_twice_from_the_same_value_is_caught() {
    let history = [
        put(0, 0, 10, "x", 0),
        cas(1, 20, 40, "x", Some(0), 1, true),
        cas(2, 25, 45, "x", Some(0), 2, true),
    ];
    let v = violation(&history);
    assert_eq!(
        v.op, 2,
        "the second CAS to return is the one that cannot fit"
    );
    assert!(v.minimal);
    assert_eq!(states(&v), vec!["1"]);
    assert_eq!(
        roles(&v),
        vec![
            (0, Role::Context),
            (1, Role::Concurrent),
            (2, Role::Culprit)
        ]
    );
    let text = v.to_string();
    assert!(text.contains("cas(\"x\", 0 -> 1) => true"), "{text}");
    assert!(text.contains("cas(\"x\", 0 -> 2) => true"), "{text}");
}

#[test]
fn the_culprit_can_differ_from_where_the_search_got_stuck() {
    // Had #1 been lost, it could have set 1 for #0; its "false" rules that
    // out, and then #0 is the operation that cannot be placed.
    let history = [
        cas(0, 12, 13, "x", Some(1), 0, true),
        cas(1, 6, 13, "x", None, 1, false),
    ];
    let v = violation(&history);
    assert_eq!(v.op, 1);
    assert!(v.minimal);
    let furthest = v.furthest.clone().expect("tracked");
    assert_eq!((furthest.op, furthest.linearized), (0, 0));
    assert_eq!(furthest.states, vec!["absent"]);
    assert_eq!(roles(&v), vec![(1, Role::Culprit), (0, Role::Stuck)]);
    assert!(
        v.to_string().contains("<- where the search got stuck"),
        "{v}"
    );
}

#[test]
fn only_the_failing_key_is_reported_and_the_report_is_deterministic() {
    let history = [
        put(0, 0, 10, "a", 1),
        put(1, 0, 10, "b", 1),
        get(0, 20, 30, "a", Some(1)),
        put(1, 20, 30, "b", 2),
        get(2, 40, 50, "b", Some(1)),
        get(0, 40, 50, "c", None),
    ];
    let v = violation(&history);
    assert_eq!(v.partition, "key \"b\"");
    assert_eq!(v.op, 4);
    assert_eq!(roles(&v), vec![(3, Role::Context), (4, Role::Culprit)]);
    assert_eq!(run(&history).to_string(), run(&history).to_string());
}

#[test]
fn the_window_is_the_anomaly_not_the_whole_history() {
    let mut history = register_history(&SynthConfig::new(7, 3000));
    let read = (history.len() / 2..)
        .find(|&i| matches!(history[i].output, Some(RegisterOutput::Get(_))))
        .expect("a read in the second half");
    history[read].output = Some(RegisterOutput::Get(Some(u64::MAX)));
    let result = check(&Register::new(), &history, Duration::from_secs(30));
    let v = result.violation().expect("a read of a value never written");
    assert_eq!(v.op, read);
    assert!(v.minimal);
    assert!(v.window.len() <= 8, "{v}");
    assert!(v.window_ops().contains(&read));
}

/// Every client writes its own value concurrently and one read sees a value
/// nobody wrote: proving that takes every subset of the writes.
fn pathological(writers: u64) -> Vec<Op> {
    let mut history: Vec<Op> = (0..writers)
        .map(|i| put(i as usize, i, 1000 + i, "x", i))
        .collect();
    history.push(get(99, 500, 2000, "x", Some(1_000_000)));
    history
}

#[test]
fn running_out_of_time_gives_unknown_never_ok() {
    let result = check(
        &Register::new(),
        &pathological(24),
        Duration::from_millis(50),
    );
    assert_eq!(
        result,
        CheckResult::Unknown {
            partition: "key \"x\"".to_string()
        }
    );
    assert!(!result.is_ok());
    assert!(result.to_string().contains("not a pass"));
}

#[test]
fn a_step_budget_gives_the_same_unknown_on_every_machine() {
    let tight = check(&Register::new(), &pathological(24), Budget::steps(10_000));
    assert!(matches!(tight, CheckResult::Unknown { .. }));
    let roomy = check(
        &Register::new(),
        &pathological(6),
        Budget::steps(10_000_000),
    );
    assert_eq!(roomy.violation().map(|v| v.op), Some(6));
}

#[test]
#[should_panic(expected = "before its call")]
fn a_return_before_the_call_is_a_bug_in_the_history() {
    run(&[put(0, 10, 5, "x", 1)]);
}

type KvOp = Operation<KvInput<&'static str, &'static str>, KvOutput<&'static str>>;

fn kv(history: &[KvOp]) -> CheckResult {
    check(&Kv::new(), history, Duration::from_secs(10))
}

fn kv_op(
    client: usize,
    call: u64,
    ret: u64,
    input: KvInput<&'static str, &'static str>,
    output: KvOutput<&'static str>,
) -> KvOp {
    Operation::ok(client, call, ret, input, output)
}

#[test]
fn kv_a_txn_cas_on_mod_revision_cannot_win_twice() {
    let guarded = |value| KvInput::TxnCas {
        key: "k",
        compare: KvCompare::ModRevision(3),
        value,
    };
    let history = [
        kv_op(
            0,
            0,
            10,
            KvInput::Put {
                key: "k",
                value: "a",
            },
            KvOutput::Put { revision: Some(3) },
        ),
        kv_op(
            1,
            20,
            40,
            guarded("b"),
            KvOutput::TxnCas {
                succeeded: true,
                revision: Some(7),
            },
        ),
        kv_op(
            2,
            25,
            45,
            guarded("c"),
            KvOutput::TxnCas {
                succeeded: true,
                revision: Some(8),
            },
        ),
    ];
    let v = kv(&history).violation().cloned().expect("a double win");
    assert_eq!(v.op, 2);
    assert_eq!(states(&v), vec!["revision >= 7: \"k\"=\"b\" @7"]);
    let mut fixed = history.clone();
    fixed[2].output = Some(KvOutput::TxnCas {
        succeeded: false,
        revision: Some(8),
    });
    assert_eq!(kv(&fixed), CheckResult::Ok);
}

#[test]
fn kv_reads_see_values_revisions_and_deletes() {
    let get = |value, mod_revision| KvOutput::Get {
        value,
        mod_revision,
        revision: None,
    };
    let history = [
        kv_op(
            0,
            0,
            10,
            KvInput::Put {
                key: "k",
                value: "a",
            },
            KvOutput::Put { revision: Some(2) },
        ),
        Operation::indeterminate(
            1,
            12,
            30,
            KvInput::Put {
                key: "k",
                value: "b",
            },
        ),
        kv_op(2, 40, 50, KvInput::Get { key: "k" }, get(Some("b"), 5)),
        kv_op(
            0,
            60,
            70,
            KvInput::Delete { key: "k" },
            KvOutput::Delete {
                deleted: true,
                revision: None,
            },
        ),
        kv_op(2, 80, 90, KvInput::Get { key: "k" }, get(None, 0)),
        kv_op(
            1,
            95,
            99,
            KvInput::Put {
                key: "k",
                value: "c",
            },
            KvOutput::Put { revision: Some(7) },
        ),
    ];
    assert_eq!(kv(&history), CheckResult::Ok);
    let mut stale = history.clone();
    stale[4].output = Some(get(Some("b"), 5));
    assert_eq!(kv(&stale).violation().map(|v| v.op), Some(4));
    let mut wrong_revision = history.clone();
    wrong_revision[2].output = Some(get(Some("b"), 2));
    assert_eq!(kv(&wrong_revision).violation().map(|v| v.op), Some(2));
    let mut backwards = history;
    backwards[5].output = Some(KvOutput::Put { revision: Some(4) });
    assert_eq!(kv(&backwards).violation().map(|v| v.op), Some(5));
}

#[test]
fn kv_an_indeterminate_txn_may_have_won_on_a_revision_only_a_later_read_reveals() {
    let get = |value, mod_revision| KvOutput::Get {
        value: Some(value),
        mod_revision,
        revision: None,
    };
    let txn = KvInput::TxnCas {
        key: "k",
        compare: KvCompare::ModRevision(7),
        value: "c",
    };
    let history = [
        kv_op(
            0,
            0,
            10,
            KvInput::Put {
                key: "k",
                value: "a",
            },
            KvOutput::Put { revision: Some(3) },
        ),
        Operation::indeterminate(
            1,
            20,
            30,
            KvInput::Put {
                key: "k",
                value: "b",
            },
        ),
        Operation::indeterminate(2, 40, 50, txn),
        kv_op(0, 60, 70, KvInput::Get { key: "k" }, get("c", 9)),
    ];
    assert_eq!(
        kv(&history),
        CheckResult::Ok,
        "b got revision 7, then the txn won"
    );
    let mut too_early = history.clone();
    too_early[3].output = Some(get("c", 7));
    assert_eq!(kv(&too_early).violation().map(|v| v.op), Some(3));
}

/// Multi-key histories: keys are names, values numbers.
type MkOp = Operation<KvInput<&'static str, u64>, KvOutput<u64>>;

fn mk_put(client: usize, call: u64, ret: u64, key: &'static str, value: u64, rev: u64) -> MkOp {
    Operation::ok(
        client,
        call,
        ret,
        KvInput::Put { key, value },
        KvOutput::Put {
            revision: Some(rev),
        },
    )
}

fn mk_get(
    client: usize,
    call: u64,
    ret: u64,
    key: &'static str,
    read: (Option<u64>, u64),
    rev: u64,
) -> MkOp {
    Operation::ok(
        client,
        call,
        ret,
        KvInput::Get { key },
        KvOutput::Get {
            value: read.0,
            mod_revision: read.1,
            revision: Some(rev),
        },
    )
}

fn mk_range(
    client: usize,
    call: u64,
    ret: u64,
    keys: &[&'static str],
    reads: &[(Option<u64>, u64)],
    rev: u64,
) -> MkOp {
    Operation::ok(
        client,
        call,
        ret,
        KvInput::Range {
            keys: keys.to_vec(),
        },
        KvOutput::Range {
            revision: Some(rev),
            reads: reads.to_vec(),
        },
    )
}

/// `if a == expected then put(a, a_value), put(b, b_value) else get(b)`.
fn swap_both(expected: u64, a_value: u64, b_value: u64) -> KvInput<&'static str, u64> {
    KvInput::Txn {
        compare: vec![("a", KvCompare::Value(expected))],
        success: vec![
            KvTxnOp::Put {
                key: "a",
                value: a_value,
            },
            KvTxnOp::Put {
                key: "b",
                value: b_value,
            },
        ],
        failure: vec![KvTxnOp::Get { key: "b" }],
    }
}

fn both(history: &[MkOp]) -> [CheckResult; 2] {
    [
        check(&Kv::new(), history, Duration::from_secs(10)),
        check(&Kv::whole_store(), history, Duration::from_secs(10)),
    ]
}

fn culprits(history: &[MkOp]) -> [Option<usize>; 2] {
    both(history).map(|r| r.violation().map(|v| v.op))
}

#[test]
fn kv_a_range_that_sees_half_of_a_txn_is_caught() {
    let won = KvOutput::Txn {
        succeeded: true,
        revision: Some(4),
        results: vec![KvTxnResult::Put, KvTxnResult::Put],
    };
    let history = [
        mk_put(0, 0, 10, "a", 1, 2),
        mk_put(0, 20, 30, "b", 1, 3),
        Operation::ok(1, 40, 60, swap_both(1, 10, 20), won),
        mk_range(2, 45, 55, &["a", "b"], &[(Some(10), 4), (Some(1), 3)], 4),
    ];
    assert_eq!(culprits(&history), [Some(3), Some(3)]);
    let v = check(&Kv::new(), &history, Duration::from_secs(10));
    let v = v.violation().expect("a torn read");
    assert_eq!(v.partition, "keys [\"a\", \"b\"]");
    let text = v.to_string();
    assert!(
        text.contains("txn(if \"a\" == 1 then [put(\"a\", 10), put(\"b\", 20)] else [get(\"b\")])"),
        "{text}"
    );
    assert!(text.contains("range([\"a\", \"b\"])"), "{text}");
    let mut before = history.clone();
    before[3] = mk_range(2, 45, 55, &["a", "b"], &[(Some(1), 2), (Some(1), 3)], 3);
    assert!(both(&before).iter().all(CheckResult::is_ok));
    let mut after = history.clone();
    after[3] = mk_range(2, 45, 55, &["a", "b"], &[(Some(10), 4), (Some(20), 4)], 4);
    assert!(both(&after).iter().all(CheckResult::is_ok));
}

#[test]
fn kv_an_indeterminate_multi_key_txn_takes_effect_on_every_key_or_none() {
    let history = [
        mk_put(0, 0, 10, "a", 1, 2),
        mk_put(0, 20, 30, "b", 1, 3),
        Operation::indeterminate(1, 40, 60, swap_both(1, 10, 20)),
        mk_get(2, 70, 80, "a", (Some(10), 4), 4),
        mk_get(2, 90, 100, "b", (Some(1), 3), 4),
    ];
    assert_eq!(culprits(&history), [Some(4), Some(4)]);
    let mut all = history.clone();
    all[4] = mk_get(2, 90, 100, "b", (Some(20), 4), 4);
    assert!(both(&all).iter().all(CheckResult::is_ok));
    let mut none = history.clone();
    none[3] = mk_get(2, 70, 80, "a", (Some(1), 2), 3);
    none[4] = mk_get(2, 90, 100, "b", (Some(1), 3), 3);
    assert!(both(&none).iter().all(CheckResult::is_ok));
}

#[test]
fn kv_a_failed_txn_reads_the_current_state_of_another_key() {
    let lost = KvOutput::Txn {
        succeeded: false,
        revision: Some(4),
        results: vec![KvTxnResult::Get {
            value: Some(1),
            mod_revision: 3,
        }],
    };
    let history = [
        mk_put(0, 0, 10, "a", 1, 2),
        mk_put(0, 20, 30, "b", 1, 3),
        mk_put(0, 40, 50, "b", 2, 4),
        Operation::ok(1, 60, 70, swap_both(7, 10, 20), lost),
    ];
    assert_eq!(culprits(&history), [Some(3), Some(3)]);
}

#[test]
fn kv_header_revisions_order_reads_across_linked_keys() {
    // The read of "a" comes after the write of "b" at revision 3, so it
    // cannot be served at revision 2.
    let history = [
        mk_put(0, 0, 10, "a", 1, 2),
        mk_put(0, 20, 30, "b", 1, 3),
        mk_get(1, 40, 50, "a", (Some(1), 2), 2),
        mk_range(1, 60, 70, &["a", "b"], &[(Some(1), 2), (Some(1), 3)], 3),
    ];
    assert_eq!(culprits(&history), [Some(2), Some(2)]);
    // Without an operation linking the keys, each key is checked on its
    // own and the lower bounds cannot see it; counting exactly still does.
    let unlinked = &history[..3];
    assert_eq!(culprits(unlinked), [None, Some(2)]);
    assert_eq!(Kv::new().partition(unlinked).len(), 2);
}

#[test]
fn kv_counting_revisions_exactly_needs_every_write() {
    let history = [mk_put(0, 0, 10, "a", 1, 2), mk_put(0, 20, 30, "a", 2, 4)];
    assert_eq!(culprits(&history), [None, Some(1)]);
    // A lost write to another key may have taken revision 3.
    let with_lost = [
        history[0].clone(),
        Operation::indeterminate(1, 5, 15, KvInput::Put { key: "z", value: 9 }),
        history[1].clone(),
    ];
    assert!(both(&with_lost).iter().all(CheckResult::is_ok));
    // A delete of an absent key changes nothing, so it takes no revision.
    let noop_delete = [
        mk_put(0, 0, 10, "a", 1, 2),
        Operation::ok(
            1,
            20,
            30,
            KvInput::Delete { key: "z" },
            KvOutput::Delete {
                deleted: false,
                revision: Some(2),
            },
        ),
        mk_put(0, 40, 50, "a", 2, 3),
    ];
    assert!(both(&noop_delete).iter().all(CheckResult::is_ok));
    let mut bumped = noop_delete.clone();
    bumped[1].output = Some(KvOutput::Delete {
        deleted: false,
        revision: Some(3),
    });
    assert_eq!(culprits(&bumped), [None, Some(1)]);
}

#[test]
fn kv_keys_are_partitioned_by_the_operations_that_link_them() {
    let history = [
        mk_put(0, 0, 10, "c", 1, 2),
        mk_put(0, 0, 10, "a", 1, 3),
        mk_get(1, 20, 30, "b", (None, 0), 3),
        mk_range(1, 40, 50, &[], &[], 3),
        Operation::indeterminate(2, 20, 30, swap_both(1, 2, 3)),
        mk_get(1, 60, 70, "d", (None, 0), 3),
    ];
    let labels: Vec<(String, Vec<usize>)> = Kv::new()
        .partition(&history)
        .into_iter()
        .map(|p| (p.label, p.ops))
        .collect();
    assert_eq!(
        labels,
        vec![
            ("keys [\"a\", \"b\"]".to_string(), vec![1, 2, 4]),
            ("key \"c\"".to_string(), vec![0]),
            ("key \"d\"".to_string(), vec![5]),
            ("no key".to_string(), vec![3]),
        ]
    );
    assert_eq!(
        Kv::whole_store().partition(&history),
        vec![Partition {
            label: "whole history".to_string(),
            ops: (0..6).collect()
        }]
    );
    assert!(both(&history).iter().all(CheckResult::is_ok));
}

#[test]
fn kv_running_out_of_budget_gives_unknown_never_ok() {
    // Concurrent writes that did not report their revisions, then a read of
    // a value no one wrote: proving it takes every subset of the writes.
    let mut history: Vec<MkOp> = (0..24)
        .map(|i| {
            let input = KvInput::Put {
                key: "a",
                value: i as u64,
            };
            Operation::ok(
                i,
                i as u64,
                1000 + i as u64,
                input,
                KvOutput::Put { revision: None },
            )
        })
        .collect();
    history.push(mk_range(
        99,
        500,
        2000,
        &["a", "b"],
        &[(Some(1_000_000), 7), (None, 0)],
        9,
    ));
    for result in [
        check(&Kv::new(), &history, Budget::steps(10_000)),
        check(&Kv::whole_store(), &history, Budget::steps(10_000)),
    ] {
        assert!(matches!(result, CheckResult::Unknown { .. }), "{result}");
        assert!(!result.is_ok());
    }
    let small = &history[20..];
    assert_eq!(culprits(small), [Some(4), Some(4)]);
}

#[test]
fn kv_a_thousand_operations_over_three_keys_are_ok_in_both_modes() {
    let config = SynthConfig {
        keys: 3,
        clients: 4,
        indeterminate_per_mille: 30,
        ..SynthConfig::new(3, 1000)
    };
    let history = kv_history(&config);
    assert!(history.iter().any(|op| !op.is_determinate()));
    assert!(history
        .iter()
        .any(|op| matches!(op.input, KvInput::Txn { .. })));
    assert_eq!(
        check(&Kv::new(), &history, Duration::from_secs(60)),
        CheckResult::Ok
    );
    assert_eq!(
        check(&Kv::whole_store(), &history, Duration::from_secs(60)),
        CheckResult::Ok
    );
}

/// Two registers written together: a multi-key model, checked as a whole.
struct Pair;

#[derive(Debug, Clone, PartialEq, Eq)]
enum PairOp {
    WriteBoth(u64),
    ReadBoth,
}

impl Model for Pair {
    type Input = PairOp;
    type Output = Option<(u64, u64)>;
    type State = (u64, u64);

    fn init(&self) -> (u64, u64) {
        (0, 0)
    }

    fn step(
        &self,
        state: &(u64, u64),
        input: &PairOp,
        output: Option<&Option<(u64, u64)>>,
        next: &mut Vec<(u64, u64)>,
    ) {
        match (input, output) {
            (PairOp::WriteBoth(v), _) => next.push((*v, *v)),
            (PairOp::ReadBoth, Some(Some(read))) if read != state => {}
            (PairOp::ReadBoth, _) => next.push(*state),
        }
    }
}

#[test]
fn a_multi_key_model_is_checked_without_partitioning() {
    let history = [
        Operation::ok(0, 0, 10, PairOp::WriteBoth(1), None),
        Operation::ok(1, 5, 15, PairOp::ReadBoth, Some((0, 0))),
        Operation::ok(1, 20, 30, PairOp::ReadBoth, Some((1, 0))),
    ];
    let result = check(&Pair, &history, Duration::from_secs(10));
    let v = result.violation().expect("a torn read");
    assert_eq!(v.partition, "whole history");
    assert_eq!(v.op, 2);
    assert_eq!(states(v), vec!["(1, 1)"]);
}

#[test]
fn ten_thousand_operations_over_eight_keys_are_ok() {
    let history = register_history(&SynthConfig::new(1, 10_000));
    assert_eq!(history.len(), 10_000);
    assert!(history.iter().any(|op| !op.is_determinate()));
    let result = check(&Register::new(), &history, Duration::from_secs(120));
    assert_eq!(result, CheckResult::Ok);
}

/// Lost writes that all happened long before, or never: a failing check
/// must not try every subset of them.
#[test]
fn many_lost_writes_do_not_make_a_violation_exponential() {
    let mut history: Vec<Op> = (0..40)
        .map(|i| lost_put(i, i as u64, "x", i as u64 % 5))
        .collect();
    history.extend((0..40).map(|i| lost_put(50 + i, 50 + i as u64, "x", 100 + i as u64)));
    history.push(put(99, 1000, 1010, "x", 7));
    history.push(get(99, 1020, 1030, "x", Some(7)));
    history.push(get(99, 1040, 1050, "x", Some(1_000)));
    let result = check(&Register::new(), &history, Budget::steps(2_000_000));
    assert_eq!(result.violation().map(|v| v.op), Some(82), "{result}");
    history.pop();
    history.push(get(99, 1040, 1050, "x", Some(139)));
    let result = check(&Register::new(), &history, Budget::steps(2_000_000));
    assert_eq!(result, CheckResult::Ok);
}

/// Whether `history` has a linearization, by trying every order of every
/// subset of its indeterminate operations: slow and obviously right, to
/// check the real search against.
fn brute_force<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> bool {
    fn go<M: Model>(
        model: &M,
        history: &[Operation<M::Input, M::Output>],
        used: &mut Vec<bool>,
        state: &M::State,
    ) -> bool {
        let done =
            |used: &[bool]| (0..history.len()).all(|i| used[i] || !history[i].is_determinate());
        if done(used) {
            return true;
        }
        for i in 0..history.len() {
            // `j` must come first if it returned before `i` was called.
            let ready = !used[i]
                && (0..history.len()).all(|j| {
                    used[j]
                        || !history[j].is_determinate()
                        || history[j].return_ns >= history[i].call_ns
                });
            if !ready {
                continue;
            }
            let mut next = Vec::new();
            model.step(
                state,
                &history[i].input,
                history[i].output.as_ref(),
                &mut next,
            );
            for successor in next {
                used[i] = true;
                let found = go(model, history, used, &successor);
                used[i] = false;
                if found {
                    return true;
                }
            }
        }
        false
    }
    go(
        model,
        history,
        &mut vec![false; history.len()],
        &model.init(),
    )
}

fn arbitrary_register_op(
) -> impl Strategy<Value = Operation<RegisterInput<u8, u8>, RegisterOutput<u8>>> {
    let value = || prop::option::of(0u8..3);
    let input = prop_oneof![
        Just(RegisterInput::Get { key: 0 }),
        (0u8..3).prop_map(|value| RegisterInput::Put { key: 0, value }),
        (value(), 0u8..3).prop_map(|(expected, new)| RegisterInput::Cas {
            key: 0,
            expected,
            new
        }),
    ];
    (input, value(), any::<bool>(), 0u64..20, 0u64..8, 0u8..4).prop_map(
        |(input, read, swapped, call, length, lost)| {
            let output = match input {
                RegisterInput::Get { .. } => RegisterOutput::Get(read),
                RegisterInput::Put { .. } => RegisterOutput::Put,
                RegisterInput::Cas { .. } => RegisterOutput::Cas(swapped),
            };
            Operation {
                client_id: 0,
                input,
                output: (lost != 0).then_some(output),
                call_ns: call,
                return_ns: call + length,
            }
        },
    )
}

fn arbitrary_kv_op() -> impl Strategy<Value = Operation<KvInput<u8, u8>, KvOutput<u8>>> {
    let key = || 0u8..2;
    let compare = || {
        prop_oneof![
            (0u8..2).prop_map(KvCompare::Value),
            (0u64..5).prop_map(KvCompare::ModRevision),
        ]
    };
    let txn_op = || {
        prop_oneof![
            (key(), 0u8..2).prop_map(|(key, value)| KvTxnOp::Put { key, value }),
            key().prop_map(|key| KvTxnOp::Delete { key }),
            key().prop_map(|key| KvTxnOp::Get { key }),
        ]
    };
    let input = prop_oneof![
        (key(), 0u8..2).prop_map(|(key, value)| KvInput::Put { key, value }),
        key().prop_map(|key| KvInput::Get { key }),
        key().prop_map(|key| KvInput::Delete { key }),
        (key(), compare(), 0u8..2).prop_map(|(key, compare, value)| KvInput::TxnCas {
            key,
            compare,
            value
        }),
        (
            key(),
            compare(),
            prop::collection::vec(txn_op(), 0..3),
            prop::collection::vec(txn_op(), 0..2)
        )
            .prop_map(|(key, compare, success, failure)| KvInput::Txn {
                compare: vec![(key, compare)],
                success,
                failure,
            }),
        Just(KvInput::Range { keys: vec![0, 1] }),
    ];
    let read = (prop::option::of(0u8..2), 1u64..6, any::<bool>());
    (
        input,
        prop::option::weighted(0.8, 1u64..6),
        any::<bool>(),
        prop::collection::vec(read, 3),
        (0u64..20, 0u64..8, 0u8..3),
    )
        .prop_map(|(input, header, flag, reads, (call, length, lost))| {
            let read = |i: usize| {
                let (value, revision, _) = reads[i];
                (value, if value.is_some() { revision } else { 0 })
            };
            let output = match &input {
                KvInput::Put { .. } => KvOutput::Put { revision: header },
                KvInput::Get { .. } => KvOutput::Get {
                    value: read(0).0,
                    mod_revision: read(0).1,
                    revision: header,
                },
                KvInput::Delete { .. } => KvOutput::Delete {
                    deleted: flag,
                    revision: header,
                },
                KvInput::TxnCas { .. } => KvOutput::TxnCas {
                    succeeded: flag,
                    revision: header,
                },
                KvInput::Txn {
                    success, failure, ..
                } => {
                    let branch = if flag { success } else { failure };
                    let recorded = reads[2].2;
                    KvOutput::Txn {
                        succeeded: flag,
                        revision: header,
                        results: branch
                            .iter()
                            .enumerate()
                            .filter(|_| recorded)
                            .map(|(i, op)| match op {
                                KvTxnOp::Put { .. } => KvTxnResult::Put,
                                KvTxnOp::Delete { .. } => KvTxnResult::Delete {
                                    deleted: reads[i].2,
                                },
                                KvTxnOp::Get { .. } => KvTxnResult::Get {
                                    value: read(i).0,
                                    mod_revision: read(i).1,
                                },
                            })
                            .collect(),
                    }
                }
                KvInput::Range { .. } => KvOutput::Range {
                    revision: header,
                    reads: vec![read(0), read(1)],
                },
            };
            Operation {
                client_id: 0,
                input,
                output: (lost != 0).then_some(output),
                call_ns: call,
                return_ns: call + length,
            }
        })
}

/// A sequential history of a real register: each operation returns before
/// the next is called.
fn sequential(
    script: &[(u8, u8, u64)],
) -> Vec<Operation<RegisterInput<u8, u64>, RegisterOutput<u64>>> {
    let mut registers: HashMap<u8, u64> = HashMap::new();
    script
        .iter()
        .enumerate()
        .map(|(i, &(key, kind, value))| {
            let current = registers.get(&key).copied();
            let (input, output) = match kind {
                0 => (RegisterInput::Get { key }, RegisterOutput::Get(current)),
                1 => {
                    registers.insert(key, value);
                    (RegisterInput::Put { key, value }, RegisterOutput::Put)
                }
                _ => {
                    let expected = (value % 2 == 0).then_some(value);
                    let swapped = expected == current;
                    if swapped {
                        registers.insert(key, value + 1);
                    }
                    let input = RegisterInput::Cas {
                        key,
                        expected,
                        new: value + 1,
                    };
                    (input, RegisterOutput::Cas(swapped))
                }
            };
            let t = i as u64 * 10;
            Operation::ok(i % 3, t, t + 5, input, output)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sequential_register_histories_are_ok_until_a_read_is_perturbed(
        script in prop::collection::vec((0u8..3, 0u8..3, 0u64..4), 1..60),
        pick in any::<prop::sample::Index>(),
        delta in 1u64..5,
    ) {
        let mut history = sequential(&script);
        prop_assert_eq!(check(&Register::new(), &history, Duration::from_secs(10)), CheckResult::Ok);
        let reads: Vec<usize> = (0..history.len())
            .filter(|&i| matches!(history[i].output, Some(RegisterOutput::Get(_))))
            .collect();
        prop_assume!(!reads.is_empty());
        let read = reads[pick.index(reads.len())];
        let Some(RegisterOutput::Get(seen)) = history[read].output else { unreachable!() };
        let wrong = match (seen, delta) {
            (None, _) => Some(delta),
            (Some(_), 4) => None,
            (Some(v), _) => Some(v + delta),
        };
        history[read].output = Some(RegisterOutput::Get(wrong));
        let result = check(&Register::new(), &history, Duration::from_secs(10));
        let v = result.violation().expect("a sequential read of the wrong value");
        prop_assert_eq!(v.op, read);
        prop_assert!(v.minimal);
    }

    #[test]
    fn the_search_agrees_with_brute_force_on_registers(
        history in prop::collection::vec(arbitrary_register_op(), 0..7),
    ) {
        let result = check(&Register::new(), &history, Budget::unlimited());
        prop_assert_eq!(result.is_ok(), brute_force(&Register::new(), &history), "{}", result);
        if let CheckResult::Illegal(v) = result {
            prop_assert!(v.minimal);
            prop_assert!(history[v.op].is_determinate());
            // The prefix up to the culprit's return event, and the one just
            // before it (at equal times, returns go in history order).
            let up_to = history[v.op].return_ns;
            let prefix = |including: bool| -> Vec<_> {
                history
                    .iter()
                    .enumerate()
                    .filter(|(_, op)| op.call_ns <= up_to)
                    .map(|(i, op)| {
                        let returned = op.return_ns < up_to
                            || (op.return_ns == up_to && (i < v.op || (including && i == v.op)));
                        Operation { output: op.output.clone().filter(|_| returned), ..op.clone() }
                    })
                    .collect()
            };
            prop_assert!(!brute_force(&Register::new(), &prefix(true)), "the prefix up to the culprit's return fails");
            prop_assert!(brute_force(&Register::new(), &prefix(false)), "the prefix before the culprit's return is linearizable");
        }
    }

    #[test]
    fn the_search_agrees_with_brute_force_on_kv(
        history in prop::collection::vec(arbitrary_kv_op(), 0..7),
    ) {
        // Parts share no key, but the store's revision is global, so the
        // parts are what `Kv::new` promises to check.
        let model = Kv::new();
        let result = check(&model, &history, Budget::unlimited());
        let parts_ok = model.partition(&history).iter().all(|part| {
            let ops: Vec<_> = part.ops.iter().map(|&i| history[i].clone()).collect();
            brute_force(&model, &ops)
        });
        prop_assert_eq!(result.is_ok(), parts_ok, "{}", result);
        let exact = Kv::whole_store();
        let result = check(&exact, &history, Budget::unlimited());
        prop_assert_eq!(result.is_ok(), brute_force(&exact, &history), "{}", result);
    }

    #[test]
    fn concurrent_histories_of_a_correct_etcd_store_are_ok_until_a_read_is_perturbed(
        seed in any::<u64>(),
        keys in 1u8..4,
        clients in 1usize..6,
        values in 1u64..5,
        lost in 0u64..100,
        pick in any::<prop::sample::Index>(),
    ) {
        let config = SynthConfig { seed, ops: 200, keys, clients, indeterminate_per_mille: lost, values };
        let mut history = kv_history(&config);
        prop_assert_eq!(check(&Kv::new(), &history, Duration::from_secs(30)), CheckResult::Ok);
        prop_assert_eq!(check(&Kv::whole_store(), &history, Duration::from_secs(30)), CheckResult::Ok);
        let reads: Vec<usize> = (0..history.len())
            .filter(|&i| matches!(history[i].output, Some(KvOutput::Get { value: Some(_), .. } | KvOutput::Range { .. })))
            .collect();
        prop_assume!(!reads.is_empty());
        let read = reads[pick.index(reads.len())];
        // A value no one wrote (at a revision that is as plausible as any).
        match history[read].output.as_mut() {
            Some(KvOutput::Get { value, .. }) => *value = Some(u64::MAX),
            Some(KvOutput::Range { reads, .. }) => reads[0] = (Some(u64::MAX), 1),
            _ => unreachable!("picked among reads"),
        }
        for result in [
            check(&Kv::new(), &history, Duration::from_secs(30)),
            check(&Kv::whole_store(), &history, Duration::from_secs(30)),
        ] {
            let v = result.violation().expect("a read of a value never written");
            prop_assert_eq!(v.op, read);
        }
    }

    #[test]
    fn concurrent_histories_of_a_correct_register_are_ok(
        seed in any::<u64>(),
        keys in 1u8..4,
        clients in 1usize..7,
        values in 1u64..5,
        lost in 0u64..200,
    ) {
        let config = SynthConfig { seed, ops: 300, keys, clients, indeterminate_per_mille: lost, values };
        let history = register_history(&config);
        prop_assert_eq!(check(&Register::new(), &history, Duration::from_secs(30)), CheckResult::Ok);
    }
}
