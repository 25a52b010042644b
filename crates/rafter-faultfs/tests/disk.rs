//! The fault disk behaves as a disk with a volatile write cache: what was
//! fsynced survives a crash, what was not is lost, and the injected
//! faults surface as the errors a real disk gives. Needs FUSE (root,
//! /dev/fuse and fusermount3): the test fails, saying so, without it.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;

use rafter_faultfs::FaultDisk;

fn mounted() -> (tempfile::TempDir, FaultDisk) {
    if let Some(why) = rafter_faultfs::unavailable() {
        panic!("the fault disk tests need FUSE: {why}");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("backing")).unwrap();
    std::fs::create_dir(dir.path().join("mnt")).unwrap();
    let disk = FaultDisk::mount(&dir.path().join("backing"), &dir.path().join("mnt")).unwrap();
    (dir, disk)
}

fn read(path: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    File::open(path).unwrap().read_to_end(&mut out).unwrap();
    out
}

#[test]
fn a_crash_loses_exactly_the_unsynced_writes() {
    let (_dir, disk) = mounted();
    let synced = disk.mountpoint().join("synced");
    let unsynced = disk.mountpoint().join("unsynced");
    std::fs::create_dir(disk.mountpoint().join("sub")).unwrap();
    let mut file = File::create(&synced).unwrap();
    file.write_all(&[1; 10_000]).unwrap();
    file.sync_all().unwrap();
    file.write_all_at(b"later", 20).unwrap();
    file.write_all(b"appended").unwrap();
    File::create(&unsynced)
        .unwrap()
        .write_all(b"never synced")
        .unwrap();
    assert_eq!(&read(&synced)[20..25], b"later");
    assert_eq!(read(&synced).len(), 10_008);
    assert!(disk.unsynced_bytes() > 0);
    drop(file);

    let lost = disk.lose_unsynced();
    assert!(lost >= 2 * 4096, "lost {lost} bytes");
    assert_eq!(
        read(&synced),
        vec![1; 10_000],
        "the synced state, nothing after it"
    );
    assert_eq!(
        read(&unsynced),
        b"",
        "created (metadata is durable) but empty"
    );
    assert!(disk.mountpoint().join("sub").is_dir());

    let mut names: Vec<String> = std::fs::read_dir(disk.mountpoint())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["sub", "synced", "unsynced"]);
    std::fs::rename(&unsynced, disk.mountpoint().join("sub/moved")).unwrap();
    std::fs::remove_file(disk.mountpoint().join("sub/moved")).unwrap();
    assert!(disk.fsyncs() >= 1);
}

#[test]
fn a_failed_fsync_reports_eio_and_the_data_is_gone() {
    let (_dir, disk) = mounted();
    let path = disk.mountpoint().join("f");
    let mut file = File::create(&path).unwrap();
    file.write_all(b"durable").unwrap();
    file.sync_all().unwrap();
    file.write_all(b" and lost").unwrap();
    disk.fail_fsync(true);
    let error = file.sync_all().unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::EIO), "{error}");
    disk.fail_fsync(false);
    // The Linux behaviour that makes retrying wrong: the next fsync
    // succeeds, yet the data it should have saved is not there.
    file.sync_all().unwrap();
    assert_eq!(read(&path), b"durable");
    disk.fail_writes(true);
    let error = file.write_all(b"x").unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::EIO), "{error}");
}

#[test]
fn a_full_disk_refuses_growth_but_not_overwrites() {
    let (_dir, disk) = mounted();
    let path = disk.mountpoint().join("f");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    file.write_all(&[0; 8192]).unwrap();
    disk.fill(true);
    let error = file.write_all(b"more").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StorageFull, "{error}");
    file.write_all_at(b"in place", 100).unwrap();
    file.sync_all().unwrap();
    disk.fill(false);
    file.write_all(b"more").unwrap();
    assert_eq!(read(&path).len(), 8196);
}

#[test]
fn a_stalled_disk_delays_fsync() {
    let (_dir, disk) = mounted();
    let mut file = File::create(disk.mountpoint().join("f")).unwrap();
    file.write_all(b"x").unwrap();
    disk.stall(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    file.sync_all().unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}

#[test]
fn nested_directories_and_append_files_work() {
    let (_dir, disk) = mounted();
    let member = disk.mountpoint().join("data/member");
    std::fs::create_dir_all(member.join("raft")).unwrap();
    std::fs::write(member.join("raft/LOCK"), b"").unwrap();
    std::fs::write(member.join("identity.tmp"), b"id").unwrap();
    std::fs::rename(member.join("identity.tmp"), member.join("identity")).unwrap();
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(member.join("local-writes.log"))
        .unwrap();
    file.write_all(b"one").unwrap();
    file.write_all(b"two").unwrap();
    assert_eq!(read(&member.join("local-writes.log")), b"onetwo");
    assert_eq!(read(&member.join("identity")), b"id");
}
