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
fn loopback_private_and_metadata_in_every_spelling() {
    use RefusalReason::*;
    let p = policy("");
    let cases = [
        ("http://127.0.0.1/", PrivateRange),
        ("http://2130706433/", PrivateRange),
        ("http://0x7f.1/", PrivateRange),
        ("http://0x7f000001/", PrivateRange),
        ("http://0177.0.0.1/", PrivateRange),
        ("http://127.1/", PrivateRange),
        ("http://127.0.1/", PrivateRange),
        ("http://%31%32%37.0.0.1/", PrivateRange),
        ("http://127.0.0.1./", PrivateRange),
        ("http://0/", PrivateRange),
        ("http://0.0.0.0/", PrivateRange),
        ("http://10.0.0.1/", PrivateRange),
        ("http://0xa.0.0.1/", PrivateRange),
        ("http://3232235777/", PrivateRange),
        ("http://[::1]/", PrivateRange),
        ("http://[::]/", PrivateRange),
        ("http://[0:0:0:0:0:0:0:1]/", PrivateRange),
        ("http://[::ffff:127.0.0.1]/", EmbeddedIpv4),
        ("http://[::ffff:7f00:1]/", EmbeddedIpv4),
        ("http://[::127.0.0.1]/", EmbeddedIpv4),
        ("http://[64:ff9b::a9fe:a9fe]/", EmbeddedIpv4),
        ("http://[64:ff9b::127.0.0.1]/", EmbeddedIpv4),
        ("http://[2002:a9fe:a9fe::]/", EmbeddedIpv4),
        ("http://[::ffff:a9fe:a9fe]/", EmbeddedIpv4),
        ("http://[fd00::1]/", PrivateRange),
        ("http://[fe80::1]/", PrivateRange),
        ("http://169.254.169.254/latest/meta-data/", Metadata),
        ("http://2852039166/", Metadata),
        ("http://0xa9fea9fe/", Metadata),
        ("http://0xa9.0xfe.0xa9.0xfe/", Metadata),
        ("http://169.254.43518/", Metadata),
        ("http://168.63.129.16/", Metadata),
        ("http://[fd00:ec2::254]/", Metadata),
        (
            "http://metadata.google.internal/computeMetadata/v1/",
            Metadata,
        ),
        ("http://metadata.google.internal./", Metadata),
        ("http://METADATA.GOOGLE.INTERNAL/", Metadata),
        ("http://metadata/", Metadata),
        ("http://localhost/", LocalName),
        ("http://LOCALHOST./", LocalName),
        ("http://api.localhost/", LocalName),
        ("http://printer.local/", LocalName),
        ("http://db.internal/", LocalName),
        ("http://db.internal./", LocalName),
        ("http://%6c%6fcalhost/", LocalName),
        ("https://localhost:443/", LocalName),
    ];
    for (url, expected) in cases {
        assert_eq!(reason(&p, url), Some(expected), "{url}");
    }
}

#[test]
fn scheme_first_then_userinfo_then_port() {
    use RefusalReason::*;
    let p = policy("");
    for url in [
        "file:///etc/passwd",
        "gopher://127.0.0.1:25/",
        "ftp://example.com/",
        "ws://example.com/",
        "javascript:alert(1)",
        "data:text/plain,hi",
        "dict://127.0.0.1:11211/",
        // Scheme is judged before the port and the address.
        "ldap://169.254.169.254:389/",
    ] {
        assert_eq!(reason(&p, url), Some(Scheme), "{url}");
    }
    assert_eq!(reason(&p, "http://user:pw@example.com/"), Some(Userinfo));
    assert_eq!(reason(&p, "http://user@example.com/"), Some(Userinfo));
    assert_eq!(reason(&p, "http://:pw@example.com/"), Some(Userinfo));
    // Userinfo before port and address.
    assert_eq!(reason(&p, "http://u@127.0.0.1:8080/"), Some(Userinfo));
    assert_eq!(reason(&p, "http://example.com:8080/"), Some(Port));
    assert_eq!(reason(&p, "https://example.com:8443/"), Some(Port));
    // Port before the local-name and address rules.
    assert_eq!(reason(&p, "http://127.0.0.1:6379/"), Some(Port));
    assert_eq!(reason(&p, "http://localhost:22/"), Some(Port));
    // 80 and 443 either way round, explicit or not.
    for url in [
        "http://example.com/",
        "https://example.com/",
        "http://example.com:443/",
        "https://example.com:80/",
        "http://example.com.:80/",
    ] {
        assert_eq!(reason(&p, url), None, "{url}");
    }
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
