//! Acceptance test of the exactly-once log consumer (seed 004 "Case 1"):
//! concurrent producers append 100,000 records to one log on a three-member
//! cluster while eight consumer processes drain it; members are killed with
//! SIGKILL and restarted one at a time, and consumer processes are killed
//! with SIGKILL and restarted under the same name. Every record must be
//! handed out in exactly one claim, to exactly one consumer name (a
//! restarted consumer may be handed its own unacknowledged claim again),
//! with nothing missing and nothing twice.
//!
//! The consumers are this test binary run again with the `consumer_child`
//! test selected and `RAFTER_LOG_CHILD` set; they print each batch they are
//! handed (`BATCH name start end redelivered payloads END`) before they
//! acknowledge it.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{exclusive, Cluster};
use rafter_client::etcdserverpb::RangeRequest;
use rafter_client::log_consumer::{LogConsumer, LogProducer};
use rafter_client::{Client, Error, Wait};

const LOG: &str = "acceptance-log";
const PRODUCERS: usize = 4;
const RECORDS_PER_PRODUCER: usize = 25_000;
const APPEND_BATCH: usize = 100;
const CONSUMERS: usize = 8;
const TOTAL: u64 = (PRODUCERS * RECORDS_PER_PRODUCER) as u64;
/// The whole run must finish within this.
const RUN_DEADLINE: Duration = Duration::from_secs(240);
const CHILD_ENV: &str = "RAFTER_LOG_CHILD";

fn payload(producer: usize, i: usize) -> String {
    format!("p{producer}-{i}")
}

/// Not a test on its own: the consumer process the acceptance test runs.
#[test]
fn consumer_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split(' ');
    let name = parts.next().expect("name").to_string();
    let total: u64 = parts.next().expect("total").parse().expect("total");
    let endpoints: Vec<String> = parts.map(String::from).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(consume(name, total, endpoints));
}

async fn connect(endpoints: &[String]) -> Client {
    loop {
        match Client::connect(endpoints).await {
            Ok(c) => return c,
            Err(e) => eprintln!("connect: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn consumer(client: &Client, name: &str) -> LogConsumer {
    loop {
        match client.session(Duration::from_secs(10)).await {
            Ok(s) => return LogConsumer::new(Arc::new(s), LOG, name),
            Err(e) => eprintln!("session: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn consume(name: String, total: u64, endpoints: Vec<String>) {
    let client = connect(&endpoints).await;
    let mut c = consumer(&client, &name).await;
    let mut out = std::io::stdout();
    loop {
        let batch = match c.get_last_log().await {
            Ok(b) => b,
            Err(Error::SessionExpired) => {
                eprintln!("session expired: a new one");
                c = consumer(&client, &name).await;
                continue;
            }
            Err(e) => {
                eprintln!("get_last_log: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if batch.is_empty() {
            if batch.start >= total {
                writeln!(out, "DONE {name}").expect("stdout");
                out.flush().expect("stdout");
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let payloads: Vec<String> = batch
            .records
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect();
        writeln!(
            out,
            "BATCH {name} {} {} {} {} END",
            batch.start,
            batch.end,
            batch.redelivered,
            payloads.join(",")
        )
        .expect("stdout");
        out.flush().expect("stdout");
        match c.ack(&batch).await {
            Ok(()) => {}
            Err(Error::SessionExpired) => c = consumer(&client, &name).await,
            Err(e) => eprintln!("ack: {e}"),
        }
    }
}

/// A consumer process and where its output goes.
struct Consumer {
    name: String,
    child: Option<Child>,
    done: bool,
    starts: usize,
}

fn spawn_consumer(
    name: &str,
    endpoints: &[String],
    lines: &Arc<Mutex<Vec<String>>>,
    logs: &Path,
) -> (Child, std::thread::JoinHandle<()>) {
    let mut spec = vec![name.to_string(), TOTAL.to_string()];
    spec.extend(endpoints.iter().cloned());
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join(format!("{name}.log")))
        .expect("a consumer log");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "consumer_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, spec.join(" "))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn a consumer");
    let stdout = child.stdout.take().expect("piped");
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            // libtest may print its "test consumer_child ... " first on the
            // same line; a consumer killed mid-line leaves a line without
            // its end.
            if let Some(at) = line.find("BATCH ") {
                if line.ends_with(" END") {
                    sink.lock().unwrap().push(line[at..].to_string());
                }
            }
        }
    });
    (child, reader)
}

/// The last lines of every consumer's stderr.
fn consumer_logs(logs: &Path) -> String {
    let mut text = String::new();
    for i in 0..CONSUMERS {
        let log = std::fs::read_to_string(logs.join(format!("c{i}.log"))).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        text.push_str(&format!("--- consumer c{i} stderr ---\n{tail}\n"));
    }
    text
}

async fn produce(endpoints: Vec<String>, producer: usize) -> Result<(), String> {
    let client = Client::connect(&endpoints)
        .await
        .map_err(|e| format!("producer {producer}: connect: {e}"))?;
    let session = client
        .session(Duration::from_secs(30))
        .await
        .map_err(|e| format!("producer {producer}: session: {e}"))?;
    let mut p = LogProducer::new(Arc::new(session), LOG);
    for chunk in (0..RECORDS_PER_PRODUCER)
        .collect::<Vec<_>>()
        .chunks(APPEND_BATCH)
    {
        let records: Vec<Vec<u8>> = chunk
            .iter()
            .map(|&i| payload(producer, i).into_bytes())
            .collect();
        p.append(&records)
            .await
            .map_err(|e| format!("producer {producer}: append: {e}"))?;
    }
    Ok(())
}

/// The log's head, cursor and claims, for progress reports.
async fn log_state(endpoints: &[String]) -> String {
    let probe = async {
        let client = Client::connect(endpoints).await.ok()?;
        let mut text = String::new();
        for key in ["head", "cursor", "claim/"] {
            let k = format!("{LOG}/{key}").into_bytes();
            let mut end = k.clone();
            *end.last_mut().unwrap() += 1;
            let r = client
                .range(
                    &RangeRequest {
                        key: k,
                        range_end: if key.ends_with('/') { end } else { vec![] },
                        ..Default::default()
                    },
                    Wait::For(Duration::from_secs(2)),
                )
                .await
                .ok()?;
            for kv in r.kvs {
                text.push_str(&format!(
                    "{}={} ",
                    String::from_utf8_lossy(&kv.key),
                    String::from_utf8_lossy(&kv.value)
                ));
            }
        }
        Some(text)
    };
    probe.await.unwrap_or_else(|| "(unreadable)".into())
}

/// A small deterministic generator, so a failing run can be described.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_consumed_exactly_once_through_member_and_consumer_crashes() {
    let _serial = exclusive().await;
    let mut cluster = Cluster::start(3, &[]).await;
    let endpoints: Vec<String> = (0..3).map(|i| cluster.endpoint(i)).collect();
    let started = Instant::now();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("seed {seed}");
    let mut rng = Lcg(seed);

    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let logs = tempfile::tempdir().expect("a directory for consumer logs");
    let mut readers = Vec::new();
    let mut consumers: Vec<Consumer> = (0..CONSUMERS)
        .map(|i| {
            let name = format!("c{i}");
            let (child, reader) = spawn_consumer(&name, &endpoints, &lines, logs.path());
            readers.push(reader);
            Consumer {
                name,
                child: Some(child),
                done: false,
                starts: 1,
            }
        })
        .collect();
    let mut producers: Vec<_> = (0..PRODUCERS)
        .map(|p| Some(tokio::spawn(produce(endpoints.clone(), p))))
        .collect();

    let fail = |cluster: &Cluster, why: String, logs: &Path| -> ! {
        let tails = consumer_logs(logs);
        cluster.fail(&format!("{why}\n(seed {seed})\n{tails}"))
    };

    let mut member_kills = 0;
    let mut consumer_kills = 0;
    let mut next_member_kill = Instant::now() + Duration::from_secs(2);
    let mut next_consumer_kill = Instant::now() + Duration::from_millis(700);
    let mut producers_done = false;
    let mut next_progress = Instant::now() + Duration::from_secs(10);
    loop {
        for slot in producers.iter_mut() {
            if slot.as_ref().is_some_and(|p| p.is_finished()) {
                let p = slot.take().expect("finished");
                if let Err(e) = p.await.expect("producer task") {
                    fail(&cluster, e, logs.path());
                }
            }
        }
        if !producers_done && producers.iter().all(Option::is_none) {
            producers_done = true;
            println!("producers done after {:?}", started.elapsed());
        }
        for c in consumers.iter_mut() {
            if let Some(child) = c.child.as_mut() {
                if let Some(status) = child.try_wait().expect("poll a consumer") {
                    c.child = None;
                    if !status.success() {
                        let why = format!("consumer {} exited with {status}", c.name);
                        fail(&cluster, why, logs.path());
                    }
                    c.done = true;
                }
            }
        }
        if producers_done && consumers.iter().all(|c| c.done) {
            break;
        }
        if started.elapsed() > RUN_DEADLINE {
            let done = lines
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.starts_with("BATCH"))
                .count();
            let why = format!(
                "not finished within {RUN_DEADLINE:?}: producers done: {producers_done}, \
                 consumers done: {}, batches handed out: {done}",
                consumers.iter().filter(|c| c.done).count()
            );
            fail(&cluster, why, logs.path());
        }
        let now = Instant::now();
        if now >= next_consumer_kill {
            let running: Vec<usize> = (0..CONSUMERS)
                .filter(|&i| consumers[i].child.is_some())
                .collect();
            if !running.is_empty() {
                let c = &mut consumers[running[rng.below(running.len())]];
                let mut child = c.child.take().expect("running");
                child.kill().expect("SIGKILL a consumer");
                child.wait().expect("reap a consumer");
                let (child, reader) = spawn_consumer(&c.name, &endpoints, &lines, logs.path());
                c.child = Some(child);
                readers.push(reader);
                c.starts += 1;
                consumer_kills += 1;
            }
            next_consumer_kill = now + Duration::from_millis(300 + rng.below(900) as u64);
        }
        if now >= next_member_kill {
            let m = rng.below(3);
            cluster.kill9(m);
            member_kills += 1;
            tokio::time::sleep(Duration::from_millis(200 + rng.below(800) as u64)).await;
            cluster.restart(m).await;
            next_member_kill =
                Instant::now() + Duration::from_millis(1500 + rng.below(2000) as u64);
        }
        if now >= next_progress {
            let handed = lines.lock().unwrap().len();
            println!(
                "{:?}: {handed} batches handed out, {} consumers done, log keys: {}",
                started.elapsed(),
                consumers.iter().filter(|c| c.done).count(),
                log_state(&endpoints).await
            );
            next_progress = now + Duration::from_secs(10);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    for reader in readers {
        reader.join().expect("a consumer's output reader");
    }

    // Every claim, as handed out (possibly several times to one name).
    let lines = lines.lock().unwrap().clone();
    if let Ok(path) = std::env::var("RAFTER_LOG_DUMP") {
        std::fs::write(path, lines.join("\n")).expect("dump");
    }
    let mut claims: BTreeMap<u64, (u64, String, String)> = BTreeMap::new();
    let mut handed = 0usize;
    let mut redelivered = 0usize;
    for line in lines.iter().filter(|l| l.starts_with("BATCH ")) {
        let mut f = line.splitn(6, ' ');
        f.next();
        let name = f.next().expect("name").to_string();
        let start: u64 = f.next().expect("start").parse().expect("start");
        let end: u64 = f.next().expect("end").parse().expect("end");
        let again = f.next().expect("redelivered") == "true";
        let records = f
            .next()
            .and_then(|r| r.strip_suffix("END"))
            .unwrap_or_default()
            .trim_end()
            .to_string();
        handed += 1;
        redelivered += again as usize;
        match claims.get(&start) {
            None => {
                claims.insert(start, (end, name, records));
            }
            Some((e, n, r)) => assert!(
                (*e, n, r) == (end, &name, &records),
                "claim at {start} handed out twice differently: \
                 [{start}, {e}) to {n} and [{start}, {end}) to {name} (seed {seed})"
            ),
        }
    }
    // The claims tile [0, TOTAL): none missing, none overlapping.
    let mut next = 0;
    let mut count: HashMap<String, usize> = HashMap::new();
    for (start, (end, name, records)) in &claims {
        assert_eq!(
            *start, next,
            "records [{next}, {start}) were never handed out, or overlap (claim of {name}) (seed {seed})"
        );
        let list: Vec<&str> = records.split(',').filter(|s| !s.is_empty()).collect();
        assert_eq!(
            list.len() as u64,
            end - start,
            "claim [{start}, {end}) of {name}"
        );
        for r in list {
            *count.entry(r.to_string()).or_default() += 1;
        }
        next = *end;
    }
    assert_eq!(
        next, TOTAL,
        "records [{next}, {TOTAL}) were never handed out"
    );
    for p in 0..PRODUCERS {
        for i in 0..RECORDS_PER_PRODUCER {
            let n = count.remove(&payload(p, i)).unwrap_or(0);
            assert_eq!(n, 1, "record {} was consumed {n} times", payload(p, i));
        }
    }
    assert!(count.is_empty(), "records nobody appended: {count:?}");

    // Nothing is left claimed, and the cursor is at the head.
    let client = Client::connect(&endpoints).await.expect("connect");
    let wait = Wait::For(Duration::from_secs(20));
    let get = |key: String| {
        let client = client.clone();
        async move {
            client
                .range(
                    &RangeRequest {
                        key: key.into_bytes(),
                        ..Default::default()
                    },
                    wait,
                )
                .await
                .expect("range")
        }
    };
    let head = get(format!("{LOG}/head")).await;
    let cursor = get(format!("{LOG}/cursor")).await;
    assert_eq!(head.kvs[0].value, TOTAL.to_string().into_bytes());
    assert_eq!(cursor.kvs[0].value, TOTAL.to_string().into_bytes());
    let prefix = format!("{LOG}/claim/");
    let mut end = prefix.clone().into_bytes();
    *end.last_mut().unwrap() += 1;
    let open = client
        .range(
            &RangeRequest {
                key: prefix.into_bytes(),
                range_end: end,
                ..Default::default()
            },
            wait,
        )
        .await
        .expect("range");
    assert!(
        open.kvs.is_empty(),
        "claims left unacknowledged: {:?}",
        open.kvs
    );

    println!(
        "{TOTAL} records in {} claims consumed exactly once in {elapsed:?}: \
         {handed} batches handed out ({redelivered} redelivered to a restarted consumer), \
         {member_kills} member kills, {consumer_kills} consumer kills, \
         consumer starts {:?}",
        claims.len(),
        consumers.iter().map(|c| c.starts).collect::<Vec<_>>()
    );
    let _ = std::io::stdout().flush();
}
