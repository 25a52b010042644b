//! CPU time spent by the server processes during a run, read from Linux's
//! `/proc/PID/stat` (user + system time of all threads). It exists so a
//! benchmark can report what each delivered watch event costs the server,
//! not only how fast it arrives: etcd and Rafter run on the same 2-core
//! machine as the load generator, so throughput alone hides how much of the
//! machine each one burns.
//!
//! The processes are given (`--server-pids`) or found: whoever listens on
//! the TCP port of a loopback endpoint (`/proc/net/tcp{,6}` socket inodes
//! matched against `/proc/*/fd`).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// Linux's `USER_HZ`: the unit of the times in `/proc/PID/stat` (100 on
/// every architecture Linux runs on today).
const CLOCK_TICKS_PER_S: u64 = 100;

/// TCP state LISTEN as `/proc/net/tcp` writes it.
const TCP_LISTEN: &str = "0A";

/// CPU time (user + system) a process has used so far, or `None` when it
/// is gone or `/proc` is not there.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_cpu(&stat)
}

/// The CPU time of this process (the load generator).
pub fn own_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    stat_cpu(&stat)
}

/// utime + stime of a `/proc/PID/stat` line. The command name (field 2) is
/// in parentheses and may hold spaces, so fields are counted after its `)`.
fn stat_cpu(stat: &str) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime_ticks: u64 = fields.get(11)?.parse().ok()?;
    let stime_ticks: u64 = fields.get(12)?.parse().ok()?;
    let ticks = utime_ticks + stime_ticks;
    Some(Duration::from_millis(ticks * 1000 / CLOCK_TICKS_PER_S))
}

/// Peak resident memory of a process so far (`VmHWM` of
/// `/proc/PID/status`) in KiB, or `None` when it is gone.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// Resident memory of a process now (`VmRSS`) in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field_kib(&status, field)
}

/// The value of a `Name:   1234 kB` line of `/proc/PID/status`.
fn status_field_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Total CPU time of `pids` so far (processes that are gone count 0).
pub fn total_cpu(pids: &[u32]) -> Duration {
    pids.iter().filter_map(|pid| process_cpu(*pid)).sum()
}

/// What a measured run cost: the servers' CPU time (all members), the load
/// generator's own, both per successful operation, and each server's peak
/// resident memory at the end of the run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CpuFigures {
    pub server_pids: Vec<u32>,
    pub server_cpu_ms: u64,
    pub server_cpu_us_per_op: f64,
    pub load_generator_cpu_ms: u64,
    pub load_generator_cpu_us_per_op: f64,
    /// `VmHWM` of each server process in `server_pids` order, KiB.
    pub server_peak_rss_kib: Vec<u64>,
}

/// CPU counters read at the start of a run, to subtract at its end.
pub struct CpuMeter {
    pids: Vec<u32>,
    server_before: Duration,
    own_before: Duration,
}

impl CpuMeter {
    /// Starts measuring `pids` (and this process).
    pub fn start(pids: Vec<u32>) -> Self {
        Self {
            server_before: total_cpu(&pids),
            own_before: own_cpu().unwrap_or_default(),
            pids,
        }
    }

    /// The cost since `start`, spread over `ops` successful operations;
    /// `None` when no server process was found (remote endpoints).
    pub fn finish(&self, ops: u64) -> Option<CpuFigures> {
        if self.pids.is_empty() {
            return None;
        }
        let server = total_cpu(&self.pids).saturating_sub(self.server_before);
        let own = own_cpu()
            .unwrap_or_default()
            .saturating_sub(self.own_before);
        let per_op = |d: Duration| {
            let us = d.as_micros() as f64 / ops.max(1) as f64;
            (us * 10.0).round() / 10.0
        };
        Some(CpuFigures {
            server_pids: self.pids.clone(),
            server_cpu_ms: server.as_millis() as u64,
            server_cpu_us_per_op: per_op(server),
            load_generator_cpu_ms: own.as_millis() as u64,
            load_generator_cpu_us_per_op: per_op(own),
            server_peak_rss_kib: self
                .pids
                .iter()
                .map(|pid| peak_rss_kib(*pid).unwrap_or_default())
                .collect(),
        })
    }
}

/// The processes listening on the ports of `endpoints` (host:port or
/// http://host:port) on this machine; empty when none is found.
pub fn find_listeners(endpoints: &[String]) -> Vec<u32> {
    let ports: BTreeSet<u16> = endpoints.iter().filter_map(|e| endpoint_port(e)).collect();
    if ports.is_empty() {
        return Vec::new();
    }
    let mut inodes = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, &ports));
        }
    }
    if inodes.is_empty() {
        return Vec::new();
    }
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if owns_socket(&entry.path(), &inodes) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// The port of an endpoint written `host:port` or `scheme://host:port/`.
fn endpoint_port(endpoint: &str) -> Option<u16> {
    let rest = endpoint.split("://").last()?;
    let authority = rest.split('/').next()?;
    authority.rsplit(':').next()?.parse().ok()
}

/// Socket inodes of `/proc/net/tcp` lines in LISTEN state on one of `ports`.
fn listening_inodes(table: &str, ports: &BTreeSet<u16>) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            if fields.get(3)? != &TCP_LISTEN || !ports.contains(&port) {
                return None;
            }
            fields.get(9)?.parse().ok()
        })
        .collect()
}

/// Whether the process at `/proc/PID` has one of the socket `inodes` open.
fn owns_socket(proc_dir: &Path, inodes: &BTreeSet<u64>) -> bool {
    let Ok(fds) = std::fs::read_dir(proc_dir.join("fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).ok().is_some_and(|target| {
            target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
                .is_some_and(|inode| inodes.contains(&inode))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_times_after_a_name_with_spaces() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4";
        assert_eq!(stat_cpu(stat), Some(Duration::from_millis(3000)));
        assert!(own_cpu().is_some());
    }

    #[test]
    fn reads_memory_figures() {
        let status = "Name:\tetcd\nVmHWM:\t   51234 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(status_field_kib(status, "VmHWM:"), Some(51234));
        assert_eq!(status_field_kib(status, "VmRSS:"), Some(40000));
        assert_eq!(status_field_kib(status, "VmSwap:"), None);
        assert!(peak_rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }

    #[test]
    fn finds_ports_and_listening_sockets() {
        assert_eq!(endpoint_port("127.0.0.1:2379"), Some(2379));
        assert_eq!(endpoint_port("http://127.0.0.1:23790"), Some(23790));
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:0953 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n\
   1: 0100007F:0953 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0 100 0 0 10 0\n";
        let ports = BTreeSet::from([2387]);
        assert_eq!(listening_inodes(table, &ports), vec![4242]);
    }

    #[test]
    fn finds_a_listener_of_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let pids = find_listeners(&[format!("127.0.0.1:{port}")]);
        assert_eq!(pids, vec![std::process::id()]);
    }
}
