//! The default `simple` format: keys and values on their own lines, `OK` for
//! puts, counts for deletes, `SUCCESS`/`FAILURE` for transactions.

use std::io::{self, Write};

use rafter_proto::etcdserverpb::{
    response_op::Response, DeleteRangeResponse, PutResponse, RangeResponse, TxnResponse,
    WatchResponse,
};
use rafter_proto::mvccpb::KeyValue;

use super::quote::hex_escape;
use super::EndpointHealth;

fn bytes_line(out: &mut dyn Write, hex: bool, bytes: &[u8]) -> io::Result<()> {
    if hex {
        out.write_all(hex_escape(bytes).as_bytes())?;
    } else {
        out.write_all(bytes)?;
    }
    out.write_all(b"\n")
}

fn kv(out: &mut dyn Write, hex: bool, value_only: bool, kv: &KeyValue) -> io::Result<()> {
    if !value_only {
        bytes_line(out, hex, &kv.key)?;
    }
    bytes_line(out, hex, &kv.value)
}

pub fn put(out: &mut dyn Write, hex: bool, r: &PutResponse) -> io::Result<()> {
    writeln!(out, "OK")?;
    if let Some(prev) = &r.prev_kv {
        kv(out, hex, false, prev)?;
    }
    Ok(())
}

pub fn get(out: &mut dyn Write, hex: bool, value_only: bool, r: &RangeResponse) -> io::Result<()> {
    for item in &r.kvs {
        kv(out, hex, value_only, item)?;
    }
    Ok(())
}

pub fn del(out: &mut dyn Write, hex: bool, r: &DeleteRangeResponse) -> io::Result<()> {
    writeln!(out, "{}", r.deleted)?;
    for prev in &r.prev_kvs {
        kv(out, hex, false, prev)?;
    }
    Ok(())
}

pub fn txn(out: &mut dyn Write, hex: bool, r: &TxnResponse) -> io::Result<()> {
    writeln!(out, "{}", if r.succeeded { "SUCCESS" } else { "FAILURE" })?;
    for op in &r.responses {
        writeln!(out)?;
        match &op.response {
            Some(Response::ResponseRange(r)) => get(out, hex, false, r)?,
            Some(Response::ResponsePut(r)) => put(out, hex, r)?,
            Some(Response::ResponseDeleteRange(r)) => del(out, hex, r)?,
            Some(Response::ResponseTxn(r)) => txn(out, hex, r)?,
            None => {}
        }
    }
    Ok(())
}

/// Each event as its type (`PUT`/`DELETE`), then the previous key-value (with
/// `--prev-kv`) and the key-value, each as key and value lines.
pub fn watch(out: &mut dyn Write, hex: bool, r: &WatchResponse) -> io::Result<()> {
    for event in &r.events {
        writeln!(out, "{}", super::event_type_name(event.r#type))?;
        if let Some(prev) = &event.prev_kv {
            kv(out, hex, false, prev)?;
        }
        kv(out, hex, false, &event.kv.clone().unwrap_or_default())?;
    }
    Ok(())
}

pub fn endpoint_health(err: &mut dyn Write, list: &[EndpointHealth]) -> io::Result<()> {
    for h in list {
        if h.health {
            writeln!(
                err,
                "{} is healthy: successfully committed proposal: took = {}",
                h.endpoint,
                crate::godur::format(h.took)
            )?;
        } else {
            writeln!(
                err,
                "{} is unhealthy: failed to commit proposal: {}",
                h.endpoint, h.error
            )?;
        }
    }
    Ok(())
}
