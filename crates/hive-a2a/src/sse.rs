//! Server-Sent Events framing for A2A streams.
//!
//! A server writes each stream event as one SSE event whose `data` is a complete JSON-RPC
//! response carrying the request's id ([`encode_outcome_event`]), with the headers
//! [`CONTENT_TYPE`] and [`CACHE_CONTROL`]. An error found before the stream starts is an
//! ordinary JSON response, not a stream.
//!
//! A client feeds the bytes it receives, in chunks of any size, to a [`Decoder`], which
//! follows the event-stream grammar of the HTML standard: LF, CRLF and CR line ends, several
//! `data:` lines joined by LF, comment lines (starting with `:`) ignored, an event dispatched at
//! a blank line, and an unterminated event at the end of the stream dropped.

use crate::error::RpcError;
use crate::jsonrpc::{self, Id, Limits, Method, Outcome, Rejection, Version};

/// The response content type of a stream.
pub const CONTENT_TYPE: &str = "text/event-stream";
/// The response cache control of a stream.
pub const CACHE_CONTROL: &str = "no-store";

/// One SSE event holding `data`. Each line of `data` becomes a `data:` line, so the event
/// decodes to exactly `data` (with line ends normalised to LF).
pub fn encode_event(data: &str) -> Vec<u8> {
    let mut event = Vec::with_capacity(data.len() + 8);
    let normalised = data.replace("\r\n", "\n");
    for line in normalised.split(['\n', '\r']) {
        event.extend_from_slice(b"data: ");
        event.extend_from_slice(line.as_bytes());
        event.push(b'\n');
    }
    event.push(b'\n');
    event
}

/// A comment line, which clients ignore: keeps an idle connection from timing out.
pub fn keep_alive() -> &'static [u8] {
    b": keep-alive\n\n"
}

/// The SSE event for one stream event of the request `id`.
pub fn encode_outcome_event(
    id: &Id,
    outcome: &Outcome,
    version: Version,
) -> Result<Vec<u8>, RpcError> {
    let body = jsonrpc::encode_result(id, outcome, version)?;
    Ok(encode_event(&String::from_utf8_lossy(&body)))
}

/// The SSE event for an error that ends a stream.
pub fn encode_error_event(id: &Id, error: &RpcError, version: Version) -> Vec<u8> {
    encode_event(&String::from_utf8_lossy(&jsonrpc::encode_error(
        id, error, version,
    )))
}

/// One decoded event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `event:` field; empty means the default type, `message`.
    pub event: String,
    /// The `data:` lines joined by LF.
    pub data: String,
    /// The last `id:` seen on the stream so far.
    pub id: Option<String>,
    /// A `retry:` reconnection time in milliseconds, if this event set one.
    pub retry: Option<u64>,
}

impl Event {
    /// This event's data as a JSON-RPC response of `method`, in the 1.0 model.
    pub fn decode(
        &self,
        method: Method,
        version: Version,
        limits: &Limits,
    ) -> Result<(Id, Result<Outcome, RpcError>), Rejection> {
        let response = jsonrpc::parse_response(self.data.as_bytes(), limits)?;
        let outcome = response
            .result
            .and_then(|result| jsonrpc::decode_result(method, version, result));
        Ok((response.id, outcome))
    }
}

/// An event grew beyond the decoder's limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("server-sent event larger than {limit} bytes")]
pub struct EventTooLarge {
    pub limit: usize,
}

/// An incremental event-stream decoder.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_event_bytes: usize,
    line: Vec<u8>,
    data: String,
    event: String,
    last_id: Option<String>,
    retry: Option<u64>,
    has_data: bool,
    /// The previous chunk ended in CR: a LF at the start of the next one belongs to it.
    after_cr: bool,
    at_start: bool,
}

impl Decoder {
    /// A decoder that refuses events (and lines) longer than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes,
            line: Vec::new(),
            data: String::new(),
            event: String::new(),
            last_id: None,
            retry: None,
            has_data: false,
            after_cr: false,
            at_start: true,
        }
    }

    /// Feeds the next chunk and returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, EventTooLarge> {
        let mut events = Vec::new();
        let mut chunk = chunk;
        if self.at_start && !chunk.is_empty() {
            // A UTF-8 byte order mark may open the stream (possibly split across chunks).
            let bom = b"\xEF\xBB\xBF";
            let seen = self.line.len() + chunk.len();
            if seen < bom.len() && bom.starts_with(&[self.line.as_slice(), chunk].concat()) {
                self.line.extend_from_slice(chunk);
                return Ok(events);
            }
            let mut start = [self.line.as_slice(), chunk].concat();
            if start.starts_with(bom) {
                start.drain(..bom.len());
            }
            self.at_start = false;
            self.line.clear();
            return self.feed_owned(start, events);
        }
        if self.after_cr {
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
            self.after_cr = false;
        }
        self.feed_bytes(chunk, &mut events)?;
        Ok(events)
    }

    fn feed_owned(
        &mut self,
        bytes: Vec<u8>,
        mut events: Vec<Event>,
    ) -> Result<Vec<Event>, EventTooLarge> {
        self.feed_bytes(&bytes, &mut events)?;
        Ok(events)
    }

    fn feed_bytes(&mut self, bytes: &[u8], events: &mut Vec<Event>) -> Result<(), EventTooLarge> {
        let mut index = 0;
        while index < bytes.len() {
            let byte = bytes[index];
            index += 1;
            match byte {
                b'\n' => self.end_line(events),
                b'\r' => {
                    self.end_line(events);
                    if index < bytes.len() {
                        if bytes[index] == b'\n' {
                            index += 1;
                        }
                    } else {
                        self.after_cr = true;
                    }
                }
                _ => {
                    self.line.push(byte);
                    if self.line.len() + self.data.len() > self.max_event_bytes {
                        return Err(EventTooLarge {
                            limit: self.max_event_bytes,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn end_line(&mut self, events: &mut Vec<Event>) {
        let line = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        if line.is_empty() {
            self.dispatch(events);
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "event" => self.event = value.to_owned(),
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok();
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, events: &mut Vec<Event>) {
        let retry = self.retry.take();
        let event = std::mem::take(&mut self.event);
        let mut data = std::mem::take(&mut self.data);
        if !std::mem::take(&mut self.has_data) {
            return;
        }
        if data.ends_with('\n') {
            data.pop();
        }
        events.push(Event {
            event,
            data,
            id: self.last_id.clone(),
            retry,
        });
    }

    /// The stream ended: an event without its closing blank line is dropped. Returns whether
    /// something was pending (a truncated stream).
    pub fn finish(&mut self) -> bool {
        let pending = self.has_data || !self.line.is_empty();
        self.line.clear();
        self.data.clear();
        self.has_data = false;
        pending
    }
}
