//! `/i/{id}` and `/i/{id}/{options}`: delivery with full HTTP caching semantics, under the
//! delivery policy of the image's tenant (public, signed, presets only), checked on the node the
//! client reached before any forwarding.
//!
//! `Cache-Control` follows what may change at the URL: nothing for plain options (a year,
//! immutable); a preset's meaning for URLs naming one (a minute); a signed URL's validity for
//! signed ones (until `exp`).

use axum::body::Body;
use std::net::SocketAddr;

use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use imgd_core::id::ImageId;
use imgd_core::model::{ImageRecord, now_millis};
use imgd_core::service::delivery::{Delivery, Payload, VariantPlan};
use imgd_core::service::tenancy::TenantService;

use crate::conditional::{RangeOutcome, not_modified, range};
use crate::error::{ApiError, error_response};
use crate::extract::PathParams;
use crate::forward::CLIENT_HEADER;
use crate::middleware::access::client_address_of;
use crate::state::AppState;

/// A year, the longest `max-age` caches honour: content at a URL never changes.
const CACHE_FOREVER: &str = "public, max-age=31536000, immutable";
/// For URLs naming a preset, whose active version an owner can switch.
const CACHE_PRESET: &str = "public, max-age=60";
const YEAR_SECS: u64 = 31_536_000;

/// How long caches may keep a response.
#[derive(Clone, Copy)]
enum Lifetime {
    Forever,
    Preset,
    /// Until a signed URL's `exp`, in seconds from now.
    Signed(u64),
}

impl Lifetime {
    fn header(self) -> HeaderValue {
        match self {
            Lifetime::Forever => HeaderValue::from_static(CACHE_FOREVER),
            Lifetime::Preset => HeaderValue::from_static(CACHE_PRESET),
            Lifetime::Signed(secs) => {
                HeaderValue::from_str(&format!("public, max-age={}", secs.min(YEAR_SECS)))
                    .expect("ascii")
            }
        }
    }
}

/// Applies the tenant's policy to this request and says how long the answer may be cached.
async fn admit(
    state: &AppState,
    image: &ImageRecord,
    uri: &Uri,
    presets_only: bool,
    uses_preset: bool,
) -> Result<Lifetime, ApiError> {
    let tenant = state.tenants.cached(&image.tenant).await?;
    let expires_at = TenantService::admit(&tenant, uri.path(), uri.query(), presets_only)?;
    Ok(match expires_at {
        Some(exp) => Lifetime::Signed(exp.saturating_sub((now_millis() / 1000).max(0) as u64)),
        None if uses_preset => Lifetime::Preset,
        None => Lifetime::Forever,
    })
}

/// A delivery request, however it arrived: routed, or through the delivery lane
/// ([`crate::lane`]), which answers the same requests with the same functions.
pub(crate) struct Asked<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub peer: Option<SocketAddr>,
}

/// `GET`/`HEAD /i/{id}`.
pub async fn original(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let asked = Asked {
        method: &method,
        uri: &uri,
        headers: &headers,
        peer: None,
    };
    answer_original(&state, &id, &asked).await
}

/// `GET`/`HEAD /i/{id}/{options}`: served here when this node owns the variant (or runs alone),
/// else relayed from its owner, else (owner silent) served here anyway.
pub async fn variant(
    State(state): State<AppState>,
    PathParams((id, options)): PathParams<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Result<Response, ApiError> {
    let asked = Asked {
        method: &method,
        uri: &uri,
        headers: &headers,
        peer: peer.map(|p| p.0.0),
    };
    answer_variant(&state, &id, &options, &asked).await
}

pub(crate) async fn answer_original(
    state: &AppState,
    id: &str,
    asked: &Asked<'_>,
) -> Result<Response, ApiError> {
    let image = state.delivery.image(&ImageId::parse(id)?).await?;
    let lifetime = admit(state, &image, asked.uri, false, false).await?;
    let delivery = state.delivery.original(&image);
    respond(state, &delivery, lifetime, asked.method, asked.headers).await
}

pub(crate) async fn answer_variant(
    state: &AppState,
    id: &str,
    options: &str,
    asked: &Asked<'_>,
) -> Result<Response, ApiError> {
    // Built only when renders are budgeted per client: this is the hot path.
    let client = state
        .delivery
        .charges_clients()
        .then(|| client_address_of(state, asked.headers, asked.peer));
    let public = Public {
        uri: asked.uri,
        client,
    };
    serve_variant(
        state,
        id,
        options,
        asked.method,
        asked.headers,
        Some(public),
    )
    .await
}

/// `GET`/`HEAD /internal/v1/i/{id}/{options}`: a peer forwarding a variant this node owns.
/// Authenticated by the cluster secret; never forwarded again.
pub async fn internal_variant(
    State(state): State<AppState>,
    PathParams((id, options)): PathParams<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !state.cluster.is_peer(&headers) {
        return Err(imgd_core::Error::Unauthorized.into());
    }
    serve_variant(&state, &id, &options, &method, &headers, None).await
}

/// Serves a variant. `public` is the client's request URI on the node the client reached (the
/// policy is checked there, and only such a node forwards); `None` for a peer's forward.
/// A request as a client sent it (not forwarded by a peer).
struct Public<'a> {
    uri: &'a Uri,
    /// The client's address, when renders are budgeted per client.
    client: Option<String>,
}

async fn serve_variant(
    state: &AppState,
    id: &str,
    options: &str,
    method: &Method,
    headers: &HeaderMap,
    public: Option<Public<'_>>,
) -> Result<Response, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let plan = state.delivery.plan(id, options, accept).await?;
    let lifetime = match &public {
        Some(p) => {
            admit(
                state,
                &plan.image,
                p.uri,
                plan.presets_only,
                plan.uses_preset,
            )
            .await?
        }
        None if plan.uses_preset => Lifetime::Preset,
        None => Lifetime::Forever,
    };
    // Forwarded requests name their client; public ones are the client.
    let client = match &public {
        Some(p) => p.client.as_deref(),
        None => headers.get(CLIENT_HEADER).and_then(|v| v.to_str().ok()),
    };
    let owner = public
        .as_ref()
        .and_then(|_| state.cluster.owner_elsewhere(&plan.key));
    if let Some(owner) = owner {
        // The owner parses the same grammar: the request as parsed, so it derives the same key.
        let path = format!("{}/{}", plan.image.id, plan.request.to_options());
        match state
            .cluster
            .forward(&owner, &path, method, headers, client)
            .await
        {
            Ok(mut relayed) => {
                // The owner cannot see the client's signature; the lifetime is decided here.
                if relayed.status().is_success() || relayed.status() == StatusCode::NOT_MODIFIED {
                    relayed
                        .headers_mut()
                        .insert(header::CACHE_CONTROL, lifetime.header());
                }
                // The owner's `x-imgd-animation` is relayed: it describes the bytes it made.
                return Ok(relayed);
            }
            Err(e) => {
                tracing::warn!(owner = %owner.id, error = %e, "serving a variant its owner did not")
            }
        }
    }
    let delivery = state.delivery.deliver(&plan, client).await?;
    let response = respond(state, &delivery, lifetime, method, headers).await?;
    Ok(with_still_reason(&plan, response))
}

/// Says so when an animated source was rendered as its first frame. Decided by the plan (not
/// the render), so a cached hit and a 304 say what the first render said; a node relaying an
/// owner's answer passes the owner's on.
fn with_still_reason(plan: &VariantPlan, mut response: Response) -> Response {
    if let Some(reason) = plan.still_reason() {
        response.headers_mut().insert(
            "x-imgd-animation",
            HeaderValue::from_static(reason.header()),
        );
    }
    response
}

/// Validators and caching headers shared by 200, 206 and 304.
fn caching_headers(delivery: &Delivery, lifetime: Lifetime) -> HeaderMap {
    let mut h = HeaderMap::new();
    let validators = &delivery.validators;
    h.insert(
        header::ETAG,
        HeaderValue::from_maybe_shared(validators.etag_header.clone())
            .expect("a quoted hex etag is a valid header"),
    );
    h.insert(
        header::LAST_MODIFIED,
        HeaderValue::from_maybe_shared(validators.last_modified_header.clone())
            .expect("an http date is a valid header"),
    );
    h.insert(header::CACHE_CONTROL, lifetime.header());
    if delivery.vary_accept {
        h.insert(header::VARY, HeaderValue::from_static("Accept"));
    }
    if let Some(cache) = delivery.cache {
        h.insert("x-imgd-cache", HeaderValue::from_static(cache.name()));
    }
    h
}

async fn respond(
    state: &AppState,
    delivery: &Delivery,
    lifetime: Lifetime,
    method: &Method,
    request: &HeaderMap,
) -> Result<Response, ApiError> {
    let mut response = Response::new(Body::empty());
    *response.headers_mut() = caching_headers(delivery, lifetime);
    if delivery.cache.is_some() {
        // Which node served the variant: the owner, when it arrived through another node.
        let node = state.cluster.node_header().clone();
        response.headers_mut().insert("x-imgd-node", node);
    }
    let validators = &delivery.validators;
    if not_modified(request, &validators.etag, validators.last_modified) {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(response);
    }
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(delivery.format.mime()),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let requested = if method == Method::GET {
        range(
            request,
            delivery.len,
            &validators.etag,
            validators.last_modified,
        )
    } else {
        RangeOutcome::Full
    };
    let (status, range) = match requested {
        RangeOutcome::Full => (StatusCode::OK, None),
        RangeOutcome::Partial(r) => (StatusCode::PARTIAL_CONTENT, Some(r)),
        RangeOutcome::Unsatisfiable => {
            let mut unsatisfiable = error_response(
                imgd_core::Code::RangeNotSatisfiable,
                format!("the representation has {} bytes", delivery.len),
            );
            let content_range =
                HeaderValue::from_str(&format!("bytes */{}", delivery.len)).expect("ascii");
            unsatisfiable
                .headers_mut()
                .insert(header::CONTENT_RANGE, content_range);
            return Ok(unsatisfiable);
        }
    };
    if let Some(r) = range {
        let content_range = format!("bytes {}-{}/{}", r.start, r.end, delivery.len);
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&content_range).expect("ascii"),
        );
    }
    let len = range.map_or(delivery.len, |r| r.len());
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    *response.status_mut() = status;
    if method == Method::HEAD {
        return Ok(response);
    }
    *response.body_mut() = match (&delivery.payload, range) {
        // Bytes already in memory go out as one full body: hyper writes headers and body in one
        // go instead of polling a stream.
        (Payload::Memory(bytes), None) => Body::from(bytes.clone()),
        (Payload::Memory(bytes), Some(r)) => {
            Body::from(bytes.slice(r.start as usize..=r.end as usize))
        }
        (Payload::Stored(_), _) => {
            Body::from_stream(state.delivery.open(delivery, range).await?.body)
        }
    };
    Ok(response)
}
