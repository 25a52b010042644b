//! Histories that are linearizable by construction, with real concurrency:
//! clients issue overlapping operations, each takes effect at a point inside
//! its interval on a correct per-key register, and some lose their answer
//! (and may take effect after the client gave up, or never). The checker's
//! tests use them to show it accepts correct histories, and its performance
//! is measured on them. Deterministic: the same config gives the same
//! history.

use super::history::Operation;
use super::register::{RegisterInput, RegisterOutput};

/// A register history's operation.
pub type RegisterOp = Operation<RegisterInput<u8, u64>, RegisterOutput<u64>>;

#[derive(Debug, Clone)]
pub struct SynthConfig {
    pub seed: u64,
    pub ops: usize,
    pub keys: u8,
    /// Each client has one operation outstanding at a time.
    pub clients: usize,
    /// Operations whose answer is lost, per thousand.
    pub indeterminate_per_mille: u64,
    /// Values are drawn from `0..values` (few values: many equal states).
    pub values: u64,
}

impl SynthConfig {
    /// 8 clients on 8 keys with 1% of answers lost.
    pub fn new(seed: u64, ops: usize) -> Self {
        SynthConfig {
            seed,
            ops,
            keys: 8,
            clients: 8,
            indeterminate_per_mille: 10,
            values: 1_000_000,
        }
    }
}

/// SplitMix64: small, fast, and enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.next() % n
    }
}

struct Timing {
    client_id: usize,
    key: u8,
    call: u64,
    ret: u64,
    /// When it takes effect (may be after `ret` if the answer is lost).
    effect: u64,
    lost: bool,
}

/// A linearizable register history as configured.
pub fn register_history(config: &SynthConfig) -> Vec<RegisterOp> {
    assert!(config.clients > 0 && config.keys > 0 && config.values > 0);
    let mut rng = Rng(config.seed);
    let mut client_time = vec![0u64; config.clients];
    let mut timings = Vec::with_capacity(config.ops);
    for _ in 0..config.ops {
        let client_id = (0..config.clients)
            .min_by_key(|&c| (client_time[c], c))
            .expect("at least one client");
        let call = client_time[client_id] + rng.below(50);
        let duration = 10 + rng.below(200);
        let lost = rng.below(1000) < config.indeterminate_per_mille;
        let effect = call + rng.below(if lost { 3 * duration } else { duration + 1 });
        timings.push(Timing {
            client_id,
            key: rng.below(config.keys.into()) as u8,
            call,
            ret: call + duration,
            effect,
            lost,
        });
        client_time[client_id] = call + duration;
    }
    let mut order: Vec<usize> = (0..timings.len()).collect();
    order.sort_by_key(|&i| (timings[i].effect, i));
    let mut registers: Vec<Option<u64>> = vec![None; config.keys.into()];
    let mut ops: Vec<Option<RegisterOp>> = (0..timings.len()).map(|_| None).collect();
    for i in order {
        let t = &timings[i];
        let register = &mut registers[usize::from(t.key)];
        let (input, output) = match rng.below(10) {
            0..=3 => (
                RegisterInput::Get { key: t.key },
                RegisterOutput::Get(*register),
            ),
            4..=6 => {
                let value = rng.below(config.values);
                (
                    RegisterInput::Put { key: t.key, value },
                    RegisterOutput::Put,
                )
            }
            _ => {
                // Half the time the client expects what is there, as after
                // a read.
                let expected = if rng.below(2) == 0 {
                    *register
                } else {
                    Some(rng.below(config.values))
                };
                let new = rng.below(config.values);
                let swapped = expected == *register;
                (
                    RegisterInput::Cas {
                        key: t.key,
                        expected,
                        new,
                    },
                    RegisterOutput::Cas(swapped),
                )
            }
        };
        // A lost answer's operation takes effect half the time.
        let takes_effect = !t.lost || rng.below(2) == 0;
        if takes_effect {
            match &input {
                RegisterInput::Put { value, .. } => *register = Some(*value),
                RegisterInput::Cas { new, .. } if output == RegisterOutput::Cas(true) => {
                    *register = Some(*new)
                }
                _ => {}
            }
        }
        ops[i] = Some(if t.lost {
            Operation::indeterminate(t.client_id, t.call, t.ret, input)
        } else {
            Operation::ok(t.client_id, t.call, t.ret, input, output)
        });
    }
    ops.into_iter()
        .map(|op| op.expect("every operation was built in the loop above"))
        .collect()
}
