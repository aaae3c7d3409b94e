//! Small files that must never be seen half-written: the leader-epoch checkpoint, the HW
//! checkpoint and the controller's metadata. Each is replaced atomically (temp file, fsync,
//! rename, fsync of the directory), so a crash leaves either the old or the new content.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

/// Replaces `path` with `bytes` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp"));
    {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    // The rename itself is only durable once the directory entry is.
    File::open(dir)?.sync_all()
}

/// Reads a checkpoint holding a single decimal number (the HW checkpoint).
pub fn read_u64(path: &Path) -> std::io::Result<Option<u64>> {
    match fs::read_to_string(path) {
        Ok(text) => text.trim().parse::<u64>().map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: not a number: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hw");
        write_atomic(&path, b"12\n").unwrap();
        write_atomic(&path, b"17\n").unwrap();
        assert_eq!(read_u64(&path).unwrap(), Some(17));
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temp file left behind: {names:?}");
    }

    #[test]
    fn missing_checkpoint_reads_as_none_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hw");
        assert_eq!(read_u64(&path).unwrap(), None);
        fs::write(&path, "twelve").unwrap();
        assert!(read_u64(&path).is_err());
    }
}
