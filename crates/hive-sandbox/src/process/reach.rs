//! Whether a sandbox's host uid can reach what bubblewrap binds in. When Hive runs as root,
//! bubblewrap runs as the sandbox's own uid and looks each bind source up as that uid: every
//! directory on the way (through symbolic links, as the kernel goes) must let it search (x),
//! and the source itself must allow what the sandbox does with it. Checked from the files'
//! modes, as Hive: a sandbox's uid has no account, so no owner, group or ACL names it, and the
//! "others" bits decide (the owner's or the group's where a file does belong to it).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// The kernel's bound on symbolic links followed in one lookup.
const MAX_LINKS: u32 = 40;

/// What the sandbox does with a bind source itself, beyond reaching it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// Nothing (Hive hands it to the sandbox's uid itself).
    Reach,
    /// List and enter a directory (r and x).
    ReadDir,
    /// Run a program (x).
    Execute,
}

impl Need {
    fn bits(self) -> u32 {
        match self {
            Self::Reach => 0,
            Self::ReadDir => 0o5,
            Self::Execute => 0o1,
        }
    }

    /// What the sandbox cannot do, said of the source ("cannot … it").
    pub(crate) fn verb(self) -> &'static str {
        match self {
            Self::Reach => "reach",
            Self::ReadDir => "list and enter",
            Self::Execute => "run",
        }
    }

    /// The letters of `chmod` that grant it.
    pub(crate) fn letters(self) -> &'static str {
        match self {
            Self::Reach => "",
            Self::ReadDir => "rx",
            Self::Execute => "x",
        }
    }
}

/// Why the uid cannot use a bind source.
#[derive(Debug)]
pub(crate) enum Unreachable {
    /// A directory on the way does not let the uid search it; `class` is `chmod`'s letter for
    /// the bits that decide for the uid (`o` but where the directory is the uid's own).
    Directory {
        dir: PathBuf,
        mode: u32,
        class: char,
    },
    /// The source itself (at `path`, links resolved) does not allow what is needed.
    Source {
        path: PathBuf,
        mode: u32,
        class: char,
    },
    /// Hive itself could not look at `path`.
    Io { path: PathBuf, error: io::Error },
}

/// The bits of `meta`'s mode that decide for `uid` (whose only group is the same number, as
/// the process backend starts it), and `chmod`'s letter for them.
fn class_of(meta: &std::fs::Metadata, uid: u32) -> (u32, char) {
    let mode = meta.mode();
    if meta.uid() == uid {
        ((mode >> 6) & 0o7, 'u')
    } else if meta.gid() == uid {
        ((mode >> 3) & 0o7, 'g')
    } else {
        (mode & 0o7, 'o')
    }
}

fn names(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

fn io_error(path: &Path, error: io::Error) -> Unreachable {
    Unreachable::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Checks that `uid` can look `path` (absolute) up and do `need` with what it names.
pub(crate) fn check(path: &Path, uid: u32, need: Need) -> Result<(), Unreachable> {
    // `at` is a directory reached so far, with no link in it; `rest` is what is left to look up.
    let mut at = PathBuf::from("/");
    let mut rest = names(path);
    let mut links = 0;
    while let Some(name) = rest.pop_front() {
        // Looking anything up in `at` needs search permission on it.
        let meta = std::fs::metadata(&at).map_err(|e| io_error(&at, e))?;
        if !meta.is_dir() {
            return Err(io_error(&at, io::Error::from_raw_os_error(libc::ENOTDIR)));
        }
        let (bits, class) = class_of(&meta, uid);
        if bits & 0o1 == 0 {
            return Err(Unreachable::Directory {
                dir: at,
                mode: meta.mode() & 0o7777,
                class,
            });
        }
        if name == ".." {
            at.pop();
            continue;
        }
        let next = at.join(&name);
        let meta = std::fs::symlink_metadata(&next).map_err(|e| io_error(&next, e))?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(io_error(&next, io::Error::from_raw_os_error(libc::ELOOP)));
            }
            let target = std::fs::read_link(&next).map_err(|e| io_error(&next, e))?;
            if target.is_absolute() {
                at = PathBuf::from("/");
            }
            let mut resolved = names(&target);
            resolved.extend(rest);
            rest = resolved;
        } else {
            at = next;
        }
    }
    let meta = std::fs::metadata(&at).map_err(|e| io_error(&at, e))?;
    let (bits, class) = class_of(&meta, uid);
    if bits & need.bits() != need.bits() {
        return Err(Unreachable::Source {
            path: at,
            mode: meta.mode() & 0o7777,
            class,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A uid that owns nothing here (the sandboxes' range).
    const NOBODY: u32 = 1_610_000_000;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A directory tree in a fresh temporary directory (0755): `data/agent` with a file.
    fn tree() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        chmod(root.path(), 0o755);
        let data = root.path().join("data");
        std::fs::create_dir_all(data.join("agent")).unwrap();
        chmod(&data.join("agent"), 0o755);
        std::fs::write(data.join("hive.key"), "k").unwrap();
        (root, data)
    }

    fn blocking_dir(result: Result<(), Unreachable>) -> (PathBuf, u32, char) {
        match result {
            Err(Unreachable::Directory { dir, mode, class }) => (dir, mode, class),
            other => panic!("not blocked by a directory: {other:?}"),
        }
    }

    #[test]
    fn a_private_parent_blocks_and_is_named() {
        let (_root, data) = tree();
        chmod(&data, 0o700);
        let (dir, mode, class) = blocking_dir(check(&data.join("agent"), NOBODY, Need::ReadDir));
        assert_eq!((dir, mode, class), (data.clone(), 0o700, 'o'));
        // Traversable but not listable is enough.
        chmod(&data, 0o711);
        check(&data.join("agent"), NOBODY, Need::ReadDir).unwrap();
    }

    #[test]
    fn links_are_followed_as_the_kernel_does() {
        let (root, data) = tree();
        chmod(&data, 0o700);
        // An open path through a link into the private directory is blocked there...
        let link = root.path().join("bundle");
        std::os::unix::fs::symlink(data.join("agent"), &link).unwrap();
        let (dir, ..) = blocking_dir(check(&link, NOBODY, Need::ReadDir));
        assert_eq!(dir, data);
        // ...and so is a relative link that climbs into it, and a path with `..`.
        let relative = root.path().join("relative");
        std::os::unix::fs::symlink("data/../data/agent", &relative).unwrap();
        let (dir, ..) = blocking_dir(check(&relative, NOBODY, Need::Reach));
        assert_eq!(dir, data);
        let (dir, ..) = blocking_dir(check(&data.join("agent/../agent"), NOBODY, Need::Reach));
        assert_eq!(dir, data);
        chmod(&data, 0o711);
        check(&link, NOBODY, Need::ReadDir).unwrap();
        check(&relative, NOBODY, Need::ReadDir).unwrap();
    }

    #[test]
    fn the_source_itself_must_allow_what_the_sandbox_does() {
        let (_root, data) = tree();
        let agent = data.join("agent");
        chmod(&agent, 0o711);
        match check(&agent, NOBODY, Need::ReadDir) {
            Err(Unreachable::Source { path, mode, class }) => {
                assert_eq!((path, mode, class), (agent.clone(), 0o711, 'o'))
            }
            other => panic!("{other:?}"),
        }
        check(&agent, NOBODY, Need::Reach).unwrap();
        let program = data.join("init");
        std::fs::write(&program, "").unwrap();
        chmod(&program, 0o700);
        assert!(check(&program, NOBODY, Need::Execute).is_err());
        chmod(&program, 0o755);
        check(&program, NOBODY, Need::Execute).unwrap();
    }

    #[test]
    fn the_owners_bits_decide_for_the_owner() {
        let (_root, data) = tree();
        chmod(&data, 0o700);
        let me = rustix::process::getuid().as_raw();
        check(&data.join("agent"), me, Need::ReadDir).unwrap();
        chmod(&data, 0o601);
        let (_, _, class) = blocking_dir(check(&data.join("agent"), me, Need::Reach));
        assert_eq!(class, 'u');
        chmod(&data, 0o755);
    }

    #[test]
    fn a_missing_source_is_an_error_of_its_own() {
        let (_root, data) = tree();
        match check(&data.join("absent"), NOBODY, Need::Reach) {
            Err(Unreachable::Io { path, error }) => {
                assert_eq!(path, data.join("absent"));
                assert_eq!(error.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
    }
}
