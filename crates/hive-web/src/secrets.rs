//! The caller's secrets: names and whether a value is set, never the values; create, replace,
//! delete.

use crate::page::{
    Chrome, Cursor, Refused, page_request, query_value, refusal, see_other, shown, shown_refused,
    when,
};
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::response::Response;
use hive_core::kernel::caller::Caller;
use hive_core::vault::secrets::{NewSecret, SecretChange};
use hive_server::AppState;
use hive_server::auth::{Authenticated, Meta};
use serde::Deserialize;
use uuid::Uuid;
use zeroize::Zeroizing;

/// Secrets on one page of the list.
const PAGE_SIZE: u32 = 50;

struct SecretLine {
    id: String,
    name: String,
    description: String,
    version: i64,
    updated: String,
}

#[derive(Template)]
#[template(path = "secrets.html")]
struct SecretsPage<'a> {
    chrome: Chrome,
    title: &'a str,
    secrets: Vec<SecretLine>,
    next_cursor: Option<String>,
    error: Option<String>,
}

async fn page_of(
    state: &AppState,
    caller: &Caller,
    cursor: Option<&str>,
) -> Result<SecretsPage<'static>, Refused> {
    let request = page_request(PAGE_SIZE, cursor)?;
    let listed = state
        .hive
        .secrets_service
        .list(caller, &request)
        .await
        .map_err(refusal)?;
    Ok(SecretsPage {
        chrome: Chrome::of(caller),
        title: "Secrets",
        secrets: listed
            .items
            .into_iter()
            .map(|secret| SecretLine {
                id: secret.id.to_string(),
                version: secret.version,
                updated: when(secret.updated_at),
                name: secret.name,
                description: secret.description,
            })
            .collect(),
        next_cursor: listed.next_cursor.as_deref().map(query_value),
        error: None,
    })
}

pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<Cursor>,
) -> Response {
    shown(page_of(&state, &caller, query.cursor.as_deref()).await)
}

/// The list again with what went wrong above it.
async fn refused(state: &AppState, caller: &Caller, (status, message): Refused) -> Response {
    shown_refused(page_of(state, caller, None).await, status, |page| {
        page.error = Some(message)
    })
}

#[derive(Deserialize)]
pub struct CreateForm {
    name: String,
    #[serde(default)]
    description: String,
    value: Zeroizing<String>,
}

pub async fn create(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Form(form): Form<CreateForm>,
) -> Response {
    let new = NewSecret {
        name: form.name,
        description: form.description,
        value: form.value,
    };
    match state
        .hive
        .secrets_service
        .create(&caller, &new, &meta)
        .await
    {
        Ok(_) => see_other("/secrets"),
        Err(error) => refused(&state, &caller, refusal(error)).await,
    }
}

#[derive(Deserialize)]
pub struct ValueForm {
    value: Zeroizing<String>,
}

pub async fn replace(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
    Form(form): Form<ValueForm>,
) -> Response {
    let change = SecretChange {
        description: None,
        value: Some(form.value),
    };
    match state
        .hive
        .secrets_service
        .update(&caller, id, &change, &meta)
        .await
    {
        Ok(_) => see_other("/secrets"),
        Err(error) => refused(&state, &caller, refusal(error)).await,
    }
}

pub async fn delete(
    State(state): State<AppState>,
    Meta(meta): Meta,
    Authenticated(caller): Authenticated,
    Path(id): Path<Uuid>,
) -> Response {
    match state.hive.secrets_service.delete(&caller, id, &meta).await {
        Ok(()) => see_other("/secrets"),
        Err(error) => refused(&state, &caller, refusal(error)).await,
    }
}
