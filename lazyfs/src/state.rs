//! The filesystem's state behind one lock: the inode table (our inode numbers ↔ backing paths),
//! the open backing files, and each file's [`Held`] writes with the bound on their total. It
//! owns what fsync, a power loss and a clean shutdown do to held data. It does not speak FUSE
//! (`fs.rs` translates requests into calls here) and does not listen for commands
//! (`control.rs` does).
//!
//! Inode numbers are ours, not the backing filesystem's: the root is 1 as FUSE requires, and
//! every other backing file (device, inode) gets the next number the first time it is seen. A
//! backing inode that is unlinked for good is forgotten from that map, so a new file that reuses
//! its number on the backing disk never inherits its held writes.

use std::collections::HashMap;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::held::Held;

/// FUSE's inode number of the mount's root.
pub const ROOT_INO: u64 = 1;

/// One file or directory the kernel knows by our inode number.
#[derive(Debug)]
pub struct Node {
    /// Path relative to the backing root ("" for the root).
    pub path: PathBuf,
    /// The backing file's (device, inode).
    key: (u64, u64),
    /// Kernel lookups not yet forgotten.
    lookups: u64,
    /// The backing file, open while the kernel holds at least one handle on it.
    file: Option<File>,
    open_handles: u32,
    /// The last name was removed: the path no longer reaches this file.
    unlinked: bool,
}

/// What a power loss dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    pub files: u64,
    pub bytes: u64,
}

/// The lock-protected state of one mount.
#[derive(Debug)]
pub struct State {
    backing_root: PathBuf,
    nodes: HashMap<u64, Node>,
    by_key: HashMap<(u64, u64), u64>,
    next_ino: u64,
    held: HashMap<u64, Held>,
    held_bytes: u64,
    /// A write that would hold more than this fails with ENOSPC rather than grow memory
    /// without bound (the cache of a real disk is bounded too, but it writes back instead).
    max_held_bytes: u64,
}

/// The errno to answer the kernel with for an I/O error (EIO when it carries none).
pub fn errno(e: io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl State {
    pub fn new(backing_root: &Path, max_held_bytes: u64) -> io::Result<State> {
        let md = std::fs::metadata(backing_root)?;
        let root = Node {
            path: PathBuf::new(),
            key: (md.dev(), md.ino()),
            lookups: 1,
            file: None,
            open_handles: 0,
            unlinked: false,
        };
        Ok(State {
            backing_root: backing_root.to_path_buf(),
            by_key: HashMap::from([(root.key, ROOT_INO)]),
            nodes: HashMap::from([(ROOT_INO, root)]),
            next_ino: ROOT_INO + 1,
            held: HashMap::new(),
            held_bytes: 0,
            max_held_bytes,
        })
    }

    pub fn node(&self, ino: u64) -> Result<&Node, i32> {
        self.nodes.get(&ino).ok_or(libc::ENOENT)
    }

    /// The backing path of a name in a directory we know.
    pub fn child_path(&self, parent: u64, name: &std::ffi::OsStr) -> Result<PathBuf, i32> {
        Ok(self.node(parent)?.path.join(name))
    }

    /// The absolute backing path of a relative one.
    pub fn backing(&self, rel: &Path) -> PathBuf {
        self.backing_root.join(rel)
    }

    /// Our inode for the backing file at `rel` (whose metadata is `md`), counting a kernel
    /// lookup when `lookup` is set.
    pub fn intern(&mut self, rel: &Path, md: &Metadata, lookup: bool) -> u64 {
        let key = (md.dev(), md.ino());
        let ino = match self.by_key.get(&key) {
            Some(&ino) => ino,
            None => {
                let ino = self.next_ino;
                self.next_ino += 1;
                self.by_key.insert(key, ino);
                let node = Node {
                    path: rel.to_path_buf(),
                    key,
                    lookups: 0,
                    file: None,
                    open_handles: 0,
                    unlinked: false,
                };
                self.nodes.insert(ino, node);
                ino
            }
        };
        let node = self.nodes.get_mut(&ino).expect("interned above");
        node.path = rel.to_path_buf();
        node.unlinked = false;
        if lookup {
            node.lookups += 1;
        }
        ino
    }

    /// The kernel dropped `n` lookups of `ino`.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.lookups = node.lookups.saturating_sub(n);
        }
        self.collect(ino);
    }

    /// Drops the held data of an unlinked, closed file, and a node nobody refers to any more.
    /// One with held writes stays while its path still reaches it: a later fsync, loss or
    /// shutdown needs it.
    fn collect(&mut self, ino: u64) {
        let Some(node) = self.nodes.get(&ino) else {
            return;
        };
        // An unlinked file's data is unreachable once its last handle closes.
        let idle = ino != ROOT_INO && node.lookups == 0 && node.open_handles == 0;
        if node.unlinked && node.open_handles == 0 {
            self.drop_held(ino);
        }
        if !idle || self.held.contains_key(&ino) {
            return;
        }
        let node = self.nodes.remove(&ino).expect("checked above");
        if self.by_key.get(&node.key) == Some(&ino) {
            self.by_key.remove(&node.key);
        }
    }

    /// The backing metadata of a node: through its open file (which also reaches an unlinked
    /// one), else by path.
    pub fn metadata(&self, ino: u64) -> Result<Metadata, i32> {
        let node = self.node(ino)?;
        match &node.file {
            Some(file) => file.metadata().map_err(errno),
            None if node.unlinked => Err(libc::ENOENT),
            None => std::fs::symlink_metadata(self.backing(&node.path)).map_err(errno),
        }
    }

    /// The size readers see: held size if any, else the backing file's.
    pub fn size_bytes(&self, ino: u64, md: &Metadata) -> u64 {
        self.held.get(&ino).map_or(md.size(), Held::size_bytes)
    }

    /// Opens the backing file for a new kernel handle (shared by all handles of the inode).
    pub fn open(&mut self, ino: u64) -> Result<(), i32> {
        let path = self.backing(&self.node(ino)?.path);
        let node = self.nodes.get_mut(&ino).ok_or(libc::ENOENT)?;
        if node.file.is_none() {
            node.file = Some(open_backing(&path).map_err(errno)?);
        }
        node.open_handles += 1;
        Ok(())
    }

    /// Hands the kernel's freshly created file to a node as its first open handle.
    pub fn adopt(&mut self, ino: u64, file: File) {
        let node = self.nodes.get_mut(&ino).expect("interned by the caller");
        if node.file.is_none() {
            node.file = Some(file);
        }
        node.open_handles += 1;
    }

    /// A kernel handle was released; the last one closes the backing file.
    pub fn release(&mut self, ino: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.open_handles = node.open_handles.saturating_sub(1);
            if node.open_handles == 0 {
                node.file = None;
            }
        }
        self.collect(ino);
    }

    fn file(&self, ino: u64) -> Result<&File, i32> {
        self.node(ino)?.file.as_ref().ok_or(libc::EBADF)
    }

    /// Reads as the kernel's reader sees the file: held writes over the backing bytes.
    pub fn read(&self, ino: u64, offset: u64, len: u64) -> Result<Vec<u8>, i32> {
        let file = self.file(ino)?;
        match self.held.get(&ino) {
            Some(held) => held.read(&file, offset, len),
            None => Held::new(file.metadata().map_err(errno)?.size()).read(&file, offset, len),
        }
        .map_err(errno)
    }

    /// Holds a write; `append` writes at the current end whatever offset the kernel sent.
    pub fn write(&mut self, ino: u64, offset: u64, data: &[u8], append: bool) -> Result<(), i32> {
        if self.held_bytes + data.len() as u64 > self.max_held_bytes {
            return Err(libc::ENOSPC);
        }
        let held = self.held_entry(ino)?;
        let offset = if append { held.size_bytes() } else { offset };
        let before = held.held_bytes();
        held.write(offset, data);
        let after = held.held_bytes();
        self.held_bytes = self.held_bytes + after - before;
        Ok(())
    }

    /// Holds a truncate or extension.
    pub fn truncate(&mut self, ino: u64, size_bytes: u64) -> Result<(), i32> {
        let held = self.held_entry(ino)?;
        let before = held.held_bytes();
        held.truncate(size_bytes);
        let after = held.held_bytes();
        self.held_bytes = self.held_bytes + after - before;
        Ok(())
    }

    fn held_entry(&mut self, ino: u64) -> Result<&mut Held, i32> {
        if !self.held.contains_key(&ino) {
            let size = self.metadata(ino)?.size();
            self.held.insert(ino, Held::new(size));
        }
        Ok(self.held.get_mut(&ino).expect("inserted above"))
    }

    /// fsync: writes the held data to the backing file and fsyncs it; the data is durable now.
    pub fn sync(&mut self, ino: u64, datasync: bool) -> Result<(), i32> {
        let node = self.node(ino)?;
        let opened;
        let file = match &node.file {
            Some(file) => file,
            None if node.unlinked => {
                self.drop_held(ino);
                return Ok(());
            }
            None => {
                opened = open_backing(&self.backing(&node.path)).map_err(errno)?;
                &opened
            }
        };
        if let Some(held) = self.held.get(&ino) {
            held.write_to(&mut &*file).map_err(errno)?;
        }
        let synced = if datasync {
            file.sync_data()
        } else {
            file.sync_all()
        };
        synced.map_err(errno)?;
        self.drop_held(ino);
        Ok(())
    }

    fn drop_held(&mut self, ino: u64) -> u64 {
        let bytes = self.held.remove(&ino).map_or(0, |h| h.held_bytes());
        self.held_bytes -= bytes;
        bytes
    }

    /// A power loss: every held write and truncate is gone; each file is back to its last
    /// fsynced bytes. Returns what was dropped and which inodes changed (for the kernel).
    pub fn lose_unsynced(&mut self) -> (Dropped, Vec<u64>) {
        let inos: Vec<u64> = self.held.keys().copied().collect();
        let mut dropped = Dropped::default();
        for &ino in &inos {
            dropped.files += 1;
            dropped.bytes += self.drop_held(ino);
        }
        for &ino in &inos {
            self.collect(ino);
        }
        (dropped, inos)
    }

    /// A clean shutdown: like unmounting a real disk, every held write reaches the backing
    /// files (fsynced). Returns what was written; files that fail are named in the error.
    pub fn sync_everything(&mut self) -> Result<Dropped, String> {
        let inos: Vec<u64> = self.held.keys().copied().collect();
        let mut written = Dropped::default();
        let mut failures = Vec::new();
        for ino in inos {
            let bytes = self.held.get(&ino).map_or(0, Held::held_bytes);
            match self.sync(ino, false) {
                Ok(()) => {
                    written.files += 1;
                    written.bytes += bytes;
                }
                Err(code) => failures.push(format!(
                    "{}: {}",
                    self.node(ino)
                        .map(|n| n.path.display().to_string())
                        .unwrap_or_default(),
                    io::Error::from_raw_os_error(code)
                )),
            }
        }
        if failures.is_empty() {
            Ok(written)
        } else {
            Err(failures.join("; "))
        }
    }

    /// Held totals: (files, bytes).
    pub fn held_totals(&self) -> Dropped {
        Dropped {
            files: self.held.len() as u64,
            bytes: self.held_bytes,
        }
    }

    /// A name stopped reaching the backing file whose metadata (taken just before) is `md`
    /// (unlink, rmdir, or a rename over it). When that was its last link, the file is gone on
    /// the backing disk: its node leaves the key map and, once closed, its held data goes too.
    pub fn name_removed(&mut self, md: &Metadata) {
        if md.nlink() > 1 && !md.is_dir() {
            return;
        }
        let Some(ino) = self.by_key.remove(&(md.dev(), md.ino())) else {
            return;
        };
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.unlinked = true;
        }
        self.collect(ino);
    }

    /// A rename moved `from` to `to`: every node at or below `from` follows.
    pub fn renamed(&mut self, from: &Path, to: &Path) {
        for node in self.nodes.values_mut() {
            if let Ok(rest) = node.path.strip_prefix(from) {
                node.path = if rest.as_os_str().is_empty() {
                    to.to_path_buf()
                } else {
                    to.join(rest)
                };
            }
        }
    }
}

/// Opens a backing file for reading and writing (root may always), read-only when it must.
fn open_backing(path: &Path) -> io::Result<File> {
    match OpenOptions::new().read(true).write(true).open(path) {
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EACCES | libc::EROFS | libc::EISDIR)
            ) =>
        {
            File::open(path)
        }
        other => other,
    }
}
