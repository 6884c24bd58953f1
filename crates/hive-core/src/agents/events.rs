//! Agents on the event bus: the `agent.status` event the lifecycle announces, and who may see
//! each bus event on the live stream. The event carries the agent's owner and visibility, so
//! the decision reads nothing: a replica serving many subscribers does not read the agent once
//! per event per subscriber.

use crate::agents::registry;
use crate::kernel::caller::Caller;
use hive_proto::agents::AgentStatus;
use hive_state::BusEvent;
use hive_store::AgentRow;

/// The announcement that `agent` moved from its stored status to `status`.
pub(crate) fn status_changed(agent: &AgentRow, status: AgentStatus) -> BusEvent {
    BusEvent::AgentStatus {
        agent_id: agent.id.to_string(),
        status: status.as_str().to_owned(),
        previous: Some(agent.status.as_str().to_owned()),
        owner_id: Some(agent.owner_id),
        visibility: Some(agent.visibility),
    }
}

/// Whether `caller` may see `event`: an agent's status change if it may see the agent (as the
/// agent was when its status changed), system events — WAN envelopes among them — if it is an
/// admin. A status event without the agent's owner and visibility (published by an earlier
/// version during a rolling upgrade) goes to admins only, like any event about an agent that
/// cannot be told.
pub fn may_see(caller: &Caller, event: &BusEvent) -> bool {
    match event {
        BusEvent::AgentStatus {
            owner_id: Some(owner_id),
            visibility: Some(visibility),
            ..
        } => registry::visible(caller, *owner_id, *visibility),
        BusEvent::AgentStatus { .. } | BusEvent::System { .. } | BusEvent::WanEnvelope { .. } => {
            caller.is_admin()
        }
        // Replicas' own housekeeping, on a channel of its own: nobody's to watch.
        BusEvent::CacheInvalidate { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::caller::{Credential, SessionStage};
    use hive_proto::Role;
    use hive_proto::agents::AgentVisibility;
    use hive_store::UserRow;
    use time::OffsetDateTime;
    use uuid::Uuid;

    fn signed_in(id: Uuid, role: Role) -> Caller {
        Caller {
            user: Some(UserRow {
                id,
                email: format!("{id}@example.com"),
                display_name: String::new(),
                role,
                active: true,
                password_hash: None,
                created_at: OffsetDateTime::UNIX_EPOCH,
                updated_at: OffsetDateTime::UNIX_EPOCH,
                throttle: Default::default(),
                second_factor: false,
            }),
            role,
            credential: Credential::Session {
                session_id: Uuid::nil(),
                authenticated_at: OffsetDateTime::UNIX_EPOCH,
                stage: SessionStage::Verified,
            },
        }
    }

    fn status_of(owner_id: Option<Uuid>, visibility: Option<AgentVisibility>) -> BusEvent {
        BusEvent::AgentStatus {
            agent_id: Uuid::nil().to_string(),
            status: "ready".into(),
            previous: None,
            owner_id,
            visibility,
        }
    }

    #[test]
    fn a_status_change_is_seen_by_whoever_may_see_the_agent() {
        let owner = Uuid::now_v7();
        let olga = signed_in(owner, Role::Operator);
        let vic = signed_in(Uuid::now_v7(), Role::Viewer);
        let admin = signed_in(Uuid::now_v7(), Role::Admin);
        let private = status_of(Some(owner), Some(AgentVisibility::Private));
        assert!(may_see(&olga, &private));
        assert!(may_see(&admin, &private));
        assert!(!may_see(&vic, &private), "a private agent is its owner's");
        let shared = status_of(Some(owner), Some(AgentVisibility::Federation));
        assert!(may_see(&vic, &shared));
        let peer = Caller::peer("https://peer.example".into(), "peer".into());
        assert!(may_see(&peer, &shared));
        assert!(!may_see(&peer, &private));
        assert!(!may_see(&Caller::public_tier(None), &shared));
    }

    #[test]
    fn what_cannot_be_told_goes_to_admins_only() {
        let owner = Uuid::now_v7();
        let olga = signed_in(owner, Role::Operator);
        let admin = signed_in(Uuid::now_v7(), Role::Admin);
        // Published by an earlier version: no owner, no visibility.
        let earlier = status_of(None, None);
        assert!(may_see(&admin, &earlier));
        assert!(!may_see(&olga, &earlier));
        let system = BusEvent::System {
            kind: "maintenance".into(),
            message: "soon".into(),
        };
        assert!(may_see(&admin, &system));
        assert!(!may_see(&olga, &system));
    }

    #[test]
    fn the_announcement_carries_the_agents_owner_and_visibility() {
        let owner = Uuid::now_v7();
        let agent = AgentRow {
            id: Uuid::now_v7(),
            owner_id: owner,
            name: "olgas".into(),
            description: String::new(),
            visibility: AgentVisibility::Private,
            kind: hive_proto::agents::AgentKind::Conformance,
            runtime: "{}".into(),
            skills: "[]".into(),
            limits: crate::agents::DEFAULT_LIMITS,
            status: AgentStatus::Starting,
            status_detail: String::new(),
            version: 1,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        };
        let event = status_changed(&agent, AgentStatus::Ready);
        assert_eq!(
            event,
            BusEvent::AgentStatus {
                agent_id: agent.id.to_string(),
                status: "ready".into(),
                previous: Some("starting".into()),
                owner_id: Some(owner),
                visibility: Some(AgentVisibility::Private),
            }
        );
        assert!(event.validate().is_ok());
        assert!(may_see(&signed_in(owner, Role::Viewer), &event));
        assert!(!may_see(&signed_in(Uuid::now_v7(), Role::Operator), &event));
    }
}
