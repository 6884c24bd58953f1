//! `hive keys` and `hive secrets import` against the data directory.

use crate::process::{run_to_exit, run_with_input};

use hive_testkit::TEST_PASSWORD as PASSWORD;
const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const VALUE: &str =
    "0f1e2d3c4b5a69788796a5b4:67642c9c6150488d9b0b28b79fc0fcd3:43dd2c4d9f2f4a3a69bddf6c6b38";
const PLAINTEXT: &str = "sk-live-abc123";

#[tokio::test]
async fn keys_rotate_and_reencrypt_and_an_imported_secret_moves_along() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let created = run_with_input(
        path,
        &[
            "admin",
            "create",
            "--email",
            "root@example.com",
            "--name",
            "Root",
        ],
        &[],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(created.0.success(), "{created:?}");

    let import = |key: &'static str| {
        run_with_input(
            path,
            &[
                "secrets",
                "import",
                "--user",
                "root@example.com",
                "--name",
                "legacy",
                "--value",
                VALUE,
            ],
            &[],
            key,
        )
    };
    let wrong = import("ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n").await;
    assert!(!wrong.0.success());
    assert!(wrong.2.contains("decrypt"), "{}", wrong.2);
    let imported =
        import("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n").await;
    assert!(imported.0.success(), "{imported:?}");
    assert!(
        imported.1.contains("imported secret legacy"),
        "{}",
        imported.1
    );
    for out in [&wrong.1, &wrong.2, &imported.1, &imported.2] {
        assert!(!out.contains(KEY) && !out.contains(PLAINTEXT), "{out}");
    }

    let rotated = run_to_exit(path, &["keys", "rotate"], &[]).await;
    assert!(rotated.0.success(), "{rotated:?}");
    assert!(
        rotated.1.contains("data key 2 is active (was 1)"),
        "{}",
        rotated.1
    );
    let listed = run_to_exit(path, &["keys", "list"], &[]).await;
    let line = |id: &str| {
        listed
            .1
            .lines()
            .find(|l| l.starts_with(id))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .unwrap()
    };
    // id, created, active, retired, secrets, reserved.
    assert_eq!(line("1 ")[2..5], ["no", "-", "1"], "{}", listed.1);
    assert_eq!(line("2 ")[2..5], ["yes", "-", "0"], "{}", listed.1);

    let reencrypted = run_to_exit(path, &["keys", "reencrypt"], &[]).await;
    assert!(reencrypted.0.success(), "{reencrypted:?}");
    assert!(
        reencrypted.1.contains("re-sealed 1 secrets under key 2"),
        "{}",
        reencrypted.1
    );
    let listed = run_to_exit(path, &["keys", "list"], &[]).await;
    let retired: Vec<bool> = listed
        .1
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(3).unwrap() != "-")
        .collect();
    assert_eq!(retired, [true, false], "{}", listed.1);
    let verified = run_to_exit(path, &["audit", "verify"], &[]).await;
    assert!(verified.0.success(), "{verified:?}");
}
