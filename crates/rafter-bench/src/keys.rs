//! The data a benchmark writes: fixed-size keys numbered within a key space
//! and fixed-size values, so runs against etcd and Rafter move the same bytes.

use crate::rng::Rng;

/// Keys `0..count`, each printed as a zero-padded decimal of exactly
/// `key_size_bytes` bytes.
#[derive(Debug, Clone)]
pub struct KeySpace {
    key_size_bytes: usize,
    count: u64,
}

impl KeySpace {
    /// A key space; fails when `count` keys do not fit in `key_size_bytes`
    /// decimal digits or the space is empty.
    pub fn new(key_size_bytes: usize, count: u64) -> Result<Self, String> {
        if count == 0 {
            return Err("--key-space must be at least 1".to_string());
        }
        let digits_needed = (count - 1).to_string().len();
        if key_size_bytes < digits_needed {
            return Err(format!(
                "--key-size {key_size_bytes} is too small for --key-space {count}: \
                 keys need {digits_needed} bytes"
            ));
        }
        Ok(Self {
            key_size_bytes,
            count,
        })
    }

    /// How many distinct keys there are.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The key numbered `index` (< `count`).
    pub fn key(&self, index: u64) -> Vec<u8> {
        format!("{index:0width$}", width = self.key_size_bytes).into_bytes()
    }
}

/// A value of `size_bytes` printable random bytes.
pub fn random_value(size_bytes: usize, rng: &mut Rng) -> Vec<u8> {
    (0..size_bytes)
        .map(|_| b'a' + rng.below(26) as u8)
        .collect()
}

/// A value that no other client or operation writes: the writer's number and
/// sequence number, padded with dots to `size_bytes` (longer when the tag
/// itself does not fit), so compare-on-value never mistakes two writes.
pub fn unique_value(size_bytes: usize, client_index: usize, sequence: u64) -> Vec<u8> {
    let mut value = format!("{client_index:x}:{sequence:x}").into_bytes();
    if value.len() < size_bytes {
        value.resize(size_bytes, b'.');
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_requested_size() {
        let space = KeySpace::new(8, 1000).unwrap();
        assert_eq!(space.key(7), b"00000007".to_vec());
        assert_eq!(space.key(999).len(), 8);
    }

    #[test]
    fn refuses_a_key_space_that_does_not_fit() {
        assert!(KeySpace::new(2, 1000).is_err());
        assert!(KeySpace::new(3, 1000).is_ok());
        assert!(KeySpace::new(8, 0).is_err());
    }

    #[test]
    fn unique_values_differ_and_are_padded() {
        assert_eq!(unique_value(8, 1, 2), b"1:2.....".to_vec());
        assert_ne!(unique_value(8, 1, 2), unique_value(8, 2, 1));
        assert_eq!(unique_value(2, 10, 10), b"a:a".to_vec());
    }
}
