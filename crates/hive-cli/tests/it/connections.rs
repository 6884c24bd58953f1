//! A flood of half-sent requests against the real binary: other clients are served, the
//! process's memory stays bounded while it lasts and comes back after.

use crate::process::{HiveProcess, poll_until, resident_kib};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

/// What a flood may add to the resident memory, at its height and after it (documented in
/// docs/http-api.md#connections).
const FLOOD_GROWTH_BOUND_KIB: u64 = 48 * 1024;
const AFTER_FLOOD_BOUND_KIB: u64 = 24 * 1024;

async fn connect_from(source: &str, server: std::net::SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket
        .bind((source.parse::<std::net::IpAddr>().ok()?, 0).into())
        .ok()?;
    socket.connect(server).await.ok()
}

async fn healthy_from(base_url: &str, source: &str) -> bool {
    let client = reqwest::Client::builder()
        .no_proxy()
        .local_address(Some(source.parse().unwrap()))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    client
        .get(format!("{base_url}/api/health"))
        .send()
        .await
        .is_ok_and(|response| response.status() == 200)
}

#[tokio::test]
async fn a_half_open_flood_from_one_client_neither_starves_others_nor_keeps_memory() {
    let dir = tempfile::tempdir().unwrap();
    let hive = HiveProcess::start(
        dir.path(),
        &[("HIVE_HTTP_HEADER_READ_TIMEOUT_SECONDS", "300")],
    )
    .await;
    let server: std::net::SocketAddr = hive.base_url.trim_start_matches("http://").parse().unwrap();
    assert!(healthy_from(&hive.base_url, "127.0.0.1").await);
    let baseline = resident_kib(hive.pid());

    // 3,000 connections from one address, each 16 KiB into a request head that never ends.
    let padding = format!(
        "GET /api/health HTTP/1.1\r\nHost: hive\r\nX-Pad: {}",
        "p".repeat(16 * 1024)
    );
    let mut flood = Vec::new();
    for _ in 0..3000 {
        if let Some(mut stream) = connect_from("127.0.0.2", server).await {
            // A connection the server already closed may refuse the write; that is the point.
            let _ = stream.write_all(padding.as_bytes()).await;
            flood.push(stream);
        }
    }
    assert!(
        healthy_from(&hive.base_url, "127.0.0.3").await,
        "another client is served during the flood"
    );
    let during = resident_kib(hive.pid());
    assert!(
        during.saturating_sub(baseline) < FLOOD_GROWTH_BOUND_KIB,
        "the flood took {} KiB (baseline {baseline} KiB)",
        during - baseline
    );

    drop(flood);
    // The server sees the closed connections at once; poll until its memory settles.
    poll_until(
        "memory returns after the flood",
        Duration::from_secs(30),
        async || {
            let now = resident_kib(hive.pid());
            (now.saturating_sub(baseline) < AFTER_FLOOD_BOUND_KIB).then_some(())
        },
    )
    .await;
    assert!(healthy_from(&hive.base_url, "127.0.0.2").await);
    let (status, _, stderr) = hive.stop().await;
    assert!(status.success(), "{stderr}");
}
