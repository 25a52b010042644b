//! The FUSE side: a passthrough to a backing directory in which file data
//! lives in [`Overlay`]s until fsync, and each call first consults the
//! injected faults. Metadata changes (create, rename, unlink, mkdir) go to
//! the backing directory at once: the faults modelled here are about data.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::overlay::Overlay;
use crate::Shared;

/// Nothing is cached by the kernel: after a crash drops unsynced data,
/// sizes and contents must come from here again.
const TTL: Duration = Duration::ZERO;

/// Inodes, open files and unsynced data.
#[derive(Default)]
pub(crate) struct State {
    /// Inode number to path relative to the backing directory.
    paths: HashMap<u64, PathBuf>,
    inodes: HashMap<PathBuf, u64>,
    next_inode: u64,
    pub(crate) overlays: HashMap<u64, Overlay>,
    handles: HashMap<u64, (u64, Arc<File>)>,
    next_handle: u64,
}

impl State {
    pub(crate) fn new() -> Self {
        let mut state = State {
            next_inode: INodeNo::ROOT.0 + 1,
            next_handle: 1,
            ..State::default()
        };
        state.paths.insert(INodeNo::ROOT.0, PathBuf::new());
        state.inodes.insert(PathBuf::new(), INodeNo::ROOT.0);
        state
    }

    fn inode_for(&mut self, relative: &Path) -> u64 {
        if let Some(inode) = self.inodes.get(relative) {
            return *inode;
        }
        let inode = self.next_inode;
        self.next_inode += 1;
        self.paths.insert(inode, relative.to_path_buf());
        self.inodes.insert(relative.to_path_buf(), inode);
        inode
    }

    fn forget_path(&mut self, relative: &Path) {
        if let Some(inode) = self.inodes.remove(relative) {
            self.paths.remove(&inode);
            self.overlays.remove(&inode);
        }
    }

    fn relative(&self, inode: INodeNo) -> Result<PathBuf, Errno> {
        self.paths.get(&inode.0).cloned().ok_or(Errno::ENOENT)
    }

    fn handle(&self, handle: FileHandle) -> Result<(u64, Arc<File>), Errno> {
        self.handles.get(&handle.0).cloned().ok_or(Errno::EBADF)
    }

    fn open_handle(&mut self, inode: u64, file: File) -> u64 {
        let handle = self.next_handle;
        self.next_handle += 1;
        self.handles.insert(handle, (inode, Arc::new(file)));
        handle
    }
}

/// The mounted file system.
pub(crate) struct FaultFs {
    pub(crate) shared: Arc<Shared>,
}

fn errno(e: io::Error) -> Errno {
    Errno::from(e)
}

impl FaultFs {
    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn full_path(&self, relative: &Path) -> PathBuf {
        self.shared.backing.join(relative)
    }

    /// Blocks as a stalled disk does.
    fn stall(&self) {
        let stall_ms = self.shared.faults.stall_ms.load(Ordering::Relaxed);
        if stall_ms > 0 {
            std::thread::sleep(Duration::from_millis(stall_ms));
        }
    }

    fn attr(&self, state: &State, inode: u64, relative: &Path) -> Result<FileAttr, Errno> {
        let metadata = std::fs::symlink_metadata(self.full_path(relative)).map_err(errno)?;
        let kind = if metadata.is_dir() {
            FileType::Directory
        } else if metadata.file_type().is_symlink() {
            FileType::Symlink
        } else {
            FileType::RegularFile
        };
        let size = state
            .overlays
            .get(&inode)
            .map_or(metadata.len(), Overlay::size_bytes);
        let time = |seconds: i64, nanos: i64| {
            UNIX_EPOCH + Duration::new(seconds.max(0) as u64, nanos.max(0) as u32)
        };
        Ok(FileAttr {
            ino: INodeNo(inode),
            size,
            blocks: size.div_ceil(512),
            atime: time(metadata.atime(), metadata.atime_nsec()),
            mtime: time(metadata.mtime(), metadata.mtime_nsec()),
            ctime: time(metadata.ctime(), metadata.ctime_nsec()),
            crtime: UNIX_EPOCH,
            kind,
            perm: (metadata.mode() & 0o7777) as u16,
            nlink: metadata.nlink() as u32,
            uid: metadata.uid(),
            gid: metadata.gid(),
            rdev: metadata.rdev() as u32,
            blksize: 4096,
            flags: 0,
        })
    }

    fn entry(&self, parent: INodeNo, name: &OsStr) -> Result<FileAttr, Errno> {
        let mut state = self.state();
        let relative = state.relative(parent)?.join(name);
        std::fs::symlink_metadata(self.full_path(&relative)).map_err(errno)?;
        let inode = state.inode_for(&relative);
        self.attr(&state, inode, &relative)
    }

    /// The size a file has now, unsynced changes included.
    fn size_of(state: &State, inode: u64, file: &File) -> Result<u64, Errno> {
        match state.overlays.get(&inode) {
            Some(overlay) => Ok(overlay.size_bytes()),
            None => Ok(file.metadata().map_err(errno)?.len()),
        }
    }

    /// A change that would make a file longer fails on a full disk.
    fn check_growth(&self, current_bytes: u64, new_end: u64) -> Result<(), Errno> {
        if new_end > current_bytes && self.shared.faults.full.load(Ordering::Relaxed) {
            return Err(Errno::ENOSPC);
        }
        Ok(())
    }

    fn overlay<'a>(
        state: &'a mut State,
        inode: u64,
        file: &File,
    ) -> Result<&'a mut Overlay, Errno> {
        match state.overlays.entry(inode) {
            std::collections::hash_map::Entry::Occupied(entry) => Ok(entry.into_mut()),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let size = file.metadata().map_err(errno)?.len();
                Ok(entry.insert(Overlay::new(size)))
            }
        }
    }

    fn open_file(&self, relative: &Path, flags: i32) -> io::Result<File> {
        let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
        OpenOptions::new()
            .read(true)
            .write(writable)
            .open(self.full_path(relative))
    }

    fn do_setattr(
        &self,
        inode: INodeNo,
        mode: Option<u32>,
        size: Option<u64>,
        handle: Option<FileHandle>,
    ) -> Result<FileAttr, Errno> {
        let mut state = self.state();
        let relative = state.relative(inode)?;
        if let Some(mode) = mode {
            std::fs::set_permissions(
                self.full_path(&relative),
                std::fs::Permissions::from_mode(mode & 0o7777),
            )
            .map_err(errno)?;
        }
        if let Some(size) = size {
            let file = match handle.map(|h| state.handle(h)) {
                Some(Ok((_, file))) => file,
                _ => Arc::new(self.open_file(&relative, libc::O_RDWR).map_err(errno)?),
            };
            let current = Self::size_of(&state, inode.0, &file)?;
            self.check_growth(current, size)?;
            Self::overlay(&mut state, inode.0, &file)?.set_size(size);
        }
        self.attr(&state, inode.0, &relative)
    }

    fn do_write(&self, handle: FileHandle, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        self.stall();
        let faults = &self.shared.faults;
        if faults.fail_writes.load(Ordering::Relaxed) {
            return Err(Errno::EIO);
        }
        let mut state = self.state();
        let (inode, file) = state.handle(handle)?;
        let current = Self::size_of(&state, inode, &file)?;
        self.check_growth(current, offset + data.len() as u64)?;
        Self::overlay(&mut state, inode, &file)?
            .write(&file, offset, data)
            .map_err(errno)?;
        Ok(data.len() as u32)
    }

    fn do_fsync(&self, handle: FileHandle) -> Result<(), Errno> {
        self.stall();
        let faults = &self.shared.faults;
        let mut state = self.state();
        let (inode, file) = state.handle(handle)?;
        if faults.fail_fsync.load(Ordering::Relaxed) {
            // As Linux does after a failed writeback: the pages are
            // marked clean, so the data is gone and a retried fsync
            // would report success.
            if let Some(overlay) = state.overlays.remove(&inode) {
                self.shared
                    .lost_bytes
                    .fetch_add(overlay.unsynced_bytes(), Ordering::Relaxed);
            }
            return Err(Errno::EIO);
        }
        if let Some(overlay) = state.overlays.get(&inode) {
            overlay.write_back(&file).map_err(errno)?;
            state.overlays.remove(&inode);
        } else {
            file.sync_all().map_err(errno)?;
        }
        self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn do_create(
        &self,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> Result<(FileAttr, u64), Errno> {
        let mut state = self.state();
        let relative = state.relative(parent)?.join(name);
        let mut options = OpenOptions::new();
        options.read(true).write(true).mode(mode & !umask & 0o7777);
        if flags & libc::O_EXCL != 0 {
            options.create_new(true);
        } else {
            options.create(true);
        }
        let file = options.open(self.full_path(&relative)).map_err(errno)?;
        let inode = state.inode_for(&relative);
        if flags & libc::O_TRUNC != 0 {
            Self::overlay(&mut state, inode, &file)?.set_size(0);
        }
        let attr = self.attr(&state, inode, &relative)?;
        let handle = state.open_handle(inode, file);
        Ok((attr, handle))
    }

    fn do_open(&self, inode: INodeNo, flags: i32) -> Result<u64, Errno> {
        let mut state = self.state();
        let relative = state.relative(inode)?;
        let file = self.open_file(&relative, flags).map_err(errno)?;
        if flags & libc::O_TRUNC != 0 {
            Self::overlay(&mut state, inode.0, &file)?.set_size(0);
        }
        Ok(state.open_handle(inode.0, file))
    }

    fn do_read(&self, handle: FileHandle, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let state = self.state();
        let (inode, file) = state.handle(handle)?;
        match state.overlays.get(&inode) {
            Some(overlay) => overlay.read(&file, offset, size as u64),
            None => {
                Overlay::new(file.metadata().map_err(errno)?.len()).read(&file, offset, size as u64)
            }
        }
        .map_err(errno)
    }

    /// Removes a file or an empty directory (`remove` says which) and
    /// forgets its inode and unsynced data.
    fn remove(
        &self,
        parent: INodeNo,
        name: &OsStr,
        remove: fn(&Path) -> io::Result<()>,
    ) -> Result<(), Errno> {
        let mut state = self.state();
        let relative = state.relative(parent)?.join(name);
        remove(&self.full_path(&relative)).map_err(errno)?;
        state.forget_path(&relative);
        Ok(())
    }

    fn do_rename(
        &self,
        parent: INodeNo,
        name: &OsStr,
        new_parent: INodeNo,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        let mut state = self.state();
        let from = state.relative(parent)?.join(name);
        let to = state.relative(new_parent)?.join(new_name);
        if flags.contains(RenameFlags::RENAME_NOREPLACE) && self.full_path(&to).exists() {
            return Err(Errno::EEXIST);
        }
        std::fs::rename(self.full_path(&from), self.full_path(&to)).map_err(errno)?;
        state.forget_path(&to);
        let moved: Vec<(u64, PathBuf)> = state
            .paths
            .iter()
            .filter(|(_, path)| path.starts_with(&from))
            .map(|(inode, path)| (*inode, path.clone()))
            .collect();
        for (inode, path) in moved {
            // (joining an empty rest would add a trailing slash)
            let rest = path.strip_prefix(&from).expect("under the old path");
            let renamed = if rest.as_os_str().is_empty() {
                to.clone()
            } else {
                to.join(rest)
            };
            state.inodes.remove(&path);
            state.inodes.insert(renamed.clone(), inode);
            state.paths.insert(inode, renamed);
        }
        Ok(())
    }

    fn do_fallocate(
        &self,
        handle: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<(), Errno> {
        let mut state = self.state();
        let (inode, file) = state.handle(handle)?;
        let current = Self::size_of(&state, inode, &file)?;
        match mode {
            0 => {
                self.check_growth(current, offset + length)?;
                if offset + length > current {
                    Self::overlay(&mut state, inode, &file)?.set_size(offset + length);
                }
                Ok(())
            }
            libc::FALLOC_FL_KEEP_SIZE => {
                if self.shared.faults.full.load(Ordering::Relaxed) {
                    return Err(Errno::ENOSPC);
                }
                Ok(())
            }
            _ => Err(Errno::EOPNOTSUPP),
        }
    }

    fn do_readdir(
        &self,
        inode: INodeNo,
        offset: u64,
        reply: &mut ReplyDirectory,
    ) -> Result<(), Errno> {
        let mut state = self.state();
        let relative = state.relative(inode)?;
        let mut names: Vec<(std::ffi::OsString, FileType)> =
            std::fs::read_dir(self.full_path(&relative))
                .map_err(errno)?
                .filter_map(Result::ok)
                .map(|entry| {
                    let kind = match entry.file_type() {
                        Ok(t) if t.is_dir() => FileType::Directory,
                        Ok(t) if t.is_symlink() => FileType::Symlink,
                        _ => FileType::RegularFile,
                    };
                    (entry.file_name(), kind)
                })
                .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let mut entries = vec![
            (inode.0, FileType::Directory, std::ffi::OsString::from(".")),
            (inode.0, FileType::Directory, std::ffi::OsString::from("..")),
        ];
        for (name, kind) in names {
            let child = state.inode_for(&relative.join(&name));
            entries.push((child, kind, name));
        }
        for (index, (child, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), index as u64 + 1, kind, &name) {
                break;
            }
        }
        Ok(())
    }
}

impl Filesystem for FaultFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.entry(parent, name) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let state = self.state();
        match state
            .relative(ino)
            .and_then(|r| self.attr(&state, ino.0, &r))
        {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self.do_setattr(ino, mode, size, fh) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let result = (|| {
            let relative = self.state().relative(parent)?.join(name);
            let full = self.full_path(&relative);
            std::fs::create_dir(&full).map_err(errno)?;
            std::fs::set_permissions(
                &full,
                std::fs::Permissions::from_mode(mode & !umask & 0o7777),
            )
            .map_err(errno)?;
            self.entry(parent, name)
        })();
        match result {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.remove(parent, name, |p| std::fs::remove_file(p)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.remove(parent, name, |p| std::fs::remove_dir(p)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        match self.do_rename(parent, name, newparent, newname, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.do_open(ino, flags.0) {
            Ok(handle) => reply.opened(FileHandle(handle), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.do_read(fh, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.do_write(fh, offset, data) {
            Ok(written) => reply.written(written),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.state().handles.remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.do_fsync(fh) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.do_readdir(ino, offset, &mut reply) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let relative = self.state().relative(ino);
        match relative.and_then(|r| {
            File::open(self.full_path(&r))
                .and_then(|d| d.sync_all())
                .map_err(errno)
        }) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let full = self.shared.faults.full.load(Ordering::Relaxed);
        let path = std::ffi::CString::new(self.shared.backing.as_os_str().as_encoded_bytes())
            .expect("a path without NUL");
        // SAFETY: statvfs writes into the zeroed struct it is given.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
            reply.error(Errno::from(io::Error::last_os_error()));
            return;
        }
        let (free, available) = if full {
            (0, 0)
        } else {
            (stat.f_bfree, stat.f_bavail)
        };
        reply.statfs(
            stat.f_blocks,
            free,
            available,
            stat.f_files,
            stat.f_ffree,
            stat.f_bsize as u32,
            stat.f_namemax as u32,
            stat.f_frsize as u32,
        );
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match self.do_create(parent, name, mode, umask, flags) {
            Ok((attr, handle)) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(handle),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        match self.do_fallocate(fh, offset, length, mode) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }
}
