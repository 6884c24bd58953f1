//! Long-lived responses (event streams): how many one client IP and one user may hold open at
//! once (`A2A_STREAMS_PER_IP`, `A2A_STREAMS_PER_USER`, counted by this replica), and the body
//! that frames a stream's events — with keep-alive comments, closed when idle for
//! `A2A_STREAM_IDLE_SECONDS` or when the server shuts down.

use crate::error::ApiError;
use crate::request::ClientIp;
use axum::body::Body;
use bytes::Bytes;
use hive_a2a::sse;
use http::{HeaderName, HeaderValue, header};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often an idle stream gets a comment line, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Default)]
struct Counts {
    by_ip: HashMap<IpAddr, u32>,
    by_user: HashMap<String, u32>,
}

/// The open streams of this replica, by client IP and by user.
#[derive(Debug)]
pub struct StreamSlots {
    per_ip: u32,
    per_user: u32,
    counts: Arc<Mutex<Counts>>,
}

/// Which limit a refused stream hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRefusal {
    ClientIp,
    User,
}

/// An open stream's place; given back when dropped.
#[derive(Debug)]
pub struct StreamSlot {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
    user: Option<String>,
}

impl StreamSlots {
    pub fn new(per_ip: u32, per_user: u32) -> Self {
        Self {
            per_ip,
            per_user,
            counts: Arc::default(),
        }
    }

    /// A place for one more stream of `ip` (and `user`, if the caller has an account).
    pub fn acquire(&self, ip: IpAddr, user: Option<String>) -> Result<StreamSlot, SlotRefusal> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.by_ip.get(&ip).copied().unwrap_or(0) >= self.per_ip {
            return Err(SlotRefusal::ClientIp);
        }
        if let Some(user) = &user
            && counts.by_user.get(user).copied().unwrap_or(0) >= self.per_user
        {
            return Err(SlotRefusal::User);
        }
        *counts.by_ip.entry(ip).or_default() += 1;
        if let Some(user) = &user {
            *counts.by_user.entry(user.clone()).or_default() += 1;
        }
        Ok(StreamSlot {
            counts: Arc::clone(&self.counts),
            ip,
            user,
        })
    }
}

impl StreamSlots {
    /// A place for one more stream of this caller from this address, or the `429` to answer.
    pub fn acquire_for(
        &self,
        caller: &hive_core::kernel::caller::Caller,
        ip: Option<ClientIp>,
    ) -> Result<StreamSlot, ApiError> {
        let ip = ip.map_or(IpAddr::from([0, 0, 0, 0]), |ClientIp(ip)| ip);
        let user = caller
            .user_id()
            .map(|_| hive_core::gateway::principal(caller));
        self.acquire(ip, user).map_err(|refusal| {
            let which = match refusal {
                SlotRefusal::ClientIp => "this address",
                SlotRefusal::User => "this user",
            };
            ApiError::new(
                hive_proto::ErrorCode::RateLimited,
                format!("too many open streams for {which}; close one first"),
            )
            .with_retry_after(5)
        })
    }
}

fn give_back<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: &K) {
    if let Some(count) = map.get_mut(key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            map.remove(key);
        }
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        give_back(&mut counts.by_ip, &self.ip);
        if let Some(user) = &self.user {
            give_back(&mut counts.by_user, user);
        }
    }
}

/// The body of an event stream: each frame `events` yields, a keep-alive comment when nothing
/// came for a while; it ends when `events` ends, after `idle` without a frame, or on
/// `shutdown`. `slot` is held until then.
pub fn event_stream_body(
    mut events: mpsc::Receiver<Bytes>,
    idle: Duration,
    shutdown: CancellationToken,
    slot: StreamSlot,
) -> Body {
    let (sender, receiver) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(16);
    tokio::spawn(async move {
        let _slot = slot;
        let mut quiet = Duration::ZERO;
        loop {
            let wait = KEEP_ALIVE.min(idle.saturating_sub(quiet));
            let frame = tokio::select! {
                () = shutdown.cancelled() => break,
                () = sender.closed() => break,
                next = tokio::time::timeout(wait, events.recv()) => next,
            };
            let bytes = match frame {
                Ok(Some(bytes)) => {
                    quiet = Duration::ZERO;
                    bytes
                }
                Ok(None) => break,
                Err(_) => {
                    quiet += wait;
                    if quiet >= idle {
                        break;
                    }
                    Bytes::from_static(b": keep-alive\n\n")
                }
            };
            if sender.send(Ok(bytes)).await.is_err() {
                break;
            }
        }
    });
    Body::from_stream(futures_util::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) },
    ))
}

/// The headers of every event stream: its type, not to be cached, and not to be buffered by a
/// proxy in front (nginx would otherwise hold each event until more arrive).
pub fn event_stream_headers() -> [(HeaderName, HeaderValue); 3] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(sse::CONTENT_TYPE),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(sse::CACHE_CONTROL),
        ),
        (
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        ),
    ]
}

/// A `200` event-stream response of `frames` (see [`event_stream_body`]).
pub fn event_stream_response(
    frames: mpsc::Receiver<Bytes>,
    idle: Duration,
    shutdown: CancellationToken,
    slot: StreamSlot,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = event_stream_body(frames, idle, shutdown, slot);
    (event_stream_headers(), body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_ip_and_per_user_and_given_back() {
        let slots = StreamSlots::new(2, 1);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let alice = Some("user:a".to_owned());
        let first = slots.acquire(ip, alice.clone()).unwrap();
        assert_eq!(
            slots.acquire(other, alice.clone()).unwrap_err(),
            SlotRefusal::User
        );
        let second = slots.acquire(ip, None).unwrap();
        assert_eq!(slots.acquire(ip, None).unwrap_err(), SlotRefusal::ClientIp);
        drop(first);
        let _third = slots.acquire(other, alice).unwrap();
        drop(second);
        assert!(slots.acquire(ip, None).is_ok());
    }
}
