//! The client cache's behaviour against a real server (Rafter, or etcd with
//! `RAFTER_TEST_TARGET=etcd`): what reads answer, the range they cover, how
//! an idle prefix catches up, how concurrent reads share one revision
//! request, and a copy that fell behind a compaction.

mod common;

use std::time::Duration;

use common::peer_proxy::PeerProxy;
use common::{Server, Target};
use etcd_client::CompactionOptions;
use rafter_client::cache::Source;
use rafter_client::{Cache, CacheOptions, Client, Error, Freshness};

const CONSISTENT: Freshness = Freshness::Consistent(Duration::from_secs(5));

async fn cache_on(endpoints: &[String], prefix: &str) -> Cache {
    let client = Client::connect(endpoints).await.expect("connect");
    Cache::start(&client, prefix, CacheOptions::default())
        .await
        .expect("start the cache")
}

#[tokio::test]
async fn reads_answer_the_prefix_at_a_revision() {
    let server = Server::start().await;
    let mut kv = server.client().await;
    kv.put("app/a", "1", None).await.unwrap();
    kv.put("app/b/x", "2", None).await.unwrap();
    kv.put("apq", "outside", None).await.unwrap();
    let cache = cache_on(&[server.endpoint()], "app/").await;
    assert_eq!(cache.stats().keys, 2);

    let put = kv.put("app/b/y", "3", None).await.unwrap();
    let revision = put.header().unwrap().revision();
    let got = cache.get(b"app/b/y", CONSISTENT).await.unwrap();
    assert_eq!(got.value.unwrap().value, b"3", "a finished put is seen");
    assert!(got.revision >= revision);
    let listed = cache.list(b"app/b/", CONSISTENT).await.unwrap();
    let keys: Vec<_> = listed.value.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, vec![b"app/b/x".to_vec(), b"app/b/y".to_vec()]);

    kv.delete("app/a", None).await.unwrap();
    assert_eq!(cache.get(b"app/a", CONSISTENT).await.unwrap().value, None);
    let stale = cache.get(b"app/b/x", Freshness::Stale).await.unwrap();
    assert_eq!(stale.source, Source::Cache);
    assert_eq!(stale.value.unwrap().value, b"2");

    for outside in [&b"apq"[..], b"ap", b"b"] {
        match cache.get(outside, Freshness::Stale).await {
            Err(Error::InvalidArgument(message)) => assert!(message.contains("outside")),
            other => panic!("{outside:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_idle_prefix_catches_up_without_events() {
    let server = Server::start().await;
    let mut kv = server.client().await;
    kv.put("idle/k", "v", None).await.unwrap();
    let cache = cache_on(&[server.endpoint()], "idle/").await;
    // Writes elsewhere move the store's revision; the prefix sees no event.
    let mut last = 0;
    for i in 0..20 {
        last = kv
            .put("busy", format!("{i}"), None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
    }
    let got = cache.get(b"idle/k", CONSISTENT).await.unwrap();
    assert_eq!(got.value.unwrap().value, b"v");
    assert!(got.revision >= last);
    let stats = cache.stats();
    match server.target() {
        // Rafter orders progress notifications after events: the copy
        // itself catches up.
        Target::Rafter => {
            assert_eq!(got.source, Source::Cache);
            assert!(stats.progress_requests >= 1, "{stats:?}");
            assert!(stats.revision >= last, "{stats:?}");
        }
        // Debian's etcd 3.4.23 predates that fix: the server answers.
        Target::Etcd => assert_eq!(got.source, Source::Server),
    }
}

#[tokio::test]
async fn concurrent_reads_share_revision_requests() {
    let server = Server::start().await;
    let mut kv = server.client().await;
    kv.put("shared/k", "v", None).await.unwrap();
    let cache = cache_on(&[server.endpoint()], "shared/").await;
    let reads: Vec<_> = (0..64)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get(b"shared/k", CONSISTENT).await })
        })
        .collect();
    for read in reads {
        assert_eq!(read.await.unwrap().unwrap().value.unwrap().value, b"v");
    }
    let requests = cache.stats().revision_requests;
    assert!(
        (1..64).contains(&requests),
        "64 concurrent reads took {requests} revision requests"
    );
}

#[tokio::test]
async fn a_copy_behind_a_compaction_is_listed_again() {
    let server = Server::start().await;
    let mut kv = server.client().await;
    kv.put("c/gone", "1", None).await.unwrap();
    kv.put("c/kept", "1", None).await.unwrap();
    // The cache reaches the server through a proxy that the test cuts
    // while the prefix changes and the history is compacted.
    let port: u16 = server
        .address()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let proxy = PeerProxy::start(port).await;
    let cache = cache_on(&[format!("127.0.0.1:{}", proxy.port())], "c/").await;
    assert_eq!(cache.stats().keys, 2);
    proxy.set_cut(true);
    kv.delete("c/gone", None).await.unwrap();
    kv.put("c/kept", "2", None).await.unwrap();
    let put = kv.put("c/new", "1", None).await.unwrap();
    let revision = put.header().unwrap().revision();
    kv.compact(revision, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    proxy.set_cut(false);

    // The task resumes its watch from the copy's revision + 1 on its own,
    // finds it compacted, and lists the prefix again.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while cache.stats().lists < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the copy was not listed again: {:?}",
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let listed = cache.list(b"c/", Freshness::Stale).await.unwrap();
    assert!(listed.revision >= revision);
    let entries: Vec<(Vec<u8>, Vec<u8>)> = listed
        .value
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    assert_eq!(
        entries,
        vec![
            (b"c/kept".to_vec(), b"2".to_vec()),
            (b"c/new".to_vec(), b"1".to_vec())
        ]
    );
}
