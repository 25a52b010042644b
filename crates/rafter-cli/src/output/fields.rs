//! The `fields` format: one `"Name" : value` line per response field, with
//! byte strings Go-quoted, for scripts that grep single fields.

use std::io::{self, Write};

use rafter_proto::etcdserverpb::{
    response_op::Response, DeleteRangeResponse, MemberListResponse, PutResponse, RangeResponse,
    ResponseHeader, TxnResponse, WatchResponse,
};
use rafter_proto::mvccpb::KeyValue;

use super::quote::go_quote;
use super::{EndpointHealth, EndpointStatus};

fn header(out: &mut dyn Write, h: Option<ResponseHeader>) -> io::Result<()> {
    let h = h.unwrap_or_default();
    writeln!(out, "\"ClusterID\" : {}", h.cluster_id)?;
    writeln!(out, "\"MemberID\" : {}", h.member_id)?;
    writeln!(out, "\"Revision\" : {}", h.revision)?;
    writeln!(out, "\"RaftTerm\" : {}", h.raft_term)
}

/// A key-value's fields, each name prefixed with `prefix` ("" or "Prev").
fn kv(out: &mut dyn Write, prefix: &str, kv: &KeyValue) -> io::Result<()> {
    writeln!(out, "\"{prefix}Key\" : {}", go_quote(&kv.key))?;
    writeln!(out, "\"{prefix}CreateRevision\" : {}", kv.create_revision)?;
    writeln!(out, "\"{prefix}ModRevision\" : {}", kv.mod_revision)?;
    writeln!(out, "\"{prefix}Version\" : {}", kv.version)?;
    writeln!(out, "\"{prefix}Value\" : {}", go_quote(&kv.value))?;
    writeln!(out, "\"{prefix}Lease\" : {}", kv.lease)
}

pub fn get(out: &mut dyn Write, r: &RangeResponse) -> io::Result<()> {
    header(out, r.header)?;
    for item in &r.kvs {
        kv(out, "", item)?;
    }
    writeln!(out, "\"More\" : {}", r.more)?;
    writeln!(out, "\"Count\" : {}", r.count)
}

pub fn put(out: &mut dyn Write, r: &PutResponse) -> io::Result<()> {
    header(out, r.header)?;
    if let Some(prev) = &r.prev_kv {
        kv(out, "Prev", prev)?;
    }
    Ok(())
}

pub fn del(out: &mut dyn Write, r: &DeleteRangeResponse) -> io::Result<()> {
    header(out, r.header)?;
    writeln!(out, "\"Deleted\" : {}", r.deleted)?;
    for prev in &r.prev_kvs {
        kv(out, "Prev", prev)?;
    }
    Ok(())
}

pub fn txn(out: &mut dyn Write, r: &TxnResponse) -> io::Result<()> {
    header(out, r.header)?;
    writeln!(out, "\"Succeeded\" : {}", r.succeeded)?;
    for op in &r.responses {
        match &op.response {
            Some(Response::ResponseRange(r)) => get(out, r)?,
            Some(Response::ResponsePut(r)) => put(out, r)?,
            Some(Response::ResponseDeleteRange(r)) => del(out, r)?,
            Some(Response::ResponseTxn(r)) => txn(out, r)?,
            None => {}
        }
    }
    Ok(())
}

pub fn watch(out: &mut dyn Write, r: &WatchResponse) -> io::Result<()> {
    header(out, r.header)?;
    for event in &r.events {
        writeln!(out, "\"Type\" : {}", super::event_type_name(event.r#type))?;
        if let Some(prev) = &event.prev_kv {
            kv(out, "Prev", prev)?;
        }
        kv(out, "", &event.kv.clone().unwrap_or_default())?;
    }
    Ok(())
}

pub fn member_list(out: &mut dyn Write, r: &MemberListResponse) -> io::Result<()> {
    header(out, r.header)?;
    for m in &r.members {
        writeln!(out, "\"ID\" : {}", m.id)?;
        writeln!(out, "\"Name\" : {}", go_quote(m.name.as_bytes()))?;
        for url in &m.peer_ur_ls {
            writeln!(out, "\"PeerURL\" : {}", go_quote(url.as_bytes()))?;
        }
        for url in &m.client_ur_ls {
            writeln!(out, "\"ClientURL\" : {}", go_quote(url.as_bytes()))?;
        }
        writeln!(out, "\"IsLearner\" : {}", m.is_learner)?;
        writeln!(out)?;
    }
    Ok(())
}

pub fn endpoint_status(out: &mut dyn Write, list: &[EndpointStatus]) -> io::Result<()> {
    for e in list {
        let s = &e.status;
        header(out, s.header)?;
        writeln!(out, "\"Version\" : {}", go_quote(s.version.as_bytes()))?;
        writeln!(out, "\"DBSize\" : {}", s.db_size)?;
        writeln!(out, "\"Leader\" : {}", s.leader)?;
        writeln!(out, "\"IsLearner\" : {}", s.is_learner)?;
        writeln!(out, "\"RaftIndex\" : {}", s.raft_index)?;
        writeln!(out, "\"RaftTerm\" : {}", s.raft_term)?;
        writeln!(out, "\"RaftAppliedIndex\" : {}", s.raft_applied_index)?;
        writeln!(out, "\"Errors\" : [{}]", s.errors.join(" "))?;
        writeln!(out, "\"Endpoint\" : {}", go_quote(e.endpoint.as_bytes()))?;
        writeln!(out)?;
    }
    Ok(())
}

pub fn endpoint_health(out: &mut dyn Write, list: &[EndpointHealth]) -> io::Result<()> {
    for h in list {
        writeln!(out, "\"Endpoint\" : {}", go_quote(h.endpoint.as_bytes()))?;
        writeln!(out, "\"Health\" : {}", h.health)?;
        writeln!(out, "\"Took\" : {}", crate::godur::format(h.took))?;
        writeln!(out, "\"Error\" : {}", h.error)?;
        writeln!(out)?;
    }
    Ok(())
}
