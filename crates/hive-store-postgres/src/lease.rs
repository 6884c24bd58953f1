//! Leadership through a session advisory lock on a dedicated connection: the lock lives exactly
//! as long as the connection, so a leader that dies (or loses its network) frees it.

use crate::map_error;
use async_trait::async_trait;
use hive_store::{LeaderLease, StoreError};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

pub(crate) struct AdvisoryLease {
    options: PgConnectOptions,
    key: i64,
    connection: Option<PgConnection>,
    held: bool,
}

impl std::fmt::Debug for AdvisoryLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdvisoryLease")
            .field("key", &self.key)
            .field("held", &self.held)
            .finish()
    }
}

/// A stable 64-bit lock key for a lease name (FNV-1a).
fn lock_key(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"hive:lease:".iter().chain(name.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

impl AdvisoryLease {
    pub fn new(options: PgConnectOptions, name: &str) -> Self {
        Self {
            options,
            key: lock_key(name),
            connection: None,
            held: false,
        }
    }

    async fn step(&mut self) -> Result<bool, StoreError> {
        if self.connection.is_none() {
            self.held = false;
            self.connection = Some(self.options.connect().await.map_err(map_error)?);
        }
        let Some(connection) = self.connection.as_mut() else {
            return Ok(false);
        };
        if self.held {
            // Still leader as long as the session holding the lock is alive.
            sqlx::query("SELECT 1")
                .execute(&mut *connection)
                .await
                .map_err(map_error)?;
            return Ok(true);
        }
        self.held = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(self.key)
            .fetch_one(&mut *connection)
            .await
            .map_err(map_error)?;
        Ok(self.held)
    }
}

#[async_trait]
impl LeaderLease for AdvisoryLease {
    async fn try_acquire(&mut self) -> Result<bool, StoreError> {
        let outcome = self.step().await;
        if outcome.is_err() {
            // Whatever happened to the session, the lock may be gone with it.
            self.connection = None;
            self.held = false;
        }
        outcome
    }

    async fn release(&mut self) -> Result<(), StoreError> {
        self.held = false;
        match self.connection.take() {
            // Closing the session frees every lock it holds.
            Some(connection) => connection.close().await.map_err(map_error),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::lock_key;

    #[test]
    fn lock_keys_are_stable_and_distinct() {
        assert_eq!(lock_key("hive-jobs-leader"), lock_key("hive-jobs-leader"));
        assert_ne!(lock_key("a"), lock_key("b"));
    }
}
