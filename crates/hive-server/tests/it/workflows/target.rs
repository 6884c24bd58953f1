//! A local HTTP server on 127.0.0.1 for the http node to call, keeping every request it
//! receives:
//!
//! - `/echo`: answers 200 with the request (method, headers, JSON body) as JSON;
//! - `/flaky`: 503 the first time, 200 after;
//! - `/bad`: 400;
//! - `/switch`: the status [`Target::answer`] last set (400 at first);
//! - `/barrier`: 200 once another request reached it too, 500 if none came within 20 s;
//! - anything else: 200.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as received.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub path: String,
    pub method: String,
    pub headers: HeaderMap,
    pub body: Value,
}

struct Shared {
    seen: Mutex<Vec<Seen>>,
    flaky: AtomicUsize,
    switch: AtomicU16,
    barrier: tokio::sync::Barrier,
}

pub(crate) struct Target {
    port: u16,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Target {
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            seen: Mutex::new(Vec::new()),
            flaky: AtomicUsize::new(0),
            switch: AtomicU16::new(400),
            barrier: tokio::sync::Barrier::new(2),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { port, shared, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The egress allowlist entry that lets Hive reach this server.
    pub(crate) fn allowlist_entry(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What `/switch` answers from now on.
    pub(crate) fn answer(&self, status: u16) {
        self.shared.switch.store(status, Ordering::SeqCst);
    }

    /// The requests to `path`, oldest first.
    pub(crate) fn seen(&self, path: &str) -> Vec<Seen> {
        self.shared
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|seen| seen.path == path)
            .cloned()
            .collect()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let path = uri.path().to_owned();
    shared.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        method: method.to_string(),
        headers: headers.clone(),
        body: body.clone(),
    });
    match path.as_str() {
        "/echo" => {
            let headers: serde_json::Map<String, Value> = headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.to_string(),
                        Value::String(value.to_str().unwrap_or_default().to_owned()),
                    )
                })
                .collect();
            axum::Json(json!({ "method": method.as_str(), "headers": headers, "body": body }))
                .into_response()
        }
        "/flaky" => {
            if shared.flaky.fetch_add(1, Ordering::SeqCst) == 0 {
                (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response()
            } else {
                axum::Json(json!({ "ok": true })).into_response()
            }
        }
        "/bad" => (StatusCode::BAD_REQUEST, "no").into_response(),
        "/switch" => {
            let status = StatusCode::from_u16(shared.switch.load(Ordering::SeqCst)).unwrap();
            (status, axum::Json(json!({ "status": status.as_u16() }))).into_response()
        }
        "/barrier" => {
            match tokio::time::timeout(Duration::from_secs(20), shared.barrier.wait()).await {
                Ok(_) => axum::Json(json!({ "met": true })).into_response(),
                Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "alone").into_response(),
            }
        }
        _ => axum::Json(json!({ "path": path })).into_response(),
    }
}
