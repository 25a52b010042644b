//! Parsing of etcd-style URL flags and `--initial-cluster`.

use std::net::{SocketAddr, ToSocketAddrs};

use crate::config::ServeArgs;

/// One member of `--initial-cluster`.
#[derive(Debug, Clone)]
pub struct MemberSpec {
    pub name: String,
    pub peer_urls: Vec<String>,
}

/// The bootstrap membership and which entry is this member.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub members: Vec<MemberSpec>,
    me: usize,
}

impl ClusterSpec {
    pub fn from_args(args: &ServeArgs) -> Result<Self, String> {
        let default = format!("{}={}", args.name, args.initial_advertise_peer_urls);
        let spec = args.initial_cluster.as_deref().unwrap_or(&default);
        let mut members: Vec<MemberSpec> = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, url) = part
                .split_once('=')
                .ok_or_else(|| format!("--initial-cluster entry {part:?} is not name=url"))?;
            match members.iter_mut().find(|m| m.name == name) {
                Some(m) => m.peer_urls.push(url.to_string()),
                None => members.push(MemberSpec {
                    name: name.to_string(),
                    peer_urls: vec![url.to_string()],
                }),
            }
        }
        let me = members
            .iter()
            .position(|m| m.name == args.name)
            .ok_or_else(|| format!("--initial-cluster has no member named {:?}", args.name))?;
        let mut mine = members[me].peer_urls.clone();
        let mut advertised = split(&args.initial_advertise_peer_urls);
        mine.sort();
        advertised.sort();
        if mine != advertised {
            return Err(format!(
                "--initial-cluster has {mine:?} for {:?} but --initial-advertise-peer-urls is {advertised:?}",
                args.name
            ));
        }
        Ok(ClusterSpec { members, me })
    }

    pub fn me(&self) -> &MemberSpec {
        &self.members[self.me]
    }

    /// The peer URLs of every member but this one (whom a joining member
    /// asks for the cluster's membership).
    pub fn other_peer_urls(&self) -> Vec<String> {
        self.members
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != self.me)
            .flat_map(|(_, m)| m.peer_urls.clone())
            .collect()
    }
}

/// Splits a comma-separated URL list.
pub fn split(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The socket address of `http://host:port` (or `host:port`).
pub fn socket_addr(url: &str) -> Result<SocketAddr, String> {
    let hostport = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url)
        .trim_end_matches('/');
    hostport
        .to_socket_addrs()
        .map_err(|e| format!("bad URL {url:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("URL {url:?} resolves to no address"))
}
