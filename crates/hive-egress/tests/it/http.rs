//! Real HTTP on loopback only. Targets that must not be reached are listeners that count
//! connections; every such test ends by asserting the count is zero.

use crate::support::{Reply, Server, not_tls, serve, trap};
use hive_egress::{
    Allowlist, CallLimits, Decision, EgressClient, EgressConfig, EgressError, EgressRequest,
    MaxRedirects, RefusalReason, ScriptedResolver,
};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

const LIMITS: CallLimits = CallLimits::new(Duration::from_secs(10), 1024 * 1024);

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn client(allowlist: &str, resolver: Arc<ScriptedResolver>) -> EgressClient {
    client_with(allowlist, resolver, |_| {})
}

fn client_with(
    allowlist: &str,
    resolver: Arc<ScriptedResolver>,
    adjust: impl FnOnce(&mut EgressConfig),
) -> EgressClient {
    let mut config = EgressConfig {
        allowlist: Allowlist::parse(allowlist).unwrap(),
        ..EgressConfig::default()
    };
    adjust(&mut config);
    EgressClient::new(config, resolver)
}

fn refusal(result: Result<impl std::fmt::Debug, EgressError>) -> RefusalReason {
    match result {
        Err(EgressError::Refused(refusal)) => refusal.reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn allow(server: &Server) -> String {
    format!("127.0.0.1:{}", server.port())
}

#[tokio::test]
async fn allowlisted_loopback_server_is_reached() {
    let server = serve("127.0.0.1:0", |_| Reply::ok("hello")).await;
    let egress = client(&allow(&server), Arc::new(ScriptedResolver::new()));
    let url = format!("http://127.0.0.1:{}/card", server.port());
    let response = egress.get(&url, &LIMITS).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.remote_addr(), Some(server.addr));
    assert_eq!(response.text().await.unwrap(), "hello");
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn loopback_without_allowlist_is_refused_before_connecting() {
    let server = trap("127.0.0.1:0").await;
    let egress = client("", Arc::new(ScriptedResolver::new()));
    let port = server.port();
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f.1:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://localhost:{port}/"),
    ] {
        assert_eq!(
            refusal(egress.get(&url, &LIMITS).await),
            RefusalReason::Port,
            "{url}"
        );
    }
    assert_eq!(
        refusal(egress.get("http://127.0.0.1/", &LIMITS).await),
        RefusalReason::PrivateRange
    );
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn allowlisted_name_resolving_to_loopback_is_pinned_and_resolved_once() {
    let server = serve("127.0.0.1:0", |_| Reply::ok("pinned")).await;
    let resolver = Arc::new(ScriptedResolver::new());
    resolver.answer("gateway.test", [ip("127.0.0.1")]);
    let egress = client(&format!("gateway.test:{}", server.port()), resolver.clone());
    let url = format!("http://gateway.test:{}/", server.port());
    let response = egress.get(&url, &LIMITS).await.unwrap();
    assert_eq!(response.remote_addr(), Some(server.addr));
    assert_eq!(response.text().await.unwrap(), "pinned");
    assert_eq!(resolver.lookups("gateway.test"), 1);
    // The Host header is the name, not the address.
    assert!(server.heads()[0].contains(&format!("host: gateway.test:{}", server.port())));
}

#[tokio::test]
async fn rebinding_connects_to_the_checked_address_only() {
    // First answer 127.0.0.1 (where the server is), every later one 127.0.0.2 (the trap). A
    // client that looked the name up again when connecting would land on the trap.
    let server = serve("127.0.0.1:0", |_| Reply::ok("first")).await;
    let rebound = trap(&format!("127.0.0.2:{}", server.port())).await;
    let resolver = Arc::new(ScriptedResolver::new());
    resolver.answer_in_turn(
        "rebind.test",
        vec![vec![ip("127.0.0.1")], vec![ip("127.0.0.2")]],
    );
    let egress = client(&format!("rebind.test:{}", server.port()), resolver.clone());
    let url = format!("http://rebind.test:{}/", server.port());
    let response = egress.get(&url, &LIMITS).await.unwrap();
    assert_eq!(response.remote_addr(), Some(server.addr));
    assert_eq!(response.text().await.unwrap(), "first");
    assert_eq!(resolver.lookups("rebind.test"), 1);
    assert_eq!(rebound.connections(), 0);
}

#[tokio::test]
async fn rebinding_to_private_is_judged_on_each_answer() {
    let resolver = Arc::new(ScriptedResolver::new());
    resolver.answer_in_turn(
        "rebind.test",
        vec![vec![ip("93.184.215.14")], vec![ip("10.0.0.1")]],
    );
    let egress = client("", resolver.clone());
    match egress.check("http://rebind.test/").await {
        Decision::Allowed { addresses, .. } => {
            assert_eq!(addresses, vec!["93.184.215.14:80".parse().unwrap()]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        egress.check("http://rebind.test/").await.reason(),
        Some(RefusalReason::PrivateRange)
    );
    // A request after the rebind resolves anew and is refused before any connect.
    assert_eq!(
        refusal(egress.get("http://rebind.test/", &LIMITS).await),
        RefusalReason::PrivateRange
    );
}

#[tokio::test]
async fn one_bad_answer_refuses_the_whole_name() {
    let server = trap("127.0.0.1:0").await;
    let resolver = Arc::new(ScriptedResolver::new());
    resolver.answer("mixed.test", [ip("93.184.215.14"), ip("127.0.0.1")]);
    resolver.answer(
        "mixed6.test",
        [ip("2606:4700::1111"), ip("::ffff:10.0.0.1")],
    );
    resolver.answer("allowed.test", [ip("127.0.0.1"), ip("169.254.169.254")]);
    let egress = client(&format!("allowed.test:{}", server.port()), resolver.clone());
    assert_eq!(
        refusal(egress.get("http://mixed.test/", &LIMITS).await),
        RefusalReason::PrivateRange
    );
    assert_eq!(
        egress.check("https://mixed6.test/").await.reason(),
        Some(RefusalReason::EmbeddedIpv4)
    );
    // Allowlisted: private answers are fine, a metadata answer is not.
    let url = format!("http://allowed.test:{}/", server.port());
    assert_eq!(
        refusal(egress.get(&url, &LIMITS).await),
        RefusalReason::Metadata
    );
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn local_names_are_refused_without_a_lookup() {
    let resolver = Arc::new(ScriptedResolver::new());
    let egress = client("", resolver.clone());
    for (url, reason) in [
        ("http://localhost/", RefusalReason::LocalName),
        ("http://localhost./", RefusalReason::LocalName),
        ("http://app.localhost/", RefusalReason::LocalName),
        ("http://nas.local/", RefusalReason::LocalName),
        ("http://db.internal/", RefusalReason::LocalName),
        ("http://metadata.google.internal/", RefusalReason::Metadata),
    ] {
        assert_eq!(egress.check(url).await.reason(), Some(reason), "{url}");
    }
    for name in [
        "localhost",
        "app.localhost",
        "nas.local",
        "db.internal",
        "metadata.google.internal",
    ] {
        assert_eq!(resolver.lookups(name), 0, "{name}");
    }
}

#[tokio::test]
async fn redirect_to_a_refused_target_never_connects_to_it() {
    let target = trap("127.0.0.1:0").await;
    let resolver = Arc::new(ScriptedResolver::new());
    resolver.answer("internal.test", [ip("127.0.0.1")]);
    resolver.answer("victim.test", [ip("169.254.169.254")]);
    let tport = target.port();
    let locations = vec![
        (
            format!("http://127.0.0.1:{tport}/steal"),
            RefusalReason::Port,
        ),
        (format!("http://localhost:{tport}/"), RefusalReason::Port),
        (
            format!("http://[::ffff:127.0.0.1]:{tport}/"),
            RefusalReason::Port,
        ),
        ("http://127.0.0.1/".to_owned(), RefusalReason::PrivateRange),
        (
            "http://internal.test/".to_owned(),
            RefusalReason::PrivateRange,
        ),
        ("http://localhost/".to_owned(), RefusalReason::LocalName),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            RefusalReason::Metadata,
        ),
        (
            "http://[64:ff9b::a9fe:a9fe]/".to_owned(),
            RefusalReason::EmbeddedIpv4,
        ),
        (
            format!("http://victim.test:{tport}/"),
            RefusalReason::Metadata,
        ),
        ("file:///etc/passwd".to_owned(), RefusalReason::Scheme),
        (
            "gopher://127.0.0.1:6379/_FLUSHALL".to_owned(),
            RefusalReason::Scheme,
        ),
        (
            "http://user:pass@example.com/".to_owned(),
            RefusalReason::Userinfo,
        ),
    ];
    for (location, expected) in locations {
        let hop = location.clone();
        let origin = serve("127.0.0.1:0", move |_| Reply::redirect(302, &hop)).await;
        let allowlist = format!("{},victim.test:{tport}", allow(&origin));
        let egress = client(&allowlist, resolver.clone());
        let url = format!("http://127.0.0.1:{}/start", origin.port());
        let result = egress.get(&url, &LIMITS).await;
        if let Err(EgressError::Refused(refusal)) = &result {
            for secret in ["steal", "meta-data", "user:pass", "FLUSHALL"] {
                assert!(!refusal.to_string().contains(secret), "{refusal}");
            }
        }
        assert_eq!(refusal(result), expected, "{location}");
        assert_eq!(origin.connections(), 1, "{location}");
    }
    assert_eq!(target.connections(), 0);
}

#[tokio::test]
async fn redirects_are_followed_up_to_the_limit() {
    // /n redirects to /n+1 forever.
    let server = serve("127.0.0.1:0", |line| {
        let n: u32 = line
            .split_whitespace()
            .nth(1)
            .and_then(|path| path.trim_start_matches('/').parse().ok())
            .unwrap_or(0);
        if n == 3 {
            Reply::ok("three")
        } else {
            Reply::redirect(301, &format!("/{}", n + 1))
        }
    })
    .await;
    let base = format!("http://127.0.0.1:{}", server.port());
    let egress = client(&allow(&server), Arc::new(ScriptedResolver::new()));
    let response = egress.get(&format!("{base}/0"), &LIMITS).await.unwrap();
    assert_eq!(response.redirects(), 3);
    assert_eq!(response.url().path(), "/3");
    assert_eq!(response.text().await.unwrap(), "three");

    let strict = client_with(&allow(&server), Arc::new(ScriptedResolver::new()), |c| {
        c.max_redirects = MaxRedirects::new(2).unwrap();
    });
    let before = server.connections();
    assert_eq!(
        refusal(strict.get(&format!("{base}/0"), &LIMITS).await),
        RefusalReason::RedirectLimit
    );
    assert_eq!(
        server.connections() - before,
        3,
        "the first request and two redirects"
    );

    let none = client_with(&allow(&server), Arc::new(ScriptedResolver::new()), |c| {
        c.max_redirects = MaxRedirects::new(0).unwrap();
    });
    assert_eq!(
        refusal(none.get(&format!("{base}/2"), &LIMITS).await),
        RefusalReason::RedirectLimit
    );
    assert!(MaxRedirects::new(11).is_err());
    assert_eq!(MaxRedirects::default().get(), 5);
}

#[tokio::test]
async fn default_redirect_limit_is_five() {
    let server = serve("127.0.0.1:0", |_| Reply::redirect(302, "/again")).await;
    let egress = client(&allow(&server), Arc::new(ScriptedResolver::new()));
    let url = format!("http://127.0.0.1:{}/", server.port());
    assert_eq!(
        refusal(egress.get(&url, &LIMITS).await),
        RefusalReason::RedirectLimit
    );
    assert_eq!(server.connections(), 6);
}

#[tokio::test]
async fn post_is_never_redirected() {
    let target = trap("127.0.0.1:0").await;
    let location = format!("http://127.0.0.1:{}/", target.port());
    let server = serve("127.0.0.1:0", move |_| Reply::redirect(307, &location)).await;
    let egress = client(
        &format!("{},127.0.0.1:{}", allow(&server), target.port()),
        Arc::new(ScriptedResolver::new()),
    );
    let request = EgressRequest::post(format!("http://127.0.0.1:{}/hook", server.port()))
        .body("{\"event\":1}");
    let response = egress.send(request, &LIMITS).await.unwrap();
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(response.redirects(), 0);
    assert_eq!(target.connections(), 0);
}

#[tokio::test]
async fn a_get_without_redirects_answers_the_redirect_itself() {
    let target = trap("127.0.0.1:0").await;
    let location = format!("http://127.0.0.1:{}/", target.port());
    let server = serve("127.0.0.1:0", move |_| Reply::redirect(302, &location)).await;
    let egress = client(
        &format!("{},127.0.0.1:{}", allow(&server), target.port()),
        Arc::new(ScriptedResolver::new()),
    );
    let request =
        EgressRequest::get(format!("http://127.0.0.1:{}/jwks", server.port())).without_redirects();
    let response = egress.send(request, &LIMITS).await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(response.redirects(), 0);
    assert_eq!(target.connections(), 0, "the Location was never visited");
}

#[tokio::test]
async fn credentials_are_dropped_when_the_origin_changes() {
    let other = serve("127.0.0.1:0", |_| Reply::ok("other")).await;
    let to_other = format!("http://127.0.0.1:{}/landing", other.port());
    let origin = serve("127.0.0.1:0", move |line| {
        if line.contains("/same") {
            Reply::redirect(302, "/next")
        } else if line.contains("/next") {
            Reply::redirect(302, &to_other)
        } else {
            Reply::ok("origin")
        }
    })
    .await;
    let egress = client(
        &format!("{},{}", allow(&origin), allow(&other)),
        Arc::new(ScriptedResolver::new()),
    );
    let request = EgressRequest::get(format!("http://127.0.0.1:{}/same", origin.port()))
        .header(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cr3t"),
        )
        .header(
            http::header::COOKIE,
            HeaderValue::from_static("session=abc"),
        )
        .header(
            HeaderName::from_static("x-api-key"),
            HeaderValue::from_static("sk-123"),
        )
        .header(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        )
        .header(http::header::HOST, HeaderValue::from_static("evil.example"));
    let response = egress.send(request, &LIMITS).await.unwrap();
    assert_eq!(response.redirects(), 2);
    assert_eq!(response.text().await.unwrap(), "other");

    let origin_heads = origin.heads();
    assert_eq!(origin_heads.len(), 2);
    for head in &origin_heads {
        // Same origin: the credentials go along.
        assert!(head.contains("authorization: bearer s3cr3t"), "{head}");
        assert!(head.contains("x-api-key: sk-123"), "{head}");
        assert!(!head.contains("evil.example"), "{head}");
    }
    let landing = &other.heads()[0];
    for secret in ["authorization", "cookie", "x-api-key", "s3cr3t", "sk-123"] {
        assert!(!landing.contains(secret), "{secret} leaked: {landing}");
    }
    assert!(landing.contains("accept: application/json"), "{landing}");
}

#[tokio::test]
async fn see_other_turns_into_get() {
    let server = serve("127.0.0.1:0", |line| {
        if line.starts_with("get /done") {
            Reply::ok("done")
        } else {
            Reply::redirect(303, "/done")
        }
    })
    .await;
    let egress = client(&allow(&server), Arc::new(ScriptedResolver::new()));
    let response = egress
        .send(
            EgressRequest::new(Method::GET, format!("http://127.0.0.1:{}/", server.port())),
            &LIMITS,
        )
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "done");
}

#[tokio::test]
async fn body_cap_is_enforced() {
    let declared = serve("127.0.0.1:0", |_| {
        Reply::Full(200, Vec::new(), vec![b'x'; 1000])
    })
    .await;
    let streamed = serve("127.0.0.1:0", |_| Reply::Unsized(vec![b'y'; 5000])).await;
    let egress = client(
        &format!("{},{}", allow(&declared), allow(&streamed)),
        Arc::new(ScriptedResolver::new()),
    );
    let small = CallLimits::new(Duration::from_secs(10), 100);
    let exact = CallLimits::new(Duration::from_secs(10), 1000);
    let declared_url = format!("http://127.0.0.1:{}/", declared.port());
    let streamed_url = format!("http://127.0.0.1:{}/", streamed.port());

    let response = egress.get(&declared_url, &small).await.unwrap();
    assert_eq!(refusal(response.bytes().await), RefusalReason::TooLarge);
    let response = egress.get(&streamed_url, &small).await.unwrap();
    assert_eq!(refusal(response.bytes().await), RefusalReason::TooLarge);
    let response = egress.get(&declared_url, &exact).await.unwrap();
    assert_eq!(response.bytes().await.unwrap().len(), 1000);
}

#[tokio::test]
async fn total_time_is_enforced() {
    let silent = serve("127.0.0.1:0", |_| Reply::Hang).await;
    let stalling = serve("127.0.0.1:0", |_| Reply::StallBody).await;
    let egress = client(
        &format!("{},{}", allow(&silent), allow(&stalling)),
        Arc::new(ScriptedResolver::new()),
    );
    let short = CallLimits::new(Duration::from_millis(300), 1024);
    let url = format!("http://127.0.0.1:{}/", silent.port());
    assert_eq!(
        refusal(egress.get(&url, &short).await),
        RefusalReason::Timeout
    );

    // The deadline covers the body too.
    let url = format!("http://127.0.0.1:{}/", stalling.port());
    let response = egress.get(&url, &short).await.unwrap();
    assert_eq!(refusal(response.bytes().await), RefusalReason::Timeout);
}

#[tokio::test]
async fn own_listen_addresses_are_refused_even_when_allowlisted() {
    let hive = trap("127.0.0.1:0").await;
    let port = hive.port();
    let resolver = Arc::new(ScriptedResolver::new());
    resolver.answer("hive.test", [ip("127.0.0.1")]);
    let exact = client_with(
        &format!("{},hive.test:{port}", allow(&hive)),
        resolver.clone(),
        |c| c.self_addresses = vec![hive.addr],
    );
    assert_eq!(
        refusal(
            exact
                .get(&format!("http://127.0.0.1:{port}/"), &LIMITS)
                .await
        ),
        RefusalReason::SelfConnection
    );
    assert_eq!(
        refusal(
            exact
                .get(&format!("http://hive.test:{port}/"), &LIMITS)
                .await
        ),
        RefusalReason::SelfConnection
    );
    // Listening on the unspecified address covers loopback on that port.
    let wildcard = client_with(&allow(&hive), resolver, |c| {
        c.self_addresses = vec![format!("0.0.0.0:{port}").parse().unwrap()];
    });
    assert_eq!(
        refusal(
            wildcard
                .get(&format!("http://127.0.0.1:{port}/"), &LIMITS)
                .await
        ),
        RefusalReason::SelfConnection
    );
    assert_eq!(hive.connections(), 0);
}

#[tokio::test]
async fn allowlist_is_swapped_at_run_time() {
    let server = serve("127.0.0.1:0", |_| Reply::ok("now")).await;
    let egress = client("", Arc::new(ScriptedResolver::new()));
    let url = format!("http://127.0.0.1:{}/", server.port());
    assert_eq!(
        refusal(egress.get(&url, &LIMITS).await),
        RefusalReason::Port
    );

    egress.set_allowlist(Allowlist::parse(&allow(&server)).unwrap());
    let clone = egress.clone();
    assert_eq!(
        clone
            .get(&url, &LIMITS)
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "now"
    );

    egress.set_allowlist(Allowlist::empty());
    assert_eq!(refusal(clone.get(&url, &LIMITS).await), RefusalReason::Port);
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn check_resolves_but_never_connects() {
    let server = trap("127.0.0.1:0").await;
    let resolver = Arc::new(ScriptedResolver::new());
    resolver.answer("svc.test", [ip("127.0.0.1")]);
    resolver.fail("gone.test");
    let egress = client(&format!("svc.test:{}", server.port()), resolver);
    match egress
        .check(&format!("http://svc.test:{}/x", server.port()))
        .await
    {
        Decision::Allowed {
            origin,
            addresses,
            allowlisted,
        } => {
            assert_eq!(origin, format!("http://svc.test:{}", server.port()));
            assert_eq!(addresses, vec![server.addr]);
            assert!(allowlisted);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        egress.check("http://gone.test/").await,
        Decision::Failed(EgressError::Resolve { .. })
    ));
    assert_eq!(
        egress.check("ftp://svc.test/").await.reason(),
        Some(RefusalReason::Scheme)
    );
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn failures_are_not_refusals() {
    // Nothing listens on the port of a listener that was closed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    // A plain-HTTP server answering a TLS handshake.
    let plain = not_tls("127.0.0.1:0").await;
    let egress = client(
        &format!("127.0.0.1:{port},{}", allow(&plain)),
        Arc::new(ScriptedResolver::new()),
    );
    let error = egress
        .get(&format!("http://127.0.0.1:{port}/?token=s3cr3t"), &LIMITS)
        .await
        .unwrap_err();
    assert!(matches!(error, EgressError::Connect { .. }), "{error:?}");
    assert_eq!(error.kind(), "connect");
    assert!(!error.to_string().contains("s3cr3t"), "{error}");

    let error = egress
        .get(
            &format!("https://127.0.0.1:{}/?token=s3cr3t", plain.port()),
            &LIMITS,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, EgressError::Tls { .. }), "{error:?}");
    assert!(!error.to_string().contains("s3cr3t"), "{error}");
}

#[tokio::test]
async fn dns_timeout_and_total_timeout_during_the_lookup() {
    let resolver = Arc::new(ScriptedResolver::new());
    resolver.never_answer("slow.test");
    let egress = client_with("", resolver.clone(), |c| {
        c.dns_timeout = Duration::from_millis(100);
    });
    let error = egress.get("http://slow.test/", &LIMITS).await.unwrap_err();
    assert!(matches!(error, EgressError::Resolve { .. }), "{error:?}");
    assert!(matches!(
        egress.check("http://slow.test/").await,
        Decision::Failed(EgressError::Resolve { .. })
    ));
    // When the call's own time is shorter than the DNS timeout, it is the call's timeout.
    let patient = client_with("", resolver, |c| c.dns_timeout = Duration::from_secs(5));
    let short = CallLimits::new(Duration::from_millis(100), 1024);
    assert_eq!(
        refusal(patient.get("http://slow.test/", &short).await),
        RefusalReason::Timeout
    );
}

#[tokio::test]
async fn empty_answer_is_a_resolution_failure() {
    let resolver = Arc::new(ScriptedResolver::new());
    resolver.answer("empty.test", []);
    let egress = client("", resolver);
    let error = egress.get("http://empty.test/", &LIMITS).await.unwrap_err();
    assert!(matches!(error, EgressError::Resolve { .. }), "{error:?}");
}

#[tokio::test]
async fn certificates_are_verified() {
    let (server, requests) = crate::support::untrusted_tls("127.0.0.1:0").await;
    let egress = client(&allow(&server), Arc::new(ScriptedResolver::new()));
    let error = egress
        .get(
            &format!("https://127.0.0.1:{}/?token=s3cr3t", server.port()),
            &LIMITS,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, EgressError::Tls { .. }), "{error:?}");
    assert_eq!(error.kind(), "tls");
    assert!(!error.to_string().contains("s3cr3t"), "{error}");
    assert_eq!(server.connections(), 1, "the handshake was tried");
    assert_eq!(
        requests.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no request crossed an unverified connection"
    );
}
