//! The client's address: the socket peer, unless the peer is a configured trusted proxy; only
//! then does a forwarding header (chosen by `HIVE_CLIENT_IP_SOURCE`) name the client.

use crate::request::ClientIp;
use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use hive_core::kernel::config::ClientIpSource;
use http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

pub async fn resolve(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let Some(peer) = peer {
        let settings = &state.pipeline;
        let ip = client_ip(
            peer,
            request.headers(),
            &settings.trusted_proxies,
            settings.client_ip_source,
        );
        tracing::Span::current().record("client_ip", tracing::field::display(ip));
        request.extensions_mut().insert(ClientIp(ip));
    }
    next.run(request).await
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// Decides the client address. A header value that does not parse as an address is ignored
/// (the peer stands), never guessed at.
pub(crate) fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
    source: ClientIpSource,
) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let chosen = match source {
        ClientIpSource::RealIp => headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_ip),
        ClientIpSource::XffFirst => forwarded_for(headers).into_iter().next().flatten(),
        ClientIpSource::XffLast => {
            let hops = forwarded_for(headers);
            // Walk back from the hop our proxy appended, over further trusted proxies; the first
            // untrusted hop is the client. Entries left of it could be forged by the client.
            let mut chosen = None;
            for hop in hops.into_iter().rev() {
                match hop {
                    Some(ip) if is_trusted(ip, trusted) => chosen = Some(ip),
                    Some(ip) => {
                        chosen = Some(ip);
                        break;
                    }
                    None => break,
                }
            }
            chosen
        }
    };
    chosen.unwrap_or(peer)
}

/// Every `X-Forwarded-For` entry in order, across repeated headers; `None` for a bad entry.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| {
            let text = value.to_str().unwrap_or("\u{0}");
            text.split(',').map(parse_ip).collect::<Vec<_>>()
        })
        .collect()
}

fn parse_ip(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim();
    let raw = raw
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(raw);
    raw.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn untrusted_peer_keeps_its_own_address_whatever_the_headers() {
        let mut headers = xff("1.2.3.4");
        headers.insert("x-real-ip", "5.6.7.8".parse().unwrap());
        for source in [
            ClientIpSource::RealIp,
            ClientIpSource::XffFirst,
            ClientIpSource::XffLast,
        ] {
            assert_eq!(
                client_ip(ip("9.9.9.9"), &headers, &[], source),
                ip("9.9.9.9")
            );
        }
    }

    #[test]
    fn trusted_proxy_uses_the_configured_source() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let peer = ip("10.0.0.2");
        let mut headers = xff("6.6.6.6, 1.2.3.4, 10.0.0.7");
        headers.insert("x-real-ip", "5.6.7.8".parse().unwrap());
        assert_eq!(
            client_ip(peer, &headers, &trusted, ClientIpSource::RealIp),
            ip("5.6.7.8")
        );
        assert_eq!(
            client_ip(peer, &headers, &trusted, ClientIpSource::XffFirst),
            ip("6.6.6.6")
        );
        // The right-most untrusted hop: 10.0.0.7 is one of our proxies, 1.2.3.4 is the client.
        assert_eq!(
            client_ip(peer, &headers, &trusted, ClientIpSource::XffLast),
            ip("1.2.3.4")
        );
    }

    #[test]
    fn garbage_or_missing_headers_fall_back_to_the_peer() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let peer = ip("10.0.0.2");
        assert_eq!(
            client_ip(peer, &xff("not-an-ip"), &trusted, ClientIpSource::XffLast),
            peer
        );
        assert_eq!(
            client_ip(peer, &HeaderMap::new(), &trusted, ClientIpSource::RealIp),
            peer
        );
        assert_eq!(
            client_ip(
                peer,
                &xff("[2001:db8::1]"),
                &trusted,
                ClientIpSource::XffFirst
            ),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn ipv4_mapped_peers_are_judged_as_ipv4() {
        let trusted = ["127.0.0.1/32".parse().unwrap()];
        assert_eq!(
            client_ip(
                ip("::ffff:127.0.0.1"),
                &xff("8.8.8.8"),
                &trusted,
                ClientIpSource::XffLast
            ),
            ip("8.8.8.8")
        );
    }
}
