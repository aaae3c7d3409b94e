//! The harness's handle on one lazy mount: [`probe`] says whether this machine can mount at
//! all (naming what is missing), [`LazyFs::spawn`] starts `faultline-lazyfs` as a hardened child
//! and waits (bounded) until the mount answers, [`LazyFs::lose_unsynced`] is the power cut,
//! and [`LazyFs::stop`] (also run by `Drop`) unmounts cleanly — by SIGTERM, then SIGKILL and a
//! lazy unmount if it must, so no mount is ever left behind. It knows nothing of brokers or
//! faults; the harness decides when to cut power and what to restart afterwards.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::control::{self, ControlReply};

/// How long a mount may take to come up before [`LazyFs::spawn`] gives up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a SIGTERM'd `faultline-lazyfs` may take to write back and unmount.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
const DEV_FUSE: &str = "/dev/fuse";

/// Why this machine cannot mount a lazy filesystem.
#[derive(Debug, Error)]
pub enum ProbeError {
    #[error("{DEV_FUSE} cannot be opened ({source}): the FUSE device is missing or not permitted (in a container, pass --device /dev/fuse)")]
    DevFuse { source: std::io::Error },
    #[error("the kernel has no FUSE filesystem (no \"fuse\" in /proc/filesystems): load it with `modprobe fuse`")]
    NoKernelFuse,
    #[error("mounting needs root (CAP_SYS_ADMIN) or the fusermount3 helper (Debian package fuse3); this process is uid {uid} and no fusermount3/fusermount is on PATH")]
    NoRights { uid: u32 },
}

/// What went wrong with a lazy mount.
#[derive(Debug, Error)]
pub enum LazyFsError {
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("cannot prepare {path}: {source}")]
    Prepare {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {bin}: {source}")]
    Spawn {
        bin: PathBuf,
        source: std::io::Error,
    },
    #[error("faultline-lazyfs exited ({status}) before {mount} was mounted; its log {log} ends with:\n{log_tail}")]
    ExitedEarly {
        status: std::process::ExitStatus,
        mount: PathBuf,
        log: PathBuf,
        log_tail: String,
    },
    #[error("{mount} was not mounted and answering within {timeout_ms} ms; its log {log} ends with:\n{log_tail}")]
    NotReady {
        mount: PathBuf,
        timeout_ms: u128,
        log: PathBuf,
        log_tail: String,
    },
    #[error("the control socket of {mount} did not answer: {source}")]
    Control {
        mount: PathBuf,
        source: std::io::Error,
    },
    #[error("the control socket of {mount} refused the command: {message}")]
    Refused { mount: PathBuf, message: String },
    #[error("faultline-lazyfs for {mount} did not stop within {timeout_ms} ms of SIGTERM and was killed; held writes were lost and the mount was detached")]
    Killed { mount: PathBuf, timeout_ms: u128 },
    #[error("{mount} was still mounted after faultline-lazyfs ended; it was detached (umount -l)")]
    LeftMounted { mount: PathBuf },
}

/// Checks, without mounting, that this process can mount a lazy filesystem: /dev/fuse opens,
/// the kernel knows FUSE, and we are root or have a fusermount helper.
pub fn probe() -> Result<(), ProbeError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(DEV_FUSE)
        .map_err(|source| ProbeError::DevFuse { source })?;
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("fuse"))
    {
        return Err(ProbeError::NoKernelFuse);
    }
    let uid = nix::unistd::geteuid();
    if !uid.is_root() && !helper_on_path() {
        return Err(ProbeError::NoRights { uid: uid.as_raw() });
    }
    Ok(())
}

fn helper_on_path() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .any(|dir| dir.join("fusermount3").is_file() || dir.join("fusermount").is_file())
}

/// Whether `path` is a mount point now (this process's mount namespace).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(path) = path.canonicalize() else {
        return false;
    };
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|point| Path::new(&unescape_mountinfo(point)) == path)
}

/// mountinfo writes space, tab, newline and backslash in a mount point as octal escapes.
fn unescape_mountinfo(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Detaches a mount (`umount -l`): it disappears from the namespace at once, and the kernel
/// ends it when the last file on it closes.
pub fn detach(path: &Path) -> nix::Result<()> {
    nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH)
}

/// A running `faultline-lazyfs`: the mount at `mount()` over `backing`, until stopped.
#[derive(Debug)]
pub struct LazyFs {
    child: Option<Child>,
    mount: PathBuf,
    control: PathBuf,
    log: PathBuf,
    /// Holds the control socket's directory (short, under the temp dir: socket paths are
    /// limited to 108 bytes, store paths are not); removed on drop.
    _runtime: tempfile::TempDir,
}

impl LazyFs {
    /// Mounts a lazy filesystem over `backing` at `mount` (created if missing) by starting
    /// `bin` (the `faultline-lazyfs` binary), its stdout and stderr appended to `log`. Returns
    /// once the mount answers, or an error naming why it did not (probe failure, early exit
    /// with the log's tail, timeout).
    ///
    /// The child gets the launcher's hygiene (own process group, a death signal when its
    /// parent thread ends — so call this from a thread that lives as long as the mount).
    pub fn spawn(
        bin: &Path,
        backing: &Path,
        mount: &Path,
        log: &Path,
    ) -> Result<LazyFs, LazyFsError> {
        probe()?;
        let prepare = |path: &Path, source| LazyFsError::Prepare {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(mount).map_err(|e| prepare(mount, e))?;
        let runtime = tempfile::Builder::new()
            .prefix("faultline-lazyfs.")
            .tempdir()
            .map_err(|e| prepare(&std::env::temp_dir(), e))?;
        let control = runtime.path().join("control.sock");
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| prepare(log, e))?;
        let err = out.try_clone().map_err(|e| prepare(log, e))?;
        let mut command = Command::new(bin);
        command
            .arg("--backing")
            .arg(backing)
            .arg("--mount")
            .arg(mount)
            .arg("--control")
            .arg(&control)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        faultline_launch::harden(&mut command);
        let child = command.spawn().map_err(|source| LazyFsError::Spawn {
            bin: bin.to_path_buf(),
            source,
        })?;
        let mut lazyfs = LazyFs {
            child: Some(child),
            mount: mount.to_path_buf(),
            control,
            log: log.to_path_buf(),
            _runtime: runtime,
        };
        lazyfs.wait_ready()?;
        Ok(lazyfs)
    }

    /// Polls until the mount is in the mount table and its control socket answers.
    fn wait_ready(&mut self) -> Result<(), LazyFsError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("running until stopped");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(LazyFsError::ExitedEarly {
                    status,
                    mount: self.mount.clone(),
                    log: self.log.clone(),
                    log_tail: log_tail(&self.log),
                });
            }
            if is_mounted(&self.mount) && self.status().is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LazyFsError::NotReady {
                    mount: self.mount.clone(),
                    timeout_ms: READY_TIMEOUT.as_millis(),
                    log: self.log.clone(),
                    log_tail: log_tail(&self.log),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The power cut: every byte written since its file's last fsync is dropped; files are
    /// back to their last fsynced contents and sizes. Whatever has the files open keeps running
    /// (the harness SIGKILLs the broker first, as power loss would stop it too).
    pub fn lose_unsynced(&self) -> Result<ControlReply, LazyFsError> {
        self.command(control::LOSE)
    }

    /// What is held (unsynced) now.
    pub fn status(&self) -> Result<ControlReply, LazyFsError> {
        self.command(control::STATUS)
    }

    fn command(&self, command: &str) -> Result<ControlReply, LazyFsError> {
        let reply =
            control::send(&self.control, command).map_err(|source| LazyFsError::Control {
                mount: self.mount.clone(),
                source,
            })?;
        if !reply.ok {
            return Err(LazyFsError::Refused {
                mount: self.mount.clone(),
                message: reply.error.unwrap_or_default(),
            });
        }
        Ok(reply)
    }

    /// The mount point.
    pub fn mount(&self) -> &Path {
        &self.mount
    }

    /// The control socket (`lose` / `status`, see the `control` module).
    pub fn control_path(&self) -> &Path {
        &self.control
    }

    /// The pid of `faultline-lazyfs`, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Unmounts cleanly: SIGTERM makes `faultline-lazyfs` write every held byte to the backing
    /// files (a clean shutdown keeps data, as unmounting a disk does) and unmount. If it does not
    /// end in time it is killed, and a mount still present is detached; both are errors.
    pub fn stop(mut self) -> Result<(), LazyFsError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), LazyFsError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let killed = faultline_launch::stop_child(&mut child, STOP_TIMEOUT);
        let left = is_mounted(&self.mount);
        if left {
            let _ = detach(&self.mount);
        }
        if killed {
            return Err(LazyFsError::Killed {
                mount: self.mount.clone(),
                timeout_ms: STOP_TIMEOUT.as_millis(),
            });
        }
        if left {
            return Err(LazyFsError::LeftMounted {
                mount: self.mount.clone(),
            });
        }
        Ok(())
    }
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("faultline-lazyfs: {e}");
        }
    }
}

/// The last lines of a log, for an error message.
fn log_tail(log: &Path) -> String {
    const TAIL_LINES: usize = 20;
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}
