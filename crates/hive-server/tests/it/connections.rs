//! The connection layer under abuse, over raw TCP on loopback: stalled request heads, floods of
//! half-open connections from one address, idle keep-alives, HTTP/2 stream caps, and requests
//! the HTTP parser refuses before any route sees them.

use crate::support::{ADMIN_EMAIL, PASSWORD, identity_server, login, setup_admin};
use hive_testkit::{TestBackend, TestServer};
use reqwest::Method;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// How long a test waits for the server to act before failing (never slept through: each wait
/// ends as soon as the event happens).
const PATIENCE: Duration = Duration::from_secs(20);

fn address(server: &TestServer) -> SocketAddr {
    server
        .base_url
        .trim_start_matches("http://")
        .parse()
        .unwrap()
}

/// A connection from `source` (any port) to the server.
async fn connect_from(server: &TestServer, source: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    socket.connect(address(server)).await.unwrap()
}

/// A connection that has sent the start of a request head and stops there.
async fn half_sent_head(server: &TestServer, source: &str) -> TcpStream {
    let mut stream = connect_from(server, source).await;
    stream
        .write_all(b"GET /api/health HTTP/1.1\r\nHost: hive\r\nX-Slow: ")
        .await
        .unwrap();
    stream
}

/// Waits until the server closes `stream` (end of stream or a reset).
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Whether the server has closed `stream` by now, without waiting.
async fn is_closed_now(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Sends `request` on a fresh connection and reads the whole answer (the server closes it).
async fn raw_exchange(server: &TestServer, request: &[u8]) -> (String, serde_json::Value) {
    let mut stream = connect_from(server, "127.0.0.1").await;
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    let read = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if complete(&answer) {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no whole answer");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let body = serde_json::from_str(body).unwrap_or_else(|_| panic!("a JSON body: {text}"));
    (head.to_owned(), body)
}

/// Whether `answer` holds a head and the whole body its Content-Length announces.
fn complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .is_some_and(|length| body.len() >= length)
}

async fn health_from(server: &TestServer, source: &str) -> bool {
    let client = reqwest::Client::builder()
        .local_address(Some(source.parse().unwrap()))
        .timeout(PATIENCE)
        .build()
        .unwrap();
    client
        .get(server.url("/api/health"))
        .send()
        .await
        .is_ok_and(|response| response.status() == 200)
}

#[tokio::test]
async fn a_request_head_that_never_ends_is_closed_while_others_are_served() {
    let server = TestServer::builder(TestBackend::Sqlite)
        .var("HIVE_HTTP_HEADER_READ_TIMEOUT_SECONDS", "1")
        .start()
        .await;
    let mut slow = Vec::new();
    for _ in 0..50 {
        slow.push(half_sent_head(&server, "127.0.0.1").await);
    }
    assert!(
        health_from(&server, "127.0.0.1").await,
        "served beside the stalled ones"
    );
    for stream in &mut slow {
        assert!(closed_by_server(stream).await, "a stalled head is cut off");
    }
    // A connection that sends nothing at all is cut off too.
    let mut silent = connect_from(&server, "127.0.0.1").await;
    assert!(closed_by_server(&mut silent).await);
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let server = TestServer::builder(TestBackend::Sqlite)
        // hyper's head timeout also runs from the end of each answer: only the idle timeout
        // can close this connection within the test's patience.
        .var("HIVE_HTTP_HEADER_READ_TIMEOUT_SECONDS", "300")
        .var("HIVE_HTTP_IDLE_TIMEOUT_SECONDS", "1")
        .start()
        .await;
    let mut stream = connect_from(&server, "127.0.0.1").await;
    stream
        .write_all(b"GET /api/health HTTP/1.1\r\nHost: hive\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_by_server(&mut stream).await,
        "closed once idle after its answer"
    );
    server.stop().await.0.unwrap();
}

/// The HTTP/2 client preface and an empty SETTINGS frame (prior knowledge, no TLS).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// A HEADERS frame (END_STREAM | END_HEADERS) on `stream_id`: GET http://hive/api/health, in
/// HPACK with indexed names and plain literal values (no compression state to keep).
fn h2_get_health(stream_id: u32) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x04, 11];
    block.extend_from_slice(b"/api/health");
    block.extend_from_slice(&[0x01, 4]);
    block.extend_from_slice(b"hive");
    let mut frame = vec![0, 0, u8::try_from(block.len()).unwrap(), 0x1, 0x5];
    frame.extend_from_slice(&stream_id.to_be_bytes());
    frame.extend_from_slice(&block);
    frame
}

/// The type, stream id and payload of the next HTTP/2 frame; `None` once the server closed.
async fn h2_next_frame(stream: &mut TcpStream) -> Option<(u8, u32, Vec<u8>)> {
    let mut header = [0u8; 9];
    stream.read_exact(&mut header).await.ok()?;
    let length =
        usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
    let stream_id = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).await.ok()?;
    Some((header[3], stream_id, payload))
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_its_last_stream() {
    let server = TestServer::builder(TestBackend::Sqlite)
        // Only the idle timeout can close this connection once a request was served.
        .var("HIVE_HTTP_HEADER_READ_TIMEOUT_SECONDS", "300")
        .var("HIVE_HTTP_IDLE_TIMEOUT_SECONDS", "1")
        .start()
        .await;
    let mut stream = connect_from(&server, "127.0.0.1").await;
    stream.write_all(H2_PREFACE).await.unwrap();
    stream.write_all(&h2_get_health(1)).await.unwrap();
    // The answer comes (a HEADERS frame on stream 1), then, idle, the connection is closed.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the idle connection stays open");
    let answered = seen
        .windows(9)
        .any(|header| header[3] == 0x1 && header[5..9] == [0, 0, 0, 1]);
    assert!(answered, "the request on stream 1 was answered first");
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_flood_of_half_open_connections_from_one_address_starves_nobody() {
    let server = TestServer::builder(TestBackend::Sqlite)
        // Long enough that only the caps can explain a closed connection.
        .var("HIVE_HTTP_HEADER_READ_TIMEOUT_SECONDS", "300")
        .var("HIVE_HTTP_MAX_CONNECTIONS_PER_IP", "20")
        .var("HIVE_HTTP_MAX_CONNECTIONS", "64")
        .start()
        .await;
    let mut flood = Vec::new();
    for _ in 0..200 {
        flood.push(half_sent_head(&server, "127.0.0.2").await);
    }
    // Another address, and the flooding address itself, are still served.
    assert!(health_from(&server, "127.0.0.3").await);
    assert!(health_from(&server, "127.0.0.2").await);
    // Each new connection took the place of the oldest idle one of its address, so the
    // address never held more than its cap: the oldest 181 are closed (the last one by the
    // health check above), the newest are still open.
    for stream in flood.iter_mut().take(181) {
        assert!(closed_by_server(stream).await, "an old one is closed");
    }
    assert!(!is_closed_now(flood.last_mut().unwrap()).await);
    drop(flood);
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn the_total_cap_holds_with_every_connection_busy() {
    let server = crate::support::identity_server_with(
        TestBackend::Sqlite,
        &[
            // Long enough that only the cap can explain a closed connection.
            ("HIVE_HTTP_HEADER_READ_TIMEOUT_SECONDS", "300"),
            ("HIVE_HTTP_MAX_CONNECTIONS", "16"),
            ("HIVE_HTTP_MAX_CONNECTIONS_PER_IP", "100"),
            ("A2A_STREAMS_PER_IP", "100"),
            ("A2A_STREAMS_PER_USER", "100"),
        ],
    )
    .await;
    setup_admin(&server).await;
    let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
    // Sixteen live event streams keep sixteen connections busy.
    let mut streams = Vec::new();
    for _ in 0..16 {
        let response = admin
            .request(&server, Method::GET, "/api/v1/events")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        streams.push(response);
    }
    let mut refused = connect_from(&server, "127.0.0.1").await;
    assert!(
        closed_by_server(&mut refused).await,
        "the seventeenth is closed"
    );
    drop(streams);
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_client_that_resets_streams_in_a_loop_is_disconnected() {
    let server = TestServer::start(TestBackend::Sqlite).await;
    let mut stream = connect_from(&server, "127.0.0.1").await;
    stream.write_all(H2_PREFACE).await.unwrap();
    // Each stream opened and at once cancelled (RST_STREAM, CANCEL): the "rapid reset" attack.
    let mut burst = Vec::new();
    for stream_id in (1..1000).step_by(2) {
        burst.extend_from_slice(&h2_get_health(stream_id));
        burst.extend_from_slice(&[0, 0, 4, 0x3, 0]);
        burst.extend_from_slice(&stream_id.to_be_bytes());
        burst.extend_from_slice(&0x8u32.to_be_bytes());
    }
    // The server may hang up before it has read the whole burst.
    let _ = stream.write_all(&burst).await;
    let go_away = tokio::time::timeout(PATIENCE, async {
        while let Some((kind, _, payload)) = h2_next_frame(&mut stream).await {
            if kind == 0x7 {
                return Some(u32::from_be_bytes([
                    payload[4], payload[5], payload[6], payload[7],
                ]));
            }
        }
        None
    })
    .await
    .expect("the server answers the burst");
    assert_eq!(
        go_away,
        Some(0xb),
        "GOAWAY with ENHANCE_YOUR_CALM, before the connection closes"
    );
    assert!(closed_by_server(&mut stream).await);
    assert!(
        health_from(&server, "127.0.0.1").await,
        "the server goes on serving"
    );
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_newcomer_is_refused_when_its_address_is_at_its_cap_and_every_connection_is_busy() {
    let server = crate::support::identity_server_with(
        TestBackend::Sqlite,
        &[
            // Long enough that only the cap can explain a closed connection.
            ("HIVE_HTTP_HEADER_READ_TIMEOUT_SECONDS", "300"),
            ("HIVE_HTTP_MAX_CONNECTIONS_PER_IP", "2"),
            ("A2A_STREAMS_PER_IP", "100"),
            ("A2A_STREAMS_PER_USER", "100"),
        ],
    )
    .await;
    setup_admin(&server).await;
    let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
    // Two live event streams from the test client's address hold both of its places (an idle
    // connection of its pool gave its place to the second).
    let mut streams = Vec::new();
    for _ in 0..2 {
        let response = admin
            .request(&server, Method::GET, "/api/v1/events")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        streams.push(response);
    }
    let mut refused = connect_from(&server, "127.0.0.1").await;
    assert!(
        closed_by_server(&mut refused).await,
        "a third connection from the address is closed"
    );
    // The total cap is far off: another address is served.
    assert!(health_from(&server, "127.0.0.4").await);
    drop(streams);
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn http2_connections_announce_the_stream_cap() {
    let server = TestServer::builder(TestBackend::Sqlite)
        .var("HIVE_HTTP_MAX_STREAMS_PER_CONNECTION", "7")
        .start()
        .await;
    let mut stream = connect_from(&server, "127.0.0.1").await;
    stream.write_all(H2_PREFACE).await.unwrap();
    let mut header = [0u8; 9];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut header))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(header[3], 0x4, "the server's first frame is SETTINGS");
    let length =
        usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).await.unwrap();
    let max_streams = payload.chunks(6).find_map(|setting| {
        (u16::from_be_bytes([setting[0], setting[1]]) == 0x3)
            .then(|| u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]))
    });
    assert_eq!(max_streams, Some(7));
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn requests_the_parser_refuses_get_the_error_shape() {
    let server = TestServer::start(TestBackend::Sqlite).await;
    let long_target = format!(
        "GET /api/health?pad={} HTTP/1.1\r\nHost: hive\r\n\r\n",
        "a".repeat(9000)
    );
    let huge_header = format!(
        "GET /api/health HTTP/1.1\r\nHost: hive\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    let many_headers = format!(
        "GET /api/health HTTP/1.1\r\nHost: hive\r\n{}\r\n",
        (0..150)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let cases: [(&[u8], &str, &str); 4] = [
        (b"NOT HTTP AT ALL\r\n\r\n", "400", "bad_request"),
        (long_target.as_bytes(), "414", "uri_too_long"),
        (
            huge_header.as_bytes(),
            "431",
            "request_header_fields_too_large",
        ),
        (
            many_headers.as_bytes(),
            "431",
            "request_header_fields_too_large",
        ),
    ];
    for (request, status, code) in cases {
        let (head, body) = raw_exchange(&server, request).await;
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{head}"
        );
        assert_eq!(body["error"]["code"], code, "{body}");
        let id = body["error"]["requestId"].as_str().unwrap();
        assert!(head.contains(id), "the header names the body's request id");
    }
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    let server = TestServer::builder(TestBackend::Sqlite)
        .var("HIVE_BODY_LIMIT_BYTES", "2048")
        .start()
        .await;
    let chunk = format!("{{\"email\":\"{}\"}}", "a".repeat(4096));
    let request = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: hive\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let (head, body) = raw_exchange(&server, request.as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 413 "), "{head}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_credential_sent_twice_is_refused() {
    let server = identity_server(TestBackend::Sqlite).await;
    setup_admin(&server).await;
    let admin = login(&server, ADMIN_EMAIL, PASSWORD).await;
    let token = crate::support::create_token(
        &server,
        &admin,
        serde_json::json!({ "name": "twice", "role": "viewer", "scopes": ["read"] }),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let once = server
        .client
        .request(Method::GET, "/api/v1/auth/me")
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(once.status(), 200);
    let twice = server
        .client
        .request(Method::GET, "/api/v1/auth/me")
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", "Bearer hive_other")
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 400);
    let body: serde_json::Value = twice.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(!body.to_string().contains(&token));
    let two_cookies = server
        .client
        .request(Method::GET, "/api/v1/auth/me")
        .header("cookie", admin.cookie.clone())
        .header("cookie", format!("theme=dark; {}", admin.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(two_cookies.status(), 400);
    server.stop().await.0.unwrap();
}
