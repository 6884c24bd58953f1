//! Decisions that need no network: scheme, userinfo, port, local names and IP literals in every
//! spelling the WHATWG parser accepts.

use hive_egress::{Allowlist, Destination, EgressError, EgressPolicy, RefusalReason};
use std::net::SocketAddr;
use std::sync::Arc;

fn policy(allowlist: &str) -> EgressPolicy {
    EgressPolicy::new(
        Arc::new(Allowlist::parse(allowlist).unwrap()),
        Arc::from(Vec::<SocketAddr>::new()),
    )
}

fn reason(policy: &EgressPolicy, url: &str) -> Option<RefusalReason> {
    match policy.precheck(url) {
        Ok(_) => None,
        Err(EgressError::Refused(refusal)) => Some(refusal.reason),
        Err(other) => panic!("{url}: not a refusal: {other}"),
    }
}

#[test]
fn the_ssrf_corpus() {
    // `tests/data/ssrf-corpus.txt`: `<reason> <url>` or `allowed <url>` a line.
    let p = policy("");
    let corpus = include_str!("../data/ssrf-corpus.txt");
    let mut cases = 0;
    for line in corpus.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (expected, url) = line.split_once(' ').expect("`<reason> <url>`");
        let got = reason(&p, url).map_or("allowed", RefusalReason::as_str);
        assert_eq!(got, expected, "{url}");
        cases += 1;
    }
    assert!(cases > 60, "the corpus was read: {cases} cases");
}

#[test]
fn public_literals_are_decided_without_a_lookup() {
    let p = policy("");
    let target = p.precheck("https://8.8.8.8/dns-query?name=secret").unwrap();
    assert_eq!(
        target.destination,
        Destination::Literal("8.8.8.8:443".parse().unwrap())
    );
    assert_eq!(target.origin, "https://8.8.8.8:443");
    let target = p.precheck("http://[2606:4700::1111]/").unwrap();
    assert_eq!(
        target.destination,
        Destination::Literal("[2606:4700::1111]:80".parse().unwrap())
    );
    let target = p.precheck("http://Example.COM./path").unwrap();
    assert_eq!(target.destination, Destination::Name("example.com".into()));
}

#[test]
fn refusals_name_the_origin_never_the_path_query_or_userinfo() {
    let p = policy("");
    let Err(EgressError::Refused(refusal)) =
        p.precheck("http://169.254.169.254/latest/meta-data/iam?token=s3cr3t")
    else {
        panic!("expected a refusal");
    };
    assert_eq!(refusal.origin, "http://169.254.169.254:80");
    let Err(error) = p.precheck("http://alice:hunter2@example.com:8080/x?key=s3cr3t") else {
        panic!("expected a refusal");
    };
    let text = error.to_string();
    assert_eq!(error.origin(), Some("http://example.com:8080"));
    for secret in ["alice", "hunter2", "s3cr3t", "/x"] {
        assert!(!text.contains(secret), "{text}");
    }
}

#[test]
fn malformed_urls_are_not_refusals_but_errors() {
    let p = policy("");
    for url in [
        "not a url",
        "http://",
        "http://exa mple.com/",
        "http://host..example/",
    ] {
        match p.precheck(url) {
            Err(EgressError::InvalidUrl(_)) => {}
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[test]
fn allowlist_exact_suffix_and_port() {
    use RefusalReason::*;
    let p = policy("llm.internal,*.corp.example:8443,127.0.0.1:9000,[::1]:9001");
    // Exact name: local-name rule lifted, ports 80/443 only.
    assert_eq!(reason(&p, "http://llm.internal/"), None);
    assert_eq!(reason(&p, "https://llm.internal/"), None);
    assert_eq!(reason(&p, "http://llm.internal:8080/"), Some(Port));
    assert_eq!(reason(&p, "http://other.internal/"), Some(LocalName));
    assert_eq!(reason(&p, "http://x.llm.internal/"), Some(LocalName));
    // Suffix with a port: that port only, names below the suffix only.
    assert_eq!(reason(&p, "https://a.corp.example:8443/"), None);
    assert_eq!(reason(&p, "https://a.b.corp.example:8443/"), None);
    assert_eq!(reason(&p, "https://corp.example:8443/"), Some(Port));
    assert_eq!(reason(&p, "https://a.corp.example:8444/"), Some(Port));
    assert_eq!(reason(&p, "https://evilcorp.example:8443/"), Some(Port));
    // IP literal entries: exactly that address and port; other spellings of it match, other
    // addresses do not.
    assert_eq!(reason(&p, "http://127.0.0.1:9000/"), None);
    assert_eq!(reason(&p, "http://2130706433:9000/"), None);
    assert_eq!(reason(&p, "http://127.0.0.2:9000/"), Some(Port));
    assert_eq!(reason(&p, "http://127.0.0.1/"), Some(PrivateRange));
    assert_eq!(reason(&p, "http://[::ffff:127.0.0.1]:9000/"), Some(Port));
    assert_eq!(reason(&p, "http://[::1]:9001/"), None);
}

#[test]
fn metadata_stays_refused_whatever_the_allowlist() {
    use RefusalReason::*;
    let p = policy(
        "metadata.google.internal,169.254.169.254,[fd00:ec2::254],0.0.0.0:9000,*.internal,[::ffff:a9fe:a9fe]",
    );
    assert_eq!(
        reason(&p, "http://metadata.google.internal/"),
        Some(Metadata)
    );
    assert_eq!(reason(&p, "http://169.254.169.254/"), Some(Metadata));
    assert_eq!(reason(&p, "http://[fd00:ec2::254]/"), Some(Metadata));
    assert_eq!(reason(&p, "http://[::ffff:a9fe:a9fe]/"), Some(EmbeddedIpv4));
    assert_eq!(reason(&p, "http://0.0.0.0:9000/"), Some(PrivateRange));
    // The suffix lifts the local-name rule for other names.
    assert_eq!(reason(&p, "http://vault.internal/"), None);
}

#[test]
fn a_suffix_names_a_zone_not_a_top_level_domain() {
    for entry in ["*.com", "*.io.", "*.example:8443"] {
        let refused = Allowlist::parse(entry).unwrap_err();
        assert!(refused.problem.contains("two labels"), "{entry}: {refused}");
    }
    for entry in ["*.corp.example", "*.internal", "*.local:8443", "*.lan"] {
        assert!(Allowlist::parse(entry).is_ok(), "{entry}");
    }
}
