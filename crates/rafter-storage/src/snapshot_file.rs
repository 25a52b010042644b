//! The snapshot file (`Maintenance.Snapshot`'s stream, `rafter snapshot
//! save|status|restore`): the store's snapshot blob (its own rows and
//! CRC-32), zero padding, the blob's length as a little-endian u64 ending a
//! body whose size is a multiple of 512, then the SHA-256 of the body. That
//! is the shape etcdctl's `snapshot save` checks (a database of 512-byte
//! pages followed by its SHA-256), so etcdctl saves Rafter snapshots as it
//! saves etcd's.

use sha2::{Digest, Sha256};

use crate::MvccError;

const PAGE_BYTES: usize = 512;
const LEN_BYTES: usize = 8;
const SHA_BYTES: usize = 32;

/// The file form of a snapshot blob.
pub fn encode(blob: &[u8]) -> Vec<u8> {
    let body_len = (blob.len() + LEN_BYTES).div_ceil(PAGE_BYTES) * PAGE_BYTES;
    let mut out = Vec::with_capacity(body_len + SHA_BYTES);
    out.extend_from_slice(blob);
    out.resize(body_len - LEN_BYTES, 0);
    out.extend_from_slice(&(blob.len() as u64).to_le_bytes());
    let sha = Sha256::digest(&out);
    out.extend_from_slice(&sha);
    debug_assert_eq!(out.len() % PAGE_BYTES, SHA_BYTES);
    out
}

/// The blob inside a snapshot file, after checking its shape and SHA-256.
pub fn decode(file: &[u8]) -> Result<&[u8], MvccError> {
    let bad = |what: &str| MvccError::Storage(format!("not a Rafter snapshot file: {what}"));
    if file.len() < PAGE_BYTES + SHA_BYTES || file.len() % PAGE_BYTES != SHA_BYTES {
        return Err(bad("wrong size"));
    }
    let (body, sha) = file.split_at(file.len() - SHA_BYTES);
    if Sha256::digest(body).as_slice() != sha {
        return Err(bad("SHA-256 mismatch"));
    }
    let len = u64::from_le_bytes(body[body.len() - LEN_BYTES..].try_into().expect("8 bytes"));
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l <= body.len() - LEN_BYTES)
        .ok_or_else(|| bad("length out of range"))?;
    Ok(&body[..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        for n in [0, 1, 503, 504, 505, 4000] {
            let blob: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let file = encode(&blob);
            assert_eq!(file.len() % 512, 32, "n={n}");
            assert_eq!(decode(&file).unwrap(), blob.as_slice());
        }
        let mut file = encode(b"some rows");
        file[3] ^= 1;
        assert!(decode(&file).is_err(), "a flipped bit");
        assert!(decode(&file[..file.len() - 1]).is_err(), "a cut file");
    }
}
