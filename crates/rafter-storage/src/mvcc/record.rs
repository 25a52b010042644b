//! The stored form of one key revision. A fixed little-endian header followed
//! by the value keeps decoding allocation-free apart from the value itself.

use rafter_proto::mvccpb::KeyValue;

const FLAG_TOMBSTONE: u8 = 1;
const HEADER_BYTES: usize = 1 + 8 * 4;

/// One revision of one key: its metadata, its value, or a deletion marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
    pub value: Vec<u8>,
    pub tombstone: bool,
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES + self.value.len());
        out.push(if self.tombstone { FLAG_TOMBSTONE } else { 0 });
        for n in [
            self.create_revision,
            self.mod_revision,
            self.version,
            self.lease,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&self.value);
        out
    }

    /// Whether `bytes` can be a stored record (what a snapshot's rows must
    /// pass before they are stored: [`Record::decode`] trusts them).
    pub fn well_formed(bytes: &[u8]) -> bool {
        bytes.len() >= HEADER_BYTES && bytes[0] & !FLAG_TOMBSTONE == 0
    }

    /// Decodes a stored record. Records are only ever written by `encode`, so
    /// a short one means the database is corrupt.
    pub fn decode(bytes: &[u8]) -> Record {
        assert!(
            bytes.len() >= HEADER_BYTES,
            "corrupt mvcc record: {} bytes",
            bytes.len()
        );
        let num = |i: usize| {
            let at = 1 + 8 * i;
            i64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
        };
        Record {
            tombstone: bytes[0] & FLAG_TOMBSTONE != 0,
            create_revision: num(0),
            mod_revision: num(1),
            version: num(2),
            lease: num(3),
            value: bytes[HEADER_BYTES..].to_vec(),
        }
    }

    pub fn to_key_value(&self, key: &[u8]) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            value: self.value.clone(),
            lease: self.lease,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let r = Record {
            create_revision: 2,
            mod_revision: 9,
            version: 3,
            lease: -1,
            value: b"v\x00x".to_vec(),
            tombstone: false,
        };
        assert_eq!(Record::decode(&r.encode()), r);
        let t = Record {
            tombstone: true,
            value: vec![],
            ..r
        };
        assert_eq!(Record::decode(&t.encode()), t);
    }
}
