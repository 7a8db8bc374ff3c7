//! The route table.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::error::error_response;
use crate::routes::{delivery, images, ops};
use crate::state::AppState;

/// Builds the router. Testable without a socket (`tower::ServiceExt::oneshot`).
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        // Uploads stream to disk and are capped by the ingest limit, not axum's 2 MB default.
        .route(
            "/images",
            post(images::upload)
                .get(images::list)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/images/{id}",
            get(images::get).patch(images::patch).delete(images::delete),
        );
    Router::new()
        .nest("/v1", api)
        .route("/i/{id}", get(delivery::original))
        .route("/i/{id}/{options}", get(delivery::variant))
        .route(
            "/internal/v1/i/{id}/{options}",
            get(delivery::internal_variant),
        )
        .route("/livez", get(ops::livez))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(crate::middleware::metrics::track))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(|_| -> Response {
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error".into(),
            )
        }))
        .with_state(state)
}

async fn not_found() -> impl IntoResponse {
    error_response(StatusCode::NOT_FOUND, "not_found", "no such route".into())
}
