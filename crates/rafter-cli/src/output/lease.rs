//! Output of the `lease` commands in every `-w` format, as etcdctl prints
//! them. etcdctl prints its client library's lease structs, not the gRPC
//! messages, so lease output has its own rules: JSON with the header's
//! fields inlined next to `ID`/`TTL` (revoke alone prints the gRPC message),
//! lease ids as 16 hex digits in simple output, `-w protobuf` printing only
//! the encoded header (revoke: refused), and no table format at all.

use std::io::Write;

use prost::Message;
use rafter_proto::etcdserverpb::{
    LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeResponse,
    LeaseTimeToLiveResponse, ResponseHeader,
};

use super::jsonw::{array, base64, Obj};
use super::quote::go_quote;
use super::{Format, Printer};
use crate::error::CliError;

/// A lease id as etcdctl prints it: Go's `%016x`.
pub fn hex_id(id: i64) -> String {
    if id < 0 {
        format!("-{:015x}", id.unsigned_abs())
    } else {
        format!("{id:016x}")
    }
}

/// The header's fields inlined into an object (Go embeds
/// `*pb.ResponseHeader` in the client's lease structs; each field is
/// `omitempty`).
fn inline_header(o: &mut Obj, h: Option<ResponseHeader>) {
    if let Some(h) = h {
        o.num_nz("cluster_id", h.cluster_id)
            .num_nz("member_id", h.member_id)
            .num_nz("revision", h.revision)
            .num_nz("raft_term", h.raft_term);
    }
}

fn fields_header(out: &mut dyn Write, h: Option<ResponseHeader>) -> std::io::Result<()> {
    let h = h.unwrap_or_default();
    writeln!(out, "\"ClusterID\" : {}", h.cluster_id)?;
    writeln!(out, "\"MemberID\" : {}", h.member_id)?;
    writeln!(out, "\"Revision\" : {}", h.revision)?;
    writeln!(out, "\"RaftTerm\" : {}", h.raft_term)
}

/// `-w protobuf`: the client structs embed the header, whose `Marshal`
/// method is all etcdctl finds, so only the header is encoded.
fn protobuf_header(out: &mut dyn Write, h: Option<ResponseHeader>) -> std::io::Result<()> {
    out.write_all(&h.unwrap_or_default().encode_to_vec())
}

/// The header in protobuf's compact text form, as Go's `%v` shows it.
fn compact_text(h: &ResponseHeader) -> String {
    let mut text = String::new();
    for (name, value) in [
        ("cluster_id", h.cluster_id.to_string()),
        ("member_id", h.member_id.to_string()),
        ("revision", h.revision.to_string()),
        ("raft_term", h.raft_term.to_string()),
    ] {
        if value != "0" {
            text.push_str(&format!("{name}:{value} "));
        }
    }
    text
}

impl Printer {
    /// Prints a lease grant.
    pub fn lease_grant(&self, out: &mut dyn Write, r: &LeaseGrantResponse) -> Result<(), CliError> {
        match self.format {
            Format::Simple => writeln!(out, "lease {} granted with TTL({}s)", hex_id(r.id), r.ttl)?,
            Format::Json => {
                let mut o = Obj::new();
                inline_header(&mut o, r.header);
                o.num("ID", r.id)
                    .num("TTL", r.ttl)
                    .string("Error", &r.error);
                writeln!(out, "{}", o.finish())?;
            }
            Format::Fields => {
                fields_header(out, r.header)?;
                writeln!(out, "\"ID\" : {}", r.id)?;
                writeln!(out, "\"TTL\" : {}", r.ttl)?;
            }
            Format::Protobuf => protobuf_header(out, r.header)?,
            Format::Table => return Err(self.format.unsupported()),
        }
        Ok(())
    }

    /// Prints a lease revocation of `id`.
    pub fn lease_revoke(
        &self,
        out: &mut dyn Write,
        id: i64,
        r: &LeaseRevokeResponse,
    ) -> Result<(), CliError> {
        match self.format {
            Format::Simple => writeln!(out, "lease {} revoked", hex_id(id))?,
            Format::Json => {
                let mut o = Obj::new();
                if let Some(h) = r.header {
                    let mut ho = Obj::new();
                    inline_header(&mut ho, Some(h));
                    o.raw("header", &ho.finish());
                }
                writeln!(out, "{}", o.finish())?;
            }
            Format::Fields => fields_header(out, r.header)?,
            Format::Protobuf => {
                let shown = match &r.header {
                    Some(h) => compact_text(h),
                    None => "<nil>".to_string(),
                };
                return Err(CliError::bad_feature(format!(
                    "marshal unsupported for type clientv3.LeaseRevokeResponse ({{{shown}}})"
                )));
            }
            Format::Table => return Err(self.format.unsupported()),
        }
        Ok(())
    }

    /// Prints one keep-alive answer.
    pub fn lease_keep_alive(
        &self,
        out: &mut dyn Write,
        r: &LeaseKeepAliveResponse,
    ) -> Result<(), CliError> {
        match self.format {
            Format::Simple => {
                writeln!(out, "lease {} keepalived with TTL({})", hex_id(r.id), r.ttl)?
            }
            Format::Json => {
                let mut o = Obj::new();
                inline_header(&mut o, r.header);
                o.num("ID", r.id).num("TTL", r.ttl);
                writeln!(out, "{}", o.finish())?;
            }
            Format::Fields => {
                fields_header(out, r.header)?;
                writeln!(out, "\"ID\" : {}", r.id)?;
                writeln!(out, "\"TTL\" : {}", r.ttl)?;
            }
            Format::Protobuf => protobuf_header(out, r.header)?,
            Format::Table => return Err(self.format.unsupported()),
        }
        Ok(())
    }

    /// Prints a lease's time to live; `keys` is `--keys`.
    pub fn lease_time_to_live(
        &self,
        out: &mut dyn Write,
        r: &LeaseTimeToLiveResponse,
        keys: bool,
    ) -> Result<(), CliError> {
        match self.format {
            Format::Simple => {
                if r.granted_ttl == 0 && r.ttl == -1 {
                    writeln!(out, "lease {} already expired", hex_id(r.id))?;
                    return Ok(());
                }
                let mut text = format!(
                    "lease {} granted with TTL({}s), remaining({}s)",
                    hex_id(r.id),
                    r.granted_ttl,
                    r.ttl
                );
                if keys {
                    // Go's `%v` of a []string: `[a b c]`.
                    let names: Vec<String> = r
                        .keys
                        .iter()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .collect();
                    text.push_str(&format!(", attached keys([{}])", names.join(" ")));
                }
                out.write_all(text.as_bytes())?;
                writeln!(out)?;
            }
            Format::Json => {
                let mut o = Obj::new();
                inline_header(&mut o, r.header);
                o.num("id", r.id)
                    .num("ttl", r.ttl)
                    .num("granted-ttl", r.granted_ttl);
                if r.keys.is_empty() {
                    o.raw("keys", "null");
                } else {
                    let items: Vec<String> = r
                        .keys
                        .iter()
                        .map(|k| format!("\"{}\"", base64(k)))
                        .collect();
                    o.raw("keys", &array(&items));
                }
                writeln!(out, "{}", o.finish())?;
            }
            Format::Fields => {
                fields_header(out, r.header)?;
                writeln!(out, "\"ID\" : {}", r.id)?;
                writeln!(out, "\"TTL\" : {}", r.ttl)?;
                writeln!(out, "\"GrantedTTL\" : {}", r.granted_ttl)?;
                for key in &r.keys {
                    writeln!(out, "\"Key\" : {}", go_quote(key))?;
                }
            }
            Format::Protobuf => protobuf_header(out, r.header)?,
            Format::Table => return Err(self.format.unsupported()),
        }
        Ok(())
    }

    /// Prints the list of leases.
    pub fn lease_list(&self, out: &mut dyn Write, r: &LeaseLeasesResponse) -> Result<(), CliError> {
        match self.format {
            Format::Simple => {
                writeln!(out, "found {} leases", r.leases.len())?;
                for lease in &r.leases {
                    writeln!(out, "{}", hex_id(lease.id))?;
                }
            }
            Format::Json => {
                let mut o = Obj::new();
                inline_header(&mut o, r.header);
                let items: Vec<String> = r
                    .leases
                    .iter()
                    .map(|l| {
                        let mut item = Obj::new();
                        item.num("id", l.id);
                        item.finish()
                    })
                    .collect();
                o.raw("leases", &array(&items));
                writeln!(out, "{}", o.finish())?;
            }
            Format::Fields => {
                fields_header(out, r.header)?;
                for lease in &r.leases {
                    writeln!(out, "\"ID\" : {}", lease.id)?;
                }
            }
            Format::Protobuf => protobuf_header(out, r.header)?,
            Format::Table => return Err(self.format.unsupported()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: 15118495548433857066,
            member_id: 13668033151171901709,
            revision: 3,
            raft_term: 2,
        })
    }

    fn print(
        f: impl FnOnce(&Printer, &mut Vec<u8>) -> Result<(), CliError>,
        format: Format,
    ) -> String {
        let mut out = Vec::new();
        f(&Printer::new(format, false), &mut out).expect("prints");
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ids_are_sixteen_hex_digits() {
        assert_eq!(hex_id(0x1234), "0000000000001234");
        assert_eq!(hex_id(0x390da24187101517), "390da24187101517");
        assert_eq!(hex_id(-1), "-000000000000001");
    }

    #[test]
    fn time_to_live_matches_etcdctl() {
        let r = LeaseTimeToLiveResponse {
            header: hdr(),
            id: 4111120437181682967,
            ttl: 599,
            granted_ttl: 600,
            keys: vec![b"k1".to_vec(), b"k2".to_vec()],
        };
        assert_eq!(
            print(|p, o| p.lease_time_to_live(o, &r, true), Format::Simple),
            "lease 390da24187101517 granted with TTL(600s), remaining(599s), attached keys([k1 k2])\n"
        );
        assert_eq!(
            print(|p, o| p.lease_time_to_live(o, &r, true), Format::Json),
            "{\"cluster_id\":15118495548433857066,\"member_id\":13668033151171901709,\"revision\":3,\"raft_term\":2,\"id\":4111120437181682967,\"ttl\":599,\"granted-ttl\":600,\"keys\":[\"azE=\",\"azI=\"]}\n"
        );
        let expired = LeaseTimeToLiveResponse {
            header: hdr(),
            id: 0x1234,
            ttl: -1,
            granted_ttl: 0,
            keys: vec![],
        };
        assert_eq!(
            print(
                |p, o| p.lease_time_to_live(o, &expired, false),
                Format::Simple
            ),
            "lease 0000000000001234 already expired\n"
        );
        assert!(print(
            |p, o| p.lease_time_to_live(o, &expired, false),
            Format::Json
        )
        .ends_with("\"id\":4660,\"ttl\":-1,\"granted-ttl\":0,\"keys\":null}\n"));
    }

    #[test]
    fn revoke_protobuf_is_refused_like_etcdctl() {
        let r = LeaseRevokeResponse { header: hdr() };
        let err = Printer::new(Format::Protobuf, false)
            .lease_revoke(&mut Vec::new(), 1, &r)
            .unwrap_err();
        assert_eq!(err.code, 4);
        assert_eq!(
            err.message,
            "marshal unsupported for type clientv3.LeaseRevokeResponse ({cluster_id:15118495548433857066 member_id:13668033151171901709 revision:3 raft_term:2 })"
        );
    }
}
