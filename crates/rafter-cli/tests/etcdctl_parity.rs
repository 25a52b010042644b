//! Parity with etcdctl: every command here runs through etcdctl against one
//! etcd twin and through rafter's client commands against the other, and
//! must print the same bytes on stdout and stderr and exit the same way.

mod support;

use support::{etcdctl_raw, rafter_raw, Twins};

#[tokio::test]
async fn put_and_get_variants() {
    let t = Twins::start();
    t.same(&["put", "foo", "bar"], b"").await;
    t.same(&["put", "foo", "bar2", "--prev-kv"], b"").await;
    t.same(&["put", "foo", "bar3", "--prev-kv", "-w", "json"], b"")
        .await;
    t.same(&["put", "foo", "bar4", "--prev-kv", "-w", "fields"], b"")
        .await;
    t.same(&["put", "foo", "bar5", "-w", "protobuf"], b"").await;
    t.same(&["put", "foo", "--ignore-value", "--prev-kv"], b"")
        .await;
    t.same(&["put", "stdin-key"], b"line1\nline2\n").await;
    t.same(&["put", "bin", "a\u{1}\u{7f}é"], b"").await;
    for k in ["k1", "k2", "k3"] {
        t.same(&["put", k, &format!("v{k}")], b"").await;
    }
    for args in [
        &["get", "foo"][..],
        &["get", "foo", "-w", "json"],
        &["get", "foo", "-w", "fields"],
        &["get", "foo", "-w", "protobuf"],
        &["get", "foo", "--hex"],
        &["get", "stdin-key"],
        &["get", "bin", "-w", "fields"],
        &["get", "bin", "--hex"],
        &["get", "nokey", "-w", "json"],
        &["get", "nokey", "-w", "fields"],
        &["get", "k", "--prefix"],
        &["get", "k", "--prefix", "--keys-only"],
        &["get", "k", "--prefix", "--keys-only", "-w", "json"],
        &["get", "k", "--prefix", "--print-value-only"],
        &["get", "k", "--prefix", "--limit", "2", "-w", "json"],
        &["get", "k", "--prefix", "--limit=1", "-w", "fields"],
        &["get", "", "--prefix", "--keys-only"],
        &["get", "", "--from-key", "--limit", "2"],
        &["get", "k2", "--from-key"],
        &["get", "k1", "k3", "--order", "DESCEND"],
        &[
            "get",
            "k",
            "--prefix",
            "--sort-by",
            "MODIFY",
            "--order",
            "DESCEND",
        ],
        &["get", "k", "--prefix", "--sort-by=value", "--order=descend"],
        &["get", "k", "--prefix", "--sort-by", "CREATE"],
        &["get", "k", "--prefix", "--sort-by", "VERSION", "-w", "json"],
        &["get", "k1", "--rev", "1", "-w", "json"],
        &["get", "foo", "--rev", "3"],
        &["get", "foo", "--consistency", "s"],
        &["get", "a", "b", "c"],
        &["get", "k", "--prefix=true", "--keys-only=false"],
        &["get", "--prefix", "k", "--print-value-only=true"],
    ] {
        t.same(args, b"").await;
    }
}

#[tokio::test]
async fn argument_and_flag_errors() {
    let t = Twins::start();
    t.same(&["put", "sk", "x"], b"").await;
    for args in [
        &["put"][..],
        &["put", "sk"],
        &["put", "sk", "x", "--ignore-value"],
        &["put", "nokey", "--ignore-value"],
        &["put", "sk", "x", "--lease", "zz"],
        &["put", "sk", "x", "--lease", "1234abcd"],
        &["put", "sk", "x", "-w", "table"],
        &["put", "sk", "x", "-w", "bogus"],
        &["get"],
        &["get", "a", "b", "--prefix"],
        &["get", "a", "--prefix", "--from-key"],
        &["get", "sk", "--consistency", "x"],
        &["get", "sk", "--order", "x"],
        &["get", "sk", "--sort-by", "x"],
        &["get", "sk", "--print-value-only", "-w", "json"],
        &["get", "sk", "-w", "table"],
        &["get", "", "--rev", "1"],
        &["del"],
        &["del", "a", "b", "c"],
        &["del", "a", "b", "--prefix"],
        &["del", "a", "--prefix", "--from-key"],
    ] {
        t.same(args, b"").await;
    }
}

#[tokio::test]
async fn delete_variants() {
    let t = Twins::start();
    for k in ["a", "b", "c", "d1", "d2", "e"] {
        t.same(&["put", k, &format!("value of {k}")], b"").await;
    }
    t.same(&["del", "nokey"], b"").await;
    t.same(&["del", "a"], b"").await;
    t.same(&["del", "b", "c", "--prev-kv"], b"").await;
    t.same(&["del", "d", "--prefix", "--prev-kv", "-w", "json"], b"")
        .await;
    t.same(&["del", "e", "--prev-kv", "-w", "fields"], b"")
        .await;
    t.same(&["del", "x", "-w", "fields"], b"").await;
    t.same(&["put", "z", "1"], b"").await;
    t.same(&["del", "", "--from-key", "--prev-kv", "--hex"], b"")
        .await;
    t.same(&["get", "", "--prefix", "-w", "json"], b"").await;
}

#[tokio::test]
async fn transactions() {
    let t = Twins::start();
    for k in ["k1", "k2", "k3"] {
        t.same(&["put", k, &format!("v{k}")], b"").await;
    }
    let cases: [(&[&str], &str); 24] = [
        (
            &["txn"],
            "mod(\"k1\") > \"0\"\nvalue(\"k2\") = \"vk2\"\n\nput k1 \"new v\"\nget k2 --prefix\ndel k3 --prev-kv\n\nget k1\n\n",
        ),
        (
            &["txn", "-w", "json"],
            "value(\"k2\") != \"vk2\"\n\nput k1 x\n\nget k1\nput k9 \"a b\" --prev-kv\n\n",
        ),
        (&["txn", "-w", "fields"], "\nget k1 --keys-only\nput x y\n\n\n"),
        (
            &["txn", "-w", "fields"],
            "create(\"k1\") < \"100\"\n\nput z 2 --prev-kv\ndel k --prefix --prev-kv\n\n\n",
        ),
        (&["txn", "-w", "protobuf"], "\nput p 1\n\n\n"),
        (&["txn"], "version(\"nokey\") = \"0\"\nver(\"k1\") = \"1\"\n\n\n\n"),
        (&["txn"], "c(\"z\") > \"1\"\nm(\"z\") < \"100\"\nval(\"z\") = \"2\"\n\n\n\n"),
        (&["txn", "-i"], "value(\"z\") = \"2\"\n\nput x 1\n\nput x 2\n\n"),
        (&["txn", "--interactive"], "\n\n\n"),
        (&["txn"], "  \n  \n\n"),
        (&["txn"], "\nput  q   \"it's \\\"quoted\\\"\"  \nget q\n\n\n"),
        (&["txn"], "\nput \"a\\nb\" \"x\\ty\\x00\"\n\n\n"),
        (&["txn"], "\nget a b c\nget k --prefix --limit=1 --keys-only\n\n\n"),
        (&["txn", "-w", "json"], "\nget z --limit 1\nput x y\ndel x --prev-kv\n\n\n"),
        (&["txn", "-w", "table"], "value(\"x\") = \"1\"\n\nput x 1\n\nput y 1\n\n"),
        (&["txn"], "foo(\"z\") = \"1\"\n\n\n\n"),
        (&["txn"], "mod(z) = \"1\"\n\n\n\n"),
        (&["txn"], "mod(\"z\") = 1\n\n\n\n"),
        (&["txn"], "version(\"z\") = \"x\"\n\n\n\n"),
        (&["txn"], "\nfoo bar\n\n\n"),
        (&["txn"], "\nput\n\n\n"),
        (&["txn"], "\nput a\n\n\n"),
        (&["txn"], "\nput d 1 --lease=zz\n\n\n"),
        (&["txn"], "\nput x 1\n\nput y 1\n"),
    ];
    for (args, input) in cases {
        t.same(args, input.as_bytes()).await;
    }
    t.same(&["txn"], b"").await;
    t.same(&["get", "", "--prefix", "-w", "json"], b"").await;
}

#[tokio::test]
async fn compaction() {
    let t = Twins::start();
    for v in ["1", "2", "3", "4", "5"] {
        t.same(&["put", "foo", v], b"").await;
    }
    t.same(&["compaction", "3"], b"").await;
    t.same(&["compact", "3"], b"").await;
    t.same(&["get", "foo", "--rev", "2"], b"").await;
    t.same(&["get", "foo", "--rev", "3", "-w", "json"], b"")
        .await;
    t.same(&["compaction", "4", "--physical", "-w", "json"], b"")
        .await;
    t.same(&["compaction", "5", "-w", "table"], b"").await;
    t.same(&["compaction", "1000"], b"").await;
    t.same(&["compaction", "abc"], b"").await;
    t.same(&["compaction"], b"").await;
    t.same(&["compaction", "6", "-w", "bogus"], b"").await;
}

#[tokio::test]
async fn unreachable_endpoint_times_out_like_etcdctl() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    support::find_on_path("etcdctl");
    let args = ["get", "foo", "--command-timeout", "1s"];
    let expected = etcdctl_raw(&dead, &args, b"");
    let actual = rafter_raw(&dead, &args, b"").await;
    assert_eq!(actual, expected);
    assert_eq!(actual.stderr, "Error: context deadline exceeded\n");
}

/// Drops the columns of an ASCII table whose values legitimately differ
/// between runs, and the padding that depends on their width.
fn table_cells(table: &str, skip_column: usize) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.split('|')
                .map(str::trim)
                .enumerate()
                .filter(|(i, _)| *i != skip_column + 1)
                .map(|(_, c)| c.to_string())
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn cluster_commands() {
    let t = Twins::start();
    for format in ["simple", "table", "json", "fields", "protobuf"] {
        t.same(&["member", "list", "-w", format], b"").await;
    }
    // Status: both tools ask the same server, which may still be applying
    // its start-up entries, so rafter must match etcdctl before or after.
    for format in ["simple", "table", "json", "fields", "protobuf"] {
        for cluster in [false, true] {
            let mut args = vec!["endpoint", "status", "-w", format];
            if cluster {
                args.push("--cluster");
            }
            let before = t.etcdctl(&args, b"");
            let actual = rafter_raw(&t.etcdctl_endpoint, &args, b"").await;
            let after = t.etcdctl(&args, b"");
            assert!(
                actual == before || actual == after,
                "`{}` differs:\nrafter: {actual:?}\netcdctl: {after:?}",
                args.join(" ")
            );
        }
    }
    // Health: everything but the time the check took.
    let expected = t.etcdctl(&["endpoint", "health", "-w", "table"], b"");
    let actual = t.rafter(&["endpoint", "health", "-w", "table"], b"").await;
    assert_eq!((actual.code, expected.code), (0, 0));
    let mut actual_cells = table_cells(&actual.stdout_text(), 2);
    actual_cells[1][1] = t.etcdctl_endpoint.clone();
    assert_eq!(actual_cells, table_cells(&expected.stdout_text(), 2));

    let expected = t.etcdctl(&["endpoint", "health", "-w", "json"], b"");
    let actual = t.rafter(&["endpoint", "health", "-w", "json"], b"").await;
    let strip = |text: &str| {
        let mut v: serde_json::Value = serde_json::from_str(text).expect("health json");
        for item in v.as_array_mut().expect("array") {
            let obj = item.as_object_mut().expect("object");
            assert!(obj.remove("took").is_some_and(|t| t.is_string()));
            obj.remove("endpoint");
        }
        v
    };
    assert_eq!(strip(&actual.stdout_text()), strip(&expected.stdout_text()));

    let actual = t.rafter(&["endpoint", "health"], b"").await;
    let prefix = format!(
        "{} is healthy: successfully committed proposal: took = ",
        t.rafter_endpoint
    );
    assert!(actual.stderr.starts_with(&prefix), "{actual:?}");
    assert_eq!((actual.code, actual.stdout.len()), (0, 0));
}

#[tokio::test]
async fn dead_endpoints_in_status_and_health() {
    let t = Twins::start();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    // The harness appends `--endpoints=<twin>`; both tools add repeated
    // `--endpoints` lists up, so this checks the twin, `dead`, the twin.
    let endpoints = format!("--endpoints={},{dead}", t.etcdctl_endpoint);
    let args = [
        "endpoint",
        "status",
        "--command-timeout",
        "1s",
        "-w",
        "json",
        &endpoints,
    ];
    let expected = support::etcdctl_raw(&t.etcdctl_endpoint, &args, b"");
    let actual = rafter_raw(&t.etcdctl_endpoint, &args, b"").await;
    assert_eq!(
        (actual.code, &actual.stderr),
        (expected.code, &expected.stderr)
    );
    assert_eq!(actual.code, 1);

    let args = [
        "endpoint",
        "health",
        "--command-timeout",
        "1s",
        "-w",
        "table",
        &endpoints,
    ];
    let expected = support::etcdctl_raw(&t.etcdctl_endpoint, &args, b"");
    let actual = rafter_raw(&t.etcdctl_endpoint, &args, b"").await;
    assert_eq!(
        (actual.code, &actual.stderr),
        (expected.code, &expected.stderr)
    );
    // Rows come in the order the checks finish: the dead endpoint last.
    let cells = table_cells(&actual.stdout_text(), 2);
    assert_eq!(cells, table_cells(&expected.stdout_text(), 2));
    assert_eq!(cells.last().map(|row| row[1].as_str()), Some(dead.as_str()));
}

#[tokio::test]
async fn ranges_larger_than_four_mib() {
    let t = Twins::start();
    let value = vec![b'v'; 1_200_000];
    for k in ["big1", "big2", "big3", "big4"] {
        t.same(&["put", k], &value).await;
    }
    let out = t
        .same(&["get", "big", "--prefix", "--print-value-only"], b"")
        .await;
    assert_eq!(out.stdout.len(), 4 * (value.len() + 1));
}
