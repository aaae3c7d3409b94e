//! What the lazy mount costs a writer: sequential 1 MiB writes to one file, through the mount
//! and straight to its backing directory, without fsync and with an fsync after every write
//! (MiB/s, the median of a few rounds per case); and what it costs the node: acks=all records
//! per second one producer gets from a one-broker cluster whose data dir is on the mount or on
//! the backing disk, with and without the broker's `--fsync`. Prints one JSON line. A machine
//! that cannot mount prints `SKIPPED: <reason>` and exits 0; without a release
//! `faultline-node` beside this binary (`make bench` builds it) the node figures are skipped
//! the same way. Run with `cargo bench -p faultline-lazyfs`.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use faultline_lazyfs::LazyFs;

#[path = "../tests/support/single_broker.rs"]
mod single_broker;

const WRITE_BYTES: usize = 1 << 20;
/// Enough to leave the page cache's first burst behind, small enough to hold in memory.
const UNSYNCED_TOTAL_BYTES: usize = 256 << 20;
/// An fsync per MiB is slow on any disk; fewer writes keep the bench short.
const SYNCED_TOTAL_BYTES: usize = 64 << 20;
const ROUNDS: usize = 3;
/// Records per produce request in the node case.
const NODE_BATCH: usize = 100;
const NODE_SECONDS: u64 = 3;

/// Writes `total` bytes in 1 MiB writes to a new file at `path`; returns MiB/s.
fn write_file(path: &Path, total: usize, fsync_each: bool) -> f64 {
    let chunk = vec![0x5au8; WRITE_BYTES];
    let start = Instant::now();
    let mut file = File::create(path).unwrap();
    for _ in 0..total / WRITE_BYTES {
        file.write_all(&chunk).unwrap();
        if fsync_each {
            file.sync_data().unwrap();
        }
    }
    drop(file);
    let secs = start.elapsed().as_secs_f64();
    fs::remove_file(path).unwrap();
    (total as f64 / f64::from(1u32 << 20)) / secs
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn case(dir: &Path, total: usize, fsync_each: bool) -> f64 {
    let rounds = (0..ROUNDS).map(|_| write_file(&dir.join("bench.dat"), total, fsync_each));
    median(rounds.collect())
}

/// acks=all records per second one sequential producer gets from a broker on `data`.
fn node_case(bin: &Path, dir: &Path, data: &Path, fsync: bool) -> f64 {
    fs::create_dir_all(dir).unwrap();
    let cluster = single_broker::SingleBroker::start(bin, dir, data, fsync);
    let start = Instant::now();
    let mut records = 0;
    while start.elapsed().as_secs() < NODE_SECONDS {
        cluster.produce(NODE_BATCH);
        records += NODE_BATCH;
    }
    records as f64 / start.elapsed().as_secs_f64()
}

/// The release `faultline-node`, if built.
fn node_bin() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("FAULTLINE_NODE_BIN").map_or_else(
        || Path::new(env!("CARGO_BIN_EXE_faultline-lazyfs")).with_file_name("faultline-node"),
        Into::into,
    );
    path.is_file().then_some(path)
}

fn main() {
    if let Err(e) = faultline_lazyfs::probe() {
        eprintln!("SKIPPED: cannot mount a lazy filesystem here: {e}");
        return;
    }
    // Under target/ (a real disk) rather than /tmp, which may be a tmpfs.
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::tempdir_in(root).unwrap();
    let backing = dir.path().join("backing");
    let mount = dir.path().join("mount");
    fs::create_dir(&backing).unwrap();
    let lazyfs = LazyFs::spawn(
        Path::new(env!("CARGO_BIN_EXE_faultline-lazyfs")),
        &backing,
        &mount,
        &dir.path().join("lazyfs.log"),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let backing_unsynced = case(&backing, UNSYNCED_TOTAL_BYTES, false);
    let mount_unsynced = case(&mount, UNSYNCED_TOTAL_BYTES, false);
    let backing_fsync = case(&backing, SYNCED_TOTAL_BYTES, true);
    let mount_fsync = case(&mount, SYNCED_TOTAL_BYTES, true);
    let node = node_bin().map(|bin| {
        let run = |name: &str, on_mount: bool, fsync: bool| {
            let data = if on_mount { &mount } else { &backing }.join(name);
            node_case(&bin, &dir.path().join(name), &data, fsync).round()
        };
        serde_json::json!({
            "batch_records": NODE_BATCH,
            "seconds": NODE_SECONDS,
            "backing_records_s": run("n1", false, false),
            "mount_records_s": run("n2", true, false),
            "backing_fsync_records_s": run("n3", false, true),
            "mount_fsync_records_s": run("n4", true, true),
        })
    });
    if node.is_none() {
        eprintln!("SKIPPED: node figures: no release faultline-node (cargo build --release -p faultline-node)");
    }
    lazyfs.stop().unwrap();

    let round = |x: f64| (x * 10.0).round() / 10.0;
    let line = serde_json::json!({
        "bench": "lazyfs_write_throughput",
        "write_bytes": WRITE_BYTES,
        "rounds": ROUNDS,
        "unsynced_total_bytes": UNSYNCED_TOTAL_BYTES,
        "fsync_total_bytes": SYNCED_TOTAL_BYTES,
        "backing_unsynced_mib_s": round(backing_unsynced),
        "mount_unsynced_mib_s": round(mount_unsynced),
        "backing_fsync_each_mib_s": round(backing_fsync),
        "mount_fsync_each_mib_s": round(mount_fsync),
        "node_acks_all": node,
    });
    println!("{line}");
}
