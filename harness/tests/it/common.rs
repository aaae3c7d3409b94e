//! The helper every area uses: a temporary store, a command builder for `faultline test`, and
//! readers for a stored run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use faultline_checker::history::{Op, OpType, Process};

pub fn faultline_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_faultline"))
}

/// The node binary: `FAULTLINE_NODE_BIN`, or beside the faultline binary.
pub fn node_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("FAULTLINE_NODE_BIN") {
        return PathBuf::from(path);
    }
    let path = faultline_bin().with_file_name("faultline-node");
    assert!(
        path.is_file(),
        "{} is missing: build it first (`make build` or `cargo build -p faultline-node`)",
        path.display()
    );
    path
}

/// A `faultline test` invocation with a store in a fresh temporary directory.
pub struct TestRun {
    pub store: tempfile::TempDir,
    pub args: Vec<String>,
}

impl TestRun {
    pub fn new(args: &[&str]) -> Self {
        TestRun {
            store: tempfile::tempdir().unwrap(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new(faultline_bin());
        command
            .arg("test")
            .arg("--store")
            .arg(self.store.path())
            .arg("--node-bin")
            .arg(node_bin())
            .args(&self.args);
        command
    }

    /// Runs to completion; the store lives as long as the result.
    pub fn run(self) -> Finished {
        let output = self.command().output().expect("running faultline");
        Finished::from_output(self, output)
    }

    /// The newest run's directory (through `store/latest`).
    pub fn run_dir(&self) -> PathBuf {
        std::fs::canonicalize(self.store.path().join("latest")).unwrap_or_default()
    }
}

pub struct Finished {
    pub output: Output,
    pub run_dir: PathBuf,
    _store: tempfile::TempDir,
}

impl Finished {
    /// The result of running `run`'s command yourself (e.g. with extra environment).
    pub fn from_output(run: TestRun, output: Output) -> Self {
        Finished {
            output,
            run_dir: run.run_dir(),
            _store: run.store,
        }
    }

    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Asserts the exit code (0 valid, 1 invalid, 2 unknown); fails with everything the run
    /// printed.
    pub fn expect_exit(&self, code: i32) {
        assert_eq!(
            self.code(),
            code,
            "faultline exited {} where {code} was expected:\nstdout:\n{}\nstderr:\n{}",
            self.code(),
            String::from_utf8_lossy(&self.output.stdout),
            self.stderr()
        );
    }

    /// The run's verdict is valid (exit 0).
    pub fn expect_valid(&self) {
        self.expect_exit(0);
    }

    pub fn history(&self) -> Vec<Op> {
        read_history(&self.run_dir)
    }
}

/// Every operation of a run's history; a line that does not parse fails the test, naming it.
pub fn read_history(run_dir: &Path) -> Vec<Op> {
    let path = run_dir.join("history.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{} line {}: {e}: {line}", path.display(), i + 1))
        })
        .collect()
}

pub fn nemesis_ops(history: &[Op]) -> Vec<&Op> {
    history
        .iter()
        .filter(|op| op.process == Process::nemesis())
        .collect()
}

pub fn count(history: &[Op], f: &str, kind: OpType) -> usize {
    history
        .iter()
        .filter(|op| op.f == f && op.kind == kind && op.process != Process::nemesis())
        .count()
}

/// Polls `probe` until it returns `Some`, or panics after `deadline`.
pub fn poll<T>(what: &str, deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pids of live processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        // Zombies have an empty command line and hold no resources; they are not "left".
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

impl TestRun {
    /// The newest run's directory as the harness named it (not canonicalised), so it matches
    /// the paths in the nodes' command lines.
    pub fn run_dir_as_named(&self) -> Option<PathBuf> {
        let target = std::fs::read_link(self.store.path().join("latest")).ok()?;
        Some(self.store.path().join(target))
    }
}

impl TestRun {
    /// Where a spawned run's stderr goes, beside the store, to explain a failure.
    pub fn harness_log(&self) -> PathBuf {
        self.store.path().join("harness.log")
    }

    /// Spawns the run in the background and waits (bounded) until its history holds an
    /// operation `until` accepts; fails with the harness's output if it exits first. Returns
    /// the child and the run's directory.
    pub fn spawn_until(
        &self,
        what: &str,
        until: impl Fn(&Op) -> bool,
    ) -> (std::process::Child, PathBuf) {
        let log = std::fs::File::create(self.harness_log()).unwrap();
        let mut child = self
            .command()
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let run_dir = poll("the run directory", Duration::from_secs(20), || {
            self.run_dir_as_named()
        });
        poll(what, Duration::from_secs(30), || {
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(self.harness_log()).unwrap_or_default();
                panic!("the harness exited early ({status}):\n{log}");
            }
            read_history(&run_dir).iter().any(&until).then_some(())
        });
        (child, run_dir)
    }
}
