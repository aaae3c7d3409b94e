//! The control channel of a running mount: a Unix socket that takes one command a connection
//! (`lose` or `status`, one line) and answers one JSON line, a [`ControlReply`]. The server
//! half runs inside `faultline-lazyfs`; the client half is what [`crate::LazyFs`] calls. Both
//! use the types here, so the format is defined once. It does not decide what a loss does to
//! the data (that is `State::lose_unsynced`).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::state::State;

/// The command that drops every unfsynced byte, as a power cut would.
pub const LOSE: &str = "lose";
/// The command that reports what is held.
pub const STATUS: &str = "status";

/// How long one control connection may take to send its line or read the answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The answer to one command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlReply {
    pub ok: bool,
    /// What went wrong, when `ok` is false (for example an unknown command).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Files whose unsynced writes a `lose` dropped.
    pub lost_files: u64,
    /// Bytes of unsynced writes a `lose` dropped.
    pub lost_bytes: u64,
    /// Files with writes held now (after the command).
    pub held_files: u64,
    /// Bytes held now (after the command).
    pub held_bytes: u64,
}

/// Drops all held data and tells the kernel to forget what it cached of those files.
pub fn lose(state: &Mutex<State>, notifier: Option<&fuser::Notifier>) -> ControlReply {
    let (dropped, inos) = state
        .lock()
        .expect("lazyfs state lock poisoned")
        .lose_unsynced();
    // Outside the lock: the kernel may call back into the filesystem while invalidating.
    if let Some(notifier) = notifier {
        for ino in inos {
            // ENOENT only means the kernel had nothing cached for it.
            let _ = notifier.inval_inode(fuser::INodeNo(ino), 0, 0);
        }
    }
    ControlReply {
        ok: true,
        lost_files: dropped.files,
        lost_bytes: dropped.bytes,
        ..status(state)
    }
}

/// What is held now.
pub fn status(state: &Mutex<State>) -> ControlReply {
    let held = state
        .lock()
        .expect("lazyfs state lock poisoned")
        .held_totals();
    ControlReply {
        ok: true,
        held_files: held.files,
        held_bytes: held.bytes,
        ..ControlReply::default()
    }
}

/// Serves the control socket until the process ends (one thread, one connection at a time:
/// commands are rare and each is quick).
pub fn serve(
    listener: UnixListener,
    state: Arc<Mutex<State>>,
    notifier: fuser::Notifier,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("lazyfs-control".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Err(e) = answer(stream, &state, &notifier) {
                    eprintln!("faultline-lazyfs: control connection: {e}");
                }
            }
        })
}

fn answer(
    stream: UnixStream,
    state: &Mutex<State>,
    notifier: &fuser::Notifier,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(&stream).take_line(&mut line)?;
    let reply = match line.trim() {
        LOSE => {
            let reply = lose(state, Some(notifier));
            eprintln!(
                "faultline-lazyfs: lose: dropped {} bytes in {} files",
                reply.lost_bytes, reply.lost_files
            );
            reply
        }
        STATUS => status(state),
        other => ControlReply {
            ok: false,
            error: Some(format!(
                "unknown command {other:?}: expected \"{LOSE}\" or \"{STATUS}\""
            )),
            ..ControlReply::default()
        },
    };
    let mut out = serde_json::to_string(&reply).map_err(std::io::Error::other)?;
    out.push('\n');
    (&stream).write_all(out.as_bytes())
}

/// Reading one bounded line: a client cannot make the server buffer without limit.
trait TakeLine {
    fn take_line(self, line: &mut String) -> std::io::Result<usize>;
}

impl<R: BufRead> TakeLine for R {
    fn take_line(self, line: &mut String) -> std::io::Result<usize> {
        /// Commands are one short word.
        const MAX_LINE_BYTES: u64 = 256;
        self.take(MAX_LINE_BYTES).read_line(line)
    }
}

/// Sends one command to the control socket at `path` and reads the answer.
pub fn send(path: &Path, command: &str) -> std::io::Result<ControlReply> {
    let stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    (&stream).write_all(format!("{command}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(&stream).take_line(&mut line)?;
    serde_json::from_str(&line)
        .map_err(|e| std::io::Error::other(format!("control answer {line:?} is not a reply: {e}")))
}
