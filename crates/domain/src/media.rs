//! Media: an immutable stored file plus its metadata, and the read use cases.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::actor::{Actor, Permission};
use crate::error::{Forbidden, RepoError, StoreError};
use crate::ids::{MediaId, OrgId, UserId};
use crate::ports::{BlobStore, ByteStream, MediaRepository};

/// What kind of file a media is, from its sniffed content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    Other,
}

impl MediaKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::Other => "other",
        }
    }
    #[must_use]
    pub fn parse(s: &str) -> Self {
        match s {
            "image" => MediaKind::Image,
            "video" => MediaKind::Video,
            "audio" => MediaKind::Audio,
            _ => MediaKind::Other,
        }
    }
    #[must_use]
    pub fn of_content_type(ct: &str) -> Self {
        match ct.split('/').next() {
            Some("image") => MediaKind::Image,
            Some("video") => MediaKind::Video,
            Some("audio") => MediaKind::Audio,
            _ => MediaKind::Other,
        }
    }
}

/// A stored media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub id: MediaId,
    pub uuid: uuid::Uuid,
    pub org: OrgId,
    pub uploaded_by: UserId,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    pub md5: String,
    pub kind: MediaKind,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub created_at: DateTime<Utc>,
}

impl Media {
    /// Whether a browser may render it inline: raster images, video and audio only.
    /// Anything a browser could run (SVG, HTML, ...) is served as an attachment.
    #[must_use]
    pub fn is_inline_safe(&self) -> bool {
        match self.kind {
            MediaKind::Video | MediaKind::Audio => true,
            MediaKind::Image => self.content_type != "image/svg+xml",
            MediaKind::Other => false,
        }
    }
}

/// A media about to be stored: everything but the id the database gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMedia {
    pub uuid: uuid::Uuid,
    pub org: OrgId,
    pub uploaded_by: UserId,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    pub md5: String,
    pub kind: MediaKind,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub created_at: DateTime<Utc>,
}

/// Errors of reading a media or its bytes.
#[derive(Debug, thiserror::Error)]
pub enum GetMediaError {
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error("media not found")]
    NotFound,
    #[error("requested range not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    #[error(transparent)]
    Repository(#[from] RepoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A byte range, inclusive at both ends, already checked against the size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// A range as the client asked for it (`bytes=a-b`, `bytes=a-`, `bytes=-n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    FromTo(u64, Option<u64>),
    Suffix(u64),
}

impl RangeSpec {
    /// The range it means for a file of `size` bytes; `None` when unsatisfiable.
    #[must_use]
    pub fn resolve(self, size: u64) -> Option<ByteRange> {
        match self {
            RangeSpec::FromTo(start, end) => {
                if start >= size {
                    return None;
                }
                let end = end.map_or(size - 1, |e| e.min(size - 1));
                (end >= start).then_some(ByteRange { start, end })
            }
            RangeSpec::Suffix(n) => {
                if n == 0 || size == 0 {
                    return None;
                }
                Some(ByteRange { start: size.saturating_sub(n), end: size - 1 })
            }
        }
    }
}

/// The bytes of a media, whole or a range.
pub struct MediaContent {
    pub media: Media,
    pub range: Option<ByteRange>,
    pub body: ByteStream,
}

/// Reading media.
pub struct MediaService {
    media: Arc<dyn MediaRepository>,
    blobs: Arc<dyn BlobStore>,
}

impl MediaService {
    #[must_use]
    pub fn new(media: Arc<dyn MediaRepository>, blobs: Arc<dyn BlobStore>) -> Self {
        Self { media, blobs }
    }

    /// A media of the actor's organization.
    ///
    /// # Errors
    /// `Forbidden` without `media:read`; `NotFound` when no such media exists in the
    /// actor's organization (another organization's media is not found either).
    pub async fn get(&self, actor: &Actor, id: MediaId) -> Result<Media, GetMediaError> {
        actor.require(&[Permission::MediaRead])?;
        self.find(actor.org(), id).await
    }

    /// A media by id within an organization, with no actor: for signed URLs, whose
    /// signature the http layer has already checked.
    ///
    /// # Errors
    /// `NotFound` when it does not exist in `org`.
    pub async fn find(&self, org: &OrgId, id: MediaId) -> Result<Media, GetMediaError> {
        self.media.find(org, id).await?.ok_or(GetMediaError::NotFound)
    }

    /// Opens the bytes of `media`, the whole file or one range of it.
    ///
    /// # Errors
    /// `RangeNotSatisfiable` when the range lies outside the file; `Store` when the blob
    /// cannot be read.
    pub async fn open(&self, media: Media, range: Option<RangeSpec>) -> Result<MediaContent, GetMediaError> {
        let range = match range {
            None => None,
            Some(spec) => {
                Some(spec.resolve(media.size).ok_or(GetMediaError::RangeNotSatisfiable { size: media.size })?)
            }
        };
        let body = self.blobs.read(&media.sha256, range.map(|r| (r.start, r.end - r.start + 1))).await?;
        Ok(MediaContent { media, range, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_against_the_file_size() {
        assert_eq!(RangeSpec::FromTo(0, Some(9)).resolve(100), Some(ByteRange { start: 0, end: 9 }));
        assert_eq!(RangeSpec::FromTo(90, None).resolve(100), Some(ByteRange { start: 90, end: 99 }));
        assert_eq!(RangeSpec::FromTo(90, Some(500)).resolve(100), Some(ByteRange { start: 90, end: 99 }));
        assert_eq!(RangeSpec::Suffix(10).resolve(100), Some(ByteRange { start: 90, end: 99 }));
        assert_eq!(RangeSpec::Suffix(1000).resolve(100), Some(ByteRange { start: 0, end: 99 }));
        assert_eq!(RangeSpec::FromTo(100, None).resolve(100), None);
        assert_eq!(RangeSpec::FromTo(5, Some(2)).resolve(100), None);
        assert_eq!(RangeSpec::Suffix(0).resolve(100), None);
    }
}
