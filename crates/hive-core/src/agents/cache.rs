//! Agent rows as the A2A gateway reads them on every call and every card request: kept for a
//! second at most, and ended on this replica and every other by any change of an agent (the
//! store announces them: `kernel::changes`). Unknown ids and names are kept too (a new agent is
//! a change that ends them).

use crate::kernel::changes::{CACHE_LIFETIME, CacheTopic, Changes, ShortCache};
use hive_proto::SharedClock;
use hive_proto::agents::AgentStatus;
use hive_store::{AgentRow, PageRequest, Store, StoreError};
use std::num::NonZeroUsize;
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;

/// Agents kept by id or name at most.
const CACHED_AGENTS: NonZeroUsize = NonZeroUsize::MIN.saturating_add(4095);

/// Ready agents the list for the instance card holds at most.
pub const MAX_READY_LISTED: usize = 10_000;

/// How an agent is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Id(Uuid),
    Name(String),
}

#[derive(Debug)]
pub struct AgentCache {
    store: Arc<dyn Store>,
    clock: SharedClock,
    rows: ShortCache<Key, Option<AgentRow>>,
    /// The ready agents, newest first (what the instance card is made of).
    ready: ShortCache<(), Arc<Vec<AgentRow>>>,
}

impl AgentCache {
    pub fn new(store: Arc<dyn Store>, clock: SharedClock, changes: Arc<Changes>) -> Self {
        Self {
            store,
            clock,
            rows: ShortCache::new(Arc::clone(&changes), CacheTopic::Agents, CACHED_AGENTS),
            ready: ShortCache::new(changes, CacheTopic::Agents, NonZeroUsize::MIN),
        }
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// The agent with this id, whoever owns it.
    pub async fn get(&self, id: Uuid) -> Result<Option<AgentRow>, StoreError> {
        self.row(Key::Id(id)).await
    }

    /// The agent named `name_or_id` (its name, or its id written out).
    pub async fn find(&self, name_or_id: &str) -> Result<Option<AgentRow>, StoreError> {
        match Uuid::parse_str(name_or_id) {
            Ok(id) => self.get(id).await,
            Err(_) => self.row(Key::Name(name_or_id.to_owned())).await,
        }
    }

    async fn row(&self, key: Key) -> Result<Option<AgentRow>, StoreError> {
        let now = self.now();
        if let Some((row, _)) = self.rows.get(&key, now) {
            return Ok(row);
        }
        let ticket = self.rows.ticket(now);
        let agents = self.store.agents();
        let row = match &key {
            Key::Id(id) => agents.get(*id, None).await?,
            Key::Name(name) => agents.find_by_name(name).await?,
        };
        self.rows
            .put(key, row.clone(), ticket, now + CACHE_LIFETIME);
        Ok(row)
    }

    /// The ready agents, newest first, at most [`MAX_READY_LISTED`].
    pub async fn ready(&self) -> Result<Arc<Vec<AgentRow>>, StoreError> {
        let now = self.now();
        if let Some((ready, _)) = self.ready.get(&(), now) {
            return Ok(ready);
        }
        let ticket = self.ready.ticket(now);
        let mut ready = Vec::new();
        let mut page = PageRequest::first(100)?;
        loop {
            let found = self.store.agents().list(None, &page).await?;
            ready.extend(
                found
                    .items
                    .into_iter()
                    .filter(|agent| agent.status == AgentStatus::Ready),
            );
            match found.next_cursor {
                Some(cursor) if ready.len() < MAX_READY_LISTED => {
                    page = PageRequest::new(100, Some(&cursor))?;
                }
                _ => break,
            }
        }
        ready.truncate(MAX_READY_LISTED);
        let ready = Arc::new(ready);
        self.ready
            .put((), Arc::clone(&ready), ticket, now + CACHE_LIFETIME);
        Ok(ready)
    }
}
