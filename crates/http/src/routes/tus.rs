//! tus 1.0.0 (SPEC 12): the resumable-upload protocol every client library speaks, as a
//! second door into the upload use cases of the chunk API (`UploadService::create`,
//! `append_stream`, `owned`, `terminate`). This file only translates headers: what an
//! upload is, its leases, limits, digests and completion live in the domain.

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mediabox_domain::hashing::DigestAlgorithm;
use mediabox_domain::upload::{Body, BodyChecksum, ChunkError, Completed, Concat, NewUpload, Progress, Upload};
use mediabox_domain::{Actor, EventId, UploadId};

use crate::auth::AuthUser;
use crate::constrained::ByteCount;
use crate::error::{tus_problem, ApiError};
use crate::routes::origin;
use crate::state::AppState;

/// The protocol version spoken, the only one.
pub const TUS_VERSION: &str = "1.0.0";
/// Every extension of tus 1.0.0.
pub const TUS_EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,termination,checksum,\
expiration,concatenation,concatenation-unfinished";
pub const TUS_CHECKSUMS: &str = "sha1,md5,sha256";
/// Where uploads live; an upload's URL is this plus its id.
pub const TUS_PATH: &str = "/api/v2/media/tus/";
const OFFSET_STREAM: &str = "application/offset+octet-stream";

/// The one value of `Tus-Resumable` (412 otherwise).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub enum TusResumable {
    #[schema(rename = "1.0.0")]
    V1,
}

/// `Tus-Resumable` on every answer of the tus routes, errors included.
#[must_use]
pub fn resumable_header() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new().add(("Tus-Resumable", TUS_VERSION))
}

/// The method a request means: `X-HTTP-Method-Override` wins (for clients behind
/// proxies that pass only GET and POST).
fn method(req: &HttpRequest) -> Method {
    req.headers()
        .get("X-HTTP-Method-Override")
        .and_then(|v| v.to_str().ok())
        .and_then(|m| Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes()).ok())
        .unwrap_or_else(|| req.method().clone())
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// 412 unless the client speaks our version.
fn check_version(req: &HttpRequest) -> Result<(), ApiError> {
    match header(req, "Tus-Resumable") {
        Some(TUS_VERSION) => Ok(()),
        got => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "tus-version",
            "Precondition Failed",
            match got {
                Some(v) => format!("Tus-Resumable {v:?} is not supported; this server speaks {TUS_VERSION}"),
                None => format!("tus requests carry Tus-Resumable: {TUS_VERSION}"),
            },
        )
        .header("Tus-Version", TUS_VERSION)),
    }
}

fn number(req: &HttpRequest, name: &'static str) -> Result<Option<u64>, ApiError> {
    header(req, name)
        .map(|v| {
            ByteCount::parse(v).ok_or_else(|| {
                ApiError::bad_field(
                    name,
                    format!("{name} must be a number of bytes (digits, no leading zero), not {v:?}"),
                )
            })
        })
        .transpose()
}

/// `Upload-Metadata`: comma-separated `key base64(value)` pairs.
fn metadata(req: &HttpRequest) -> Result<Vec<(String, String)>, ApiError> {
    let Some(raw) = header(req, "Upload-Metadata") else { return Ok(Vec::new()) };
    let bad = |why: String| ApiError::bad_field("Upload-Metadata", why);
    let mut out = Vec::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once(' ').map_or((pair, ""), |(k, v)| (k, v.trim()));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|_| bad(format!("the value of {key:?} is not base64")))?;
        let value = String::from_utf8(bytes).map_err(|_| bad(format!("the value of {key:?} is not UTF-8 text")))?;
        out.push((key.to_owned(), value));
    }
    Ok(out)
}

/// An upload id from its URL or path (`Upload-Concat: final;...`) or a path segment.
fn upload_id(raw: &str) -> Option<UploadId> {
    let last = raw.trim().trim_end_matches('/').rsplit('/').next()?;
    uuid::Uuid::parse_str(last).ok().map(UploadId::from_uuid)
}

fn concat(req: &HttpRequest) -> Result<Option<Concat>, ApiError> {
    let Some(raw) = header(req, "Upload-Concat") else { return Ok(None) };
    if raw == "partial" {
        return Ok(Some(Concat::Partial { final_upload: None }));
    }
    let bad = || ApiError::bad_field("Upload-Concat", "expected `partial` or `final;URL URL ...`");
    let urls = raw.strip_prefix("final;").ok_or_else(bad)?;
    // A URL that names no upload of ours names nothing: 404, as an unknown upload.
    let parts: Option<Vec<UploadId>> = urls.split_whitespace().map(upload_id).collect();
    let parts = parts.ok_or_else(|| ApiError::not_found("no such upload"))?;
    if parts.is_empty() {
        return Err(bad());
    }
    Ok(Some(Concat::Final { parts }))
}

fn checksum(req: &HttpRequest) -> Result<Option<BodyChecksum>, ApiError> {
    let Some(raw) = header(req, "Upload-Checksum") else { return Ok(None) };
    let (name, digest) = raw.split_once(' ').ok_or_else(|| {
        ApiError::bad_field(
            "Upload-Checksum",
            "expected `ALGORITHM BASE64-DIGEST`, e.g. `sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=`",
        )
    })?;
    let algorithm = DigestAlgorithm::parse(name)
        .ok_or_else(|| ApiError::bad_field("Upload-Checksum", format!("{name:?} is not one of {TUS_CHECKSUMS}")))?;
    // A digest that does not decode matches no bytes: the PATCH is refused as a mismatch
    // (460), keeping nothing.
    let digest = base64::engine::general_purpose::STANDARD.decode(digest.trim()).unwrap_or_default();
    Ok(Some(BodyChecksum { algorithm, digest }))
}

fn is_offset_stream(req: &HttpRequest) -> bool {
    header(req, "Content-Type").is_some_and(|v| v.to_ascii_lowercase().starts_with(OFFSET_STREAM))
}

fn unsupported_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        "Unsupported Media Type",
        format!("upload bytes are sent as Content-Type: {OFFSET_STREAM}"),
    )
}

/// The request's body as the domain takes it: streamed, counted for `/metrics`.
fn body(state: &AppState, req: &HttpRequest, payload: web::Payload) -> Result<Body, ApiError> {
    let counter = state.metrics.upload_bytes.clone();
    let stream = payload.map_err(|e| std::io::Error::other(e.to_string())).inspect_ok(move |b| {
        counter.inc_by(b.len() as u64);
    });
    Ok(Body { stream: Box::pin(stream), len: number(req, "Content-Length")?, checksum: checksum(req)? })
}

/// RFC 9110's date format (IMF-fixdate).
fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// A header value holds printable ASCII only.
fn header_text(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect()
}

fn upload_url(req: &HttpRequest, id: UploadId) -> String {
    format!("{}{TUS_PATH}{}", origin(req), id.as_uuid())
}

/// What every answer about an upload says of it.
fn describe(res: &mut HttpResponseBuilder, upload: &Upload, offset: bool) {
    if offset {
        res.insert_header(("Upload-Offset", upload.offset.to_string()));
    }
    match upload.media {
        Some(m) => {
            res.insert_header(("Media-Location", format!("/api/v2/media/{m}/")));
        }
        None => {
            res.insert_header(("Upload-Expires", http_date(upload.expires_at)));
        }
    }
}

/// Adds the media to its event's gallery (seed 001's rule, in the domain); a refusal
/// keeps the media and is told in `Media-Gallery-Error`.
async fn join_gallery(state: &AppState, actor: &Actor, done: &Completed, res: &mut HttpResponseBuilder) {
    let Some(event) = done.event else { return };
    if let Err(e) = state.events.add_to_gallery(actor, event, done.media).await {
        let e = ApiError::from(e);
        res.insert_header((
            "Media-Gallery-Error",
            header_text(&format!("{} {}: {}", e.status.as_u16(), e.title, e.detail)),
        ));
    }
}

/// Runs an upload use case on a task of its own: a client that goes away mid-body drops
/// this request's handler, never the write, which keeps what arrived and lets the
/// upload's lease go.
async fn detached<F>(work: F) -> Result<Progress, ApiError>
where
    F: std::future::Future<Output = Result<Progress, ChunkError>> + 'static,
{
    actix_web::rt::spawn(work).await.map_err(ApiError::internal)?.map_err(tus_problem)
}

/// `OPTIONS`: what this server speaks, without authentication.
fn options(state: &AppState) -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header(("Tus-Version", TUS_VERSION))
        .insert_header(("Tus-Extension", TUS_EXTENSIONS))
        .insert_header(("Tus-Max-Size", state.uploads.limits().max_upload_bytes.to_string()))
        .insert_header(("Tus-Checksum-Algorithm", TUS_CHECKSUMS))
        .finish()
}

/// The uploads collection: `POST` creates, `OPTIONS` tells the protocol.
#[utoipa::path(post, path = "/api/v2/media/tus/", tag = "tus", operation_id = "tus_create",
    params(
        ("Tus-Resumable" = inline(TusResumable), Header, description = "`1.0.0`"),
        ("Upload-Length" = inline(Option<ByteCount>), Header, description = "the file's size in bytes (or `Upload-Defer-Length: 1`)"),
        ("Upload-Defer-Length" = Option<String>, Header, description = "`1`: the length is sent later (creation-defer-length)", pattern = "^1$"),
        ("Upload-Metadata" = Option<String>, Header, description = "`filename BASE64,event BASE64`"),
        ("Upload-Concat" = Option<String>, Header, description = "`partial`, or `final;URL URL ...`", pattern = r"^(partial|final;\S+( \S+)*)$"),
    ),
    request_body(content = inline(Option<crate::dto::Binary>), description = "optional first bytes (creation-with-upload)", content_type = "application/offset+octet-stream"),
    responses((status = 201, description = "created; `Location` is the upload's URL, `Media-Location` once complete"),
        (status = 400), (status = 401), (status = 403), (status = 404), (status = 412), (status = 413), (status = 415), (status = 460)))]
pub async fn collection(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    match method(&req) {
        Method::OPTIONS => Ok(options(&state)),
        Method::POST => create(state, req, payload).await,
        _ => Err(ApiError::method_not_allowed("POST, OPTIONS")),
    }
}

/// One upload: `HEAD` tells its offset, `PATCH` appends, `DELETE` terminates.
#[utoipa::path(patch, path = "/api/v2/media/tus/{upload_id}", tag = "tus", operation_id = "tus_append",
    params(("upload_id" = String, Path), ("Tus-Resumable" = inline(TusResumable), Header), ("Upload-Offset" = inline(ByteCount), Header, description = "where these bytes go: the offset `HEAD` gives"),
        ("Upload-Checksum" = Option<String>, Header, description = "`sha1|md5|sha256 BASE64`", pattern = r"^(sha1|md5|sha256) [A-Za-z0-9+/]+={0,2}$",
            example = "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=")),
    request_body(content = inline(crate::dto::Binary), content_type = "application/offset+octet-stream"),
    responses((status = 204, description = "appended; `Upload-Offset`, and `Media-Location` when the last byte completed it"),
        (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 410), (status = 412),
        (status = 413), (status = 415), (status = 423), (status = 460)))]
pub async fn resource(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let m = method(&req);
    if m == Method::OPTIONS {
        return Ok(options(&state));
    }
    check_version(&req)?;
    let id = upload_id(&path).ok_or_else(|| ApiError::not_found("no such upload"))?;
    let AuthUser(actor) = AuthUser::from_request_sync(&req)?;
    match m {
        Method::HEAD => head(&state, &actor, id).await,
        Method::PATCH => patch(state, req, actor, id, payload).await,
        Method::DELETE => {
            state.uploads.terminate(&actor, id).await?;
            Ok(HttpResponse::NoContent().finish())
        }
        _ => Err(ApiError::method_not_allowed("HEAD, PATCH, DELETE, OPTIONS")),
    }
}

/// `HEAD` on an upload (documented apart: OpenAPI lists one operation per method).
#[utoipa::path(head, path = "/api/v2/media/tus/{upload_id}", tag = "tus", operation_id = "tus_offset",
    params(("upload_id" = String, Path), ("Tus-Resumable" = inline(TusResumable), Header)),
    responses((status = 200, description = "`Upload-Offset`, `Upload-Length` (or `Upload-Defer-Length`), `Upload-Expires`, `Media-Location` once complete"),
        (status = 401), (status = 404), (status = 410), (status = 412)))]
pub fn head_doc() {}

/// `DELETE` on an upload (documented apart).
#[utoipa::path(delete, path = "/api/v2/media/tus/{upload_id}", tag = "tus", operation_id = "tus_terminate",
    params(("upload_id" = String, Path), ("Tus-Resumable" = inline(TusResumable), Header)),
    responses((status = 204, description = "terminated: its bytes are gone (a completed upload's media stays)"),
        (status = 401), (status = 403), (status = 404), (status = 412)))]
pub fn delete_doc() {}

/// `OPTIONS` (documented apart).
#[utoipa::path(options, path = "/api/v2/media/tus/", tag = "tus", operation_id = "tus_options", security(()),
    responses((status = 204, description = "`Tus-Version`, `Tus-Extension`, `Tus-Max-Size`, `Tus-Checksum-Algorithm`")))]
pub fn options_doc() {}

async fn create(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    check_version(&req)?;
    let AuthUser(actor) = AuthUser::from_request_sync(&req)?;
    let concat = concat(&req)?;
    let length = number(&req, "Upload-Length")?;
    let deferred = match header(&req, "Upload-Defer-Length") {
        None => false,
        Some("1") => true,
        Some(_) => return Err(ApiError::bad_field("Upload-Defer-Length", "Upload-Defer-Length may only be 1")),
    };
    let is_final = matches!(concat, Some(Concat::Final { .. }));
    if is_final && (length.is_some() || deferred) {
        return Err(ApiError::bad_field(
            "Upload-Length",
            "a final upload's length is its parts'; send no Upload-Length",
        ));
    }
    if !is_final && length.is_some() == deferred {
        return Err(ApiError::bad_field(
            "Upload-Length",
            "send Upload-Length (the file's size) or Upload-Defer-Length: 1, one of the two",
        ));
    }
    let mut filename = String::new();
    let mut event = None;
    for (key, value) in metadata(&req)? {
        match key.as_str() {
            "filename" | "name" if filename.is_empty() => filename = value,
            "event" => {
                let id = value.trim().parse().ok().and_then(|v| EventId::new(v).ok());
                event = Some(id.ok_or_else(|| {
                    ApiError::bad_field("Upload-Metadata", format!("event must be an event's id, not {value:?}"))
                })?);
            }
            _ => {}
        }
    }
    let has_body = number(&req, "Content-Length")?.is_some_and(|n| n > 0)
        || header(&req, "Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let body = if has_body || is_offset_stream(&req) {
        if !is_offset_stream(&req) {
            return Err(unsupported_type());
        }
        Some(body(&state, &req, payload)?)
    } else {
        None
    };
    let new = NewUpload { filename, length, event, concat };
    let uploads = state.uploads.clone();
    let who = actor.clone();
    let progress = detached(async move { uploads.create(&who, new, body).await }).await?;
    let mut res = HttpResponse::Created();
    res.insert_header(("Location", upload_url(&req, progress.upload.id)));
    let final_unfinished = is_final && progress.upload.media.is_none();
    describe(&mut res, &progress.upload, !final_unfinished);
    if let Some(done) = &progress.completed {
        join_gallery(&state, &actor, done, &mut res).await;
    }
    Ok(res.finish())
}

async fn head(state: &AppState, actor: &Actor, id: UploadId) -> Result<HttpResponse, ApiError> {
    let upload = state.uploads.owned(actor, id).await?;
    let mut res = HttpResponse::Ok();
    res.insert_header(("Cache-Control", "no-store"));
    let final_unfinished = matches!(upload.concat, Some(Concat::Final { .. })) && upload.media.is_none();
    describe(&mut res, &upload, !final_unfinished);
    match upload.total {
        Some(t) => res.insert_header(("Upload-Length", t.to_string())),
        None if !final_unfinished => res.insert_header(("Upload-Defer-Length", "1")),
        None => &mut res,
    };
    let mut meta = Vec::new();
    if !upload.filename.is_empty() {
        meta.push(format!("filename {}", base64::engine::general_purpose::STANDARD.encode(&upload.filename)));
    }
    if let Some(e) = upload.event {
        meta.push(format!("event {}", base64::engine::general_purpose::STANDARD.encode(e.get().to_string())));
    }
    if !meta.is_empty() {
        res.insert_header(("Upload-Metadata", meta.join(",")));
    }
    match &upload.concat {
        Some(Concat::Partial { .. }) => {
            res.insert_header(("Upload-Concat", "partial"));
        }
        Some(Concat::Final { parts }) => {
            let urls: Vec<String> = parts.iter().map(|p| format!("{TUS_PATH}{}", p.as_uuid())).collect();
            res.insert_header(("Upload-Concat", format!("final;{}", urls.join(" "))));
        }
        None => {}
    }
    Ok(res.finish())
}

async fn patch(
    state: web::Data<AppState>,
    req: HttpRequest,
    actor: Actor,
    id: UploadId,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    if !is_offset_stream(&req) {
        return Err(unsupported_type());
    }
    let offset = number(&req, "Upload-Offset")?.ok_or_else(|| {
        ApiError::bad_field("Upload-Offset", "a PATCH names the offset it writes at in Upload-Offset")
    })?;
    let length = number(&req, "Upload-Length")?;
    let body = body(&state, &req, payload)?;
    let uploads = state.uploads.clone();
    let who = actor.clone();
    let progress = detached(async move { uploads.append_stream(&who, id, offset, length, body).await }).await?;
    let mut res = HttpResponse::NoContent();
    describe(&mut res, &progress.upload, true);
    if let Some(done) = &progress.completed {
        // The last part of a final upload announces the final upload's media.
        res.insert_header(("Media-Location", format!("/api/v2/media/{}/", done.media)));
        join_gallery(&state, &actor, done, &mut res).await;
    }
    Ok(res.finish())
}
