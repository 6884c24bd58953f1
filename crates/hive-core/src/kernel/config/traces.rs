//! `OTEL_*`: where traces go (OpenTelemetry's own variable names, so that the usual deployment
//! tooling sets them).

use super::TraceConfig;
use super::sources::{ConfigError, Sources, invalid};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// Where `OTEL_EXPORTER_OTLP_ENDPOINT` sends traces (the OTLP/HTTP convention).
const TRACES_PATH: &str = "v1/traces";

pub(super) fn parse(src: &mut Sources<'_>) -> Result<Option<TraceConfig>, ConfigError> {
    let base = match src.value("OTEL_EXPORTER_OTLP_ENDPOINT")? {
        None => None,
        Some(raw) => Some(traces_url_under(&endpoint_url(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            &raw,
        )?)),
    };
    let exact = match src.value("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")? {
        None => None,
        Some(raw) => Some(endpoint_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &raw)?),
    };
    let headers = match src.secret("OTEL_EXPORTER_OTLP_HEADERS")? {
        None => Vec::new(),
        Some(raw) => parse_headers(&raw)?,
    };
    let service_name = src.parsed("OTEL_SERVICE_NAME", "hive".to_owned(), |raw| {
        let name = raw.trim();
        (!name.is_empty() && name.chars().count() <= 128 && !name.chars().any(char::is_control))
            .then(|| name.to_owned())
    })?;
    let disabled = src.boolean("OTEL_SDK_DISABLED", false)?;
    let Some(endpoint) = exact.or(base) else {
        return Ok(None);
    };
    Ok((!disabled).then_some(TraceConfig {
        endpoint,
        headers,
        service_name,
    }))
}

fn endpoint_url(name: &str, raw: &str) -> Result<Url, ConfigError> {
    Url::parse(raw.trim())
        .ok()
        .filter(|url| {
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some()
                && url.username().is_empty()
                && url.password().is_none()
                && url.query().is_none()
                && url.fragment().is_none()
        })
        .ok_or_else(|| {
            invalid(
                name,
                "an http or https URL without credentials, query or fragment",
            )
        })
}

/// `http://collector:4318` → `http://collector:4318/v1/traces` (a path prefix is kept).
fn traces_url_under(base: &Url) -> Url {
    let mut url = base.clone();
    let path = format!("{}/{TRACES_PATH}", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

/// `name=value,name2=value2`, values percent-decoded (the OpenTelemetry format).
fn parse_headers(raw: &SecretString) -> Result<Vec<(String, SecretString)>, ConfigError> {
    let rule = "comma-separated name=value pairs (values percent-encoded)";
    let mut headers = Vec::new();
    for pair in raw
        .expose_secret()
        .split(',')
        .filter(|p| !p.trim().is_empty())
    {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| invalid("OTEL_EXPORTER_OTLP_HEADERS", rule))?;
        let name = name.trim();
        let value = percent_encoding::percent_decode_str(value.trim())
            .decode_utf8()
            .map_err(|_| invalid("OTEL_EXPORTER_OTLP_HEADERS", rule))?;
        let acceptable = http::HeaderName::from_bytes(name.as_bytes()).is_ok()
            && http::HeaderValue::from_str(&value).is_ok();
        if !acceptable {
            return Err(invalid("OTEL_EXPORTER_OTLP_HEADERS", rule));
        }
        headers.push((name.to_owned(), SecretString::from(value.into_owned())));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_base_endpoint_gets_the_traces_path() {
        let url = |raw: &str| traces_url_under(&Url::parse(raw).unwrap()).to_string();
        assert_eq!(url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(url("https://c/otlp/"), "https://c/otlp/v1/traces");
    }

    fn traces(pairs: &[(&str, &str)]) -> Result<Option<TraceConfig>, ConfigError> {
        let env = super::super::EnvSource::from_pairs(pairs.iter().copied());
        super::super::Config::load(&env).map(|config| config.traces)
    }

    #[test]
    fn an_endpoint_turns_traces_on_unless_the_sdk_is_disabled() {
        assert!(traces(&[]).unwrap().is_none());
        let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        let on = traces(&[base]).unwrap().unwrap();
        assert_eq!(on.endpoint.as_str(), "http://collector:4318/v1/traces");
        assert_eq!(on.service_name, "hive");
        let exact = traces(&[
            base,
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://t.example/otlp",
            ),
            ("OTEL_SERVICE_NAME", "hive-eu"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(exact.endpoint.as_str(), "https://t.example/otlp");
        assert_eq!(exact.service_name, "hive-eu");
        assert!(
            traces(&[base, ("OTEL_SDK_DISABLED", "true")])
                .unwrap()
                .is_none()
        );
        for (name, value) in [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://collector"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://user:pw@collector"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318"),
            ("OTEL_SDK_DISABLED", "maybe"),
        ] {
            let error = traces(&[(name, value)]).unwrap_err();
            assert_eq!(error.variable, name);
        }
        let long = "x".repeat(129);
        let error = traces(&[("OTEL_SERVICE_NAME", &long)]).unwrap_err();
        assert_eq!(error.variable, "OTEL_SERVICE_NAME");
    }

    #[test]
    fn headers_are_pairs_with_decoded_values() {
        let parsed = parse_headers(&SecretString::from(
            "authorization=Basic%20abc, x-tenant = t1".to_owned(),
        ))
        .unwrap();
        let shown: Vec<_> = parsed
            .iter()
            .map(|(n, v)| (n.as_str(), v.expose_secret()))
            .collect();
        assert_eq!(shown, [("authorization", "Basic abc"), ("x-tenant", "t1")]);
        for bad in ["novalue", "bad name=x", "x=line%0Abreak"] {
            let error = parse_headers(&SecretString::from(bad.to_owned())).unwrap_err();
            assert_eq!(error.variable, "OTEL_EXPORTER_OTLP_HEADERS");
            assert!(!error.to_string().contains("abc"));
        }
    }
}
