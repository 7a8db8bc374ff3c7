//! `/v1/images`: the management API for a tenant's images.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use imgd_core::Error;
use imgd_core::id::ImageId;
use imgd_core::model::{Cursor, ImagePatch, Role, UserMetadata};
use imgd_core::service::ingest::UploadMeta;
use serde::Serialize;

use crate::error::ApiError;
use crate::extract::{Caller, query_map, split_tags};
use crate::state::AppState;
use crate::view::ImageView;

/// Most file parts one multipart request may carry.
const MAX_PARTS: usize = 32;

type ApiResult<T> = Result<T, ApiError>;

/// `POST /v1/images`: multipart (`file` parts; `tags` and `metadata` fields apply to the files
/// after them) or a raw body (`?filename=&tags=a,b`).
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    request: Request,
) -> ApiResult<Response> {
    let tenant = caller.require(Role::Writer)?.tenant.clone();
    let query = query_map(query.as_deref());
    let meta = UploadMeta {
        filename: query.get("filename").cloned(),
        tags: split_tags(query.get("tags")),
        metadata: UserMetadata::new(),
    };
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(request, &state)
            .await
            .map_err(|e| Error::invalid("malformed_multipart", e.body_text()))?;
        return upload_multipart(&state, &tenant, multipart, meta).await;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > state.ingest.max_upload_bytes()) {
        // Refuse before reading a byte of an upload that announces it is too big.
        return Err(Error::PayloadTooLarge {
            limit: state.ingest.max_upload_bytes(),
        }
        .into());
    }
    let body = request
        .into_body()
        .into_data_stream()
        .map(|chunk| chunk.map_err(|e| Error::invalid("body_read_failed", e.to_string())));
    let image = state.ingest.ingest(&tenant, body, meta).await?;
    Ok((
        StatusCode::CREATED,
        Json(ImageView::new(&image, &state.public_url)),
    )
        .into_response())
}

/// One file's outcome in a multi-file upload.
#[derive(Serialize)]
struct PartResult {
    filename: Option<String>,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<ImageView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<crate::error::ErrorBody<'static>>,
}

fn field_stream(
    field: axum::extract::multipart::Field<'_>,
) -> impl Stream<Item = Result<Bytes, Error>> + Send + '_ {
    field.map(|chunk| chunk.map_err(|e| Error::invalid("malformed_multipart", e.body_text())))
}

async fn upload_multipart(
    state: &AppState,
    tenant: &imgd_core::id::TenantId,
    mut multipart: Multipart,
    mut meta: UploadMeta,
) -> ApiResult<Response> {
    let mut results: Vec<(Option<String>, Result<imgd_core::model::ImageRecord, Error>)> =
        Vec::new();
    let bad_part = |e: axum::extract::multipart::MultipartError| {
        Error::invalid("malformed_multipart", e.body_text())
    };
    while let Some(field) = multipart.next_field().await.map_err(bad_part)? {
        match field.name().unwrap_or("") {
            "file" | "file[]" | "files" => {
                if results.len() == MAX_PARTS {
                    return Err(Error::invalid(
                        "too_many_parts",
                        format!("at most {MAX_PARTS} files per request"),
                    )
                    .into());
                }
                let filename = field.file_name().map(str::to_owned);
                let part_meta = UploadMeta {
                    filename: filename.clone().or_else(|| meta.filename.clone()),
                    ..meta.clone()
                };
                let outcome = state
                    .ingest
                    .ingest(tenant, field_stream(field), part_meta)
                    .await;
                results.push((filename, outcome));
            }
            "tags" => meta.tags = split_tags(Some(&field.text().await.map_err(bad_part)?)),
            "metadata" => {
                let text = field.text().await.map_err(bad_part)?;
                meta.metadata = serde_json::from_str(&text).map_err(|e| {
                    Error::invalid(
                        "invalid_metadata",
                        format!("metadata must be a JSON object: {e}"),
                    )
                })?;
            }
            other => {
                return Err(Error::invalid(
                    "unknown_field",
                    format!("unknown form field {other:?}"),
                )
                .into());
            }
        }
    }
    match results.len() {
        0 => Err(Error::invalid("missing_file", "no `file` part in the form").into()),
        1 => {
            let image = results.pop().expect("one result").1?;
            Ok((
                StatusCode::CREATED,
                Json(ImageView::new(&image, &state.public_url)),
            )
                .into_response())
        }
        _ => {
            let all_ok = results.iter().all(|(_, r)| r.is_ok());
            let parts: Vec<PartResult> = results
                .into_iter()
                .map(|(filename, outcome)| match outcome {
                    Ok(image) => PartResult {
                        filename,
                        status: 201,
                        image: Some(ImageView::new(&image, &state.public_url)),
                        error: None,
                    },
                    Err(e) => PartResult {
                        filename,
                        status: crate::error::status_of(&e).as_u16(),
                        image: None,
                        error: Some(crate::error::ErrorBody {
                            code: e.code(),
                            message: e.to_string(),
                        }),
                    },
                })
                .collect();
            let status = if all_ok {
                StatusCode::CREATED
            } else {
                StatusCode::MULTI_STATUS
            };
            Ok((status, Json(serde_json::json!({ "results": parts }))).into_response())
        }
    }
}

/// A page of images.
#[derive(Serialize)]
pub struct ListView {
    pub images: Vec<ImageView>,
    pub next_cursor: Option<String>,
}

/// `GET /v1/images?limit=&cursor=&tag=`: newest first.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<ListView>> {
    let tenant = &caller.require(Role::Reader)?.tenant;
    let query = query_map(query.as_deref());
    let limit = match query.get("limit") {
        Some(l) => l
            .parse()
            .map_err(|_| Error::invalid("invalid_limit", "limit must be a number"))?,
        None => 50,
    };
    let after = query.get("cursor").map(|c| Cursor::decode(c)).transpose()?;
    let page = state
        .catalog
        .list(tenant, limit, after, query.get("tag").cloned())
        .await?;
    Ok(Json(ListView {
        images: page
            .images
            .iter()
            .map(|i| ImageView::new(i, &state.public_url))
            .collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// `GET /v1/images/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ImageView>> {
    let tenant = &caller.require(Role::Reader)?.tenant;
    let image = state.catalog.get(tenant, &ImageId::parse(&id)?).await?;
    Ok(Json(ImageView::new(&image, &state.public_url)))
}

/// `PATCH /v1/images/{id}` with `{"tags": [...], "metadata": {...}}`; unknown fields are refused.
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<ImageView>> {
    let tenant = &caller.require(Role::Writer)?.tenant;
    let patch: ImagePatch =
        serde_json::from_slice(&body).map_err(|e| Error::invalid("invalid_json", e.to_string()))?;
    let image = state
        .catalog
        .patch(tenant, &ImageId::parse(&id)?, patch)
        .await?;
    Ok(Json(ImageView::new(&image, &state.public_url)))
}

/// `DELETE /v1/images/{id}`: 204.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let tenant = &caller.require(Role::Writer)?.tenant;
    state.catalog.delete(tenant, &ImageId::parse(&id)?).await?;
    Ok((StatusCode::NO_CONTENT, Body::empty()).into_response())
}
