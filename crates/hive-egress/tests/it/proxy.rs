//! The agents' proxy, served on a Unix socket in a temporary directory as a sandbox would reach
//! it, against real TCP servers on loopback. Names resolve only through the scripted resolver.
//! Every target that must not be reached is a listener that counts connections.

use crate::support::{Reply, Server, echo, serve, trap, try_trap};
use hive_egress::{
    Allowlist, EgressClient, EgressConfig, EgressProxy, ProxyEvents, ProxyLimits, ProxyStats,
    RefusalReason, ScriptedResolver,
};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Bound for every wait on the proxy: a test that hangs fails instead.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Refused(String, RefusalReason),
    Failed(String, &'static str),
    Transferred(String, u64, u64),
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl ProxyEvents for Recorder {
    fn refused(&self, origin: &str, reason: RefusalReason) {
        self.push(Event::Refused(origin.to_owned(), reason));
    }
    fn failed(&self, origin: &str, kind: &'static str) {
        self.push(Event::Failed(origin.to_owned(), kind));
    }
    fn transferred(&self, origin: &str, up: u64, down: u64) {
        self.push(Event::Transferred(origin.to_owned(), up, down));
    }
}

impl Recorder {
    fn push(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }

    fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }

    /// The transfers reported so far, waiting (bounded) for at least `count`.
    async fn transfers(&self, count: usize) -> Vec<Event> {
        let transfers = || {
            self.events()
                .into_iter()
                .filter(|event| matches!(event, Event::Transferred(..)))
                .collect::<Vec<_>>()
        };
        let started = tokio::time::Instant::now();
        while transfers().len() < count && started.elapsed() < WAIT {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        transfers()
    }
}

struct Proxy {
    socket: PathBuf,
    stats: Arc<ProxyStats>,
    events: Arc<Recorder>,
    resolver: Arc<ScriptedResolver>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Setup<'a> {
    admin_hosts: &'a str,
    agent_hosts: &'a str,
    limits: ProxyLimits,
    resolver: ScriptedResolver,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Self {
            admin_hosts: "",
            agent_hosts: "",
            limits: ProxyLimits::default(),
            resolver: ScriptedResolver::new(),
        }
    }
}

async fn start(setup: Setup<'_>) -> Proxy {
    let resolver = Arc::new(setup.resolver);
    let client = EgressClient::new(
        EgressConfig {
            allowlist: Allowlist::parse(setup.admin_hosts).unwrap(),
            ..EgressConfig::default()
        },
        resolver.clone(),
    );
    let events = Arc::new(Recorder::default());
    let proxy = EgressProxy::new(client, Allowlist::parse(setup.agent_hosts).unwrap())
        .with_limits(setup.limits)
        .with_events(events.clone());
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("egress.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let stats = proxy.stats();
    let task = tokio::spawn(async move { proxy.serve(listener).await });
    Proxy {
        socket,
        stats,
        events,
        resolver,
        task,
        _dir: dir,
    }
}

/// The admins' allowlist entry of a loopback test server: only the admins' list opens the
/// inside of the network, an agent's own list never does.
fn listed_for(server: &Server) -> String {
    format!("127.0.0.1:{}", server.port())
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Writes `request` to the proxy over an in-memory pipe (no socket) and reads the whole answer;
/// the proxy's side of the connection must end too.
async fn over_pipe(proxy: &EgressProxy, request: &str) -> Answer {
    let (mut agent, proxy_side) = tokio::io::duplex(64 * 1024);
    let serving = {
        let proxy = proxy.clone();
        tokio::spawn(async move { proxy.serve_connection(proxy_side).await })
    };
    agent.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(WAIT, agent.read_to_end(&mut bytes))
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(WAIT, serving).await.unwrap().unwrap();
    parse_answer(&bytes)
}

/// Writes `request` on a new connection and reads the whole answer (requests carry
/// `Connection: close`, so the proxy closes after answering).
async fn exchange(proxy: &Proxy, request: &str) -> Answer {
    let mut stream = UnixStream::connect(&proxy.socket).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut bytes))
        .await
        .expect("the proxy did not finish its answer")
        .unwrap();
    parse_answer(&bytes)
}

fn parse_answer(bytes: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head:?}"));
    Answer {
        status,
        head: head.to_lowercase(),
        body: body.to_owned(),
    }
}

/// Sends `CONNECT authority` and reads the answer's head. On `200` the stream is the tunnel.
async fn connect(proxy: &Proxy, authority: &str) -> (UnixStream, u16) {
    let mut stream = UnixStream::connect(&proxy.socket).await.unwrap();
    let request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("no answer to CONNECT")
            .unwrap();
        assert_eq!(
            read,
            1,
            "closed mid-head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let status = parse_answer(&head).status;
    (stream, status)
}

/// A refused CONNECT: `403`, the body names the reason and the origin and nothing else.
async fn refused_connect(proxy: &Proxy, authority: &str, reason: RefusalReason) {
    let request =
        format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    let answer = exchange(proxy, &request).await;
    assert_eq!(answer.status, 403, "{authority}: {}", answer.body);
    assert_eq!(
        answer.body,
        format!("refused by Hive's egress rules: {reason} https://{authority}\n")
    );
}

/// Sends through the tunnel and reads the same bytes back from the echo server.
async fn round_trip(tunnel: &mut UnixStream, message: &[u8]) {
    tunnel.write_all(message).await.unwrap();
    let mut back = vec![0u8; message.len()];
    tokio::time::timeout(WAIT, tunnel.read_exact(&mut back))
        .await
        .expect("no echo through the tunnel")
        .unwrap();
    assert_eq!(back, message);
}

async fn closed_by_proxy(tunnel: &mut UnixStream) -> bool {
    let mut rest = Vec::new();
    matches!(
        tokio::time::timeout(WAIT, tunnel.read_to_end(&mut rest)).await,
        Ok(Ok(0))
    )
}

#[tokio::test]
async fn connect_tunnels_to_an_allowlisted_loopback_target_and_counts_bytes() {
    let target = echo("127.0.0.1:0").await;
    let proxy = start(Setup {
        admin_hosts: &listed_for(&target),
        ..Setup::default()
    })
    .await;
    let authority = listed_for(&target);

    let (mut tunnel, status) = connect(&proxy, &authority).await;
    assert_eq!(status, 200);
    round_trip(&mut tunnel, b"hello through the tunnel").await;
    round_trip(&mut tunnel, b"and again").await;
    // Counted as the bytes pass, while the tunnel is still open.
    let live = proxy.stats.snapshot();
    assert_eq!((live.bytes_up, live.bytes_down), (33, 33));
    assert_eq!(live.requests, 1);

    tunnel.shutdown().await.unwrap();
    assert!(closed_by_proxy(&mut tunnel).await);
    let origin = format!("https://{authority}");
    assert_eq!(
        proxy.events.transfers(1).await,
        [Event::Transferred(origin, 33, 33)]
    );
    assert_eq!(target.connections(), 1);
    let counts = proxy.stats.snapshot();
    assert_eq!((counts.refusals, counts.failures), (0, 0));
}

#[tokio::test]
async fn plain_http_is_forwarded_in_origin_form_to_the_checked_target() {
    let target = serve("127.0.0.1:0", |_| Reply::ok("hello from the target")).await;
    let proxy = start(Setup {
        admin_hosts: &listed_for(&target),
        ..Setup::default()
    })
    .await;
    let authority = listed_for(&target);
    let request = format!(
        "GET http://{authority}/v1/models?key=secret HTTP/1.1\r\n\
         Host: somewhere-else.example\r\n\
         Proxy-Authorization: Basic YWdlbnQ6cHc=\r\n\
         Proxy-Connection: keep-alive\r\n\
         X-Agent: kept\r\n\
         Connection: close\r\n\r\n"
    );

    let answer = exchange(&proxy, &request).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, "hello from the target");
    assert_eq!(target.connections(), 1);
    let heads = target.heads();
    assert_eq!(heads.len(), 1);
    let head = &heads[0];
    assert!(
        head.starts_with("get /v1/models?key=secret http/1.1\r\n"),
        "{head}"
    );
    // The Host header names the URL's host, which is what was checked.
    assert!(head.contains(&format!("\r\nhost: {authority}")), "{head}");
    assert!(head.contains("\r\nx-agent: kept"), "{head}");
    assert!(!head.contains("proxy-authorization"), "{head}");
    assert!(!head.contains("proxy-connection"), "{head}");

    let transfers = proxy.events.transfers(1).await;
    let [Event::Transferred(origin, up, down)] = transfers.as_slice() else {
        panic!("{transfers:?}");
    };
    // The origin only: no path, no query.
    assert_eq!(origin, &format!("http://{authority}"));
    assert!(*up > 0 && *down > "hello from the target".len() as u64);
    let counts = proxy.stats.snapshot();
    assert_eq!((counts.bytes_up, counts.bytes_down), (*up, *down));
}

#[tokio::test]
async fn the_admins_list_lets_a_target_through_as_well() {
    let target = echo("127.0.0.1:0").await;
    let proxy = start(Setup {
        admin_hosts: &listed_for(&target),
        ..Setup::default()
    })
    .await;
    let (mut tunnel, status) = connect(&proxy, &listed_for(&target)).await;
    assert_eq!(status, 200);
    round_trip(&mut tunnel, b"admin allowed").await;
    assert_eq!(target.connections(), 1);
}

#[tokio::test]
async fn a_loopback_target_not_allowlisted_is_refused_and_never_connected() {
    // On port 443 and 80 the reason is the address; this needs the privilege to listen there,
    // so the listener may be missing (then the proxy's own counters prove nothing was dialled).
    let https = try_trap("127.0.0.9:443").await;
    let http = try_trap("127.0.0.9:80").await;
    let proxy = start(Setup {
        // An entry for another port of the same address does not cover these.
        agent_hosts: "127.0.0.9:8443",
        ..Setup::default()
    })
    .await;

    refused_connect(&proxy, "127.0.0.9:443", RefusalReason::PrivateRange).await;
    let answer = exchange(
        &proxy,
        "GET http://127.0.0.9/admin?token=secret HTTP/1.1\r\nHost: 127.0.0.9\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 403);
    assert_eq!(
        answer.body,
        "refused by Hive's egress rules: private_range http://127.0.0.9:80\n"
    );
    assert!(answer.head.contains("content-type: text/plain"));

    for trap in [https, http].iter().flatten() {
        assert_eq!(trap.connections(), 0, "{}", trap.addr);
    }
    assert_eq!(
        proxy.events.events(),
        [
            Event::Refused("https://127.0.0.9:443".into(), RefusalReason::PrivateRange),
            Event::Refused("http://127.0.0.9:80".into(), RefusalReason::PrivateRange),
        ]
    );
    let counts = proxy.stats.snapshot();
    assert_eq!(
        (counts.requests, counts.refusals, counts.failures),
        (2, 2, 0)
    );
    assert_eq!((counts.bytes_up, counts.bytes_down), (0, 0));
}

#[tokio::test]
async fn protected_addresses_stay_refused_whatever_the_lists_say() {
    let database = trap("127.0.0.1:0").await;
    let cache = trap("127.0.0.1:0").await;
    let resolver = ScriptedResolver::new();
    resolver.answer("db.agent.example", ["127.0.0.1".parse().unwrap()]);
    let agent_hosts = format!(
        "127.0.0.1:{},127.0.0.1:{},db.agent.example:{}",
        database.port(),
        cache.port(),
        database.port()
    );
    // In the admins' list, which may open loopback: the protection still holds.
    let client = EgressClient::new(
        EgressConfig {
            allowlist: Allowlist::parse(&agent_hosts).unwrap(),
            ..EgressConfig::default()
        },
        Arc::new(resolver),
    );
    let events = Arc::new(Recorder::default());
    let proxy = EgressProxy::new(client, Allowlist::parse(&agent_hosts).unwrap())
        .with_events(events.clone())
        .with_protected_addresses([
            database.addr,
            // Unspecified: every loopback address on that port.
            format!("0.0.0.0:{}", cache.port()).parse().unwrap(),
        ]);
    for target in [
        format!("127.0.0.1:{}", database.port()),
        format!("db.agent.example:{}", database.port()),
        format!("127.0.0.1:{}", cache.port()),
    ] {
        let answer = over_pipe(
            &proxy,
            &format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(answer.status, 403, "{target}");
        assert_eq!(
            answer.body,
            format!("refused by Hive's egress rules: self_connection https://{target}\n")
        );
    }
    assert_eq!((database.connections(), cache.connections()), (0, 0));
    assert_eq!(events.events().len(), 3);
}

#[tokio::test]
async fn another_port_not_allowlisted_is_refused_as_port() {
    let target = trap("127.0.0.1:0").await;
    let proxy = start(Setup::default()).await;
    refused_connect(&proxy, &listed_for(&target), RefusalReason::Port).await;
    let answer = exchange(
        &proxy,
        &format!(
            "GET http://{}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            listed_for(&target)
        ),
    )
    .await;
    assert_eq!(answer.status, 403);
    assert!(
        answer.body.contains(" port http://127.0.0.1:"),
        "{}",
        answer.body
    );
    assert_eq!(target.connections(), 0);
    assert_eq!(proxy.stats.snapshot().refusals, 2);
}

#[tokio::test]
async fn metadata_is_refused_even_when_both_lists_allow_it() {
    let lists = "169.254.169.254,169.254.169.254:80,metadata.google.internal";
    let proxy = start(Setup {
        admin_hosts: lists,
        agent_hosts: lists,
        ..Setup::default()
    })
    .await;

    refused_connect(&proxy, "169.254.169.254:80", RefusalReason::Metadata).await;
    refused_connect(&proxy, "169.254.169.254:443", RefusalReason::Metadata).await;
    refused_connect(
        &proxy,
        "metadata.google.internal:443",
        RefusalReason::Metadata,
    )
    .await;
    let answer = exchange(
        &proxy,
        "GET http://169.254.169.254/latest/meta-data/iam HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 403);
    assert_eq!(
        answer.body,
        "refused by Hive's egress rules: metadata http://169.254.169.254:80\n"
    );

    let counts = proxy.stats.snapshot();
    // Nothing was dialled: a dial to that address would have failed or timed out.
    assert_eq!((counts.refusals, counts.failures), (4, 0));
    assert_eq!(proxy.resolver.lookups("metadata.google.internal"), 0);
    assert!(
        proxy
            .events
            .events()
            .iter()
            .all(|event| matches!(event, Event::Refused(_, RefusalReason::Metadata)))
    );
}

#[tokio::test]
async fn a_name_with_one_private_address_is_refused_as_a_whole() {
    let resolver = ScriptedResolver::new();
    resolver.answer(
        "mixed.example",
        ["93.184.215.14", "127.0.0.1"].map(|ip| ip.parse::<IpAddr>().unwrap()),
    );
    let proxy = start(Setup {
        agent_hosts: "mixed.example",
        resolver,
        ..Setup::default()
    })
    .await;

    refused_connect(&proxy, "mixed.example:443", RefusalReason::PrivateRange).await;
    assert_eq!(proxy.resolver.lookups("mixed.example"), 1);
    let counts = proxy.stats.snapshot();
    assert_eq!((counts.refusals, counts.failures), (1, 0));
}

#[tokio::test]
async fn an_allowlisted_name_is_connected_to_exactly_the_address_it_resolved_to() {
    // 127.0.0.3: no system lookup of the name could find it, and nothing else listens there.
    let target = echo("127.0.0.3:0").await;
    let web = serve("127.0.0.3:0", |_| Reply::ok("by name")).await;
    let resolver = ScriptedResolver::new();
    resolver.answer("svc.agent.example", ["127.0.0.3".parse().unwrap()]);
    let agent_hosts = format!(
        "svc.agent.example:{},svc.agent.example:{}",
        target.port(),
        web.port()
    );
    let proxy = start(Setup {
        admin_hosts: &agent_hosts,
        resolver,
        ..Setup::default()
    })
    .await;

    let (mut tunnel, status) =
        connect(&proxy, &format!("svc.agent.example:{}", target.port())).await;
    assert_eq!(status, 200);
    round_trip(&mut tunnel, b"by name").await;
    assert_eq!(target.connections(), 1);
    assert_eq!(proxy.resolver.lookups("svc.agent.example"), 1);

    let authority = format!("svc.agent.example:{}", web.port());
    let answer = exchange(
        &proxy,
        &format!(
            "GET http://{authority}/ HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "by name"));
    assert_eq!(web.connections(), 1);
    assert!(web.heads()[0].contains(&format!("\r\nhost: {authority}")));
    assert_eq!(proxy.resolver.lookups("svc.agent.example"), 2);
}

#[tokio::test]
async fn requests_that_are_not_proxy_requests_are_bad_requests() {
    let target = trap("127.0.0.1:0").await;
    let authority = listed_for(&target);
    let proxy = start(Setup {
        admin_hosts: &authority,
        ..Setup::default()
    })
    .await;

    let requests = [
        // Origin form: what a server gets, not a proxy.
        format!("GET /index.html HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"),
        format!(
            "GET ftp://{authority}/file HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
        ),
        // https is tunnelled with CONNECT; the proxy does not originate TLS.
        format!(
            "GET https://{authority}/ HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
        ),
        "CONNECT 127.0.0.1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".to_owned(),
    ];
    for request in &requests {
        let answer = exchange(&proxy, request).await;
        assert_eq!(answer.status, 400, "{request}: {}", answer.body);
    }
    assert_eq!(target.connections(), 0);
    let counts = proxy.stats.snapshot();
    assert_eq!(
        (counts.requests, counts.bad_requests, counts.refusals),
        (4, 4, 0)
    );
}

#[tokio::test]
async fn a_connection_works_over_any_stream_not_only_the_socket() {
    let target = serve("127.0.0.1:0", |_| Reply::ok("over a pipe")).await;
    let authority = listed_for(&target);
    let client = EgressClient::new(
        EgressConfig {
            allowlist: Allowlist::parse(&authority).unwrap(),
            ..EgressConfig::default()
        },
        Arc::new(ScriptedResolver::new()),
    );
    let proxy = EgressProxy::new(client, Allowlist::empty());
    let answer = over_pipe(
        &proxy,
        &format!(
            "GET http://{authority}/ HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "over a pipe"));
}

#[tokio::test]
async fn connections_past_the_cap_are_turned_away() {
    let target = echo("127.0.0.1:0").await;
    let authority = listed_for(&target);
    let proxy = start(Setup {
        admin_hosts: &authority,
        limits: ProxyLimits {
            max_connections: 1,
            ..ProxyLimits::default()
        },
        ..Setup::default()
    })
    .await;

    let (mut first, status) = connect(&proxy, &authority).await;
    assert_eq!(status, 200);
    round_trip(&mut first, b"holding the only slot").await;

    let answer = exchange(
        &proxy,
        &format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n"),
    )
    .await;
    assert_eq!(answer.status, 503);
    assert!(answer.head.contains("connection: close"), "{}", answer.head);
    assert_eq!(
        target.connections(),
        1,
        "the turned-away request reached the target"
    );
    assert_eq!(proxy.stats.snapshot().busy, 1);

    // Once the tunnel ends its slot is free again.
    drop(first);
    let started = tokio::time::Instant::now();
    let mut again = loop {
        let (stream, status) = connect(&proxy, &authority).await;
        if status == 200 {
            break stream;
        }
        assert_eq!(status, 503);
        assert!(started.elapsed() < WAIT, "the slot was never given back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    round_trip(&mut again, b"next").await;
    assert_eq!(target.connections(), 2);
}

#[tokio::test]
async fn an_idle_tunnel_is_closed() {
    let target = echo("127.0.0.1:0").await;
    let authority = listed_for(&target);
    let proxy = start(Setup {
        admin_hosts: &authority,
        limits: ProxyLimits {
            idle_timeout: Duration::from_millis(200),
            ..ProxyLimits::default()
        },
        ..Setup::default()
    })
    .await;
    let (mut tunnel, status) = connect(&proxy, &authority).await;
    assert_eq!(status, 200);
    round_trip(&mut tunnel, b"then silence").await;
    // The agent keeps its side open and says nothing; the proxy ends the tunnel.
    assert!(closed_by_proxy(&mut tunnel).await);
    assert_eq!(
        proxy.events.transfers(1).await,
        [Event::Transferred(format!("https://{authority}"), 12, 12)]
    );
}

#[tokio::test]
async fn an_oversized_request_head_is_refused_before_any_decision() {
    let target = trap("127.0.0.1:0").await;
    let authority = listed_for(&target);
    let proxy = start(Setup {
        admin_hosts: &authority,
        ..Setup::default()
    })
    .await;
    let padding = "a".repeat(ProxyLimits::DEFAULT_MAX_HEAD_BYTES + 1024);
    let mut stream = UnixStream::connect(&proxy.socket).await.unwrap();
    let request = format!(
        "GET http://{authority}/ HTTP/1.1\r\nHost: {authority}\r\nX-Padding: {padding}\r\nConnection: close\r\n\r\n"
    );
    // The proxy answers and closes while part of the head is unread, so the write or the
    // read may end in a reset; the answer comes first.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 1024];
    while let Ok(Ok(read)) = tokio::time::timeout(WAIT, stream.read(&mut chunk)).await {
        if read == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..read]);
    }
    assert!(
        bytes.starts_with(b"HTTP/1.1 431 "),
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(target.connections(), 0);
    assert_eq!(proxy.stats.snapshot().requests, 0);
}

#[tokio::test]
async fn a_target_that_refuses_the_connection_is_a_bad_gateway() {
    // Bound and closed again: nothing listens on that port now.
    let port = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let authority = format!("127.0.0.1:{port}");
    let proxy = start(Setup {
        admin_hosts: &authority,
        ..Setup::default()
    })
    .await;
    let answer = exchange(
        &proxy,
        &format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(answer.status, 502);
    assert_eq!(
        proxy.events.events(),
        [Event::Failed(format!("https://{authority}"), "connect")]
    );
    assert_eq!(proxy.stats.snapshot().failures, 1);
}

#[tokio::test]
async fn a_silent_connection_is_closed_and_gives_its_slot_back() {
    let target = echo("127.0.0.1:0").await;
    let authority = listed_for(&target);
    let proxy = start(Setup {
        admin_hosts: &authority,
        limits: ProxyLimits {
            max_connections: 1,
            head_timeout: Duration::from_millis(200),
            ..ProxyLimits::default()
        },
        ..Setup::default()
    })
    .await;
    // Connects and never sends a request head.
    let mut silent = UnixStream::connect(&proxy.socket).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(WAIT, silent.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(_))),
        "the silent connection was kept open"
    );
    let (mut tunnel, status) = connect(&proxy, &authority).await;
    assert_eq!(status, 200);
    round_trip(&mut tunnel, b"slot free").await;
}

/// An agent's way out is closed by default: a public host neither list names is refused
/// before any lookup; its own list names public hosts (and their ports) but never opens
/// loopback or private addresses, which only the admins' list may.
#[tokio::test]
async fn an_agents_own_list_names_public_hosts_and_never_opens_the_inside() {
    let resolver = Arc::new(ScriptedResolver::new());
    resolver.answer("api.example.com", ["93.184.215.14".parse().unwrap()]);
    resolver.answer("other.example.com", ["93.184.215.15".parse().unwrap()]);
    resolver.answer("inside.example.com", ["10.1.2.3".parse().unwrap()]);
    let client = EgressClient::new(
        EgressConfig {
            allowlist: Allowlist::parse("127.0.0.1:9000").unwrap(),
            ..EgressConfig::default()
        },
        resolver.clone(),
    );
    let agent = Allowlist::parse("api.example.com:8443,inside.example.com,127.0.0.1:9001").unwrap();
    let decide = |url: &'static str| {
        let (client, agent) = (client.clone(), agent.clone());
        async move { client.check_for_agent(&agent, url).await }
    };
    match decide("https://api.example.com:8443/").await {
        hive_egress::Decision::Allowed { addresses, .. } => {
            assert_eq!(addresses, ["93.184.215.14:8443".parse().unwrap()])
        }
        other => panic!("the agent's own public host: {other:?}"),
    }
    assert_eq!(
        decide("https://other.example.com/").await.reason(),
        Some(RefusalReason::NotListed)
    );
    assert_eq!(
        resolver.lookups("other.example.com"),
        0,
        "looked up before refusing"
    );
    assert_eq!(
        decide("https://inside.example.com/").await.reason(),
        Some(RefusalReason::PrivateRange)
    );
    assert_eq!(
        decide("http://127.0.0.1:9001/").await.reason(),
        Some(RefusalReason::PrivateRange)
    );
    assert!(
        decide("http://127.0.0.1:9000/").await.is_allowed(),
        "the admins' entry"
    );
    assert_eq!(
        decide("http://169.254.169.254/").await.reason(),
        Some(RefusalReason::Metadata)
    );
}

#[tokio::test]
async fn a_host_no_list_names_is_refused_through_the_proxy() {
    let proxy = start(Setup::default()).await;
    refused_connect(&proxy, "example.org:443", RefusalReason::NotListed).await;
    assert_eq!(proxy.resolver.lookups("example.org"), 0);
}
