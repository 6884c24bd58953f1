//! `hive billing` against a running `hive serve`, as an operator runs it (the server's URL and
//! an API token in the environment): an admin credits a user's wallet (the same key twice: one
//! entry) and debits it; the user's wallet and ledger show both; a model's price set and
//! removed; usage read and exported as CSV; a viewer's adjustment refused with the server's
//! message — and no token ever printed.

use crate::accounts::{PASSWORD, create_admin, create_token};
use crate::process::{HiveProcess, client, run_to_exit};
use crate::workflow_cli::Client;
use serde_json::json;

const ADMIN: &str = "books@example.com";
const PAYER: &str = "payer@example.com";
const CSV_HEADER: &str = "id,created_at,kind,agent_id,principal,model,prompt_tokens,completion_tokens,quantity,cost_minor,currency";

/// The value of a `key: value` line.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}: ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{text}"))
}

/// The ledger's rows (below its header).
fn rows(ledger: &str) -> Vec<&str> {
    let mut lines = ledger.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("ID ") && header.contains("AMOUNT"),
        "{ledger}"
    );
    lines.collect()
}

#[tokio::test]
async fn the_billing_commands_adjust_and_read_wallets_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let created = create_admin(path, ADMIN).await;
    let admin_id = created
        .trim()
        .rsplit_once('(')
        .and_then(|(_, id)| id.strip_suffix(')'))
        .unwrap()
        .to_owned();
    let invited = run_to_exit(
        path,
        &["user", "invite", "--email", PAYER, "--role", "viewer"],
        &[],
    )
    .await;
    assert!(invited.0.success(), "{invited:?}");
    let invitation = invited.1.trim().split("#token=").nth(1).unwrap().to_owned();
    let hive = HiveProcess::start(path, &[]).await;
    let accepted = client()
        .post(format!("{}/api/v1/auth/invitation/accept", hive.base_url))
        .json(&json!({ "token": invitation, "displayName": "Payer", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 201);
    let payer_id = accepted.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Tokens are made on the data directory, which the server holds while it runs.
    assert!(hive.stop().await.0.success());
    let admin_token = create_token(path, ADMIN, "books", None).await;
    let payer_token = create_token(path, PAYER, "payer", None).await;
    let hive = HiveProcess::start(path, &[]).await;
    let admin = Client {
        dir: path,
        base: hive.base_url.clone(),
        token: admin_token,
    };
    let payer = Client {
        dir: path,
        base: hive.base_url.clone(),
        token: payer_token,
    };

    // A credit, sent twice with the same key: made once, the repeat says so.
    let credit = [
        "billing",
        "adjust",
        "--user",
        &payer_id,
        "--amount",
        "1250",
        "--reason",
        "welcome credit",
        "--key",
        "grant-1",
    ];
    let first = admin.ok(&credit).await;
    let entry = first
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("adjustment "))
        .and_then(|rest| rest.strip_suffix(" created"))
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    assert_eq!(
        field(&first, "amount"),
        "+1250 minor units (+12.50 USD)",
        "{first}"
    );
    assert_eq!(field(&first, "reason"), "welcome credit");
    assert_eq!(field(&first, "kind"), "adjustment");
    assert_eq!(field(&first, "key"), "grant-1");
    // The admin's token made it.
    let by = field(&first, "by").to_owned();
    assert!(by.starts_with("token:"), "{first}");
    let again = admin.ok(&credit).await;
    assert!(
        again.starts_with(&format!(
            "adjustment {entry} was already made with this key"
        )),
        "{again}"
    );

    let wallet = payer.ok(&["billing", "wallet"]).await;
    assert_eq!(field(&wallet, "user"), payer_id);
    assert_eq!(field(&wallet, "currency"), "usd");
    assert_eq!(
        field(&wallet, "balance"),
        "1250 minor units (12.50 USD)",
        "{wallet}"
    );
    assert_eq!(field(&wallet, "held"), "0 minor units (0.00 USD)");
    assert_eq!(field(&wallet, "owed"), "0 minor units (0.00 USD)");
    assert!(field(&wallet, "enforced").starts_with("no"), "{wallet}");
    assert!(
        field(&wallet, "price per 1,000 tokens").starts_with("0 minor units (0.00 USD)"),
        "{wallet}"
    );
    let ledger = payer.ok(&["billing", "ledger"]).await;
    let listed = rows(&ledger);
    assert_eq!(listed.len(), 1, "one entry for the two requests:\n{ledger}");
    assert!(
        listed[0].starts_with(&entry)
            && listed[0].contains("adjustment")
            && listed[0].contains("+1250 (+12.50 USD)")
            && listed[0].contains(&format!("  {by}  "))
            && listed[0].ends_with("welcome credit"),
        "{ledger}"
    );

    // A debit without a key: a new one, printed before the call and with the entry.
    let (status, debited, stderr) = admin
        .run(&[
            "billing",
            "adjust",
            "--user",
            &payer_id,
            "--amount",
            "-250",
            "--reason",
            "correction",
        ])
        .await;
    assert!(status.success(), "{debited}{stderr}");
    let key = field(&debited, "key");
    assert!(key.parse::<uuid::Uuid>().is_ok(), "{debited}");
    assert!(stderr.contains(&format!("--key {key}")), "{stderr}");
    assert_eq!(field(&debited, "amount"), "-250 minor units (-2.50 USD)");
    // An admin reads another user's books; newest first, at most --limit.
    let wallet = admin.ok(&["billing", "wallet", "--user", &payer_id]).await;
    assert_eq!(
        field(&wallet, "balance"),
        "1000 minor units (10.00 USD)",
        "{wallet}"
    );
    let ledger = admin.ok(&["billing", "ledger", "--user", &payer_id]).await;
    let listed = rows(&ledger);
    assert_eq!(listed.len(), 2, "{ledger}");
    assert!(
        listed[0].contains("-250 (-2.50 USD)") && listed[0].ends_with("correction"),
        "{ledger}"
    );
    assert!(listed[1].starts_with(&entry), "{ledger}");
    let newest = payer.ok(&["billing", "ledger", "--limit", "1"]).await;
    // The same row (the columns are as wide as their widest cell: compare the cells).
    let cells = |row: &str| {
        row.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let newest: Vec<Vec<String>> = rows(&newest).into_iter().map(cells).collect();
    assert_eq!(newest, [cells(listed[0])], "{newest:?}");
    // The admin's own wallet is untouched.
    let own = admin.ok(&["billing", "wallet"]).await;
    assert_eq!(field(&own, "user"), admin_id);
    assert_eq!(field(&own, "balance"), "0 minor units (0.00 USD)");

    // A viewer may not adjust: the server's message, exit 1, nothing changed.
    let (status, stdout, stderr) = payer
        .run(&[
            "billing", "adjust", "--user", &payer_id, "--amount", "100000", "--reason", "gift",
            "--key", "self-1",
        ])
        .await;
    assert_eq!(status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("403") && stderr.contains("You may not do this. (forbidden)"),
        "{stderr}"
    );
    assert!(stderr.contains("HIVE_TOKEN"), "{stderr}");
    // Nor read another user's wallet.
    let (status, _, stderr) = payer.run(&["billing", "wallet", "--user", &admin_id]).await;
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("404"), "{stderr}");
    let wallet = payer.ok(&["billing", "wallet"]).await;
    assert_eq!(field(&wallet, "balance"), "1000 minor units (10.00 USD)");

    // A model's own price (its name is one path segment, slash and all), then removed.
    let set = admin
        .ok(&[
            "billing",
            "prices",
            "set",
            "openai/gpt-4o",
            "--prompt",
            "250",
            "--completion",
            "1000",
        ])
        .await;
    assert_eq!(
        set.trim(),
        "openai/gpt-4o: prompt 250, completion 1000 minor units per 1,000 tokens"
    );
    let prices = payer.ok(&["billing", "prices"]).await;
    assert_eq!(field(&prices, "currency"), "usd");
    assert_eq!(
        field(&prices, "default per 1,000 tokens"),
        "0 minor units (0.00 USD)"
    );
    let row = prices
        .lines()
        .find(|line| line.starts_with("openai/gpt-4o "))
        .unwrap_or_else(|| panic!("{prices}"));
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        [
            "openai/gpt-4o",
            "250",
            "(2.50",
            "USD)",
            "1000",
            "(10.00",
            "USD)"
        ]
    );
    let (status, _, stderr) = payer
        .run(&["billing", "prices", "rm", "openai/gpt-4o"])
        .await;
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("(forbidden)"), "{stderr}");
    let removed = admin
        .ok(&["billing", "prices", "rm", "openai/gpt-4o"])
        .await;
    assert!(removed.starts_with("openai/gpt-4o: "), "{removed}");
    let prices = payer.ok(&["billing", "prices"]).await;
    assert!(!prices.contains("openai/gpt-4o"), "{prices}");
    let (status, _, stderr) = admin
        .run(&["billing", "prices", "rm", "openai/gpt-4o"])
        .await;
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("404"), "{stderr}");

    // Usage: the table (nothing used yet) and the CSV export, to standard output and a file.
    let usage = payer
        .ok(&[
            "billing",
            "usage",
            "--by",
            "model",
            "--from",
            "2025-01-01T00:00:00Z",
            "--to",
            "2025-01-31T00:00:00Z",
        ])
        .await;
    assert!(
        usage.starts_with("usage from 2025-01-01T00:00:00Z to 2025-01-31T00:00:00Z, by model"),
        "{usage}"
    );
    assert_eq!(field(&usage, "total"), "0 minor units (0.00 USD)");
    let csv = payer.ok(&["billing", "usage", "--csv", "-"]).await;
    assert_eq!(csv.lines().next(), Some(CSV_HEADER), "{csv}");
    let file = path.join("usage.csv");
    let wrote = payer
        .ok(&["billing", "usage", "--csv", file.to_str().unwrap()])
        .await;
    assert!(wrote.starts_with("wrote "), "{wrote}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{CSV_HEADER}\r\n")
    );
    // A span the server refuses: its message, exit 1.
    let (status, _, stderr) = payer
        .run(&[
            "billing",
            "usage",
            "--from",
            "2020-01-01T00:00:00Z",
            "--to",
            "2025-01-01T00:00:00Z",
        ])
        .await;
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("the server refused (400") && stderr.contains("366 days"),
        "{stderr}"
    );
    drop(hive);
}
