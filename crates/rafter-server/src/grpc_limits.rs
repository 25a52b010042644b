//! etcd clients expect an over-limit request to be refused the way grpc-go
//! refuses it: `RESOURCE_EXHAUSTED` with "grpc: received message larger than
//! max (N vs. M)". tonic refuses it (from the length prefix, before reading
//! the body) with `OUT_OF_RANGE` and other words; this response mapper
//! rewrites exactly that answer and nothing else.

use http::HeaderValue;

const TONIC_PREFIX: &str = "Error, decoded message length too large: found ";
const GRPC_STATUS_OUT_OF_RANGE: &str = "11";
const GRPC_STATUS_RESOURCE_EXHAUSTED: &str = "8";

/// Rewrites tonic's oversize-request status into grpc-go's.
pub fn etcd_style_oversize<B>(mut resp: http::Response<B>) -> http::Response<B> {
    let headers = resp.headers_mut();
    if headers.get("grpc-status").and_then(|v| v.to_str().ok()) != Some(GRPC_STATUS_OUT_OF_RANGE) {
        return resp;
    }
    let Some(message) = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
    else {
        return resp;
    };
    let Some((found, limit)) = parse_sizes(&message) else {
        return resp;
    };
    let text = format!("grpc: received message larger than max ({found} vs. {limit})");
    headers.insert(
        "grpc-status",
        HeaderValue::from_static(GRPC_STATUS_RESOURCE_EXHAUSTED),
    );
    if let Ok(v) = HeaderValue::from_str(&percent_encode(&text)) {
        headers.insert("grpc-message", v);
    }
    resp
}

/// Extracts (found, limit) from tonic's message.
fn parse_sizes(message: &str) -> Option<(u64, u64)> {
    let rest = message.strip_prefix(TONIC_PREFIX)?;
    let (found, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.strip_suffix(" bytes")?;
    Some((found.parse().ok()?, limit.parse().ok()?))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// gRPC's percent-encoding of `grpc-message`: printable ASCII except '%'
/// stays, everything else is %XX.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_the_oversize_status() {
        let resp = http::Response::builder()
            .header("grpc-status", "11")
            .header(
                "grpc-message",
                "Error, decoded message length too large: found 2097166 bytes, the limit is: 2097152 bytes",
            )
            .body(())
            .unwrap();
        let out = etcd_style_oversize(resp);
        assert_eq!(out.headers()["grpc-status"], "8");
        assert_eq!(
            out.headers()["grpc-message"],
            "grpc: received message larger than max (2097166 vs. 2097152)"
        );
        let other = http::Response::builder()
            .header("grpc-status", "11")
            .header(
                "grpc-message",
                "etcdserver: mvcc: required revision has been compacted",
            )
            .body(())
            .unwrap();
        let out = etcd_style_oversize(other);
        assert_eq!(out.headers()["grpc-status"], "11");
    }

    #[test]
    fn percent_coding_round_trips() {
        let s = "a%b: ü";
        assert_eq!(percent_decode(&percent_encode(s)), s);
    }
}
