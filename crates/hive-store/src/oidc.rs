//! Single sign-on links: which Hive account a subject of an OpenID Connect provider signs in
//! as. One link per (provider, subject) and per (provider, account).

use crate::{AuditAppend, NewUser, StoreError, UserRow};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

/// The most characters of a provider id and of a subject (OIDC Core: `sub` ≤ 255 ASCII).
pub const OIDC_PROVIDER_MAX_CHARS: usize = 32;
pub const OIDC_SUBJECT_MAX_CHARS: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcLinkRow {
    /// The provider's id (`OIDC_PROVIDERS`).
    pub provider: String,
    /// The ID token's `sub`: stable and unique at the provider.
    pub subject: String,
    pub user_id: Uuid,
    /// The email the provider gave when the link was made (for admins; never used to sign in).
    pub email: Option<String>,
    pub created_at: OffsetDateTime,
}

#[async_trait]
pub trait OidcLinkRepo: Send + Sync {
    async fn find(&self, provider: &str, subject: &str) -> Result<Option<OidcLinkRow>, StoreError>;

    /// The user's links, oldest first.
    async fn list_for_user(&self, user_id: Uuid) -> Result<Vec<OidcLinkRow>, StoreError>;

    /// Links an existing account. [`StoreError::Conflict`] when the subject is linked already
    /// or the account has a link at this provider; [`StoreError::NotFound`] without the account.
    async fn link(&self, link: &OidcLinkRow, audit: AuditAppend<'_>) -> Result<(), StoreError>;

    /// Creates an account and its link in one transaction. [`StoreError::Conflict`] when the
    /// email is taken or the subject is linked already (nothing is created then).
    async fn create_linked_user(
        &self,
        user: &NewUser,
        link: &OidcLinkRow,
        audit: AuditAppend<'_>,
    ) -> Result<UserRow, StoreError>;

    /// Removes the account's link at `provider`; `Ok(false)` when it had none.
    async fn unlink(
        &self,
        provider: &str,
        user_id: Uuid,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError>;
}
