//! One Redis connection per process, reconnecting by itself, with every call bounded in time so
//! that a Redis outage slows nothing down: calls fail fast and callers degrade.

use crate::StateError;
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
}
