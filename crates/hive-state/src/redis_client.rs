//! One Redis connection per process, reconnecting by itself, with every call bounded in time so
//! that a Redis outage slows nothing down: calls fail fast and callers degrade.

use crate::{PingFailure, StateError};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// How long one Redis call may take before it counts as an outage.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct RedisClient {
    client: redis::Client,
    connection: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClient")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisClient {
    /// Prepares a connection to `url` without connecting: Hive starts even while Redis is down,
    /// and the first call connects. Must be called inside a Tokio runtime.
    pub fn new(url: &str, prefix: &str) -> Result<Self, StateError> {
        let client = redis::Client::open(url)
            .map_err(|_| StateError::Unavailable("REDIS_URL is not a valid Redis URL".into()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| StateError::Unavailable(format!("redis: {:?}", e.kind())))?;
        Ok(Self {
            client,
            connection,
            prefix: prefix.trim_end_matches(':').to_owned(),
        })
    }

    /// `<prefix>:<parts joined by ':'>`.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }

    /// A dedicated subscriber connection (pub/sub needs its own), within the call timeout.
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, StateError> {
        match tokio::time::timeout(CALL_TIMEOUT, self.client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => Ok(pubsub),
            Ok(Err(error)) => Err(StateError::Unavailable(format!(
                "redis: {:?}",
                error.kind()
            ))),
            Err(_) => Err(StateError::Unavailable("redis: timed out".into())),
        }
    }

    /// `PING`, within the call timeout (the system health report).
    pub async fn ping(&self) -> Result<(), PingFailure> {
        let mut connection = self.connection.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        match tokio::time::timeout(CALL_TIMEOUT, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) if error.is_timeout() => Err(PingFailure::TimedOut),
            Ok(Err(_)) => Err(PingFailure::Unreachable),
            Err(_) => Err(PingFailure::TimedOut),
        }
    }

    /// `PUBLISH channel payload`; returns how many subscribers got it.
    pub async fn publish(&self, channel: &str, payload: &[u8]) -> Result<i64, StateError> {
        self.run(async |c| {
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async(c)
                .await
        })
        .await
    }

    /// Runs one command or script invocation with the call timeout.
    pub async fn run<T: redis::FromRedisValue>(
        &self,
        call: impl AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>,
    ) -> Result<T, StateError> {
        let mut connection = self.connection.clone();
        match tokio::time::timeout(CALL_TIMEOUT, call(&mut connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(StateError::Unavailable(format!(
                "redis: {:?}",
                error.kind()
            ))),
            Err(_) => Err(StateError::Unavailable("redis: timed out".into())),
        }
    }

    /// `SET key value NX PX ttl`: whether this call created the key (one winner however many
    /// try at once).
    pub async fn set_if_absent(
        &self,
        key: &str,
        value: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StateError> {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Option<String> = self
            .run(async |connection| {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis)
                    .query_async(connection)
                    .await
            })
            .await?;
        Ok(set.is_some())
    }
}

/// What a long-lived subscriber listens to.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    /// For logs: which feature the subscription serves.
    pub what: &'static str,
    pub channels: Vec<String>,
    pub patterns: Vec<String>,
}

impl RedisClient {
    /// Receives messages on `subscription` until `stop`, reconnecting after any failure;
    /// `subscribed` says whether messages are flowing now. A lost subscription and its return
    /// are logged once each, not on every retry.
    pub(crate) async fn subscribe_forever(
        self,
        subscription: Subscription,
        mut deliver: impl FnMut(&str, &[u8]) + Send,
        subscribed: tokio::sync::watch::Sender<bool>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        use futures_util::StreamExt;
        let what = subscription.what;
        let mut failing = false;
        while !stop.is_cancelled() {
            let attempt = async {
                let unavailable = |e: redis::RedisError| {
                    StateError::Unavailable(format!("redis: {:?}", e.kind()))
                };
                let mut pubsub = self.pubsub().await?;
                for channel in &subscription.channels {
                    pubsub.subscribe(channel).await.map_err(unavailable)?;
                }
                for pattern in &subscription.patterns {
                    pubsub.psubscribe(pattern).await.map_err(unavailable)?;
                }
                Ok::<_, StateError>(pubsub)
            };
            match attempt.await {
                Ok(pubsub) => {
                    if failing {
                        tracing::info!(what, "subscription restored");
                    }
                    subscribed.send_replace(true);
                    let mut messages = pubsub.into_on_message();
                    loop {
                        tokio::select! {
                            () = stop.cancelled() => return,
                            message = messages.next() => match message {
                                Some(message) => deliver(message.get_channel_name(), message.get_payload_bytes()),
                                None => break,
                            },
                        }
                    }
                    subscribed.send_replace(false);
                    tracing::error!(what, "subscription lost; reconnecting");
                    failing = true;
                }
                Err(error) => {
                    if !failing {
                        tracing::error!(what, %error, "cannot subscribe; retrying");
                        failing = true;
                    }
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }
}
