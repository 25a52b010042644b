//! Reading a long-running child's output while it runs (`etcdctl watch`,
//! `lock`, `elect`, `rafter lock`): stdout line by line through a channel,
//! so a test waits for a line with a deadline, and all of stderr collected
//! for failure messages.

use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::sync::{mpsc, Arc, Mutex};

/// Takes `child`'s stdout and stderr (both must be piped): returns the
/// stream of stdout lines and the stderr text read so far.
pub fn capture(child: &mut Child) -> (mpsc::Receiver<String>, Arc<Mutex<String>>) {
    let (sender, lines) = mpsc::channel();
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.stderr.take().expect("the child's stderr is piped");
    let sink = Arc::clone(&stderr);
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        sink.lock().unwrap().push_str(&text);
    });
    (lines, stderr)
}
