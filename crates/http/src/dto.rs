//! The wire shapes of the v2 API and their conversion from domain types. Domain types
//! carry no serde; these do.

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use mediabox_domain::event::Event;
use mediabox_domain::media::Media;
use mediabox_domain::page::{Cursor, Page};
use mediabox_domain::upload::Upload;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::body::int;

pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A stored media.
#[derive(Debug, Serialize, ToSchema)]
pub struct MediaDto {
    /// The integer id (v2 API).
    #[schema(example = 42)]
    pub id: i64,
    /// The public uuid (v1 and rest APIs).
    pub uuid: String,
    pub organization: String,
    pub uploaded_by: String,
    /// The client's file name, sanitized; never used as a path.
    pub filename: String,
    /// Sniffed from the bytes.
    #[schema(example = "image/jpeg")]
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    pub md5: String,
    /// `image`, `video`, `audio` or `other`.
    pub kind: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub created_at: String,
    /// A signed, expiring download URL that needs no bearer header.
    pub file: String,
    /// A signed, expiring URL of the thumbnail (fits in 320x320; JPEG, or PNG where the
    /// image has transparency); `null` when the media is not a raster image.
    pub thumbnail: Option<String>,
    /// Likewise, the preview (fits in 1600x1600).
    pub preview: Option<String>,
}

/// A media's signed URLs.
#[derive(Debug, Clone)]
pub struct MediaLinks {
    pub file: String,
    pub thumbnail: Option<String>,
    pub preview: Option<String>,
}

impl MediaDto {
    #[must_use]
    pub fn new(m: Media, links: MediaLinks) -> Self {
        Self {
            id: m.id.get(),
            uuid: m.uuid.to_string(),
            organization: m.org.to_string(),
            uploaded_by: m.uploaded_by.to_string(),
            filename: m.filename,
            content_type: m.content_type,
            size: m.size,
            sha256: m.sha256,
            md5: m.md5,
            kind: m.kind.as_str().to_owned(),
            width: m.width,
            height: m.height,
            created_at: rfc3339(m.created_at),
            file: links.file,
            thumbnail: links.thumbnail,
            preview: links.preview,
        }
    }
}

/// The state of a chunked upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadDto {
    pub upload_id: String,
    /// Bytes received so far: where the next chunk starts.
    pub offset: u64,
    /// When the unfinished upload expires (RFC 3339).
    pub expires: String,
}

impl From<&Upload> for UploadDto {
    fn from(u: &Upload) -> Self {
        Self { upload_id: u.id.to_string(), offset: u.offset, expires: rfc3339(u.expires_at) }
    }
}

/// Completes an upload.
#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct CompleteRequest {
    #[validate(length(min = 1, max = 64))]
    pub upload_id: String,
    /// Hex MD5 of the whole file, checked when given.
    #[validate(length(equal = 32))]
    pub md5: Option<String>,
    /// Hex SHA-256 of the whole file, checked when given.
    #[validate(length(equal = 64))]
    pub sha256: Option<String>,
}

/// An event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDto {
    pub id: i64,
    pub title: String,
    pub description: Option<String>,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    /// User ids of its managers.
    pub managers: Vec<String>,
    /// Media in its gallery.
    pub gallery_count: u64,
    pub created_at: String,
}

impl From<Event> for EventDto {
    fn from(e: Event) -> Self {
        Self {
            id: e.id.get(),
            title: e.title,
            description: e.description,
            starts_at: e.starts_at.map(rfc3339),
            ends_at: e.ends_at.map(rfc3339),
            managers: e.managers.into_iter().map(|m| m.to_string()).collect(),
            gallery_count: e.gallery_count,
            created_at: rfc3339(e.created_at),
        }
    }
}

/// Creates an event.
#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct CreateEventRequest {
    #[validate(length(min = 1, max = 200))]
    pub title: String,
    #[validate(length(max = 10000))]
    pub description: Option<String>,
    /// RFC 3339.
    pub starts_at: Option<String>,
    /// RFC 3339, not before `starts_at`.
    pub ends_at: Option<String>,
}

/// Names a user (a manager to add or remove).
#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct ManagerRequest {
    #[validate(length(min = 1, max = 128))]
    pub user: String,
}

/// Adds a media to a gallery (seed 001).
#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct AddToGalleryRequest {
    /// Id of the media.
    #[serde(deserialize_with = "int::single")]
    #[validate(range(min = 1))]
    #[schema(example = 42)]
    pub media: i64,
}

/// Removes media from a gallery (seed 000).
#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct RemoveFromGalleryRequest {
    /// Ids of the media, at most 1000.
    #[serde(deserialize_with = "int::list")]
    #[schema(example = json!([42, 43]))]
    pub medias: Vec<i64>,
}

/// A page of media.
#[derive(Debug, Serialize, ToSchema)]
pub struct MediaPage {
    pub count: u64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<MediaDto>,
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub count: u64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<EventDto>,
}

/// Paging query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// Items per page, 1 to 500 (default 50).
    pub page_size: Option<String>,
    /// An opaque cursor from `next` or `previous`.
    pub cursor: Option<String>,
}

/// Encodes a cursor for a URL.
#[must_use]
pub fn encode_cursor(c: Cursor) -> String {
    let raw = match c {
        Cursor::After(p) => format!("a{p}"),
        Cursor::Before(p) => format!("b{p}"),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// Decodes a cursor from a URL; `None` when it is not one of ours.
#[must_use]
pub fn decode_cursor(s: &str) -> Option<Cursor> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok()?;
    let raw = std::str::from_utf8(&raw).ok()?;
    let n: i64 = raw.get(1..)?.parse().ok()?;
    match raw.as_bytes().first()? {
        b'a' => Some(Cursor::After(n)),
        b'b' => Some(Cursor::Before(n)),
        _ => None,
    }
}

/// The `next`/`previous` links of a page.
#[must_use]
pub fn page_links<T>(page: &Page<T>, base: &str, size: u32) -> (Option<String>, Option<String>) {
    let link = |c: Cursor| format!("{base}?cursor={}&page_size={size}", encode_cursor(c));
    (page.next_cursor().map(link), page.previous_cursor().map(link))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_strangers_are_refused() {
        for c in [Cursor::After(0), Cursor::After(123_456), Cursor::Before(9)] {
            assert_eq!(decode_cursor(&encode_cursor(c)), Some(c));
        }
        assert_eq!(decode_cursor("zzz"), None);
        assert_eq!(decode_cursor(""), None);
    }
}
