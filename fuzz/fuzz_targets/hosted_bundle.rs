//! A hosted agent's bundle (`hive_core::agents::hosted::bundle`): `unpack` of a tar.gz into an
//! empty directory, and `parse_manifest` of a `hive-agent.toml`. The first byte picks what the
//! rest is: the gzip stream as uploaded, a tar stream (gzipped here, so the fuzzer works on the
//! archive's headers rather than on deflate), or a manifest's text.
//!
//! Property, whatever the archive: nothing is written outside the bundle's directory, no link
//! inside it points out of it (read as written, or resolved through other links), and no file
//! is a hard link.

#![no_main]

use flate2::Compression;
use flate2::write::GzEncoder;
use hive_core::agents::hosted::bundle;
use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// `path` with `.` and `..` folded lexically; `None` when `..` climbs above the start.
fn fold(path: &Path) -> Option<PathBuf> {
    let mut folded = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                if !folded.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => folded.push(other),
        }
    }
    Some(folded)
}

fn check_inside(root: &Path, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).unwrap_or_default();
            assert!(target.is_relative(), "{path:?} -> {target:?}");
            let lands = path.parent().map(|parent| parent.join(&target));
            assert!(
                lands
                    .as_deref()
                    .and_then(fold)
                    .is_some_and(|at| at.starts_with(root)),
                "{path:?} -> {target:?} leaves the bundle"
            );
            // Resolved by the kernel, through any other link on the way.
            if let (Ok(real), Ok(real_root)) = (path.canonicalize(), root.canonicalize()) {
                assert!(
                    real.starts_with(&real_root),
                    "{path:?} -> {target:?} resolves to {real:?}, outside the bundle"
                );
            }
        } else if meta.is_dir() {
            check_inside(root, &path);
        } else {
            use std::os::unix::fs::MetadataExt;
            assert!(meta.is_file(), "{path:?} is not a file");
            assert_eq!(meta.nlink(), 1, "{path:?} is a hard link");
        }
    }
}

fn unpack_checked(archive: &[u8]) {
    let Ok(parent) = tempfile::tempdir() else {
        return;
    };
    let root = parent.path().join("bundle");
    if std::fs::create_dir(&root).is_err() {
        return;
    }
    let _ = bundle::unpack(archive, &root);
    let beside: Vec<_> = std::fs::read_dir(parent.path())
        .map(|entries| entries.flatten().map(|entry| entry.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(
        beside,
        ["bundle"],
        "something was written beside the bundle"
    );
    check_inside(&root, &root);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => unpack_checked(rest),
        1 => {
            let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
            if gzip.write_all(rest).is_ok() {
                if let Ok(archive) = gzip.finish() {
                    unpack_checked(&archive);
                }
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = bundle::parse_manifest(text);
            }
        }
    }
});
