use hive_proto::{ErrorBody, HealthResponse};
use reqwest::{Method, RequestBuilder, Response};

/// A typed client for a test server. It never uses a proxy from the environment.
#[derive(Debug, Clone)]
pub struct TestClient {
    base_url: String,
    http: reqwest::Client,
}

impl TestClient {
    pub fn new(base_url: &str) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            http,
        }
    }

    /// A request to `path` (relative to the server), to finish and send.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.expect("GET")
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> Response {
        self.request(Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn health(&self) -> (u16, HealthResponse) {
        let response = self.get("/api/health").await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("health body"))
    }
}

/// Reads an error response in the API's one error shape.
pub async fn error_body(response: Response) -> ErrorBody {
    response.json().await.expect("the API error shape")
}
