//! Media (SPEC 2): metadata and the bytes, with ETag, Range and safe disposition.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use mediabox_domain::media::{Media, Opened, RangeSpec};
use mediabox_domain::rendition::Variant;
use mediabox_domain::OrgId;
use serde::Deserialize;

use crate::auth::AuthUser;
use crate::dto::MediaDto;
use crate::error::ApiError;
use crate::routes::{media_dto, media_id};
use crate::signing::SignedLink;
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

/// The renditions' names.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "lowercase")]
pub enum VariantName {
    Thumb,
    Preview,
}

/// The signature of a signed file URL, and which rendition.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SignedQuery {
    /// `thumb` (fits in 320x320) or `preview` (fits in 1600x1600); the original without.
    #[param(value_type = Option<VariantName>, inline)]
    pub variant: Option<String>,
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

fn disposition(filename: &str, inline: bool) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    let ascii: String = filename
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
        .collect();
    let encoded: String = filename
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

/// A rendition's file name: the original's stem, the variant and the rendition's type
/// (`photo.heic.jpg` would mislead; `photo-thumb.jpg` does not).
fn rendition_filename(original: &str, variant: Variant, content_type: &str) -> String {
    let stem = original.rsplit_once('.').map_or(original, |(s, _)| s);
    let ext = if content_type == "image/png" { "png" } else { "jpg" };
    format!("{stem}-{}.{ext}", variant.as_str())
}

/// What a file response is about to send, before its body is opened.
struct FileHead {
    etag: String,
    disposition: String,
    inline: bool,
}

impl FileHead {
    /// The response with the headers every answer carries (also 304).
    fn builder(&self) -> actix_web::HttpResponseBuilder {
        let mut b = HttpResponse::build(StatusCode::OK);
        b.insert_header(("ETag", self.etag.as_str()))
            .insert_header(("Accept-Ranges", "bytes"))
            .insert_header(("Cache-Control", "private, no-cache"))
            .insert_header(("Content-Disposition", self.disposition.as_str()));
        if !self.inline {
            b.insert_header(("Content-Security-Policy", "sandbox"));
        }
        b
    }
}

/// The body's answer: 200 with the whole, or 206 with the range.
fn send(mut b: actix_web::HttpResponseBuilder, content_type: String, size: u64, opened: Opened) -> HttpResponse {
    b.content_type(content_type);
    let len = match opened.range {
        Some(r) => {
            b.status(StatusCode::PARTIAL_CONTENT)
                .insert_header(("Content-Range", format!("bytes {}-{}/{size}", r.start, r.end)));
            r.end - r.start + 1
        }
        None => size,
    };
    b.no_chunking(len);
    b.streaming(opened.body)
}

/// The media's bytes, or a rendition's (`?variant=thumb|preview`, SPEC 11). Works with a
/// bearer token, or without one through the signed URLs in the media's `file`,
/// `thumbnail` and `preview` members.
#[utoipa::path(get, path = "/api/v2/media/{id}/file", tag = "media",
    params(("id" = i64, Path), SignedQuery),
    responses((status = 200, description = "the bytes"), (status = 206, description = "a range"), (status = 304),
        (status = 400, description = "an unknown variant"), (status = 403, description = "a signed link that is invalid or expired, or no permission"), (status = 404), (status = 416),
        (status = 422, description = "no rendition can be made: image-too-large or image-not-decodable")))]
pub async fn file(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<SignedQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = media_id(&path)?;
    let q = query.into_inner();
    let variant =
        match q.variant.as_deref() {
            None => None,
            Some(v) => Some(Variant::parse(v).ok_or_else(|| {
                ApiError::bad_field("variant", format!("unknown variant {v:?}: it is thumb or preview"))
            })?),
        };
    let media = match (q.org, q.expires, q.signature) {
        (Some(org), Some(expires), Some(signature)) => {
            let org = OrgId::new(org).map_err(|_| ApiError::not_found("no such media"))?;
            let link = SignedLink { org: &org, id, variant, expires, signature: &signature };
            if !state.signer.verify(&link, chrono::Utc::now()) {
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
    let Some(variant) = variant else { return original(&state, &req, media).await };
    let rendition = state.renditions.get(&media, variant).await?;
    let head = FileHead {
        etag: format!("\"{}\"", rendition.sha256),
        disposition: disposition(&rendition_filename(&media.filename, variant, &rendition.content_type), true),
        inline: true,
    };
    if etag_matches(&req, &head.etag) {
        return Ok(head.builder().status(StatusCode::NOT_MODIFIED).finish());
    }
    let (r, opened) = state.renditions.open(&media, rendition, range_header(&req)).await?;
    Ok(send(head.builder(), r.content_type, r.size, opened))
}

async fn original(state: &AppState, req: &HttpRequest, media: Media) -> Result<HttpResponse, ApiError> {
    let head = FileHead {
        etag: format!("\"{}\"", media.sha256),
        disposition: disposition(&media.filename, media.is_inline_safe()),
        inline: media.is_inline_safe(),
    };
    if etag_matches(req, &head.etag) {
        return Ok(head.builder().status(StatusCode::NOT_MODIFIED).finish());
    }
    let opened = state.media.open(&media, range_header(req)).await?;
    Ok(send(head.builder(), media.content_type, media.size, opened))
}
