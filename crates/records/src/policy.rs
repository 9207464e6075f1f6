//! What a tenant's settings decide about each request, parsed once per settings change: the
//! client's address (`trustedProxy`), where superusers may act from (`superuserIPs`), the
//! batch limits (`batch`) and the rate limit rules (`rateLimits`).
//!
//! The client address follows PocketBase's rule: a header named in `trustedProxy.headers` is
//! honoured when present (its last occurrence; the rightmost valid IP of its comma-separated
//! list, or the leftmost with `useLeftmostIP`), else the TCP peer's address counts. IPv6
//! addresses are written out in full, as PocketBase writes them, so rate limit keys, logs and
//! login fingerprints agree with data a PocketBase wrote.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::rates::RateLimits;

/// PocketBase's batch timeout when none is set.
const DEFAULT_BATCH_TIMEOUT: Duration = Duration::from_secs(3);
/// PocketBase's batch body limit when none is set (128 MiB).
const DEFAULT_BATCH_BODY: u64 = 128 << 20;

/// The settings that act on every request, ready to apply.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Where the client address comes from.
    pub trusted_proxy: TrustedProxy,
    /// Addresses and subnets superusers may act from; empty: anywhere.
    pub superuser_ips: Vec<String>,
    /// The batch API's limits.
    pub batch: BatchLimits,
    /// The rate limit rules.
    pub rate_limits: RateLimits,
    /// Rate limit counters are kept per epoch. A new epoch starts whenever the rate limit
    /// settings change, so counting starts afresh under changed rules, as in PocketBase (which
    /// resets its limiters on every settings save; here other sections may change without
    /// touching the counters).
    pub epoch: u64,
}

/// The last epoch handed out.
static EPOCHS: AtomicU64 = AtomicU64::new(0);

/// `settings.trustedProxy`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxy {
    /// Headers carrying the client address, tried in order.
    pub headers: Vec<String>,
    /// Take the leftmost valid address of a header's list instead of the rightmost.
    pub use_leftmost_ip: bool,
}

/// `settings.batch`, with PocketBase's fallbacks applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchLimits {
    /// Batch requests are accepted at all (also requires `max_requests > 0`).
    pub enabled: bool,
    /// Most requests in one batch.
    pub max_requests: u64,
    /// The whole batch must finish within this (3 s when unset).
    pub timeout: Duration,
    /// Largest batch body in bytes (128 MiB when unset).
    pub max_body_size: u64,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            enabled: false,
            max_requests: 50,
            timeout: DEFAULT_BATCH_TIMEOUT,
            max_body_size: DEFAULT_BATCH_BODY,
        }
    }
}

/// The two addresses of a request, as PocketBase logs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddr {
    /// The TCP peer.
    pub remote: String,
    /// The client: from a trusted proxy header, else the peer.
    pub real: String,
}

impl Policy {
    /// Reads the policy from a settings document (defaults where a value is missing or of the
    /// wrong shape; stored settings were validated on the way in).
    pub fn from_settings(settings: &Value) -> Self {
        let proxy = settings.get("trustedProxy");
        let headers = proxy
            .and_then(|p| p.get("headers"))
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .filter(|h| !h.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let superuser_ips = settings
            .get("superuserIPs")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let batch = settings.get("batch");
        let number = |key: &str| {
            batch
                .and_then(|b| b.get(key))
                .and_then(Value::as_f64)
                .filter(|n| *n > 0.0)
                .map(|n| n as u64)
        };
        Self {
            trusted_proxy: TrustedProxy {
                headers,
                use_leftmost_ip: proxy.and_then(|p| p.get("useLeftmostIP"))
                    == Some(&Value::Bool(true)),
            },
            superuser_ips,
            batch: BatchLimits {
                enabled: batch.and_then(|b| b.get("enabled")) == Some(&Value::Bool(true)),
                max_requests: number("maxRequests").unwrap_or(0),
                timeout: number("timeout").map_or(DEFAULT_BATCH_TIMEOUT, Duration::from_secs),
                max_body_size: number("maxBodySize").unwrap_or(DEFAULT_BATCH_BODY),
            },
            rate_limits: RateLimits::from_settings(settings),
            epoch: EPOCHS.fetch_add(1, Ordering::Relaxed) + 1,
        }
    }

    /// Reads the policy from settings that replace those of `previous`: the rate limit
    /// counters carry on when the rate limit settings did not change.
    pub fn after(settings: &Value, previous: &Policy) -> Self {
        let mut next = Self::from_settings(settings);
        if next.rate_limits == previous.rate_limits {
            next.epoch = previous.epoch;
        }
        next
    }

    /// The request's addresses. `peer` is the TCP peer; `header` gives the last value of a
    /// request header by name; `peer_may_forward` says whether this peer may speak for a
    /// client at all (the node's own trusted proxy list).
    pub fn client_addr<'a>(
        &self,
        peer: IpAddr,
        peer_may_forward: bool,
        header: impl Fn(&str) -> Option<&'a str>,
    ) -> ClientAddr {
        let remote = expanded(peer.to_canonical());
        let real = peer_may_forward
            .then(|| self.trusted_proxy.forwarded(header))
            .flatten()
            .unwrap_or_else(|| remote.clone());
        ClientAddr { remote, real }
    }

    /// Whether a superuser may act from `ip` (always, when `superuserIPs` is empty).
    pub fn superuser_allowed(&self, ip: &str) -> bool {
        self.superuser_ips.is_empty() || ip_in_list(&self.superuser_ips, ip)
    }
}

impl TrustedProxy {
    /// The client address named by the first configured header that holds a valid one.
    fn forwarded<'a>(&self, header: impl Fn(&str) -> Option<&'a str>) -> Option<String> {
        for name in &self.headers {
            let Some(list) = header(name).filter(|v| !v.is_empty()) else {
                continue;
            };
            let valid = |item: &str| item.trim().parse::<IpAddr>().ok();
            let found = if self.use_leftmost_ip {
                list.split(',').find_map(valid)
            } else {
                list.rsplit(',').find_map(valid)
            };
            if let Some(ip) = found {
                return Some(expanded(ip));
            }
        }
        None
    }
}

/// An address as PocketBase writes it: IPv4 dotted, IPv6 as eight groups of four hex digits.
pub fn expanded(ip: IpAddr) -> String {
    match ip {
        // Every request's address: written digit by digit, without the formatting machinery.
        IpAddr::V4(v4) => {
            let mut out = String::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
            out
        }
        IpAddr::V6(v6) => {
            let groups = v6.segments().map(|g| format!("{g:04x}"));
            groups.join(":")
        }
    }
}

/// Whether `ip` is one of the addresses or lies in one of the `addr/bits` subnets of `list`.
/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is not the IPv4 address, as in
/// PocketBase.
pub fn ip_in_list(list: &[String], ip: &str) -> bool {
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    list.iter().any(|item| in_subnet(ip, item))
}

/// Whether `item` is an IP address or a CIDR subnet (`superuserIPs`, `excludedIPs`).
pub fn is_ip_or_subnet(item: &str) -> bool {
    match item.split_once('/') {
        Some((addr, bits)) => match (addr.parse::<IpAddr>(), bits.parse::<u32>()) {
            (Ok(IpAddr::V4(_)), Ok(bits)) => bits <= 32 && !bits_has_sign(item),
            (Ok(IpAddr::V6(_)), Ok(bits)) => bits <= 128 && !bits_has_sign(item),
            _ => false,
        },
        None => item.parse::<IpAddr>().is_ok(),
    }
}

fn bits_has_sign(item: &str) -> bool {
    item.rsplit('/')
        .next()
        .is_some_and(|b| b.starts_with('+') || b.is_empty())
}

/// Whether `ip` equals an address or lies in an `addr/bits` subnet.
fn in_subnet(ip: IpAddr, item: &str) -> bool {
    let (addr, bits) = match item.split_once('/') {
        Some((addr, bits)) => match bits.parse::<u32>() {
            Ok(bits) => (addr, Some(bits)),
            Err(_) => return false,
        },
        None => (item, None),
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return false;
    };
    match (ip, addr) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            masked(u32::from(a).into(), u32::from(b).into(), 32, bits)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => masked(u128::from(a), u128::from(b), 128, bits),
        _ => false,
    }
}

fn masked(a: u128, b: u128, width: u32, bits: Option<u32>) -> bool {
    let bits = bits.unwrap_or(width);
    if bits > width {
        return false;
    }
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (a >> shift) == (b >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(settings: Value) -> Policy {
        Policy::from_settings(&settings)
    }

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        }
    }

    #[test]
    fn ipv4_addresses_are_written_as_dotted_decimals() {
        // Every octet value in every position, against the standard library's writing.
        for octet in 0..=255u8 {
            for ip in [
                std::net::Ipv4Addr::new(octet, 0, 9, 255),
                std::net::Ipv4Addr::new(10, octet, 100, 99),
                std::net::Ipv4Addr::new(255, 1, octet, 10),
                std::net::Ipv4Addr::new(0, 200, 7, octet),
            ] {
                assert_eq!(expanded(IpAddr::V4(ip)), ip.to_string());
            }
        }
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));

    #[test]
    fn without_trusted_headers_the_peer_is_the_client() {
        let p = policy(json!({}));
        let addr = p.client_addr(PEER, true, headers(&[("X-Forwarded-For", "10.0.0.1")]));
        assert_eq!(addr.real, "127.0.0.1");
        assert_eq!(addr.remote, "127.0.0.1");
    }

    #[test]
    fn a_trusted_header_names_the_client_rightmost_first() {
        let p = policy(json!({"trustedProxy": {"headers": ["X-Real-IP", "X-Forwarded-For"]}}));
        let pick = |pairs: &[(&str, &str)]| p.client_addr(PEER, true, headers(pairs)).real;
        assert_eq!(
            pick(&[("x-forwarded-for", "10.0.0.1, 10.0.0.2")]),
            "10.0.0.2"
        );
        assert_eq!(
            pick(&[("X-Forwarded-For", "10.0.0.1, garbage")]),
            "10.0.0.1",
            "invalid entries are skipped"
        );
        assert_eq!(
            pick(&[("X-Real-IP", "10.9.9.9"), ("X-Forwarded-For", "10.0.0.1")]),
            "10.9.9.9",
            "headers are tried in their configured order"
        );
        assert_eq!(
            pick(&[("X-Real-IP", "nonsense"), ("X-Forwarded-For", "10.0.0.1")]),
            "10.0.0.1"
        );
        assert_eq!(pick(&[("X-Forwarded-For", "nonsense")]), "127.0.0.1");
        assert_eq!(
            pick(&[("X-Forwarded-For", "2001:db8::1")]),
            "2001:0db8:0000:0000:0000:0000:0000:0001"
        );
        let left = policy(
            json!({"trustedProxy": {"headers": ["X-Forwarded-For"], "useLeftmostIP": true}}),
        );
        let addr = left.client_addr(
            PEER,
            true,
            headers(&[("X-Forwarded-For", "x, 10.0.0.1, 10.0.0.2")]),
        );
        assert_eq!(addr.real, "10.0.0.1");
    }

    #[test]
    fn a_peer_that_may_not_forward_is_the_client_whatever_it_sends() {
        let p = policy(json!({"trustedProxy": {"headers": ["X-Forwarded-For"]}}));
        let addr = p.client_addr(PEER, false, headers(&[("X-Forwarded-For", "10.0.0.1")]));
        assert_eq!(addr.real, "127.0.0.1");
    }

    #[test]
    fn an_ipv4_peer_on_a_dual_stack_socket_is_written_as_ipv4() {
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        let addr = policy(json!({})).client_addr(mapped, true, headers(&[]));
        assert_eq!(addr.remote, "10.1.2.3");
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(
            policy(json!({})).client_addr(v6, true, headers(&[])).real,
            "0000:0000:0000:0000:0000:0000:0000:0001"
        );
    }

    #[test]
    fn superuser_ips_take_addresses_and_subnets() {
        let p = policy(json!({"superuserIPs": ["127.0.0.1", "10.20.0.0/16", "2001:db8::/32"]}));
        assert!(p.superuser_allowed("127.0.0.1"));
        assert!(p.superuser_allowed("10.20.255.1"));
        assert!(!p.superuser_allowed("10.21.0.1"));
        assert!(p.superuser_allowed("2001:0db8:0000:0000:0000:0000:0000:0001"));
        assert!(!p.superuser_allowed("0000:0000:0000:0000:0000:ffff:7f00:0001"));
        assert!(!p.superuser_allowed("garbage"));
        assert!(policy(json!({"superuserIPs": []})).superuser_allowed("1.2.3.4"));
    }

    #[test]
    fn ips_and_subnets_are_recognised() {
        for good in ["1.2.3.4", "10.0.0.0/8", "::1", "2001:db8::/32", "0.0.0.0/0"] {
            assert!(is_ip_or_subnet(good), "{good}");
        }
        for bad in [
            "",
            "nope",
            "10.0.0.0/33",
            "::/129",
            "1.2.3.4/",
            "1.2.3.4/+8",
            "1.2.3",
        ] {
            assert!(!is_ip_or_subnet(bad), "{bad}");
        }
    }

    #[test]
    fn rate_limit_counters_restart_only_when_the_rate_limits_change() {
        let rules = json!({"enabled": true, "rules": [{"label": "/api/", "duration": 1, "maxRequests": 1}]});
        let first = policy(json!({"rateLimits": rules}));
        let renamed = Policy::after(
            &json!({"rateLimits": rules, "meta": {"appName": "x"}}),
            &first,
        );
        assert_eq!(renamed.epoch, first.epoch);
        let off = Policy::after(&json!({"rateLimits": {"enabled": false}}), &renamed);
        assert_ne!(off.epoch, first.epoch);
        let again = Policy::after(&json!({"rateLimits": rules}), &off);
        assert_ne!(
            again.epoch, first.epoch,
            "the same rules again count afresh"
        );
    }

    #[test]
    fn batch_limits_fall_back_as_pocketbase_does() {
        let p = policy(
            json!({"batch": {"enabled": true, "maxRequests": 5, "timeout": 0, "maxBodySize": 0}}),
        );
        assert_eq!(
            p.batch,
            BatchLimits {
                enabled: true,
                max_requests: 5,
                timeout: Duration::from_secs(3),
                max_body_size: 128 << 20
            }
        );
        let p = policy(
            json!({"batch": {"enabled": true, "maxRequests": 5, "timeout": 1, "maxBodySize": 100}}),
        );
        assert_eq!(p.batch.timeout, Duration::from_secs(1));
        assert_eq!(p.batch.max_body_size, 100);
    }
}
