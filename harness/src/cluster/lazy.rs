//! The brokers' lazy mounts (`--lazyfs`, docs/power-loss.md): each broker's data dir is a
//! `faultline-lazyfs` mount over a backing dir in the run's store, so a `power-loss` fault can
//! drop what the broker wrote and never fsynced. This module owns those mounts' lifetimes: it
//! mounts them before the brokers start, cuts their power on command, and unmounts them after
//! the brokers stopped and their logs were dumped. It does not kill or restart brokers (the
//! executor does, through the supervisor) and knows nothing of faults.
//!
//! Each mount is owned by a keeper thread that lives exactly as long as the mount: the kernel
//! sends `faultline-lazyfs` its parent-death signal when the *thread* that spawned it ends, so
//! spawning from a short-lived thread (tokio's `spawn_blocking`) would unmount it at a random
//! moment. The keeper takes commands over a channel; when the channel closes (the harness is
//! dropping the cluster, on any error path) it stops the mount, and if the harness itself dies
//! the death signal makes `faultline-lazyfs` write back and unmount on its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::Context;
use faultline_lazyfs::{ControlReply, LazyFs};
use tokio::sync::oneshot;

/// The `faultline-lazyfs` binary: beside this program, or beside the node binary (the
/// workspace builds both into one directory; tests run from its `deps/`).
pub fn find_lazyfs_bin(node_bin: &Path) -> Result<PathBuf, String> {
    let beside_us = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("faultline-lazyfs")));
    let beside_node = node_bin.parent().map(|d| d.join("faultline-lazyfs"));
    let candidates: Vec<PathBuf> = beside_us.into_iter().chain(beside_node).collect();
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(format!(
        "--lazyfs: faultline-lazyfs not found (looked for {}; build it with `make build` or \
         `cargo build -p faultline-lazyfs`)",
        looked.join(" and ")
    ))
}

/// Whether this machine can mount lazy filesystems, as a message naming what is missing.
pub fn probe() -> Result<(), String> {
    faultline_lazyfs::probe().map_err(|e| format!("--lazyfs: {e}"))
}

enum Command {
    Lose(oneshot::Sender<Result<ControlReply, String>>),
    Stop(oneshot::Sender<Result<(), String>>),
}

struct Keeper {
    commands: mpsc::Sender<Command>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// One lazy mount per broker, each held by its keeper thread.
pub struct LazyMounts {
    keepers: std::sync::Mutex<BTreeMap<u32, Keeper>>,
}

/// Where one broker's mount lives: `nodes/<id>/backing` holds the files, `nodes/<id>/data` is
/// the mount point (the broker's `--data`), `nodes/<id>/lazyfs.log` the mount's output.
pub struct MountPaths {
    pub backing: PathBuf,
    pub mount: PathBuf,
    pub log: PathBuf,
}

impl MountPaths {
    pub fn for_node_dir(node_dir: &Path) -> MountPaths {
        MountPaths {
            backing: node_dir.join("backing"),
            mount: node_dir.join("data"),
            log: node_dir.join("lazyfs.log"),
        }
    }
}

impl LazyMounts {
    /// Mounts one lazy filesystem per broker; returns once every mount answers. On error the
    /// mounts already made are stopped when the returned error drops them.
    pub fn mount(bin: &Path, brokers: &BTreeMap<u32, MountPaths>) -> anyhow::Result<LazyMounts> {
        let mounts = LazyMounts {
            keepers: std::sync::Mutex::new(BTreeMap::new()),
        };
        for (&id, paths) in brokers {
            let keeper = spawn_keeper(bin, paths)
                .with_context(|| format!("mounting broker {id}'s data dir (--lazyfs)"))?;
            mounts.keepers.lock().unwrap().insert(id, keeper);
        }
        Ok(mounts)
    }

    /// The power cut on broker `id`'s mount: every unfsynced byte is dropped.
    pub async fn lose(&self, id: u32) -> Result<ControlReply, String> {
        let (reply, answer) = oneshot::channel();
        self.send(id, Command::Lose(reply))?;
        answer
            .await
            .map_err(|_| format!("the lazy mount of broker {id} is gone"))?
    }

    fn send(&self, id: u32, command: Command) -> Result<(), String> {
        let keepers = self.keepers.lock().unwrap();
        let keeper = keepers
            .get(&id)
            .ok_or_else(|| format!("broker {id} has no lazy mount"))?;
        keeper
            .commands
            .send(command)
            .map_err(|_| format!("the lazy mount of broker {id} is gone"))
    }

    /// Unmounts every mount (writing held data back, as a clean shutdown of a disk keeps it).
    /// Call after the brokers stopped and were dumped. Returns the problems met.
    pub async fn unmount_all(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let ids: Vec<u32> = self.keepers.lock().unwrap().keys().copied().collect();
        for id in ids {
            let (reply, answer) = oneshot::channel();
            if let Err(e) = self.send(id, Command::Stop(reply)) {
                problems.push(e);
                continue;
            }
            match answer.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => problems.push(format!("unmounting broker {id}'s data dir: {e}")),
                Err(_) => problems.push(format!("the lazy mount of broker {id} is gone")),
            }
            let keeper = self.keepers.lock().unwrap().remove(&id);
            if let Some(mut keeper) = keeper {
                // The keeper ends right after answering `Stop`.
                if let Some(thread) = keeper.thread.take() {
                    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
                }
            }
        }
        problems
    }
}

/// Starts the thread that mounts and then owns one lazy filesystem.
fn spawn_keeper(bin: &Path, paths: &MountPaths) -> anyhow::Result<Keeper> {
    std::fs::create_dir_all(&paths.backing)
        .with_context(|| format!("creating {}", paths.backing.display()))?;
    let (commands, inbox) = mpsc::channel::<Command>();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let (bin, backing, mount, log) = (
        bin.to_path_buf(),
        paths.backing.clone(),
        paths.mount.clone(),
        paths.log.clone(),
    );
    let thread = std::thread::Builder::new()
        .name("lazyfs-keeper".to_string())
        .spawn(move || match LazyFs::spawn(&bin, &backing, &mount, &log) {
            Ok(fs) => {
                let _ = ready_tx.send(Ok(()));
                keep(fs, inbox);
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e.to_string()));
            }
        })
        .context("starting a lazyfs keeper thread")?;
    let ready = ready_rx
        .recv()
        .map_err(|_| anyhow::anyhow!("the lazyfs keeper thread ended before mounting"))?;
    ready.map_err(anyhow::Error::msg)?;
    Ok(Keeper {
        commands,
        thread: Some(thread),
    })
}

/// The keeper's loop: serves commands until `Stop` or until every sender is gone, then stops
/// the mount (its `Drop` unmounts, detaching it if need be).
fn keep(fs: LazyFs, inbox: mpsc::Receiver<Command>) {
    while let Ok(command) = inbox.recv() {
        match command {
            Command::Lose(reply) => {
                let _ = reply.send(fs.lose_unsynced().map_err(|e| e.to_string()));
            }
            Command::Stop(reply) => {
                let _ = reply.send(fs.stop().map_err(|e| e.to_string()));
                return;
            }
        }
    }
}
