//! bubblewrap's arguments for a sandbox (bubblewrap 0.8).

use crate::spec::{
    AGENT_MOUNT, CA_BUNDLE, CA_CERTS_MOUNT, CHANNEL_MOUNT, PROXY_SOCKET_MOUNT, SCRATCH_MOUNT,
    SandboxSpec,
};
use std::path::Path;

/// Where the init program appears inside the sandbox.
pub(crate) const INIT_MOUNT: &str = "/hive/init";

/// The host's top-level directories that merged-/usr systems make links into /usr: recreated as
/// the same links (or, on a host where one is a real directory, bound read-only).
const USR_LINKS: [&str; 4] = ["bin", "lib", "lib64", "sbin"];

/// What the host has of its public CA certificates, looked at once per launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HostCaCerts {
    /// The host has [`CA_CERTS_MOUNT`]: it is bound read-only at the same path.
    pub dir: bool,
    /// The host has [`CA_BUNDLE`], and it will be readable inside: the sandbox's environment
    /// names it.
    pub bundle: bool,
}

impl HostCaCerts {
    pub(crate) fn find() -> Self {
        let dir = Path::new(CA_CERTS_MOUNT).is_dir();
        // Debian's bundle is a file of the directory itself; where it is a link, its target is
        // inside only if it lies in the directory or under /usr (both bound).
        let bundle = dir
            && match (
                std::fs::canonicalize(CA_BUNDLE),
                std::fs::canonicalize(CA_CERTS_MOUNT),
            ) {
                (Ok(bundle), Ok(certs)) => {
                    bundle.is_file() && (bundle.starts_with(&certs) || bundle.starts_with("/usr"))
                }
                _ => false,
            };
        Self { dir, bundle }
    }
}

fn push(args: &mut Vec<String>, items: &[&str]) {
    args.extend(items.iter().map(|s| (*s).to_string()));
}

fn host(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

pub(crate) fn arguments(
    spec: &SandboxSpec,
    init_program: &Path,
    init_args: &[String],
    inside_uid: u32,
    require_landlock: bool,
    ca_certs: HostCaCerts,
) -> Vec<String> {
    let mut args = Vec::new();
    push(
        &mut args,
        &[
            // user, ipc, pid, net, uts, cgroup; user made mandatory (not "-try").
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--hostname",
            "sandbox",
        ],
    );
    let uid = inside_uid.to_string();
    push(&mut args, &["--uid", &uid, "--gid", &uid]);
    push(&mut args, &["--ro-bind", "/usr", "/usr"]);
    for name in USR_LINKS {
        let host_path = Path::new("/").join(name);
        match std::fs::read_link(&host_path) {
            Ok(target) => {
                let target = host(&target);
                push(&mut args, &["--symlink", &target, &format!("/{name}")]);
            }
            Err(_) if host_path.is_dir() => {
                let p = host(&host_path);
                push(&mut args, &["--ro-bind", &p, &p]);
            }
            Err(_) => {}
        }
    }
    push(&mut args, &["--proc", "/proc", "--dev", "/dev"]);
    let scratch = spec.limits.scratch_bytes.to_string();
    push(
        &mut args,
        &[
            "--size",
            &scratch,
            "--perms",
            "1777",
            "--tmpfs",
            SCRATCH_MOUNT,
        ],
    );
    push(
        &mut args,
        &["--ro-bind", &host(&spec.agent_root), AGENT_MOUNT],
    );
    push(
        &mut args,
        &["--bind", &host(&spec.channel_dir), CHANNEL_MOUNT],
    );
    if let Some(proxy) = &spec.proxy_socket {
        push(&mut args, &["--ro-bind", &host(proxy), PROXY_SOCKET_MOUNT]);
    }
    if ca_certs.dir {
        // That directory alone: bubblewrap creates /etc and /etc/ssl in its root, which hold
        // nothing else. Debian's certificates are links into /usr/share/ca-certificates, which
        // resolve inside (under /usr).
        push(&mut args, &["--ro-bind", CA_CERTS_MOUNT, CA_CERTS_MOUNT]);
    }
    push(&mut args, &["--ro-bind", &host(init_program), INIT_MOUNT]);
    // The root bubblewrap builds is a tmpfs: read-only once everything is in place.
    push(&mut args, &["--remount-ro", "/"]);
    let workdir = spec.working_dir.as_deref().unwrap_or(AGENT_MOUNT);
    push(&mut args, &["--chdir", workdir]);
    push(&mut args, &["--", INIT_MOUNT]);
    args.extend(init_args.iter().cloned());
    push(&mut args, &["run"]);
    if require_landlock {
        push(&mut args, &["--require-landlock"]);
    }
    args.push("--".into());
    args.extend(spec.command.iter().cloned());
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::SandboxId;

    #[test]
    fn the_command_comes_last_after_the_init_program() {
        let spec = SandboxSpec::new(
            SandboxId::new("t").unwrap(),
            "/srv/agent",
            vec!["/usr/bin/python3".into(), "--flag".into()],
            "/run/chan",
        );
        let certs = HostCaCerts {
            dir: true,
            bundle: true,
        };
        let args = arguments(&spec, Path::new("/opt/init"), &[], 1000, true, certs);
        let tail = &args[args.len() - 7..];
        assert_eq!(
            tail,
            [
                "--",
                INIT_MOUNT,
                "run",
                "--require-landlock",
                "--",
                "/usr/bin/python3",
                "--flag"
            ]
        );
        let joined = args.join(" ");
        assert!(
            joined.contains("--size 67108864 --perms 1777 --tmpfs /tmp"),
            "{joined}"
        );
        assert!(joined.contains("--ro-bind /srv/agent /agent"));
        assert!(joined.contains("--bind /run/chan /hive/channel"));
        // Of the host's /etc, the CA certificates alone, read-only at the same path.
        assert!(joined.contains("--ro-bind /etc/ssl/certs /etc/ssl/certs"));
        assert_eq!(joined.matches("/etc").count(), 2, "{joined}");
    }

    #[test]
    fn without_the_hosts_certificates_nothing_of_etc_is_bound() {
        let spec = SandboxSpec::new(
            SandboxId::new("t").unwrap(),
            "/srv/agent",
            vec!["/usr/bin/true".into()],
            "/run/chan",
        );
        let none = HostCaCerts {
            dir: false,
            bundle: false,
        };
        let args = arguments(&spec, Path::new("/opt/init"), &[], 1000, false, none);
        assert!(!args.join(" ").contains("/etc"));
    }
}
