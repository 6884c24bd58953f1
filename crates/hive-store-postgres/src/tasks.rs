use crate::dialect::PgDialect;
use hive_store::sqlx_support::tasks::TaskSql;
use hive_store::task_columns;

impl TaskSql for PgDialect {
    const UPSERT: &'static str = concat!(
        "INSERT INTO a2a_tasks (",
        task_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, agent_id = excluded.agent_id, \
           context_id = excluded.context_id, status_time = excluded.status_time, \
           document = excluded.document, expires_at = excluded.expires_at \
         WHERE (a2a_tasks.owner = excluded.owner AND a2a_tasks.document <> '') \
            OR a2a_tasks.expires_at <= $8"
    );
    const DISCARD: &'static str = concat!(
        "INSERT INTO a2a_tasks (",
        task_columns!(),
        ") VALUES ($1, $2, '-', '-', $3, '', $4) \
         ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, agent_id = excluded.agent_id, \
           context_id = excluded.context_id, status_time = excluded.status_time, \
           document = excluded.document, expires_at = excluded.expires_at \
         WHERE a2a_tasks.owner = excluded.owner OR a2a_tasks.expires_at <= $5"
    );
    const GET: &'static str = concat!(
        "SELECT ",
        task_columns!(),
        " FROM a2a_tasks WHERE id = $1 AND owner = $2 AND expires_at > $3 AND document <> ''"
    );
    const LIST: &'static str = concat!(
        "SELECT ",
        task_columns!(),
        " FROM a2a_tasks WHERE owner = $1 AND expires_at > $2 AND document <> '' \
         AND ($3::timestamptz IS NULL OR (status_time, id) < ($3, $4::uuid)) \
         ORDER BY status_time DESC, id DESC LIMIT $5"
    );
    const PRUNE_EXPIRED: &'static str = "DELETE FROM a2a_tasks WHERE expires_at <= $1";
}
