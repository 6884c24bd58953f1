//! The systemd unit of `packaging/systemd/hive.service`, as systemd reads it: every directive
//! known (systemd ignores an unknown one with only a warning, which would drop a hardening
//! setting silently), the binary it starts the `hive` under test. Needs `systemd-analyze`:
//! without it the test fails under CI and is skipped elsewhere.

use std::path::Path;

const ANALYZE: &str = "/usr/bin/systemd-analyze";

/// What the unit must keep: a user of its own, a read-only host, no new privileges.
const HARDENING: [&str; 6] = [
    "User=hive",
    "StateDirectory=hive",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "CapabilityBoundingSet=",
];

#[tokio::test]
async fn the_systemd_unit_is_read_whole_by_systemd() {
    if !Path::new(ANALYZE).exists() {
        hive_store::test_env::missing(ANALYZE);
        return;
    }
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/systemd/hive.service");
    let unit = std::fs::read_to_string(shipped).unwrap();
    for directive in HARDENING {
        assert!(
            unit.lines().any(|line| line == directive),
            "the unit lacks {directive}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hive.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/hive", env!("CARGO_BIN_EXE_hive")),
    )
    .unwrap();
    let verified = tokio::process::Command::new(ANALYZE)
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .await
        .unwrap();
    let complaints = String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success(), "{complaints}");
    // Only the unit's own lines count: the host's other units may draw warnings of their own.
    let about_ours: Vec<&str> = complaints
        .lines()
        .filter(|line| line.contains("hive.service"))
        .collect();
    assert!(about_ours.is_empty(), "{about_ours:?}");
}
