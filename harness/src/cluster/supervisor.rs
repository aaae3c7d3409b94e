//! The supervisor: owns every node process of a run. It spawns them (own process group, a
//! parent-death signal so none outlives the harness), signals them by pid (kill, terminate,
//! pause, resume), restarts them with the same command line, and stops them all at the end. It
//! knows nothing of what the nodes do.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::process::{Child, Command};

use crate::cluster::node::Node;

/// How `kill` ends a process: SIGKILL (a crash) or SIGTERM (a clean shutdown); the checker's
/// type, the one test.json records.
pub use faultline_checker::config::KillSignal;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcState {
    Running,
    Paused,
    /// Ended by the harness (kill or stop).
    Down,
    /// Ended on its own; the text is its exit status.
    Exited(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("no such node {0}")]
    UnknownNode(Node),
    #[error("node {node} is not running ({state})")]
    NotRunning { node: Node, state: String },
    #[error("node {node} is not paused")]
    NotPaused { node: Node },
    #[error("node {node} is already running")]
    AlreadyRunning { node: Node },
    #[error("could not start {node} ({bin}): {source}")]
    Spawn {
        node: Node,
        bin: PathBuf,
        source: std::io::Error,
    },
    #[error("could not signal {node} (pid {pid}): {source}")]
    Signal {
        node: Node,
        pid: u32,
        source: nix::Error,
    },
}

/// The command line of one node, kept so a killed node restarts exactly as it first started.
#[derive(Debug, Clone)]
pub struct NodeCommand {
    pub args: Vec<String>,
    /// stdout and stderr go here, appended across restarts.
    pub log_path: PathBuf,
    /// A system file's node: `sh -c` of this command line instead of the supervisor's binary,
    /// in this data dir with this environment. Its signals go to the whole process group the
    /// shell leads, so a shell that forks its program instead of exec-ing it is still reached.
    pub shell: Option<ShellNode>,
}

#[derive(Debug, Clone)]
pub struct ShellNode {
    pub command: String,
    pub dir: PathBuf,
    pub env: BTreeMap<String, String>,
}

impl NodeCommand {
    /// faultline-node (or the supervisor's binary) with these arguments.
    pub fn native(args: Vec<String>, log_path: PathBuf) -> NodeCommand {
        NodeCommand {
            args,
            log_path,
            shell: None,
        }
    }
}

struct Slot {
    command: NodeCommand,
    child: Option<Child>,
    pid: Option<u32>,
    state: ProcState,
    starts: u32,
}

pub struct Supervisor {
    bin: PathBuf,
    slots: tokio::sync::Mutex<BTreeMap<Node, Slot>>,
}

/// How long a SIGTERM-ed node has to exit before it gets SIGKILL.
pub const TERM_DEADLINE: Duration = Duration::from_secs(5);

impl Supervisor {
    pub fn new(bin: &Path) -> Self {
        Supervisor {
            bin: bin.to_path_buf(),
            slots: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Registers a node; it is not started yet.
    pub async fn add(&self, node: Node, command: NodeCommand) {
        let slot = Slot {
            command,
            child: None,
            pid: None,
            state: ProcState::Down,
            starts: 0,
        };
        self.slots.lock().await.insert(node, slot);
    }

    /// Starts (or restarts) a node that is not running; returns its pid.
    pub async fn start(&self, node: Node) -> Result<u32, SupervisorError> {
        let mut slots = self.slots.lock().await;
        let slot = slots
            .get_mut(&node)
            .ok_or(SupervisorError::UnknownNode(node))?;
        refresh(slot);
        if matches!(slot.state, ProcState::Running | ProcState::Paused) {
            return Err(SupervisorError::AlreadyRunning { node });
        }
        let spawned = match &slot.command.shell {
            None => spawn_child(&self.bin, &slot.command.args, &slot.command.log_path),
            Some(sh) => {
                crate::cluster::system::shell(&sh.command, &sh.dir, &sh.env, &slot.command.log_path)
                    .and_then(|mut command| command.spawn())
            }
        };
        let child = spawned.map_err(|source| SupervisorError::Spawn {
            node,
            bin: match &slot.command.shell {
                None => self.bin.clone(),
                Some(_) => PathBuf::from("/bin/sh"),
            },
            source,
        })?;
        let pid = child.id().unwrap_or(0);
        slot.child = Some(child);
        slot.pid = Some(pid);
        slot.state = ProcState::Running;
        slot.starts += 1;
        Ok(pid)
    }

    /// Ends a running or paused node. SIGKILL is waited for; SIGTERM gets [`TERM_DEADLINE`] and
    /// then SIGKILL.
    pub async fn kill(&self, node: Node, how: KillSignal) -> Result<(), SupervisorError> {
        let mut slots = self.slots.lock().await;
        let slot = slots
            .get_mut(&node)
            .ok_or(SupervisorError::UnknownNode(node))?;
        refresh(slot);
        if !matches!(slot.state, ProcState::Running | ProcState::Paused) {
            return Err(not_running(node, &slot.state));
        }
        end(node, slot, how).await
    }

    pub async fn pause(&self, node: Node) -> Result<(), SupervisorError> {
        let mut slots = self.slots.lock().await;
        let slot = slots
            .get_mut(&node)
            .ok_or(SupervisorError::UnknownNode(node))?;
        refresh(slot);
        if slot.state != ProcState::Running {
            return Err(not_running(node, &slot.state));
        }
        send(node, slot, Signal::SIGSTOP)?;
        slot.state = ProcState::Paused;
        Ok(())
    }

    pub async fn resume(&self, node: Node) -> Result<(), SupervisorError> {
        let mut slots = self.slots.lock().await;
        let slot = slots
            .get_mut(&node)
            .ok_or(SupervisorError::UnknownNode(node))?;
        refresh(slot);
        if slot.state != ProcState::Paused {
            return Err(SupervisorError::NotPaused { node });
        }
        send(node, slot, Signal::SIGCONT)?;
        slot.state = ProcState::Running;
        Ok(())
    }

    pub async fn state(&self, node: Node) -> Option<ProcState> {
        let mut slots = self.slots.lock().await;
        let slot = slots.get_mut(&node)?;
        refresh(slot);
        Some(slot.state.clone())
    }

    pub async fn states(&self) -> BTreeMap<Node, ProcState> {
        let mut slots = self.slots.lock().await;
        slots
            .iter_mut()
            .map(|(node, slot)| {
                refresh(slot);
                (*node, slot.state.clone())
            })
            .collect()
    }

    /// Pids of the processes currently alive (running or paused).
    #[cfg(test)]
    pub async fn pids(&self) -> BTreeMap<Node, u32> {
        let mut slots = self.slots.lock().await;
        slots
            .iter_mut()
            .filter_map(|(node, slot)| {
                refresh(slot);
                let alive = matches!(slot.state, ProcState::Running | ProcState::Paused);
                Some((*node, slot.pid?)).filter(|_| alive)
            })
            .collect()
    }

    /// Stops every node, the brokers first and the controller last, as Kafka stops a combined
    /// server (`KafkaRaftServer.shutdown`): a broker's SIGTERM is a controlled shutdown, which
    /// needs the controller to move its leaderships and let it go. With SIGTERM paused nodes are
    /// resumed first (a stopped process cannot act on it), then each gets the signal; those
    /// still alive after a [`TERM_DEADLINE`] (one per wave) get SIGKILL. Returns the nodes that
    /// needed SIGKILL.
    pub async fn stop_all(&self, how: KillSignal) -> Vec<Node> {
        let mut slots = self.slots.lock().await;
        let mut forced = stop_wave(&mut slots, how, |n| n.broker().is_some()).await;
        forced.extend(stop_wave(&mut slots, how, |n| n.broker().is_none()).await);
        forced
    }
}

/// Signals every live node `which` selects, then waits for them together until one shared
/// [`TERM_DEADLINE`]; SIGKILLs those still alive. Returns those.
async fn stop_wave(
    slots: &mut BTreeMap<Node, Slot>,
    how: KillSignal,
    which: impl Fn(Node) -> bool,
) -> Vec<Node> {
    let signal = match how {
        KillSignal::Kill => Signal::SIGKILL,
        KillSignal::Term => Signal::SIGTERM,
    };
    for (node, slot) in slots.iter_mut().filter(|(n, _)| which(**n)) {
        refresh(slot);
        // A stopped process cannot act on SIGTERM, so it is resumed first; SIGKILL needs no
        // SIGCONT, which would only let it run a moment before dying.
        if slot.state == ProcState::Paused && how == KillSignal::Term {
            let _ = send(*node, slot, Signal::SIGCONT);
            slot.state = ProcState::Running;
        }
        if matches!(slot.state, ProcState::Running | ProcState::Paused) {
            let _ = send(*node, slot, signal);
        }
    }
    let deadline = tokio::time::Instant::now() + TERM_DEADLINE;
    let mut forced = Vec::new();
    for (node, slot) in slots.iter_mut().filter(|(n, _)| which(**n)) {
        if !matches!(slot.state, ProcState::Running | ProcState::Paused) {
            continue;
        }
        if let Some(mut child) = slot.child.take() {
            let exited = tokio::time::timeout_at(deadline, child.wait()).await;
            if exited.is_err() {
                forced.push(*node);
                finish(slot, &mut child).await;
            }
        }
        kill_group_leftovers(slot);
        slot.state = ProcState::Down;
    }
    forced
}

fn not_running(node: Node, state: &ProcState) -> SupervisorError {
    let state = match state {
        ProcState::Running => "running".to_string(),
        ProcState::Paused => "paused".to_string(),
        ProcState::Down => "down".to_string(),
        ProcState::Exited(status) => format!("exited: {status}"),
    };
    SupervisorError::NotRunning { node, state }
}

/// Notices a child that exited on its own (and reaps it).
fn refresh(slot: &mut Slot) {
    let Some(child) = slot.child.as_mut() else {
        return;
    };
    if let Ok(Some(status)) = child.try_wait() {
        slot.child = None;
        if matches!(slot.state, ProcState::Running | ProcState::Paused) {
            slot.state = ProcState::Exited(status.to_string());
        }
    }
}

fn send(node: Node, slot: &Slot, signal: Signal) -> Result<(), SupervisorError> {
    let pid = slot.pid.ok_or_else(|| not_running(node, &slot.state))?;
    let sent = match slot.command.shell {
        Some(_) => faultline_launch::signal_tree(pid, signal),
        None => faultline_launch::signal_pid(pid, signal),
    };
    sent.map_err(|source| SupervisorError::Signal { node, pid, source })
}

async fn end(node: Node, slot: &mut Slot, how: KillSignal) -> Result<(), SupervisorError> {
    match how {
        KillSignal::Kill => send(node, slot, Signal::SIGKILL)?,
        KillSignal::Term => {
            if slot.state == ProcState::Paused {
                send(node, slot, Signal::SIGCONT)?;
            }
            send(node, slot, Signal::SIGTERM)?;
        }
    }
    if let Some(mut child) = slot.child.take() {
        let waited = tokio::time::timeout(TERM_DEADLINE, child.wait()).await;
        if waited.is_err() {
            // It ignored SIGTERM for too long: finish it.
            finish(slot, &mut child).await;
        }
    }
    kill_group_leftovers(slot);
    slot.state = ProcState::Down;
    Ok(())
}

/// SIGKILL (to the whole tree of a shell node) and a bounded wait.
async fn finish(slot: &Slot, child: &mut Child) {
    match (&slot.command.shell, slot.pid) {
        (Some(_), Some(pid)) => {
            let _ = faultline_launch::signal_tree(pid, Signal::SIGKILL);
        }
        _ => {
            let _ = child.start_kill();
        }
    }
    let _ = tokio::time::timeout(TERM_DEADLINE, child.wait()).await;
}

/// A shell node's group or tree may outlive its shell (a program the shell forked and that
/// ignored SIGTERM): nothing of it may survive the node's end.
fn kill_group_leftovers(slot: &Slot) {
    if let (Some(_), Some(pid)) = (&slot.command.shell, slot.pid) {
        let _ = faultline_launch::signal_tree(pid, Signal::SIGKILL);
    }
}

impl Drop for Supervisor {
    /// An error path drops the supervisor with nodes running: kill-on-drop ends each child,
    /// and a shell node's whole group is killed here.
    fn drop(&mut self) {
        for slot in self.slots.get_mut().values() {
            if matches!(slot.state, ProcState::Running | ProcState::Paused) {
                kill_group_leftovers(slot);
            }
        }
    }
}

/// Spawns a process that cannot outlive the harness: its own process group (so a terminal's
/// Ctrl-C reaches only the harness, which then stops it in order), SIGKILL when the harness
/// dies (PR_SET_PDEATHSIG), and kill-on-drop as a last resort.
pub fn spawn_child(bin: &Path, args: &[String], log_path: &Path) -> std::io::Result<Child> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)?;
    let mut command = Command::new(bin);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    harden(&mut command);
    command.spawn()
}

/// Process hygiene shared by every child the harness starts (faultline-launch's), plus
/// kill-on-drop as a last resort.
pub fn harden(command: &mut Command) {
    command.kill_on_drop(true);
    faultline_launch::harden(command.as_std_mut());
}

#[cfg(test)]
mod tests {
    use super::*;

    use faultline_launch::proc_state;

    /// Signals are delivered asynchronously: poll for the state with a deadline.
    async fn wait_state(pid: u32, stopped: bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while (proc_state(pid) == Some('T')) != stopped {
            assert!(
                std::time::Instant::now() < deadline,
                "pid {pid} stopped={stopped}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn kills_pauses_resumes_and_restarts_by_pid() {
        let dir = tempfile::tempdir().unwrap();
        let supervisor = Supervisor::new(Path::new("/bin/sleep"));
        let node = Node::Broker(1);
        let command = NodeCommand::native(vec!["30".to_string()], dir.path().join("node.log"));
        supervisor.add(node, command).await;
        let pid = supervisor.start(node).await.unwrap();
        assert!(matches!(
            supervisor.start(node).await,
            Err(SupervisorError::AlreadyRunning { .. })
        ));
        supervisor.pause(node).await.unwrap();
        wait_state(pid, true).await;
        supervisor.resume(node).await.unwrap();
        wait_state(pid, false).await;
        supervisor.kill(node, KillSignal::Kill).await.unwrap();
        assert_eq!(proc_state(pid), None, "killed and reaped");
        assert!(matches!(
            supervisor.kill(node, KillSignal::Kill).await,
            Err(SupervisorError::NotRunning { .. })
        ));
        let again = supervisor.start(node).await.unwrap();
        assert_ne!(again, pid);
        supervisor.pause(node).await.unwrap();
        // Stopping resumes a paused process first, so SIGTERM can end it.
        supervisor.stop_all(KillSignal::Term).await;
        assert_eq!(proc_state(again), None);
        assert!(supervisor.pids().await.is_empty());
    }

    #[tokio::test]
    async fn a_process_that_exits_on_its_own_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let supervisor = Supervisor::new(Path::new("/bin/sh"));
        let node = Node::Controller;
        let command = NodeCommand::native(
            vec!["-c".to_string(), "exit 3".to_string()],
            dir.path().join("node.log"),
        );
        supervisor.add(node, command).await;
        supervisor.start(node).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(ProcState::Exited(status)) = supervisor.state(node).await {
                assert!(status.contains('3'), "{status}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "exit not noticed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let error = supervisor.pause(node).await.unwrap_err();
        assert!(error.to_string().contains("exited"), "{error}");
    }
}
