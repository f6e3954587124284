//! The chunked upload (SPEC 3): start, append, status, abandon, complete.

use actix_multipart::Multipart;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::{StreamExt, TryStreamExt};
use mediabox_domain::ports::IncomingBody;
use mediabox_domain::upload::{Checksum, ChunkRange};
use mediabox_domain::UploadId;
use serde::Deserialize;

use crate::auth::AuthUser;
use crate::body;
use crate::constrained::{ByteCount, ContentRangeText};
use crate::dto::{CompleteRequest, MediaDto, UploadDto};
use crate::error::ApiError;
use crate::routes::media_dto;
use crate::state::AppState;

/// `?filename=` for raw (`application/octet-stream`) chunks.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct FilenameQuery {
    /// The client's file name (raw bodies; multipart bodies name it in the part).
    pub filename: Option<String>,
}

/// `Content-Range` of a chunk.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct RangeHeader {
    /// Where the chunk goes: `bytes START-END/TOTAL` (END inclusive, TOTAL may be `*`);
    /// required after the first chunk.
    #[serde(rename = "Content-Range")]
    #[param(rename = "Content-Range", value_type = Option<ContentRangeText>, inline)]
    pub content_range: Option<String>,
}

/// `Content-Range` of a chunk after the first: required.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct NextRangeHeader {
    /// Where the chunk goes: `bytes START-END/TOTAL` (END inclusive, TOTAL may be `*`).
    #[serde(rename = "Content-Range")]
    #[param(rename = "Content-Range", value_type = ContentRangeText, inline)]
    pub content_range: String,
}

/// Parses `Content-Range: bytes START-END/TOTAL` (TOTAL may be `*`).
fn content_range(req: &HttpRequest) -> Result<Option<ChunkRange>, ApiError> {
    let Some(v) = req.headers().get("Content-Range") else { return Ok(None) };
    let bad = || ApiError::bad_field("Content-Range", "expected `bytes START-END/TOTAL` (TOTAL may be `*`)");
    let s = v.to_str().map_err(|_| bad())?.trim();
    let rest = s.strip_prefix("bytes ").ok_or_else(bad)?;
    let (span, total) = rest.split_once('/').ok_or_else(bad)?;
    let (a, b) = span.split_once('-').ok_or_else(bad)?;
    let start = ByteCount::parse(a).ok_or_else(bad)?;
    let end = ByteCount::parse(b).ok_or_else(bad)?;
    let total = match total {
        "*" => None,
        t => Some(ByteCount::parse(t).ok_or_else(bad)?),
    };
    ChunkRange::new(start, end, total).map(Some).map_err(|m| ApiError::bad_field("Content-Range", m))
}

fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// The chunk's bytes and, for multipart bodies, the part's file name.
async fn chunk_body(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(IncomingBody, Option<String>), ApiError> {
    let counter = state.metrics.upload_bytes.clone();
    let count = move |b: &bytes::Bytes| counter.inc_by(b.len() as u64);
    let ct = req.headers().get("Content-Type").and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if ct.starts_with("multipart/form-data") {
        let mut parts = Multipart::new(req.headers(), payload);
        while let Some(field) = parts.next().await {
            let field = field.map_err(|e| ApiError::bad_field("file", format!("malformed multipart body: {e}")))?;
            if field.name() == Some("file") {
                let name = field.content_disposition().and_then(|cd| cd.get_filename()).map(str::to_owned);
                // The field reads through its `Multipart`, which must outlive it.
                let stream = futures_util::stream::unfold((parts, field), |(parts, mut field)| async move {
                    field.next().await.map(|item| (item, (parts, field)))
                });
                return Ok((Box::pin(stream.map_err(io_error).inspect_ok(count)), name));
            }
        }
        return Err(ApiError::bad_field("file", "the multipart body has no `file` part"));
    }
    Ok((Box::pin(payload.map_err(io_error).inspect_ok(count)), None))
}

fn upload_id(raw: &str) -> Result<UploadId, ApiError> {
    uuid::Uuid::parse_str(raw).map(UploadId::from_uuid).map_err(|_| ApiError::not_found("no such upload"))
}

/// Starts an upload with its first chunk.
#[utoipa::path(put, path = "/api/v2/media/chunk_upload/", tag = "upload", params(FilenameQuery, RangeHeader),
    request_body(content = inline(crate::dto::Binary), description = "the first chunk: a multipart `file` part, or raw bytes", content_type = "application/octet-stream"),
    responses((status = 200, body = UploadDto), (status = 400), (status = 401), (status = 403), (status = 413)))]
pub async fn start(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
    query: web::Query<FilenameQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let range = content_range(&req)?;
    let chunked =
        req.headers().get("Transfer-Encoding").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("chunked"));
    let length =
        req.headers().get("Content-Length").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    if !chunked && length.unwrap_or(0) == 0 {
        return Err(ApiError::bad_field("file", "the first chunk has no bytes"));
    }
    let (body, part_name) = chunk_body(&state, &req, payload).await?;
    let name = part_name.or_else(|| query.into_inner().filename).unwrap_or_default();
    let upload = state.uploads.start(&auth.0, &name, range, body).await?;
    Ok(HttpResponse::Ok().json(UploadDto::from(&upload)))
}

/// Sends the next chunk at the upload's offset.
#[utoipa::path(put, path = "/api/v2/media/chunk_upload/{upload_id}/", tag = "upload",
    params(("upload_id" = String, Path, description = "the upload's id"), NextRangeHeader),
    request_body(content = inline(crate::dto::Binary), content_type = "application/octet-stream"),
    responses((status = 200, body = UploadDto), (status = 400, description = "offset mismatch (with `offset`)"),
        (status = 403), (status = 404), (status = 409, description = "another chunk is being written (with `offset`)"),
        (status = 410), (status = 413)))]
pub async fn append(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = upload_id(&path)?;
    let range = content_range(&req)?
        .ok_or_else(|| ApiError::bad_field("Content-Range", "chunks after the first need Content-Range"))?;
    let (body, _) = chunk_body(&state, &req, payload).await?;
    let upload = state.uploads.append(&auth.0, id, range, body).await?;
    Ok(HttpResponse::Ok().json(UploadDto::from(&upload)))
}

/// Tells an upload's offset, to resume after a crash.
#[utoipa::path(get, path = "/api/v2/media/chunk_upload/{upload_id}/", tag = "upload",
    params(("upload_id" = String, Path)), responses((status = 200, body = UploadDto), (status = 404), (status = 410)))]
pub async fn status(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let upload = state.uploads.status(&auth.0, upload_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(UploadDto::from(&upload)))
}

/// Abandons an upload and drops its bytes.
#[utoipa::path(delete, path = "/api/v2/media/chunk_upload/{upload_id}/", tag = "upload",
    params(("upload_id" = String, Path)), responses((status = 204), (status = 404)))]
pub async fn abandon(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.uploads.abandon(&auth.0, upload_id(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Completes an upload: checks the checksum when given and answers the Media.
#[utoipa::path(post, path = "/api/v2/media/chunk_upload_complete/", tag = "upload",
    request_body(content = CompleteRequest, content_type = "application/json"),
    responses((status = 200, body = MediaDto), (status = 400, description = "checksum mismatch or incomplete"), (status = 404), (status = 409, description = "a chunk or another complete is in progress (with `offset`)"), (status = 410)))]
pub async fn complete(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
    raw: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: CompleteRequest = body::parse(&req, &raw, &[])?;
    let id = upload_id(&body.upload_id.0).map_err(|_| ApiError::not_found("no such upload"))?;
    let checksum = match (body.sha256, body.md5) {
        (Some(s), _) => Some(Checksum::Sha256(s.0)),
        (None, Some(m)) => Some(Checksum::Md5(m.0)),
        (None, None) => None,
    };
    let media = state.uploads.complete(&auth.0, id, checksum).await?;
    Ok(HttpResponse::Ok().json(media_dto(&state, &req, media)))
}
