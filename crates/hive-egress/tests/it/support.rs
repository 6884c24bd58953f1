//! Tiny HTTP/1.1 servers on loopback for the client tests: each counts the connections it
//! accepted and keeps the request heads it read, so a test can prove a target got nothing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with a request.
pub enum Reply {
    /// Status, extra header lines, body (sent with Content-Length).
    Full(u16, Vec<String>, Vec<u8>),
    /// 200 with a body and no Content-Length (ends at close), to exercise the streaming cap.
    Unsized(Vec<u8>),
    /// Headers with a Content-Length, then nothing, ever.
    StallBody,
    /// Never answer.
    Hang,
}

impl Reply {
    pub fn ok(body: &str) -> Self {
        Self::Full(200, Vec::new(), body.as_bytes().to_vec())
    }

    pub fn redirect(status: u16, location: &str) -> Self {
        Self::Full(status, vec![format!("Location: {location}")], Vec::new())
    }
}

pub struct Server {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The request heads received, lowercased.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

pub async fn serve<F>(bind: &str, reply: F) -> Server
where
    F: Fn(&str) -> Reply + Send + Sync + 'static,
{
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let reply = Arc::new(reply);
    let (counter, log) = (connections.clone(), heads.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let (reply, log) = (reply.clone(), log.clone());
            tokio::spawn(async move { handle(stream, reply.as_ref(), &log).await });
        }
    });
    Server {
        addr,
        connections,
        heads,
    }
}

/// A listener that only counts: any connection to it is the bug under test.
pub async fn trap(bind: &str) -> Server {
    serve(bind, |_| Reply::Hang).await
}

/// Answers every connection at once with plain HTTP, whatever was sent: a TLS client sees a
/// record that is not TLS.
pub async fn not_tls(bind: &str) -> Server {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
            let _ = stream.shutdown().await;
        }
    });
    Server {
        addr,
        connections,
        heads: Arc::new(Mutex::new(Vec::new())),
    }
}

async fn handle<F>(mut stream: TcpStream, reply: &F, log: &Mutex<Vec<String>>)
where
    F: Fn(&str) -> Reply,
{
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head = loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break String::from_utf8_lossy(&buffer[..end]).to_lowercase();
        }
    };
    log.lock().unwrap().push(head.clone());
    let request_line = head.lines().next().unwrap_or_default().to_owned();
    let response = match reply(&request_line) {
        Reply::Full(status, headers, body) => {
            let mut text = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for header in headers {
                text.push_str(&header);
                text.push_str("\r\n");
            }
            text.push_str("\r\n");
            let mut bytes = text.into_bytes();
            bytes.extend_from_slice(&body);
            bytes
        }
        Reply::Unsized(body) => {
            let mut bytes = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
            bytes.extend_from_slice(&body);
            bytes
        }
        Reply::StallBody => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")
                .await;
            std::future::pending::<()>().await;
            return;
        }
        Reply::Hang => {
            std::future::pending::<()>().await;
            return;
        }
    };
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
}

/// An HTTPS server whose certificate no authority signed (`tests/data`): it counts
/// connections and the requests that got through the handshake, which must be none.
pub async fn untrusted_tls(bind: &str) -> (Server, Arc<AtomicUsize>) {
    use tokio_rustls::rustls;
    let cert = rustls::pki_types::CertificateDer::from(
        include_bytes!("../data/self-signed-cert.der").to_vec(),
    );
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
        include_bytes!("../data/self-signed-key.der")
            .to_vec()
            .into(),
    );
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (counter, served) = (connections.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let (acceptor, served) = (acceptor.clone(), served.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut buffer = [0u8; 1024];
                if tls.read(&mut buffer).await.unwrap_or(0) > 0 {
                    served.fetch_add(1, Ordering::SeqCst);
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await;
                }
            });
        }
    });
    let server = Server {
        addr,
        connections,
        heads: Arc::new(Mutex::new(Vec::new())),
    };
    (server, requests)
}

/// Sends back whatever it reads, on every connection, until the other side stops writing.
pub async fn echo(bind: &str) -> Server {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut read, mut write) = stream.into_split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
                let _ = write.shutdown().await;
            });
        }
    });
    Server {
        addr,
        connections,
        heads: Arc::new(Mutex::new(Vec::new())),
    }
}

/// A counting listener on an address that may need privileges (port 80 or 443); `None` where
/// the test does not run with them.
pub async fn try_trap(bind: &str) -> Option<Server> {
    let listener = TcpListener::bind(bind).await.ok()?;
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    Some(Server {
        addr,
        connections,
        heads: Arc::new(Mutex::new(Vec::new())),
    })
}
