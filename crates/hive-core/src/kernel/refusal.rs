//! The refusals every domain's service shares — forbidden, not found, a conflict, invalid input,
//! a dependency that cannot answer now, a fault of ours — and [`domain_error!`], which gives a
//! domain its own error type made of them. Each domain keeps its own type (so its signatures say
//! whose error it is and it can grow variants of its own); the shared shape means one mapping of
//! store errors, and one mapping at each edge through [`Refusal`].

/// A refusal, as every domain error made by [`domain_error!`] can be read.
#[derive(Debug)]
pub enum Refusal {
    Forbidden(&'static str),
    NotFound,
    Conflict(&'static str),
    Invalid(String),
    /// The database, the audit log or shared state cannot take the call now; nothing changed.
    Unavailable,
    /// For the logs only; the caller sees "internal error".
    Internal(String),
}

/// Declares a domain's error type: the [`Refusal`] variants, messages safe to show to the
/// caller, built from store errors through [`super::store_fault::StoreFault`] (logged under
/// `$domain`) and from a caller without an account (not found), and convertible to and from
/// [`Refusal`].
macro_rules! domain_error {
    ($(#[$doc:meta])* $name:ident, $domain:literal) => {
        $(#[$doc])*
        #[derive(Debug, thiserror::Error)]
        pub enum $name {
            #[error("{0}")]
            Forbidden(&'static str),
            #[error("not found")]
            NotFound,
            #[error("{0}")]
            Conflict(&'static str),
            #[error("{0}")]
            Invalid(String),
            #[error("temporarily unavailable")]
            Unavailable,
            #[error("internal error")]
            Internal(String),
        }

        impl From<hive_store::StoreError> for $name {
            fn from(error: hive_store::StoreError) -> Self {
                use $crate::kernel::store_fault::StoreFault;
                match StoreFault::of(error, $domain) {
                    StoreFault::Unavailable => Self::Unavailable,
                    StoreFault::NotFound => Self::NotFound,
                    StoreFault::Internal(detail) => Self::Internal(detail),
                }
            }
        }

        /// A caller without an account owns nothing: what it asks for is not found.
        impl From<$crate::kernel::caller::NoAccount> for $name {
            fn from(_: $crate::kernel::caller::NoAccount) -> Self {
                Self::NotFound
            }
        }

        impl From<$name> for $crate::kernel::refusal::Refusal {
            fn from(error: $name) -> Self {
                match error {
                    $name::Forbidden(message) => Self::Forbidden(message),
                    $name::NotFound => Self::NotFound,
                    $name::Conflict(message) => Self::Conflict(message),
                    $name::Invalid(message) => Self::Invalid(message),
                    $name::Unavailable => Self::Unavailable,
                    $name::Internal(detail) => Self::Internal(detail),
                }
            }
        }

        impl From<$crate::kernel::refusal::Refusal> for $name {
            fn from(refusal: $crate::kernel::refusal::Refusal) -> Self {
                use $crate::kernel::refusal::Refusal;
                match refusal {
                    Refusal::Forbidden(message) => Self::Forbidden(message),
                    Refusal::NotFound => Self::NotFound,
                    Refusal::Conflict(message) => Self::Conflict(message),
                    Refusal::Invalid(message) => Self::Invalid(message),
                    Refusal::Unavailable => Self::Unavailable,
                    Refusal::Internal(detail) => Self::Internal(detail),
                }
            }
        }
    };
}

pub(crate) use domain_error;
