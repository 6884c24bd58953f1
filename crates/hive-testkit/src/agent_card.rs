//! A host on 127.0.0.1 that publishes one agent card at the well-known path, for tests that
//! import remote agents through Hive's egress guard.

use axum::Router;
use axum::routing::get;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub struct CardHost {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    port: u16,
    fetches: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl CardHost {
    /// Serves `card` (any JSON: a 1.0 or a 0.3 card, or garbage) at
    /// `/.well-known/agent-card.json`.
    pub async fn start(card: serde_json::Value) -> Self {
        Self::start_on(0, card).await
    }

    /// The same on a given port (0: any), e.g. to bring a host back where it was.
    pub async fn start_on(port: u16, card: serde_json::Value) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let fetches = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&fetches);
        let body = card.to_string();
        let app = Router::new().route(
            "/.well-known/agent-card.json",
            get(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                async move { ([("content-type", "application/json")], body) }
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base_url: format!("http://127.0.0.1:{port}"),
            port,
            fetches,
            task,
        }
    }

    /// The egress allowlist entry that lets Hive reach this host on loopback.
    pub fn allowlist_entry(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// How often the card was fetched.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for CardHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}
