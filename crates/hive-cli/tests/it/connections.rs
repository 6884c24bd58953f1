//! A flood of half-sent requests against the real binary: other clients are served, the
//! process's memory stays bounded while it lasts and comes back after; and the connection
//! metrics of the API and of the metrics listener kept apart.

use crate::process::{HiveProcess, client, poll_until, resident_kib};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

/// The flood's size, and the default `HIVE_HTTP_MAX_CONNECTIONS_PER_IP` it runs into.
const FLOOD: usize = 3000;
const PER_ADDRESS_CAP: usize = 256;

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
    for _ in 0..FLOOD {
        let Some(mut stream) = connect_from("127.0.0.2", server).await else {
            break;
        };
        // A connection the server already closed may refuse the write; that is the point.
        let _ = stream.write_all(padding.as_bytes()).await;
        flood.push(stream);
    }
    assert_eq!(
        flood.len(),
        FLOOD,
        "this test could open only {} connections: raise the open-file limit (ulimit -n 8192)",
        flood.len()
    );
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

    // Each connection over the address's cap took the place of its oldest one: exactly the
    // oldest are closed, the newest still open.
    let mut closed = vec![false; flood.len()];
    poll_until(
        "the server closes the connections over the cap",
        Duration::from_secs(30),
        async || {
            for (stream, closed) in flood.iter().zip(closed.iter_mut()) {
                *closed = *closed || closed_now(stream);
            }
            (closed.iter().filter(|closed| **closed).count() >= FLOOD - PER_ADDRESS_CAP)
                .then_some(())
        },
    )
    .await;
    let newest_closed = closed[FLOOD - PER_ADDRESS_CAP..]
        .iter()
        .filter(|closed| **closed)
        .count();
    assert_eq!(newest_closed, 0, "the newest {PER_ADDRESS_CAP} stay open");

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

/// Whether the server has closed `stream` (an end of stream or a reset), without waiting.
fn closed_now(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    match stream.try_read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// The value of `name` with exactly `labels`, if the scrape has it.
fn sample(metrics: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
}

#[tokio::test]
async fn the_api_connection_gauge_is_not_the_scrapers() {
    let dir = tempfile::tempdir().unwrap();
    let hive = HiveProcess::start(
        dir.path(),
        &[
            // Long enough that the silent connections below stay open through the test.
            ("HIVE_HTTP_HEADER_READ_TIMEOUT_SECONDS", "300"),
            ("HIVE_METRICS_LISTEN", "127.0.0.1:0"),
        ],
    )
    .await;
    let server: std::net::SocketAddr = hive.base_url.trim_start_matches("http://").parse().unwrap();
    let metrics_url = hive
        .stderr()
        .split("Metrics on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .expect("the metrics address is printed");
    let scraper = client();
    let scrape = async || {
        let response = scraper.get(&metrics_url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    };
    let mut api = Vec::new();
    for _ in 0..5 {
        api.push(connect_from("127.0.0.1", server).await.unwrap());
    }
    // Each scrape is served on the metrics listener while the five API connections stay open.
    let metrics = poll_until(
        "the API gauge counts five",
        Duration::from_secs(20),
        async || {
            let metrics = scrape().await;
            let open = sample(&metrics, "hive_http_connections_open", "listener=\"api\"");
            (open == Some(5.0)).then_some(metrics)
        },
    )
    .await;
    let scraping = sample(
        &metrics,
        "hive_http_connections_open",
        "listener=\"metrics\"",
    );
    assert!(
        scraping.is_some_and(|open| open >= 1.0),
        "the scraper's connection is counted on its own listener:\n{metrics}"
    );
    for _ in 0..3 {
        let metrics = scrape().await;
        assert_eq!(
            sample(&metrics, "hive_http_connections_open", "listener=\"api\""),
            Some(5.0),
            "{metrics}"
        );
    }
    drop(api);
    poll_until(
        "the API gauge falls to zero",
        Duration::from_secs(20),
        async || {
            let metrics = scrape().await;
            let open = sample(&metrics, "hive_http_connections_open", "listener=\"api\"");
            (open == Some(0.0)).then_some(())
        },
    )
    .await;
    let (status, _, stderr) = hive.stop().await;
    assert!(status.success(), "{stderr}");
}
