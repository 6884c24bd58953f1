//! The module order of docs/architecture.md ("Inside `hive-server`"), enforced: a module of
//! this crate names (`crate::…`) only itself and the modules its row allows, and a row allows
//! only modules listed before it, so the order has no circle. The table is read from the page
//! itself, so the page and the code cannot drift apart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Each module of the table with the modules it may import, in the table's order.
fn layers() -> Vec<(String, BTreeSet<String>)> {
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/architecture.md"),
    )
    .expect("docs/architecture.md is readable");
    let heading = "## Inside `hive-server`";
    let start = page
        .find(heading)
        .unwrap_or_else(|| panic!("architecture.md has no {heading:?}"));
    page[start..]
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2)
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
            let module = quoted(cells[0]).remove(0);
            let allowed = quoted(cells.last().unwrap()).into_iter().collect();
            (module, allowed)
        })
        .collect()
}

/// The names quoted in a cell ("`error`, `request`" gives both; "nothing" none).
fn quoted(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The crate's top-level modules: `src/<name>.rs` and `src/<name>/`, not the crate root.
fn modules_in_source() -> BTreeSet<String> {
    std::fs::read_dir(source())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| {
            let stem = path.file_stem()?.to_str()?.to_owned();
            (path.is_dir() || path.extension().is_some_and(|e| e == "rs")).then_some(stem)
        })
        .filter(|name| name != "lib")
        .collect()
}

fn source_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The files of a top-level module.
fn files_of(module: &str) -> Vec<PathBuf> {
    let dir = source().join(module);
    let mut files = Vec::new();
    if dir.is_dir() {
        source_files(&dir, &mut files);
    } else {
        files.push(source().join(format!("{module}.rs")));
    }
    files
}

/// The lines of a source file outside comments and outside its unit tests (the
/// `#[cfg(test)]` module, kept at the end of a file).
fn production_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .filter(|line| !line.trim_start().starts_with("//"))
}

/// The first path segment after each `crate::` on `line`; `{` for a grouped import, which would
/// hide what it names from this check.
fn crate_paths(line: &str) -> Vec<String> {
    line.match_indices("crate::")
        .map(|(at, _)| {
            let rest = &line[at + "crate::".len()..];
            if rest.starts_with('{') {
                return "{".to_owned();
            }
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// Whether `file` is the root of its module (`src/x.rs`, `src/x/mod.rs`), where `super::` is
/// the crate root.
fn is_module_root(file: &Path) -> bool {
    file.parent() == Some(source().as_path()) || file.file_name().is_some_and(|n| n == "mod.rs")
}

#[test]
fn the_table_is_an_order_of_every_module() {
    let layers = layers();
    assert!(layers.len() > 5, "the table reads: {layers:?}");
    let listed: BTreeSet<String> = layers.iter().map(|(module, _)| module.clone()).collect();
    assert_eq!(
        listed,
        modules_in_source(),
        "every module of src/ has one row in architecture.md's hive-server table"
    );
    let mut below = BTreeSet::new();
    for (module, allowed) in &layers {
        let above: Vec<_> = allowed.difference(&below).collect();
        assert!(
            above.is_empty(),
            "{module} may import only modules listed before it, not {above:?}"
        );
        below.insert(module.clone());
    }
}

#[test]
fn modules_import_only_the_modules_below_them() {
    let layers: BTreeMap<String, BTreeSet<String>> = layers().into_iter().collect();
    let mut wrong = Vec::new();
    for (module, allowed) in &layers {
        for file in files_of(module) {
            let text = std::fs::read_to_string(&file).unwrap();
            for line in production_lines(&text) {
                if is_module_root(&file) && line.contains("super::") {
                    wrong.push(format!(
                        "{}: `super::` here is the crate root; name the module",
                        file.display()
                    ));
                }
                for name in crate_paths(line) {
                    let permitted = name == *module || allowed.contains(&name);
                    if !permitted {
                        wrong.push(format!("{} -> crate::{name}", file.display()));
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the module order of architecture.md (a name re-exported at the crate \
         root or a grouped `crate::{{…}}` import counts as wrong: name the module): {wrong:#?}"
    );
}

#[test]
fn the_check_sees_what_it_must() {
    assert_eq!(
        crate_paths("use crate::routes::a2a; let x = crate::state::AppState::new();"),
        ["routes", "state"]
    );
    assert_eq!(crate_paths("use crate::{auth, routes};"), ["{"]);
    assert_eq!(crate_paths("pub(crate) fn f() {}"), Vec::<String>::new());
}
