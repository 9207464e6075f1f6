//! Host dispatch: every request goes to the platform, to one tenant, or to a JSON 404.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header::HOST};
use axum::response::{IntoResponse, Response};
use tower::{Service, ServiceExt};
use warren_api::{ApiError, ApiState};
use warren_console::Console;
use warren_control_plane::ControlPlane;
use warren_edge::Destination;

use crate::serve_cluster::{Action, ClusterNode, Route};

/// What dispatch needs: the two routers and where tenants are found (shared: a request clones
/// one pointer).
struct App {
    /// The platform domain.
    domain: String,
    /// The platform host's routes (operator API and console).
    platform: Router,
    /// The tenant API; each request carries its tenant as an extension.
    tenant_api: Router,
    /// Directory and registry.
    control: ControlPlane,
    /// This node's cluster, in cluster mode.
    cluster: Option<Arc<ClusterNode>>,
}

/// The whole HTTP surface of one Warren process.
pub fn router(
    control: ControlPlane,
    console: Console,
    domain: &str,
    api: ApiState,
    cluster: Option<Arc<ClusterNode>>,
) -> warren_edge::App {
    let platform = crate::platform::ControlPlatform::new(control.clone(), cluster.clone());
    let api = ApiState {
        platform: Some(Arc::new(platform)),
        ..api
    };
    let app = App {
        domain: domain.to_string(),
        platform: warren_operator::router(control.clone()).merge(warren_console::router(console)),
        tenant_api: warren_api::router(api),
        control,
        cluster,
    };
    warren_edge::App::new(Dispatch(Arc::new(app)))
}

/// The host dispatch as the service the edge hands every request to. No router stands in
/// front of it: a router whose only route is a fallback still looked the path up, cloned its
/// boxed route and wrapped three futures around the handler's (about 4,400 instructions a
/// request; this service, boxed itself, saves about half of them).
#[derive(Clone)]
struct Dispatch(Arc<App>);

impl Service<Request> for Dispatch {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    /// One function or the other, so that a single server's requests do not carry the
    /// cluster's (larger) future: each request's future is boxed, copied whole.
    fn call(&mut self, request: Request) -> Self::Future {
        let app = self.0.clone();
        if app.cluster.is_some() {
            Box::pin(async move { Ok(dispatch_clustered(app, request).await) })
        } else {
            Box::pin(async move { Ok(dispatch(app, request).await) })
        }
    }
}

async fn dispatch_clustered(app: Arc<App>, request: Request) -> Response {
    match &app.cluster {
        Some(cluster) => cluster_dispatch(&app, cluster, request).await,
        None => dispatch(app.clone(), request).await,
    }
}

async fn dispatch(app: Arc<App>, request: Request) -> Response {
    let host = request
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .map(str::to_owned);
    match warren_edge::classify(host.as_deref(), &app.domain) {
        Destination::Platform => forward(app.platform.clone(), request).await,
        Destination::Tenant(slug) => {
            let info = match app.control.directory.resolve(&slug).await {
                Ok(Some(info)) => info,
                Ok(None) => return ApiError::not_found().into_response(),
                Err(e) => return ApiError::internal(e).into_response(),
            };
            if !info.status.is_active() {
                return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "The project is suspended.")
                    .into_response();
            }
            if warren_dashboard::owns(request.uri().path()) {
                return warren_dashboard::serve(&request);
            }
            to_tenant(&app, &info, request).await
        }
        Destination::Unknown => {
            // A verified custom domain reaches its tenant exactly like `<slug>.<domain>`.
            let custom = host
                .as_deref()
                .and_then(custom_domain_name)
                .and_then(|name| app.control.directory.custom_domain(&name));
            match custom {
                Some(info) if !info.status.is_active() => {
                    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "The project is suspended.")
                        .into_response()
                }
                Some(_) if warren_dashboard::owns(request.uri().path()) => {
                    warren_dashboard::serve(&request)
                }
                Some(info) => to_tenant(&app, &info, request).await,
                None => ApiError::not_found().into_response(),
            }
        }
    }
}

/// Host dispatch in cluster mode: tenant hosts resolve through the hostname directory mirrored
/// in etcd, and each request is served here or forwarded (see [`crate::serve_cluster`]).
async fn cluster_dispatch(app: &App, cluster: &ClusterNode, mut request: Request) -> Response {
    let from_peer = match cluster.admit(&mut request).await {
        Ok(from_peer) => from_peer,
        Err(refused) => return refused,
    };
    let host = request
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .map(str::to_owned);
    let name = match warren_edge::classify(host.as_deref(), &app.domain) {
        // Boxed: the platform's future is the larger, and tenants' requests are the many.
        Destination::Platform => {
            return Box::pin(cluster_platform(app, cluster, request, from_peer)).await;
        }
        Destination::Tenant(slug) => format!(
            "{slug}.{}",
            app.domain.trim_end_matches('.').to_ascii_lowercase()
        ),
        Destination::Unknown => match host.as_deref().and_then(custom_domain_name) {
            Some(name) => name,
            None => return ApiError::not_found().into_response(),
        },
    };
    let info = match cluster.resolve(&name) {
        Some(Ok(info)) => info,
        Some(Err(answer)) => return answer,
        None => return ApiError::not_found().into_response(),
    };
    if !info.status.is_active() {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "The project is suspended.")
            .into_response();
    }
    if warren_dashboard::owns(request.uri().path()) {
        return warren_dashboard::serve(&request);
    }
    match cluster.route(info, request, from_peer).await {
        Route::Here(here) => {
            let (info, request) = *here;
            to_tenant(app, &info, request).await
        }
        Route::Answered(response) => response,
    }
}

/// A request to the platform's host in cluster mode: a tenant action or move this node must
/// answer or forward, else the platform's own routes (a write there is then shared).
async fn cluster_platform(
    app: &App,
    cluster: &ClusterNode,
    request: Request,
    from_peer: bool,
) -> Response {
    let request = match cluster
        .tenant_action(&app.control, request, from_peer)
        .await
    {
        Action::Answered(answered) => return answered,
        Action::Here(request) => return forward(app.platform.clone(), request).await,
        Action::Other(request) => request,
    };
    let request = match cluster.moves(&app.control, request, from_peer).await {
        Ok(answered) => return answered,
        Err(request) => request,
    };
    let request = match cluster.platform(request, from_peer).await {
        Ok(request) => request,
        Err(answered) => return answered,
    };
    let writes = crate::serve_cluster::is_write(&request);
    let response = forward(app.platform.clone(), request).await;
    if writes {
        cluster.after_platform_write(&app.control).await;
    }
    response
}

/// Hands `request` to tenant `info`'s API.
async fn to_tenant(
    app: &App,
    info: &warren_control_plane::TenantInfo,
    mut request: Request,
) -> Response {
    let tenant = app.control.registry.get(&info.id).await;
    if let Ok(tenant) = &tenant {
        follow_public_url(&app.control, tenant, info);
        crate::metered::apply_limits(tenant.meter(), &info.limits);
        crate::metered::apply_shipping(tenant, &info.limits);
    }
    match tenant {
        Ok(tenant) if app.control.metering.enabled() => {
            let api = app.tenant_api.clone();
            crate::metered::serve(&app.control.metering, api, info, tenant, request).await
        }
        Ok(tenant) => {
            request.extensions_mut().insert(tenant);
            forward(app.tenant_api.clone(), request).await
        }
        Err(warren_tenant::Error::NotFound) => ApiError::not_found().into_response(),
        Err(warren_tenant::Error::Draining) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The project is briefly closed while its files change (a restore or a command); try again shortly.",
        )
        .into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// Keeps `tenant`'s public URL the one `info` is reached at: its verified custom domain when it
/// has one, else its host under the platform domain (with the platform's scheme and public port
/// either way). Checked at every request; built only when it changed.
fn follow_public_url(
    control: &ControlPlane,
    tenant: &warren_tenant::Tenant,
    info: &warren_control_plane::TenantInfo,
) {
    let domain = control.directory.domain_of(&info.id);
    let current = tenant.public_url().is_some_and(|url| match &domain {
        Some(domain) => control.urls.is_host_url(&url, domain),
        None => control.urls.is_tenant_url(&url, &info.slug),
    });
    if !current {
        tenant.set_public_url(&match domain {
            Some(domain) => control.urls.host_url(&domain),
            None => control.urls.tenant_url(&info.slug),
        });
    }
}

/// The lowercase host name of a Host header value (no port, no trailing dot).
fn custom_domain_name(value: &str) -> Option<String> {
    let name = match value.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => value,
    };
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    warren_edge::certs::plausible_name(&name).then_some(name)
}

/// `request`'s answer from `service` (a router, or the whole application).
pub(crate) async fn forward<S>(service: S, request: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    match service.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    /// The size of the future an async handler of two arguments returns, without calling it.
    fn future_of<A, B, F: std::future::Future>(_: impl FnOnce(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every request goes through the host dispatch, whose future is boxed (copied
    /// whole): a single server's stays free of the cluster's, and the cluster's of its
    /// platform branch (10 KB, on every tenant request, before that branch was boxed).
    #[test]
    fn dispatch_futures_stay_small() {
        let single = future_of(super::dispatch);
        assert!(single <= 3 * 1024, "dispatch's future is {single} bytes");
        let clustered = future_of(super::dispatch_clustered);
        assert!(clustered <= 5 * 1024, "the cluster's is {clustered} bytes");
    }
}
