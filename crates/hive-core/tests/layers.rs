//! The import directions of docs/architecture.md, enforced: a crate depends only on crates
//! below it in the crates table, and a domain of `hive-core` imports only the domains its row
//! of the domain table names. The tables are read from the page itself, so the page and the
//! code cannot drift apart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn architecture() -> String {
    std::fs::read_to_string(workspace().join("docs/architecture.md"))
        .expect("docs/architecture.md is readable")
}

/// The rows of the markdown table that follows `heading`, as cells.
fn table_after(page: &str, heading: &str) -> Vec<Vec<String>> {
    let start = page
        .find(heading)
        .unwrap_or_else(|| panic!("architecture.md has no {heading:?}"));
    page[start..]
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2)
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect()
}

/// The names quoted in a cell: "`hive-store-sqlite` / `hive-store-postgres`" gives both.
fn quoted(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The `hive-*` crates a manifest depends on outside tests.
fn production_dependencies(manifest: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).expect("manifest is readable");
    let mut section = String::new();
    let mut found = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_owned();
            continue;
        }
        // `[dependencies]`, `[target.'cfg(..)'.dependencies]`, `[dependencies.hive-x]`; not
        // dev- or build-dependencies.
        let production = (section.ends_with("dependencies]")
            || section.starts_with("[dependencies."))
            && !section.contains("dev-dependencies")
            && !section.contains("build-dependencies");
        if let Some(name) = section
            .strip_prefix("[dependencies.")
            .and_then(|s| s.strip_suffix(']'))
            && name.starts_with("hive-")
        {
            found.insert(name.to_owned());
        }
        if production
            && !section.starts_with("[dependencies.")
            && let Some(name) = line.split(['=', '.', ' ']).next()
            && name.starts_with("hive-")
        {
            found.insert(name.to_owned());
        }
    }
    found
}

#[test]
fn crates_depend_only_on_crates_below_them() {
    let page = architecture();
    let mut rank = BTreeMap::new();
    let mut test_only = BTreeSet::new();
    for (index, row) in table_after(&page, "## Crates").iter().enumerate() {
        for name in quoted(&row[0]) {
            // A test harness may use anything; production code may not use it.
            if row[1].contains("dev-dependency only") {
                test_only.insert(name.clone());
            }
            rank.insert(name, index);
        }
    }
    assert!(rank.contains_key("hive-core") && rank.contains_key("hive-store"));
    let mut upward = Vec::new();
    for entry in std::fs::read_dir(workspace().join("crates")).expect("crates/ is readable") {
        let dir = entry.expect("a crates/ entry").path();
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let Some(&own) = rank.get(&name) else {
            panic!("crate {name} is missing from the crates table of architecture.md");
        };
        if test_only.contains(&name) {
            continue;
        }
        for dependency in production_dependencies(&dir.join("Cargo.toml")) {
            assert!(
                !test_only.contains(&dependency),
                "{name} depends on the test-only {dependency}"
            );
            let theirs = rank
                .get(&dependency)
                .unwrap_or_else(|| panic!("{dependency} is missing from the crates table"));
            if *theirs <= own {
                upward.push(format!("{name} -> {dependency}"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "dependencies that point up or sideways: {upward:?}"
    );
}

/// The lines of a source file outside comments and outside its unit tests (the
/// `#[cfg(test)]` module, which Hive keeps at the end of a file).
fn production_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .filter(|line| !line.trim_start().starts_with("//"))
}

/// The module a root path names: the crate root re-exports the composition root's `Hive`.
fn module_of(name: &str) -> String {
    match name {
        "Hive" | "StartError" => "runtime".to_owned(),
        other => other.to_owned(),
    }
}

/// Every `crate::<module>` path in the production lines of the files under `dir`.
fn referenced_modules(dir: &Path, found: &mut Vec<(PathBuf, String)>) {
    let mut files = Vec::new();
    source_files(dir, &mut files);
    for path in files {
        let text = std::fs::read_to_string(&path).expect("a source file is readable");
        for line in production_lines(&text) {
            for (at, _) in line.match_indices("crate::") {
                let name: String = line[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                found.push((path.clone(), module_of(&name)));
            }
        }
    }
}

#[test]
fn domains_import_only_the_domains_below_them() {
    let page = architecture();
    let rows = table_after(&page, "## Inside `hive-core`");
    let domains: BTreeMap<String, BTreeSet<String>> = rows
        .iter()
        .map(|row| {
            let name = quoted(&row[0]).remove(0);
            let allowed = row[2]
                .split(';')
                .next()
                .unwrap_or_default()
                .split(',')
                .map(|word| word.trim().trim_matches('`').to_owned())
                .collect();
            (name, allowed)
        })
        .collect();
    assert!(domains.contains_key("kernel") && domains.contains_key("mesh"));
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for (domain, allowed) in &domains {
        let mut found = Vec::new();
        referenced_modules(&source.join(domain), &mut found);
        assert!(!found.is_empty(), "the {domain} domain has no code");
        for (file, module) in found {
            let permitted = module == *domain
                || allowed.contains(&module)
                // Anything else at the crate root (macros, `lib.rs` items) is not a domain.
                || !(domains.contains_key(&module) || is_composition_root(&module));
            if !permitted {
                wrong.push(format!("{} -> {module}", file.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the domain order: {wrong:#?}"
    );
}

/// The modules that assemble Hive: above every domain, imported by none.
fn is_composition_root(module: &str) -> bool {
    matches!(
        module,
        "runtime" | "storage" | "shared_state" | "sandboxing" | "system_health"
    )
}

/// What only the composition root may name: the database backends, Redis, the NATS client and
/// the sandbox backend.
const BACKENDS: [&str; 7] = [
    "hive_store_sqlite",
    "hive_store_postgres",
    "SqliteStore",
    "PostgresStore",
    "RedisClient",
    "WanCarrier::connect",
    "ProcessBackend",
];

#[test]
fn only_the_composition_root_names_the_backends() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let page = architecture();
    let mut named = Vec::new();
    for row in table_after(&page, "## Inside `hive-core`") {
        let domain = quoted(&row[0]).remove(0);
        let mut files = Vec::new();
        source_files(&source.join(&domain), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for backend in BACKENDS {
                if production_lines(&text).any(|line| line.contains(backend)) {
                    named.push(format!("{} names {backend}", file.display()));
                }
            }
        }
    }
    assert!(
        named.is_empty(),
        "backends named outside the composition root: {named:#?}"
    );
    let root = std::fs::read_to_string(source.join("storage.rs")).unwrap();
    assert!(
        root.contains("SqliteStore") && root.contains("PostgresStore"),
        "the composition root opens the stores"
    );
}

fn source_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, found);
        } else {
            found.push(path);
        }
    }
}
