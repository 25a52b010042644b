//! `/metrics` under load: etcd's metric names (so etcd's dashboards and
//! alerts work) with sensible values, and counters that move as requests
//! are served; also served on `--listen-metrics-urls`.

mod common;

use common::{free_port, Server};

/// `name{labels} value` lines as (series, value).
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn value(text: &str, series: &str) -> f64 {
    samples(text)
        .into_iter()
        .find(|(s, _)| s == series)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
}

async fn scrape(url: &str) -> String {
    let resp = reqwest::get(url).await.expect("GET /metrics");
    assert_eq!(resp.status().as_u16(), 200);
    resp.text().await.expect("a body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_metric_names_are_present_and_counters_move() {
    let metrics_port = free_port();
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let server = Server::start_target(
        common::Target::Rafter,
        &[
            "--listen-metrics-urls",
            &format!("http://127.0.0.1:{metrics_port}"),
        ],
    )
    .await;
    let client_url = format!("{}/metrics", server.endpoint());
    let before = scrape(&client_url).await;
    let mut client = server.client().await;
    const PUTS: usize = 50;
    for i in 0..PUTS {
        client.put(format!("m/{i}"), "v", None).await.expect("put");
    }
    // A refused request counts with its code.
    assert!(client.put("", "v", None).await.is_err());
    let after = scrape(&client_url).await;
    assert_eq!(
        scrape(&metrics_url).await.lines().next(),
        after.lines().next()
    );

    assert_eq!(value(&after, "etcd_server_has_leader"), 1.0);
    assert_eq!(value(&after, "etcd_server_is_leader"), 1.0);
    assert!(value(&after, "etcd_server_leader_changes_seen_total") >= 1.0);
    assert!(value(&after, "etcd_mvcc_db_total_size_in_bytes") > 0.0);
    assert_eq!(value(&after, "etcd_server_proposals_pending"), 0.0);
    value(&after, "etcd_server_proposals_failed_total");
    value(&after, "etcd_disk_backend_commit_duration_seconds_count");
    let grew = |series: &str| value(&after, series) - value(&before, series);
    assert!(grew("etcd_server_proposals_committed_total") >= PUTS as f64);
    assert!(grew("etcd_server_proposals_applied_total") >= PUTS as f64);
    assert!(grew("etcd_debugging_mvcc_current_revision") == PUTS as f64);
    assert!(grew("etcd_disk_wal_fsync_duration_seconds_count") >= 1.0);
    let put_ok = r#"grpc_server_handled_total{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#;
    let put_started = r#"grpc_server_started_total{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#;
    let put_refused = r#"grpc_server_handled_total{grpc_code="InvalidArgument",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#;
    assert_eq!(value(&after, put_ok), PUTS as f64);
    assert_eq!(value(&after, put_started), PUTS as f64 + 1.0);
    assert_eq!(value(&after, put_refused), 1.0);
}

/// On a cluster the leader times heartbeats to each peer:
/// `etcd_network_peer_round_trip_time_seconds{To="<peer id hex>"}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_measures_peer_round_trips() {
    let _serial = common::cluster::exclusive().await;
    let cluster = common::cluster::Cluster::start(3, &[]).await;
    let leader = cluster.leader().await;
    let url = format!("{}/metrics", cluster.endpoint(leader));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = scrape(&url).await;
        let peers: Vec<(String, f64)> = samples(&text)
            .into_iter()
            .filter(|(s, _)| s.starts_with("etcd_network_peer_round_trip_time_seconds_count{To="))
            .collect();
        if peers.len() == 2 && peers.iter().all(|(_, count)| *count > 0.0) {
            let sum = samples(&text)
                .into_iter()
                .filter(|(s, _)| s.starts_with("etcd_network_peer_round_trip_time_seconds_sum"))
                .map(|(_, v)| v)
                .sum::<f64>();
            assert!(sum > 0.0 && sum < 10.0, "{text}");
            return;
        }
        if std::time::Instant::now() >= deadline {
            cluster.fail(&format!(
                "no round trips to both peers in /metrics:\n{text}"
            ));
        }
        tokio::time::sleep(common::cluster::POLL_INTERVAL).await;
    }
}
