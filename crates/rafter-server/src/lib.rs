//! Rafter's tokio shell around the sans-I/O core: it opens the data
//! directory, starts the Raft loop thread, and serves the etcd v3 gRPC API
//! (and the metrics/health HTTP endpoint) until stopped.

mod applier;
mod authority_fix;
pub mod config;
pub mod corrupt_check;
mod disk_full_alarm;
mod error;
mod fail_stop;
mod gateway;
mod grpc_limits;
mod grpc_metrics;
mod handle;
mod http;
pub mod identity;
pub mod ids;
mod lease_forward;
mod local_writes;
mod message_counts;
mod metrics;
mod node;
mod raft_timing;
mod services;
mod transport;
mod urls;
mod watcher;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use raft::eraftpb::ConfState;
use raft::Storage as _;
use rafter_core::{logger::raft_logger, MemberConfig, Node, NodeConfig};
use rafter_proto::etcdserverpb::{
    auth_server::AuthServer, cluster_server::ClusterServer, kv_server::KvServer,
    lease_server::LeaseServer, maintenance_server::MaintenanceServer, watch_server::WatchServer,
    Member as PbMember,
};
use rafter_proto::rafterpb::raft_peer_server::RaftPeerServer;
use rafter_proto::rafterpb::MemberAttributes as PbMemberAttributes;
use rafter_proto::v3electionpb::election_server::ElectionServer;
use rafter_proto::v3lockpb::lock_server::LockServer;
use rafter_storage::{MvccStore, RaftLog};

use config::ServeArgs;
use handle::NodeHandle;
use node::{NodeStatus, RaftLoop};

/// Pause between attempts to publish member attributes (short: a new
/// cluster should list every member's URLs as soon as it has a leader).
const PUBLISH_RETRY: Duration = Duration::from_millis(10);

/// How long a removed member lets answers in flight go out before it exits.
const REMOVED_EXIT_GRACE: Duration = Duration::from_millis(500);

/// etcd's allowance for gRPC framing on top of `--max-request-bytes`.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;
/// How often a leader records its elapsed time in the log while client
/// sessions are open (the only clock sessions expire by).
const CLUSTER_CLOCK_MS: u64 = 500;

/// Why the server could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("raft log: {0}")]
    RaftLog(#[from] rafter_storage::RaftLogError),
    #[error("state machine: {0}")]
    Store(#[from] rafter_storage::MvccError),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("grpc transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("raft loop stopped: {0}")]
    RaftLoop(String),
    #[error("{0}")]
    LocalQueue(#[from] rafter_storage::local_queue::LocalQueueError),
    /// The log and the store contradict each other.
    #[error("{0}")]
    Inconsistent(String),
    /// The store file cannot be opened: damaged, or unreadable.
    #[error(
        "the store {path} cannot be opened: {source}. If it is corrupt, remove this member \
         (rafter member remove / etcdctl member remove), delete its data directory and add it \
         again, or restore the cluster from a snapshot (rafter snapshot restore)"
    )]
    StoreOpen {
        path: String,
        source: rafter_storage::MvccError,
    },
}

/// Runs a member until SIGINT/SIGTERM.
pub fn run(args: ServeArgs) -> Result<(), ServerError> {
    fail_stop::install();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rafter-io")
        .build()?;
    rt.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> Result<(), ServerError> {
    let cluster = urls::ClusterSpec::from_args(&args).map_err(ServerError::Config)?;
    let timing = raft_timing::RaftTiming::from_ms(
        args.heartbeat_interval,
        args.election_timeout,
        args.election_timeout_max,
    )
    .map_err(ServerError::Config)?;
    let me = cluster.me();
    let data_dir = args.data_dir();
    let member_dir = data_dir.join("member");
    std::fs::create_dir_all(&member_dir)?;
    let store_path = member_dir.join("kv.redb");
    let store = Arc::new(
        MvccStore::open_with_cache(&store_path, args.store_cache_size_mb << 20).map_err(
            |source| ServerError::StoreOpen {
                path: store_path.display().to_string(),
                source,
            },
        )?,
    );
    let (log, recovery) =
        RaftLog::open_checked(&member_dir.join("raft"), store.state()?.applied_index)?;
    if let rafter_storage::LogRecovery::TornTailTruncated { file, offset } = &recovery {
        tracing::warn!(
            "the Raft log ended in a torn write (never acknowledged): {file} was cut at byte {offset}"
        );
    }
    let founders: Vec<PbMemberAttributes> = cluster
        .members
        .iter()
        .map(|m| PbMemberAttributes {
            member_id: ids::member_id(&m.peer_urls, &args.initial_cluster_token),
            name: m.name.clone(),
            peer_urls: m.peer_urls.clone(),
            ..Default::default()
        })
        .collect();
    let derived = identity::Identity {
        member_id: ids::member_id(&me.peer_urls, &args.initial_cluster_token),
        cluster_id: ids::cluster_id(&founders.iter().map(|m| m.member_id).collect::<Vec<_>>()),
    };
    // Who this member is, and whom to talk to before the store records a
    // membership (a new member, or one that has not caught up yet).
    let (identity, bootstrap_members) = match identity::Identity::load(&member_dir)
        .map_err(ServerError::Config)?
    {
        // A joining member that restarts before it caught up has no
        // membership yet: ask the cluster again for whom to talk to.
        Some(known)
            if args.initial_cluster_state == "existing"
                && store.member_attributes()?.is_empty() =>
        {
            let (_, members) = identity::join(&cluster.other_peer_urls(), &me.peer_urls)
                .await
                .map_err(ServerError::Config)?;
            (known, members)
        }
        Some(known) => (known, founders.clone()),
        // A data directory from before identities were recorded.
        None if !log.is_empty()? => (derived, founders.clone()),
        None => match args.initial_cluster_state.as_str() {
            "new" => {
                store.bootstrap_members(&founders)?;
                log.bootstrap_cluster(
                    &rafter_core::membership::Membership::new(founders.clone()).conf_state(),
                )?;
                derived.save(&member_dir)?;
                tracing::info!(member_id = %format!("{:x}", derived.member_id), "bootstrapped a new cluster");
                (derived, founders.clone())
            }
            "existing" => {
                let (joined, members) = identity::join(&cluster.other_peer_urls(), &me.peer_urls)
                    .await
                    .map_err(ServerError::Config)?;
                // The identity first: a restart finds it even if the crash
                // comes before the log is started.
                joined.save(&member_dir)?;
                log.bootstrap(&ConfState::default())?;
                tracing::info!(member_id = %format!("{:x}", joined.member_id), cluster_id = %format!("{:x}", joined.cluster_id), "joining an existing cluster");
                (joined, members)
            }
            other => {
                return Err(ServerError::Config(format!(
                    "--initial-cluster-state must be new or existing, not {other:?}"
                )))
            }
        },
    };
    let member_id = identity.member_id;
    let cluster_id = identity.cluster_id;
    if store
        .member_attributes()?
        .iter()
        .any(|r| r.member_id == member_id && r.removed)
    {
        return Err(ServerError::Config(format!(
            "the member has been permanently removed from the cluster (member {member_id:x}): \
             remove its data directory ({}) to add it again as a new member",
            data_dir.display()
        )));
    }
    if let Some(finished) = log.settle_pending_snapshot(store.state()?.applied_index)? {
        tracing::warn!(
            index = finished.index,
            term = finished.term,
            "finishing a snapshot install a crash interrupted: the store holds it, the log is cut to it now"
        );
    }
    let member_ids: Vec<u64> = founders.iter().map(|m| m.member_id).collect();
    let recorded = store.member_attributes()?;
    let membership = rafter_core::membership::Membership::new(recorded.clone());
    if !membership.is_empty() {
        // raft-rs starts from the configuration as of the applied index;
        // committed changes after it are applied again on replay.
        let conf_state = membership.conf_state();
        if log.conf_state()? != conf_state {
            log.set_conf_state(&conf_state)?;
        }
    }
    let initial_peers: Vec<PbMemberAttributes> = if membership.is_empty() {
        bootstrap_members
    } else {
        membership.members().cloned().collect()
    };
    let applied = store.state()?.applied_index;
    check_log_against_store(&log, applied, &member_dir)?;
    let (local_writes, queued_local_writes) = local_writes::LocalWrites::open(
        &member_dir,
        member_id,
        store.local_applied_seq(member_id)?,
    )?;
    let local_writes = Arc::new(local_writes);
    if !queued_local_writes.is_empty() {
        tracing::info!(
            writes = queued_local_writes.len(),
            "local writes from before the restart are queued for the log"
        );
    }
    // The store may have applied entries whose commit index the log's hard
    // state had not recorded yet (it is written lazily); they were committed,
    // so raise the recorded commit to match before raft-rs checks it.
    if let Some(hs) =
        rafter_core::node::restart_hard_state(&log.initial_state()?.hard_state, applied)
    {
        log.persist(&[], Some(&hs), true)?;
    }

    let compacted_index = raft::Storage::first_index(&log)? - 1;
    let request_timeout = Duration::from_millis(5000 + 2 * args.election_timeout);
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let node = Node::new(
        &NodeConfig {
            member: MemberConfig {
                id: member_id,
                election_tick: timing.election_tick,
                max_election_tick: timing.max_election_tick,
                heartbeat_tick: timing.heartbeat_tick,
                applied_index: applied,
                max_size_per_msg_bytes: 1024 * 1024,
                max_inflight_msgs: 256,
                rng_seed: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
            },
            snapshot_count: args.snapshot_count.max(1),
            // The handler gives up at `request_timeout`; the core forgets
            // the waiter a little later.
            request_timeout_ticks: (request_timeout.as_micros() as u64 / timing.tick_us.max(1))
                .max(1)
                * 2,
            first_command_id: ((member_id & 0xffff) << 48) | ((unix_ms & 0xff_ffff_ffff) << 8),
            compacted_index,
            lessor: rafter_core::lease::LessorConfig::new(
                timing.tick_us,
                timing.election_tick as u64,
            ),
            leases: store.leases()?,
            tick_us: timing.tick_us,
            cluster_clock_ms: CLUSTER_CLOCK_MS,
            sessions_open: store.sessions_open()?,
            local_writes: queued_local_writes,
            members: recorded,
        },
        rafter_storage::MemberStorage {
            log: log.clone(),
            sm: store.clone(),
        },
        &raft_logger(),
    )?;

    let status = Arc::new(NodeStatus::default());
    status
        .applied_index
        .store(applied, std::sync::atomic::Ordering::Relaxed);
    let (tx, rx) = std::sync::mpsc::channel();
    let peers: Vec<(u64, String)> = initial_peers
        .iter()
        .filter(|m| m.member_id != member_id && !m.peer_urls.is_empty())
        .map(|m| (m.member_id, m.peer_urls[0].clone()))
        .collect();
    let transport = transport::Transport::start(
        &tokio::runtime::Handle::current(),
        member_id,
        cluster_id,
        &peers,
        tx.clone(),
    );
    let (watch_shared, watch_feeder) = watcher::start(
        store.clone(),
        rafter_core::watch::WatchConfig {
            // etcd fragments at the request limit plus its gRPC allowance.
            max_request_bytes: args.max_request_bytes + GRPC_OVERHEAD_BYTES,
            ..Default::default()
        },
        args.experimental_watch_progress_notify_interval,
    )?;
    let (apply_tx, apply_thread) = applier::Applier {
        store: store.clone(),
        status: status.clone(),
        raft_tx: tx.clone(),
        applied_index: applied,
        watch: watch_feeder,
        member_id,
        local_writes: local_writes.clone(),
    }
    .spawn()?;
    let removed_members: services::peer::RemovedMembers = Arc::new(std::sync::RwLock::new(
        membership
            .records()
            .iter()
            .filter(|r| r.removed)
            .map(|r| r.member_id)
            .collect(),
    ));
    let raft_loop = RaftLoop {
        transport: Some(transport),
        node,
        log,
        status: status.clone(),
        tick_interval: Duration::from_micros(timing.tick_us),
        apply_tx,
        apply_thread,
        removed_members: removed_members.clone(),
        removed: false,
        removal_grace: Duration::from_micros(timing.tick_us * timing.heartbeat_tick as u64 * 10),
        stop_at: None,
    };
    let peer_service =
        services::peer::PeerService::new(cluster_id, tx.clone(), removed_members, store.clone());
    let shutdown_tx = tx.clone();
    let runtime = tokio::runtime::Handle::current();
    let alarm_store = store.clone();
    let raft_thread = std::thread::Builder::new()
        .name("rafter-raft".into())
        .spawn(move || {
            let result = raft_loop.run(rx);
            match &result {
                // A member that cannot persist or apply must not go on
                // answering clients (as etcd, which exits on such errors).
                Err(e) => {
                    tracing::error!("fatal: the member stops: {e}");
                    if disk_full_alarm::is_disk_full(e) {
                        disk_full_alarm::raise(&runtime, &alarm_store, member_id);
                    }
                    std::process::exit(1);
                }
                // A removed member stops serving (etcd exits too), after a
                // moment for answers in flight (its own removal's among
                // them) to go out; nothing can be proposed meanwhile.
                Ok(true) => {
                    tracing::warn!(
                        "the member has been permanently removed from the cluster; exiting"
                    );
                    std::thread::sleep(REMOVED_EXIT_GRACE);
                    std::process::exit(0);
                }
                Ok(false) => {}
            }
            result.map(|_| ())
        })?;

    // etcd's default request timeout: 5 s plus two election timeouts.
    let mut node = NodeHandle::new(
        tx,
        store,
        status,
        member_id,
        cluster_id,
        request_timeout,
        args.max_request_bytes,
        args.max_txn_ops,
        timing.tick_us,
    );
    node.quota_bytes = args.quota_bytes();
    {
        let node = node.clone();
        local_writes.start_committer(move |writes| node.queue_local_writes(writes))?;
    }
    let attributes = rafter_proto::rafterpb::MemberAttributes {
        member_id,
        name: args.name.clone(),
        client_urls: urls::split(&args.advertise_client_urls),
        ..Default::default()
    };
    let members: Vec<PbMember> = cluster
        .members
        .iter()
        .zip(&member_ids)
        .map(|(m, id)| PbMember {
            id: *id,
            name: m.name.clone(),
            peer_ur_ls: m.peer_urls.clone(),
            client_ur_ls: if *id == member_id {
                urls::split(&args.advertise_client_urls)
            } else {
                vec![]
            },
            is_learner: false,
        })
        .collect();

    let peer_server = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(
            RaftPeerServer::new(peer_service)
                .max_decoding_message_size(rafter_core::wire::MAX_PEER_MESSAGE_BYTES),
        );
    let peer_addr =
        urls::socket_addr(&urls::split(&args.listen_peer_urls)[0]).map_err(ServerError::Config)?;
    let peer_listener = tokio::net::TcpListener::bind(peer_addr).await?;
    // As etcd, publish this member's attributes in the background; client
    // traffic is served meanwhile.
    tokio::spawn(publish_attributes(node.clone(), attributes));
    tokio::spawn(corrupt_check::run(
        node.clone(),
        args.experimental_initial_corrupt_check,
        args.experimental_corrupt_check_time,
    ));
    let max_msg = args.max_request_bytes + GRPC_OVERHEAD_BYTES;
    let mut listeners = Vec::new();
    for url in urls::split(&args.listen_client_urls) {
        let addr = urls::socket_addr(&url).map_err(ServerError::Config)?;
        listeners.push((url, tokio::net::TcpListener::bind(addr).await?));
    }
    // Lock and Election run etcd's client-side concurrency recipes against
    // this member's own client port, as etcd's v3lock and v3election do.
    let self_client = match listeners.first() {
        Some((_, listener)) => {
            services::concurrency::SelfClient::connect_lazy(listener.local_addr()?)
        }
        None => return Err(ServerError::Config("no --listen-client-urls".into())),
    };
    let session_ids = std::sync::Arc::new(services::dial::SessionIds::new(
        ((member_id & 0x7fff) << 48) | ((unix_ms & 0xff_ffff) << 24),
    ));
    // One lease service (one id counter) for every listener and the gateway.
    let lease_service = services::lease::LeaseService::new(
        node.clone(),
        rafter_core::lease::min_lease_ttl_s(args.election_timeout),
        (((member_id & 0x7fff) << 48) | ((unix_ms & 0xff_ffff) << 24)) as i64,
    );
    let mut servers = Vec::new();
    for (url, listener) in listeners {
        tracing::info!("listening for client requests on {url}");
        let incoming = {
            use tokio_stream::StreamExt as _;
            no_delay(listener).map(|conn| conn.map(authority_fix::AuthorityFix::new))
        };
        // HTTP/1.1 beside gRPC on the same port: etcd's JSON gateway and
        // its health, metrics and version endpoints.
        let http_routes = gateway::router(gateway::Services {
            kv: services::kv::KvService::new(node.clone()),
            lease: lease_service.clone(),
            maintenance: services::maintenance::MaintenanceService::new(
                node.clone(),
                member_ids.clone(),
            ),
            cluster: services::cluster::ClusterService::new(node.clone(), members.clone()),
            watch: services::watch::WatchService::new(node.clone(), watch_shared.clone()),
        })
        .merge(http::router(node.clone()));
        let router = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .accept_http1(true)
            .layer(tower::util::MapResponseLayer::new(
                grpc_limits::etcd_style_oversize::<tonic::body::Body>,
            ))
            .layer(grpc_metrics::GrpcMetricsLayer::new(node.status.clone()))
            .add_routes(tonic::service::Routes::from(http_routes))
            .add_service(
                KvServer::new(services::kv::KvService::new(node.clone()))
                    .max_decoding_message_size(max_msg),
            )
            .add_service(
                WatchServer::new(services::watch::WatchService::new(
                    node.clone(),
                    watch_shared.clone(),
                ))
                .max_decoding_message_size(max_msg),
            )
            .add_service(LeaseServer::new(lease_service.clone()))
            .add_service(ClusterServer::new(services::cluster::ClusterService::new(
                node.clone(),
                members.clone(),
            )))
            .add_service(MaintenanceServer::new(
                services::maintenance::MaintenanceService::new(node.clone(), member_ids.clone()),
            ))
            .add_service(AuthServer::new(services::auth::AuthService::new(
                node.clone(),
            )))
            .add_service(LockServer::new(services::lock::LockService::new(
                self_client.clone(),
            )))
            .add_service(ElectionServer::new(
                services::election::ElectionService::new(self_client.clone()),
            ))
            .add_service(
                rafter_proto::rafterpb::dial_server::DialServer::new(
                    services::dial::DialService::new(
                        node.clone(),
                        session_ids.clone(),
                        local_writes.clone(),
                    ),
                )
                .max_decoding_message_size(max_msg),
            )
            .add_service(
                rafter_proto::rafterpb::conflicts_server::ConflictsServer::new(
                    services::conflicts::ConflictsService::new(node.clone()),
                )
                .max_decoding_message_size(max_msg),
            );
        servers.push(tokio::spawn(
            router.serve_with_incoming_shutdown(incoming, shutdown_signal()),
        ));
    }
    tracing::info!("listening for peers on {}", args.listen_peer_urls);
    tokio::spawn(
        peer_server.serve_with_incoming_shutdown(no_delay(peer_listener), shutdown_signal()),
    );
    if let Some(metrics_urls) = &args.listen_metrics_urls {
        for url in urls::split(metrics_urls) {
            let addr = urls::socket_addr(&url).map_err(ServerError::Config)?;
            let listener = tokio::net::TcpListener::bind(addr).await?;
            tracing::info!("listening for metrics on {url}");
            tokio::spawn(http::serve(listener, node.clone()));
        }
    }
    tracing::info!(
        name = %args.name,
        member_id = %format!("{member_id:x}"),
        cluster_id = %format!("{cluster_id:x}"),
        data_dir = %data_dir.display(),
        "ready to serve client requests"
    );
    for s in servers {
        match s.await {
            Ok(r) => r?,
            Err(e) => return Err(ServerError::Config(format!("server task failed: {e}"))),
        }
    }
    tracing::info!("shutting down");
    let _ = shutdown_tx.send(node::NodeRequest::Shutdown);
    drop(node);
    let stopped = match raft_thread.join() {
        Ok(r) => r.map_err(ServerError::RaftLoop),
        Err(_) => Err(ServerError::RaftLoop("raft thread panicked".into())),
    };
    // A trim of the local write queue asked for by the last applies is done
    // before exit (else the next start does it).
    let _ = local_writes.flush();
    stopped
}

/// Refuses to start when the log and the store contradict each other
/// (raft-rs would otherwise stop the process with an assertion): the log
/// must hold every entry from just after the store's applied index (or the
/// store must have a snapshot past the log's start), and the recorded
/// commit index must be inside the log.
fn check_log_against_store(
    log: &RaftLog,
    applied_index: u64,
    member_dir: &std::path::Path,
) -> Result<(), ServerError> {
    let first_index = raft::Storage::first_index(log)?;
    let last_index = raft::Storage::last_index(log)?;
    let commit = log.initial_state()?.hard_state.commit;
    let problem = if applied_index + 1 < first_index {
        Some(format!(
            "the store applied up to index {applied_index} but the Raft log starts at {first_index}: \
             entries {}..{first_index} are in neither (a missing snapshot)",
            applied_index + 1
        ))
    } else if applied_index > last_index {
        Some(format!(
            "the store applied up to index {applied_index} but the Raft log ends at {last_index}: \
             the log lost entries it had made durable"
        ))
    } else if commit > last_index {
        Some(format!(
            "the Raft log records commit index {commit} but ends at {last_index}: \
             it lost entries it had made durable"
        ))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(ServerError::Inconsistent(format!(
            "{p} (data in {}). No file was changed. To recover, remove this member \
             (rafter member remove), delete its data directory and add it again, or restore \
             the cluster from a snapshot (rafter snapshot restore)",
            member_dir.display()
        ))),
    }
}

/// Publishes this member's name and client URLs through the log (retrying
/// until a leader commits it), so `MemberList` on any member shows them.
async fn publish_attributes(node: NodeHandle, attrs: rafter_proto::rafterpb::MemberAttributes) {
    loop {
        match node
            .propose(rafter_storage::KvRequest::MemberAttributes(attrs.clone()))
            .await
        {
            Ok(_) => {
                tracing::info!(client_urls = ?attrs.client_urls, "published member attributes");
                return;
            }
            Err(error::ApiError::Stopped) => return,
            Err(e) => {
                tracing::debug!("publishing member attributes: {e}; retrying");
                tokio::time::sleep(PUBLISH_RETRY).await;
            }
        }
    }
}

/// Accepted connections with Nagle's algorithm off. tonic applies its
/// `tcp_nodelay` only to listeners it binds itself; without this, small
/// responses wait for delayed ACKs (~40 ms).
fn no_delay(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt as _;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
        if let Ok(c) = &conn {
            if let Err(e) = c.set_nodelay(true) {
                tracing::debug!("TCP_NODELAY on an accepted connection: {e}");
            }
        }
        conn
    })
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
