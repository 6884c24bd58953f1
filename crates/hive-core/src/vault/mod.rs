//! The vault: the keyring of data keys sealed by `ENCRYPTION_KEY` (opened at start), their
//! rotation and the re-encryption of what older keys sealed, and the secrets users keep in it.
//!
//! Below: kernel only.

mod keyring;
pub mod rotation;
pub mod secrets;

pub use keyring::{KeyStatus, Rotation, Rotator, Vault, VaultFailure, VaultLimits, VaultOpenError};
