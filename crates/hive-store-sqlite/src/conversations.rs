use crate::dialect::SqliteDialect;
use hive_store::sqlx_support::conversations::ConversationSql;
use hive_store::{conversation_columns, conversation_message_columns};
use uuid::Uuid;

impl ConversationSql for SqliteDialect {
    const INSERT: &'static str = concat!(
        "INSERT INTO conversations (",
        conversation_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    );
    const INSERT_MESSAGE: &'static str = concat!(
        "INSERT INTO conversation_messages (",
        conversation_message_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    );
    const CLAIM_TURN: &'static str = concat!(
        "UPDATE conversations SET turn_started_at = ?1, updated_at = ?1 \
         WHERE id = ?2 AND owner = ?3 \
         AND (turn_started_at IS NULL OR turn_started_at < ?4) RETURNING ",
        conversation_columns!()
    );
    const EXISTS: &'static str =
        "SELECT EXISTS (SELECT 1 FROM conversations WHERE id = ?1 AND owner = ?2) AS found";
    const FINISH_TURN: &'static str = "UPDATE conversations \
         SET open_task_id = ?1, turn_started_at = NULL, updated_at = ?2 WHERE id = ?3";
    const GET: &'static str = concat!(
        "SELECT ",
        conversation_columns!(),
        " FROM conversations WHERE id = ?1 AND owner = ?2"
    );

    fn list(agent: Option<Uuid>) -> &'static str {
        // Two shapes rather than `?2 IS NULL OR …`, so each can use its own index.
        macro_rules! list {
            ($agent:literal) => {
                concat!(
                    "SELECT ",
                    conversation_columns!(),
                    " FROM conversations WHERE owner = ?1 AND ",
                    $agent,
                    " AND (?3 IS NULL OR (updated_at, id) < (?3, ?4)) \
                     ORDER BY updated_at DESC, id DESC LIMIT ?5"
                )
            };
        }
        match agent {
            Some(_) => list!("agent_id = ?2"),
            None => list!("?2 IS NULL"),
        }
    }

    const MESSAGES: &'static str = concat!(
        "SELECT ",
        conversation_message_columns!(),
        " FROM conversation_messages WHERE conversation_id = ?1 \
         AND (?2 IS NULL OR (created_at, id) < (?2, ?3)) \
         ORDER BY created_at DESC, id DESC LIMIT ?4"
    );
    const DELETE: &'static str = "DELETE FROM conversations WHERE id = ?1 AND owner = ?2";
    const PRUNE: &'static str = "DELETE FROM conversations WHERE updated_at < ?";
}
