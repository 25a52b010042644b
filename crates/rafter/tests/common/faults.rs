//! The faults multi-process tests inject into a cluster of real members,
//! by name: `kill` (SIGKILL, then a restart), `pause` (SIGSTOP, then
//! SIGCONT) or `cut` (cut off from its peers, then healed), of the
//! `leader` or a `follower`, e.g. "pause follower".
#![allow(dead_code)]

use std::time::{Duration, Instant};

use super::cluster::Cluster;

/// Sends `signal` to the member's process.
pub fn signal(cluster: &Cluster, member: usize, signal: libc::c_int) {
    let pid = cluster.pid(member).expect("the member runs") as libc::pid_t;
    // SAFETY: kill(2) with the pid of our own child process.
    let result = unsafe { libc::kill(pid, signal) };
    assert_eq!(result, 0, "signal {signal} to {}", cluster.name(member));
}

/// Injects `fault` for `length`, undoes it, and returns the member it hit.
/// Prints what it does, timed from `started`.
pub async fn inject(
    cluster: &mut Cluster,
    fault: &str,
    length: Duration,
    started: Instant,
) -> usize {
    let victim = if fault.ends_with("leader") {
        cluster.leader().await
    } else {
        cluster.followers().await[0]
    };
    println!(
        "{:?}: {fault} ({})",
        started.elapsed(),
        cluster.name(victim)
    );
    if fault.starts_with("kill") {
        cluster.kill9(victim);
        tokio::time::sleep(length).await;
        cluster.restart(victim).await;
    } else if fault.starts_with("cut") {
        cluster.cut_off(victim, true);
        tokio::time::sleep(length).await;
        cluster.cut_off(victim, false);
    } else if fault.starts_with("pause") {
        signal(cluster, victim, libc::SIGSTOP);
        tokio::time::sleep(length).await;
        signal(cluster, victim, libc::SIGCONT);
    } else {
        panic!("unknown fault {fault:?}");
    }
    victim
}
