//! cgroup v1: one group per sandbox under a Hive-owned parent in each controller
//! (`<root>/<controller>/<parent>/<id>`), holding its limits, its accounting and its freezer.

use crate::api::SandboxError;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The controllers a sandbox needs; `cpuacct` is read for CPU time when it is mounted apart.
pub(crate) const MEMORY: &str = "memory";
pub(crate) const CPU: &str = "cpu";
pub(crate) const CPUACCT: &str = "cpuacct";
pub(crate) const PIDS: &str = "pids";
pub(crate) const FREEZER: &str = "freezer";
const CONTROLLERS: [&str; 5] = [MEMORY, CPU, CPUACCT, PIDS, FREEZER];

/// The CFS period the CPU quota is a share of.
const CPU_PERIOD_US: u64 = 100_000;

/// Where the controllers are and which Hive parent group is ours.
#[derive(Clone, Debug)]
pub(crate) struct CgroupLayout {
    pub root: PathBuf,
    pub parent: String,
}

impl CgroupLayout {
    fn controller_dir(&self, controller: &str) -> PathBuf {
        // A co-mounted cpu,cpuacct hierarchy is reached through either name.
        self.root.join(controller)
    }

    fn parent_dir(&self, controller: &str) -> PathBuf {
        self.controller_dir(controller).join(&self.parent)
    }

    /// Creates the Hive parent group in every controller; an error says which cannot be
    /// written (the backend then falls back to rlimits).
    pub(crate) fn prepare(&self) -> Result<(), String> {
        for controller in CONTROLLERS {
            let base = self.controller_dir(controller);
            if !base.join("cgroup.procs").exists() {
                if controller == CPUACCT {
                    continue;
                }
                return Err(format!(
                    "{} is not a mounted cgroup v1 controller",
                    base.display()
                ));
            }
            let dir = self.parent_dir(controller);
            if let Err(e) = std::fs::create_dir(&dir)
                && e.kind() != io::ErrorKind::AlreadyExists
            {
                return Err(format!("cannot create {}: {e}", dir.display()));
            }
        }
        Ok(())
    }

    /// Removes the Hive parent group from every controller where it is empty (a sandbox still
    /// in one keeps it; the next start uses it again).
    pub(crate) fn release(&self) {
        for controller in CONTROLLERS {
            let _ = std::fs::remove_dir(self.parent_dir(controller));
        }
    }

    /// The ids of every group under the Hive parent (in any controller).
    pub(crate) fn existing_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for controller in CONTROLLERS {
            let Ok(entries) = std::fs::read_dir(self.parent_dir(controller)) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir())
                    && let Ok(name) = entry.file_name().into_string()
                    && !ids.contains(&name)
                {
                    ids.push(name);
                }
            }
        }
        ids.sort();
        ids
    }

    pub(crate) fn group(&self, id: &str) -> SandboxCgroup {
        let mut dirs = Vec::new();
        for controller in CONTROLLERS {
            if self
                .controller_dir(controller)
                .join("cgroup.procs")
                .exists()
            {
                dirs.push((controller, self.parent_dir(controller).join(id)));
            }
        }
        SandboxCgroup { dirs }
    }
}

/// One sandbox's groups.
#[derive(Clone, Debug)]
pub(crate) struct SandboxCgroup {
    dirs: Vec<(&'static str, PathBuf)>,
}

fn write(path: &Path, value: &str) -> Result<(), SandboxError> {
    std::fs::write(path, value)
        .map_err(|e| SandboxError::system(format!("writing {}", path.display()), e))
}

fn read(path: &Path) -> Result<String, SandboxError> {
    std::fs::read_to_string(path)
        .map_err(|e| SandboxError::system(format!("reading {}", path.display()), e))
}

fn read_u64(path: &Path) -> Result<u64, SandboxError> {
    let text = read(path)?;
    text.trim().parse().map_err(|_| {
        SandboxError::system(
            format!("reading {}", path.display()),
            io::Error::new(io::ErrorKind::InvalidData, "not a number"),
        )
    })
}

/// The value of `key` in a "key value" per line file (memory.oom_control, cpu.stat).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

impl SandboxCgroup {
    pub(crate) fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| *c == controller)
            .map(|(_, d)| d.as_path())
    }

    fn file(&self, controller: &str, name: &str) -> Option<PathBuf> {
        self.dir(controller).map(|d| d.join(name))
    }

    /// Creates the groups and writes the limits.
    pub(crate) fn create(
        &self,
        memory_bytes: u64,
        cpu_millicores: u32,
        max_processes: u32,
    ) -> Result<(), SandboxError> {
        for (controller, dir) in &self.dirs {
            std::fs::create_dir(dir).map_err(|e| {
                SandboxError::system(
                    format!("creating the {controller} cgroup {}", dir.display()),
                    e,
                )
            })?;
        }
        if let Some(dir) = self.dir(MEMORY) {
            write(
                &dir.join("memory.limit_in_bytes"),
                &memory_bytes.to_string(),
            )?;
            // With swap accounting the limit covers swap too, so swapping cannot stretch it.
            let memsw = dir.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                write(&memsw, &memory_bytes.to_string())?;
            }
        }
        if let Some(dir) = self.dir(CPU) {
            let quota = CPU_PERIOD_US * u64::from(cpu_millicores) / 1000;
            write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
            write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
        }
        if let Some(dir) = self.dir(PIDS) {
            write(&dir.join("pids.max"), &max_processes.to_string())?;
        }
        Ok(())
    }

    /// Moves process `pid` (and so all it will start) into every group.
    pub(crate) fn enter(&self, pid: u32) -> Result<(), SandboxError> {
        for (_, dir) in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// The processes in the sandbox (from the pids group, else the first group).
    pub(crate) fn pids(&self) -> Vec<u32> {
        let dir = self
            .dir(PIDS)
            .or_else(|| self.dirs.first().map(|(_, d)| d.as_path()));
        let Some(dir) = dir else { return Vec::new() };
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    pub(crate) fn set_frozen(&self, frozen: bool) -> Result<(), SandboxError> {
        let Some(path) = self.file(FREEZER, "freezer.state") else {
            return Err(SandboxError::Unsupported("no freezer cgroup".into()));
        };
        write(&path, if frozen { "FROZEN" } else { "THAWED" })
    }

    /// The freezer's state: FROZEN, FREEZING or THAWED.
    pub(crate) fn freezer_state(&self) -> Option<String> {
        let path = self.file(FREEZER, "freezer.state")?;
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// How many times the kernel's OOM killer killed a process of this group.
    pub(crate) fn oom_kills(&self) -> u64 {
        self.file(MEMORY, "memory.oom_control")
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|text| keyed(&text, "oom_kill"))
            .unwrap_or(0)
    }

    pub(crate) fn cpu_time(&self) -> Option<Duration> {
        let path = self
            .file(CPUACCT, "cpuacct.usage")
            .or_else(|| self.file(CPU, "cpuacct.usage"))?;
        read_u64(&path).ok().map(Duration::from_nanos)
    }

    pub(crate) fn cpu_throttled(&self) -> Option<Duration> {
        let text = std::fs::read_to_string(self.file(CPU, "cpu.stat")?).ok()?;
        keyed(&text, "throttled_time").map(Duration::from_nanos)
    }

    pub(crate) fn memory(&self) -> Option<u64> {
        read_u64(&self.file(MEMORY, "memory.usage_in_bytes")?).ok()
    }

    pub(crate) fn peak_memory(&self) -> Option<u64> {
        read_u64(&self.file(MEMORY, "memory.max_usage_in_bytes")?).ok()
    }

    pub(crate) fn memory_limit_hits(&self) -> Option<u64> {
        read_u64(&self.file(MEMORY, "memory.failcnt")?).ok()
    }

    pub(crate) fn process_count(&self) -> Option<u64> {
        read_u64(&self.file(PIDS, "pids.current")?).ok()
    }

    /// Removes every group; a group that still holds a process stays (EBUSY) and is reported.
    pub(crate) fn remove(&self) -> Result<(), SandboxError> {
        let mut first_error = None;
        for (controller, dir) in &self.dirs {
            match std::fs::remove_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    first_error.get_or_insert(SandboxError::system(
                        format!("removing the {controller} cgroup {}", dir.display()),
                        e,
                    ));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    pub(crate) fn exists(&self) -> bool {
        self.dirs.iter().any(|(_, d)| d.exists())
    }
}

#[cfg(test)]
mod tests {
    use super::keyed;

    #[test]
    fn keyed_files_are_read_by_key() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed(text, "oom_kill"), Some(3));
        assert_eq!(keyed(text, "under_oom"), Some(0));
        assert_eq!(keyed(text, "missing"), None);
    }
}
