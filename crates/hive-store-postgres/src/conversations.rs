use crate::identity::commit_if;
use crate::map_error;
use async_trait::async_trait;
use hive_store::{
    AuditAppend, ConversationMessageRow, ConversationRepo, ConversationRow, Cursor, MessageAuthor,
    Page, PageRequest, StoreError, TurnStart, check_conversation, check_conversation_message,
    truncate_to_micros as micros,
};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{PgConnection, Row};
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) struct PgConversations {
    pub pool: PgPool,
}

const COLUMNS: &str = "id, owner, user_id, agent_id, title, open_task_id, turn_started_at, \
     created_at, updated_at";

const MESSAGE_COLUMNS: &str = "id, conversation_id, author, text, truncated, task_id, state, \
     created_at";

fn to_conversation(row: &PgRow) -> Result<ConversationRow, StoreError> {
    Ok(ConversationRow {
        id: row.try_get("id").map_err(map_error)?,
        owner: row.try_get("owner").map_err(map_error)?,
        user_id: row.try_get("user_id").map_err(map_error)?,
        agent_id: row.try_get("agent_id").map_err(map_error)?,
        title: row.try_get("title").map_err(map_error)?,
        open_task_id: row.try_get("open_task_id").map_err(map_error)?,
        turn_started_at: row.try_get("turn_started_at").map_err(map_error)?,
        created_at: row.try_get("created_at").map_err(map_error)?,
        updated_at: row.try_get("updated_at").map_err(map_error)?,
    })
}

fn to_message(row: &PgRow) -> Result<ConversationMessageRow, StoreError> {
    let author: String = row.try_get("author").map_err(map_error)?;
    Ok(ConversationMessageRow {
        id: row.try_get("id").map_err(map_error)?,
        conversation_id: row.try_get("conversation_id").map_err(map_error)?,
        author: MessageAuthor::from_stored(&author)?,
        text: row.try_get("text").map_err(map_error)?,
        truncated: row.try_get("truncated").map_err(map_error)?,
        task_id: row.try_get("task_id").map_err(map_error)?,
        state: row.try_get("state").map_err(map_error)?,
        created_at: row.try_get("created_at").map_err(map_error)?,
    })
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

async fn insert_message(
    conn: &mut PgConnection,
    message: &ConversationMessageRow,
) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO conversation_messages ({MESSAGE_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    )))
    .bind(message.id)
    .bind(message.conversation_id)
    .bind(message.author.as_str())
    .bind(&message.text)
    .bind(message.truncated)
    .bind(message.task_id)
    .bind(&message.state)
    .bind(micros(message.created_at))
    .execute(conn)
    .await
    .map_err(map_error)?;
    Ok(())
}

#[async_trait]
impl ConversationRepo for PgConversations {
    async fn create(
        &self,
        conversation: &ConversationRow,
        first: &ConversationMessageRow,
    ) -> Result<(), StoreError> {
        check_conversation(conversation)?;
        check_conversation_message(first)?;
        check_belongs(first, conversation.id)?;
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO conversations ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        )))
        .bind(conversation.id)
        .bind(&conversation.owner)
        .bind(conversation.user_id)
        .bind(conversation.agent_id)
        .bind(&conversation.title)
        .bind(conversation.open_task_id)
        .bind(conversation.turn_started_at.map(micros))
        .bind(micros(conversation.created_at))
        .bind(micros(conversation.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        insert_message(&mut tx, first).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn begin_turn(
        &self,
        owner: &str,
        message: &ConversationMessageRow,
        stale_before: OffsetDateTime,
    ) -> Result<TurnStart, StoreError> {
        check_conversation_message(message)?;
        // One conditional UPDATE: a concurrent claimer waits on the row lock, then finds the
        // claim taken (READ COMMITTED re-checks the condition on the new row).
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let claimed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE conversations SET turn_started_at = $1, updated_at = $1 \
             WHERE id = $2 AND owner = $3 \
             AND (turn_started_at IS NULL OR turn_started_at < $4) RETURNING {COLUMNS}"
        )))
        .bind(micros(message.created_at))
        .bind(message.conversation_id)
        .bind(owner)
        .bind(micros(stale_before))
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        let Some(claimed) = claimed else {
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM conversations WHERE id = $1 AND owner = $2)",
            )
            .bind(message.conversation_id)
            .bind(owner)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_error)?;
            return Ok(if exists {
                TurnStart::Busy
            } else {
                TurnStart::NotFound
            });
        };
        let conversation = to_conversation(&claimed)?;
        insert_message(&mut tx, message).await?;
        tx.commit().await.map_err(map_error)?;
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
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let updated = sqlx::query(
            "UPDATE conversations SET open_task_id = $1, turn_started_at = NULL, updated_at = $2 \
             WHERE id = $3",
        )
        .bind(open_task_id)
        .bind(micros(now))
        .bind(conversation_id)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?
        .rows_affected()
            == 1;
        if !updated {
            return Ok(false);
        }
        if let Some(reply) = reply {
            insert_message(&mut tx, reply).await?;
        }
        tx.commit().await.map_err(map_error)?;
        Ok(true)
    }

    async fn get(&self, owner: &str, id: Uuid) -> Result<Option<ConversationRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM conversations WHERE id = $1 AND owner = $2"
        )))
        .bind(id)
        .bind(owner)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        row.as_ref().map(to_conversation).transpose()
    }

    async fn list(
        &self,
        owner: &str,
        agent_id: Option<Uuid>,
        page: &PageRequest,
    ) -> Result<Page<ConversationRow>, StoreError> {
        // Two shapes rather than `$2 IS NULL OR …`, so each can use its own index.
        let agent = if agent_id.is_some() {
            "agent_id = $2"
        } else {
            "$2::uuid IS NULL"
        };
        let after = page.after();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM conversations WHERE owner = $1 AND {agent} \
             AND ($3::timestamptz IS NULL OR (updated_at, id) < ($3, $4::uuid)) \
             ORDER BY updated_at DESC, id DESC LIMIT $5"
        )))
        .bind(owner)
        .bind(agent_id)
        .bind(after.map(|c| micros(c.at)))
        .bind(after.map(|c| c.id))
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        let items = rows
            .iter()
            .map(to_conversation)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit(), |c| Cursor {
            at: c.updated_at,
            id: c.id,
        }))
    }

    async fn messages(
        &self,
        conversation_id: Uuid,
        page: &PageRequest,
    ) -> Result<Page<ConversationMessageRow>, StoreError> {
        let after = page.after();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM conversation_messages WHERE conversation_id = $1 \
             AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        )))
        .bind(conversation_id)
        .bind(after.map(|c| micros(c.at)))
        .bind(after.map(|c| c.id))
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        let items = rows.iter().map(to_message).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit(), |m| Cursor {
            at: m.created_at,
            id: m.id,
        }))
    }

    async fn delete(
        &self,
        owner: &str,
        id: Uuid,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        // The messages go by the foreign key's cascade.
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let deleted = sqlx::query("DELETE FROM conversations WHERE id = $1 AND owner = $2")
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?
            .rows_affected()
            == 1;
        commit_if(tx, deleted, audit).await
    }

    async fn prune_idle_since(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM conversations WHERE updated_at < $1")
            .bind(micros(before))
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(map_error)
    }
}
