//! The writes one file holds in memory between two fsyncs: what a disk's volatile cache would
//! hold. It owns the merge of held writes and truncates over the backing file's bytes (for
//! reads and for the size `stat` reports), and the order in which they reach the backing file on
//! fsync. It does no I/O of its own beyond the [`Backing`] it is handed, and knows nothing of
//! FUSE, inodes or paths.
//!
//! A file's held state is a set of non-overlapping extents (offset → bytes, newest data wins),
//! its logical size, and `cut`: the smallest size it was truncated to since the last fsync.
//! Backing bytes at or beyond `cut` are dead (a truncate removed them), so a read zero-fills
//! there unless an extent covers it. Losing the held state returns the file to exactly the
//! backing file's bytes and size — the last fsynced state.

use std::collections::BTreeMap;
use std::io;

/// The durable bytes under a file: the backing file on disk, or a `Vec` in tests.
pub trait Backing {
    /// Reads at `offset` into `buf`, returning how many bytes were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Sets the length, cutting or zero-extending.
    fn set_len(&mut self, size: u64) -> io::Result<()>;
}

impl Backing for &std::fs::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(*self, buf, offset)
    }
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(*self, buf, offset)
    }
    fn set_len(&mut self, size: u64) -> io::Result<()> {
        std::fs::File::set_len(self, size)
    }
}

impl Backing for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = (offset as usize).min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let end = offset as usize + buf.len();
        if self.len() < end {
            self.resize(end, 0);
        }
        self[offset as usize..end].copy_from_slice(buf);
        Ok(())
    }
    fn set_len(&mut self, size: u64) -> io::Result<()> {
        self.resize(size as usize, 0);
        Ok(())
    }
}

/// One file's unfsynced writes and truncates.
#[derive(Debug, Clone, Default)]
pub struct Held {
    /// Non-overlapping extents by start offset; none reaches past `size_bytes`.
    extents: BTreeMap<u64, Vec<u8>>,
    /// The size the file has for readers now.
    size_bytes: u64,
    /// The smallest size truncated to since the last fsync; backing bytes from here on are dead.
    cut: Option<u64>,
    /// Bytes held in `extents`, for the memory bound and the loss report.
    held_bytes: u64,
}

impl Held {
    /// Held state over a backing file of `backing_size_bytes`, holding nothing yet.
    pub fn new(backing_size_bytes: u64) -> Held {
        Held {
            size_bytes: backing_size_bytes,
            ..Held::default()
        }
    }

    /// The size readers see.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Bytes of data held (truncates hold no bytes).
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes
    }

    /// Holds `data` written at `offset`, replacing whatever it overlaps.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = offset + data.len() as u64;
        self.size_bytes = self.size_bytes.max(end);
        // The common case of a log: appending right after the last extent grows it in place.
        if let Some((&start, last)) = self.extents.iter_mut().next_back() {
            if start + last.len() as u64 == offset {
                last.extend_from_slice(data);
                self.held_bytes += data.len() as u64;
                return;
            }
        }
        self.remove_range(offset, end);
        self.extents.insert(offset, data.to_vec());
        self.held_bytes += data.len() as u64;
    }

    /// Holds a truncate (or extension) to `size_bytes`.
    pub fn truncate(&mut self, size_bytes: u64) {
        self.remove_range(size_bytes, u64::MAX);
        if size_bytes < self.size_bytes {
            self.cut = Some(self.cut.map_or(size_bytes, |c| c.min(size_bytes)));
        }
        self.size_bytes = size_bytes;
    }

    /// Reads up to `len` bytes at `offset` as a reader sees them: backing bytes below `cut`,
    /// zeros elsewhere, held extents over both, nothing past the size.
    pub fn read(&self, backing: &impl Backing, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let end = self.size_bytes.min(offset.saturating_add(len));
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; (end - offset) as usize];
        let live_end = end.min(self.cut.unwrap_or(u64::MAX));
        if live_end > offset {
            read_full(backing, &mut buf[..(live_end - offset) as usize], offset)?;
        }
        for (&start, bytes) in self.extents.range(..end) {
            let ext_end = start + bytes.len() as u64;
            if ext_end <= offset {
                continue;
            }
            let from = start.max(offset);
            let to = ext_end.min(end);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&bytes[(from - start) as usize..(to - start) as usize]);
        }
        Ok(buf)
    }

    /// Writes the held state to `backing` in an order that leaves it equal to what readers saw:
    /// the truncate first (dead bytes go), then the extents, then the final size (a hole or an
    /// extension). The caller fsyncs afterwards and then drops this `Held`.
    pub fn write_to(&self, backing: &mut impl Backing) -> io::Result<()> {
        if let Some(cut) = self.cut {
            backing.set_len(cut)?;
        }
        for (&start, bytes) in &self.extents {
            backing.write_all_at(bytes, start)?;
        }
        backing.set_len(self.size_bytes)
    }

    /// Removes held bytes in `[from, to)`, keeping the parts of extents outside it.
    fn remove_range(&mut self, from: u64, to: u64) {
        // The extent starting before `from` may reach into the range.
        let before = self.extents.range(..from).next_back().map(|(&s, _)| s);
        let mut starts: Vec<u64> = before.into_iter().collect();
        starts.extend(self.extents.range(from..to).map(|(&s, _)| s));
        for start in starts {
            let bytes = self.extents.remove(&start).expect("listed above");
            let ext_end = start + bytes.len() as u64;
            if ext_end <= from {
                self.extents.insert(start, bytes);
                continue;
            }
            self.held_bytes -= bytes.len() as u64;
            if start < from {
                let head = bytes[..(from - start) as usize].to_vec();
                self.held_bytes += head.len() as u64;
                self.extents.insert(start, head);
            }
            if ext_end > to {
                let tail = bytes[(to - start) as usize..].to_vec();
                self.held_bytes += tail.len() as u64;
                self.extents.insert(to, tail);
            }
        }
    }
}

/// Reads until `buf` is full or the backing ends (the rest stays zero, as in a hole).
fn read_full(backing: &impl Backing, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let n = backing.read_at(&mut buf[done..], offset + done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Write(u64, Vec<u8>),
        Truncate(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..64, proptest::collection::vec(any::<u8>(), 1..24))
                .prop_map(|(o, d)| Op::Write(o, d)),
            (0u64..80).prop_map(Op::Truncate),
        ]
    }

    /// The model: the whole file as one `Vec`, as a reader would see it.
    fn apply(model: &mut Vec<u8>, op: &Op) {
        match op {
            Op::Write(offset, data) => {
                model.write_all_at(data, *offset).unwrap();
            }
            Op::Truncate(size) => model.resize(*size as usize, 0),
        }
    }

    proptest! {
        /// Reads through the held state equal the model at every step; writing it out makes
        /// the backing equal the model; losing it leaves the backing untouched.
        #[test]
        fn held_state_reads_and_writes_out_like_a_plain_file(
            backing in proptest::collection::vec(any::<u8>(), 0..48),
            ops in proptest::collection::vec(op(), 0..12),
        ) {
            let mut held = Held::new(backing.len() as u64);
            let mut model = backing.clone();
            for op in &ops {
                match op {
                    Op::Write(o, d) => held.write(*o, d),
                    Op::Truncate(s) => held.truncate(*s),
                }
                apply(&mut model, op);
                prop_assert_eq!(held.size_bytes(), model.len() as u64);
                prop_assert_eq!(&held.read(&backing, 0, 200).unwrap(), &model);
                let middle = held.read(&backing, 5, 7).unwrap();
                let want: Vec<u8> = model.iter().skip(5).take(7).copied().collect();
                prop_assert_eq!(middle, want);
            }
            let extent_bytes: u64 = held.extents.values().map(|e| e.len() as u64).sum();
            prop_assert_eq!(held.held_bytes(), extent_bytes);
            let mut synced = backing.clone();
            held.write_to(&mut synced).unwrap();
            prop_assert_eq!(synced, model);
        }
    }

    #[test]
    fn appends_grow_one_extent() {
        let mut held = Held::new(0);
        for i in 0..100u8 {
            held.write(u64::from(i) * 3, &[i, i, i]);
        }
        assert_eq!(held.extents.len(), 1);
        assert_eq!(held.held_bytes(), 300);
        assert_eq!(held.read(&Vec::new(), 297, 10).unwrap(), vec![99, 99, 99]);
    }

    #[test]
    fn a_truncate_hides_backing_bytes_until_written_again() {
        let backing = b"abcdefgh".to_vec();
        let mut held = Held::new(8);
        held.truncate(2);
        held.truncate(6);
        assert_eq!(held.read(&backing, 0, 100).unwrap(), b"ab\0\0\0\0");
        held.write(3, b"X");
        assert_eq!(held.read(&backing, 0, 100).unwrap(), b"ab\0X\0\0");
    }
}
