//! Who this member is and which cluster it belongs to, decided once when
//! its data directory is created and kept in `member/identity` (as etcd
//! keeps them in its WAL metadata). A founding member derives both from its
//! flags; a member that joins an existing cluster learns them from the
//! cluster, since the id a `MemberAdd` picked cannot be derived.

use std::path::Path;

use rafter_proto::rafterpb::raft_peer_client::RaftPeerClient;
use rafter_proto::rafterpb::{MemberAttributes, MembersRequest};

/// A member's id and its cluster's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub member_id: u64,
    pub cluster_id: u64,
}

const FILE: &str = "identity";

impl Identity {
    /// The identity recorded in `member_dir`, if any.
    pub fn load(member_dir: &Path) -> Result<Option<Identity>, String> {
        let path = member_dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        let parse = |field: &str| -> Result<u64, String> {
            text.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                .ok_or_else(|| format!("{} has no valid {field}", path.display()))
        };
        Ok(Some(Identity {
            member_id: parse("member_id=")?,
            cluster_id: parse("cluster_id=")?,
        }))
    }

    /// Records the identity durably (write, fsync, rename, fsync the
    /// directory), so a crash leaves either none or this one.
    pub fn save(&self, member_dir: &Path) -> Result<(), std::io::Error> {
        use std::io::Write;
        let tmp = member_dir.join(format!("{FILE}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "member_id={:x}", self.member_id)?;
        writeln!(f, "cluster_id={:x}", self.cluster_id)?;
        f.sync_all()?;
        std::fs::rename(&tmp, member_dir.join(FILE))?;
        std::fs::File::open(member_dir)?.sync_all()
    }
}

/// How long a joining member keeps asking the cluster for its membership.
const JOIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Asks the members at `peer_urls` for the cluster's membership and finds
/// this member (`my_peer_urls`) in it: it must have been added first
/// (`MemberAdd`), as etcd requires.
pub async fn join(
    peer_urls: &[String],
    my_peer_urls: &[String],
) -> Result<(Identity, Vec<MemberAttributes>), String> {
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let mut last_error = String::from("no peer URLs in --initial-cluster besides this member");
    loop {
        for url in peer_urls {
            match ask(url).await {
                Ok((cluster_id, members)) => {
                    let mine = members.iter().find(|m| {
                        rafter_core::membership::is_member(m)
                            && m.peer_urls.iter().any(|u| my_peer_urls.contains(u))
                    });
                    match mine {
                        Some(m) => {
                            return Ok((
                                Identity {
                                    member_id: m.member_id,
                                    cluster_id,
                                },
                                members,
                            ))
                        }
                        // This peer may not have applied the addition yet:
                        // ask the others, and again until the deadline.
                        None => {
                            last_error = format!(
                            "the cluster at {url} has no member with peer URLs {my_peer_urls:?}: \
                                 add it first (rafter member add / etcdctl member add)"
                        )
                        }
                    }
                }
                Err(e) => last_error = format!("{url}: {e}"),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "could not reach the existing cluster to join it: {last_error}"
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn ask(url: &str) -> Result<(u64, Vec<MemberAttributes>), String> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| e.to_string())?
        .connect_timeout(std::time::Duration::from_millis(500))
        .timeout(std::time::Duration::from_secs(2));
    let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
    let answer = RaftPeerClient::new(channel)
        .members(MembersRequest {})
        .await
        .map_err(|e| e.message().to_string())?
        .into_inner();
    Ok((answer.cluster_id, answer.members))
}
