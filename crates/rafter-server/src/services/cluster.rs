//! `etcdserverpb.Cluster`: the membership the store records (founding
//! members, then every applied change) with the names and client URLs
//! members published, and etcd's four membership changes. A change is
//! decided by the leader (it alone knows whether a learner has caught up
//! and whether another change is in flight), so a follower forwards the
//! RPC to the leader's client URL, as etcd forwards promotions; removing
//! the leader first hands leadership to another voter.

use std::time::{SystemTime, UNIX_EPOCH};

use rafter_core::membership::{Membership, MembershipError};
use rafter_proto::etcdserverpb::cluster_client::ClusterClient;
use rafter_proto::etcdserverpb::cluster_server::Cluster;
use rafter_proto::etcdserverpb::*;
use rafter_proto::rafterpb::membership_change::Kind;
use rafter_proto::rafterpb::{MemberAttributes, MembershipChange};
use tonic::{Code, Request, Response, Status};

use crate::error::ApiError;
use crate::handle::NodeHandle;

/// Metadata on an RPC a follower forwarded (never forwarded again).
const FORWARDED: &str = "rafter-forwarded";

pub struct ClusterService {
    node: NodeHandle,
    /// The founding members from the flags: listed when the store records
    /// no membership (a data directory from before membership changes).
    members: Vec<Member>,
}

impl ClusterService {
    pub fn new(node: NodeHandle, members: Vec<Member>) -> Self {
        ClusterService { node, members }
    }
}

fn to_member(r: &MemberAttributes) -> Member {
    Member {
        id: r.member_id,
        name: r.name.clone(),
        peer_ur_ls: r.peer_urls.clone(),
        client_ur_ls: r.client_urls.clone(),
        is_learner: r.is_learner,
    }
}

impl ClusterService {
    fn records(&self) -> Result<Vec<MemberAttributes>, Status> {
        Ok(self
            .node
            .store
            .member_attributes()
            .map_err(ApiError::from)?)
    }

    /// The members as etcd lists them. Members publish their attributes
    /// right after a leader appears; while a leader is known, wait briefly
    /// (bounded by ATTRIBUTES_WAIT) for the founding members', so a new
    /// cluster lists them all.
    async fn current_members(&self) -> Result<Vec<Member>, Status> {
        let deadline = tokio::time::Instant::now() + ATTRIBUTES_WAIT;
        loop {
            let records = self.records()?;
            let has_leader = self
                .node
                .status
                .leader_id
                .load(std::sync::atomic::Ordering::Relaxed)
                != 0;
            let published = |id: u64| {
                records
                    .iter()
                    .any(|r| r.member_id == id && !r.client_urls.is_empty())
            };
            let complete = self.members.iter().all(|m| published(m.id));
            if complete || !has_leader || tokio::time::Instant::now() >= deadline {
                let membership = Membership::new(records.clone());
                if membership.is_empty() {
                    let mut members = self.members.clone();
                    for m in &mut members {
                        if let Some(r) = records.iter().find(|r| r.member_id == m.id) {
                            m.client_ur_ls = r.client_urls.clone();
                        }
                    }
                    return Ok(members);
                }
                return Ok(membership.members().map(to_member).collect());
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    fn header(&self) -> ResponseHeader {
        let revision = self.node.store.state().map_or(0, |s| s.current_revision);
        self.node.header(revision)
    }

    fn leader_id(&self) -> u64 {
        self.node
            .status
            .leader_id
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A client to the leader, when this member is not the leader and the
    /// request was not forwarded already.
    async fn leader_client<T>(
        &self,
        request: &Request<T>,
    ) -> Result<Option<ClusterClient<tonic::transport::Channel>>, Status> {
        self.leader_client_after(request.metadata().contains_key(FORWARDED))
            .await
    }

    /// [`ClusterService::leader_client`]; `forwarded`: the request came
    /// from another member already.
    async fn leader_client_after(
        &self,
        forwarded: bool,
    ) -> Result<Option<ClusterClient<tonic::transport::Channel>>, Status> {
        // A member that just started may not know the leader yet: wait
        // for one (bounded by the request timeout).
        let deadline = tokio::time::Instant::now() + self.node.request_timeout;
        let mut leader = self.leader_id();
        while leader == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            leader = self.leader_id();
        }
        if leader == self.node.member_id {
            return Ok(None);
        }
        if leader == 0 {
            return Err(ApiError::NoLeader.into());
        }
        if forwarded {
            return Err(ApiError::NotLeader.into());
        }
        let url = self
            .records()?
            .into_iter()
            .find(|r| r.member_id == leader)
            .and_then(|r| r.client_urls.first().cloned())
            .ok_or_else(|| Status::from(ApiError::NoLeader))?;
        let channel = tonic::transport::Endpoint::from_shared(url)
            .map_err(|e| Status::internal(e.to_string()))?
            .connect_timeout(std::time::Duration::from_secs(1))
            .timeout(self.node.request_timeout)
            .connect()
            .await
            .map_err(|_| Status::from(ApiError::NoLeader))?;
        Ok(Some(ClusterClient::new(channel)))
    }

    /// The membership this member's store holds.
    fn membership(&self) -> Result<Membership, Status> {
        Ok(Membership::new(self.records()?))
    }

    /// The current members, as etcd lists them.
    fn members_now(&self) -> Result<Vec<Member>, Status> {
        Ok(self.membership()?.members().map(to_member).collect())
    }

    /// Proposes a change of one member and answers with the members once
    /// it is applied. While another change is in flight (or a new leader
    /// has not applied its log yet, which raft-rs counts as one), it waits
    /// for it, up to the request timeout.
    async fn change(&self, kind: Kind, member: MemberAttributes) -> Result<Vec<Member>, Status> {
        let change = MembershipChange {
            kind: kind as i32,
            members: vec![member],
        };
        let deadline = tokio::time::Instant::now() + self.node.request_timeout;
        loop {
            match self.node.change_membership(change.clone()).await {
                Err(ApiError::Membership(MembershipError::InProgress))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                other => {
                    other?;
                    return self.members_now();
                }
            }
        }
    }

    /// etcd's strict reconfiguration check: after adding a voter
    /// (`joining`, not started yet) or removing voter `leaving`, the
    /// started voters must be a quorum (a one-member cluster may always
    /// grow, as etcd allows).
    fn check_started_quorum(&self, joining: bool, leaving: Option<u64>) -> Result<(), Status> {
        let membership = self.membership()?;
        let voters: Vec<&MemberAttributes> = membership
            .members()
            .filter(|m| !m.is_learner && Some(m.member_id) != leaving)
            .collect();
        let total = voters.len() + usize::from(joining);
        let started = voters.iter().filter(|m| !m.client_urls.is_empty()).count();
        if started < total / 2 + 1 && !(joining && started == 1 && total == 2) {
            return Err(ApiError::Membership(MembershipError::NotEnoughStarted).into());
        }
        Ok(())
    }
}

/// Longest a leader that is being removed waits for another voter to take
/// over before removing itself in place.
const TRANSFER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Longest MemberList waits for members' attributes to be published.
const ATTRIBUTES_WAIT: std::time::Duration = std::time::Duration::from_millis(1000);

fn forwarded<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    request
}

/// etcd's check of peer URLs: each an absolute http(s) URL with a host and
/// port and no path.
fn valid_peer_urls(urls: &[String]) -> bool {
    !urls.is_empty()
        && urls.iter().all(|u| {
            let rest = u
                .strip_prefix("http://")
                .or_else(|| u.strip_prefix("https://"));
            rest.is_some_and(|hostport| {
                !hostport.contains('/')
                    && hostport
                        .rsplit_once(':')
                        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
            })
        })
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if request.get_ref().linearizable {
            self.node.read_barrier().await?;
        }
        let members = self.current_members().await?;
        Ok(Response::new(MemberListResponse {
            header: Some(self.header()),
            members,
        }))
    }

    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        if !valid_peer_urls(&request.get_ref().peer_ur_ls) {
            return Err(ApiError::Membership(MembershipError::BadUrls).into());
        }
        if let Some(mut leader) = self.leader_client(&request).await? {
            return leader.member_add(forwarded(request.into_inner())).await;
        }
        let r = request.into_inner();
        if !r.is_learner {
            self.check_started_quorum(true, None)?;
        }
        let unix_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let added = MemberAttributes {
            member_id: crate::ids::added_member_id(&r.peer_ur_ls, self.node.cluster_id, unix_s),
            peer_urls: r.peer_ur_ls.clone(),
            is_learner: r.is_learner,
            ..Default::default()
        };
        let members = self.change(Kind::Add, added.clone()).await?;
        Ok(Response::new(MemberAddResponse {
            header: Some(self.header()),
            member: Some(to_member(&added)),
            members,
        }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        let id = request.get_ref().id;
        let mut already_forwarded = request.metadata().contains_key(FORWARDED);
        if id == self.node.member_id && self.leader_id() == id {
            // The leader is removed: hand leadership to the active voter
            // with the most of the log first (target 0: the core picks),
            // then let the new leader remove it.
            let others = self
                .membership()?
                .members()
                .any(|m| !m.is_learner && m.member_id != id);
            if others {
                match tokio::time::timeout(TRANSFER_WAIT, self.node.transfer_leader(0)).await {
                    // This member handed leadership on: one more hop is due.
                    Ok(Ok(())) => already_forwarded = false,
                    // The transferee did not take over (it may be down):
                    // remove this leader in place; it stops once the
                    // removal is applied and the others elect a leader.
                    Ok(Err(e)) => tracing::warn!("leadership transfer before removal failed: {e}"),
                    Err(_) => tracing::warn!(
                        "leadership transfer before removal took over {TRANSFER_WAIT:?}; removing in place"
                    ),
                }
            }
        }
        let deadline = tokio::time::Instant::now() + self.node.request_timeout;
        loop {
            let answer = match self.leader_client_after(already_forwarded).await {
                Ok(Some(mut leader)) => leader.member_remove(forwarded(*request.get_ref())).await,
                Ok(None) => break,
                Err(e) => Err(e),
            };
            match answer {
                Ok(answer) => return Ok(answer),
                // The leader may be the member removed: it exits once the
                // removal is applied, perhaps before its answer is out, and
                // a new leader that applied it answers "not found". Once
                // this member's store shows the removal, it succeeded.
                Err(s) if tokio::time::Instant::now() < deadline => {
                    let membership = self.membership()?;
                    if membership.is_removed(id) {
                        return Ok(Response::new(MemberRemoveResponse {
                            header: Some(self.header()),
                            members: self.members_now()?,
                        }));
                    }
                    let still_listed = membership.get(id).is_some();
                    let retriable = match s.code() {
                        Code::Unknown | Code::Unavailable | Code::Cancelled => true,
                        // Removed there, not yet here.
                        Code::NotFound => still_listed,
                        _ => false,
                    };
                    if !retriable {
                        return Err(s);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(s) => return Err(s),
            }
        }
        if self.membership()?.get(id).is_some_and(|t| !t.is_learner) {
            self.check_started_quorum(false, Some(id))?;
        }
        let removed = MemberAttributes {
            member_id: id,
            ..Default::default()
        };
        let members = self.change(Kind::Remove, removed).await?;
        Ok(Response::new(MemberRemoveResponse {
            header: Some(self.header()),
            members,
        }))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        if !valid_peer_urls(&request.get_ref().peer_ur_ls) {
            return Err(ApiError::Membership(MembershipError::BadUrls).into());
        }
        if let Some(mut leader) = self.leader_client(&request).await? {
            return leader.member_update(forwarded(request.into_inner())).await;
        }
        let r = request.into_inner();
        let updated = MemberAttributes {
            member_id: r.id,
            peer_urls: r.peer_ur_ls,
            ..Default::default()
        };
        let members = self.change(Kind::Update, updated).await?;
        Ok(Response::new(MemberUpdateResponse {
            header: Some(self.header()),
            members,
        }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        if let Some(mut leader) = self.leader_client(&request).await? {
            return leader.member_promote(forwarded(request.into_inner())).await;
        }
        let id = request.get_ref().id;
        let promoted = MemberAttributes {
            member_id: id,
            ..Default::default()
        };
        let members = self.change(Kind::Promote, promoted).await?;
        Ok(Response::new(MemberPromoteResponse {
            header: Some(self.header()),
            members,
        }))
    }
}
