//! The Raft messages an election takes (seed 004's "number of packets"
//! distribution): pre-vote and vote requests and their responses, counted
//! the same way for both systems, at the Raft layer, as the sender emits
//! them (a request to the crashed member counts, as it would on a network).
//! Rafter exports the counts on `/metrics`
//! (`rafter_raft_messages_sent_total{type=...}`); etcd 3.4 exports no
//! message counter, but its raft module logs every vote request it sends
//! and every vote it casts or rejects, so its log is counted instead.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Election messages sent by one member (or a sum of members).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MessageTally {
    pub pre_vote_requests: u64,
    pub pre_vote_responses: u64,
    pub vote_requests: u64,
    pub vote_responses: u64,
}

impl MessageTally {
    pub fn total(&self) -> u64 {
        self.pre_vote_requests + self.pre_vote_responses + self.vote_requests + self.vote_responses
    }

    pub fn add(&mut self, other: &MessageTally) {
        self.pre_vote_requests += other.pre_vote_requests;
        self.pre_vote_responses += other.pre_vote_responses;
        self.vote_requests += other.vote_requests;
        self.vote_responses += other.vote_responses;
    }

    /// What was sent after `earlier` (counters only grow within a process).
    pub fn since(&self, earlier: &MessageTally) -> MessageTally {
        MessageTally {
            pre_vote_requests: self
                .pre_vote_requests
                .saturating_sub(earlier.pre_vote_requests),
            pre_vote_responses: self
                .pre_vote_responses
                .saturating_sub(earlier.pre_vote_responses),
            vote_requests: self.vote_requests.saturating_sub(earlier.vote_requests),
            vote_responses: self.vote_responses.saturating_sub(earlier.vote_responses),
        }
    }

    /// From Rafter's Prometheus text.
    pub fn from_rafter_metrics(text: &str) -> MessageTally {
        let mut tally = MessageTally::default();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("rafter_raft_messages_sent_total{type=\"") else {
                continue;
            };
            let Some((kind, value)) = rest.split_once("\"}") else {
                continue;
            };
            let count: u64 = value.trim().parse().unwrap_or(0);
            match kind {
                "MsgRequestPreVote" => tally.pre_vote_requests += count,
                "MsgRequestPreVoteResponse" => tally.pre_vote_responses += count,
                "MsgRequestVote" => tally.vote_requests += count,
                "MsgRequestVoteResponse" => tally.vote_responses += count,
                _ => {}
            }
        }
        tally
    }

    /// From an etcd 3.4 log: etcd's raft logs `sent MsgPreVote request to`
    /// for each request and `cast MsgVote for` / `rejected MsgVote from`
    /// for each response it sends.
    pub fn from_etcd_log(text: &str) -> MessageTally {
        let mut tally = MessageTally::default();
        for line in text.lines() {
            if line.contains("sent MsgPreVote request") {
                tally.pre_vote_requests += 1;
            } else if line.contains("sent MsgVote request") {
                tally.vote_requests += 1;
            } else if line.contains("cast MsgPreVote for")
                || line.contains("rejected MsgPreVote from")
            {
                tally.pre_vote_responses += 1;
            } else if line.contains("cast MsgVote for") || line.contains("rejected MsgVote from") {
                tally.vote_responses += 1;
            }
        }
        tally
    }
}

/// The distribution of messages per election over many trials.
#[derive(Debug, Clone, Serialize)]
pub struct MessageFigures {
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub max: u64,
    pub mean: f64,
    /// How many elections took each number of messages.
    pub histogram: BTreeMap<u64, usize>,
    /// Mean of each kind per election.
    pub mean_by_kind: BTreeMap<&'static str, f64>,
}

impl MessageFigures {
    pub fn of(tallies: &[MessageTally]) -> MessageFigures {
        let mut totals: Vec<u64> = tallies.iter().map(MessageTally::total).collect();
        totals.sort_unstable();
        let at = |quantile: f64| {
            if totals.is_empty() {
                return 0;
            }
            let rank = ((quantile * totals.len() as f64).ceil() as usize).clamp(1, totals.len());
            totals[rank - 1]
        };
        let mut histogram = BTreeMap::new();
        for total in &totals {
            *histogram.entry(*total).or_insert(0) += 1;
        }
        let count = tallies.len().max(1) as f64;
        let mean_of = |pick: fn(&MessageTally) -> u64| {
            (tallies.iter().map(pick).sum::<u64>() as f64 / count * 100.0).round() / 100.0
        };
        let mean_by_kind = BTreeMap::from([
            ("pre_vote_requests", mean_of(|t| t.pre_vote_requests)),
            ("pre_vote_responses", mean_of(|t| t.pre_vote_responses)),
            ("vote_requests", mean_of(|t| t.vote_requests)),
            ("vote_responses", mean_of(|t| t.vote_responses)),
        ]);
        MessageFigures {
            min: totals.first().copied().unwrap_or(0),
            p50: at(0.5),
            p90: at(0.9),
            max: totals.last().copied().unwrap_or(0),
            mean: mean_of(MessageTally::total),
            histogram,
            mean_by_kind,
        }
    }
}

/// Fetches `/metrics` from a Rafter member's metrics port with one plain
/// HTTP/1.1 request (the endpoint closes the connection after answering).
pub async fn fetch_metrics(port: u16, timeout: Duration) -> Result<String, String> {
    let fetch = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect to metrics port {port}: {e}"))?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| format!("send to metrics port {port}: {e}"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("read metrics port {port}: {e}"))?;
        let text = String::from_utf8_lossy(&response).into_owned();
        match text.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
            _ => Err(format!("metrics port {port} answered: {text:.80}")),
        }
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| format!("metrics port {port} did not answer within {timeout:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rafter_metrics() {
        let text = "# HELP rafter_raft_messages_sent_total Raft messages sent to peers, by type.\n\
            # TYPE rafter_raft_messages_sent_total counter\n\
            rafter_raft_messages_sent_total{type=\"MsgHeartbeat\"} 900\n\
            rafter_raft_messages_sent_total{type=\"MsgRequestVote\"} 2\n\
            rafter_raft_messages_sent_total{type=\"MsgRequestVoteResponse\"} 1\n\
            rafter_raft_messages_sent_total{type=\"MsgRequestPreVote\"} 4\n\
            rafter_raft_messages_sent_total{type=\"MsgRequestPreVoteResponse\"} 3\n\
            rafter_raft_term 7\n";
        let tally = MessageTally::from_rafter_metrics(text);
        assert_eq!(
            tally,
            MessageTally {
                pre_vote_requests: 4,
                pre_vote_responses: 3,
                vote_requests: 2,
                vote_responses: 1
            }
        );
        assert_eq!(tally.total(), 10);
    }

    #[test]
    fn parses_etcd_log() {
        let text = "\
raft2026/12/02 03:08:33 INFO: 6678 [logterm: 1, index: 3] sent MsgPreVote request to 8989 at term 1
raft2026/12/02 03:08:33 INFO: 6678 [logterm: 1, index: 3] sent MsgVote request to 8989 at term 2
raft2026/12/02 03:08:33 INFO: 6678 [logterm: 1, index: 3] sent MsgVote request to 1de1 at term 2
raft2026/12/02 03:08:33 INFO: raft.node: 6678 elected leader 6678 at term 2
raft2026/12/02 03:08:33 INFO: 1de1 [logterm: 1, index: 3, vote: 0] cast MsgPreVote for 6678 [logterm: 1, index: 3] at term 1
raft2026/12/02 03:08:33 INFO: 1de1 [logterm: 1, index: 3, vote: 0] rejected MsgPreVote from 6678 [logterm: 1, index: 3] at term 1
raft2026/12/02 03:08:33 INFO: 1de1 [logterm: 1, index: 3, vote: 0] cast MsgVote for 6678 [logterm: 1, index: 3] at term 2
raft2026/12/02 03:08:33 INFO: 1de1 [logterm: 1, index: 3, vote: 1] ignored MsgVote from 6678 [logterm: 1, index: 3] at term 2: lease is not expired
";
        assert_eq!(
            MessageTally::from_etcd_log(text),
            MessageTally {
                pre_vote_requests: 1,
                pre_vote_responses: 2,
                vote_requests: 2,
                vote_responses: 1
            }
        );
    }

    #[test]
    fn differences_and_distribution() {
        let before = MessageTally {
            pre_vote_requests: 10,
            ..Default::default()
        };
        let after = MessageTally {
            pre_vote_requests: 12,
            pre_vote_responses: 1,
            vote_requests: 2,
            vote_responses: 1,
        };
        let election = after.since(&before);
        assert_eq!(election.total(), 6);
        let mut twice = election;
        twice.add(&election);
        let figures = MessageFigures::of(&[election, election, twice]);
        assert_eq!((figures.min, figures.p50, figures.max), (6, 6, 12));
        assert_eq!(figures.histogram, BTreeMap::from([(6, 2), (12, 1)]));
        assert_eq!(figures.mean, 8.0);
        assert_eq!(figures.mean_by_kind["vote_requests"], 2.67);
    }
}
