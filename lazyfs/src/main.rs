//! `faultline-lazyfs --backing DIR --mount DIR [--control PATH] [--max-held-bytes N]`: mounts the
//! lazy filesystem and serves it until SIGTERM, SIGINT or SIGHUP, then writes every held byte
//! back, unmounts and exits 0. SIGUSR1, or `lose` on the control socket, drops every unsynced
//! byte (a power cut). Exit codes: 0 clean stop, 1 mount or runtime failure, 254 bad arguments.
//! This file owns the process's life: arguments, signals, the mount and a panic that must not
//! leave the mount behind; the filesystem itself is in the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use nix::sys::signal::{SigSet, Signal};

use faultline_lazyfs::{control, detach, fs::LazyFilesystem, state::State};

/// How long an unmount may take before the mount is detached instead.
const UNMOUNT_TIMEOUT: Duration = Duration::from_secs(5);
const EXIT_BAD_ARGS: u8 = 254;

#[derive(Parser, Debug)]
#[command(
    name = "faultline-lazyfs",
    about = "A FUSE pass-through that holds unfsynced writes in memory and loses them on command"
)]
struct Args {
    /// The directory whose files the mount shows (durable data lives here).
    #[arg(long)]
    backing: PathBuf,
    /// The empty directory to mount on.
    #[arg(long)]
    mount: PathBuf,
    /// A Unix socket path to serve `lose` and `status` on (one command a line).
    #[arg(long)]
    control: Option<PathBuf>,
    /// The most unsynced bytes held at once; a write beyond it fails with ENOSPC.
    #[arg(long, default_value_t = 1 << 30)]
    max_held_bytes: u64,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(EXIT_BAD_ARGS);
        }
    };
    if let Err(message) = check_args(&args) {
        eprintln!("faultline-lazyfs: {message}");
        return ExitCode::from(EXIT_BAD_ARGS);
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faultline-lazyfs: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_args(args: &Args) -> Result<(), String> {
    for (flag, dir) in [("--backing", &args.backing), ("--mount", &args.mount)] {
        if !dir.is_dir() {
            return Err(format!("{flag} {}: not a directory", dir.display()));
        }
    }
    if args.backing.canonicalize().ok() == args.mount.canonicalize().ok() {
        return Err("--backing and --mount must be different directories".into());
    }
    Ok(())
}

fn run(args: &Args) -> anyhow::Result<()> {
    // When whoever started us dies, unmount cleanly rather than be SIGKILLed with a mount up.
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).context("prctl(PR_SET_PDEATHSIG)")?;
    // Block the signals we wait for before any thread starts, so every thread inherits the
    // mask and only `wait_for_stop` receives them.
    let signals = stop_signals();
    signals.thread_block().context("blocking signals")?;

    let backing = args.backing.canonicalize().context("--backing")?;
    let mount = args.mount.canonicalize().context("--mount")?;
    let state = Arc::new(Mutex::new(State::new(&backing, args.max_held_bytes)?));
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("faultline-lazyfs".into()),
        fuser::MountOption::Subtype("lazyfs".into()),
    ];
    let session = fuser::spawn_mount(LazyFilesystem::new(state.clone()), &mount, &config)
        .with_context(|| {
            format!(
                "cannot mount {} (needs /dev/fuse and root, or the fusermount3 helper)",
                mount.display()
            )
        })?;
    unmount_on_panic(mount.clone());
    if let Some(path) = &args.control {
        let _ = std::fs::remove_file(path);
        let listener = std::os::unix::net::UnixListener::bind(path)
            .with_context(|| format!("--control {}", path.display()))?;
        control::serve(listener, state.clone(), session.notifier())?;
    }
    println!(
        "{}",
        serde_json::json!({"ready": true, "pid": std::process::id(),
                           "backing": backing, "mount": mount, "control": args.control})
    );

    wait_for_stop(&signals, &state, &session.notifier());

    let written = state
        .lock()
        .expect("lazyfs state lock poisoned")
        .sync_everything();
    match &written {
        Ok(w) => eprintln!(
            "faultline-lazyfs: wrote back {} bytes in {} files",
            w.bytes, w.files
        ),
        Err(e) => eprintln!("faultline-lazyfs: write-back failed: {e}"),
    }
    unmount(session, &mount);
    if let Some(path) = &args.control {
        let _ = std::fs::remove_file(path);
    }
    written.map(|_| ()).map_err(anyhow::Error::msg)
}

fn stop_signals() -> SigSet {
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
    ] {
        set.add(sig);
    }
    set
}

/// Serves SIGUSR1 (lose unsynced) until a stop signal arrives.
fn wait_for_stop(signals: &SigSet, state: &Mutex<State>, notifier: &fuser::Notifier) {
    loop {
        match signals.wait() {
            Ok(Signal::SIGUSR1) => {
                let reply = control::lose(state, Some(notifier));
                eprintln!(
                    "faultline-lazyfs: SIGUSR1: dropped {} bytes in {} files",
                    reply.lost_bytes, reply.lost_files
                );
            }
            Ok(sig) => {
                eprintln!("faultline-lazyfs: {sig}: unmounting");
                return;
            }
            Err(e) => {
                eprintln!("faultline-lazyfs: sigwait: {e}; unmounting");
                return;
            }
        }
    }
}

/// Unmounts and joins the session; if a file on the mount is still open (EBUSY) or the session
/// does not end in time, detaches the mount instead: the kernel ends it when we exit.
fn unmount(session: fuser::BackgroundSession, mount: &Path) {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(session.umount_and_join());
    });
    match done_rx.recv_timeout(UNMOUNT_TIMEOUT) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("faultline-lazyfs: unmount: {e}; detaching");
            let _ = detach(mount);
        }
        Err(_) => {
            eprintln!("faultline-lazyfs: unmount took over {UNMOUNT_TIMEOUT:?}; detaching");
            let _ = detach(mount);
        }
    }
}

/// A panic anywhere would leave the kernel waiting on a filesystem that no longer answers:
/// detach the mount and exit, which also aborts the FUSE connection.
fn unmount_on_panic(mount: PathBuf) {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        let _ = detach(&mount);
        std::process::exit(101);
    }));
}
