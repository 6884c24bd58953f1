//! Who a run acts as, checked again before every step: the principal's account as it is now
//! (active, its current role) and, for a run that came with an API token, that token (live, its
//! role and scopes). A run whose principal lost its access stops at its next step.

use crate::kernel::caller::{Caller, Credential};
use hive_proto::{Role, TokenScope};
use hive_store::{RunRow, RunTrigger, Store, StoreError};
use std::sync::Arc;
use time::OffsetDateTime;

/// The role a principal needs to keep running its workflows (and to start one by hand, on a
/// schedule or through a webhook): workflows are an operator's tool.
pub const RUN_ROLE: Role = Role::Operator;

/// Why a run's principal may no longer act. Shown in the step's error and audited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LostAccess {
    #[error("the run's user no longer exists")]
    UserGone,
    #[error("the run's user is deactivated")]
    UserInactive,
    #[error("the run's API token was revoked")]
    TokenRevoked,
    #[error("the run's API token expired")]
    TokenExpired,
    #[error("the run's API token is gone")]
    TokenGone,
    #[error("the run's API token lacks the execute scope")]
    ScopeMissing,
    #[error("the run's principal now has the role {now}, below the {needed} it needs")]
    RoleBelow { now: Role, needed: Role },
}

impl LostAccess {
    /// The audit record's reason.
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::UserGone => "user_gone",
            Self::UserInactive => "user_inactive",
            Self::TokenRevoked => "token_revoked",
            Self::TokenExpired => "token_expired",
            Self::TokenGone => "token_gone",
            Self::ScopeMissing => "scope_missing",
            Self::RoleBelow { .. } => "role_below_minimum",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PrincipalError {
    #[error(transparent)]
    Lost(#[from] LostAccess),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Rebuilds runs' callers from the database.
#[derive(Debug, Clone)]
pub struct Principals {
    store: Arc<dyn Store>,
    /// The role an A2A caller needs (`A2A_JSONRPC_MIN_ROLE`): a run started over A2A needs it
    /// still, not the operator's role.
    a2a_min_role: Role,
}

impl Principals {
    pub fn new(store: Arc<dyn Store>, a2a_min_role: Role) -> Self {
        Self {
            store,
            a2a_min_role,
        }
    }

    /// The role a run of this trigger needs its principal to keep.
    pub fn needed_role(&self, trigger: RunTrigger) -> Role {
        match trigger {
            RunTrigger::A2a => self.a2a_min_role,
            _ => RUN_ROLE,
        }
    }

    /// The caller the run acts as at `now`, or why it may not act any more.
    pub async fn caller(
        &self,
        run: &RunRow,
        now: OffsetDateTime,
    ) -> Result<Caller, PrincipalError> {
        let user = self
            .store
            .users()
            .get(run.principal_user)
            .await?
            .ok_or(LostAccess::UserGone)?;
        if !user.active {
            return Err(LostAccess::UserInactive.into());
        }
        let (role, credential) = match run.principal_token {
            None => (user.role, Credential::Workflow { run_id: run.id }),
            Some(token_id) => {
                let token = self
                    .store
                    .api_tokens()
                    .get(token_id)
                    .await?
                    .filter(|token| token.user_id == user.id)
                    .ok_or(LostAccess::TokenGone)?;
                if token.revoked_at.is_some() {
                    return Err(LostAccess::TokenRevoked.into());
                }
                if now >= token.expires_at {
                    return Err(LostAccess::TokenExpired.into());
                }
                if !token.scopes.is_empty() && !token.scopes.contains(&TokenScope::Execute) {
                    return Err(LostAccess::ScopeMissing.into());
                }
                (
                    token.role.min(user.role),
                    Credential::ApiToken {
                        token_id,
                        scopes: token.scopes,
                    },
                )
            }
        };
        let needed = self.needed_role(run.trigger);
        if role < needed {
            return Err(LostAccess::RoleBelow { now: role, needed }.into());
        }
        Ok(Caller {
            user: Some(user),
            role,
            credential,
        })
    }
}
