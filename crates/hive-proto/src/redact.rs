//! `Debug` for types that carry a secret: the secret fields print as `<redacted>`, so a stray
//! `{:?}` in a log line or a panic message cannot leak a password, token or link.

/// Implements `Debug` for a struct, printing the `show` fields and `<redacted>` for the
/// `hide` fields. A field named in neither list is left out.
///
/// ```
/// struct Login { email: String, password: String }
/// hive_proto::debug_redacted!(Login { show: [email], hide: [password] });
/// let text = format!("{:?}", Login { email: "a@example.com".into(), password: "hunter2".into() });
/// assert_eq!(text, r#"Login { email: "a@example.com", password: "<redacted>" }"#);
/// ```
#[macro_export]
macro_rules! debug_redacted {
    ($type:ident { show: [$($shown:ident),* $(,)?], hide: [$($hidden:ident),* $(,)?] $(,)? }) => {
        impl ::std::fmt::Debug for $type {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($type))
                    $(.field(stringify!($shown), &self.$shown))*
                    $(.field(stringify!($hidden), &$crate::redact::Redacted))*
                    .finish()
            }
        }
    };
}

/// Prints as `<redacted>`.
pub struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}
