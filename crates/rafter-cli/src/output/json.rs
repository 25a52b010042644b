//! The `json` format: what etcdctl's Go `encoding/json` makes of each
//! response struct (snake_case KV fields, camelCase cluster fields, empty
//! fields omitted, byte strings base64, oneofs as `{"Response":{...}}`).

use rafter_proto::etcdserverpb::{
    response_op::Response, DeleteRangeResponse, Member, MemberListResponse, PutResponse,
    RangeResponse, ResponseHeader, StatusResponse, TxnResponse, WatchResponse,
};
use rafter_proto::mvccpb::{Event, KeyValue};

use super::jsonw::{array, string_array, Obj};
use super::{EndpointHealth, EndpointStatus};

fn header(o: &mut Obj, h: Option<ResponseHeader>) {
    if let Some(h) = h {
        o.raw("header", &header_obj(&h));
    }
}

fn header_obj(h: &ResponseHeader) -> String {
    let mut ho = Obj::new();
    ho.num_nz("cluster_id", h.cluster_id)
        .num_nz("member_id", h.member_id)
        .num_nz("revision", h.revision)
        .num_nz("raft_term", h.raft_term);
    ho.finish()
}

fn kv(kv: &KeyValue) -> String {
    let mut o = Obj::new();
    o.bytes_nz("key", &kv.key)
        .num_nz("create_revision", kv.create_revision)
        .num_nz("mod_revision", kv.mod_revision)
        .num_nz("version", kv.version)
        .bytes_nz("value", &kv.value)
        .num_nz("lease", kv.lease);
    o.finish()
}

fn kvs(list: &[KeyValue]) -> Vec<String> {
    list.iter().map(kv).collect()
}

pub fn range(r: &RangeResponse) -> String {
    let mut o = Obj::new();
    header(&mut o, r.header);
    o.array_nz("kvs", &kvs(&r.kvs))
        .bool_nz("more", r.more)
        .num_nz("count", r.count);
    o.finish()
}

pub fn put(r: &PutResponse) -> String {
    let mut o = Obj::new();
    header(&mut o, r.header);
    if let Some(prev) = &r.prev_kv {
        o.raw("prev_kv", &kv(prev));
    }
    o.finish()
}

pub fn del(r: &DeleteRangeResponse) -> String {
    let mut o = Obj::new();
    header(&mut o, r.header);
    o.num_nz("deleted", r.deleted)
        .array_nz("prev_kvs", &kvs(&r.prev_kvs));
    o.finish()
}

pub fn txn(r: &TxnResponse) -> String {
    let mut o = Obj::new();
    header(&mut o, r.header);
    o.bool_nz("succeeded", r.succeeded);
    let responses: Vec<String> = r
        .responses
        .iter()
        .map(|op| {
            let inner = match &op.response {
                Some(Response::ResponseRange(r)) => format!("{{\"ResponseRange\":{}}}", range(r)),
                Some(Response::ResponsePut(r)) => format!("{{\"ResponsePut\":{}}}", put(r)),
                Some(Response::ResponseDeleteRange(r)) => {
                    format!("{{\"ResponseDeleteRange\":{}}}", del(r))
                }
                Some(Response::ResponseTxn(r)) => format!("{{\"ResponseTxn\":{}}}", txn(r)),
                None => "null".to_string(),
            };
            format!("{{\"Response\":{inner}}}")
        })
        .collect();
    o.array_nz("responses", &responses);
    o.finish()
}

fn event(e: &Event) -> String {
    let mut o = Obj::new();
    o.num_nz("type", e.r#type);
    if let Some(kv_) = &e.kv {
        o.raw("kv", &kv(kv_));
    }
    if let Some(prev) = &e.prev_kv {
        o.raw("prev_kv", &kv(prev));
    }
    o.finish()
}

/// etcdctl prints the Go client's `WatchResponse`, a struct without JSON
/// tags: capitalised field names, the header always (an empty object when
/// zero), no field omitted. `events_nil` writes `"Events":null`, as for the
/// final response the Go client makes up when the stream fails; responses
/// from the server carry `[]` when they have no events.
pub fn watch(r: &WatchResponse, events_nil: bool) -> String {
    let mut o = Obj::new();
    o.raw("Header", &header_obj(&r.header.unwrap_or_default()));
    if events_nil {
        o.raw("Events", "null");
    } else {
        let events: Vec<String> = r.events.iter().map(event).collect();
        o.raw("Events", &array(&events));
    }
    o.num("CompactRevision", r.compact_revision)
        .boolean("Canceled", r.canceled)
        .boolean("Created", r.created);
    o.finish()
}

fn member(m: &Member) -> String {
    let mut o = Obj::new();
    o.num_nz("ID", m.id).string_nz("name", &m.name);
    if !m.peer_ur_ls.is_empty() {
        o.raw("peerURLs", &string_array(&m.peer_ur_ls));
    }
    if !m.client_ur_ls.is_empty() {
        o.raw("clientURLs", &string_array(&m.client_ur_ls));
    }
    o.bool_nz("isLearner", m.is_learner);
    o.finish()
}

pub fn member_list(r: &MemberListResponse) -> String {
    let mut o = Obj::new();
    header(&mut o, r.header);
    let members: Vec<String> = r.members.iter().map(member).collect();
    o.array_nz("members", &members);
    o.finish()
}

fn status(s: &StatusResponse) -> String {
    let mut o = Obj::new();
    header(&mut o, s.header);
    o.string_nz("version", &s.version)
        .num_nz("dbSize", s.db_size)
        .num_nz("leader", s.leader)
        .num_nz("raftIndex", s.raft_index)
        .num_nz("raftTerm", s.raft_term)
        .num_nz("raftAppliedIndex", s.raft_applied_index);
    if !s.errors.is_empty() {
        o.raw("errors", &string_array(&s.errors));
    }
    o.num_nz("dbSizeInUse", s.db_size_in_use)
        .bool_nz("isLearner", s.is_learner);
    o.finish()
}

pub fn endpoint_status(list: &[EndpointStatus]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|e| {
            let mut o = Obj::new();
            o.string("Endpoint", &e.endpoint)
                .raw("Status", &status(&e.status));
            o.finish()
        })
        .collect();
    array(&items)
}

pub fn endpoint_health(list: &[EndpointHealth]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|h| {
            let mut o = Obj::new();
            o.string("endpoint", &h.endpoint)
                .boolean("health", h.health)
                .string("took", &crate::godur::format(h.took))
                .string_nz("error", &h.error);
            o.finish()
        })
        .collect();
    array(&items)
}

/// An alarm response (`alarm list`, `alarm disarm`).
pub fn alarm(r: &rafter_proto::etcdserverpb::AlarmResponse) -> String {
    let mut o = Obj::new();
    header(&mut o, r.header);
    let alarms: Vec<String> = r
        .alarms
        .iter()
        .map(|a| {
            let mut ao = Obj::new();
            ao.num_nz("memberID", a.member_id).num_nz("alarm", a.alarm);
            ao.finish()
        })
        .collect();
    o.array_nz("alarms", &alarms);
    o.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: 324952591200643719,
            member_id: 3319814642761637952,
            revision: 6,
            raft_term: 2,
        })
    }

    #[test]
    fn range_matches_etcdctl() {
        let r = RangeResponse {
            header: hdr(),
            kvs: vec![KeyValue {
                key: b"foo".to_vec(),
                create_revision: 2,
                mod_revision: 6,
                version: 5,
                value: b"bar4".to_vec(),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        assert_eq!(
            range(&r),
            r#"{"header":{"cluster_id":324952591200643719,"member_id":3319814642761637952,"revision":6,"raft_term":2},"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":6,"version":5,"value":"YmFyNA=="}],"count":1}"#
        );
    }

    #[test]
    fn watch_matches_etcdctl() {
        let r = WatchResponse {
            header: hdr(),
            events: vec![
                Event {
                    r#type: 0,
                    kv: Some(KeyValue {
                        key: b"k1".to_vec(),
                        create_revision: 3,
                        mod_revision: 3,
                        version: 1,
                        value: b"v1".to_vec(),
                        lease: 0,
                    }),
                    prev_kv: None,
                },
                Event {
                    r#type: 1,
                    kv: Some(KeyValue {
                        key: b"k1".to_vec(),
                        mod_revision: 5,
                        ..Default::default()
                    }),
                    prev_kv: None,
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            watch(&r, false),
            r#"{"Header":{"cluster_id":324952591200643719,"member_id":3319814642761637952,"revision":6,"raft_term":2},"Events":[{"kv":{"key":"azE=","create_revision":3,"mod_revision":3,"version":1,"value":"djE="}},{"type":1,"kv":{"key":"azE=","mod_revision":5}}],"CompactRevision":0,"Canceled":false,"Created":false}"#
        );
        let canceled = WatchResponse {
            canceled: true,
            ..Default::default()
        };
        assert_eq!(
            watch(&canceled, true),
            r#"{"Header":{},"Events":null,"CompactRevision":0,"Canceled":true,"Created":false}"#
        );
    }

    #[test]
    fn txn_wraps_oneofs() {
        let r = TxnResponse {
            header: hdr(),
            succeeded: false,
            responses: vec![rafter_proto::etcdserverpb::ResponseOp {
                response: Some(Response::ResponsePut(PutResponse {
                    header: Some(ResponseHeader {
                        revision: 24,
                        ..Default::default()
                    }),
                    prev_kv: None,
                })),
            }],
        };
        assert!(txn(&r).ends_with(
            r#""responses":[{"Response":{"ResponsePut":{"header":{"revision":24}}}}]}"#
        ));
    }
}
