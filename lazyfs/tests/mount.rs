//! Real mounts over real files: each test starts the `faultline-lazyfs` binary through the
//! library's `LazyFs` handle, works on the mount with ordinary file calls (and the node's own
//! log code and binary), cuts power with `lose_unsynced`, and checks what survived. A machine
//! that cannot mount makes each test print `SKIPPED: <reason>` and return; set
//! `FAULTLINE_REQUIRE_FUSE=1` to make that a failure instead.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use faultline_lazyfs::{is_mounted, LazyFs, LazyFsError};

const BIN: &str = env!("CARGO_BIN_EXE_faultline-lazyfs");

/// A lazy mount over a fresh backing dir, both in one temporary directory.
struct Mounted {
    fs: Option<LazyFs>,
    dir: tempfile::TempDir,
}

impl Mounted {
    /// Mounts, or says why it cannot and returns `None` (a loud skip).
    fn start() -> Option<Mounted> {
        if let Err(e) = faultline_lazyfs::probe() {
            assert!(
                std::env::var_os("FAULTLINE_REQUIRE_FUSE").is_none(),
                "FAULTLINE_REQUIRE_FUSE is set but: {e}"
            );
            eprintln!("SKIPPED: cannot mount a lazy filesystem here: {e}");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("backing")).unwrap();
        let fs = LazyFs::spawn(
            Path::new(BIN),
            &dir.path().join("backing"),
            &dir.path().join("mount"),
            &dir.path().join("lazyfs.log"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Some(Mounted { fs: Some(fs), dir })
    }

    fn fs(&self) -> &LazyFs {
        self.fs.as_ref().expect("running")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join("mount").join(name)
    }

    fn backing(&self, name: &str) -> PathBuf {
        self.dir.path().join("backing").join(name)
    }

    /// Cuts power and returns the bytes dropped.
    fn lose(&self) -> u64 {
        let reply = self.fs().lose_unsynced().unwrap();
        assert_eq!((reply.held_files, reply.held_bytes), (0, 0), "{reply:?}");
        reply.lost_bytes
    }

    fn stop(&mut self) -> Result<(), LazyFsError> {
        self.fs.take().expect("running").stop()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // Unmount before the temporary directory goes, or its removal would walk the mount.
        if let Some(fs) = self.fs.take() {
            let mount = fs.mount().to_path_buf();
            let stopped = fs.stop();
            assert!(!is_mounted(&mount), "{} left mounted", mount.display());
            if !std::thread::panicking() {
                stopped.unwrap();
            }
        }
    }
}

#[test]
fn unsynced_writes_are_read_back_then_lost() {
    let Some(m) = Mounted::start() else { return };
    fs::write(m.path("a"), b"hello").unwrap();
    assert_eq!(fs::read(m.path("a")).unwrap(), b"hello");
    assert_eq!(fs::metadata(m.path("a")).unwrap().len(), 5);
    assert_eq!(
        fs::read(m.backing("a")).unwrap(),
        b"",
        "nothing durable yet"
    );
    assert_eq!(m.fs().status().unwrap().held_bytes, 5);

    assert_eq!(m.lose(), 5);
    // The name was created on the backing disk at once, so it survives, empty.
    assert_eq!(fs::read(m.path("a")).unwrap(), b"");
    assert_eq!(fs::metadata(m.path("a")).unwrap().len(), 0);
}

#[test]
fn fsynced_data_survives_and_later_writes_do_not() {
    let Some(m) = Mounted::start() else { return };
    let mut file = File::create(m.path("log")).unwrap();
    file.write_all(b"synced;").unwrap();
    file.sync_all().unwrap();
    assert_eq!(fs::read(m.backing("log")).unwrap(), b"synced;");
    file.write_all(b"unsynced").unwrap();
    assert_eq!(fs::read(m.path("log")).unwrap(), b"synced;unsynced");
    assert_eq!(fs::metadata(m.path("log")).unwrap().len(), 15);

    assert_eq!(m.lose(), 8);
    assert_eq!(fs::read(m.path("log")).unwrap(), b"synced;");
    assert_eq!(fs::metadata(m.path("log")).unwrap().len(), 7);
    // fdatasync makes data durable as well.
    file.seek(SeekFrom::Start(7)).unwrap();
    file.write_all(b"again").unwrap();
    file.sync_data().unwrap();
    m.lose();
    assert_eq!(fs::read(m.path("log")).unwrap(), b"synced;again");
}

#[test]
fn truncates_are_held_like_writes() {
    let Some(m) = Mounted::start() else { return };
    let data: Vec<u8> = (0..100u8).collect();
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(m.path("t"))
        .unwrap();
    (&file).write_all(&data).unwrap();
    file.sync_all().unwrap();

    file.set_len(10).unwrap();
    assert_eq!(fs::metadata(m.path("t")).unwrap().len(), 10);
    file.set_len(20).unwrap();
    let mut want = data[..10].to_vec();
    want.resize(20, 0);
    assert_eq!(
        fs::read(m.path("t")).unwrap(),
        want,
        "cut bytes read as zeros"
    );
    assert_eq!(fs::read(m.backing("t")).unwrap(), data);

    m.lose();
    assert_eq!(
        fs::read(m.path("t")).unwrap(),
        data,
        "the truncate was lost too"
    );

    file.set_len(10).unwrap();
    file.sync_all().unwrap();
    m.lose();
    assert_eq!(fs::read(m.path("t")).unwrap(), &data[..10]);
    assert_eq!(fs::read(m.backing("t")).unwrap(), &data[..10]);
}

#[test]
fn an_open_appender_continues_at_the_surviving_end() {
    let Some(m) = Mounted::start() else { return };
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(m.path("append"))
        .unwrap();
    log.write_all(b"one;").unwrap();
    log.sync_data().unwrap();
    log.write_all(b"two;").unwrap();
    m.lose();
    log.write_all(b"three;").unwrap();
    assert_eq!(fs::read(m.path("append")).unwrap(), b"one;three;");
    let mut reader = File::open(m.path("append")).unwrap();
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    assert_eq!(text, "one;three;");
}

#[test]
fn o_dsync_writes_are_durable_when_they_return() {
    let Some(m) = Mounted::start() else { return };
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .custom_flags(libc::O_DSYNC)
        .open(m.path("dsync"))
        .unwrap();
    file.write_all(b"durable").unwrap();
    assert_eq!(m.lose(), 0);
    assert_eq!(fs::read(m.path("dsync")).unwrap(), b"durable");
}

#[test]
fn metadata_passes_through_and_survives_a_loss() {
    let Some(m) = Mounted::start() else { return };
    fs::create_dir(m.path("dir")).unwrap();
    // The node's checkpoint pattern: write a temporary file, fsync, rename, fsync the dir.
    fs::write(m.path("dir/cp.tmp"), b"42").unwrap();
    File::open(m.path("dir/cp.tmp"))
        .unwrap()
        .sync_all()
        .unwrap();
    fs::rename(m.path("dir/cp.tmp"), m.path("dir/cp")).unwrap();
    File::open(m.path("dir")).unwrap().sync_all().unwrap();
    // The same without the fsync before the rename: a rename on a real disk may reach it
    // before the data; here the rename is durable at once and the data is not.
    fs::write(m.path("dir/torn.tmp"), b"43").unwrap();
    fs::rename(m.path("dir/torn.tmp"), m.path("dir/torn")).unwrap();
    fs::write(m.path("gone"), b"x").unwrap();
    fs::remove_file(m.path("gone")).unwrap();

    // torn's 2 bytes; gone's byte too if the kernel's asynchronous release of it is late.
    assert!(m.lose() >= 2);
    assert_eq!(fs::read(m.path("dir/cp")).unwrap(), b"42");
    assert_eq!(fs::read(m.path("dir/torn")).unwrap(), b"", "renamed, empty");
    let mut names: Vec<String> = fs::read_dir(m.path("dir"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["cp", "torn"]);
    assert!(!m.path("gone").exists());
    fs::remove_dir_all(m.path("dir")).unwrap();
    assert!(!m.backing("dir").exists());
}

#[test]
fn concurrent_writers_keep_their_own_files() {
    let Some(m) = Mounted::start() else { return };
    const FILES: u8 = 4;
    const RECORDS: usize = 200;
    std::thread::scope(|scope| {
        for f in 0..FILES {
            let path = m.path(&format!("w{f}"));
            scope.spawn(move || {
                let mut file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap();
                for _ in 0..RECORDS {
                    file.write_all(&[b'a' + f; 10]).unwrap();
                }
                // Even-numbered files are fsynced, odd ones are not.
                if f % 2 == 0 {
                    file.sync_all().unwrap();
                }
            });
        }
    });
    for f in 0..FILES {
        assert_eq!(
            fs::read(m.path(&format!("w{f}"))).unwrap(),
            vec![b'a' + f; 10 * RECORDS]
        );
    }
    m.lose();
    for f in 0..FILES {
        let want = if f % 2 == 0 {
            vec![b'a' + f; 10 * RECORDS]
        } else {
            Vec::new()
        };
        assert_eq!(
            fs::read(m.path(&format!("w{f}"))).unwrap(),
            want,
            "file w{f}"
        );
    }
}

#[test]
fn sigusr1_is_a_power_cut_too() {
    let Some(m) = Mounted::start() else { return };
    fs::write(m.path("u"), b"unsynced").unwrap();
    let pid = m.fs().pid().unwrap();
    faultline_launch::signal_pid(pid, nix::sys::signal::Signal::SIGUSR1).unwrap();
    // Signals arrive asynchronously: poll the status with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while m.fs().status().unwrap().held_bytes != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGUSR1 dropped nothing"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(fs::read(m.path("u")).unwrap(), b"");
}

#[test]
fn a_clean_stop_writes_back_and_unmounts() {
    let Some(mut m) = Mounted::start() else {
        return;
    };
    fs::write(m.path("kept"), b"written back").unwrap();
    let mount = m.path("");
    m.stop().unwrap();
    assert!(!is_mounted(&mount));
    assert_eq!(fs::read(m.backing("kept")).unwrap(), b"written back");
}

#[test]
fn a_killed_lazyfs_is_detached_by_its_handle() {
    let Some(mut m) = Mounted::start() else {
        return;
    };
    fs::write(m.path("x"), b"held").unwrap();
    let pid = m.fs().pid().unwrap();
    faultline_launch::signal_pid(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let mount = m.path("");
    match m.stop() {
        Err(LazyFsError::LeftMounted { .. }) => {}
        other => panic!("expected LeftMounted, got {other:?}"),
    }
    assert!(!is_mounted(&mount));
    assert_eq!(
        fs::read(m.backing("x")).unwrap(),
        b"",
        "a crash loses held data"
    );
}

#[test]
fn unknown_control_commands_are_refused_by_name() {
    let Some(m) = Mounted::start() else { return };
    let reply = faultline_lazyfs::control::send(m.fs().control_path(), "explode").unwrap();
    assert!(!reply.ok);
    assert!(reply.error.unwrap().contains("\"explode\""));
    assert!(m.fs().status().unwrap().ok, "still serving");
}

#[test]
fn bad_arguments_exit_254_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let out = Command::new(BIN)
        .args(["--backing".as_ref(), missing.as_os_str()])
        .args(["--mount".as_ref(), dir.path().as_os_str()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(254));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--backing") && stderr.contains("not a directory"),
        "{stderr}"
    );
    let out = Command::new(BIN).arg("--mount").output().unwrap();
    assert_eq!(out.status.code(), Some(254));
}

mod node {
    //! The node's own storage code and binary on the mount.

    use super::*;
    use faultline_node::storage::{Log, LogConfig, Record};

    fn records(from: u64, count: u64) -> Vec<Record> {
        (from..from + count)
            .map(|offset| Record {
                offset,
                leader_epoch: 0,
                // One produce request is one batch with one timestamp (the node's log format 2).
                timestamp_ms: 1_700_000_000_000,
                value: offset.to_string(),
            })
            .collect()
    }

    /// The `faultline-node` binary beside this crate's binary (`make build` builds both).
    pub fn node_bin() -> PathBuf {
        if let Some(path) = std::env::var_os("FAULTLINE_NODE_BIN") {
            return PathBuf::from(path);
        }
        let path = Path::new(BIN).with_file_name("faultline-node");
        assert!(
            path.is_file(),
            "{} is missing: build it first (`make build` or `cargo build -p faultline-node`)",
            path.display()
        );
        path
    }

    /// `faultline-node dump --data DIR`: the record offsets it prints for partition t-0.
    pub fn dumped_offsets(data: &Path) -> Vec<u64> {
        let out = Command::new(node_bin())
            .arg("dump")
            .arg("--data")
            .arg(data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v.get("summary").is_none())
            .map(|v| v["offset"].as_u64().unwrap())
            .collect()
    }

    #[test]
    fn the_node_log_loses_unsynced_records_and_keeps_fsynced_ones() {
        let Some(m) = Mounted::start() else { return };
        let data = m.path("data");
        let dir = data.join("t-0");
        let lazy = LogConfig {
            fsync: false,
            ..LogConfig::default()
        };
        let (mut log, report) = Log::open(&dir, lazy, false).unwrap();
        assert_eq!(report.log_end_offset, 0);
        log.append(&records(0, 100)).unwrap();
        assert_eq!(log.read(0, u64::MAX, 1000).unwrap(), records(0, 100));
        assert_eq!(dumped_offsets(&data), (0..100).collect::<Vec<_>>());
        log.sync().unwrap();
        log.append(&records(100, 50)).unwrap();
        assert_eq!(dumped_offsets(&data).len(), 150);
        drop(log);

        assert!(m.lose() > 0);
        assert_eq!(dumped_offsets(&data), (0..100).collect::<Vec<_>>());
        let (mut log, report) = Log::open(&dir, lazy, false).unwrap();
        assert_eq!(report.log_end_offset, 100, "{report:?}");

        // With fsync per append (the node's --fsync), a loss takes nothing.
        let durable = LogConfig {
            fsync: true,
            ..LogConfig::default()
        };
        drop(log);
        let (mut log_durable, _) = Log::open(&dir, durable, false).unwrap();
        log_durable.append(&records(100, 20)).unwrap();
        drop(log_durable);
        m.lose();
        assert_eq!(dumped_offsets(&data), (0..120).collect::<Vec<_>>());
        log = Log::open(&dir, lazy, false).unwrap().0;
        assert_eq!(log.log_end_offset(), 120);
    }
}

#[path = "support/single_broker.rs"]
mod single_broker;

mod broker {
    //! A real controller and broker process, the broker's data dir on the lazy mount: records
    //! the broker acknowledged without fsync are gone after a power cut, and with `--fsync`
    //! none are.

    use super::*;
    use crate::single_broker::SingleBroker;

    #[test]
    fn acknowledged_unsynced_records_are_lost_and_fsynced_ones_kept() {
        let Some(m) = Mounted::start() else { return };
        let data = m.path("broker-1");
        let mut cluster = SingleBroker::start(&node::node_bin(), m.dir.path(), &data, false);
        cluster.produce(50);
        assert_eq!(cluster.leo(), Some(50));
        // SIGKILL: the page cache would keep the records; the power cut does not.
        cluster.kill_broker();
        assert!(m.lose() > 0);
        assert_eq!(
            node::dumped_offsets(&data),
            Vec::<u64>::new(),
            "acknowledged records gone"
        );

        cluster.start_broker(true);
        assert_eq!(cluster.wait_leader(), 0, "the restarted log is empty");
        cluster.produce(30);
        cluster.kill_broker();
        m.lose();
        assert_eq!(
            node::dumped_offsets(&data),
            (0..30).collect::<Vec<_>>(),
            "--fsync keeps all"
        );
    }
}

/// SQLite's WAL mode maps its `-shm` file shared and writable; on a `direct_io` FUSE file that
/// needs FUSE_DIRECT_IO_ALLOW_MMAP, which the mount asks for. `msync(MS_SYNC)` writes the pages
/// back and fsyncs them, so what was mapped then survives a cut, like any fsynced write.
#[test]
fn a_shared_writable_mapping_works_and_msync_makes_it_durable() {
    use std::os::fd::AsRawFd;
    let Some(m) = Mounted::start() else { return };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.path("db-shm"))
        .unwrap();
    file.set_len(4096).unwrap();
    file.sync_all().unwrap();
    // SAFETY: a fresh 4096-byte mapping of a file this test owns, unmapped below.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(
        map,
        libc::MAP_FAILED,
        "shared mmap refused: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: the mapping is 4096 bytes long and writable.
    unsafe {
        std::ptr::copy_nonoverlapping(b"wal-index".as_ptr(), map.cast::<u8>(), 9);
        assert_eq!(libc::msync(map, 4096, libc::MS_SYNC), 0);
        assert_eq!(libc::munmap(map, 4096), 0);
    }
    assert_eq!(&fs::read(m.path("db-shm")).unwrap()[..9], b"wal-index");
    assert_eq!(&fs::read(m.backing("db-shm")).unwrap()[..9], b"wal-index");
    m.lose();
    assert_eq!(&fs::read(m.path("db-shm")).unwrap()[..9], b"wal-index");
}
