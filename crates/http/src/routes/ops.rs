//! Operations endpoints: liveness, readiness and Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::AppState;

/// `GET /livez`: the process answers. Never touches a backend, so a slow database does not get
/// the process restarted.
pub async fn livez() -> &'static str {
    "ok"
}

/// `GET /readyz`: every backend answers and the node is not draining. The body says which check
/// failed.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let (store, metadata) = tokio::join!(state.ports.blobs.check(), state.ports.repo.check());
    let describe = |r: &imgd_core::Result<()>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.to_string(),
    };
    let draining = state.is_draining();
    let ready = store.is_ok() && metadata.is_ok() && !draining;
    // Coordination does not gate readiness: without Redis a node still serves what is stored
    // and renders under local locks; the detail says so.
    let placement = state.cluster.placement();
    let members: Vec<String> = placement
        .members()
        .iter()
        .map(|m| m.id.to_string())
        .collect();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": { "blob_store": describe(&store), "metadata": describe(&metadata), "draining": draining },
        "cluster": {
            "node_id": state.cluster.node_id(),
            "coordination": placement.coordination(),
            "members": members,
        },
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
