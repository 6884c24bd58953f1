//! Second factors: TOTP enrollment (an `otpauth://` URI and its QR code), per-session
//! verification with replay and lockout checks, recovery codes, and an admin's reset.
//!
//! The rules (SECURITY-RULES.md): a seed is 160 random bits sealed by the vault; the current
//! and the previous 30-second step are accepted, a step once used never again; three wrong
//! codes lock TOTP until the current step ends; ten single-use recovery codes, stored hashed.
//! Enabling, disabling or re-enrolling is an MFA change: it needs a fully verified session (or
//! one the policy sends to enrollment) whose password was checked in the last ten minutes,
//! the removal of a factor also a current code, and it ends the user's other sessions.

use crate::identity::{Identity, IdentityError, require_recent_authentication};
use crate::kernel::audit::{AuditAction, AuditEvent, Principal};
use crate::kernel::caller::{Caller, Credential, RequestMeta, SessionStage};
use crate::vault::secrets::vault_error;
use crate::vault::{Vault, VaultFailure};
pub use hive_crypto::totp::RecoveryCode;
use hive_crypto::totp::{self, TotpSecret};
use hive_crypto::vault::{Context, Sealed};
use hive_proto::SharedClock;
use hive_store::{AuditOutcome, Store, StoreError, TotpRow, UserRow};
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;
use zeroize::Zeroizing;

/// Wrong codes in one step that lock TOTP until the step ends.
pub const TOTP_FAILURES_TO_LOCK: u32 = 3;
/// The name authenticator apps show for Hive's entries.
pub const TOTP_ISSUER: &str = "Hive";
/// Where sealed seeds live (part of what each seal is bound to).
use crate::vault::rotation::TOTP_TABLE;

/// A TOTP enrollment just started: shown once to the user, never stored in the clear.
pub struct TotpEnrollment {
    /// The seed in base32, for typing into an authenticator by hand.
    pub secret: Zeroizing<String>,
    pub otpauth_uri: Zeroizing<String>,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: Zeroizing<String>,
}

hive_proto::debug_redacted!(TotpEnrollment {
    show: [],
    hide: [secret, otpauth_uri, qr_svg]
});

/// Where a user's TOTP stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpState {
    None,
    /// Enrollment started, waiting for its first valid code.
    Pending,
    Enabled,
}

impl TotpState {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Pending => "pending",
            Self::Enabled => "enabled",
        }
    }
}

/// A user's second factors, as they may see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaStatus {
    pub totp: TotpState,
    /// Registered passkeys.
    pub passkeys: u32,
    pub recovery_codes_left: u32,
    /// Whether the user's role is under `HIVE_MFA_REQUIRED`.
    pub required: bool,
    /// The caller's session stage (verified for other credentials).
    pub stage: SessionStage,
}

/// What a code checked against a TOTP credential came to.
enum TotpCheck {
    /// It matched this step, which is not yet consumed.
    Matched(u64),
    Wrong {
        step: u64,
    },
    /// Three wrong codes in this step; no code is looked at until it ends.
    Locked {
        retry_after: u64,
    },
}

/// Second factors. One per process, beside [`Identity`].
#[derive(Debug)]
pub struct Mfa {
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
    identity: Arc<Identity>,
    clock: SharedClock,
}

impl Mfa {
    pub fn new(
        store: Arc<dyn Store>,
        vault: Arc<Vault>,
        identity: Arc<Identity>,
        clock: SharedClock,
    ) -> Self {
        Self {
            store,
            vault,
            identity,
            clock,
        }
    }

    fn now(&self) -> OffsetDateTime {
        hive_store::truncate_to_micros(self.clock.now())
    }

    fn unix_now(&self) -> u64 {
        u64::try_from(self.clock.now().unix_timestamp()).unwrap_or(0)
    }

    /// The caller's own second factors.
    pub async fn status(&self, caller: &Caller) -> Result<MfaStatus, IdentityError> {
        let user = own_user(caller)?;
        let totp = match self.store.mfa().totp(user.id).await? {
            None => TotpState::None,
            Some(row) if row.enabled_at.is_some() => TotpState::Enabled,
            Some(_) => TotpState::Pending,
        };
        let passkeys = self.store.passkeys().list_for_user(user.id).await?.len();
        Ok(MfaStatus {
            totp,
            passkeys: u32::try_from(passkeys).unwrap_or(u32::MAX),
            recovery_codes_left: self.store.mfa().recovery_codes_left(user.id).await?,
            required: self.identity.settings().mfa_policy.requires(user.role),
            stage: caller.stage(),
        })
    }

    /// Starts (or restarts) a TOTP enrollment: a new seed, sealed and stored pending until
    /// [`Mfa::confirm_totp`]. Re-enrolling over an enabled credential needs a current `code`
    /// (TOTP or recovery) and removes the old credential first, ending the other sessions.
    pub async fn start_totp(
        &self,
        caller: &Caller,
        code: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<TotpEnrollment, IdentityError> {
        let user = self.enrolling_user(caller)?;
        if let Some(existing) = self.store.mfa().totp(user.id).await?
            && existing.enabled_at.is_some()
        {
            if caller.stage() != SessionStage::Verified {
                return Err(IdentityError::Forbidden(
                    "re-enrolling needs a fully verified session",
                ));
            }
            let code = code.ok_or(IdentityError::Invalid(
                "TOTP is enabled: give a current code (or a recovery code) to re-enroll".into(),
            ))?;
            self.check_proof(caller, user, code, meta).await?;
            self.remove_totp_of(caller, user, "re-enroll", meta).await?;
        }
        let secret = TotpSecret::generate()?;
        let sealed = self.seal_seed(user.id, &secret).await?;
        let row = TotpRow {
            user_id: user.id,
            seed: sealed.to_text(),
            key_id: sealed.key_id,
            created_at: self.now(),
            enabled_at: None,
            last_used_step: None,
            failed_step: None,
            failures: 0,
        };
        let record = self.identity.auditor().in_transaction(
            entry(
                caller,
                AuditAction::AuthMfaTotpStart,
                user,
                serde_json::json!({}),
            ),
            meta,
        );
        match self.store.mfa().start_totp(&row, record.append()).await {
            Err(StoreError::Conflict(_)) => {
                return Err(IdentityError::Conflict(
                    "TOTP was enabled meanwhile; re-enroll with a current code",
                ));
            }
            other => other?,
        }
        let otpauth_uri = secret
            .otpauth_uri(TOTP_ISSUER, &user.email)
            .map_err(|e| IdentityError::Internal(e.to_string()))?;
        let qr_svg = qr_svg(otpauth_uri.as_str())?;
        Ok(TotpEnrollment {
            secret: secret.to_base32(),
            otpauth_uri,
            qr_svg,
        })
    }

    /// Enables a pending enrollment with its first valid code and returns ten new recovery
    /// codes (shown once). The other sessions of the user end; this one counts as verified.
    pub async fn confirm_totp(
        &self,
        caller: &Caller,
        code: &str,
        meta: &RequestMeta,
    ) -> Result<Vec<RecoveryCode>, IdentityError> {
        let user = self.enrolling_user(caller)?;
        let row = match self.store.mfa().totp(user.id).await? {
            Some(row) if row.enabled_at.is_none() => row,
            Some(_) => return Err(IdentityError::Conflict("TOTP is already enabled")),
            None => {
                return Err(IdentityError::Conflict(
                    "no TOTP enrollment is pending: start one first",
                ));
            }
        };
        let step = self
            .checked_step(
                caller,
                user,
                &row,
                code,
                AuditAction::AuthMfaTotpEnable,
                meta,
            )
            .await?;
        self.end_other_sessions(caller, user, "mfa_change", meta)
            .await?;
        let record = self.identity.auditor().in_transaction(
            entry(
                caller,
                AuditAction::AuthMfaTotpEnable,
                user,
                serde_json::json!({}),
            ),
            meta,
        );
        let enabled = self
            .store
            .mfa()
            .enable_totp(user.id, step, self.now(), record.append())
            .await?;
        if !enabled {
            return Err(IdentityError::Conflict("the enrollment changed meanwhile"));
        }
        let codes = self.replace_recovery_codes(caller, user, meta).await?;
        self.identity
            .complete_second_factor(caller, "totp", meta)
            .await?;
        Ok(codes)
    }

    /// Disables TOTP: a fully verified session, a recent password check and a current code
    /// (TOTP or recovery). The user's other sessions end.
    pub async fn disable_totp(
        &self,
        caller: &Caller,
        code: &str,
        meta: &RequestMeta,
    ) -> Result<(), IdentityError> {
        let user = self.changing_user(caller)?;
        match self.store.mfa().totp(user.id).await? {
            Some(row) if row.enabled_at.is_some() => {}
            _ => return Err(IdentityError::NotFound),
        }
        self.check_proof(caller, user, code, meta).await?;
        self.remove_totp_of(caller, user, "disable", meta).await
    }

    /// Verifies the second factor of the caller's session with a TOTP or a recovery code.
    pub async fn verify(
        &self,
        caller: &Caller,
        code: &str,
        meta: &RequestMeta,
    ) -> Result<(), IdentityError> {
        let user = own_user(caller)?;
        match caller.credential {
            Credential::Session {
                stage: SessionStage::SecondFactorRequired,
                ..
            } => {}
            // A verified session has nothing to verify: no code is spent on it.
            Credential::Session { .. } => {
                return Err(IdentityError::Conflict(
                    "this session has no second factor to verify",
                ));
            }
            _ => {
                return Err(IdentityError::Forbidden(
                    "a second factor is verified in a login session",
                ));
            }
        }
        let factor = self.check_proof(caller, user, code, meta).await?;
        self.identity
            .complete_second_factor(caller, factor, meta)
            .await
    }

    /// New recovery codes replacing the old ones (a verified session, recent password check).
    pub async fn regenerate_recovery_codes(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
    ) -> Result<Vec<RecoveryCode>, IdentityError> {
        let user = self.changing_user(caller)?;
        if !user.second_factor {
            return Err(IdentityError::Conflict(
                "recovery codes belong to a second factor: enable one first",
            ));
        }
        self.replace_recovery_codes(caller, user, meta).await
    }

    /// An admin's (or the CLI's) reset of a user who lost their second factors: TOTP, passkeys
    /// and recovery codes removed and every session of the user ended, so that the next login
    /// enrolls again.
    pub async fn reset(
        &self,
        caller: &Caller,
        user_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<(), IdentityError> {
        if !caller.is_admin() {
            return Err(IdentityError::NotFound);
        }
        if matches!(caller.credential, Credential::Session { .. }) {
            require_recent_authentication(caller, self.now())?;
        }
        let user = self
            .store
            .users()
            .get(user_id)
            .await?
            .ok_or(IdentityError::NotFound)?;
        let record = |action: AuditAction, detail: serde_json::Value| {
            let entry = AuditEvent {
                principal: caller.principal(),
                action,
                target: Some(Principal::User(user.id).to_string()),
                outcome: AuditOutcome::Success,
                detail,
            };
            self.identity.auditor().in_transaction(entry, meta)
        };
        let mfa = self.store.mfa();
        let totp = record(
            AuditAction::UserMfaReset,
            serde_json::json!({ "factor": "totp" }),
        );
        mfa.remove_totp(user.id, totp.append()).await?;
        let passkeys = record(
            AuditAction::UserMfaReset,
            serde_json::json!({ "factor": "passkeys" }),
        );
        self.store
            .passkeys()
            .remove_all(user.id, passkeys.append())
            .await?;
        let codes = record(
            AuditAction::UserMfaReset,
            serde_json::json!({ "factor": "recovery_codes" }),
        );
        mfa.replace_recovery_codes(user.id, &[], self.now(), codes.append())
            .await?;
        let ended = record(
            AuditAction::AuthSessionRevokeAll,
            serde_json::json!({ "reason": "mfa_reset" }),
        );
        self.store
            .sessions()
            .delete_for_user(user.id, None, ended.append())
            .await?;
        Ok(())
    }

    /// The caller's account, when they may enroll: a login session, verified or sent to
    /// enrollment by the policy, whose password was checked in the last ten minutes.
    fn enrolling_user<'a>(&self, caller: &'a Caller) -> Result<&'a UserRow, IdentityError> {
        let user = own_user(caller)?;
        match caller.credential {
            Credential::Session { stage, .. } if stage != SessionStage::SecondFactorRequired => {}
            Credential::Session { .. } => {
                return Err(IdentityError::Forbidden("verify your second factor first"));
            }
            _ => {
                return Err(IdentityError::Forbidden(
                    "second factors are managed in a login session",
                ));
            }
        }
        require_recent_authentication(caller, self.now())?;
        Ok(user)
    }

    /// The caller's account, when they may change their factors: a verified login session
    /// whose password was checked in the last ten minutes.
    fn changing_user<'a>(&self, caller: &'a Caller) -> Result<&'a UserRow, IdentityError> {
        let user = self.enrolling_user(caller)?;
        if caller.stage() == SessionStage::Verified {
            Ok(user)
        } else {
            Err(IdentityError::Forbidden(
                "set up a second factor first (the MFA policy requires one)",
            ))
        }
    }

    /// Checks a proof of the user's second factor: six digits are a TOTP code, anything shaped
    /// like a recovery code is one (and is used up). Returns the factor's name.
    async fn check_proof(
        &self,
        caller: &Caller,
        user: &UserRow,
        code: &str,
        meta: &RequestMeta,
    ) -> Result<&'static str, IdentityError> {
        let code = code.trim();
        if totp::looks_like_recovery_code(code) {
            return self
                .use_recovery_code(caller, user, code, meta)
                .await
                .map(|()| "recovery_code");
        }
        let row = match self.store.mfa().totp(user.id).await? {
            Some(row) if row.enabled_at.is_some() => row,
            _ => {
                self.refused(caller, user, AuditAction::AuthMfaVerify, "no_totp", meta)
                    .await;
                return Err(IdentityError::InvalidCredentials);
            }
        };
        let step = self
            .checked_step(caller, user, &row, code, AuditAction::AuthMfaVerify, meta)
            .await?;
        if self.store.mfa().consume_totp_step(user.id, step).await? {
            Ok("totp")
        } else {
            // The code was right, and already used (or a newer one was): a replay.
            self.refused(caller, user, AuditAction::AuthMfaVerify, "replayed", meta)
                .await;
            Err(IdentityError::InvalidCredentials)
        }
    }

    /// The step `code` matches in `row`'s seed; a wrong code is counted and a lock honoured,
    /// each refusal audited as `action`.
    async fn checked_step(
        &self,
        caller: &Caller,
        user: &UserRow,
        row: &TotpRow,
        code: &str,
        action: AuditAction,
        meta: &RequestMeta,
    ) -> Result<u64, IdentityError> {
        let secret = self.open_seed(row).await?;
        match check_totp(&secret, row, code.trim(), self.unix_now()) {
            TotpCheck::Matched(step) => Ok(step),
            TotpCheck::Locked { retry_after } => {
                self.refused(caller, user, action, "locked", meta).await;
                Err(IdentityError::Locked { retry_after })
            }
            TotpCheck::Wrong { step } => {
                let failures = self.store.mfa().record_totp_failure(user.id, step).await?;
                let reason = if failures >= TOTP_FAILURES_TO_LOCK {
                    "wrong_code_now_locked"
                } else {
                    "wrong_code"
                };
                self.refused(caller, user, action, reason, meta).await;
                Err(IdentityError::InvalidCredentials)
            }
        }
    }

    async fn use_recovery_code(
        &self,
        caller: &Caller,
        user: &UserRow,
        code: &str,
        meta: &RequestMeta,
    ) -> Result<(), IdentityError> {
        let record = self.identity.auditor().in_transaction(
            entry(
                caller,
                AuditAction::AuthMfaRecoveryCodeUse,
                user,
                serde_json::json!({}),
            ),
            meta,
        );
        let used = self
            .store
            .mfa()
            .use_recovery_code(
                user.id,
                &totp::recovery_code_hash(code),
                self.now(),
                record.append(),
            )
            .await?;
        if used {
            Ok(())
        } else {
            self.refused(
                caller,
                user,
                AuditAction::AuthMfaVerify,
                "wrong_recovery_code",
                meta,
            )
            .await;
            Err(IdentityError::InvalidCredentials)
        }
    }

    async fn replace_recovery_codes(
        &self,
        caller: &Caller,
        user: &UserRow,
        meta: &RequestMeta,
    ) -> Result<Vec<RecoveryCode>, IdentityError> {
        let codes = totp::new_recovery_codes()?;
        let hashes: Vec<String> = codes.iter().map(RecoveryCode::hash).collect();
        let record = self.identity.auditor().in_transaction(
            entry(
                caller,
                AuditAction::AuthMfaRecoveryCodes,
                user,
                serde_json::json!({ "count": codes.len() }),
            ),
            meta,
        );
        self.store
            .mfa()
            .replace_recovery_codes(user.id, &hashes, self.now(), record.append())
            .await?;
        Ok(codes)
    }

    /// Removes the user's TOTP after the other sessions ended (an MFA change).
    async fn remove_totp_of(
        &self,
        caller: &Caller,
        user: &UserRow,
        why: &'static str,
        meta: &RequestMeta,
    ) -> Result<(), IdentityError> {
        self.end_other_sessions(caller, user, "mfa_change", meta)
            .await?;
        let record = self.identity.auditor().in_transaction(
            entry(
                caller,
                AuditAction::AuthMfaTotpDisable,
                user,
                serde_json::json!({ "reason": why }),
            ),
            meta,
        );
        self.store
            .mfa()
            .remove_totp(user.id, record.append())
            .await?;
        Ok(())
    }

    /// Ends every session of the user but the caller's. Done before the change it goes with:
    /// should the change then fail, sessions were ended for nothing, which is the safe side.
    async fn end_other_sessions(
        &self,
        caller: &Caller,
        user: &UserRow,
        reason: &'static str,
        meta: &RequestMeta,
    ) -> Result<(), IdentityError> {
        let current = match caller.credential {
            Credential::Session { session_id, .. } => Some(session_id),
            _ => None,
        };
        let record = self.identity.auditor().in_transaction(
            entry(
                caller,
                AuditAction::AuthSessionRevokeAll,
                user,
                serde_json::json!({ "reason": reason, "kept": "current" }),
            ),
            meta,
        );
        self.store
            .sessions()
            .delete_for_user(user.id, current, record.append())
            .await?;
        Ok(())
    }

    async fn refused(
        &self,
        caller: &Caller,
        user: &UserRow,
        action: AuditAction,
        reason: &'static str,
        meta: &RequestMeta,
    ) {
        let mut refusal = entry(
            caller,
            action,
            user,
            serde_json::json!({ "reason": reason }),
        );
        refusal.outcome = AuditOutcome::Failure;
        self.identity.auditor().record_refusal(refusal, meta).await;
    }

    async fn seal_seed(&self, user_id: Uuid, secret: &TotpSecret) -> Result<Sealed, IdentityError> {
        let row_id = user_id.to_string();
        self.vault
            .seal(secret.expose_bytes(), &seed_context(&row_id))
            .await
            .map_err(|error| vault_error(error).into())
    }

    async fn open_seed(&self, row: &TotpRow) -> Result<TotpSecret, IdentityError> {
        let sealed =
            Sealed::from_text(&row.seed).map_err(|e| vault_error(VaultFailure::Crypto(e)))?;
        let row_id = row.user_id.to_string();
        let bytes = self
            .vault
            .unseal(&sealed, &seed_context(&row_id))
            .await
            .map_err(vault_error)?;
        TotpSecret::from_bytes(&bytes).map_err(|e| IdentityError::Internal(e.to_string()))
    }
}

/// What a seed is sealed for: its row (the user's id).
fn seed_context(row_id: &str) -> Context<'_> {
    Context {
        table: TOTP_TABLE,
        row_id,
    }
}

fn own_user(caller: &Caller) -> Result<&UserRow, IdentityError> {
    caller.user.as_ref().ok_or(IdentityError::Forbidden(
        "second factors belong to a user account",
    ))
}

fn entry(
    caller: &Caller,
    action: AuditAction,
    user: &UserRow,
    detail: serde_json::Value,
) -> AuditEvent {
    AuditEvent {
        principal: caller.principal(),
        action,
        target: Some(Principal::User(user.id).to_string()),
        outcome: AuditOutcome::Success,
        detail,
    }
}

/// Checks `code` against the credential at `now_unix`: locked while three wrong codes were
/// counted in the current step, else the matched step (not yet consumed) or wrong.
fn check_totp(secret: &TotpSecret, row: &TotpRow, code: &str, now_unix: u64) -> TotpCheck {
    let step = totp::step_at(now_unix);
    if row.failed_step == Some(step) && row.failures >= TOTP_FAILURES_TO_LOCK {
        return TotpCheck::Locked {
            retry_after: totp::step_end(step).saturating_sub(now_unix).max(1),
        };
    }
    match secret.verify(code, now_unix) {
        Some(matched) => TotpCheck::Matched(matched),
        None => TotpCheck::Wrong { step },
    }
}

/// Modules of white around the code, as the QR specification asks.
const QUIET_ZONE: usize = 4;

/// The QR code of `text` as an SVG document: one square a dark module, on white.
pub fn qr_svg(text: &str) -> Result<Zeroizing<String>, IdentityError> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| IdentityError::Internal(format!("QR code: {e}")))?;
    let width = code.width();
    let size = width + 2 * QUIET_ZONE;
    let mut svg = Zeroizing::new(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" \
         width=\"{px}\" height=\"{px}\" shape-rendering=\"crispEdges\">\
         <rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/><path fill=\"#000\" d=\"",
        px = size * 6
    ));
    for (index, color) in code.to_colors().iter().enumerate() {
        if *color == qrcode::Color::Dark {
            let (x, y) = (index % width + QUIET_ZONE, index / width + QUIET_ZONE);
            svg.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    svg.push_str("\"/></svg>");
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(failed_step: Option<u64>, failures: u32) -> TotpRow {
        TotpRow {
            user_id: Uuid::nil(),
            seed: String::new(),
            key_id: 1,
            created_at: OffsetDateTime::UNIX_EPOCH,
            enabled_at: Some(OffsetDateTime::UNIX_EPOCH),
            last_used_step: None,
            failed_step,
            failures,
        }
    }

    #[test]
    fn three_wrong_codes_lock_until_the_step_ends() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890").unwrap();
        let now = 1_000_000_005; // 15 s into step 33_333_333
        let step = totp::step_at(now);
        let good = secret.code_at(now);
        assert!(matches!(
            check_totp(&secret, &row(Some(step), 2), &good, now),
            TotpCheck::Matched(s) if s == step
        ));
        assert!(matches!(
            check_totp(&secret, &row(Some(step), 3), &good, now),
            TotpCheck::Locked { retry_after: 15 }
        ));
        // The lock is the step's: in the next one the right code is accepted again.
        let next = now + 15;
        assert!(matches!(
            check_totp(&secret, &row(Some(step), 3), &secret.code_at(next), next),
            TotpCheck::Matched(_)
        ));
        let wrong = if good == "000000" { "111111" } else { "000000" };
        assert!(matches!(
            check_totp(&secret, &row(None, 0), wrong, now),
            TotpCheck::Wrong { step: s } if s == step
        ));
    }

    /// Reads the squares back from the SVG and decodes them as a scanner would.
    #[test]
    fn the_qr_code_decodes_to_the_uri() {
        let uri = "otpauth://totp/Hive:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Hive";
        let svg = qr_svg(uri).unwrap();
        let size: usize = svg
            .split("viewBox=\"0 0 ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap()
            .parse()
            .unwrap();
        let path = svg.split(" d=\"").nth(1).unwrap();
        let mut dark = vec![false; size * size];
        for square in path.trim_end_matches("\"/></svg>").split('M').skip(1) {
            let coordinates = square.trim_end_matches("h1v1h-1z");
            let (x, y) = coordinates.split_once(' ').unwrap();
            let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
            dark[y * size + x] = true;
        }
        let scale = 4;
        let mut image =
            rqrr::PreparedImage::prepare_from_greyscale(size * scale, size * scale, |x, y| {
                if dark[(y / scale) * size + x / scale] {
                    0
                } else {
                    255
                }
            });
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1);
        let (_, content) = grids[0].decode().unwrap();
        assert_eq!(content, uri);
    }
}
