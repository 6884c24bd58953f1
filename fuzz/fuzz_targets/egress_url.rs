//! The egress guard's checks that need no network (`hive_egress::EgressPolicy`): `precheck` of
//! any URL text, `check_addresses` of any resolved addresses, and `Allowlist::parse` of the
//! allowlist's text. The first byte picks the mode.
//!
//! Property: without an allowlist — or with any allowlist under the `naming_only` policy of a
//! hosted agent's own list — no loopback, private, link-local, unspecified, multicast or
//! metadata address is ever accepted, in any spelling: decimal, octal or hex IPv4 parts,
//! IPv6 with an embedded IPv4 (mapped, compatible, NAT64, 6to4, Teredo), or among the
//! addresses a name resolves to. The reference below is written apart from the guard's tables,
//! from the standard library's classifications.

#![no_main]

use hive_egress::{Allowlist, Destination, EgressPolicy};
use hive_fuzz::fields;
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Addresses that must never be reached from outside an admin's allowlist.
fn must_refuse_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
}

fn must_refuse(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => must_refuse_v4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                must_refuse_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)))
            };
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4().is_some_and(must_refuse_v4)
                || (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && embedded(s[6], s[7]))
                || (s[0] == 0x2002 && embedded(s[1], s[2]))
                || (s[0] == 0x2001 && s[1] == 0 && embedded(!s[6], !s[7]))
        }
    }
}

fn is_local_name(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok()
        || name.starts_with("metadata")
}

/// What `precheck` let through must be neither a refused literal nor a local name.
fn check_target(policy: &EgressPolicy, url: &str) {
    let Ok(target) = policy.precheck(url) else {
        return;
    };
    match &target.destination {
        Destination::Literal(addr) => {
            assert!(!must_refuse(addr.ip()), "{url:?} accepted as {addr}");
        }
        Destination::Name(name) => assert!(!is_local_name(name), "{url:?} accepted as {name}"),
    }
}

fn addresses(bytes: &[u8]) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    let mut rest = bytes;
    while let Some((&kind, tail)) = rest.split_first() {
        if kind & 1 == 0 && tail.len() >= 4 {
            let (ip, tail) = tail.split_at(4);
            ips.push(IpAddr::from(<[u8; 4]>::try_from(ip).unwrap_or_default()));
            rest = tail;
        } else if tail.len() >= 16 {
            let (ip, tail) = tail.split_at(16);
            ips.push(IpAddr::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(ip).unwrap_or_default(),
            )));
            rest = tail;
        } else {
            break;
        }
    }
    ips
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let no_self: Arc<[SocketAddr]> = Arc::new([]);
    let closed = EgressPolicy::new(Arc::new(Allowlist::empty()), no_self.clone());
    match mode % 3 {
        0 => check_target(&closed, &String::from_utf8_lossy(rest)),
        1 => {
            let parts = fields(rest, 2);
            let Ok(list) = Allowlist::parse(&String::from_utf8_lossy(parts[0])) else {
                return;
            };
            let url = String::from_utf8_lossy(parts.get(1).copied().unwrap_or_default());
            let naming = EgressPolicy::naming_only(Arc::new(list.clone()), no_self.clone());
            check_target(&naming, &url);
            // The admins' list may open private addresses to its hosts; any answer will do.
            let _ = EgressPolicy::new(Arc::new(list), no_self).precheck(&url);
        }
        _ => {
            let ips = addresses(rest);
            let Ok(target) = closed.precheck("https://agent.example/") else {
                panic!("a public name is refused");
            };
            if let Ok(accepted) = closed.check_addresses(&target, &ips) {
                assert!(!ips.is_empty());
                for ip in ips {
                    assert!(!must_refuse(ip), "{ip} accepted");
                }
                assert!(accepted.iter().all(|addr| addr.port() == 443));
            }
        }
    }
});
