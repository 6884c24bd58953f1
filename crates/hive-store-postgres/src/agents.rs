use crate::dialect::PgDialect;
use hive_store::agent_columns;
use hive_store::sqlx_support::agents::AgentSql;

impl AgentSql for PgDialect {
    const INSERT: &'static str = concat!(
        "INSERT INTO agents (",
        agent_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    );
    const GET: &'static str = concat!(
        "SELECT ",
        agent_columns!(),
        " FROM agents WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)"
    );
    const FIND_BY_NAME: &'static str =
        concat!("SELECT ", agent_columns!(), " FROM agents WHERE name = $1");
    const LIST: &'static str = concat!(
        "SELECT ",
        agent_columns!(),
        " FROM agents WHERE ($1::uuid IS NULL OR owner_id = $1) \
         AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid)) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    const UPDATE: &'static str = "UPDATE agents SET name = $1, description = $2, \
         visibility = $3, runtime = $4, skills = $5, requests_per_minute = $6, \
         tokens_per_day = $7, concurrent_tasks = $8, timeout_seconds = $9, updated_at = $10, \
         version = version + 1 WHERE id = $11 AND version = $12";
    const SET_STATUS: &'static str = "UPDATE agents SET status = $1, status_detail = $2, \
         updated_at = $3 WHERE id = $4 AND ($5::text IS NULL OR status = $5)";
    const DELETE: &'static str =
        "DELETE FROM agents WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)";
}
