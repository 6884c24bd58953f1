//! The reverse-proxy examples of `packaging/` (nginx and Caddy), run as shipped in front of a
//! real `hive serve`: TLS at the proxy, the client's address as Hive records it (a forged
//! `X-Forwarded-For` is not believed), event streams passed as they are written, a hosted
//! agent's bundle larger than the proxies' default body limit let through. Only the site's
//! name, ports and certificate paths are changed to this machine's. Needs nginx, Caddy and
//! openssl: without them the test fails under CI and is skipped elsewhere.

use crate::accounts::{PASSWORD, create_admin, create_token};
use crate::process::{HiveProcess, run_to_exit};
use hive_a2a::sse::Decoder;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

const ADMIN: &str = "proxy@example.com";
/// The client connects from this loopback address; the proxies from 127.0.0.1, the only
/// address Hive trusts. So the address Hive records tells which one it believed.
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const FORGED_IP: &str = "203.0.113.7";
/// Larger than nginx's default `client_max_body_size` (1 MiB).
const BUNDLE_BYTES: usize = 3 * 1024 * 1024;
const WAIT: Duration = Duration::from_secs(30);

fn packaging(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../packaging")
        .join(file)
}

fn missing() -> Option<&'static str> {
    ["/usr/sbin/nginx", "/usr/bin/caddy", "/usr/bin/openssl"]
        .into_iter()
        .find(|program| !Path::new(program).exists())
}

/// Whether the test cannot run here (the shared rule: under CI a missing program fails it).
fn skip() -> bool {
    missing()
        .inspect(|program| hive_store::test_env::missing(program))
        .is_some()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn openssl(args: &[&str], dir: &Path) {
    let done = Command::new("/usr/bin/openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
}

/// A certificate authority of the test's and a certificate it signed for `localhost`:
/// (the authority's certificate, the site's certificate, its key).
async fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut authority = vec!["req", "-x509", "-days", "1", "-subj", "/CN=test authority"];
    authority.extend(ec);
    authority.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(&authority, dir).await;
    let mut request = vec!["req", "-subj", "/CN=localhost"];
    request.extend(ec);
    request.extend(["-keyout", "site.key", "-out", "site.csr"]);
    openssl(&request, dir).await;
    std::fs::write(dir.join("site.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "site.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "site.ext",
            "-out",
            "site.pem",
        ],
        dir,
    )
    .await;
    (
        dir.join("ca.pem"),
        dir.join("site.pem"),
        dir.join("site.key"),
    )
}

/// An instance with an admin, their token and a hosted agent, served with `AUTH_URL` at the
/// proxy and only 127.0.0.1 trusted to forward.
async fn hive_behind(dir: &Path, public_port: u16) -> (HiveProcess, String, String) {
    create_admin(dir, ADMIN).await;
    let token = create_token(dir, ADMIN, "proxy", None).await;
    let created = run_to_exit(
        dir,
        &[
            "agent",
            "create",
            "--owner",
            ADMIN,
            "--name",
            "echo",
            "--kind",
            "conformance",
        ],
        &[],
    )
    .await;
    assert!(created.0.success(), "{created:?}");
    let hosted = run_to_exit(
        dir,
        &[
            "agent", "create", "--owner", ADMIN, "--name", "packed", "--kind", "hosted",
        ],
        &[],
    )
    .await;
    assert!(hosted.0.success(), "{hosted:?}");
    let public = format!("https://localhost:{public_port}");
    let hive = HiveProcess::start(
        dir,
        &[
            ("AUTH_URL", public.as_str()),
            ("HIVE_TRUSTED_PROXIES", "127.0.0.1"),
        ],
    )
    .await;
    (hive, token, public)
}

fn upstream(hive: &HiveProcess) -> String {
    hive.base_url.trim_start_matches("http://").to_owned()
}

/// A proxy process, killed when dropped (at the test's end).
struct Proxy {
    _child: Child,
}

impl Proxy {
    async fn spawn(mut command: Command, port: u16) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let listening = async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                if let Some(status) = child.try_wait().unwrap() {
                    return Err(status);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(())
        };
        match tokio::time::timeout(WAIT, listening).await {
            Ok(Ok(())) => Self { _child: child },
            outcome => {
                let _ = child.start_kill();
                let output = child.wait_with_output().await.unwrap();
                panic!(
                    "the proxy did not listen ({outcome:?}): {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
    }
}

/// A client of the proxy as a browser elsewhere would be: from `CLIENT_IP`, trusting the
/// test's authority, `localhost` resolving to the proxy.
fn client(authority: &Path, port: u16) -> reqwest::Client {
    let pem = std::fs::read(authority).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .local_address(IpAddr::V4(CLIENT_IP))
        .resolve(
            "localhost",
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        )
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// What every example must give: checked through the proxy at `public`.
async fn check_through(http: &reqwest::Client, public: &str, token: &str) {
    let health = http
        .get(format!("{public}/api/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // A failed login whose client claims another address: Hive records the one the proxy saw.
    let request_id = format!("proxy-check-{}", std::process::id());
    let refused = http
        .post(format!("{public}/api/v1/auth/login"))
        .header("X-Forwarded-For", FORGED_IP)
        .header("X-Real-IP", FORGED_IP)
        .header("X-Request-Id", &request_id)
        .json(&serde_json::json!({ "email": ADMIN, "password": format!("{PASSWORD}!") }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let trail: serde_json::Value = http
        .get(format!("{public}/api/v1/audit?limit=50"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let record = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|record| record["requestId"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no record of the login in {trail}"));
    assert_eq!(record["ip"], CLIENT_IP.to_string(), "{record}");

    let agents: serde_json::Value = http
        .get(format!("{public}/api/v1/agents"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let agent = |name: &str| {
        agents["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|agent| agent["name"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // The live event stream passes each event as it is written: an agent's start shows up
    // while the stream stays open (a proxy that buffered it would hold it back).
    let first = tokio::time::timeout(WAIT, async {
        let mut events = http
            .get(format!("{public}/api/v1/events"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(events.status(), 200);
        let started = http
            .post(format!("{public}/api/v1/agents/{}/start", agent("echo")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(started.status(), 200);
        let mut decoder = Decoder::new(1 << 16);
        loop {
            let chunk = events
                .chunk()
                .await
                .unwrap()
                .expect("the stream stays open");
            if let Some(event) = decoder.feed(&chunk).unwrap().into_iter().next() {
                return event;
            }
        }
    })
    .await
    .expect("the agent's status event through the proxy");
    assert_eq!(first.event, "agent.status");

    // A bundle over the proxy's default body limit reaches Hive, which judges it itself.
    let pushed = http
        .put(format!("{public}/api/v1/agents/{}/bundle", agent("packed")))
        .bearer_auth(token)
        .header("Content-Type", "application/gzip")
        .body(vec![0u8; BUNDLE_BYTES])
        .send()
        .await
        .unwrap();
    assert_ne!(pushed.status(), 413, "the proxy refused the bundle's size");
    let answer: serde_json::Value = pushed.json().await.unwrap();
    assert!(answer["error"]["code"].is_string(), "{answer}");
}

#[tokio::test]
async fn the_nginx_example_forwards_the_client_streams_and_bundles() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (https_port, http_port) = (free_port(), free_port());
    let (hive, token, public) = hive_behind(dir.path(), https_port).await;
    let proxy_dir = tempfile::tempdir().unwrap();
    let (authority, cert, key) = certificates(proxy_dir.path()).await;

    let example = std::fs::read_to_string(packaging("nginx/hive.conf")).unwrap();
    let site = example
        .replace("127.0.0.1:8080", &upstream(&hive))
        .replace("hive.example.com", "localhost")
        .replace(
            "listen 443 ssl http2;",
            &format!("listen 127.0.0.1:{https_port} ssl http2;"),
        )
        .replace("listen 80;", &format!("listen 127.0.0.1:{http_port};"))
        .replace("/etc/ssl/hive/fullchain.pem", cert.to_str().unwrap())
        .replace("/etc/ssl/hive/privkey.pem", key.to_str().unwrap())
        .lines()
        .filter(|line| !line.trim_start().starts_with("listen [::]"))
        .collect::<Vec<_>>()
        .join("\n");
    let prefix = proxy_dir.path();
    // nginx's workers run as another user when it starts as root: they pass through to the
    // temporary files of request bodies it makes for them.
    std::fs::set_permissions(prefix, std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
    std::fs::write(prefix.join("hive.conf"), site).unwrap();
    // The main file a distribution ships, cut to what a test needs.
    let main = format!(
        "daemon off;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log stderr;\n\
         events {{}}\nhttp {{\n access_log off;\n client_body_temp_path {p}/body;\n \
         proxy_temp_path {p}/proxy;\n fastcgi_temp_path {p}/fastcgi;\n \
         uwsgi_temp_path {p}/uwsgi;\n scgi_temp_path {p}/scgi;\n include {p}/hive.conf;\n}}\n",
        p = prefix.display()
    );
    std::fs::write(prefix.join("nginx.conf"), main).unwrap();
    let mut nginx = Command::new("/usr/sbin/nginx");
    nginx
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(prefix.join("nginx.conf"));
    let _nginx = Proxy::spawn(nginx, https_port).await;

    let http = client(&authority, https_port);
    check_through(&http, &public, &token).await;
    // Plain HTTP is sent to the TLS site.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{http_port}/api/health"))
        .header("Host", "localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 301);
    assert_eq!(plain.headers()["location"], "https://localhost/api/health");
    drop(hive);
}

#[tokio::test]
async fn the_caddy_example_forwards_the_client_streams_and_bundles() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let https_port = free_port();
    let (hive, token, public) = hive_behind(dir.path(), https_port).await;
    let proxy_dir = tempfile::tempdir().unwrap();
    let (authority, cert, key) = certificates(proxy_dir.path()).await;

    let example = std::fs::read_to_string(packaging("caddy/Caddyfile")).unwrap();
    let site = example.replace("127.0.0.1:8080", &upstream(&hive)).replace(
        "hive.example.com {",
        &format!(
            "https://localhost:{https_port} {{\n\ttls {} {}",
            cert.display(),
            key.display()
        ),
    );
    // This machine's options: no admin endpoint, no redirect listener on port 80, state in
    // the test's directory.
    let prefix = proxy_dir.path();
    let caddyfile = format!(
        "{{\n\tadmin off\n\tauto_https disable_redirects\n\tstorage file_system {}\n}}\n{site}",
        prefix.join("state").display()
    );
    std::fs::write(prefix.join("Caddyfile"), caddyfile).unwrap();
    let mut caddy = Command::new("/usr/bin/caddy");
    caddy
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(prefix.join("Caddyfile"))
        .env("HOME", prefix)
        .env("XDG_DATA_HOME", prefix.join("data"))
        .env("XDG_CONFIG_HOME", prefix.join("config"));
    let _caddy = Proxy::spawn(caddy, https_port).await;

    check_through(&client(&authority, https_port), &public, &token).await;
    drop(hive);
}
