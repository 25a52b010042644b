//! Group commit: with many concurrent writers, one Raft log fsync covers many
//! writes. The member's own fsync counter (Prometheus `/metrics`) is read
//! before and after 64 writers put concurrently; fsyncs must be a small
//! fraction of the acknowledged writes. Runs against etcd too (its counter is
//! `etcd_disk_wal_fsync_duration_seconds_count`).

mod common;

use std::time::Duration;

use common::{free_port, Server, Target};

const WRITERS: usize = 64;
const PUTS_PER_WRITER: usize = 40;

/// Reads one sample of `metric` from a Prometheus text endpoint.
fn scrape(url: &str, metric: &str) -> f64 {
    use std::io::{Read, Write};
    let hostport = url.trim_start_matches("http://");
    let mut sock = std::net::TcpStream::connect(hostport).expect("connect to metrics endpoint");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        sock,
        "GET /metrics HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    sock.read_to_string(&mut body).expect("read metrics");
    body.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(' ')?;
            (name == metric).then(|| value.trim().parse::<f64>().ok())?
        })
        .unwrap_or_else(|| panic!("metric {metric} not found in:\n{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_share_fsyncs() {
    let metrics_url = format!("http://127.0.0.1:{}", free_port());
    let server = Server::start_with_args(&["--listen-metrics-urls", &metrics_url]).await;
    let metric = match server.target() {
        Target::Rafter => "rafter_wal_fsyncs_total",
        Target::Etcd => "etcd_disk_wal_fsync_duration_seconds_count",
    };
    let before = scrape(&metrics_url, metric);

    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let mut client = server.client().await;
        tasks.push(tokio::spawn(async move {
            for i in 0..PUTS_PER_WRITER {
                client
                    .put(format!("gc/{w}/{i}"), "v", None)
                    .await
                    .expect("put");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    let writes = (WRITERS * PUTS_PER_WRITER) as f64;
    let fsyncs = scrape(&metrics_url, metric) - before;
    println!(
        "{writes} acknowledged writes from {WRITERS} writers took {fsyncs} fsyncs ({:.1} writes per fsync)",
        writes / fsyncs.max(1.0)
    );
    assert!(fsyncs >= 1.0, "writes were acknowledged without any fsync");
    assert!(
        fsyncs * 4.0 <= writes,
        "{fsyncs} fsyncs for {writes} writes: group commit is not batching"
    );
}
