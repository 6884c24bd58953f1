//! `hosted` agents: the code Hive runs itself, called like a remote agent (Hive keeps its own
//! record of each task) over its channel, speaking A2A 1.0. What the agent answers has the
//! values of its own secrets cut out: an agent that prints its environment does not hand its
//! owner's secrets to its callers.

use super::remote::{MAX_RESPONSE_BYTES, RemoteAgent, Scrubber};
use super::upstream::UpstreamTransport;
use crate::agents::hosted::HostedRoute;
use crate::agents::hosted::channel::CHANNEL_URL;
use hive_a2a::client::Client;
use hive_a2a::error::{ErrorCode, RpcError};
use hive_a2a::jsonrpc::{Limits, Version};
use hive_store::AgentRow;
use std::time::Duration;

impl super::Gateway {
    /// A client of the hosted agent where it runs, bounded by the agent's call timeout.
    pub(super) async fn hosted_client(&self, agent: &AgentRow) -> Result<RemoteAgent, RpcError> {
        let route = self.hosted.route(agent.id).await.map_err(|error| {
            ErrorCode::InternalError.with_message(format!("the agent cannot be called: {error}"))
        })?;
        let timeout = Duration::from_secs(u64::from(agent.limits.timeout_seconds.max(1)));
        let (transport, scrub) = match route {
            HostedRoute::Local {
                transport,
                secret_values,
            } => (
                UpstreamTransport::Channel(transport.with_timeout(timeout)),
                Scrubber::of_values(&secret_values),
            ),
            HostedRoute::Elsewhere {
                transport,
                secret_values,
            } => (
                UpstreamTransport::Forward(transport.with_timeout(timeout)),
                Scrubber::of_values(&secret_values),
            ),
        };
        let client = Client::new(transport, CHANNEL_URL, Version::V1_0).with_limits(Limits {
            max_body_bytes: usize::try_from(MAX_RESPONSE_BYTES).unwrap_or(usize::MAX),
            ..Limits::default()
        });
        Ok(RemoteAgent::new(client, scrub))
    }
}
