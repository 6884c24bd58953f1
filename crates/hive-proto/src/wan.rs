//! The WAN envelope (`wan-envelope-v1`): what one Hive instance hands another over the WAN
//! mesh — through `POST /api/v1/mesh/wan/ingress` and, with `NATS_URL`, over NATS JetStream.
//!
//! The fields are kept as they arrived (strings, a JSON value) so that [`WanEnvelope::validate`]
//! can name the rule a bad envelope breaks instead of a parser's generic complaint.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The one schema this version reads and writes.
pub const SCHEMA: &str = "wan-envelope-v1";
/// The longest origin (`source`, `target`).
pub const MAX_ORIGIN_LEN: usize = 255;
/// The longest `kind`.
pub const MAX_KIND_LEN: usize = 128;
/// The largest payload, serialized.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// The deepest nesting of objects and arrays in a payload (the payload object itself is 1).
pub const MAX_PAYLOAD_DEPTH: usize = 16;
/// The longest `issuedAt` (an RFC 3339 time is far shorter).
const MAX_ISSUED_AT_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WanEnvelope {
    /// Exactly [`SCHEMA`].
    pub schema: String,
    /// A UUID, unique per envelope: the key of deduplication everywhere.
    pub id: String,
    /// The origin (`scheme://host[:port]`) of the instance that emitted the envelope.
    pub source: String,
    /// The origin of the instance it is meant for; none: every instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// What the payload is: 1 to 128 characters of `a-z 0-9 . _ -`.
    pub kind: String,
    /// When the source issued it (RFC 3339).
    pub issued_at: String,
    /// A JSON object, at most [`MAX_PAYLOAD_BYTES`] serialized and [`MAX_PAYLOAD_DEPTH`] deep.
    pub payload: Value,
}

impl WanEnvelope {
    /// The first rule the envelope breaks, as a message for the sender.
    pub fn validate(&self) -> Result<(), String> {
        if self.schema != SCHEMA {
            return Err(format!("schema must be \"{SCHEMA}\""));
        }
        if self.uuid().is_none() {
            return Err("id must be a UUID".into());
        }
        check_origin("source", &self.source)?;
        if let Some(target) = &self.target {
            check_origin("target", target)?;
        }
        let kind_ok = !self.kind.is_empty()
            && self.kind.len() <= MAX_KIND_LEN
            && self.kind.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if !kind_ok {
            return Err(format!(
                "kind must be 1-{MAX_KIND_LEN} characters of a-z 0-9 . _ -"
            ));
        }
        if self.issued_at().is_none() {
            return Err("issuedAt must be an RFC 3339 time".into());
        }
        if !self.payload.is_object() {
            return Err("payload must be a JSON object".into());
        }
        if depth(&self.payload) > MAX_PAYLOAD_DEPTH {
            return Err(format!(
                "payload must be nested at most {MAX_PAYLOAD_DEPTH} levels deep"
            ));
        }
        let size = serde_json::to_vec(&self.payload).map_or(usize::MAX, |bytes| bytes.len());
        if size > MAX_PAYLOAD_BYTES {
            return Err(format!(
                "payload must be at most {MAX_PAYLOAD_BYTES} bytes serialized"
            ));
        }
        Ok(())
    }

    /// `id` as a UUID, in its canonical hyphenated form only.
    pub fn uuid(&self) -> Option<uuid::Uuid> {
        let parsed = uuid::Uuid::try_parse(&self.id).ok()?;
        (self.id.len() == 36).then_some(parsed)
    }

    /// `issuedAt` as a time.
    pub fn issued_at(&self) -> Option<time::OffsetDateTime> {
        if self.issued_at.len() > MAX_ISSUED_AT_LEN {
            return None;
        }
        time::OffsetDateTime::parse(
            &self.issued_at,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()
    }
}

/// `scheme://host[:port]` with scheme http or https, a lower-case host name, IPv4 or bracketed
/// IPv6 address, and nothing after the port: the form of a URL's origin.
fn check_origin(field: &str, value: &str) -> Result<(), String> {
    let problem = || {
        Err(format!(
            "{field} must be an origin (scheme://host[:port], http or https, lower case, no \
             path), at most {MAX_ORIGIN_LEN} characters"
        ))
    };
    if value.len() > MAX_ORIGIN_LEN {
        return problem();
    }
    let Some(rest) = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
    else {
        return problem();
    };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let Some((address, after)) = v6.split_once(']') else {
            return problem();
        };
        if address.is_empty()
            || !address
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'a'..=b'f' | b':' | b'.'))
        {
            return problem();
        }
        match after.strip_prefix(':') {
            Some(port) => (None, Some(port)),
            None if after.is_empty() => (None, None),
            None => return problem(),
        }
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(rest), None),
        }
    };
    if let Some(host) = host {
        let labels_ok = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
        if !labels_ok {
            return problem();
        }
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && !port.starts_with('0')
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| (1..=65_535).contains(&p));
        if !valid {
            return problem();
        }
    }
    Ok(())
}

/// Levels of objects and arrays: a scalar is 0, `{}` is 1.
fn depth(value: &Value) -> usize {
    // Iterative, so that no payload can exhaust the stack here.
    let mut deepest = 0;
    let mut pending = vec![(value, 1usize)];
    while let Some((value, level)) = pending.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Object(map) => Box::new(map.values()),
            Value::Array(items) => Box::new(items.iter()),
            _ => continue,
        };
        deepest = deepest.max(level);
        if level > MAX_PAYLOAD_DEPTH {
            break;
        }
        pending.extend(children.map(|child| (child, level + 1)));
    }
    deepest
}

/// What `POST /api/v1/mesh/wan/ingress` answers (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WanIngressAccepted {
    pub id: String,
    pub published: WanPublished,
}

/// Where the envelope went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WanPublished {
    /// On this instance's event bus.
    pub bus: bool,
    /// On NATS JetStream, acknowledged (false: no `NATS_URL`).
    pub nats: bool,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn good() -> WanEnvelope {
        WanEnvelope {
            schema: SCHEMA.into(),
            id: "0190b6d4-6a4e-7cc1-9c4f-2f1f3c8e9a01".into(),
            source: "https://a.example.com".into(),
            target: Some("http://127.0.0.1:8080".into()),
            kind: "agent.card-v1_x".into(),
            issued_at: "2026-12-02T13:45:00Z".into(),
            payload: json!({"hello": "world"}),
        }
    }

    fn refused(change: impl FnOnce(&mut WanEnvelope)) -> String {
        let mut envelope = good();
        change(&mut envelope);
        envelope.validate().unwrap_err()
    }

    #[test]
    fn a_good_envelope_passes_and_round_trips() {
        good().validate().unwrap();
        let text = serde_json::to_string(&good()).unwrap();
        assert!(text.contains("\"issuedAt\""), "{text}");
        let back: WanEnvelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back, good());
        let untargeted = WanEnvelope {
            target: None,
            ..good()
        };
        untargeted.validate().unwrap();
        assert!(
            !serde_json::to_string(&untargeted)
                .unwrap()
                .contains("target")
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut value = serde_json::to_value(good()).unwrap();
        value["extra"] = json!(1);
        assert!(serde_json::from_value::<WanEnvelope>(value).is_err());
    }

    #[test]
    fn schema_must_be_v1() {
        assert!(refused(|e| e.schema = "wan-envelope-v2".into()).starts_with("schema"));
    }

    #[test]
    fn id_must_be_a_uuid() {
        for id in ["", "not-a-uuid", "0190b6d46a4e7cc19c4f2f1f3c8e9a01"] {
            assert_eq!(refused(|e| e.id = id.into()), "id must be a UUID", "{id}");
        }
    }

    #[test]
    fn source_and_target_must_be_origins() {
        for origin in [
            "",
            "a.example.com",
            "ftp://a.example.com",
            "https://a.example.com/",
            "https://a.example.com/path",
            "https://A.example.com",
            "https://a.example.com:0",
            "https://a.example.com:65536",
            "https://user@a.example.com",
            "https://a..example.com",
            "https://[::1",
        ] {
            assert!(
                refused(|e| e.source = origin.into()).starts_with("source must be an origin"),
                "{origin}"
            );
            assert!(
                refused(|e| e.target = Some(origin.into())).starts_with("target must be"),
                "{origin}"
            );
        }
        let long = format!("https://{}.example", "a".repeat(250));
        assert!(refused(|e| e.source = long).starts_with("source"));
        for origin in [
            "http://127.0.0.1:8080",
            "https://[::1]:8443",
            "https://[::1]",
            "http://localhost",
        ] {
            let envelope = WanEnvelope {
                source: origin.into(),
                ..good()
            };
            envelope.validate().unwrap();
        }
    }

    #[test]
    fn kind_is_plain_lower_case() {
        for kind in ["", "Upper", "has space", "slash/", &"k".repeat(129)] {
            assert!(
                refused(|e| e.kind = kind.into()).starts_with("kind"),
                "{kind}"
            );
        }
        let longest = WanEnvelope {
            kind: "k".repeat(128),
            ..good()
        };
        longest.validate().unwrap();
    }

    #[test]
    fn issued_at_is_rfc3339() {
        for at in ["", "yesterday", "2026-12-02 13:45:00", "2026-12-02"] {
            assert!(
                refused(|e| e.issued_at = at.into()).starts_with("issuedAt"),
                "{at}"
            );
        }
    }

    #[test]
    fn payload_is_an_object() {
        for payload in [json!([]), json!("text"), json!(null), json!(1)] {
            assert_eq!(
                refused(|e| e.payload = payload.clone()),
                "payload must be a JSON object"
            );
        }
    }

    #[test]
    fn payload_is_capped_in_size() {
        let big = "x".repeat(MAX_PAYLOAD_BYTES);
        assert!(refused(|e| e.payload = json!({ "big": big })).contains("bytes serialized"));
        // Exactly at the cap passes: {"b":"…"} is 8 bytes around the string.
        let fits = "x".repeat(MAX_PAYLOAD_BYTES - 8);
        let envelope = WanEnvelope {
            payload: json!({ "b": fits }),
            ..good()
        };
        envelope.validate().unwrap();
    }

    #[test]
    fn payload_is_capped_in_depth() {
        let nested = |levels: usize| {
            let mut value = json!({});
            for _ in 1..levels {
                value = json!({ "n": value });
            }
            value
        };
        assert_eq!(depth(&nested(16)), 16);
        let envelope = WanEnvelope {
            payload: nested(MAX_PAYLOAD_DEPTH),
            ..good()
        };
        envelope.validate().unwrap();
        assert!(refused(|e| e.payload = nested(MAX_PAYLOAD_DEPTH + 1)).contains("levels deep"));
        let arrays = json!({ "a": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]] });
        assert!(refused(|e| e.payload = arrays).contains("levels deep"));
    }
}
