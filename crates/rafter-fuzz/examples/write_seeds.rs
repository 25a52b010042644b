//! Writes every target's seeds into `<dir>/<target>/` (libFuzzer's corpus
//! directories), for `scripts/fuzz.sh`.

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .expect("usage: write_seeds DIR");
    for (name, _) in rafter_fuzz::TARGETS {
        let target_dir = dir.join(name);
        std::fs::create_dir_all(&target_dir).expect("create the corpus directory");
        for (i, seed) in rafter_fuzz::seeds(name).iter().enumerate() {
            std::fs::write(target_dir.join(format!("seed-{i}")), seed).expect("write a seed");
        }
    }
}
