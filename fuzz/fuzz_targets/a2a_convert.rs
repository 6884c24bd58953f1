//! The A2A 0.3 ↔ 1.0 conversions (`hive_a2a::convert`): any JSON is read as each version's
//! objects, and what parses is converted both ways. The agent card also goes through
//! `client::parse_agent_card`, which reads a card of either version from a remote agent.
//!
//! Properties, as `convert`'s documentation promises them:
//! - 0.3 → 1.0 → 0.3 gives back the same message, task, artifact, `message/send` result and
//!   stream event (`final` of a status update aside: it comes back as terminal-or-interrupted);
//! - for the objects with documented losses (send params, push configs, method params; the
//!   card aside, see below), one conversion drops what the other version cannot hold and the
//!   result is then stable: converting it there and back again changes nothing. The same holds
//!   from 1.0.

#![no_main]

use hive_a2a::jsonrpc::{self, Limits};
use hive_a2a::{client, v1, v03};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt::Debug;

/// Parsed as 0.3 `Old`, the value survives 0.3 → 1.0 → 0.3 exactly.
fn exact_from_v03<Old, New>(value: &Value)
where
    Old: DeserializeOwned + Clone + PartialEq + Debug + From<New>,
    New: From<Old>,
{
    if let Ok(old) = serde_json::from_value::<Old>(value.clone()) {
        let back = Old::from(New::from(old.clone()));
        assert_eq!(back, old);
    }
}

/// Parsed as `From`, converted to `To` once; that value then survives To → From → To exactly.
fn stable<From, To>(value: &Value)
where
    From: DeserializeOwned + std::convert::From<To>,
    To: Clone + PartialEq + Debug + std::convert::From<From>,
{
    if let Ok(parsed) = serde_json::from_value::<From>(value.clone()) {
        let once = To::from(parsed);
        let twice = To::from(From::from(once.clone()));
        assert_eq!(twice, once);
    }
}

/// Both directions of a pair with losses.
fn stable_both<Old, New>(value: &Value)
where
    Old: DeserializeOwned + Clone + PartialEq + Debug + From<New>,
    New: DeserializeOwned + Clone + PartialEq + Debug + From<Old>,
{
    stable::<Old, New>(value);
    stable::<New, Old>(value);
}

/// `final` is not kept by 1.0: it comes back as terminal-or-interrupted.
fn without_final(event: v03::StreamEvent) -> v03::StreamEvent {
    match event {
        v03::StreamEvent::StatusUpdate(update) => {
            v03::StreamEvent::StatusUpdate(v03::TaskStatusUpdateEvent {
                is_final: false,
                ..update
            })
        }
        other => other,
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = client::parse_agent_card(data, &Limits::default());
    // The gateway and the client refuse deeper bodies before reading them.
    if jsonrpc::check_depth(data, Limits::default().max_depth).is_none() {
        return;
    }
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };

    exact_from_v03::<v03::Message, v1::Message>(&value);
    exact_from_v03::<v03::Task, v1::Task>(&value);
    exact_from_v03::<v03::Artifact, v1::Artifact>(&value);
    exact_from_v03::<v03::SendMessageResult, v1::SendMessageResponse>(&value);
    if let Ok(event) = serde_json::from_value::<v03::StreamEvent>(value.clone()) {
        let back = v03::StreamEvent::from(v1::StreamResponse::from(event.clone()));
        assert_eq!(without_final(back), without_final(event));
    }

    stable_both::<v03::Message, v1::Message>(&value);
    stable_both::<v03::Task, v1::Task>(&value);
    stable_both::<v03::StreamEvent, v1::StreamResponse>(&value);
    stable_both::<v03::SendMessageResult, v1::SendMessageResponse>(&value);
    stable_both::<v03::MessageSendParams, v1::SendMessageRequest>(&value);
    stable_both::<v03::TaskPushNotificationConfig, v1::TaskPushNotificationConfig>(&value);
    stable_both::<v03::TaskQueryParams, v1::GetTaskRequest>(&value);
    stable_both::<v03::TaskIdParams, v1::CancelTaskRequest>(&value);
    stable_both::<v03::TaskPushNotificationConfigParams, v1::TaskPushNotificationConfigRef>(&value);
    // The card converts both ways, without the stability property: an empty
    // `protocolVersion` of a 0.3 card comes back as `0.3.0` only on its second conversion (the
    // first input this target found; docs/testing.md, "What it found").
    if let Ok(card) = serde_json::from_value::<v03::AgentCard>(value.clone()) {
        let _ = v03::AgentCard::from(v1::AgentCard::from(card));
    }
    if let Ok(card) = serde_json::from_value::<v1::AgentCard>(value) {
        let _ = v1::AgentCard::from(v03::AgentCard::from(card));
    }
});
