//! The rules a push-notification config must meet before it is stored (owner, id, URL, token,
//! authentication), and how a stored config is shown (without its secrets).

use super::{MAX_CREDENTIALS_BYTES, MAX_TOKEN_BYTES, PushError};
use hive_a2a::v1;
use hive_store::{PUSH_CONFIG_ID_MAX_CHARS, PUSH_CONFIG_URL_MAX_CHARS, PushConfigRow};

pub(super) const MAX_SCHEME_CHARS: usize = 64;

pub(super) const MAX_OWNER_CHARS: usize = 200;

pub(super) fn check_owner(owner: &str) -> Result<(), PushError> {
    if owner.is_empty() || owner.chars().count() > MAX_OWNER_CHARS {
        return Err(PushError::Invalid("the owner is not valid".into()));
    }
    Ok(())
}

pub(super) fn is_config_id(id: &str) -> bool {
    (1..=PUSH_CONFIG_ID_MAX_CHARS).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub(super) fn check_id(id: &str) -> Result<(), PushError> {
    if is_config_id(id) {
        Ok(())
    } else {
        Err(PushError::Invalid(
            "id must be 1 to 64 characters of A-Z a-z 0-9 . _ -".into(),
        ))
    }
}

/// The URL's own rules, before the egress guard's: http(s), no userinfo, a host, ≤ 2048.
pub(super) fn check_url(text: &str) -> Result<url::Url, PushError> {
    let invalid = |why: &str| PushError::Invalid(format!("url {why}"));
    if text.is_empty() {
        return Err(invalid("is required"));
    }
    if text.chars().count() > PUSH_CONFIG_URL_MAX_CHARS {
        return Err(invalid("must be at most 2048 characters"));
    }
    let url = url::Url::parse(text).map_err(|_| invalid("is not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must use http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not carry a user name or password"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("must name a host"));
    }
    Ok(url)
}

/// Printable ASCII (spaces inside only), so it is a valid header value.
pub(super) fn is_header_text(value: &str) -> bool {
    value.bytes().all(|b| (0x20..=0x7e).contains(&b)) && value.trim() == value
}

pub(super) fn check_token(token: &str) -> Result<(), PushError> {
    if token.len() > MAX_TOKEN_BYTES || !is_header_text(token) {
        return Err(PushError::Invalid(
            "token must be at most 1024 printable ASCII characters".into(),
        ));
    }
    Ok(())
}

/// RFC 9110 `token` characters.
pub(super) fn is_scheme(scheme: &str) -> bool {
    (1..=MAX_SCHEME_CHARS).contains(&scheme.len())
        && scheme.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// The authentication as it will be used: `None` when nothing was given.
pub(super) fn check_authentication(
    auth: Option<&v1::AuthenticationInfo>,
) -> Result<Option<v1::AuthenticationInfo>, PushError> {
    let Some(auth) = auth else { return Ok(None) };
    if auth.scheme.is_empty() && auth.credentials.is_empty() {
        return Ok(None);
    }
    if !is_scheme(&auth.scheme) {
        return Err(PushError::Invalid(
            "authentication.scheme must be an HTTP authentication scheme name (1 to 64 characters)"
                .into(),
        ));
    }
    if auth.credentials.len() > MAX_CREDENTIALS_BYTES || !is_header_text(&auth.credentials) {
        return Err(PushError::Invalid(
            "authentication.credentials must be at most 4096 printable ASCII characters".into(),
        ));
    }
    Ok(Some(auth.clone()))
}

/// A config as `get` and `list` show it: without its token or credentials.
pub(super) fn shown(row: &PushConfigRow) -> v1::TaskPushNotificationConfig {
    v1::TaskPushNotificationConfig {
        tenant: String::new(),
        id: row.id.clone(),
        task_id: row.task_id.to_string(),
        url: row.url.clone(),
        token: String::new(),
        authentication: (!row.auth_scheme.is_empty()).then(|| v1::AuthenticationInfo {
            scheme: row.auth_scheme.clone(),
            credentials: String::new(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_for_ids_urls_and_tokens() {
        for good in ["a", "hook-1", "A.b_c-9", &"i".repeat(64)] {
            assert!(is_config_id(good), "{good}");
        }
        for bad in ["", "has space", "a/b", "ü", &"i".repeat(65)] {
            assert!(!is_config_id(bad), "{bad}");
        }
        assert!(check_url("https://hooks.example.com/a?b=c").is_ok());
        let long = format!("https://x.example/{}", "p".repeat(2048));
        for bad in [
            "",
            "ftp://x.example/",
            "https://user:pw@x.example/",
            "https://user@x.example/",
            "/relative",
            "not a url",
            "file:///etc/passwd",
            long.as_str(),
        ] {
            assert!(
                matches!(check_url(bad), Err(PushError::Invalid(_))),
                "{bad}"
            );
        }
        assert!(check_token("").is_ok());
        assert!(check_token("a b").is_ok());
        for bad in [" lead", "line\nbreak", "ü", &"t".repeat(1025)] {
            assert!(check_token(bad).is_err(), "{bad:?}");
        }
        let auth = |scheme: &str, credentials: &str| v1::AuthenticationInfo {
            scheme: scheme.to_owned(),
            credentials: credentials.to_owned(),
        };
        assert_eq!(check_authentication(Some(&auth("", ""))).unwrap(), None);
        assert!(check_authentication(Some(&auth("Bearer", "abc"))).is_ok());
        assert!(check_authentication(Some(&auth("", "abc"))).is_err());
        assert!(check_authentication(Some(&auth("Bad Scheme", "abc"))).is_err());
        assert!(check_authentication(Some(&auth("Bearer", "a\r\nX-Evil: 1"))).is_err());
    }
}
