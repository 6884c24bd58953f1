//! Traces as a collector receives them: a real `hive serve` exporting over OTLP/HTTP to a
//! receiver on loopback that decodes each batch, a remote A2A agent on loopback that keeps the
//! `traceparent` it is sent, and the span tree checked link by link.

use crate::accounts::{create_admin, create_token};
use crate::process::{HiveProcess, client, poll_until};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One span as received.
#[derive(Debug, Clone)]
struct Received {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    service: String,
    attributes: BTreeMap<String, String>,
}

impl Received {
    fn attribute(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

fn text(value: Option<&AnyValue>) -> String {
    match value {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// A minimal OTLP/HTTP receiver: `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`.
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> Self {
        async fn export(
            State(spans): State<Arc<Mutex<Vec<Received>>>>,
            body: Bytes,
        ) -> impl axum::response::IntoResponse {
            let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace request");
            for resource in request.resource_spans {
                let service = resource
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|kv| kv.key == "service.name")
                    .map(|kv| text(kv.value.as_ref().and_then(|v| v.value.as_ref())))
                    .unwrap_or_default();
                for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                    spans.lock().unwrap().push(Received {
                        name: span.name,
                        trace_id: hex::encode(&span.trace_id),
                        span_id: hex::encode(&span.span_id),
                        parent_span_id: hex::encode(&span.parent_span_id),
                        service: service.clone(),
                        attributes: span
                            .attributes
                            .iter()
                            .map(|kv| {
                                let value = kv.value.as_ref().and_then(|v| v.value.as_ref());
                                (kv.key.clone(), text(value))
                            })
                            .collect(),
                    });
                }
            }
            (
                [("content-type", "application/x-protobuf")],
                ExportTraceServiceResponse::default().encode_to_vec(),
            )
        }
        let spans = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(export))
            .with_state(Arc::clone(&spans));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, spans }
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }
}

/// A remote A2A agent (protocol 1.0) that answers every message with a completed task and keeps
/// the `traceparent` of each call.
pub(crate) struct Agent {
    pub address: String,
    traceparents: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    pub async fn start() -> Self {
        async fn answer(
            State(seen): State<Arc<Mutex<Vec<String>>>>,
            headers: HeaderMap,
            body: Bytes,
        ) -> axum::Json<Value> {
            if let Some(value) = headers.get("traceparent") {
                seen.lock()
                    .unwrap()
                    .push(value.to_str().unwrap().to_owned());
            }
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let context = request["params"]["message"]["contextId"].clone();
            axum::Json(
                json!({"jsonrpc": "2.0", "id": request["id"], "result": {"task": {
                "id": "up-1", "contextId": context,
                "status": {"state": "TASK_STATE_COMPLETED", "message": {"messageId": "up-m",
                    "role": "ROLE_AGENT", "parts": [{"text": "traced"}]}}}}}),
            )
        }
        let traceparents = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/a2a", axum::routing::get(|| async { "{}" }).post(answer))
            .with_state(Arc::clone(&traceparents));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            address,
            traceparents,
        }
    }
}

pub(crate) async fn api(base: &str, token: &str, path: &str, body: Value) -> (u16, Value) {
    let response = client()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Registers and starts a remote agent at `agent` with a credential; its id.
pub(crate) async fn remote_agent(
    base: &str,
    token: &str,
    agent: &Agent,
    credential: &str,
) -> String {
    let (status, secret) = api(
        base,
        token,
        "/api/v1/secrets",
        json!({"name": "upstream", "value": credential}),
    )
    .await;
    assert_eq!(status, 201, "{secret}");
    let (status, created) = api(
        base,
        token,
        "/api/v1/agents",
        json!({"name": "traced", "kind": "remote", "runtime": {
            "url": format!("http://{}/a2a", agent.address), "protocolVersion": "1.0",
            "credentialSecretId": secret["id"]}}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, started) = api(
        base,
        token,
        &format!("/api/v1/agents/{id}/start"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{started}");
    id
}

/// Starts a run of a two-node workflow and waits for its success; the run's id.
pub(crate) async fn workflow_run(base: &str, token: &str) -> String {
    let (status, saved) = api(
        base,
        token,
        "/api/v1/workflows",
        json!({"name": "traced-flow",
            "nodes": [{"id": "start", "type": "input"},
                      {"id": "done", "type": "output", "value": {"ok": true}}],
            "edges": [{"from": "start", "to": "done"}]}),
    )
    .await;
    assert_eq!(status, 201, "{saved}");
    let workflow = saved["workflow"]["id"].as_str().unwrap().to_owned();
    let (status, run) = api(
        base,
        token,
        &format!("/api/v1/workflows/{workflow}/runs"),
        json!({"input": {}}),
    )
    .await;
    assert_eq!(status, 202, "{run}");
    let run = run["id"].as_str().unwrap().to_owned();
    poll_until("the run's success", Duration::from_secs(60), async || {
        let detail: Value = client()
            .get(format!("{base}/api/v1/workflow-runs/{run}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (detail["run"]["status"] == "succeeded").then_some(())
    })
    .await;
    run
}

fn only<'a>(spans: &'a [Received], what: &str, keep: impl Fn(&Received) -> bool) -> &'a Received {
    let found: Vec<_> = spans.iter().filter(|span| keep(span)).collect();
    assert_eq!(found.len(), 1, "one {what} span in {spans:#?}");
    found[0]
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn a_call_through_the_gateway_is_one_trace_from_the_caller_to_the_agent() {
    let receiver = Receiver::start().await;
    let agent = Agent::start().await;
    let dir = tempfile::tempdir().unwrap();
    create_admin(dir.path(), "root@example.com").await;
    let token = create_token(dir.path(), "root@example.com", "traces", None).await;
    let credential = "sk-upstream-trace-credential-0123456789";
    hive_testkit::capture::canary(credential);
    let mut hive = HiveProcess::start(
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str()),
            ("OTEL_SERVICE_NAME", "hive-under-test"),
            ("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", agent.address.as_str()),
        ],
    )
    .await;
    let base = hive.base_url.clone();
    let agent_id = remote_agent(&base, &token, &agent, credential).await;

    // The caller's trace is continued.
    let response = client()
        .post(format!("{base}/api/a2a/agents/{agent_id}/jsonrpc"))
        .bearer_auth(&token)
        .header("A2A-Version", "1.0")
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {
            "message": {"messageId": "traced-1", "role": "ROLE_USER", "parts": [{"text": "hi"}]}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["result"]["task"]["status"]["state"], "TASK_STATE_COMPLETED",
        "{answer}"
    );
    let run = workflow_run(&base, &token).await;

    // The last batch goes out on a graceful shutdown.
    hive.terminate().await;
    assert!(hive.wait().await.success(), "{}", hive.stderr());
    let spans = receiver.spans();
    assert!(spans.iter().all(|span| span.service == "hive-under-test"));

    let request = only(&spans, "request", |span| {
        span.name == "POST /api/a2a/agents/{id}/jsonrpc"
    });
    assert_eq!(request.trace_id, TRACE_ID);
    assert_eq!(request.parent_span_id, CALLER_SPAN);
    assert_eq!(request.attribute("http.response.status_code"), "200");
    assert_eq!(
        request.attribute("http.route"),
        "/api/a2a/agents/{id}/jsonrpc"
    );
    let gateway = only(&spans, "gateway call", |span| {
        span.name == "a2a SendMessage"
    });
    assert_eq!(gateway.trace_id, TRACE_ID);
    assert_eq!(gateway.parent_span_id, request.span_id);
    assert_eq!(gateway.attribute("hive.agent.id"), agent_id);
    assert_eq!(gateway.attribute("hive.call.outcome"), "ok");
    let call = only(&spans, "agent call", |span| {
        span.name == "agent call" && span.trace_id == TRACE_ID
    });
    assert_eq!(call.parent_span_id, gateway.span_id);
    assert_eq!(
        call.attribute("server.origin"),
        format!("http://{}", agent.address)
    );
    assert_eq!(call.attribute("http.response.status_code"), "200");
    // The agent was handed the trace, its parent being the agent call.
    let sent = agent.traceparents.lock().unwrap().clone();
    assert!(
        sent.contains(&format!("00-{TRACE_ID}-{}-01", call.span_id)),
        "{sent:?} / {call:?}"
    );

    // The workflow's steps, children of its run.
    let workflow_run = only(&spans, "workflow run", |span| {
        span.name == "workflow run" && span.attribute("hive.workflow.run_id") == run
    });
    for (node, kind) in [("start", "input"), ("done", "output")] {
        let step = only(&spans, "workflow step", |span| {
            span.attribute("hive.workflow.node") == node
        });
        assert_eq!(step.name, format!("workflow step {kind}"));
        assert_eq!(step.trace_id, workflow_run.trace_id);
        assert_eq!(step.parent_span_id, workflow_run.span_id);
        assert_eq!(step.attribute("hive.workflow.run_id"), run);
        assert_eq!(step.attribute("hive.workflow.attempt"), "1");
    }

    // No span holds a credential.
    for span in &spans {
        for value in span.attributes.values() {
            assert!(!value.contains(credential), "{span:?}");
            assert!(!value.contains(&token), "{span:?}");
        }
    }
}

#[tokio::test]
async fn an_unreachable_collector_costs_no_request_and_no_shutdown() {
    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let dir = tempfile::tempdir().unwrap();
    let mut hive =
        HiveProcess::start(dir.path(), &[("OTEL_EXPORTER_OTLP_ENDPOINT", &closed)]).await;
    for _ in 0..20 {
        let response = client()
            .get(format!("{}/api/health", hive.base_url))
            .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    hive.terminate().await;
    assert!(hive.wait().await.success(), "{}", hive.stderr());
    assert!(
        hive.stdout()
            .contains("traces: the collector cannot be reached"),
        "{}",
        hive.stdout()
    );
}

#[tokio::test]
async fn a_call_proxied_to_a_federation_peer_continues_in_the_peer() {
    const ORIGIN: &str = "http://hive-origin.test";
    const AUDIENCE: &str = "urn:hive:trace-test";
    const SECRET: &str = "9d8c7b6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa998877665544";
    let receiver = Receiver::start().await;
    let peer_dir = tempfile::tempdir().unwrap();
    let mut peer = HiveProcess::start(
        peer_dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str()),
            ("OTEL_SERVICE_NAME", "hive-peer"),
            ("MESH_FEDERATION_ENABLED", "true"),
            ("MESH_FEDERATION_SHARED_SECRET", SECRET),
            // The calling instance's tokens are issued by its public origin.
            ("MESH_FEDERATION_PEERS", ORIGIN),
            // Its listening port is chosen at start, so the mesh names one audience instead.
            ("MESH_FEDERATION_JWT_AUDIENCE", AUDIENCE),
        ],
    )
    .await;
    let peer_address = peer.base_url.trim_start_matches("http://").to_owned();
    let dir = tempfile::tempdir().unwrap();
    create_admin(dir.path(), "root@example.com").await;
    let token = create_token(dir.path(), "root@example.com", "traces", None).await;
    let mut hive = HiveProcess::start(
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str()),
            ("OTEL_SERVICE_NAME", "hive-origin"),
            ("AUTH_URL", ORIGIN),
            ("MESH_FEDERATION_ENABLED", "true"),
            ("MESH_FEDERATION_SHARED_SECRET", SECRET),
            ("MESH_FEDERATION_PEERS", peer.base_url.as_str()),
            ("MESH_FEDERATION_JWT_AUDIENCE", AUDIENCE),
            ("HIVE_EGRESS_FETCH_HOST_ALLOWLIST", peer_address.as_str()),
        ],
    )
    .await;
    let response = client()
        .post(format!(
            "{}/api/v1/mesh/federation/proxy/jsonrpc?peerIndex=0",
            hive.base_url
        ))
        .bearer_auth(&token)
        .header("A2A-Version", "1.0")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "none"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "{}\n{}",
        response.text().await.unwrap(),
        peer.stdout()
    );

    hive.terminate().await;
    peer.terminate().await;
    assert!(hive.wait().await.success(), "{}", hive.stderr());
    assert!(peer.wait().await.success(), "{}", peer.stderr());
    let spans = receiver.spans();
    let request = only(&spans, "request", |span| {
        span.service == "hive-origin" && span.name == "POST /api/v1/mesh/federation/proxy/jsonrpc"
    });
    let proxy = only(&spans, "federation proxy", |span| {
        span.name == "federation proxy"
    });
    assert_eq!(proxy.service, "hive-origin");
    assert_eq!(proxy.trace_id, request.trace_id);
    assert_eq!(proxy.parent_span_id, request.span_id);
    assert_eq!(proxy.attribute("hive.peer.origin"), peer.base_url);
    assert_eq!(proxy.attribute("a2a.method"), "GetTask");
    assert_eq!(proxy.attribute("http.response.status_code"), "200");
    // The peer's request joins the trace under the proxy span, and its gateway call under it.
    let inbound = only(&spans, "peer request", |span| {
        span.service == "hive-peer" && span.name == "POST /api/a2a/jsonrpc"
    });
    assert_eq!(inbound.trace_id, request.trace_id);
    assert_eq!(inbound.parent_span_id, proxy.span_id);
    let gateway = only(&spans, "peer gateway call", |span| {
        span.service == "hive-peer" && span.name == "a2a GetTask"
    });
    assert_eq!(gateway.trace_id, request.trace_id);
    assert_eq!(gateway.parent_span_id, inbound.span_id);
    for span in &spans {
        for value in span.attributes.values() {
            assert!(
                !value.contains(SECRET) && !value.contains(&token),
                "{span:?}"
            );
        }
    }
}
