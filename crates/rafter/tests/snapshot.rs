//! Snapshot save and restore (etcdctl's `snapshot save`, etcdutl's
//! `snapshot status` and `restore`): a loaded 3-member cluster is saved
//! with `rafter snapshot save` (and with the real etcdctl, which writes the
//! same stream), the file's status is read, and a new 3-member cluster
//! restored from it holds every key at every revision: HashKV at the
//! snapshot's revision is equal, the current revision is kept, and the new
//! cluster takes writes on top.

mod common;

use std::process::Command;

use common::cluster::{exclusive, Cluster};
use common::rafter_ok;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_restores_into_a_new_cluster_with_every_key_and_revision() {
    let _serial = exclusive().await;
    let source = Cluster::start(3, &[]).await;
    let leader = source.leader().await;
    let mut kv = source.client(leader).await;
    for i in 0..300 {
        kv.put(format!("snap/{}", i % 120), format!("v{i}"), None)
            .await
            .expect("put");
    }
    kv.delete("snap/7", None).await.expect("delete");
    let lease = kv.lease_grant(600, None).await.expect("grant");
    kv.put(
        "snap/leased",
        "x",
        Some(etcd_client::PutOptions::new().with_lease(lease.id())),
    )
    .await
    .expect("leased put");
    kv.compact(100, None).await.expect("compact");
    let revision = kv
        .get("snap/0", None)
        .await
        .expect("get")
        .header()
        .unwrap()
        .revision();
    let before = kv.hash_kv(revision).await.expect("hash_kv");

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("snap.db");
    let file_text = file.to_str().unwrap().to_string();
    let endpoint = format!("--endpoints={}", source.address(leader));
    let saved = rafter_ok(&["snapshot", "save", &file_text, &endpoint]);
    assert!(saved.starts_with("Snapshot saved at"), "{saved}");
    // etcdctl's save writes the same stream.
    let etcdctl_file = dir.path().join("etcdctl.db");
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(&endpoint)
        .args(["snapshot", "save"])
        .arg(&etcdctl_file)
        .output()
        .expect("run etcdctl");
    assert!(
        out.status.success(),
        "etcdctl snapshot save: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::metadata(&etcdctl_file).unwrap().len(),
        std::fs::metadata(&file).unwrap().len(),
        "etcdctl saved a different stream"
    );

    let status: serde_json::Value = serde_json::from_str(&rafter_ok(&[
        "snapshot", "status", &file_text, "-w", "json",
    ]))
    .expect("json");
    assert_eq!(status["revision"], revision, "{status}");
    assert_eq!(status["totalKey"], 120, "{status}");
    drop(source);

    let restored = Cluster::start_restored(3, &file).await;
    let leader = restored.leader().await;
    let mut kv2 = restored.client(leader).await;
    let after = kv2
        .hash_kv(revision)
        .await
        .expect("hash_kv on the new cluster");
    assert_eq!(
        after.hash(),
        before.hash(),
        "HashKV at the snapshot's revision"
    );
    assert_eq!(after.compact_version(), 100);
    let got = kv2.get("snap/0", None).await.expect("get");
    assert_eq!(got.header().unwrap().revision(), revision);
    assert_eq!(got.kvs()[0].value_str().unwrap(), "v240");
    assert!(kv2.get("snap/7", None).await.unwrap().kvs().is_empty());
    let ttl = kv2
        .lease_time_to_live(lease.id(), None)
        .await
        .expect("lease kept");
    assert!(ttl.ttl() > 0, "{ttl:?}");
    // Every member holds the same data, and writes go on from the revision.
    for member in 0..3 {
        let mut c = restored.client(member).await;
        let h = c.hash_kv(revision).await.expect("hash_kv");
        assert_eq!(h.hash(), before.hash(), "member {member}");
    }
    let put = kv2
        .put("snap/new", "after", None)
        .await
        .expect("put on the new cluster");
    assert_eq!(put.header().unwrap().revision(), revision + 1);
    let members = kv2.member_list().await.expect("member list");
    assert_eq!(members.members().len(), 3);
}
