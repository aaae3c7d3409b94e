//! The FUSE side: translates the kernel's requests into calls on [`State`] and answers them. It
//! owns the choices that keep the kernel from caching what a power loss may take away: every
//! open is `direct_io` (no page cache, so every read and write comes here; shared mappings are
//! allowed, see `init`) and attributes and
//! entries have a zero TTL (so a size after a loss is asked for again). Metadata operations
//! (create, mkdir, rename, unlink, rmdir, setattr other than size) pass straight through to the
//! backing directory; only file data and size are held. It does not mount or unmount (see
//! `main.rs`) and holds no data itself.

use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::state::{errno, State};

/// Zero: the kernel must ask again for every entry and size, since a loss changes sizes.
const TTL: Duration = Duration::ZERO;

/// The FUSE filesystem over a shared [`State`].
pub struct LazyFilesystem {
    state: Arc<Mutex<State>>,
}

impl LazyFilesystem {
    pub fn new(state: Arc<Mutex<State>>) -> LazyFilesystem {
        LazyFilesystem { state }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock ends the process (see main's panic hook), so a
        // poisoned lock is never seen by a running filesystem.
        self.state.lock().expect("lazyfs state lock poisoned")
    }

    /// Looks up `rel`, counting a kernel lookup, and builds its attributes.
    fn entry(&self, state: &mut State, rel: &Path) -> Result<FileAttr, i32> {
        let md = std::fs::symlink_metadata(state.backing(rel)).map_err(errno)?;
        let ino = state.intern(rel, &md, true);
        Ok(attr(ino, &md, state.size_bytes(ino, &md)))
    }

    fn attr_of(&self, state: &State, ino: u64) -> Result<FileAttr, i32> {
        let md = state.metadata(ino)?;
        Ok(attr(ino, &md, state.size_bytes(ino, &md)))
    }
}

/// fuser's errno type for a raw errno.
fn err(code: i32) -> Errno {
    Errno::from_i32(code)
}

/// FUSE attributes from the backing metadata, with the size readers see.
fn attr(ino: u64, md: &Metadata, size_bytes: u64) -> FileAttr {
    let time = |secs: i64, nanos: i64| {
        let secs = u64::try_from(secs).unwrap_or(0);
        UNIX_EPOCH + Duration::new(secs, u32::try_from(nanos).unwrap_or(0))
    };
    FileAttr {
        ino: INodeNo(ino),
        size: size_bytes,
        blocks: size_bytes.div_ceil(512).max(md.blocks()),
        atime: time(md.atime(), md.atime_nsec()),
        mtime: time(md.mtime(), md.mtime_nsec()),
        ctime: time(md.ctime(), md.ctime_nsec()),
        crtime: UNIX_EPOCH,
        kind: FileType::from_std(md.file_type()).unwrap_or(FileType::RegularFile),
        perm: (md.mode() & 0o7777) as u16,
        nlink: md.nlink() as u32,
        uid: md.uid(),
        gid: md.gid(),
        rdev: md.rdev() as u32,
        blksize: 4096,
        flags: 0,
    }
}

fn system_time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

/// A fresh read-only handle by path, enough for root to set modes, owners and times.
fn meta_handle(state: &State, ino: u64) -> Result<File, i32> {
    let node = state.node(ino)?;
    File::open(state.backing(&node.path)).map_err(errno)
}

/// Passes mode, owner and time changes through to the backing file.
fn set_metadata(
    state: &State,
    ino: u64,
    mode: Option<u32>,
    owner: (Option<u32>, Option<u32>),
    times: (Option<TimeOrNow>, Option<TimeOrNow>),
) -> Result<(), i32> {
    if mode.is_none() && owner == (None, None) && times == (None, None) {
        return Ok(());
    }
    let file = meta_handle(state, ino)?;
    if let Some(mode) = mode {
        let perms = std::fs::Permissions::from_mode(mode & 0o7777);
        file.set_permissions(perms).map_err(errno)?;
    }
    if owner != (None, None) {
        std::os::unix::fs::fchown(&file, owner.0, owner.1).map_err(errno)?;
    }
    let mut file_times = std::fs::FileTimes::new();
    if let Some(t) = times.0 {
        file_times = file_times.set_accessed(system_time(t));
    }
    if let Some(t) = times.1 {
        file_times = file_times.set_modified(system_time(t));
    }
    if times != (None, None) {
        file.set_times(file_times).map_err(errno)?;
    }
    Ok(())
}

/// Gives a file a non-root caller created to that caller, as a local filesystem would.
fn chown_to_caller(path: &Path, req: &Request) {
    if nix::unistd::geteuid().is_root() && req.uid() != 0 {
        let _ = std::os::unix::fs::lchown(path, Some(req.uid()), Some(req.gid()));
    }
}

impl Filesystem for LazyFilesystem {
    /// Asks the kernel to allow shared `mmap` of these `direct_io` files (Linux 6.6+,
    /// `FUSE_DIRECT_IO_ALLOW_MMAP`): SQLite in WAL mode maps its `-shm` file and fails with
    /// SQLITE_IOERR_SHMMAP without it (Tansu on SQLite did). Mapped pages live in the page cache
    /// and reach this filesystem as writes when the kernel writes them back, so what a process
    /// wrote through a mapping is held like any unsynced write until it is written back and
    /// fsynced. Plain reads and writes still bypass the page cache. An older kernel keeps
    /// refusing shared mappings, said once on stderr.
    fn init(&mut self, _req: &Request, config: &mut fuser::KernelConfig) -> std::io::Result<()> {
        if let Err(missing) = config.add_capabilities(fuser::InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP) {
            eprintln!(
                "faultline-lazyfs: the kernel lacks {missing:?}: shared mmap of files on this \
                 mount will fail (SQLite's WAL mode needs it)"
            );
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut state = self.lock();
        let result = state
            .child_path(parent.0, name)
            .and_then(|rel| self.entry(&mut state, &rel));
        match result {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(code) => reply.error(err(code)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.lock().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let state = self.lock();
        match self.attr_of(&state, ino.0) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(code) => reply.error(err(code)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut state = self.lock();
        let result = set_metadata(&state, ino.0, mode, (uid, gid), (atime, mtime))
            .and_then(|()| match size {
                Some(size) => state.truncate(ino.0, size),
                None => Ok(()),
            })
            .and_then(|()| self.attr_of(&state, ino.0));
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(code) => reply.error(err(code)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut state = self.lock();
        let result = state.child_path(parent.0, name).and_then(|rel| {
            let path = state.backing(&rel);
            std::fs::DirBuilder::new()
                .mode(mode & !umask & 0o7777)
                .create(&path)
                .map_err(errno)?;
            chown_to_caller(&path, req);
            self.entry(&mut state, &rel)
        });
        match result {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(code) => reply.error(err(code)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.lock();
        let result = state.child_path(parent.0, name).and_then(|rel| {
            let path = state.backing(&rel);
            let md = std::fs::symlink_metadata(&path).map_err(errno)?;
            std::fs::remove_file(&path).map_err(errno)?;
            state.name_removed(&md);
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(code) => reply.error(err(code)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.lock();
        let result = state.child_path(parent.0, name).and_then(|rel| {
            let path = state.backing(&rel);
            let md = std::fs::symlink_metadata(&path).map_err(errno)?;
            std::fs::remove_dir(&path).map_err(errno)?;
            state.name_removed(&md);
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(code) => reply.error(err(code)),
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
        let mut state = self.lock();
        let result = rename(&mut state, (parent.0, name), (newparent.0, newname), flags);
        match result {
            Ok(()) => reply.ok(),
            Err(code) => reply.error(err(code)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.lock().open(ino.0) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            Err(code) => reply.error(err(code)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.lock().read(ino.0, offset, u64::from(size)) {
            Ok(data) => reply.data(&data),
            Err(code) => reply.error(err(code)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut state = self.lock();
        let append = flags.0 & libc::O_APPEND != 0;
        let sync = flags.0 & (libc::O_SYNC | libc::O_DSYNC) != 0;
        let result = state
            .write(ino.0, offset, data, append)
            // An O_SYNC/O_DSYNC write is durable when it returns, on a real disk too.
            .and_then(|()| {
                if sync {
                    state.sync(ino.0, true)
                } else {
                    Ok(())
                }
            });
        match result {
            Ok(()) => reply.written(data.len() as u32),
            Err(code) => reply.error(err(code)),
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
        // close() does not make data durable on a real disk either.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.lock().release(ino.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.lock().sync(ino.0, datasync) {
            Ok(()) => reply.ok(),
            Err(code) => reply.error(err(code)),
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
        let mut state = self.lock();
        let entries = match list_dir(&mut state, ino.0) {
            Ok(entries) => entries,
            Err(code) => return reply.error(err(code)),
        };
        for (i, (entry_ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*entry_ino), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Directory entries are already on the backing disk; fsync them there as asked.
        let state = self.lock();
        let result = state
            .node(ino.0)
            .and_then(|n| File::open(state.backing(&n.path)).map_err(errno))
            .and_then(|dir| dir.sync_all().map_err(errno));
        match result {
            Ok(()) => reply.ok(),
            Err(code) => reply.error(err(code)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let root = self.lock().backing(Path::new(""));
        match nix::sys::statvfs::statvfs(&root) {
            Ok(s) => reply.statfs(
                s.blocks(),
                s.blocks_free(),
                s.blocks_available(),
                s.files(),
                s.files_free(),
                s.block_size() as u32,
                s.name_max() as u32,
                s.fragment_size() as u32,
            ),
            Err(e) => reply.error(err(e as i32)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut state = self.lock();
        match create(&mut state, req, (parent.0, name), mode & !umask, flags) {
            Ok(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(code) => reply.error(err(code)),
        }
    }
}

/// Creates (or, without O_EXCL, opens) a file on the backing disk and opens it for the kernel.
/// The new name is on the backing disk at once: it survives a power loss, empty.
fn create(
    state: &mut State,
    req: &Request,
    (parent, name): (u64, &OsStr),
    mode: u32,
    flags: i32,
) -> Result<FileAttr, i32> {
    let rel = state.child_path(parent, name)?;
    let path = state.backing(&rel);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .create_new(flags & libc::O_EXCL != 0)
        .mode(mode & 0o7777)
        .open(&path)
        .map_err(errno)?;
    chown_to_caller(&path, req);
    let md = file.metadata().map_err(errno)?;
    let ino = state.intern(&rel, &md, true);
    state.adopt(ino, file);
    if flags & libc::O_TRUNC != 0 {
        state.truncate(ino, 0)?;
    }
    let md = state.metadata(ino)?;
    Ok(attr(ino, &md, state.size_bytes(ino, &md)))
}

/// Renames on the backing disk and moves the nodes that follow the name.
fn rename(
    state: &mut State,
    (parent, name): (u64, &OsStr),
    (newparent, newname): (u64, &OsStr),
    flags: RenameFlags,
) -> Result<(), i32> {
    if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
        // Exchange and whiteout would need both names' nodes swapped; nothing here uses them.
        return Err(libc::EINVAL);
    }
    let from = state.child_path(parent, name)?;
    let to = state.child_path(newparent, newname)?;
    let c_from = cstring(&state.backing(&from))?;
    let c_to = cstring(&state.backing(&to))?;
    let replaced = std::fs::symlink_metadata(state.backing(&to)).ok();
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            c_from.as_ptr(),
            libc::AT_FDCWD,
            c_to.as_ptr(),
            flags.bits(),
        )
    };
    if rc != 0 {
        return Err(errno(std::io::Error::last_os_error()));
    }
    if let Some(md) = replaced {
        state.name_removed(&md);
    }
    state.renamed(&from, &to);
    Ok(())
}

fn cstring(path: &Path) -> Result<std::ffi::CString, i32> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| libc::EINVAL)
}

/// A directory's entries: ".", "..", then the backing entries by name.
fn list_dir(state: &mut State, ino: u64) -> Result<Vec<(u64, FileType, std::ffi::OsString)>, i32> {
    let rel = state.node(ino)?.path.clone();
    let mut entries = vec![
        (ino, FileType::Directory, ".".into()),
        (ino, FileType::Directory, "..".into()),
    ];
    let mut children = Vec::new();
    for entry in std::fs::read_dir(state.backing(&rel)).map_err(errno)? {
        let entry = entry.map_err(errno)?;
        let Ok(md) = entry.metadata() else { continue };
        children.push((entry.file_name(), md));
    }
    children.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, md) in children {
        let child = state.intern(&rel.join(&name), &md, false);
        let kind = FileType::from_std(md.file_type()).unwrap_or(FileType::RegularFile);
        entries.push((child, kind, name));
    }
    Ok(entries)
}
