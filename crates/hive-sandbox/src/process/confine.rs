//! The confinement the sandboxed process applies to itself before it runs the agent: Landlock
//! (which paths it may touch) and seccomp (which system calls it may make). Used by the
//! `hive-sandbox-init` program inside the sandbox, where it runs as the first process of the
//! agent, after bubblewrap has built the namespaces and mounts.

use crate::spec::{AGENT_MOUNT, CA_CERTS_MOUNT, CHANNEL_MOUNT, SCRATCH_MOUNT};
use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, LandlockStatus, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// The newest Landlock ABI the ruleset asks for; older kernels get what they have.
const LANDLOCK_ABI: ABI = ABI::V7;

/// What Landlock enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LandlockOutcome {
    /// Enforced; the ABI the kernel applied.
    Enforced(u8),
    /// Partly (the kernel has an older ABI than asked for); the ABI it applied.
    Partial(u8),
    /// The kernel has no Landlock.
    Unavailable,
}

fn abi_number(status: LandlockStatus) -> u8 {
    match status {
        LandlockStatus::Available { effective_abi, .. } => effective_abi as u8,
        _ => 0,
    }
}

/// Restricts this process (and everything it starts) to: read and execute `/usr` and the
/// agent's files, read `/proc` (its own, the sandbox's) and `/dev`, read (not execute) the CA
/// certificates where the sandbox has them, write the existing device files of `/dev` (null,
/// zero…, but create nothing there), and do anything in the scratch space and the channel
/// directory. Also scopes signals and abstract Unix sockets to the
/// sandbox (ABI 6). Network rules are left to the empty network namespace, so that a connect
/// fails with the network's own answer (ENETUNREACH, ECONNREFUSED) rather than Landlock's.
pub fn apply_landlock() -> Result<LandlockOutcome, String> {
    let abi = LANDLOCK_ABI;
    let read = AccessFs::from_read(abi);
    let dev = AccessFs::from_read(abi) | AccessFs::WriteFile | AccessFs::IoctlDev;
    // Bound in only when the host has them; a rule for a missing path would fail the ruleset.
    let ca_certs: &[&str] = if std::path::Path::new(CA_CERTS_MOUNT).is_dir() {
        &[CA_CERTS_MOUNT]
    } else {
        &[]
    };
    let ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(["/usr", AGENT_MOUNT, "/proc"], read)))
        .and_then(|r| r.add_rules(path_beneath_rules(["/dev"], dev)))
        .and_then(|r| {
            r.add_rules(path_beneath_rules(
                ca_certs,
                AccessFs::ReadFile | AccessFs::ReadDir,
            ))
        })
        .and_then(|r| {
            r.add_rules(path_beneath_rules(
                [SCRATCH_MOUNT, CHANNEL_MOUNT],
                AccessFs::from_all(abi),
            ))
        })
        .map_err(|e| format!("building the Landlock ruleset failed: {e}"))?;
    let status = ruleset
        .restrict_self()
        .map_err(|e| format!("applying the Landlock ruleset failed: {e}"))?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => LandlockOutcome::Enforced(abi_number(status.landlock)),
        RulesetStatus::PartiallyEnforced => LandlockOutcome::Partial(abi_number(status.landlock)),
        RulesetStatus::NotEnforced => LandlockOutcome::Unavailable,
    })
}

/// The Landlock ABI this kernel applies (0 without Landlock), found by restricting the calling
/// process with a ruleset that forbids nothing it needs (creating directories only). Run it in
/// a throwaway process.
pub fn probe_landlock() -> u8 {
    let applied = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::MakeDir)
        .and_then(|r| r.create())
        .and_then(|r| r.restrict_self());
    match applied {
        Ok(status) if status.ruleset != RulesetStatus::NotEnforced => abi_number(status.landlock),
        _ => 0,
    }
}

/// System calls an agent never needs and that open the kernel or the host to it: refused with
/// EPERM, whatever their arguments.
const REFUSED: &[i64] = &[
    // Mounts and the root: the namespaces' mounts are bubblewrap's, never the agent's.
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    // Other processes' memory and files.
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pidfd_getfd,
    libc::SYS_kcmp,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    // The kernel itself.
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_syslog,
    libc::SYS_fanotify_init,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_vhangup,
    // Namespaces: the sandbox's are fixed; no nesting, no joining.
    libc::SYS_unshare,
    libc::SYS_setns,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
];

/// Every `CLONE_NEW*` flag `clone` accepts; a `clone` with any of them is refused.
const CLONE_NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

/// Socket families refused outright: raw link-layer access, the hypervisor's vsock (not
/// namespaced: it would reach the host of a VM), the kernel's key and crypto interfaces, XDP.
const REFUSED_SOCKET_FAMILIES: &[i32] = &[
    libc::AF_PACKET,
    libc::AF_VSOCK,
    libc::AF_KEY,
    libc::AF_ALG,
    libc::AF_XDP,
];

/// `SOCK_PACKET`, the obsolete link-layer socket type of AF_INET (the libc constant is
/// deprecated, the kernel still answers it).
const SOCK_PACKET: i32 = 10;

/// ioctls that push input into a terminal (a classic way out of a sandbox that shares one).
const REFUSED_IOCTLS: &[u64] = &[libc::TIOCSTI, libc::TIOCLINUX];

fn condition(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, len, op, value)
        .map_err(|e| format!("building a seccomp condition failed: {e}"))
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, String> {
    SeccompRule::new(conditions).map_err(|e| format!("building a seccomp rule failed: {e}"))
}

fn target_arch() -> Result<TargetArch, String> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("no seccomp filter for this architecture: {e}"))
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> Result<BpfProgram, String> {
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        target_arch()?,
    )
    .map_err(|e| format!("building the seccomp filter failed: {e}"))?;
    BpfProgram::try_from(filter).map_err(|e| format!("compiling the seccomp filter failed: {e}"))
}

/// The seccomp filters, in the order they are installed. This is an allow-by-default filter
/// that refuses a named dangerous set (a deny-by-default list has to follow every libc and
/// runtime the agent may bring, and breaks them in ways that are hard to see):
///
/// 1. `clone3` answers ENOSYS: its flags sit in memory a filter cannot read, and ENOSYS makes
///    the C library fall back to `clone`, whose flags the second filter checks.
/// 2. EPERM for [`REFUSED`], for `clone` with any `CLONE_NEW*` flag, for `socket` of the
///    [`REFUSED_SOCKET_FAMILIES`] and raw or packet sockets of IPv4 and IPv6, and for the
///    terminal-injecting ioctls.
///
/// A system call of another architecture's numbering (x32, 32-bit) kills the process
/// (seccompiler's architecture check).
pub fn seccomp_filters() -> Result<Vec<BpfProgram>, String> {
    let mut clone3 = BTreeMap::new();
    clone3.insert(libc::SYS_clone3, Vec::new());
    let first = compile(clone3, libc::ENOSYS)?;

    let mut refused: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &syscall in REFUSED {
        refused.insert(syscall, Vec::new());
    }
    let mut clone_rules = Vec::new();
    for &flag in CLONE_NAMESPACE_FLAGS {
        clone_rules.push(rule(vec![condition(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(flag),
            flag,
        )?])?);
    }
    refused.insert(libc::SYS_clone, clone_rules);
    let mut socket_rules = Vec::new();
    for &family in REFUSED_SOCKET_FAMILIES {
        socket_rules.push(rule(vec![condition(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            family as u64,
        )?])?);
    }
    for family in [libc::AF_INET, libc::AF_INET6] {
        // The type's low bits (SOCK_NONBLOCK and SOCK_CLOEXEC sit above them).
        for kind in [libc::SOCK_RAW, SOCK_PACKET] {
            socket_rules.push(rule(vec![
                condition(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, family as u64)?,
                condition(
                    1,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::MaskedEq(0xf),
                    kind as u64,
                )?,
            ])?);
        }
    }
    refused.insert(libc::SYS_socket, socket_rules);
    let mut ioctl_rules = Vec::new();
    for &request in REFUSED_IOCTLS {
        ioctl_rules.push(rule(vec![condition(
            1,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            request,
        )?])?);
    }
    refused.insert(libc::SYS_ioctl, ioctl_rules);
    let second = compile(refused, libc::EPERM)?;
    Ok(vec![first, second])
}

/// Installs [`seccomp_filters`] on the calling thread (single-threaded: the init program).
/// `no_new_privs` must be set first (it is: by Landlock's `restrict_self` and again here).
pub fn apply_seccomp() -> Result<(), String> {
    rustix::thread::set_no_new_privs(true)
        .map_err(|e| format!("setting no_new_privs failed: {e}"))?;
    for program in seccomp_filters()? {
        seccompiler::apply_filter(&program)
            .map_err(|e| format!("installing the seccomp filter failed: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_compile_for_this_architecture() {
        let filters = seccomp_filters().unwrap();
        assert_eq!(filters.len(), 2);
        assert!(filters.iter().all(|f| !f.is_empty()));
    }
}
