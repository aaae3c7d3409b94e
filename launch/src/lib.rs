//! faultline-launch: the one way faultline starts, watches and stops processes — used by the
//! harness's supervisor, the node's process tests and the node's benchmark alike, so none of
//! them picks ports, hardens children or reads `/proc` its own way. It owns loopback port
//! allocation, process hygiene (own process group, parent-death signal), signals by pid, by
//! group and to a whole process tree, the kernel's view of a process's state and parent, and bounded stops (SIGTERM, then SIGKILL). It knows
//! nothing of what the processes do, and it depends on neither the node nor the harness.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// How often the bounded waits here look again.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Loopback addresses with free ports, chosen at random below the kernel's ephemeral range and
/// checked free by binding them. Outside that range no `bind(0)` and no outgoing connection (of
/// this run, a parallel run, or anything else) can take a node's port in the moment between
/// this check and the node's own bind, nor while a killed node waits to be restarted.
pub fn free_ports(count: usize) -> std::io::Result<Vec<SocketAddr>> {
    use rand::Rng;
    let (ephemeral_low, _) = ephemeral_range();
    let high = ephemeral_low.max(2048);
    let low = high.saturating_sub(12_000).max(1024);
    let mut rng = rand::thread_rng();
    let mut held: Vec<TcpListener> = Vec::new();
    // Bounded: on a machine this busy, a thousand tries failing says more than a retry would.
    for _ in 0..1000 {
        if held.len() == count {
            break;
        }
        let port = rng.gen_range(low..high);
        if held
            .iter()
            .any(|l| l.local_addr().map(|a| a.port()).ok() == Some(port))
        {
            continue;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
        }
    }
    if held.len() < count {
        return Err(std::io::Error::other(format!(
            "found only {} free loopback ports in {low}..{high}",
            held.len()
        )));
    }
    held.iter().map(TcpListener::local_addr).collect()
}

/// The kernel's ephemeral port range (Linux's default when it cannot be read).
pub fn ephemeral_range() -> (u16, u16) {
    let text =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut numbers = text
        .split_whitespace()
        .filter_map(|n| n.parse::<u16>().ok());
    match (numbers.next(), numbers.next()) {
        (Some(low), Some(high)) if low <= high => (low, high),
        _ => (32768, 60999),
    }
}

/// Process hygiene for every child faultline starts: its own process group (so a terminal's
/// Ctrl-C reaches only faultline, which then stops it in order) and SIGKILL when its parent
/// dies (PR_SET_PDEATHSIG), so no node outlives a killed harness or test binary.
pub fn harden(command: &mut Command) {
    let parent = nix::unistd::getpid();
    command.process_group(0);
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe system
    // calls (prctl, getppid); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // The parent may have died between fork and prctl: then nobody would kill us.
            if nix::unistd::getppid() != parent {
                return Err(nix::errno::Errno::ESRCH.into());
            }
            Ok(())
        });
    }
}

/// The machine's 1, 5 and 15 minute load averages as `/proc/loadavg` prints them (empty when it
/// cannot be read): the benches record it beside every figure.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sends `sig` to the process `pid`.
pub fn signal_pid(pid: u32, sig: Signal) -> nix::Result<()> {
    let raw = i32::try_from(pid).map_err(|_| nix::errno::Errno::ESRCH)?;
    signal::kill(Pid::from_raw(raw), sig)
}

/// Sends `sig` to the process group `pgid` leads (a `sh -c` child in its own group), so the
/// shell's children get it too.
pub fn signal_group(pgid: u32, sig: Signal) -> nix::Result<()> {
    let raw = i32::try_from(pgid).map_err(|_| nix::errno::Errno::ESRCH)?;
    signal::killpg(Pid::from_raw(raw), sig)
}

/// Signals the process group `pgid` leads and every descendant of `pgid`, also those that left
/// the group. PostgreSQL's backends each call `setsid()` (`InitPostmasterChild`), so a signal
/// to the postmaster's group alone would pause or kill the postmaster while its backends go on
/// serving their connections. SIGKILL first stops the whole tree, so nothing forks or is
/// reparented away between listing it and killing it.
pub fn signal_tree(pgid: u32, sig: Signal) -> nix::Result<()> {
    match sig {
        Signal::SIGSTOP => stop_tree(pgid),
        Signal::SIGKILL => {
            let _ = stop_tree(pgid);
            let tree = descendants(pgid);
            let result = signal_group(pgid, Signal::SIGKILL);
            for pid in tree {
                let _ = signal_pid(pid, Signal::SIGKILL);
            }
            result
        }
        other => {
            let result = signal_group(pgid, other);
            for pid in descendants(pgid) {
                let _ = signal_pid(pid, other);
            }
            result
        }
    }
}

/// SIGSTOP to the group, then to every descendant, again until no new one appears (a parent
/// stopped by the first round forks no more; a few rounds bound a fork caught in between).
fn stop_tree(pgid: u32) -> nix::Result<()> {
    let result = signal_group(pgid, Signal::SIGSTOP);
    let mut stopped = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let new: Vec<u32> = descendants(pgid)
            .into_iter()
            .filter(|p| !stopped.contains(p))
            .collect();
        if new.is_empty() {
            break;
        }
        for pid in new {
            let _ = signal_pid(pid, Signal::SIGSTOP);
            stopped.insert(pid);
        }
    }
    result
}

/// A process's parent (`/proc/<pid>/stat`); `None` once it is gone.
pub fn proc_ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the last ')': the state letter, then the parent's pid.
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Every live descendant of `pid` (children, theirs, ...), from one pass over `/proc`.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut children: std::collections::BTreeMap<u32, Vec<u32>> = Default::default();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some(parent) = proc_ppid(p) {
            children.entry(parent).or_default().push(p);
        }
    }
    let mut tree = Vec::new();
    let mut stack = vec![pid];
    while let Some(parent) = stack.pop() {
        for &child in children.get(&parent).map(Vec::as_slice).unwrap_or_default() {
            tree.push(child);
            stack.push(child);
        }
    }
    tree
}

/// The kernel's state letter for a process (`/proc/<pid>/stat`): `R` running, `S` sleeping,
/// `T` stopped, `Z` zombie; `None` once it is gone.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may hold spaces or ')' itself: the state follows the
    // last ')'.
    stat.rsplit(')').next()?.trim().chars().next()
}

/// Whether the process is stopped (SIGSTOP took effect).
pub fn is_stopped(pid: u32) -> bool {
    proc_state(pid) == Some('T')
}

/// Waits until the process is stopped (`stopped`) or running again, at most `timeout`.
/// Signals are delivered asynchronously: a test that pauses a node must not act before the
/// kernel has stopped it. Returns whether the state was reached.
pub fn wait_stopped(pid: u32, stopped: bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if is_stopped(pid) == stopped {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Stops a child: SIGCONT and SIGTERM (a stopped process cannot act on SIGTERM), then SIGKILL
/// if it has not exited within `term_timeout`; reaps it. Returns whether SIGKILL was needed.
pub fn stop_child(child: &mut Child, term_timeout: Duration) -> bool {
    let pid = child.id();
    let _ = signal_pid(pid, Signal::SIGCONT);
    let _ = signal_pid(pid, Signal::SIGTERM);
    let deadline = Instant::now() + term_timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    let _ = child.kill();
    let _ = child.wait();
    true
}

/// Kills a child with SIGKILL and reaps it — also a stopped one, without SIGCONT first, which
/// would let a paused node run for a moment (answer a fetch, send a heartbeat) before it dies.
pub fn kill_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_free_and_below_the_ephemeral_range() {
        let ports = free_ports(8).unwrap();
        let (low, _) = ephemeral_range();
        let mut seen = std::collections::BTreeSet::new();
        for addr in &ports {
            assert!(addr.ip().is_loopback());
            assert!(addr.port() < low.max(2048), "{addr}");
            assert!(seen.insert(addr.port()), "{addr} twice");
            // A child forked by the other test in this binary holds copies of the listeners
            // free_ports had open until it execs (they are close-on-exec), so the port may stay
            // taken for a moment: poll, with a deadline.
            let deadline = Instant::now() + Duration::from_secs(2);
            while let Err(e) = TcpListener::bind(addr) {
                assert!(
                    Instant::now() < deadline,
                    "{addr} still taken 2 s after it was released: {e}"
                );
                std::thread::sleep(POLL_INTERVAL);
            }
        }
    }

    /// A child that left its parent's process group (as PostgreSQL's backends do) is paused,
    /// resumed and killed with the tree; a signal to the group alone would miss it.
    #[test]
    fn the_tree_reaches_a_child_that_left_the_group() {
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg("setsid sleep 299.456 & wait");
        harden(&mut command);
        let mut shell = command.spawn().unwrap();
        let pgid = shell.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        let sleeper = loop {
            let found = descendants(pgid).into_iter().find(|p| {
                std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.contains("299.456"))
            });
            if let Some(pid) = found {
                break pid;
            }
            assert!(Instant::now() < deadline, "the child never started");
            std::thread::sleep(POLL_INTERVAL);
        };
        assert_eq!(proc_ppid(sleeper), Some(pgid));
        let group = nix::unistd::getpgid(Some(Pid::from_raw(sleeper as i32))).unwrap();
        assert_ne!(
            group.as_raw() as u32,
            pgid,
            "the child must have left the group"
        );
        let wait = Duration::from_secs(10);
        signal_tree(pgid, Signal::SIGSTOP).unwrap();
        assert!(wait_stopped(sleeper, true, wait), "not stopped");
        signal_tree(pgid, Signal::SIGCONT).unwrap();
        assert!(wait_stopped(sleeper, false, wait), "not running again");
        signal_tree(pgid, Signal::SIGKILL).unwrap();
        shell.wait().unwrap();
        // Dead: gone, or a zombie until init reaps it.
        let deadline = Instant::now() + wait;
        while !matches!(proc_state(sleeper), None | Some('Z')) {
            assert!(Instant::now() < deadline, "the child outlived the kill");
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    #[test]
    fn pauses_resumes_and_stops_a_hardened_child() {
        let mut command = Command::new("/bin/sleep");
        command.arg("30");
        harden(&mut command);
        let mut child = command.spawn().unwrap();
        let pid = child.id();
        signal_pid(pid, Signal::SIGSTOP).unwrap();
        assert!(wait_stopped(pid, true, Duration::from_secs(5)));
        signal_pid(pid, Signal::SIGCONT).unwrap();
        assert!(wait_stopped(pid, false, Duration::from_secs(5)));
        signal_pid(pid, Signal::SIGSTOP).unwrap();
        assert!(wait_stopped(pid, true, Duration::from_secs(5)));
        // A stopped child still ends on SIGTERM: stop_child resumes it first.
        assert!(!stop_child(&mut child, Duration::from_secs(5)));
        assert_eq!(proc_state(pid), None, "stopped and reaped");
    }
}
