//! Who the client is and whether a superuser may act from there: resolves each request's
//! addresses once (the TCP peer, and the client named by a `trustedProxy` header when the peer
//! may forward) for rate limits, logs, health and login origins, and refuses superusers
//! outside `superuserIPs` with PocketBase's 403, on every route.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header::AUTHORIZATION};
use axum::response::{IntoResponse, Response};
use warren_records::policy::{ClientAddr, Policy, ip_in_list, is_ip_or_subnet};
use warren_tenant::Tenant;

use crate::error::ApiError;
use crate::extract::{Auth, strip_bearer};
use crate::router::Shared;
use crate::steps::Noted;

/// The name of the superusers' auth collection.
const SUPERUSERS: &str = "_superusers";

/// Peers that may name a client in a tenant's `trustedProxy` headers (addresses and CIDR
/// subnets, set by the operator). Empty: every peer may, as in PocketBase, where configuring
/// the headers is the tenant's own statement of trust.
#[derive(Clone, Debug, Default)]
pub struct TrustedPeers(Arc<Vec<String>>);

impl TrustedPeers {
    /// Peers from a list of addresses and subnets; the first entry that is neither is the
    /// error.
    pub fn new(list: Vec<String>) -> Result<Self, String> {
        match list.iter().find(|p| !is_ip_or_subnet(p)) {
            Some(bad) => Err(bad.clone()),
            None => Ok(Self(Arc::new(list))),
        }
    }

    /// Whether `peer` may speak for a client.
    fn allow(&self, peer: IpAddr) -> bool {
        self.0.is_empty() || ip_in_list(&self.0, &peer.to_canonical().to_string())
    }
}

/// The request's addresses: those resolved by [`resolve`] (kept in the steps' [`Noted`]),
/// else the TCP peer's.
pub(crate) fn addr(extensions: &axum::http::Extensions) -> ClientAddr {
    if let Some(noted) = extensions.get::<Noted>() {
        return noted.addr.clone();
    }
    peer_addr(extensions)
}

/// The TCP peer's addresses.
fn peer_addr(extensions: &axum::http::Extensions) -> ClientAddr {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(a)| a.ip());
    Policy::default().client_addr(peer, false, |_| None)
}

/// The last value of header `name` (the one the nearest proxy wrote).
fn last<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(name)
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
}

/// The client's addresses under the tenant's `trustedProxy` settings: the TCP peer's, or the
/// client a header names when the peer may forward.
pub(crate) fn resolve(state: &Shared, policy: &Policy, request: &Request) -> ClientAddr {
    let Some(peer) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
    else {
        return peer_addr(request.extensions());
    };
    let may_forward = !policy.trusted_proxy.headers.is_empty() && state.trusted_peers.allow(peer);
    policy.client_addr(peer, may_forward, |name| last(request.headers(), name))
}

/// The checks before a tenant's route: a superuser outside the tenant's `superuserIPs` is
/// refused, whatever the route (as PocketBase's `superuserIPs` middleware), then the tenant's
/// rate limits apply ([`crate::rates::limit_rates`]). `Err` holds the answer that refuses the
/// request. The request is lent, not moved: its 240 bytes are not copied into each step's
/// future.
pub(crate) async fn admit(
    state: &Shared,
    tenant: &Tenant,
    policy: &Policy,
    request: &mut Request,
) -> Result<(), Response> {
    guard_superuser_ips(state, tenant, policy, request).await?;
    crate::rates::limit_rates(state, tenant, policy, request).await
}

/// Refuses a superuser outside `superuserIPs`. Costs nothing while the list is empty, and
/// checks a token only when it claims a superuser and the address is outside the list.
async fn guard_superuser_ips(
    state: &Shared,
    tenant: &Tenant,
    policy: &Policy,
    request: &mut Request,
) -> Result<(), Response> {
    if policy.superuser_ips.is_empty() {
        return Ok(());
    }
    let ip = addr(request.extensions()).real;
    if policy.superuser_allowed(&ip) || !claims_superuser(tenant, request.headers()) {
        return Ok(());
    }
    match authenticate(state, request).await {
        Ok(caller) if caller.is_superuser() => Err(refused().into_response()),
        Ok(_) => Ok(()),
        Err(e) => Err(e.into_response()),
    }
}

/// The request's caller, as its route's `Auth` extractor will see it. Boxed: only tenants with
/// `superuserIPs` or rate limits take this path, and its future stays out of every request's.
pub(crate) async fn authenticate(
    state: &Shared,
    request: &mut Request,
) -> Result<warren_records::Caller, ApiError> {
    let (mut parts, body) = std::mem::take(request).into_parts();
    let caller = Box::pin(Auth::from_request_parts(&mut parts, state)).await;
    *request = Request::from_parts(parts, body);
    caller.map(|Auth(caller)| caller)
}

/// Whether the request's token names the superusers' collection (not yet verified).
fn claims_superuser(tenant: &Tenant, headers: &HeaderMap) -> bool {
    let Some(token) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(strip_bearer)
        .filter(|t| !t.is_empty())
    else {
        return false;
    };
    warren_records::auth::Token::peek(&tenant.catalog(), token)
        .is_some_and(|t| t.collection_name() == SUPERUSERS)
}

/// PocketBase's answer to a superuser outside `superuserIPs`.
fn refused() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "You are not allowed to perform this request.",
    )
}

/// Refuses a superuser sign-in from outside the tenant's `superuserIPs` (a successful login
/// of `collection` from `ip`).
pub(crate) async fn check_superuser_login(
    tenant: &Tenant,
    collection: &str,
    ip: &str,
) -> Result<(), ApiError> {
    if collection != SUPERUSERS {
        return Ok(());
    }
    if tenant.policy().await?.superuser_allowed(ip) {
        Ok(())
    } else {
        Err(refused())
    }
}

/// The client address as PocketBase's `RealIP`: from a trusted proxy header, else the peer.
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(addr(&parts.extensions).real))
    }
}
