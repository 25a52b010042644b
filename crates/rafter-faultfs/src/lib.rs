//! A disk for fault tests, in the spirit of LazyFS (which etcd's robustness
//! tests use): a FUSE file system over a backing directory whose writes
//! stay in memory until the file is fsynced, so a crash can lose exactly
//! what was never synced. It can also stall writes and fsyncs, fail them
//! with EIO (dropping the unsynced data, as Linux does after a failed
//! writeback), and behave as a full disk (ENOSPC for anything that needs
//! more space). A test mounts it under a member's data directory, runs the
//! real server on it and turns faults on and off from outside.

mod fs;
mod overlay;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use overlay::{Overlay, PAGE_BYTES};

/// Faults the test turns on and off.
#[derive(Default)]
struct Faults {
    stall_ms: AtomicU64,
    fail_fsync: AtomicBool,
    fail_writes: AtomicBool,
    full: AtomicBool,
}

/// What the FUSE threads and the test share.
struct Shared {
    backing: PathBuf,
    state: Mutex<fs::State>,
    faults: Faults,
    fsyncs: AtomicU64,
    lost_bytes: AtomicU64,
}

/// Why fault tests cannot run on this machine, if they cannot: FUSE needs
/// `/dev/fuse`, `fusermount3` (Debian's fuse3) and root.
pub fn unavailable() -> Option<String> {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_err()
    {
        return Some("/dev/fuse cannot be opened (FUSE is missing or not permitted)".into());
    }
    let found = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join("fusermount3").exists())
    });
    if !found {
        return Some("fusermount3 is not installed (Debian's fuse3 package)".into());
    }
    None
}

/// A mounted fault file system; unmounted when dropped.
pub struct FaultDisk {
    shared: Arc<Shared>,
    mountpoint: PathBuf,
    session: Option<fuser::BackgroundSession>,
}

impl FaultDisk {
    /// Mounts a view of `backing` at `mountpoint` (both directories).
    pub fn mount(backing: &Path, mountpoint: &Path) -> std::io::Result<FaultDisk> {
        let shared = Arc::new(Shared {
            backing: backing.to_path_buf(),
            state: Mutex::new(fs::State::new()),
            faults: Faults::default(),
            fsyncs: AtomicU64::new(0),
            lost_bytes: AtomicU64::new(0),
        });
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("rafter-faultfs".into()),
            fuser::MountOption::AutoUnmount,
        ];
        config.acl = fuser::SessionACL::All;
        let session = fuser::spawn_mount(
            fs::FaultFs {
                shared: Arc::clone(&shared),
            },
            mountpoint,
            &config,
        )?;
        Ok(FaultDisk {
            shared,
            mountpoint: mountpoint.to_path_buf(),
            session: Some(session),
        })
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Every write and fsync first waits this long (zero: no stall).
    pub fn stall(&self, delay: Duration) {
        self.shared
            .faults
            .stall_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// fsync fails with EIO, and the data it should have synced is lost.
    pub fn fail_fsync(&self, on: bool) {
        self.shared.faults.fail_fsync.store(on, Ordering::Relaxed);
    }

    /// Writes fail with EIO.
    pub fn fail_writes(&self, on: bool) {
        self.shared.faults.fail_writes.store(on, Ordering::Relaxed);
    }

    /// The disk is full: anything that needs more space fails with ENOSPC.
    pub fn fill(&self, full: bool) {
        self.shared.faults.full.store(full, Ordering::Relaxed);
    }

    /// What a power cut does: every write not yet fsynced is forgotten.
    /// Call it after the processes using the disk were killed. Returns the
    /// bytes (in whole pages) that were lost.
    pub fn lose_unsynced(&self) -> u64 {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let lost: u64 = state.overlays.values().map(Overlay::unsynced_bytes).sum();
        state.overlays.clear();
        self.shared.lost_bytes.fetch_add(lost, Ordering::Relaxed);
        lost
    }

    /// Bytes (in whole pages) written and not yet synced.
    pub fn unsynced_bytes(&self) -> u64 {
        let state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.overlays.values().map(Overlay::unsynced_bytes).sum()
    }

    /// Bytes lost so far, by crashes and failed fsyncs.
    pub fn lost_bytes(&self) -> u64 {
        self.shared.lost_bytes.load(Ordering::Relaxed)
    }

    /// Successful fsyncs so far.
    pub fn fsyncs(&self) -> u64 {
        self.shared.fsyncs.load(Ordering::Relaxed)
    }
}

impl Drop for FaultDisk {
    fn drop(&mut self) {
        // A lazy unmount ends the session's reads at once, even while a
        // killed process's files are still being closed; the session's own
        // unmount waits for the mount to be idle.
        let _ = std::process::Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(&self.mountpoint)
            .stderr(std::process::Stdio::null())
            .status();
        if let Some(session) = self.session.take() {
            let _ = session.join();
        }
    }
}
