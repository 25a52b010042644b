//! The container image and the compose cluster (deploy/compose.yaml): the
//! image is built from this repository alone (`scripts/docker-image.sh`,
//! with the `rafter` binary these tests built), three containers start
//! with named volumes, the real `etcdctl` writes through them, one
//! container is stopped and started again and still holds the data. Also
//! checks the Kubernetes manifest against the object schemas without a
//! cluster (`scripts/validate-k8s.sh`), and that the check rejects a broken
//! manifest.
//!
//! Needs Docker and docker-compose: without them the test says SKIPPED and
//! why (CI machines have Docker).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::free_port;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

#[track_caller]
fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn docker_missing() -> Option<String> {
    match Command::new("docker").arg("info").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Some(format!(
                "`docker info` failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
        Err(e) => return Some(format!("no docker: {e}")),
    }
    match Command::new("docker-compose").arg("version").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("no docker-compose (scripts/install-test-deps.sh installs it)".into()),
    }
}

/// The compose project; taken down with its volumes and image when dropped.
struct Project {
    name: String,
    image: String,
    ports: [u16; 3],
}

impl Project {
    fn compose(&self) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.current_dir(repo())
            .args(["-f", "deploy/compose.yaml", "-p", &self.name])
            .env("RAFTER_IMAGE", &self.image);
        for (i, port) in self.ports.iter().enumerate() {
            cmd.env(format!("RAFTER_PORT_{i}"), port.to_string());
        }
        cmd
    }

    fn etcdctl(&self, member: usize) -> Command {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=127.0.0.1:{}", self.ports[member]));
        cmd
    }

    /// Polls `etcdctl <args>` on `member` until its output contains `want`.
    fn wait_for(&self, member: usize, args: &[&str], want: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = run(self.etcdctl(member).args(args));
            // etcdctl prints health to stderr, values to stdout.
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.success() && text.contains(want) {
                return;
            }
            if Instant::now() >= deadline {
                let logs = run(self.compose().args(["logs", "--tail", "30"]));
                panic!(
                    "etcdctl {args:?} on rafter-{member} never showed {want:?}; last: {text}\n{}",
                    String::from_utf8_lossy(&logs.stdout)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self
            .compose()
            .args(["down", "-v", "--remove-orphans"])
            .output();
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.image])
            .output();
    }
}

#[test]
fn the_image_runs_a_compose_cluster_that_keeps_its_data() {
    if let Some(why) = docker_missing() {
        println!("SKIPPED: this test needs Docker and docker-compose: {why}");
        eprintln!("SKIPPED: this test needs Docker and docker-compose: {why}");
        return;
    }
    let id = std::process::id();
    let project = Project {
        name: format!("rafter-test-{id}"),
        image: format!("rafter:test-{id}"),
        ports: [free_port(), free_port(), free_port()],
    };
    ok(Command::new(repo().join("scripts/docker-image.sh"))
        .arg(&project.image)
        .arg(env!("CARGO_BIN_EXE_rafter")));
    ok(project.compose().args(["up", "-d"]));
    for member in 0..3 {
        project.wait_for(member, &["endpoint", "health"], "is healthy");
    }
    ok(project.etcdctl(0).args(["put", "survives", "restarts"]));
    project.wait_for(1, &["get", "survives", "--consistency=s"], "restarts");
    ok(project.compose().args(["stop", "rafter-1"]));
    ok(project.compose().args(["start", "rafter-1"]));
    // Served from rafter-1's own volume (a serializable read), and the
    // member rejoined: a linearizable read through it works too.
    project.wait_for(1, &["get", "survives", "--consistency=s"], "restarts");
    project.wait_for(1, &["get", "survives"], "restarts");
    let status = ok(project
        .etcdctl(1)
        .args(["endpoint", "status", "-w", "json"]));
    assert!(status.contains("\"raft_term\""), "{status}");
}

#[test]
fn the_kubernetes_manifest_passes_the_schema_check_and_a_broken_one_fails() {
    ok(&mut Command::new(repo().join("scripts/validate-k8s.sh")));
    let manifest =
        std::fs::read_to_string(repo().join("deploy/k8s/rafter.yaml")).expect("manifest");
    let broken = manifest.replace("replicas: 3", "replicas: three");
    assert_ne!(broken, manifest);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, broken).expect("write");
    let out = run(
        Command::new(repo().join("target/k8s-validate-venv/bin/kubernetes-validate"))
            .arg("--strict")
            .arg(&path),
    );
    assert!(
        !out.status.success(),
        "the schema check accepted replicas: three"
    );
}
