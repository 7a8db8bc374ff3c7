//! `/v1/images`: the management API for a tenant's images.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use imgd_core::Code;
use imgd_core::Error;
use imgd_core::id::ImageId;
use imgd_core::model::{Cursor, ImagePatch, UserMetadata};
use imgd_core::service::ingest::UploadMeta;
use serde::Serialize;

use crate::error::ApiError;
use crate::extract::{Caller, JsonBody, PathParams, query_map, split_tags};
use crate::openapi::ApiErrors;
use crate::state::AppState;
use crate::view::ImageView;

/// Most file parts one multipart request may carry.
const MAX_PARTS: usize = 32;

type ApiResult<T> = Result<T, ApiError>;

/// Upload images: a raw body (`?filename=&tags=a,b`), or multipart with `file` parts (`tags`
/// and `metadata` fields apply to the files after them; several files answer 207 with one
/// result each). The format is sniffed from the bytes.
#[utoipa::path(post, path = "/v1/images", tag = "images",
    security(("bearer" = ["writer"])),
    params(
        ("filename" = Option<String>, Query, description = "A label for the raw body"),
        ("tags" = Option<String>, Query, pattern = "^[A-Za-z0-9_.:,-]{0,64}$",
            description = "Comma-separated tags"),
    ),
    request_body(content(
        (Vec<u8> = "application/octet-stream"),
        (UploadForm = "multipart/form-data"),
    )),
    responses(
        (status = 201, body = ImageView),
        (status = 207, description = "One result per file", body = Object),
        ApiErrors,
    ))]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    request: Request,
) -> ApiResult<Response> {
    let tenant = caller.0.tenant.clone();
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
            .map_err(|e| Error::invalid(Code::MalformedMultipart, e.body_text()))?;
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
        .map(|chunk| chunk.map_err(|e| Error::invalid(Code::BodyReadFailed, e.to_string())));
    let image = state.ingest.ingest(&tenant, body, meta).await?;
    Ok((
        StatusCode::CREATED,
        Json(ImageView::new(&image, &state.public_url)),
    )
        .into_response())
}

/// The multipart form of an upload.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documentation only; parts are streamed, never collected into this
pub struct UploadForm {
    /// One or more image files.
    #[schema(format = Binary, value_type = String)]
    file: Vec<u8>,
    /// Comma-separated tags for the files after it.
    tags: Option<String>,
    /// A JSON object for the files after it.
    metadata: Option<String>,
}

/// A tag.
#[derive(utoipa::ToSchema)]
#[schema(pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
#[allow(dead_code)] // documentation only
pub struct Tag(String);

/// `PATCH /v1/images/{id}` body; absent fields stay.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageChanges {
    #[schema(value_type = Option<Vec<Tag>>)]
    pub tags: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<UserMetadata>,
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
    field.map(|chunk| chunk.map_err(|e| Error::invalid(Code::MalformedMultipart, e.body_text())))
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
        Error::invalid(Code::MalformedMultipart, e.body_text())
    };
    while let Some(field) = multipart.next_field().await.map_err(bad_part)? {
        match field.name().unwrap_or("") {
            "file" | "file[]" | "files" => {
                if results.len() == MAX_PARTS {
                    return Err(Error::invalid(
                        Code::TooManyParts,
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
                        Code::InvalidMetadata,
                        format!("metadata must be a JSON object: {e}"),
                    )
                })?;
            }
            other => {
                return Err(Error::invalid(
                    Code::UnknownField,
                    format!("unknown form field {other:?}"),
                )
                .into());
            }
        }
    }
    match results.len() {
        0 => Err(Error::invalid(Code::MissingFile, "no `file` part in the form").into()),
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
                            code: e.code().as_str(),
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
#[derive(Serialize, utoipa::ToSchema)]
pub struct ListView {
    pub images: Vec<ImageView>,
    pub next_cursor: Option<String>,
}

/// List the tenant's images, newest first.
#[utoipa::path(get, path = "/v1/images", tag = "images",
    security(("bearer" = ["reader"])),
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (50)"),
        ("cursor" = Option<String>, Query, pattern = "^-?[0-9]+\\.[0-9a-f]{32}$",
            description = "`next_cursor` of the previous page"),
        ("tag" = Option<String>, Query, description = "Only images with this tag"),
    ),
    responses((status = 200, body = ListView), ApiErrors))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<ListView>> {
    let tenant = &caller.0.tenant;
    let query = query_map(query.as_deref());
    let limit = match query.get("limit") {
        Some(l) => l
            .parse()
            .map_err(|_| Error::invalid(Code::InvalidLimit, "limit must be a number"))?,
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

/// One image's metadata.
#[utoipa::path(get, path = "/v1/images/{id}", tag = "images",
    security(("bearer" = ["reader"])),
    params(crate::openapi::params::ImagePath),
    responses((status = 200, body = ImageView), ApiErrors))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<ImageView>> {
    let tenant = &caller.0.tenant;
    let image = state.catalog.get(tenant, &ImageId::parse(&id)?).await?;
    Ok(Json(ImageView::new(&image, &state.public_url)))
}

/// Replace an image's tags or metadata; unknown fields are refused.
#[utoipa::path(patch, path = "/v1/images/{id}", tag = "images",
    security(("bearer" = ["writer"])),
    params(crate::openapi::params::ImagePath),
    request_body = ImageChanges,
    responses((status = 200, body = ImageView), ApiErrors))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<ImageChanges>,
) -> ApiResult<Json<ImageView>> {
    let tenant = &caller.0.tenant;
    let patch = ImagePatch {
        tags: body.tags,
        metadata: body.metadata,
    };
    let image = state
        .catalog
        .patch(tenant, &ImageId::parse(&id)?, patch)
        .await?;
    Ok(Json(ImageView::new(&image, &state.public_url)))
}

/// Delete an image; its bytes go when no other image shares them.
#[utoipa::path(delete, path = "/v1/images/{id}", tag = "images",
    security(("bearer" = ["writer"])),
    params(crate::openapi::params::ImagePath),
    responses((status = 204, description = "Deleted"), ApiErrors))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Response> {
    let tenant = &caller.0.tenant;
    state.catalog.delete(tenant, &ImageId::parse(&id)?).await?;
    Ok((StatusCode::NO_CONTENT, Body::empty()).into_response())
}
