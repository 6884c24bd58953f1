//! The refused ranges, checked against a reference written independently of the crate's
//! tables: the CIDR strings of SECURITY-RULES.md, parsed by `ipnet`.

use hive_egress::{RefusalReason, address_refusal};
use ipnet::{Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// SECURITY-RULES.md, "Refused IPv4", plus the metadata hosts inside wider ranges.
const REFUSED_V4: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "168.63.129.16/32",
];

/// SECURITY-RULES.md, "IPv6": inside 2000::/3 these, and everything outside 2000::/3 (the
/// listed ones outside it are here so that their edges are tested too). 3fff::/20 (RFC 9637
/// documentation) is refused in addition to the rules.
const REFUSED_V6: &[&str] = &[
    "2001::/32",
    "2001:db8::/32",
    "2001:10::/28",
    "2001:20::/28",
    "2002::/16",
    "3fff::/20",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "::/8",
    "100::/64",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

fn v4_nets() -> Vec<Ipv4Net> {
    REFUSED_V4.iter().map(|s| s.parse().unwrap()).collect()
}

fn v6_nets() -> Vec<Ipv6Net> {
    REFUSED_V6.iter().map(|s| s.parse().unwrap()).collect()
}

fn reference_refuses_v4(ip: Ipv4Addr) -> bool {
    v4_nets().iter().any(|net| net.contains(&ip))
}

fn reference_refuses_v6(ip: Ipv6Addr) -> bool {
    let global: Ipv6Net = "2000::/3".parse().unwrap();
    !global.contains(&ip) || v6_nets().iter().any(|net| net.contains(&ip))
}

fn refused(ip: impl Into<IpAddr>) -> bool {
    address_refusal(ip.into()).is_some()
}

#[test]
fn table_of_addresses_and_reasons() {
    use RefusalReason::*;
    let cases: &[(&str, Option<RefusalReason>)] = &[
        ("0.0.0.0", Some(PrivateRange)),
        ("10.20.30.40", Some(PrivateRange)),
        ("100.64.0.1", Some(PrivateRange)),
        ("100.100.100.200", Some(Metadata)),
        ("127.0.0.1", Some(PrivateRange)),
        ("127.255.255.254", Some(PrivateRange)),
        ("169.254.1.1", Some(PrivateRange)),
        ("169.254.169.254", Some(Metadata)),
        ("169.254.170.2", Some(Metadata)),
        ("168.63.129.16", Some(Metadata)),
        ("172.31.255.255", Some(PrivateRange)),
        ("192.0.0.170", Some(PrivateRange)),
        ("192.0.2.10", Some(PrivateRange)),
        ("192.88.99.1", Some(PrivateRange)),
        ("192.168.1.1", Some(PrivateRange)),
        ("198.19.0.1", Some(PrivateRange)),
        ("198.51.100.7", Some(PrivateRange)),
        ("203.0.113.9", Some(PrivateRange)),
        ("224.0.0.251", Some(PrivateRange)),
        ("255.255.255.255", Some(PrivateRange)),
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("168.63.129.15", None),
        ("172.32.0.0", None),
        ("::", Some(PrivateRange)),
        ("::1", Some(PrivateRange)),
        ("::ffff:127.0.0.1", Some(EmbeddedIpv4)),
        ("::ffff:7f00:1", Some(EmbeddedIpv4)),
        ("::127.0.0.1", Some(EmbeddedIpv4)),
        ("::ffff:0:10.0.0.1", Some(EmbeddedIpv4)),
        ("::ffff:169.254.169.254", Some(EmbeddedIpv4)),
        ("64:ff9b::a9fe:a9fe", Some(EmbeddedIpv4)),
        ("64:ff9b::7f00:1", Some(EmbeddedIpv4)),
        ("64:ff9b:1::a00:1", Some(EmbeddedIpv4)),
        ("2002:7f00:1::", Some(EmbeddedIpv4)),
        ("2002:a9fe:a9fe::1", Some(EmbeddedIpv4)),
        ("2001:0:7f00:1::", Some(EmbeddedIpv4)),
        ("::ffff:8.8.8.8", Some(PrivateRange)),
        ("64:ff9b::808:808", Some(PrivateRange)),
        ("2002:808:808::", Some(PrivateRange)),
        ("2001:db8::1", Some(PrivateRange)),
        ("2001:10::1", Some(PrivateRange)),
        ("2001:20::1", Some(PrivateRange)),
        ("100::1", Some(PrivateRange)),
        ("fc00::1", Some(PrivateRange)),
        ("fd12:3456::1", Some(PrivateRange)),
        ("fd00:ec2::254", Some(Metadata)),
        ("fe80::1", Some(PrivateRange)),
        ("fec0::1", Some(PrivateRange)),
        ("ff02::1", Some(PrivateRange)),
        ("4000::1", Some(PrivateRange)),
        (
            "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            Some(PrivateRange),
        ),
        ("2000::", None),
        ("2606:4700:4700::1111", None),
        ("2a00:1450:4001:800::200e", None),
    ];
    for (ip, expected) in cases {
        let ip: IpAddr = ip.parse().unwrap();
        assert_eq!(address_refusal(ip), *expected, "{ip}");
    }
}

#[test]
fn edges_of_every_ipv4_range() {
    for net in v4_nets() {
        let first = u32::from(net.network());
        let last = u32::from(net.broadcast());
        assert!(refused(Ipv4Addr::from(first)), "first of {net}");
        assert!(refused(Ipv4Addr::from(last)), "last of {net}");
        for neighbour in [first.checked_sub(1), last.checked_add(1)]
            .into_iter()
            .flatten()
        {
            let neighbour = Ipv4Addr::from(neighbour);
            assert_eq!(
                refused(neighbour),
                reference_refuses_v4(neighbour),
                "neighbour {neighbour} of {net}"
            );
        }
    }
}

#[test]
fn edges_of_every_ipv6_range() {
    let global: Ipv6Net = "2000::/3".parse().unwrap();
    for net in v6_nets().into_iter().chain([global]) {
        let first = u128::from(net.network());
        let last = u128::from(net.broadcast());
        if net != global {
            assert!(refused(Ipv6Addr::from(first)), "first of {net}");
            assert!(refused(Ipv6Addr::from(last)), "last of {net}");
        }
        for neighbour in [first.checked_sub(1), last.checked_add(1)]
            .into_iter()
            .flatten()
        {
            let neighbour = Ipv6Addr::from(neighbour);
            assert_eq!(
                refused(neighbour),
                reference_refuses_v6(neighbour),
                "neighbour {neighbour} of {net}"
            );
        }
    }
    // The edges of 2000::/3 itself: outside refused, the first inside public.
    assert!(refused(
        "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
            .parse::<Ipv6Addr>()
            .unwrap()
    ));
    assert!(!refused("2000::".parse::<Ipv6Addr>().unwrap()));
    assert!(refused("4000::".parse::<Ipv6Addr>().unwrap()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_ipv4_matches_the_reference(bits in any::<u32>()) {
        let ip = Ipv4Addr::from(bits);
        prop_assert_eq!(refused(ip), reference_refuses_v4(ip), "{}", ip);
    }

    #[test]
    fn any_address_inside_an_ipv4_range_is_refused(index in 0..REFUSED_V4.len(), host in any::<u32>()) {
        let net: Ipv4Net = REFUSED_V4[index].parse().unwrap();
        let ip = Ipv4Addr::from(u32::from(net.network()) | (host & u32::from(net.hostmask())));
        prop_assert!(refused(ip), "{} in {}", ip, net);
    }

    #[test]
    fn near_the_edges_of_ipv4_ranges(index in 0..REFUSED_V4.len(), offset in 0u32..4, below in any::<bool>()) {
        let net: Ipv4Net = REFUSED_V4[index].parse().unwrap();
        let edge = if below {
            u32::from(net.network()).checked_sub(offset)
        } else {
            u32::from(net.broadcast()).checked_add(offset)
        };
        if let Some(edge) = edge {
            let ip = Ipv4Addr::from(edge);
            prop_assert_eq!(refused(ip), reference_refuses_v4(ip), "{} near {}", ip, net);
        }
    }

    #[test]
    fn any_ipv6_matches_the_reference(bits in any::<u128>()) {
        let ip = Ipv6Addr::from(bits);
        prop_assert_eq!(refused(ip), reference_refuses_v6(ip), "{}", ip);
    }

    #[test]
    fn any_global_unicast_ipv6_matches_the_reference(bits in any::<u128>()) {
        // Most random addresses fall outside 2000::/3; aim inside it.
        let ip = Ipv6Addr::from(0x2000_u128 << 112 | (bits >> 3));
        prop_assert_eq!(refused(ip), reference_refuses_v6(ip), "{}", ip);
    }

    #[test]
    fn any_address_inside_an_ipv6_range_is_refused(index in 0..REFUSED_V6.len(), host in any::<u128>()) {
        let net: Ipv6Net = REFUSED_V6[index].parse().unwrap();
        let ip = Ipv6Addr::from(u128::from(net.network()) | (host & u128::from(net.hostmask())));
        prop_assert!(refused(ip), "{} in {}", ip, net);
    }

    #[test]
    fn near_the_edges_of_ipv6_ranges(index in 0..REFUSED_V6.len(), offset in 0u128..4, below in any::<bool>()) {
        let net: Ipv6Net = REFUSED_V6[index].parse().unwrap();
        let edge = if below {
            u128::from(net.network()).checked_sub(offset)
        } else {
            u128::from(net.broadcast()).checked_add(offset)
        };
        if let Some(edge) = edge {
            let ip = Ipv6Addr::from(edge);
            prop_assert_eq!(refused(ip), reference_refuses_v6(ip), "{} near {}", ip, net);
        }
    }

    #[test]
    fn mapped_form_refused_when_the_ipv4_is(bits in any::<u32>()) {
        let v4 = Ipv4Addr::from(bits);
        let mapped = v4.to_ipv6_mapped();
        prop_assert!(refused(mapped));
        if reference_refuses_v4(v4) {
            prop_assert_eq!(address_refusal(mapped.into()), Some(RefusalReason::EmbeddedIpv4));
        }
    }
}
