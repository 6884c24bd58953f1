//! The home page: the agents and their states, and what needs the operator's attention.

use crate::agents::AgentLine;
use crate::page::{Chrome, page_request, refusal, render};
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use hive_proto::agents::AgentStatus;
use hive_server::AppState;
use hive_server::auth::Authenticated;
use http::StatusCode;

/// Agents shown on the home page; the agents page (later) pages through all of them.
const AGENTS_SHOWN: u32 = 50;

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    chrome: Chrome,
    title: &'a str,
    agents: Vec<AgentLine>,
    more_agents: bool,
    attention: Vec<String>,
    agents_error: Option<String>,
}

pub async fn page(State(state): State<AppState>, Authenticated(caller): Authenticated) -> Response {
    let chrome = Chrome::of(&caller);
    let mut page = HomePage {
        title: "Home",
        agents: Vec::new(),
        more_agents: false,
        attention: Vec::new(),
        agents_error: None,
        chrome,
    };
    if page.chrome.operator {
        let listed = match page_request(AGENTS_SHOWN, None) {
            Ok(request) => state
                .hive
                .agents
                .list(&caller, &request)
                .await
                .map_err(|error| refusal(error).1),
            Err((_, message)) => Err(message),
        };
        match listed {
            Ok(listed) => {
                page.more_agents = listed.next_cursor.is_some();
                for agent in listed.items {
                    if agent.status == AgentStatus::Error {
                        page.attention
                            .push(format!("The agent {} is in error.", agent.name));
                    }
                    page.agents.push(crate::agents::line(agent));
                }
            }
            Err(message) => page.agents_error = Some(message),
        }
    }
    render(StatusCode::OK, &page)
}
