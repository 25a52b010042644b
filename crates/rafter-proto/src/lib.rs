//! Wire types. Generated from `proto/` at build time; this crate exists so the
//! server, client and tests share one copy of the etcd v3 API definitions.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

/// Go's duration syntax, which etcd's flags (server and etcdctl) use.
pub mod godur;

/// Every message and service above as a protobuf `FileDescriptorSet`
/// (what the HTTP/JSON gateway maps JSON with).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

/// `mvccpb`: key-values and watch events.
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// `authpb`: users, roles, permissions.
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// `etcdserverpb`: the KV, Watch, Lease, Cluster, Maintenance and Auth services.
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// `v3lockpb`: the Lock service (etcd's server-side mutex).
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

/// `v3electionpb`: the Election service (etcd's server-side election).
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}

/// `rafterpb`: the commands Rafter replicates through its Raft log.
pub mod rafterpb {
    tonic::include_proto!("rafterpb");
}
