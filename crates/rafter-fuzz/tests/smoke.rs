//! The CI smoke run of every fuzz target: its seeds, the inputs that once
//! found a bug (`regressions/<target>/`), and a few thousand deterministic
//! mutations of them (bit flips, truncations, insertions, splices, random
//! bytes). The long runs are libFuzzer's (`scripts/fuzz.sh`).

use std::path::Path;

/// Mutations per seed in the smoke run.
const MUTATIONS_PER_SEED: usize = 5_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !bytes.is_empty() => {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
            1 if !bytes.is_empty() => {
                let at = rng.below(bytes.len());
                bytes[at] = rng.next() as u8;
            }
            2 => bytes.truncate(rng.below(bytes.len() + 1)),
            3 => {
                let at = rng.below(bytes.len() + 1);
                let extra: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
                bytes.splice(at..at, extra);
            }
            4 if !other.is_empty() => {
                let from = rng.below(other.len());
                let to = from + rng.below(other.len() - from + 1);
                let at = rng.below(bytes.len() + 1);
                bytes.splice(at..at, other[from..to].iter().copied());
            }
            _ => bytes = (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
        }
    }
    bytes
}

fn regressions(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .map(|e| std::fs::read(e.expect("an entry").path()).expect("a regression input"))
        .collect()
}

#[test]
fn every_target_survives_its_seeds_regressions_and_mutations() {
    for (name, target) in rafter_fuzz::TARGETS {
        let mut inputs = rafter_fuzz::seeds(name);
        inputs.extend(regressions(name));
        assert!(!inputs.is_empty(), "{name} has no seed");
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut runs = 0;
        for seed in &inputs {
            target(seed);
            runs += 1;
            for _ in 0..MUTATIONS_PER_SEED {
                let other = &inputs[rng.below(inputs.len())];
                target(&mutate(&mut rng, seed, other));
                runs += 1;
            }
        }
        println!("{name}: {runs} inputs");
    }
}

#[test]
fn seeds_are_accepted_by_their_decoders() {
    // A seed that does not even decode would make the mutations shallow.
    use prost::Message as _;
    for seed in rafter_fuzz::seeds("client_txn") {
        rafter_proto::etcdserverpb::TxnRequest::decode(seed.as_slice()).expect("a txn");
    }
    for seed in rafter_fuzz::seeds("peer_message") {
        rafter_core::wire::decode_message(&seed).expect("a peer message");
    }
    let file = &rafter_fuzz::seeds("snapshot_file")[0];
    rafter_storage::snapshot_file::decode(file).expect("a snapshot file");
    let text = &rafter_fuzz::seeds("txn_text")[0];
    rafter_cli::read_txn(&mut text.as_slice(), None).expect("a txn text");
}
