use axum::routing::get;
use axum::{Extension, Router};
use hive_server::{AppState, ClientIp};
use hive_testkit::{TestBackend, TestServer, error_body};
use reqwest::Method;
use reqwest::header::HeaderMap;

async fn sqlite() -> TestServer {
    TestServer::start(TestBackend::Sqlite).await
}

fn assert_error(headers: &HeaderMap, body: &hive_proto::ErrorBody, code: &str) {
    assert_eq!(body.error.code, code);
    assert!(!body.error.message.is_empty());
    // The body names the same request id as the header, so a report can be traced in the logs.
    assert_eq!(
        body.error.request_id.as_deref(),
        Some(headers["x-request-id"].to_str().unwrap())
    );
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
}

#[tokio::test]
async fn unknown_route_is_a_json_404() {
    let server = sqlite().await;
    let response = server.client.get("/api/v1/nothing-here").await;
    assert_eq!(response.status(), 404);
    let headers = response.headers().clone();
    assert_error(&headers, &error_body(response).await, "not_found");
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn wrong_method_is_a_json_405() {
    let server = sqlite().await;
    let response = server
        .client
        .request(Method::DELETE, "/api/health")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let headers = response.headers().clone();
    assert_error(&headers, &error_body(response).await, "method_not_allowed");
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_json_413() {
    let server = TestServer::builder(TestBackend::Sqlite)
        .var("HIVE_BODY_LIMIT_BYTES", "2048")
        .start()
        .await;
    let big = serde_json::json!({ "pad": "x".repeat(4096) });
    let response = server.client.post_json("/api/health", &big).await;
    assert_eq!(response.status(), 413);
    let headers = response.headers().clone();
    assert_error(&headers, &error_body(response).await, "payload_too_large");

    // The default is 1 MiB.
    let server_default = sqlite().await;
    let over = serde_json::json!({ "pad": "x".repeat(1024 * 1024) });
    let response = server_default.client.post_json("/api/v1/x", &over).await;
    assert_eq!(response.status(), 413);
    let under = serde_json::json!({ "pad": "x".repeat(1000 * 1024) });
    let response = server_default.client.post_json("/api/v1/x", &under).await;
    assert_eq!(
        response.status(),
        404,
        "a body under the limit passes the pipeline"
    );
    server.stop().await.0.unwrap();
    server_default.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_json_415() {
    let server = sqlite().await;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = server.client.request(Method::POST, "/api/v1/x").body("a=1");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 415, "{content_type:?}");
        let headers = response.headers().clone();
        assert_error(
            &headers,
            &error_body(response).await,
            "unsupported_media_type",
        );
    }
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn request_ids_are_kept_when_sane_and_replaced_otherwise() {
    let server = sqlite().await;
    let kept = server
        .client
        .request(Method::GET, "/api/health")
        .header("x-request-id", "trace-42.a_b:c")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "trace-42.a_b:c");

    for insane in ["has space", &"x".repeat(200), "quote\"d"] {
        let replaced = server
            .client
            .request(Method::GET, "/api/health")
            .header("x-request-id", insane)
            .send()
            .await
            .unwrap();
        let id = replaced.headers()["x-request-id"].to_str().unwrap();
        assert_ne!(id, insane);
        assert!(uuid::Uuid::parse_str(id).is_ok(), "generated id {id:?}");
    }
    let generated = server.client.get("/api/health").await;
    assert!(uuid::Uuid::parse_str(generated.headers()["x-request-id"].to_str().unwrap()).is_ok());
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn security_headers_are_on_every_api_answer() {
    let server = sqlite().await;
    for path in ["/api/health", "/api/v1/nothing-here"] {
        let response = server.client.get(path).await;
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'self'"));
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert!(
            headers["permissions-policy"]
                .to_str()
                .unwrap()
                .contains("camera=()")
        );
        assert_eq!(headers["cross-origin-opener-policy"], "same-origin");
        assert_eq!(headers["cache-control"], "no-store");
        assert!(headers.get("server").is_none(), "no Server banner");
        assert!(
            headers.get("strict-transport-security").is_none(),
            "no HSTS over plain http"
        );
    }
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn hsts_is_sent_when_served_over_https() {
    let server = TestServer::builder(TestBackend::Sqlite)
        .var("AUTH_URL", "https://hive.example.com")
        .start()
        .await;
    let response = server.client.get("/api/health").await;
    let hsts = response.headers()["strict-transport-security"]
        .to_str()
        .unwrap();
    assert!(hsts.starts_with("max-age=63072000"), "{hsts}");
    server.stop().await.0.unwrap();
}

fn preflight(server: &TestServer, origin: &str) -> reqwest::RequestBuilder {
    server
        .client
        .request(Method::OPTIONS, "/api/health")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
}

fn cors_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

#[tokio::test]
async fn cors_preflight_passes_for_the_auth_url_origin_only() {
    let server = sqlite().await;
    let allowed = preflight(&server, &server.base_url).send().await.unwrap();
    assert_eq!(allowed.status(), 204);
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        server.base_url.as_str()
    );
    assert_eq!(headers["access-control-allow-credentials"], "true");
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(
        methods.contains("POST") && !methods.contains('*'),
        "{methods}"
    );
    let allowed_headers = headers["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed_headers.contains("content-type") && !allowed_headers.contains('*'));

    for origin in ["https://evil.example", "null", "http://127.0.0.1:1"] {
        let denied = preflight(&server, origin).send().await.unwrap();
        assert_eq!(denied.status(), 403, "{origin}");
        assert!(
            cors_headers(denied.headers()).is_empty(),
            "{origin}: {:?}",
            denied.headers()
        );
        let simple = server
            .client
            .request(Method::GET, "/api/health")
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(simple.status(), 200);
        assert!(cors_headers(simple.headers()).is_empty(), "{origin}");
    }

    let same_origin = server
        .client
        .request(Method::GET, "/api/health")
        .header("origin", &server.base_url)
        .send()
        .await
        .unwrap();
    assert_eq!(
        same_origin.headers()["access-control-allow-origin"],
        server.base_url.as_str()
    );
    server.stop().await.0.unwrap();
}

fn client_ip_route() -> Router<AppState> {
    Router::new().route(
        "/test/client-ip",
        get(|Extension(ClientIp(ip)): Extension<ClientIp>| async move { ip.to_string() }),
    )
}

async fn client_ip_seen(server: &TestServer, forwarded_for: &str) -> String {
    server
        .client
        .request(Method::GET, "/test/client-ip")
        .header("x-forwarded-for", forwarded_for)
        .header("x-real-ip", "203.0.113.9")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_does_not_change_the_client_ip() {
    let server = TestServer::builder(TestBackend::Sqlite)
        .routes(client_ip_route())
        .start()
        .await;
    assert_eq!(client_ip_seen(&server, "198.51.100.7").await, "127.0.0.1");
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_names_the_client() {
    let server = TestServer::builder(TestBackend::Sqlite)
        .var("HIVE_TRUSTED_PROXIES", "127.0.0.1")
        .routes(client_ip_route())
        .start()
        .await;
    // Default source xff_last: the right-most hop that is not a trusted proxy.
    assert_eq!(
        client_ip_seen(&server, "6.6.6.6, 198.51.100.7, 127.0.0.1").await,
        "198.51.100.7"
    );
    server.stop().await.0.unwrap();

    let real_ip = TestServer::builder(TestBackend::Sqlite)
        .var("HIVE_TRUSTED_PROXIES", "127.0.0.0/8")
        .var("HIVE_CLIENT_IP_SOURCE", "real_ip")
        .routes(client_ip_route())
        .start()
        .await;
    assert_eq!(client_ip_seen(&real_ip, "6.6.6.6").await, "203.0.113.9");
    real_ip.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_panicking_handler_is_a_generic_json_500() {
    let server = TestServer::builder(TestBackend::Sqlite)
        .routes(Router::new().route(
            "/test/panic",
            get(|| async {
                if true {
                    panic!("secret detail hive_0123456789");
                }
                "unreachable"
            }),
        ))
        .start()
        .await;
    let response = server.client.get("/test/panic").await;
    assert_eq!(response.status(), 500);
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    assert!(!text.contains("secret detail"), "{text}");
    let body: hive_proto::ErrorBody = serde_json::from_str(&text).unwrap();
    assert_error(&headers, &body, "internal_error");
    // The server goes on serving.
    assert_eq!(server.client.health().await.0, 200);
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn a_handler_that_takes_too_long_is_answered_with_a_json_timeout() {
    let server = TestServer::builder(TestBackend::Sqlite)
        .var("HIVE_REQUEST_TIMEOUT_SECONDS", "1")
        .routes(Router::new().route("/test/forever", get(std::future::pending::<&'static str>)))
        .start()
        .await;
    let response = server.client.get("/test/forever").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let headers = response.headers().clone();
    assert_error(&headers, &error_body(response).await, "request_timeout");
    server.stop().await.0.unwrap();
}

#[tokio::test]
async fn refusals_quote_nothing_the_client_sent() {
    let server = sqlite().await;
    let long_name = "q".repeat(200_000);
    let cases = [
        serde_json::json!({ "email": "a@example.com", "password": "pw", long_name.clone(): 1 }),
        serde_json::json!({ "email": "a@example.com", "password": "pw", "evil`, expected CANARY": 1 }),
        serde_json::json!({ "email": ["CANARY-IN-A-LIST"], "password": "pw" }),
    ];
    for body in cases {
        let response = server.client.post_json("/api/v1/auth/login", &body).await;
        assert_eq!(response.status(), 400);
        let text = response.text().await.unwrap();
        assert!(text.len() < 1024, "{} bytes", text.len());
        assert!(!text.contains("qqqq"), "{text}");
        assert!(!text.contains("CANARY"), "{text}");
    }
    // A short, plain misspelt field name is named, to help the caller.
    let response = server
        .client
        .post_json(
            "/api/v1/auth/login",
            &serde_json::json!({ "email": "a@example.com", "passwrd": "pw" }),
        )
        .await;
    let body = error_body(response).await;
    assert!(
        body.error.message.contains("`passwrd`"),
        "{}",
        body.error.message
    );
    server.stop().await.0.unwrap();
}
