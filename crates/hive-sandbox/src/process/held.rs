//! Signalling processes Hive did not just spawn (a cgroup's members, leftovers found by uid,
//! bubblewrap's namespace init) without ever reaching another process that got their pid.
//!
//! A pid read from a cgroup's `cgroup.procs`, from /proc or from a child's children names a
//! process only until that process ends and its parent reaps it; the kernel may then give the
//! pid to any new process of the host. So the process is first held by a pidfd, which names
//! that one process for good; then Hive checks that the process now behind the pid is still
//! the one it meant (in the cgroup, of the uid, the child of bubblewrap): if the held process
//! had ended meanwhile, its pidfd reaches nothing, and if it lives, the check was about it.
//! Only then is it signalled, through the pidfd.

use rustix::fd::OwnedFd;
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal};

use super::procfs;

/// How many processes one pass of [`signal_listed`] holds at once: each is a descriptor of
/// Hive's, and a sandbox may have a thousand processes.
const HELD_AT_ONCE: usize = 64;

/// One process, held.
#[derive(Debug)]
pub(crate) struct Held {
    pid: u32,
    /// `None` only where this kernel has no pidfds (`pidfd_open` answers ENOSYS: before Linux
    /// 5.3, or a seccomp filter around Hive that hides it). Signals then go by pid, as they did
    /// before pidfds, and can reach a process that got the pid since it was checked; the start
    /// time below narrows that window, it does not close it.
    fd: Option<OwnedFd>,
    /// The process's start time when it was held (by pid, for the fallback above).
    started: Option<u64>,
}

impl Held {
    /// Holds process `pid` without checking which process it is. The caller checks that after
    /// this returns, or knows it already (its own child, not yet reaped).
    pub(crate) fn hold(pid: u32) -> Option<Self> {
        let raw = Pid::from_raw(i32::try_from(pid).ok()?)?;
        match rustix::process::pidfd_open(raw, PidfdFlags::empty()) {
            Ok(fd) => Some(Self {
                pid,
                fd: Some(fd),
                started: None,
            }),
            // No pidfds on this kernel: fall back to the pid, as before.
            Err(Errno::NOSYS) => Some(Self {
                pid,
                fd: None,
                started: Some(procfs::start_time_of(pid)?),
            }),
            // Gone (ESRCH), or no descriptor left: not held, not signalled.
            Err(_) => None,
        }
    }

    /// Holds process `pid`, then asks `still_meant` whether the process behind the pid now is
    /// the one meant; `None` if it has ended or is not.
    pub(crate) fn open(pid: u32, still_meant: impl FnOnce() -> bool) -> Option<Self> {
        let held = Self::hold(pid)?;
        still_meant().then_some(held)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal` to the held process. ESRCH once it has ended (even if its pid is another
    /// process's by now).
    pub(crate) fn signal(&self, signal: Signal) -> rustix::io::Result<()> {
        match &self.fd {
            Some(fd) => rustix::process::pidfd_send_signal(fd, signal),
            None => {
                // Without a pidfd (see `fd`): only while the pid's process started when the
                // held one did.
                if self.started.is_none() || procfs::start_time_of(self.pid) != self.started {
                    return Err(Errno::SRCH);
                }
                let pid = Pid::from_raw(i32::try_from(self.pid).map_err(|_| Errno::SRCH)?)
                    .ok_or(Errno::SRCH)?;
                rustix::process::kill_process(pid, signal)
            }
        }
    }
}

/// Sends `signal` to every process `list` names, each only if `list` still names it once it is
/// held (see the module's documentation). Returns what `list` named first. A process that ended
/// meanwhile is skipped: that is what was wanted.
pub(crate) fn signal_listed(list: impl Fn() -> Vec<u32>, signal: Signal) -> Vec<u32> {
    let listed = list();
    for batch in listed.chunks(HELD_AT_ONCE) {
        let held: Vec<Held> = batch.iter().filter_map(|&pid| Held::hold(pid)).collect();
        if held.is_empty() {
            continue;
        }
        let still = list();
        for process in held.iter().filter(|h| still.contains(&h.pid())) {
            let _ = process.signal(signal);
        }
    }
    listed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Child, Command};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn sleeper() -> Child {
        Command::new("/bin/sleep").arg("60").spawn().unwrap()
    }

    fn killed_by(child: &mut Child) -> Option<i32> {
        child.wait().unwrap().signal()
    }

    #[test]
    fn a_held_process_is_signalled_through_its_pidfd() {
        let mut child = sleeper();
        let held = Held::open(child.id(), || true).unwrap();
        assert!(held.fd.is_some(), "this kernel has pidfds");
        held.signal(Signal::KILL).unwrap();
        assert_eq!(killed_by(&mut child), Some(libc::SIGKILL));
    }

    #[test]
    fn a_process_that_is_not_the_one_meant_is_not_held() {
        let mut child = sleeper();
        assert!(Held::open(child.id(), || false).is_none());
        assert!(child.try_wait().unwrap().is_none(), "it was signalled");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn only_processes_still_listed_once_held_are_signalled() {
        let mut kept = sleeper();
        let mut gone = sleeper();
        let (kept_pid, gone_pid) = (kept.id(), gone.id());
        // The second look no longer lists `kept` (as if it had left the group meanwhile).
        let looks = AtomicUsize::new(0);
        let listed = signal_listed(
            || match looks.fetch_add(1, Ordering::SeqCst) {
                0 => vec![kept_pid, gone_pid],
                _ => vec![gone_pid],
            },
            Signal::KILL,
        );
        assert_eq!(listed, [kept_pid, gone_pid]);
        assert_eq!(killed_by(&mut gone), Some(libc::SIGKILL));
        assert!(
            kept.try_wait().unwrap().is_none(),
            "an unlisted process was signalled"
        );
        kept.kill().unwrap();
        kept.wait().unwrap();
    }

    #[test]
    fn a_signal_never_reaches_a_later_process_with_the_same_pid() {
        let mut first = sleeper();
        let pid = first.id();
        let held = Held::open(pid, || true).unwrap();
        first.kill().unwrap();
        first.wait().unwrap();
        // Ended and reaped: the pidfd reaches nothing, whoever has the pid now.
        assert_eq!(held.signal(Signal::KILL), Err(Errno::SRCH));
        // As root, make the kernel give that pid to a new process (ns_last_pid is the pid it
        // gave last), and show the old pidfd does not reach it. Other processes of the host may
        // take the pid first; a few tries.
        if !rustix::process::geteuid().is_root() {
            return;
        }
        for _ in 0..50 {
            if let Err(e) = std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()) {
                eprintln!("note: ns_last_pid cannot be written ({e}); only the ESRCH is shown");
                return;
            }
            let mut second = sleeper();
            let reused = second.id() == pid;
            if reused {
                assert_eq!(held.signal(Signal::KILL), Err(Errno::SRCH));
                assert!(
                    second.try_wait().unwrap().is_none(),
                    "the signal reached the process that got the pid"
                );
            }
            second.kill().unwrap();
            second.wait().unwrap();
            if reused {
                return;
            }
        }
        eprintln!("note: pid {pid} was not given again; only the ESRCH is shown");
    }
}
