//! Media (SPEC 2): metadata and the bytes, with ETag, Range and safe disposition.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use mediabox_domain::media::{Media, RangeSpec};
use mediabox_domain::OrgId;
use serde::Deserialize;

use crate::auth::AuthUser;
use crate::dto::MediaDto;
use crate::error::ApiError;
use crate::routes::{media_dto, media_id};
use crate::state::AppState;

/// A media's metadata.
#[utoipa::path(get, path = "/api/v2/media/{id}/", tag = "media",
    params(("id" = i64, Path, description = "the media's integer id")),
    responses((status = 200, body = MediaDto), (status = 403), (status = 404)))]
pub async fn get(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let media = state.media.get(&auth.0, media_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(media_dto(&state, &req, media)))
}

/// The signature of a signed file URL.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SignedQuery {
    pub org: Option<String>,
    pub expires: Option<i64>,
    pub signature: Option<String>,
}

/// Parses a single `Range: bytes=...`; several ranges or other units are ignored (200).
fn range_header(req: &HttpRequest) -> Option<RangeSpec> {
    let v = req.headers().get("Range")?.to_str().ok()?.trim();
    let spec = v.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        return b.parse().ok().map(RangeSpec::Suffix);
    }
    let start = a.parse().ok()?;
    let end = if b.is_empty() { None } else { Some(b.parse().ok()?) };
    Some(RangeSpec::FromTo(start, end))
}

fn etag_matches(req: &HttpRequest, etag: &str) -> bool {
    req.headers().get("If-None-Match").and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').map(str::trim).any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
    })
}

fn disposition(m: &Media) -> String {
    let kind = if m.is_inline_safe() { "inline" } else { "attachment" };
    let ascii: String = m
        .filename
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
        .collect();
    let encoded: String = m
        .filename
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// The media's bytes. Works with a bearer token, or without one through the signed URL
/// in the media's `file` member.
#[utoipa::path(get, path = "/api/v2/media/{id}/file", tag = "media",
    params(("id" = i64, Path), SignedQuery),
    responses((status = 200, description = "the bytes"), (status = 206, description = "a range"), (status = 304),
        (status = 404), (status = 416)))]
pub async fn file(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<SignedQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = media_id(&path)?;
    let q = query.into_inner();
    let media = match (q.org, q.expires, q.signature) {
        (Some(org), Some(expires), Some(sig)) => {
            let org = OrgId::new(org).map_err(|_| ApiError::not_found("no such media"))?;
            if !state.signer.verify(&org, id, expires, &sig, chrono::Utc::now()) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "bad-signature",
                    "Forbidden",
                    "the link is invalid or expired",
                ));
            }
            state.media.find(&org, id).await?
        }
        _ => {
            let auth = <AuthUser as actix_web::FromRequest>::extract(&req).await?;
            state.media.get(&auth.0, id).await?
        }
    };
    let etag = format!("\"{}\"", media.sha256);
    let mut b = HttpResponse::build(StatusCode::OK);
    b.insert_header(("ETag", etag.as_str()))
        .insert_header(("Accept-Ranges", "bytes"))
        .insert_header(("Cache-Control", "private, no-cache"))
        .insert_header(("Content-Disposition", disposition(&media)));
    if !media.is_inline_safe() {
        b.insert_header(("Content-Security-Policy", "sandbox"));
    }
    if etag_matches(&req, &etag) {
        return Ok(b.status(StatusCode::NOT_MODIFIED).finish());
    }
    let content_type = media.content_type.clone();
    let size = media.size;
    let content = state.media.open(media, range_header(&req)).await?;
    b.content_type(content_type);
    let len = match content.range {
        Some(r) => {
            b.status(StatusCode::PARTIAL_CONTENT)
                .insert_header(("Content-Range", format!("bytes {}-{}/{size}", r.start, r.end)));
            r.end - r.start + 1
        }
        None => size,
    };
    b.no_chunking(len);
    Ok(b.streaming(content.body))
}
