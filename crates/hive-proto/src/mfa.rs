//! Second factors on the wire: TOTP enrollment, verification and recovery codes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /api/v1/auth/mfa`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MfaStatusView {
    /// `none`, `pending` (enrollment not confirmed yet) or `enabled`.
    pub totp: String,
    /// Registered passkeys.
    pub passkeys: u32,
    pub recovery_codes_left: u32,
    /// Whether `HIVE_MFA_REQUIRED` covers the user's role.
    pub required: bool,
    /// `verified`, `second_factor_required` or `enrollment_required`.
    pub session_stage: String,
}

/// A TOTP code (six digits) or a recovery code.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MfaCodeRequest {
    pub code: String,
}

/// `POST /api/v1/auth/mfa/totp`: `code` is needed only to re-enroll over an enabled TOTP.
#[derive(Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TotpStartRequest {
    #[serde(default)]
    pub code: Option<String>,
}

/// A started enrollment, shown once: add it to an authenticator, then confirm a code.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TotpEnrollmentView {
    /// The seed in base32, for typing in by hand.
    pub secret: String,
    pub otpauth_uri: String,
    /// The same URI as a QR code (an SVG document).
    pub qr_svg: String,
}

/// New recovery codes, shown once.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryCodesView {
    pub recovery_codes: Vec<String>,
}

crate::debug_redacted!(MfaCodeRequest {
    show: [],
    hide: [code]
});
crate::debug_redacted!(TotpStartRequest {
    show: [],
    hide: [code]
});
crate::debug_redacted!(TotpEnrollmentView {
    show: [],
    hide: [secret, otpauth_uri, qr_svg]
});
crate::debug_redacted!(RecoveryCodesView {
    show: [],
    hide: [recovery_codes]
});
