//! The `/v1` gate, in the order a request meets it: the client address's rate, the bearer key,
//! the key's tenant (disabled tenants stop here), the role the route declares, then the key's
//! own rates (API, and uploads on upload routes). Deny by default: a route whose OpenAPI
//! operation declares no role is refused for everyone, and a test fails on it.
//!
//! Every answer, allowed or not, carries `RateLimit-Policy` and `RateLimit` headers (the IETF
//! httpapi draft's structured form) for the tightest limit that applied.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use imgd_core::Error;
use imgd_core::model::Role;
use imgd_core::port::{Rate, RateDecision};
use imgd_core::service::auth::Principal;

use crate::error::ApiError;
use crate::state::AppState;

/// The role each `/v1` operation requires, read from its OpenAPI declaration.
#[derive(Clone, Debug, Default)]
pub struct RouteRoles(HashMap<String, Vec<(Method, Role)>>);

impl RouteRoles {
    /// Reads `security(("bearer" = ["ROLE"]))` off every operation of `doc`. Operations without
    /// exactly one known role are left out, which denies them.
    pub fn from_openapi(doc: &utoipa::openapi::OpenApi) -> Self {
        let mut roles: HashMap<String, Vec<(Method, Role)>> = HashMap::new();
        for (path, item) in &doc.paths.paths {
            for (method, operation) in operations(item) {
                if let Some(role) = declared_role(operation) {
                    roles.entry(path.clone()).or_default().push((method, role));
                }
            }
        }
        RouteRoles(roles)
    }

    /// The methods declared on the route template `path` (for `405` and `Allow`).
    pub fn methods(&self, path: &str) -> Vec<Method> {
        let mut methods: Vec<Method> = self
            .0
            .get(path)
            .map(|declared| declared.iter().map(|(m, _)| m.clone()).collect())
            .unwrap_or_default();
        methods.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        methods
    }

    /// The role `method` on the route template `path` requires; `None` denies.
    pub fn required(&self, method: &Method, path: &str) -> Option<Role> {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        // Looked up on every /v1 request: by &str and a short scan, no allocation.
        self.0
            .get(path)?
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, role)| *role)
    }
}

/// The operations of a path item with their methods.
pub fn operations(
    item: &utoipa::openapi::PathItem,
) -> Vec<(Method, &utoipa::openapi::path::Operation)> {
    [
        (Method::GET, &item.get),
        (Method::POST, &item.post),
        (Method::PUT, &item.put),
        (Method::PATCH, &item.patch),
        (Method::DELETE, &item.delete),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.as_ref().map(|op| (m, op)))
    .collect()
}

/// The single role an operation's security requirement names.
pub fn declared_role(operation: &utoipa::openapi::path::Operation) -> Option<Role> {
    let requirements = operation.security.as_ref()?;
    let [requirement] = requirements.as_slice() else {
        return None;
    };
    // SecurityRequirement keeps its map private; its JSON form is {"bearer": ["role"]}.
    let json = serde_json::to_value(requirement).ok()?;
    let scopes = json.get("bearer")?.as_array()?;
    let [role] = scopes.as_slice() else {
        return None;
    };
    Role::from_name(role.as_str()?)
}

/// Per-request limits of the API.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApiLimits {
    /// Per client address, before authentication (so key guessing is throttled too).
    pub client: Option<Rate>,
    /// Per API key.
    pub key: Option<Rate>,
    /// Per API key, on upload routes, on top of `key`.
    pub upload: Option<Rate>,
}

/// The tightest limit seen so far in this request, for the response headers.
struct Tightest {
    name: &'static str,
    rate: Rate,
    remaining: u32,
    reset: Duration,
}

impl Tightest {
    fn headers(&self, headers: &mut HeaderMap) {
        let window = self.rate.interval * self.rate.burst;
        let policy = format!(
            "\"{}\";q={};w={}",
            self.name,
            self.rate.burst,
            window.as_secs().max(1)
        );
        let now = format!(
            "\"{}\";r={};t={}",
            self.name,
            self.remaining,
            self.reset.as_millis().div_ceil(1000)
        );
        for (name, value) in [("ratelimit-policy", policy), ("ratelimit", now)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
}

/// Applies one limit; a denial becomes a 429 carrying the limit's headers.
async fn spend(
    state: &AppState,
    name: &'static str,
    key: String,
    rate: Option<Rate>,
    tightest: &mut Option<Tightest>,
) -> Result<(), Response> {
    let Some(rate) = rate else { return Ok(()) };
    let decision = state
        .limiter
        .check(&key, rate)
        .await
        .map_err(|e| ApiError(e).into_response())?;
    let (remaining, reset, limited) = match decision {
        RateDecision::Allowed { remaining } => (
            remaining,
            rate.interval * (rate.burst.saturating_sub(remaining)),
            None,
        ),
        RateDecision::Limited { retry_after } => (0, retry_after, Some(retry_after)),
    };
    if tightest.as_ref().is_none_or(|t| remaining < t.remaining) || limited.is_some() {
        *tightest = Some(Tightest {
            name,
            rate,
            remaining,
            reset,
        });
    }
    if let Some(retry_after) = limited {
        let mut response = ApiError(Error::RateLimited { retry_after }).into_response();
        if let Some(t) = tightest {
            t.headers(response.headers_mut());
        }
        return Err(response);
    }
    Ok(())
}

/// The client's address: the configured proxy header's last hop when set, else the peer.
fn client_address(state: &AppState, request: &Request) -> String {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>();
    client_address_of(state, request.headers(), peer.map(|c| c.0))
}

/// [`client_address`] from its parts, for handlers outside the `/v1` gate.
pub(crate) fn client_address_of(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> String {
    if let Some(name) = &state.client_ip_header
        && let Some(value) = headers.get(name).and_then(|v| v.to_str().ok())
        && let Some(last) = value.rsplit(',').next().map(str::trim)
        && !last.is_empty()
    {
        return last.to_owned();
    }
    peer.map_or_else(|| "unknown".to_owned(), |p| p.ip().to_string())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

/// True for routes that take uploads.
fn is_upload(method: &Method, route: &str) -> bool {
    method == Method::POST && route == "/v1/images"
}

/// The gate. State: the app and the route roles.
pub async fn gate(
    State((state, roles)): State<(AppState, Arc<RouteRoles>)>,
    mut request: Request,
    next: Next,
) -> Response {
    let mut tightest = None;
    if state.api_limits.client.is_some() {
        let key = format!("client:{}", client_address(&state, &request));
        let rate = state.api_limits.client;
        if let Err(denied) = spend(&state, "client", key, rate, &mut tightest).await {
            return denied;
        }
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    if roles.required(request.method(), &route).is_none() {
        return with_limits(undeclared(&roles, &route), &tightest);
    }
    let principal = match admit(&state, &roles, request.method(), &route, request.headers()).await {
        Ok(p) => p,
        Err(e) => return with_limits(e.into_response(), &tightest),
    };
    let key_limits = [
        ("key", state.api_limits.key),
        (
            "upload",
            state
                .api_limits
                .upload
                .filter(|_| is_upload(request.method(), &route)),
        ),
    ];
    for (name, rate) in key_limits {
        if rate.is_none() {
            continue;
        }
        let key = format!("{name}:{}", principal.key_id);
        if let Err(denied) = spend(&state, name, key, rate, &mut tightest).await {
            return denied;
        }
    }
    request.extensions_mut().insert(principal);
    with_limits(next.run(request).await, &tightest)
}

/// A method the route does not declare: 405 with `Allow` when it declares others, else 403
/// (a route with no declared role at all is closed to everyone).
fn undeclared(roles: &RouteRoles, route: &str) -> Response {
    let methods = roles.methods(route);
    if methods.is_empty() {
        tracing::error!(route, "route declares no role; denied");
        return ApiError(Error::Forbidden).into_response();
    }
    let allow = methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let mut response = crate::error::error_response(
        imgd_core::Code::MethodNotAllowed,
        format!("allowed: {allow}"),
    );
    if let Ok(value) = HeaderValue::from_str(&allow) {
        response
            .headers_mut()
            .insert(axum::http::header::ALLOW, value);
    }
    response
}

fn with_limits(mut response: Response, tightest: &Option<Tightest>) -> Response {
    if let Some(t) = tightest {
        t.headers(response.headers_mut());
    }
    response
}

/// Authenticates the key and checks its tenant and role.
async fn admit(
    state: &AppState,
    roles: &RouteRoles,
    method: &Method,
    route: &str,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    let secret = bearer(headers).ok_or(Error::Unauthorized)?;
    let principal = state.auth.authenticate(secret).await?;
    if state.tenants.cached(&principal.tenant).await?.disabled {
        return Err(Error::TenantDisabled.into());
    }
    let required = roles.required(method, route).ok_or(Error::Forbidden)?;
    if !principal.role.allows(required) {
        return Err(Error::Forbidden.into());
    }
    Ok(principal)
}
