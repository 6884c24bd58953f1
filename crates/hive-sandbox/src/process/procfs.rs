//! Reading processes from the host's /proc: the descendants of a process (where no cgroup lists
//! the sandbox's processes) and the processes of a range of uids (leftovers).

use std::collections::HashMap;
use std::ops::Range;

/// A process's parent, from /proc/PID/stat (the field after the command, which may itself hold
/// spaces and parentheses, so the last ')' ends it).
pub(crate) fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// The real uid of a process, from /proc/PID/status.
pub(crate) fn real_uid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub(crate) fn all_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// The children of `parent` alive now.
pub(crate) fn children_of(parent: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|&pid| parent_of(pid) == Some(parent))
        .collect()
}

/// Every descendant of `root` alive now (not `root` itself).
pub(crate) fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for pid in all_pids() {
        if let Some(parent) = parent_of(pid) {
            children.entry(parent).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut queue = vec![root];
    while let Some(pid) = queue.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            found.push(child);
            queue.push(child);
        }
    }
    found
}

/// A process's start time (clock ticks after boot), which tells it from a later process that
/// got the same pid.
pub(crate) fn start_time_of(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    // Fields after the command: state is the first, starttime the 20th.
    after.split_whitespace().nth(19)?.parse().ok()
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after = stat[stat.rfind(')')? + 1..].to_string();
            after.split_whitespace().next().map(|s| s == "Z")
        })
        .unwrap_or(false)
}

/// Processes whose real uid is in `uids` (zombies left out: they hold nothing and only their
/// parent can remove them).
pub(crate) fn pids_of_uids(uids: &Range<u32>) -> Vec<(u32, u32)> {
    all_pids()
        .into_iter()
        .filter(|&pid| !is_zombie(pid))
        .filter_map(|pid| Some((pid, real_uid_of(pid)?)))
        .filter(|(_, uid)| uids.contains(uid))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_a_descendant_of_its_parent() {
        let me = std::process::id();
        let parent = parent_of(me).unwrap();
        assert!(descendants(parent).contains(&me));
        assert!(children_of(parent).contains(&me));
        assert!(start_time_of(me).is_some());
        assert!(!is_zombie(me));
        assert_eq!(real_uid_of(me), Some(rustix::process::getuid().as_raw()));
    }
}
