//! Who is asking: the [`Caller`] every service method takes (the user, the role in effect and
//! how they proved it) and the [`RequestMeta`] of the request, for the audit trail and the
//! throttles. Identity makes callers; every domain reads them.

use super::config::MfaPolicy;
use crate::kernel::audit::Principal;
use hive_proto::{Role, TokenScope};
use hive_store::UserRow;
use time::OffsetDateTime;
use uuid::Uuid;

/// The caller has no account, so owns nothing: what it asks for is not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not found")]
pub struct NoAccount;

/// Who made the request, as far as the audit trail and the throttles care.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub user_agent: Option<String>,
}

/// How far a session has come. Only a verified session reaches the API; the others may call
/// the few routes that lead to verification (and log out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionStage {
    Verified,
    /// The password was checked; the user's second factor has not been, in this session.
    SecondFactorRequired,
    /// The policy requires a second factor the user does not have: enrollment first.
    EnrollmentRequired,
}

impl SessionStage {
    /// Where a session stands: a user with a second factor must verify it in each session; a
    /// user under the policy without one must enroll; anyone else is verified at login.
    pub fn of(user: &UserRow, session: &hive_store::SessionRow, policy: MfaPolicy) -> Self {
        match (user.second_factor, session.second_factor_at) {
            (true, Some(_)) => Self::Verified,
            (true, None) => Self::SecondFactorRequired,
            (false, _) if policy.requires(user.role) => Self::EnrollmentRequired,
            (false, _) => Self::Verified,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::SecondFactorRequired => "second_factor_required",
            Self::EnrollmentRequired => "enrollment_required",
        }
    }
}

/// How a caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Session {
        session_id: Uuid,
        authenticated_at: OffsetDateTime,
        stage: SessionStage,
    },
    ApiToken {
        token_id: Uuid,
        scopes: Vec<TokenScope>,
    },
    /// `HIVE_INTERNAL_TOKEN`: machine-to-machine calls, acting as an operator.
    Internal,
    /// The `hive` command on the server's own machine.
    Cli,
    /// A federated peer instance, proven by its federation token (or the legacy shared
    /// secret). Exists only for the A2A JSON-RPC call it came with.
    Peer {
        /// The peer's origin (`iss`); `legacy` for the shared-secret header, which names none.
        origin: String,
        /// Who at the peer made the call (`sub`).
        subject: String,
    },
    /// The anonymous public tier, with the name of its API key when it presented one.
    PublicTier { key: Option<String> },
    /// A workflow run acting as its principal user (a run with an API token acts through
    /// [`Credential::ApiToken`]). Rebuilt before each step from the user's current account.
    Workflow { run_id: Uuid },
}

/// An authenticated caller: the user (none for the internal token) and the role in effect.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: Option<UserRow>,
    /// For a token: min(token role, owner's current role).
    pub role: Role,
    pub credential: Credential,
}

impl Caller {
    /// Who the audit log records: the token for a token, the user for a session.
    pub fn principal(&self) -> Principal {
        match (&self.credential, &self.user) {
            (Credential::ApiToken { token_id, .. }, _) => Principal::Token(*token_id),
            (Credential::Internal, _) => Principal::Internal,
            (Credential::Cli, _) => Principal::Cli,
            (Credential::Peer { origin, .. }, _) => Principal::Peer(origin.clone()),
            (Credential::PublicTier { key: Some(key) }, _) => Principal::PublicKey(key.clone()),
            (Credential::PublicTier { key: None }, _) => Principal::Public,
            (Credential::Session { .. } | Credential::Workflow { .. }, Some(user)) => {
                Principal::User(user.id)
            }
            (Credential::Session { .. } | Credential::Workflow { .. }, None) => {
                Principal::Anonymous
            }
        }
    }

    /// Who owns what the caller creates: a user with all their sessions and tokens, else the
    /// credential itself (the internal token, the CLI, a peer).
    pub fn owner(&self) -> Principal {
        self.user_id()
            .map_or_else(|| self.principal(), Principal::User)
    }

    pub fn user_id(&self) -> Option<Uuid> {
        self.user.as_ref().map(|u| u.id)
    }

    /// Whose objects the caller may act on: `None` (anyone's) for an admin, else their own.
    /// A caller without an account owns nothing, so finds nothing.
    pub fn owner_scope(&self) -> Result<Option<Uuid>, NoAccount> {
        if self.is_admin() {
            Ok(None)
        } else {
            self.user_id().map(Some).ok_or(NoAccount)
        }
    }

    /// The stage of a session caller; tokens, the internal token and the CLI are verified.
    pub fn stage(&self) -> SessionStage {
        match self.credential {
            Credential::Session { stage, .. } => stage,
            _ => SessionStage::Verified,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether a token's scopes allow `scope` (sessions and the internal token are unscoped).
    pub fn has_scope(&self, scope: TokenScope) -> bool {
        match &self.credential {
            Credential::ApiToken { scopes, .. } => scopes.is_empty() || scopes.contains(&scope),
            _ => true,
        }
    }

    /// A federated peer or the public tier: callers from outside that reach only the agents
    /// shared with them, never an account's objects.
    pub fn is_remote(&self) -> bool {
        matches!(
            self.credential,
            Credential::Peer { .. } | Credential::PublicTier { .. }
        )
    }

    /// A federated peer, for the A2A call it came with. Its role is the lowest: it owns
    /// nothing and is no admin; what it may reach is decided by [`Credential::Peer`].
    pub fn peer(origin: String, subject: String) -> Self {
        Self {
            user: None,
            role: Role::Viewer,
            credential: Credential::Peer { origin, subject },
        }
    }

    /// An anonymous caller of the public tier (with its API key's name, if any).
    pub fn public_tier(key: Option<String>) -> Self {
        Self {
            user: None,
            role: Role::Viewer,
            credential: Credential::PublicTier { key },
        }
    }

    /// The CLI acting with full rights on the local installation.
    pub fn cli() -> Self {
        Self {
            user: None,
            role: Role::Admin,
            credential: Credential::Cli,
        }
    }
}
