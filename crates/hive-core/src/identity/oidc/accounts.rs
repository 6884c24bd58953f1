//! Which Hive account a verified ID token signs in as.
//!
//! 1. The link (provider, subject), made at an earlier sign-in.
//! 2. Else an active account with the token's email, only when the provider says the email is
//!    verified (`email_verified: true`): linked now, audited `auth.oidc.link`.
//! 3. Else, only with `OIDC_AUTO_CREATE=true` and a verified email, a new account with the
//!    provider's mapped role, created with its link and its `user.create` record in one
//!    transaction.
//!
//! A deactivated account is refused whichever way it was found. The role mapping applies when
//! an account is created; afterwards roles are Hive's to manage (a change of groups at the
//! provider never raises anyone's role in Hive by itself).

use super::Refusal;
use crate::identity::{Identity, check_display_name, normalize_email};
use crate::kernel::audit::{AuditAction, AuditEvent, Principal};
use crate::kernel::caller::RequestMeta;
use crate::kernel::config::OidcProvider;
use hive_crypto::jwt::IdClaims;
use hive_proto::Role;
use hive_store::{AuditOutcome, NewUser, OidcLinkRow, Store, StoreError, UserRow};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// The role the provider's claim maps to: the highest of the matching values, else the
/// provider's default role.
pub fn mapped_role(provider: &OidcProvider, claims: &serde_json::Map<String, Value>) -> Role {
    let Some(claim) = &provider.role_claim else {
        return provider.default_role;
    };
    let values: Vec<&str> = match claims.get(claim) {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    provider
        .role_map
        .iter()
        .filter(|(value, _)| values.contains(&value.as_str()))
        .map(|(_, role)| *role)
        .max()
        .unwrap_or(provider.default_role)
}

/// What the sign-in comes to before a session is opened.
pub(super) struct Resolver<'a> {
    pub store: &'a dyn Store,
    pub identity: &'a Identity,
    pub provider: &'a OidcProvider,
    pub auto_create: bool,
    pub meta: &'a RequestMeta,
    pub now: OffsetDateTime,
}

impl Resolver<'_> {
    pub(super) async fn account(&self, claims: &IdClaims) -> Result<UserRow, Refusal> {
        let users = self.store.users();
        if let Some(link) = self
            .store
            .oidc_links()
            .find(&self.provider.id, &claims.subject)
            .await
            .map_err(Refusal::store)?
        {
            let user = users
                .get(link.user_id)
                .await
                .map_err(Refusal::store)?
                .ok_or(Refusal::Reason("no_account"))?;
            return active(user);
        }
        let email = claims
            .email
            .as_deref()
            .and_then(|email| normalize_email(email).ok());
        let existing = match &email {
            Some(email) => users.find_by_email(email).await.map_err(Refusal::store)?,
            None => None,
        };
        match (existing, email, claims.email_verified) {
            (Some(user), Some(_), true) => self.link(active(user)?, claims).await,
            // An unverified address proves nothing about who owns the account that has it.
            (Some(_), Some(_), false) => Err(Refusal::Reason("email_not_verified")),
            (_, _, _) if !self.auto_create => Err(Refusal::Reason("no_account")),
            (None, Some(email), true) => self.create(email, claims).await,
            (_, None, _) => Err(Refusal::Reason("no_email")),
            (_, Some(_), false) => Err(Refusal::Reason("email_not_verified")),
        }
    }

    fn link_row(&self, user_id: Uuid, claims: &IdClaims) -> OidcLinkRow {
        OidcLinkRow {
            provider: self.provider.id.clone(),
            subject: claims.subject.clone(),
            user_id,
            email: claims
                .email
                .as_deref()
                .and_then(|email| normalize_email(email).ok()),
            created_at: self.now,
        }
    }

    async fn link(&self, user: UserRow, claims: &IdClaims) -> Result<UserRow, Refusal> {
        let entry = AuditEvent {
            principal: Principal::User(user.id),
            action: AuditAction::AuthOidcLink,
            target: Some(Principal::User(user.id).to_string()),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({
                "provider": self.provider.id,
                "subject": claims.subject,
                "by": "verified_email",
            }),
        };
        let record = self.identity.auditor().in_transaction(entry, self.meta);
        match self
            .store
            .oidc_links()
            .link(&self.link_row(user.id, claims), record.append())
            .await
        {
            Ok(()) => Ok(user),
            // The account is linked to another subject of this provider already.
            Err(StoreError::Conflict(_)) => Err(Refusal::Reason("account_linked_elsewhere")),
            Err(StoreError::NotFound) => Err(Refusal::Reason("no_account")),
            Err(error) => Err(Refusal::store(error)),
        }
    }

    async fn create(&self, email: String, claims: &IdClaims) -> Result<UserRow, Refusal> {
        let role = mapped_role(self.provider, &claims.all);
        let display_name = claims
            .name
            .as_deref()
            .and_then(|name| check_display_name(name).ok())
            .or_else(|| {
                email
                    .split('@')
                    .next()
                    .and_then(|local| check_display_name(local).ok())
            })
            .unwrap_or_else(|| "New user".to_owned());
        let user = NewUser {
            id: Uuid::now_v7(),
            email,
            display_name,
            role,
            password_hash: None,
            created_at: self.now,
        };
        let entry = AuditEvent {
            principal: Principal::User(user.id),
            action: AuditAction::UserCreate,
            target: Some(format!("user:{}", user.id)),
            outcome: AuditOutcome::Success,
            detail: serde_json::json!({
                "via": "oidc",
                "provider": self.provider.id,
                "subject": claims.subject,
                "role": role.as_str(),
            }),
        };
        let record = self.identity.auditor().in_transaction(entry, self.meta);
        match self
            .store
            .oidc_links()
            .create_linked_user(&user, &self.link_row(user.id, claims), record.append())
            .await
        {
            Ok(created) => Ok(created),
            // Another sign-in of the same subject, or a new account with the address, won.
            Err(StoreError::Conflict(_)) => Err(Refusal::Reason("account_conflict")),
            Err(error) => Err(Refusal::store(error)),
        }
    }
}

fn active(user: UserRow) -> Result<UserRow, Refusal> {
    if user.active {
        Ok(user)
    } else {
        Err(Refusal::Reason("deactivated"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;
    use serde_json::json;

    fn provider(role_map: &[(&str, Role)], default_role: Role) -> OidcProvider {
        OidcProvider {
            id: "corp".into(),
            display_name: "Corp".into(),
            issuer: "https://login.example.com".into(),
            issuer_url: url::Url::parse("https://login.example.com").unwrap(),
            client_id: "hive".into(),
            client_secret: SecretString::from("s".to_owned()),
            scopes: vec!["openid".into()],
            role_claim: Some("groups".into()),
            role_map: role_map
                .iter()
                .map(|(v, r)| ((*v).to_owned(), *r))
                .collect(),
            default_role,
        }
    }

    fn claims(value: Value) -> serde_json::Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn the_highest_matching_role_wins_else_the_default() {
        let corp = provider(
            &[("ops", Role::Operator), ("admins", Role::Admin)],
            Role::Viewer,
        );
        let cases = [
            (json!({"groups": ["staff", "ops"]}), Role::Operator),
            (json!({"groups": ["admins", "ops"]}), Role::Admin),
            (json!({"groups": "admins"}), Role::Admin),
            (json!({"groups": ["staff"]}), Role::Viewer),
            (json!({"groups": [1, true]}), Role::Viewer),
            (json!({"groups": {"admins": true}}), Role::Viewer),
            (json!({"other": "admins"}), Role::Viewer),
            (json!({"groups": ["Admins"]}), Role::Viewer),
        ];
        for (given, role) in cases {
            assert_eq!(mapped_role(&corp, &claims(given.clone())), role, "{given}");
        }
        let no_claim = OidcProvider {
            role_claim: None,
            ..provider(&[], Role::Operator)
        };
        assert_eq!(
            mapped_role(&no_claim, &claims(json!({"groups": "admins"}))),
            Role::Operator
        );
    }
}
