//! Printing responses in the `-w/--write-out` formats of etcdctl (simple,
//! json, fields, table, protobuf). Each format lives in its own module; this
//! one picks the module and reports the combinations etcdctl rejects.

mod fields;
mod humanize;
pub use humanize::bytes as humanize_bytes;
pub mod json;
pub mod jsonw;
pub mod lease;
pub mod quote;
mod simple;
mod table;

use std::io::Write;
use std::time::Duration;

use prost::Message;
use rafter_proto::etcdserverpb::{
    DeleteRangeResponse, MemberListResponse, PutResponse, RangeResponse, StatusResponse,
    TxnResponse, WatchResponse,
};

use crate::error::CliError;

/// An output format named by `-w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable lines (the default).
    Simple,
    /// etcdctl's JSON encoding of the response.
    Json,
    /// ASCII table (cluster commands only).
    Table,
    /// `"Field" : value` lines.
    Fields,
    /// The raw protobuf-encoded response.
    Protobuf,
}

impl Format {
    /// The format with this `-w` name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "simple" => Self::Simple,
            "json" => Self::Json,
            "table" => Self::Table,
            "fields" => Self::Fields,
            "protobuf" => Self::Protobuf,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Simple => "simple",
            Self::Json => "json",
            Self::Table => "table",
            Self::Fields => "fields",
            Self::Protobuf => "protobuf",
        }
    }

    fn unsupported(self) -> CliError {
        CliError::bad_feature(format!("{} not supported as output format", self.name()))
    }
}

/// The status of one endpoint, as `endpoint status` prints it.
#[derive(Debug, Clone)]
pub struct EndpointStatus {
    /// The endpoint as the user (or the member list) named it.
    pub endpoint: String,
    /// The member's answer.
    pub status: StatusResponse,
}

/// The health of one endpoint, as `endpoint health` prints it.
#[derive(Debug, Clone)]
pub struct EndpointHealth {
    /// The endpoint as the user (or the member list) named it.
    pub endpoint: String,
    /// Whether a linearizable read succeeded and no alarm is raised.
    pub health: bool,
    /// How long the check took.
    pub took: Duration,
    /// Why the endpoint is unhealthy (empty when healthy).
    pub error: String,
}

/// Writes responses in one format.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// The chosen format.
    pub format: Format,
    /// `--hex`: byte strings as `\xNN` in simple output.
    pub hex: bool,
}

impl Printer {
    /// A printer for `format`.
    pub fn new(format: Format, hex: bool) -> Self {
        Self { format, hex }
    }

    /// Prints a put response.
    pub fn put(&self, out: &mut dyn Write, r: &PutResponse) -> Result<(), CliError> {
        match self.format {
            Format::Simple => simple::put(out, self.hex, r)?,
            Format::Json => writeln!(out, "{}", json::put(r))?,
            Format::Fields => fields::put(out, r)?,
            Format::Protobuf => out.write_all(&r.encode_to_vec())?,
            Format::Table => return Err(self.format.unsupported()),
        }
        Ok(())
    }

    /// Prints a range response; `value_only` is `--print-value-only`.
    pub fn get(
        &self,
        out: &mut dyn Write,
        r: &RangeResponse,
        value_only: bool,
    ) -> Result<(), CliError> {
        match self.format {
            Format::Simple => simple::get(out, self.hex, value_only, r)?,
            Format::Json => writeln!(out, "{}", json::range(r))?,
            Format::Fields => fields::get(out, r)?,
            Format::Protobuf => out.write_all(&r.encode_to_vec())?,
            Format::Table => return Err(self.format.unsupported()),
        }
        Ok(())
    }

    /// Prints a delete-range response.
    pub fn del(&self, out: &mut dyn Write, r: &DeleteRangeResponse) -> Result<(), CliError> {
        match self.format {
            Format::Simple => simple::del(out, self.hex, r)?,
            Format::Json => writeln!(out, "{}", json::del(r))?,
            Format::Fields => fields::del(out, r)?,
            Format::Protobuf => out.write_all(&r.encode_to_vec())?,
            Format::Table => return Err(self.format.unsupported()),
        }
        Ok(())
    }

    /// Prints a transaction response.
    pub fn txn(&self, out: &mut dyn Write, r: &TxnResponse) -> Result<(), CliError> {
        match self.format {
            Format::Simple => simple::txn(out, self.hex, r)?,
            Format::Json => writeln!(out, "{}", json::txn(r))?,
            Format::Fields => fields::txn(out, r)?,
            Format::Protobuf => out.write_all(&r.encode_to_vec())?,
            Format::Table => return Err(self.format.unsupported()),
        }
        Ok(())
    }

    /// Prints one watch response as etcdctl does (the Go client's view of
    /// it: no watch id, cancel reason or fragment flag). `events_nil`: the
    /// response stands for a failed stream, not one the server sent.
    pub fn watch(
        &self,
        out: &mut dyn Write,
        r: &WatchResponse,
        events_nil: bool,
    ) -> Result<(), CliError> {
        match self.format {
            Format::Simple => simple::watch(out, self.hex, r)?,
            Format::Json => writeln!(out, "{}", json::watch(r, events_nil))?,
            Format::Fields => fields::watch(out, r)?,
            Format::Protobuf => {
                let seen = WatchResponse {
                    header: Some(r.header.unwrap_or_default()),
                    events: r.events.clone(),
                    compact_revision: r.compact_revision,
                    canceled: r.canceled,
                    created: r.created,
                    ..Default::default()
                };
                out.write_all(&seen.encode_to_vec())?
            }
            Format::Table => return Err(self.format.unsupported()),
        }
        Ok(())
    }

    /// Prints the member list.
    pub fn member_list(&self, out: &mut dyn Write, r: &MemberListResponse) -> Result<(), CliError> {
        match self.format {
            Format::Simple => {
                for row in member_rows(r).1 {
                    writeln!(out, "{}", row.join(", "))?;
                }
            }
            Format::Json => writeln!(out, "{}", json::member_list(r))?,
            Format::Fields => fields::member_list(out, r)?,
            Format::Protobuf => out.write_all(&r.encode_to_vec())?,
            Format::Table => {
                let (headers, rows) = member_rows(r);
                out.write_all(table::render(&headers, &rows).as_bytes())?;
            }
        }
        Ok(())
    }

    /// Prints the statuses of the endpoints that answered.
    pub fn endpoint_status(
        &self,
        out: &mut dyn Write,
        list: &[EndpointStatus],
    ) -> Result<(), CliError> {
        match self.format {
            Format::Simple => {
                for row in status_rows(list) {
                    writeln!(out, "{}", row.join(", "))?;
                }
            }
            Format::Json => writeln!(out, "{}", json::endpoint_status(list))?,
            Format::Fields => fields::endpoint_status(out, list)?,
            Format::Table => {
                out.write_all(table::render(&STATUS_HEADERS, &status_rows(list)).as_bytes())?
            }
            Format::Protobuf => return Err(self.format.unsupported()),
        }
        Ok(())
    }

    /// Prints endpoint health; the simple format reports on `err` as
    /// etcdctl does.
    pub fn endpoint_health(
        &self,
        out: &mut dyn Write,
        err: &mut dyn Write,
        list: &[EndpointHealth],
    ) -> Result<(), CliError> {
        match self.format {
            Format::Simple => simple::endpoint_health(err, list)?,
            Format::Json => writeln!(out, "{}", json::endpoint_health(list))?,
            Format::Fields => fields::endpoint_health(out, list)?,
            Format::Table => {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|h| {
                        vec![
                            h.endpoint.clone(),
                            h.health.to_string(),
                            crate::godur::format(h.took),
                            h.error.clone(),
                        ]
                    })
                    .collect();
                let headers = ["ENDPOINT", "HEALTH", "TOOK", "ERROR"];
                out.write_all(table::render(&headers, &rows).as_bytes())?;
            }
            Format::Protobuf => return Err(self.format.unsupported()),
        }
        Ok(())
    }
}

/// The name Go gives an `mvccpb.Event_EventType` (`PUT`, `DELETE`, or the
/// number for an unknown type).
pub fn event_type_name(event_type: i32) -> String {
    match event_type {
        0 => "PUT".to_string(),
        1 => "DELETE".to_string(),
        other => other.to_string(),
    }
}

const STATUS_HEADERS: [&str; 10] = [
    "ENDPOINT",
    "ID",
    "VERSION",
    "DB SIZE",
    "IS LEADER",
    "IS LEARNER",
    "RAFT TERM",
    "RAFT INDEX",
    "RAFT APPLIED INDEX",
    "ERRORS",
];

/// The cells of `endpoint status`, shared by the simple and table formats.
fn status_rows(list: &[EndpointStatus]) -> Vec<Vec<String>> {
    list.iter()
        .map(|e| {
            let s = &e.status;
            let member_id = s.header.map(|h| h.member_id).unwrap_or_default();
            vec![
                e.endpoint.clone(),
                format!("{member_id:x}"),
                s.version.clone(),
                humanize::bytes(s.db_size.max(0) as u64),
                (s.leader == member_id).to_string(),
                s.is_learner.to_string(),
                s.raft_term.to_string(),
                s.raft_index.to_string(),
                s.raft_applied_index.to_string(),
                s.errors.join(", "),
            ]
        })
        .collect()
}

/// The headers and cells of `member list`, shared by simple and table.
fn member_rows(r: &MemberListResponse) -> ([&'static str; 6], Vec<Vec<String>>) {
    let rows = r
        .members
        .iter()
        .map(|m| {
            vec![
                format!("{:x}", m.id),
                if m.name.is_empty() {
                    "unstarted"
                } else {
                    "started"
                }
                .to_string(),
                m.name.clone(),
                m.peer_ur_ls.join(","),
                m.client_ur_ls.join(","),
                m.is_learner.to_string(),
            ]
        })
        .collect();
    (
        [
            "ID",
            "STATUS",
            "NAME",
            "PEER ADDRS",
            "CLIENT ADDRS",
            "IS LEARNER",
        ],
        rows,
    )
}
