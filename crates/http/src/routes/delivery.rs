//! `/i/{id}` and `/i/{id}/{options}`: public delivery with full HTTP caching semantics.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use imgd_core::id::ImageId;
use imgd_core::service::delivery::{Delivery, Payload};

use crate::conditional::{RangeOutcome, not_modified, range};
use crate::error::{ApiError, error_response};
use crate::state::AppState;

/// A year, the longest `max-age` caches honour: content at a URL never changes.
const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// `GET`/`HEAD /i/{id}`.
pub async fn original(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let delivery = state.delivery.original(&ImageId::parse(&id)?).await?;
    respond(&state, &delivery, &method, &headers).await
}

/// `GET`/`HEAD /i/{id}/{options}`: served here when this node owns the variant (or runs alone),
/// else relayed from its owner, else (owner silent) served here anyway.
pub async fn variant(
    State(state): State<AppState>,
    Path((id, options)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve_variant(&state, &id, &options, &method, &headers, true).await
}

/// `GET`/`HEAD /internal/v1/i/{id}/{options}`: a peer forwarding a variant this node owns.
/// Authenticated by the cluster secret; never forwarded again.
pub async fn internal_variant(
    State(state): State<AppState>,
    Path((id, options)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !state.cluster.is_peer(&headers) {
        return Err(imgd_core::Error::Unauthorized.into());
    }
    serve_variant(&state, &id, &options, &method, &headers, false).await
}

async fn serve_variant(
    state: &AppState,
    id: &str,
    options: &str,
    method: &Method,
    headers: &HeaderMap,
    may_forward: bool,
) -> Result<Response, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let plan = state
        .delivery
        .plan_variant(&ImageId::parse(id)?, options, accept)
        .await?;
    let owner = may_forward
        .then(|| state.cluster.owner_elsewhere(&plan.key))
        .flatten();
    if let Some(owner) = owner {
        let path = format!("{id}/{options}");
        match state.cluster.forward(&owner, &path, method, headers).await {
            Ok(relayed) => return Ok(relayed),
            Err(e) => {
                tracing::warn!(owner = %owner.id, error = %e, "serving a variant its owner did not")
            }
        }
    }
    let delivery = state.delivery.deliver(&plan).await?;
    respond(state, &delivery, method, headers).await
}

/// Validators and caching headers shared by 200, 206 and 304.
fn caching_headers(delivery: &Delivery) -> HeaderMap {
    let mut h = HeaderMap::new();
    let etag = format!("\"{}\"", delivery.etag);
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex etag is a valid header"),
    );
    let modified = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(delivery.last_modified.max(0) as u64);
    h.insert(
        header::LAST_MODIFIED,
        HeaderValue::from_str(&httpdate::fmt_http_date(modified)).expect("http date"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
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
    method: &Method,
    request: &HeaderMap,
) -> Result<Response, ApiError> {
    let mut response = Response::new(Body::empty());
    *response.headers_mut() = caching_headers(delivery);
    if delivery.cache.is_some() {
        // Which node served the variant: the owner, when it arrived through another node.
        let node = state.cluster.node_header().clone();
        response.headers_mut().insert("x-imgd-node", node);
    }
    if not_modified(request, &delivery.etag, delivery.last_modified) {
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
            &delivery.etag,
            delivery.last_modified,
        )
    } else {
        RangeOutcome::Full
    };
    let (status, range) = match requested {
        RangeOutcome::Full => (StatusCode::OK, None),
        RangeOutcome::Partial(r) => (StatusCode::PARTIAL_CONTENT, Some(r)),
        RangeOutcome::Unsatisfiable => {
            let mut unsatisfiable = error_response(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
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
