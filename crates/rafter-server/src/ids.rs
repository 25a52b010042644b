//! Member and cluster ids derived as etcd derives them, so the same flags
//! give the same ids on every start and every member agrees on them.

/// A member's id: the first 8 bytes (big-endian) of SHA-1 over its sorted
/// peer URLs concatenated, followed by the cluster token.
pub fn member_id(peer_urls: &[String], cluster_token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut h = sha1_smol::Sha1::new();
    h.update(urls.concat().as_bytes());
    h.update(cluster_token.as_bytes());
    first_u64(&h.digest().bytes())
}

/// The id of a member a `MemberAdd` adds: as etcd, SHA-1 over its sorted
/// peer URLs, the cluster and the time in seconds, so the same URLs added
/// twice within a second get the same id (etcd then answers "member ID
/// already exist") and re-adding them later gives a new one (a removed id
/// never comes back).
pub fn added_member_id(peer_urls: &[String], cluster_id: u64, unix_s: u64) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut h = sha1_smol::Sha1::new();
    h.update(urls.concat().as_bytes());
    h.update(&cluster_id.to_be_bytes());
    h.update(unix_s.to_string().as_bytes());
    first_u64(&h.digest().bytes())
}

/// The cluster's id: SHA-1 over the sorted member ids (8 bytes big-endian
/// each), first 8 bytes.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = sha1_smol::Sha1::new();
    for id in ids {
        h.update(&id.to_be_bytes());
    }
    first_u64(&h.digest().bytes())
}

fn first_u64(digest: &[u8; 20]) -> u64 {
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_etcd_for_default_single_member() {
        // etcd 3.4 started with no flags reports member 8e9e05c52164694d in
        // cluster cdf818194e3a8c32.
        let m = member_id(&["http://localhost:2380".to_string()], "etcd-cluster");
        assert_eq!(format!("{m:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[m])), "cdf818194e3a8c32");
    }
}
