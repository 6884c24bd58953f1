//! `GET /api/v1/events`: the live event stream of the bus, as Server-Sent Events, filtered to
//! what the caller may see (`hive_core::agents::events::may_see`, which reads nothing: an
//! agent's status event names the agent's owner and visibility).

use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::request::ClientIp;
use crate::state::AppState;
use crate::streams::event_stream_response;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use hive_core::agents::events::may_see;
use hive_core::kernel::caller::Caller;
use hive_state::{Channel, Envelope};
use tokio::sync::{broadcast, mpsc};

#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    responses((status = 200, description = "A stream of server-sent events.", content_type = "text/event-stream", body = String)),
)]
pub async fn stream(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ip: Option<axum::Extension<ClientIp>>,
) -> Result<Response, ApiError> {
    let slot = state
        .streams
        .acquire_for(&caller, ip.map(|axum::Extension(ip)| ip))?;
    let bus = &state.hive.state.bus;
    let agents = bus.subscribe(Channel::AgentStatus);
    let system = bus.subscribe(Channel::SystemEvents);
    let (frames, frames_out) = mpsc::channel::<Bytes>(16);
    tokio::spawn(forward(caller, agents, system, frames));
    Ok(event_stream_response(
        frames_out,
        state.hive.gateway.settings().stream_idle,
        state.shutdown.clone(),
        slot,
    ))
}

async fn forward(
    caller: Caller,
    mut agents: broadcast::Receiver<Envelope>,
    mut system: broadcast::Receiver<Envelope>,
    frames: mpsc::Sender<Bytes>,
) {
    loop {
        let received = tokio::select! {
            () = frames.closed() => return,
            received = agents.recv() => received,
            received = system.recv() => received,
        };
        let envelope = match received {
            Ok(envelope) => envelope,
            // Missed events are not replayed; the dashboard reads the current state anyway.
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if !may_see(&caller, &envelope.payload) {
            continue;
        }
        let Some(frame) = frame_of(&envelope) else {
            continue;
        };
        if frames.send(frame).await.is_err() {
            return;
        }
    }
}

/// Fields of a bus event that decide who sees it, not part of what the stream shows.
const ROUTING_FIELDS: [&str; 2] = ["ownerId", "visibility"];

/// One SSE event: `event:` the event's type, `id:` its event id, `data:` the event as JSON.
fn frame_of(envelope: &Envelope) -> Option<Bytes> {
    let mut data = serde_json::to_value(&envelope.payload).ok()?;
    let kind = data.get("type")?.as_str()?.to_owned();
    if let Some(object) = data.as_object_mut() {
        for field in ROUTING_FIELDS {
            object.remove(field);
        }
        object.insert(
            "eventId".into(),
            serde_json::Value::String(envelope.mesh_meta.event_id.clone()),
        );
    }
    let id: String = envelope
        .mesh_meta
        .event_id
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    Some(Bytes::from(format!(
        "event: {kind}\nid: {id}\ndata: {data}\n\n"
    )))
}
