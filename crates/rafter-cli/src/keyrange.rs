//! Key ranges as etcd clients build them: the range end of a prefix, and the
//! `\0` conventions for "all keys" and "from this key on".

/// The range end covering every key that starts with `prefix`: the prefix
/// with its last byte below 0xff incremented and what follows dropped, or
/// `\0` ("to the end of the keyspace") when every byte is 0xff.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.iter().rposition(|&b| b < 0xff) {
        Some(i) => {
            let mut end = prefix[..=i].to_vec();
            end[i] += 1;
            end
        }
        None => vec![0],
    }
}

/// `(key, range_end)` for `--prefix`: an empty prefix means all keys.
pub fn prefix_range(key: &[u8]) -> (Vec<u8>, Vec<u8>) {
    if key.is_empty() {
        (vec![0], vec![0])
    } else {
        (key.to_vec(), prefix_end(key))
    }
}

/// `(key, range_end)` for `--from-key`: keys at or after `key`.
pub fn from_key_range(key: &[u8]) -> (Vec<u8>, Vec<u8>) {
    if key.is_empty() {
        (vec![0], vec![0])
    } else {
        (key.to_vec(), vec![0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"abc"), b"abd");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_range(b""), (vec![0], vec![0]));
        assert_eq!(from_key_range(b"k"), (b"k".to_vec(), vec![0]));
    }
}
