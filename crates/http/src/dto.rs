//! The wire shapes of the v2 API and their conversion from domain types. Domain types
//! carry no serde; these do.

use chrono::{DateTime, SecondsFormat, Utc};
use mediabox_domain::event::Event;
use mediabox_domain::media::Media;
use mediabox_domain::page::{Cursor, Page};
use mediabox_domain::upload::Upload;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::constrained::{CursorText, Hex, Id, IdList, Iri, MediaIris, Name, PageSize, Text};

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
    /// In pixels, as displayed (a video's rotation applied); an image's from its header,
    /// a video's once its first poster was made.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// A video's duration in seconds, once its first poster was made; `null` otherwise.
    #[schema(example = 12.48)]
    pub duration: Option<f64>,
    pub created_at: String,
    /// A signed, expiring download URL that needs no bearer header.
    pub file: String,
    /// A signed, expiring URL of the thumbnail (fits in 320x320; JPEG, or PNG where the
    /// image has transparency; a JPEG poster frame for a video); `null` when the media is
    /// neither a raster image nor a video (or videos are not rendered: no ffmpeg).
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
            duration: m.duration_ms.map(|ms| ms as f64 / 1000.0),
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

/// Completes an upload; `md5` and `sha256` (hex, of the whole file) are checked when given.
#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct CompleteRequest {
    #[schema(inline)]
    pub upload_id: Text<1, 64>,
    #[schema(inline)]
    pub md5: Option<Hex<32>>,
    #[schema(inline)]
    pub sha256: Option<Hex<64>>,
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
    #[schema(inline)]
    pub title: Name<1, { mediabox_domain::event::TITLE_MAX_CHARS }>,
    #[schema(inline)]
    pub description: Option<Text<0, { mediabox_domain::event::DESCRIPTION_MAX_CHARS }>>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub starts_at: Option<String>,
    /// RFC 3339, not before `starts_at`.
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
}

/// Names a user (a manager to add or remove).
#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct ManagerRequest {
    #[schema(inline)]
    pub user: Name<1, { mediabox_domain::ids::ID_MAX_CHARS }>,
}

/// Adds a media to a gallery (seed 001): `media` is its id.
#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct AddToGalleryRequest {
    #[schema(inline)]
    pub media: Id,
}

/// Removes media from a gallery (seed 000): `medias`, at most 1000 ids (none: nothing).
#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct RemoveFromGalleryRequest {
    #[serde(default = "no_ids")]
    #[schema(inline, required = false)]
    pub medias: IdList<{ mediabox_domain::event::MAX_GALLERY_REMOVE }>,
}

fn no_ids<const MAX: usize>() -> IdList<MAX> {
    IdList(Vec::new())
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

/// A bulk delete's body (seed 002): `image_ids[]=<uuid>&...` or `{"image_ids": [...]}`.
/// Entries that are not uuids are ignored like unknown ids; no body deletes nothing.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct DeleteImagesRequest {
    #[schema(inline)]
    pub image_ids: Option<BulkIds>,
}

/// Up to the domain's bulk limit of strings (uuids).
#[derive(Debug)]
pub struct BulkIds;

impl utoipa::PartialSchema for BulkIds {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(utoipa::openapi::schema::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String))
            .max_items(Some(mediabox_domain::media::MAX_BULK_DELETE))
            .into()
    }
}
impl ToSchema for BulkIds {}

/// A product to create (JSON-LD or JSON): its name, and the media it shows as IRIs.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ProductBody {
    #[schema(inline)]
    pub name: Name<1, { mediabox_domain::catalog::NAME_MAX_CHARS }>,
    #[schema(inline, required = false)]
    pub medias: MediaIris,
}

/// A variant to create: as a product, and the IRI of its product.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct VariantBody {
    #[schema(inline)]
    pub name: Name<1, { mediabox_domain::catalog::NAME_MAX_CHARS }>,
    #[schema(inline)]
    pub product: Iri<false>,
    #[schema(inline, required = false)]
    pub medias: MediaIris,
}

/// A JSON merge patch of a product or variant: the fields sent change.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ItemPatch {
    #[schema(inline, required = false)]
    pub name: Name<1, { mediabox_domain::catalog::NAME_MAX_CHARS }>,
    #[schema(inline, required = false)]
    pub product: Iri<false>,
    #[schema(inline, required = false)]
    pub medias: MediaIris,
}

/// A change to an event: the fields sent change; `null` clears an optional one.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EventPatchRequest {
    #[schema(inline, required = false)]
    pub title: Name<1, { mediabox_domain::event::TITLE_MAX_CHARS }>,
    #[schema(inline)]
    pub description: Option<Text<0, { mediabox_domain::event::DESCRIPTION_MAX_CHARS }>>,
    #[schema(format = DateTime)]
    pub starts_at: Option<String>,
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
}

/// Paging query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// Items per page (default 50, at most 500 a page).
    #[param(value_type = Option<PageSize>, inline)]
    pub page_size: Option<String>,
    /// A cursor from `next` or `previous`.
    #[param(value_type = Option<CursorText>, inline)]
    pub cursor: Option<String>,
}

/// Encodes a cursor for a URL: `a` (after) or `b` (before) and a position, as
/// [`CursorText::PATTERN`] describes it.
#[must_use]
pub fn encode_cursor(c: Cursor) -> String {
    match c {
        Cursor::After(p) => format!("a{p}"),
        Cursor::Before(p) => format!("b{p}"),
    }
}

/// Decodes a cursor from a URL; `None` when it is not one of ours. Accepts exactly what
/// [`CursorText::PATTERN`] matches.
#[must_use]
pub fn decode_cursor(s: &str) -> Option<Cursor> {
    let digits = s.get(1..)?;
    let canonical = !digits.is_empty()
        && digits.len() <= 18
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if !canonical {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    match s.as_bytes().first()? {
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

/// The raw bytes of a file or of a part of it: a request body sent as
/// `application/octet-stream` (chunks) or `application/offset+octet-stream` (tus), read
/// as a stream and never parsed.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct Binary(Vec<u8>);
