//! Which addresses requests made on a tenant's behalf may reach (`$http.send`, OAuth2 avatar
//! downloads): public unicast addresses only, checked on what names resolve to, so a tenant
//! cannot reach the node's loopback, its private networks or a cloud's metadata service.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;

/// Whether `ip` is an ordinary public address. Refused: loopback, private, link-local,
/// shared (CGNAT), unspecified, broadcast, multicast, reserved, documentation and benchmark
/// ranges, IPv6 unique-local, site-local and link-local, and every IPv6 form carrying an IPv4
/// address (mapped, compatible, NAT64, 6to4) whose IPv4 address is refused; Teredo outright.
pub fn public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => public_v6(v6),
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated).
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) && !(s[5] == 0 && s[6] == 0) {
        return public_v4(embedded(s[6], s[7]));
    }
    // NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48).
    if s[0] == 0x64 && s[1] == 0xff9b {
        return s[2..6] == [0; 4] && public_v4(embedded(s[6], s[7]));
    }
    // 6to4: 2002:aabb:ccdd::/48.
    if s[0] == 0x2002 {
        return public_v4(embedded(s[1], s[2]));
    }
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        || (s[0] == 0x2001 && s[1] == 0xdb8)
        || (s[0] == 0x2001 && s[1] == 0)
        || (s[0] == 0x100 && s[1..4] == [0; 3]))
}

/// What a [`Resolver`] admits besides public addresses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allow {
    /// Loopback addresses (local test servers).
    pub loopback: bool,
    /// Every address: the operator allows private networks.
    pub private: bool,
}

impl Allow {
    /// Whether `ip` may be reached.
    pub fn admits(self, ip: IpAddr) -> bool {
        self.private || public(ip) || (self.loopback && loopback(ip))
    }
}

/// Whether `ip` is a loopback address, IPv4-mapped forms included.
fn loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
    }
}

/// A resolver for hyper's connector that answers only with the addresses [`Allow`] admits, so
/// the connector never connects elsewhere (a name that resolves differently later, DNS
/// rebinding, gains nothing).
#[derive(Debug, Clone, Copy, Default)]
pub struct Resolver {
    /// What is admitted besides public addresses.
    pub allow: Allow,
}

impl tower::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow = self.allow;
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| allow.admits(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(std::io::Error::other(format!(
                    "{} resolves to no public address (private networks are not reachable)",
                    name.as_str()
                )));
            }
            Ok(found.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "2002:7f00:1::1",
            "2002:a00:1::1",
            "2001:db8::1",
            "2001::1",
        ] {
            assert!(!public(ip.parse().unwrap()), "{ip} counted as public");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.0.1",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(public(ip.parse().unwrap()), "{ip} refused");
        }
    }

    #[test]
    fn loopback_is_admitted_only_when_allowed() {
        let allow = Allow {
            loopback: true,
            private: false,
        };
        for ip in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(allow.admits(ip.parse().unwrap()), "{ip}");
            assert!(!Allow::default().admits(ip.parse().unwrap()), "{ip}");
        }
        assert!(!allow.admits("10.0.0.1".parse().unwrap()));
        let private = Allow {
            loopback: false,
            private: true,
        };
        assert!(private.admits("10.0.0.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn the_resolver_drops_what_it_does_not_admit() {
        use tower::Service;
        let name: Name = "localhost".parse().unwrap();
        assert!(Resolver::default().call(name.clone()).await.is_err());
        let allow = Allow {
            loopback: true,
            private: false,
        };
        let found: Vec<_> = Resolver { allow }.call(name).await.unwrap().collect();
        assert!(!found.is_empty() && found.iter().all(|a| a.ip().is_loopback()));
    }
}
