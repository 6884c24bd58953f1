//! The refused address tables of `SECURITY-RULES.md` ("Outbound requests (SSRF)"), as plain
//! integer prefixes so that a lookup is a handful of mask-and-compare steps.
//!
//! Each range says how hard it is refused:
//! - [`Strength::Overridable`]: private, loopback, link-local, documentation… An allowlisted host
//!   may resolve here (an operator's internal LLM gateway, a test server on 127.0.0.1).
//! - [`Strength::Always`]: cloud metadata endpoints, "this network" (0/8 and `::`, which Linux
//!   connects to the local host), multicast and reserved space. No allowlist entry lets these
//!   through: metadata is where credentials live, and the others are never a real server.
//!
//! IPv6 addresses that embed an IPv4 address (mapped, compatible, translated, NAT64, 6to4,
//! Teredo) are judged by the embedded address too; all of those prefixes are refused anyway, the
//! embedded check decides the reason (`embedded_ipv4`) and whether an allowlist may override it.

use crate::RefusalReason;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strength {
    Overridable,
    Always,
}

/// Why an address is refused: the reason, the range it fell in, and whether an allowlisted host
/// may still go there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blocked {
    pub reason: RefusalReason,
    pub range: &'static str,
    pub strength: Strength,
    /// For `embedded_ipv4`: the IPv4 address found inside.
    pub embedded: Option<Ipv4Addr>,
}

impl Blocked {
    pub fn describe(&self, ip: IpAddr) -> String {
        match self.embedded {
            Some(v4) => format!("{ip} embeds {v4}, which is refused ({})", self.range),
            None => format!("{ip} is in a refused range ({})", self.range),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Private,
    Metadata,
    /// Refused as `private_range` but never overridable.
    Reserved,
}

struct V4Range {
    base: u32,
    prefix: u8,
    label: &'static str,
    kind: Kind,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8, label: &'static str, kind: Kind) -> V4Range {
    V4Range {
        base: u32::from_be_bytes([a, b, c, d]),
        prefix,
        label,
        kind,
    }
}

/// Most specific first: the metadata hosts sit inside wider ranges and must win.
const V4_TABLE: &[V4Range] = &[
    v4(
        169,
        254,
        169,
        254,
        32,
        "169.254.169.254 cloud metadata",
        Kind::Metadata,
    ),
    v4(
        169,
        254,
        170,
        2,
        32,
        "169.254.170.2 AWS ECS task metadata",
        Kind::Metadata,
    ),
    v4(
        168,
        63,
        129,
        16,
        32,
        "168.63.129.16 Azure WireServer",
        Kind::Metadata,
    ),
    v4(
        100,
        100,
        100,
        200,
        32,
        "100.100.100.200 Alibaba Cloud metadata",
        Kind::Metadata,
    ),
    v4(0, 0, 0, 0, 8, "0.0.0.0/8 this network", Kind::Reserved),
    v4(10, 0, 0, 0, 8, "10.0.0.0/8 private", Kind::Private),
    v4(
        100,
        64,
        0,
        0,
        10,
        "100.64.0.0/10 shared address space",
        Kind::Private,
    ),
    v4(127, 0, 0, 0, 8, "127.0.0.0/8 loopback", Kind::Private),
    v4(
        169,
        254,
        0,
        0,
        16,
        "169.254.0.0/16 link-local",
        Kind::Private,
    ),
    v4(172, 16, 0, 0, 12, "172.16.0.0/12 private", Kind::Private),
    v4(
        192,
        0,
        0,
        0,
        24,
        "192.0.0.0/24 IETF protocol assignments",
        Kind::Private,
    ),
    v4(
        192,
        0,
        2,
        0,
        24,
        "192.0.2.0/24 documentation",
        Kind::Private,
    ),
    v4(
        192,
        88,
        99,
        0,
        24,
        "192.88.99.0/24 6to4 relay anycast",
        Kind::Private,
    ),
    v4(192, 168, 0, 0, 16, "192.168.0.0/16 private", Kind::Private),
    v4(
        198,
        18,
        0,
        0,
        15,
        "198.18.0.0/15 benchmarking",
        Kind::Private,
    ),
    v4(
        198,
        51,
        100,
        0,
        24,
        "198.51.100.0/24 documentation",
        Kind::Private,
    ),
    v4(
        203,
        0,
        113,
        0,
        24,
        "203.0.113.0/24 documentation",
        Kind::Private,
    ),
    v4(224, 0, 0, 0, 4, "224.0.0.0/4 multicast", Kind::Reserved),
    v4(
        240,
        0,
        0,
        0,
        4,
        "240.0.0.0/4 reserved and broadcast",
        Kind::Reserved,
    ),
];

struct V6Range {
    base: u128,
    prefix: u8,
    label: &'static str,
    kind: Kind,
}

const fn v6(base: u128, prefix: u8, label: &'static str, kind: Kind) -> V6Range {
    V6Range {
        base,
        prefix,
        label,
        kind,
    }
}

/// Most specific first. Anything outside 2000::/3 is refused after this table too.
const V6_TABLE: &[V6Range] = &[
    v6(0, 128, "::/128 unspecified", Kind::Reserved),
    v6(1, 128, "::1/128 loopback", Kind::Private),
    v6(
        0xfd00_0ec2_0000_0000_0000_0000_0000_0254,
        128,
        "fd00:ec2::254 AWS metadata",
        Kind::Metadata,
    ),
    v6(
        0x0000_0000_0000_0000_0000_ffff_0000_0000,
        96,
        "::ffff:0:0/96 IPv4-mapped",
        Kind::Private,
    ),
    v6(0, 96, "::/96 IPv4-compatible", Kind::Private),
    v6(0, 8, "::/8 reserved", Kind::Private),
    v6(
        0x0064_ff9b_0000_0000_0000_0000_0000_0000,
        96,
        "64:ff9b::/96 NAT64",
        Kind::Private,
    ),
    v6(
        0x0064_ff9b_0001_0000_0000_0000_0000_0000,
        48,
        "64:ff9b:1::/48 local-use NAT64",
        Kind::Private,
    ),
    v6(
        0x0100_0000_0000_0000_0000_0000_0000_0000,
        64,
        "100::/64 discard",
        Kind::Private,
    ),
    v6(
        0x2001_0db8_0000_0000_0000_0000_0000_0000,
        32,
        "2001:db8::/32 documentation",
        Kind::Private,
    ),
    v6(
        0x2001_0010_0000_0000_0000_0000_0000_0000,
        28,
        "2001:10::/28 ORCHID",
        Kind::Private,
    ),
    v6(
        0x2001_0020_0000_0000_0000_0000_0000_0000,
        28,
        "2001:20::/28 ORCHIDv2",
        Kind::Private,
    ),
    v6(
        0x2001_0000_0000_0000_0000_0000_0000_0000,
        32,
        "2001::/32 Teredo",
        Kind::Private,
    ),
    v6(
        0x2002_0000_0000_0000_0000_0000_0000_0000,
        16,
        "2002::/16 6to4",
        Kind::Private,
    ),
    // RFC 9637 (2024) documentation prefix: not in the rules' list, but no server lives there.
    v6(
        0x3fff_0000_0000_0000_0000_0000_0000_0000,
        20,
        "3fff::/20 documentation",
        Kind::Private,
    ),
    v6(
        0xfc00_0000_0000_0000_0000_0000_0000_0000,
        7,
        "fc00::/7 unique local",
        Kind::Private,
    ),
    v6(
        0xfe80_0000_0000_0000_0000_0000_0000_0000,
        10,
        "fe80::/10 link-local",
        Kind::Private,
    ),
    v6(
        0xfec0_0000_0000_0000_0000_0000_0000_0000,
        10,
        "fec0::/10 site-local",
        Kind::Private,
    ),
    v6(
        0xff00_0000_0000_0000_0000_0000_0000_0000,
        8,
        "ff00::/8 multicast",
        Kind::Reserved,
    ),
];

const GLOBAL_UNICAST: u128 = 0x2000_0000_0000_0000_0000_0000_0000_0000;
const OUTSIDE_GLOBAL_UNICAST: &str = "outside 2000::/3 global unicast";

const fn v4_mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    }
}

const fn v6_mask(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    }
}

fn blocked(kind: Kind, range: &'static str) -> Blocked {
    let (reason, strength) = match kind {
        Kind::Private => (RefusalReason::PrivateRange, Strength::Overridable),
        Kind::Reserved => (RefusalReason::PrivateRange, Strength::Always),
        Kind::Metadata => (RefusalReason::Metadata, Strength::Always),
    };
    Blocked {
        reason,
        range,
        strength,
        embedded: None,
    }
}

/// Whether `ip` is refused, and why. `None` means a public address.
pub(crate) fn classify(ip: IpAddr) -> Option<Blocked> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

pub(crate) fn classify_v4(ip: Ipv4Addr) -> Option<Blocked> {
    let bits = u32::from(ip);
    V4_TABLE
        .iter()
        .find(|range| bits & v4_mask(range.prefix) == range.base)
        .map(|range| blocked(range.kind, range.label))
}

pub(crate) fn classify_v6(ip: Ipv6Addr) -> Option<Blocked> {
    let bits = u128::from(ip);
    let range = V6_TABLE
        .iter()
        .find(|range| bits & v6_mask(range.prefix) == range.base)
        .map(|range| blocked(range.kind, range.label))
        .or_else(|| {
            (bits & v6_mask(3) != GLOBAL_UNICAST)
                .then(|| blocked(Kind::Private, OUTSIDE_GLOBAL_UNICAST))
        });
    // `::` and `::1` look IPv4-compatible (0.0.0.0, 0.0.0.1) but are their own thing.
    if bits <= 1 {
        return range;
    }
    for embedded in embedded_ipv4(ip) {
        if let Some(inner) = classify_v4(embedded) {
            let outer_always = range.as_ref().map(|r| r.strength) == Some(Strength::Always);
            return Some(Blocked {
                reason: RefusalReason::EmbeddedIpv4,
                range: inner.range,
                strength: if outer_always {
                    Strength::Always
                } else {
                    inner.strength
                },
                embedded: Some(embedded),
            });
        }
    }
    range
}

/// The IPv4 addresses an IPv6 address carries, by the well-known embeddings.
pub(crate) fn embedded_ipv4(ip: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = ip.segments();
    let tail = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    let mut found = Vec::new();
    match s {
        // ::ffff:a.b.c.d (mapped), ::ffff:0:a.b.c.d (translated), ::a.b.c.d (compatible)
        [0, 0, 0, 0, 0, 0xffff, hi, lo]
        | [0, 0, 0, 0, 0xffff, 0, hi, lo]
        | [0, 0, 0, 0, 0, 0, hi, lo] => {
            found.push(tail(hi, lo));
        }
        // 64:ff9b::a.b.c.d (RFC 6052 well-known prefix)
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => found.push(tail(hi, lo)),
        // 64:ff9b:1::/48 (RFC 8215): the /96 form, and the RFC 6052 /48 form (a.b in bits 48..64,
        // the reserved u-octet, then c.d).
        [0x64, 0xff9b, 1, ab, u_c, d_suffix, hi, lo] => {
            found.push(tail(hi, lo));
            let [a, b] = ab.to_be_bytes();
            let [_u, c] = u_c.to_be_bytes();
            let [d, _] = d_suffix.to_be_bytes();
            found.push(Ipv4Addr::new(a, b, c, d));
        }
        // 2002:AABB:CCDD::/48 (6to4)
        [0x2002, hi, lo, ..] => found.push(tail(hi, lo)),
        // 2001:0:SSSS:SSSS:flags:port:CCCC:CCCC (Teredo): server, then the client address stored
        // bit-inverted.
        [0x2001, 0, shi, slo, _, _, chi, clo] => {
            found.push(tail(shi, slo));
            found.push(tail(!chi, !clo));
        }
        _ => {}
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(ip: &str) -> Option<RefusalReason> {
        let ip: IpAddr = ip.parse().unwrap();
        classify(ip).map(|b| b.reason)
    }

    #[test]
    fn embedded_forms_are_found() {
        let cases = [
            ("::ffff:127.0.0.1", "127.0.0.1"),
            ("::ffff:7f00:1", "127.0.0.1"),
            ("::ffff:0:10.1.2.3", "10.1.2.3"),
            ("::10.1.2.3", "10.1.2.3"),
            ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
            ("2002:c0a8:0101::1", "192.168.1.1"),
        ];
        for (v6, v4) in cases {
            let v6: Ipv6Addr = v6.parse().unwrap();
            let v4: Ipv4Addr = v4.parse().unwrap();
            assert!(embedded_ipv4(v6).contains(&v4), "{v6} should embed {v4}");
        }
    }

    #[test]
    fn teredo_client_is_bit_inverted() {
        // Client 10.0.0.1 is stored as !0x0a000001 = 0xf5ff:fffe.
        let ip: Ipv6Addr = "2001:0:4136:e378:8000:63bf:f5ff:fffe".parse().unwrap();
        let found = embedded_ipv4(ip);
        assert!(found.contains(&Ipv4Addr::new(10, 0, 0, 1)), "{found:?}");
        assert!(
            found.contains(&Ipv4Addr::new(65, 54, 227, 120)),
            "{found:?}"
        );
        assert_eq!(
            reason("2001:0:4136:e378:8000:63bf:f5ff:fffe"),
            Some(RefusalReason::EmbeddedIpv4)
        );
    }

    #[test]
    fn reasons() {
        assert_eq!(reason("8.8.8.8"), None);
        assert_eq!(reason("2606:4700::1111"), None);
        assert_eq!(reason("127.0.0.1"), Some(RefusalReason::PrivateRange));
        assert_eq!(reason("169.254.169.254"), Some(RefusalReason::Metadata));
        assert_eq!(reason("168.63.129.16"), Some(RefusalReason::Metadata));
        assert_eq!(reason("fd00:ec2::254"), Some(RefusalReason::Metadata));
        assert_eq!(reason("::1"), Some(RefusalReason::PrivateRange));
        assert_eq!(reason("::"), Some(RefusalReason::PrivateRange));
        assert_eq!(
            reason("::ffff:127.0.0.1"),
            Some(RefusalReason::EmbeddedIpv4)
        );
        assert_eq!(
            reason("64:ff9b::a9fe:a9fe"),
            Some(RefusalReason::EmbeddedIpv4)
        );
        // Embedded public address: the outer range still refuses it, as a range.
        assert_eq!(reason("::ffff:8.8.8.8"), Some(RefusalReason::PrivateRange));
        assert_eq!(
            reason("64:ff9b::808:808"),
            Some(RefusalReason::PrivateRange)
        );
        assert_eq!(reason("2002:808:808::1"), Some(RefusalReason::PrivateRange));
    }

    #[test]
    fn strength() {
        let strength = |ip: &str| classify(ip.parse().unwrap()).map(|b| b.strength);
        assert_eq!(strength("127.0.0.1"), Some(Strength::Overridable));
        assert_eq!(strength("10.1.1.1"), Some(Strength::Overridable));
        assert_eq!(strength("169.254.169.254"), Some(Strength::Always));
        assert_eq!(strength("::ffff:169.254.169.254"), Some(Strength::Always));
        assert_eq!(strength("0.0.0.0"), Some(Strength::Always));
        assert_eq!(strength("::"), Some(Strength::Always));
        assert_eq!(strength("224.0.0.1"), Some(Strength::Always));
        assert_eq!(strength("255.255.255.255"), Some(Strength::Always));
        assert_eq!(strength("ff02::1"), Some(Strength::Always));
        assert_eq!(strength("::ffff:10.0.0.1"), Some(Strength::Overridable));
    }
}
