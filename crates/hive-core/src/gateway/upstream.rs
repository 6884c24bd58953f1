//! How the gateway reaches an agent that answers A2A itself: a `remote` agent through Hive's
//! egress guard with its credential, a `hosted` agent through its channel (its socket on this
//! replica, or another replica's through it). All are driven by the same A2A client and the same relaying of tasks (`remote`).

use crate::agents::hosted::channel::{ChannelBody, ChannelTransport};
use crate::agents::hosted::forward::{ForwardBody, ForwardTransport};
use crate::kernel::egress::{Egress, Purpose};
use crate::kernel::trace_context;
use hive_a2a::client::{Body, HttpRequest, HttpResponse, Transport, TransportError};
use hive_egress::{CallLimits, EgressRequest, EgressResponse};
use http::{HeaderName, HeaderValue, Method, header};
use std::sync::Arc;
use tracing::Instrument;

/// The A2A client's way to an agent.
pub(crate) enum UpstreamTransport {
    Egress(EgressTransport),
    Channel(ChannelTransport),
    /// A hosted agent another replica runs.
    Forward(ForwardTransport),
}

pub(crate) enum UpstreamBody {
    /// Boxed: an egress response is large, a channel's small.
    Egress(Box<EgressBody>),
    Channel(ChannelBody),
    Forward(ForwardBody),
}

impl Body for UpstreamBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        match self {
            Self::Egress(body) => body.as_mut().next_chunk().await,
            Self::Channel(body) => body.next_chunk().await,
            Self::Forward(body) => body.next_chunk().await,
        }
    }
}

impl Transport for UpstreamTransport {
    type Body = UpstreamBody;

    async fn send(
        &self,
        request: HttpRequest,
    ) -> Result<HttpResponse<UpstreamBody>, TransportError> {
        let transport = match self {
            Self::Egress(_) => "egress",
            Self::Channel(_) => "channel",
            Self::Forward(_) => "forward",
        };
        let span = trace_context::agent_call_span(transport, request.method, &request.url);
        let answer = self.send_in_span(request).instrument(span.clone()).await;
        trace_context::record_answer(&span, answer.as_ref().ok().map(|response| response.status));
        answer
    }
}

impl UpstreamTransport {
    async fn send_in_span(
        &self,
        mut request: HttpRequest,
    ) -> Result<HttpResponse<UpstreamBody>, TransportError> {
        // The agent continues this trace (a forwarded call relays only the A2A headers, so the
        // holder's own spans start anew).
        request.headers.extend(trace_context::current_headers());
        fn wrap<B>(
            response: HttpResponse<B>,
            body: impl FnOnce(B) -> UpstreamBody,
        ) -> HttpResponse<UpstreamBody> {
            HttpResponse {
                status: response.status,
                content_type: response.content_type,
                body: body(response.body),
            }
        }
        match self {
            Self::Egress(transport) => Ok(wrap(transport.send(request).await?, |body| {
                UpstreamBody::Egress(Box::new(body))
            })),
            Self::Channel(transport) => {
                Ok(wrap(transport.send(request).await?, UpstreamBody::Channel))
            }
            Self::Forward(transport) => {
                Ok(wrap(transport.send(request).await?, UpstreamBody::Forward))
            }
        }
    }
}

/// The A2A client's way out: Hive's egress guard, with the agent's credential.
pub(crate) struct EgressTransport {
    pub egress: Arc<Egress>,
    pub authorization: Option<HeaderValue>,
    pub limits: CallLimits,
    pub purpose: Purpose,
}

pub(crate) struct EgressBody(EgressResponse);

impl Body for EgressBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        self.0
            .chunk()
            .await
            .map(|chunk| chunk.map(|bytes| bytes.to_vec()))
            .map_err(|error| TransportError(error.kind().to_owned()))
    }
}

impl Transport for EgressTransport {
    type Body = EgressBody;

    async fn send(&self, request: HttpRequest) -> Result<HttpResponse<EgressBody>, TransportError> {
        let method = Method::from_bytes(request.method.as_bytes())
            .map_err(|_| TransportError("bad method".into()))?;
        let mut outgoing = EgressRequest::new(method, request.url).body(request.body);
        for (name, value) in request.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| TransportError("bad header name".into()))?;
            let value =
                HeaderValue::from_str(&value).map_err(|_| TransportError("bad header".into()))?;
            outgoing = outgoing.header(name, value);
        }
        if let Some(authorization) = &self.authorization {
            outgoing = outgoing.header(header::AUTHORIZATION, authorization.clone());
        }
        let response = self
            .egress
            .send(outgoing, &self.limits, &self.purpose)
            .await
            .map_err(|error| TransportError(error.kind().to_owned()))?;
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(HttpResponse {
            status: response.status().as_u16(),
            content_type,
            body: EgressBody(response),
        })
    }
}
