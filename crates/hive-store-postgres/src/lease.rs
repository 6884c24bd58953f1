//! Leadership through a session advisory lock on a dedicated connection: the lock lives exactly
//! as long as the connection, so a leader that dies (or loses its network) frees it.

use crate::{map_error, within_connect_timeout};
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

/// A stable 64-bit lock key for a lease name: FNV-1a over a Hive prefix and the name, read
/// big-endian so every replica, whatever its platform, computes the same key.
fn lock_key(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"hive:lease:".iter().chain(name.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_be_bytes(hash.to_be_bytes())
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
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                self.held = false;
                let fresh = within_connect_timeout(self.options.connect()).await?;
                self.connection.insert(fresh)
            }
        };
        if self.held {
            // Still the leader as long as the session holding the lock is alive.
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
            // The lock lives and dies with its session: with the session in doubt, so is the
            // lock. Drop the connection (closing it frees the lock if it still exists); the
            // next call connects afresh and competes again.
            self.connection = None;
            self.held = false;
        }
        outcome
    }

    async fn release(&mut self) -> Result<(), StoreError> {
        let held = std::mem::replace(&mut self.held, false);
        let Some(mut connection) = self.connection.take() else {
            return Ok(());
        };
        let unlocked = if held {
            sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1)")
                .bind(self.key)
                .fetch_one(&mut connection)
                .await
                .map(|_| ())
                .map_err(map_error)
        } else {
            Ok(())
        };
        // Closing the session frees the lock even if the unlock failed.
        let closed = connection.close().await.map_err(map_error);
        unlocked.and(closed)
    }
}

#[cfg(test)]
mod tests {
    use super::lock_key;

    const KNOWN_JOBS_KEY: i64 = 5_739_244_129_324_905_487;

    #[test]
    fn lock_keys_are_stable_and_distinct() {
        assert_eq!(lock_key("hive-jobs-leader"), lock_key("hive-jobs-leader"));
        assert_ne!(lock_key("a"), lock_key("b"));
        // Pinned: replicas of different versions and platforms must agree on the key.
        assert_eq!(lock_key("jobs"), KNOWN_JOBS_KEY);
    }
}
