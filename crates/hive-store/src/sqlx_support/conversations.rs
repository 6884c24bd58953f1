//! Conversations with agents, on any sqlx dialect: the dialect supplies its SQL.

use super::dialect::{BindValue, Dialect, Pools, keyset_page};
use super::rows;
use super::{commit_if, get};
use crate::{
    AuditAppend, ConversationMessageRow, ConversationRepo, ConversationRow, Cursor, Page,
    PageRequest, StoreError, TurnStart, check_conversation, check_conversation_message,
};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

/// The columns of `conversations`, in the order [`ConversationSql::INSERT`] binds them.
#[macro_export]
macro_rules! conversation_columns {
    () => {
        "id, owner, user_id, agent_id, title, open_task_id, turn_started_at, created_at, \
         updated_at"
    };
}

/// The columns of `conversation_messages`, in the order
/// [`ConversationSql::INSERT_MESSAGE`] binds them.
#[macro_export]
macro_rules! conversation_message_columns {
    () => {
        "id, conversation_id, author, text, truncated, task_id, state, created_at"
    };
}

/// The statements of [`SqlConversations`] in one dialect; the parameters of each are listed
/// in the order they are bound.
pub trait ConversationSql: Dialect {
    /// The columns of [`conversation_columns!`].
    const INSERT: &'static str;
    /// The columns of [`conversation_message_columns!`].
    const INSERT_MESSAGE: &'static str;
    /// Claims the turn: now, id, owner, stale before; returns the conversation's columns.
    const CLAIM_TURN: &'static str;
    /// Whether the conversation exists (as `found`): id, owner.
    const EXISTS: &'static str;
    /// open task id, now, id.
    const FINISH_TURN: &'static str;
    /// id, owner.
    const GET: &'static str;
    /// owner, agent id, cursor time, cursor id, limit; the agent condition of `agent` (bound
    /// either way, so the statement keeps its shape and index).
    fn list(agent: Option<Uuid>) -> &'static str;
    /// conversation id, cursor time, cursor id, limit.
    const MESSAGES: &'static str;
    /// id, owner.
    const DELETE: &'static str;
    /// updated before.
    const PRUNE: &'static str;
}

pub struct SqlConversations<D: Dialect> {
    pub pools: Pools<D::Db>,
}

/// A message must name the conversation it is written to.
fn check_belongs(
    message: &ConversationMessageRow,
    conversation_id: Uuid,
) -> Result<(), StoreError> {
    if message.conversation_id != conversation_id {
        return Err(StoreError::Invalid(
            "a conversation message must name its conversation".into(),
        ));
    }
    Ok(())
}

async fn insert_message<D: ConversationSql>(
    connection: &mut super::DialectConnection<D>,
    message: &ConversationMessageRow,
) -> Result<(), StoreError> {
    sqlx::query(D::INSERT_MESSAGE)
        .bind_value(D::id(message.id))
        .bind_value(D::id(message.conversation_id))
        .bind_value(message.author.as_str())
        .bind_value(message.text.as_str())
        .bind_value(message.truncated)
        .bind_value(message.task_id.map(D::id))
        .bind_value(message.state.as_str())
        .bind_value(D::time(message.created_at))
        .execute(D::on(connection))
        .await
        .map_err(D::map_error)?;
    Ok(())
}

#[async_trait]
impl<D: ConversationSql> ConversationRepo for SqlConversations<D> {
    async fn create(
        &self,
        conversation: &ConversationRow,
        first: &ConversationMessageRow,
    ) -> Result<(), StoreError> {
        check_conversation(conversation)?;
        check_conversation_message(first)?;
        check_belongs(first, conversation.id)?;
        let mut tx = D::begin(&self.pools).await?;
        sqlx::query(D::INSERT)
            .bind_value(D::id(conversation.id))
            .bind_value(conversation.owner.as_str())
            .bind_value(conversation.user_id.map(D::id))
            .bind_value(D::id(conversation.agent_id))
            .bind_value(conversation.title.as_str())
            .bind_value(conversation.open_task_id.map(D::id))
            .bind_value(conversation.turn_started_at.map(D::time))
            .bind_value(D::time(conversation.created_at))
            .bind_value(D::time(conversation.updated_at))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        insert_message::<D>(&mut tx, first).await?;
        tx.commit().await.map_err(D::map_error)
    }

    async fn begin_turn(
        &self,
        owner: &str,
        message: &ConversationMessageRow,
        stale_before: OffsetDateTime,
    ) -> Result<TurnStart, StoreError> {
        check_conversation_message(message)?;
        // SQLite: IMMEDIATE on the single writer makes the claim and the message one step.
        // PostgreSQL: one conditional UPDATE; a concurrent claimer waits on the row lock, then
        // finds the claim taken (READ COMMITTED re-checks the condition on the new row).
        let mut tx = D::begin(&self.pools).await?;
        let claimed = sqlx::query(D::CLAIM_TURN)
            .bind_value(D::time(message.created_at))
            .bind_value(D::id(message.conversation_id))
            .bind_value(owner)
            .bind_value(D::time(stale_before))
            .fetch_optional(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let Some(claimed) = claimed else {
            let found = sqlx::query(D::EXISTS)
                .bind_value(D::id(message.conversation_id))
                .bind_value(owner)
                .fetch_one(D::on(&mut tx))
                .await
                .map_err(D::map_error)?;
            let exists: bool = get::<D, _>(&found, "found")?;
            return Ok(if exists {
                TurnStart::Busy
            } else {
                TurnStart::NotFound
            });
        };
        let conversation = rows::conversation::<D>(&claimed)?;
        insert_message::<D>(&mut tx, message).await?;
        tx.commit().await.map_err(D::map_error)?;
        Ok(TurnStart::Started(conversation))
    }

    async fn finish_turn(
        &self,
        conversation_id: Uuid,
        reply: Option<&ConversationMessageRow>,
        open_task_id: Option<Uuid>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        if let Some(reply) = reply {
            check_conversation_message(reply)?;
            check_belongs(reply, conversation_id)?;
        }
        let mut tx = D::begin(&self.pools).await?;
        let updated = sqlx::query(D::FINISH_TURN)
            .bind_value(open_task_id.map(D::id))
            .bind_value(D::time(now))
            .bind_value(D::id(conversation_id))
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        if D::rows_affected(&updated) != 1 {
            return Ok(false);
        }
        if let Some(reply) = reply {
            insert_message::<D>(&mut tx, reply).await?;
        }
        tx.commit().await.map_err(D::map_error)?;
        Ok(true)
    }

    async fn get(&self, owner: &str, id: Uuid) -> Result<Option<ConversationRow>, StoreError> {
        let mut reader = self.pools.reader.acquire().await.map_err(D::map_error)?;
        let row = sqlx::query(D::GET)
            .bind_value(D::id(id))
            .bind_value(owner)
            .fetch_optional(D::on(&mut reader))
            .await
            .map_err(D::map_error)?;
        row.as_ref().map(rows::conversation::<D>).transpose()
    }

    async fn list(
        &self,
        owner: &str,
        agent_id: Option<Uuid>,
        page: &PageRequest,
    ) -> Result<Page<ConversationRow>, StoreError> {
        let query = sqlx::query(D::list(agent_id))
            .bind_value(owner)
            .bind_value(agent_id.map(D::id));
        keyset_page::<D, _>(&self.pools, query, page, rows::conversation::<D>, |c| {
            Cursor {
                at: c.updated_at,
                id: c.id,
            }
        })
        .await
    }

    async fn messages(
        &self,
        conversation_id: Uuid,
        page: &PageRequest,
    ) -> Result<Page<ConversationMessageRow>, StoreError> {
        let query = sqlx::query(D::MESSAGES).bind_value(D::id(conversation_id));
        keyset_page::<D, _>(
            &self.pools,
            query,
            page,
            rows::conversation_message::<D>,
            |m| Cursor {
                at: m.created_at,
                id: m.id,
            },
        )
        .await
    }

    async fn delete(
        &self,
        owner: &str,
        id: Uuid,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        // The messages go by the foreign key's cascade.
        let mut tx = D::begin(&self.pools).await?;
        let done = sqlx::query(D::DELETE)
            .bind_value(D::id(id))
            .bind_value(owner)
            .execute(D::on(&mut tx))
            .await
            .map_err(D::map_error)?;
        let deleted = D::rows_affected(&done) == 1;
        commit_if::<D>(tx, deleted, audit).await
    }

    async fn prune_idle_since(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut writer = self.pools.writer.acquire().await.map_err(D::map_error)?;
        sqlx::query(D::PRUNE)
            .bind_value(D::time(before))
            .execute(D::on(&mut writer))
            .await
            .map(|done| D::rows_affected(&done))
            .map_err(D::map_error)
    }
}
