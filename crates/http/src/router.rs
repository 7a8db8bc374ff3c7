//! The route table.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::get;
use imgd_core::Code;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::error_response;
use crate::middleware::access::{self, RouteRoles};
use crate::openapi::ApiDoc;
use crate::routes::{delivery, images, keys, ops, presets, sign, tenants};
use crate::state::AppState;

/// The `/v1` routes and the OpenAPI document describing them. Registering through
/// `utoipa_axum::routes!` means a handler cannot be routed without its `#[utoipa::path]`.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(images::upload, images::list))
        .routes(routes!(images::get, images::patch, images::delete))
        .routes(routes!(tenants::create, tenants::list))
        .routes(routes!(tenants::get, tenants::patch))
        .routes(routes!(tenants::usage))
        .routes(routes!(tenants::rotate_signing_key))
        .routes(routes!(tenants::retire_signing_key))
        .routes(routes!(keys::create, keys::list))
        .routes(routes!(keys::revoke))
        .routes(routes!(presets::list))
        .routes(routes!(presets::get, presets::put, presets::delete))
        .routes(routes!(presets::activate))
        .routes(routes!(presets::rollback))
        .routes(routes!(sign::sign))
        .split_for_parts()
}

/// Builds the router. Testable without a socket (`tower::ServiceExt::oneshot`).
pub fn router(state: AppState) -> Router {
    let (api, doc) = api();
    let roles = Arc::new(RouteRoles::from_openapi(&doc));
    let doc = Arc::new(doc);
    let api = api
        .route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), roles),
            access::gate,
        ))
        // Uploads stream to disk and are capped by the ingest limit; JSON bodies by their own.
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .merge(api)
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
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
        .layer(axum::middleware::from_fn(crate::middleware::observe::track))
        .with_state(state)
}

async fn not_found() -> impl IntoResponse {
    error_response(Code::NotFound, "no such route".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::access::{declared_role, operations};

    /// Deny by default, checked at build time of the table: every routed `/v1` operation names
    /// exactly one known role, so none is left to the gate's "closed to everyone" fallback.
    #[test]
    fn every_v1_operation_declares_exactly_one_role() {
        let (_, doc) = api();
        let roles = RouteRoles::from_openapi(&doc);
        let mut count = 0;
        for (path, item) in &doc.paths.paths {
            assert!(path.starts_with("/v1/"), "{path} is outside /v1");
            for (method, operation) in operations(item) {
                count += 1;
                let declared = declared_role(operation);
                assert!(declared.is_some(), "{method} {path} declares no role");
                assert_eq!(roles.required(&method, path), declared, "{method} {path}");
            }
        }
        assert_eq!(
            count, 22,
            "a new route needs a fixture in tests/integration/authz.rs too"
        );
    }

    /// OpenAPI forbids a parameter listed twice; utoipa's axum inference added each path
    /// parameter again beside the declared one while handlers took axum's `Path`.
    #[test]
    fn every_path_parameter_is_declared_exactly_once() {
        let (_, doc) = api();
        for (path, item) in &doc.paths.paths {
            let mut wanted: Vec<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            wanted.sort_unstable();
            for (method, operation) in operations(item) {
                let mut declared: Vec<&str> = operation
                    .parameters
                    .iter()
                    .flatten()
                    .filter(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Path)
                    .map(|p| p.name.as_str())
                    .collect();
                declared.sort_unstable();
                assert_eq!(declared, wanted, "{method} {path}");
            }
        }
    }

    #[test]
    fn undeclared_methods_and_routes_are_denied() {
        let (_, doc) = api();
        let roles = RouteRoles::from_openapi(&doc);
        assert_eq!(roles.required(&axum::http::Method::PUT, "/v1/images"), None);
        assert_eq!(
            roles.required(&axum::http::Method::GET, "/v1/nowhere"),
            None
        );
        assert_eq!(
            roles.required(&axum::http::Method::HEAD, "/v1/images"),
            Some(imgd_core::model::Role::Reader),
            "HEAD is GET's"
        );
    }
}
