use crate::identity::{begin, commit_if, optional_time_at, optional_uuid_at, text, uuid_at};
use crate::jobs::{from_micros, to_micros};
use crate::map_error;
use async_trait::async_trait;
use hive_store::{
    AuditAppend, ConversationMessageRow, ConversationRepo, ConversationRow, Cursor, MessageAuthor,
    Page, PageRequest, StoreError, TurnStart, check_conversation, check_conversation_message,
};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{Row, SqliteConnection};
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) struct SqliteConversations {
    pub writer: SqlitePool,
    pub reader: SqlitePool,
}

const COLUMNS: &str = "id, owner, user_id, agent_id, title, open_task_id, turn_started_at, \
     created_at, updated_at";

const MESSAGE_COLUMNS: &str = "id, conversation_id, author, text, truncated, task_id, state, \
     created_at";

fn to_conversation(row: &SqliteRow) -> Result<ConversationRow, StoreError> {
    Ok(ConversationRow {
        id: uuid_at(row, "id")?,
        owner: row.try_get("owner").map_err(map_error)?,
        user_id: optional_uuid_at(row, "user_id")?,
        agent_id: uuid_at(row, "agent_id")?,
        title: row.try_get("title").map_err(map_error)?,
        open_task_id: optional_uuid_at(row, "open_task_id")?,
        turn_started_at: optional_time_at(row, "turn_started_at")?,
        created_at: from_micros(row.try_get("created_at").map_err(map_error)?)?,
        updated_at: from_micros(row.try_get("updated_at").map_err(map_error)?)?,
    })
}

fn to_message(row: &SqliteRow) -> Result<ConversationMessageRow, StoreError> {
    let author: String = row.try_get("author").map_err(map_error)?;
    Ok(ConversationMessageRow {
        id: uuid_at(row, "id")?,
        conversation_id: uuid_at(row, "conversation_id")?,
        author: MessageAuthor::from_stored(&author)?,
        text: row.try_get("text").map_err(map_error)?,
        truncated: row.try_get("truncated").map_err(map_error)?,
        task_id: optional_uuid_at(row, "task_id")?,
        state: row.try_get("state").map_err(map_error)?,
        created_at: from_micros(row.try_get("created_at").map_err(map_error)?)?,
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
    conn: &mut SqliteConnection,
    message: &ConversationMessageRow,
) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO conversation_messages ({MESSAGE_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    )))
    .bind(text(message.id))
    .bind(text(message.conversation_id))
    .bind(message.author.as_str())
    .bind(&message.text)
    .bind(message.truncated)
    .bind(message.task_id.map(text))
    .bind(&message.state)
    .bind(to_micros(message.created_at))
    .execute(conn)
    .await
    .map_err(map_error)?;
    Ok(())
}

#[async_trait]
impl ConversationRepo for SqliteConversations {
    async fn create(
        &self,
        conversation: &ConversationRow,
        first: &ConversationMessageRow,
    ) -> Result<(), StoreError> {
        check_conversation(conversation)?;
        check_conversation_message(first)?;
        check_belongs(first, conversation.id)?;
        let mut tx = begin(&self.writer).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO conversations ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        )))
        .bind(text(conversation.id))
        .bind(&conversation.owner)
        .bind(conversation.user_id.map(text))
        .bind(text(conversation.agent_id))
        .bind(&conversation.title)
        .bind(conversation.open_task_id.map(text))
        .bind(conversation.turn_started_at.map(to_micros))
        .bind(to_micros(conversation.created_at))
        .bind(to_micros(conversation.updated_at))
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
        // IMMEDIATE on the single writer: the claim and the message are one step.
        let mut tx = begin(&self.writer).await?;
        let claimed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE conversations SET turn_started_at = ?1, updated_at = ?1 \
             WHERE id = ?2 AND owner = ?3 \
             AND (turn_started_at IS NULL OR turn_started_at < ?4) RETURNING {COLUMNS}"
        )))
        .bind(to_micros(message.created_at))
        .bind(text(message.conversation_id))
        .bind(owner)
        .bind(to_micros(stale_before))
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        let Some(claimed) = claimed else {
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM conversations WHERE id = ?1 AND owner = ?2)",
            )
            .bind(text(message.conversation_id))
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
        let mut tx = begin(&self.writer).await?;
        let updated = sqlx::query(
            "UPDATE conversations SET open_task_id = ?1, turn_started_at = NULL, updated_at = ?2 \
             WHERE id = ?3",
        )
        .bind(open_task_id.map(text))
        .bind(to_micros(now))
        .bind(text(conversation_id))
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
            "SELECT {COLUMNS} FROM conversations WHERE id = ?1 AND owner = ?2"
        )))
        .bind(text(id))
        .bind(owner)
        .fetch_optional(&self.reader)
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
        // Two shapes rather than `?2 IS NULL OR …`, so each can use its own index.
        let agent = if agent_id.is_some() {
            "agent_id = ?2"
        } else {
            "?2 IS NULL"
        };
        let after = page.after();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM conversations WHERE owner = ?1 AND {agent} \
             AND (?3 IS NULL OR (updated_at, id) < (?3, ?4)) \
             ORDER BY updated_at DESC, id DESC LIMIT ?5"
        )))
        .bind(owner)
        .bind(agent_id.map(text))
        .bind(after.map(|c| to_micros(c.at)))
        .bind(after.map(|c| text(c.id)))
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&self.reader)
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
            "SELECT {MESSAGE_COLUMNS} FROM conversation_messages WHERE conversation_id = ?1 \
             AND (?2 IS NULL OR (created_at, id) < (?2, ?3)) \
             ORDER BY created_at DESC, id DESC LIMIT ?4"
        )))
        .bind(text(conversation_id))
        .bind(after.map(|c| to_micros(c.at)))
        .bind(after.map(|c| text(c.id)))
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&self.reader)
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
        let mut tx = begin(&self.writer).await?;
        let deleted = sqlx::query("DELETE FROM conversations WHERE id = ?1 AND owner = ?2")
            .bind(text(id))
            .bind(owner)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?
            .rows_affected()
            == 1;
        commit_if(tx, deleted, audit).await
    }

    async fn prune_idle_since(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM conversations WHERE updated_at < ?")
            .bind(to_micros(before))
            .execute(&self.writer)
            .await
            .map(|done| done.rows_affected())
            .map_err(map_error)
    }
}
