//! The protobuf JSON mapping etcd's grpc-gateway speaks: proto field names
//! as written (`create_revision`, `TTL`), 64-bit integers as strings, bytes
//! in base64, enums by name, fields at their default left out. Done with
//! the API's own descriptors (`rafter_proto::FILE_DESCRIPTOR_SET`) through
//! prost-reflect, so every message maps the same way without code per
//! message.

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};

/// A request body that is not the message it should be.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadJson(pub String);

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(rafter_proto::FILE_DESCRIPTOR_SET)
            .expect("the API's descriptors decode (they were built with it)")
    })
}

fn descriptor(full_name: &str) -> prost_reflect::MessageDescriptor {
    pool()
        .get_message_by_name(full_name)
        .unwrap_or_else(|| panic!("{full_name} is in the API's descriptors"))
}

/// Decodes `body` as the JSON form of `full_name` (an empty body is the
/// empty message, as the gateway takes it).
pub fn decode<T: Message + Default>(full_name: &str, body: &[u8]) -> Result<T, BadJson> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let dynamic = DynamicMessage::deserialize_with_options(
        descriptor(full_name),
        &mut de,
        &DeserializeOptions::new().deny_unknown_fields(false),
    )
    .map_err(|e| BadJson(e.to_string()))?;
    de.end().map_err(|e| BadJson(e.to_string()))?;
    T::decode(dynamic.encode_to_vec().as_slice()).map_err(|e| BadJson(e.to_string()))
}

/// The JSON form of `msg`, a `full_name`.
pub fn encode<T: Message>(full_name: &str, msg: &T) -> serde_json::Value {
    let dynamic = DynamicMessage::decode(descriptor(full_name), msg.encode_to_vec().as_slice())
        .expect("a message decodes as its own descriptor");
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(true)
        .skip_default_fields(true);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .expect("a message serializes to JSON")
}

#[cfg(test)]
mod tests {
    use rafter_proto::etcdserverpb::{RangeRequest, RangeResponse};
    use rafter_proto::mvccpb::KeyValue;

    use super::*;

    #[test]
    fn etcd_gateway_field_names_and_encodings() {
        let resp = RangeResponse {
            kvs: vec![KeyValue {
                key: b"foo".to_vec(),
                value: b"bar".to_vec(),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                lease: 0,
            }],
            count: 1,
            ..Default::default()
        };
        assert_eq!(
            encode("etcdserverpb.RangeResponse", &resp).to_string(),
            r#"{"count":"1","kvs":[{"create_revision":"2","key":"Zm9v","mod_revision":"2","value":"YmFy","version":"1"}]}"#
        );
        let req: RangeRequest = decode(
            "etcdserverpb.RangeRequest",
            br#"{"key":"Zm9v","range_end":"Zm9w","limit":"5","sort_order":"DESCEND"}"#,
        )
        .unwrap();
        assert_eq!(req.key, b"foo");
        assert_eq!(req.range_end, b"fop");
        assert_eq!(req.limit, 5);
        assert_eq!(req.sort_order, 2);
        assert!(decode::<RangeRequest>("etcdserverpb.RangeRequest", b"{bad").is_err());
        assert_eq!(
            decode::<RangeRequest>("etcdserverpb.RangeRequest", b"").unwrap(),
            RangeRequest::default()
        );
    }
}
