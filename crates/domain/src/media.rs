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
    /// A video's duration, once its poster was made.
    pub duration_ms: Option<u64>,
    pub created_at: DateTime<Utc>,
    /// Where the bytes are in the blob store (shared by media with identical bytes).
    pub blob_key: String,
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
    /// The blob key the upload's bytes were committed under; the repository uses an
    /// existing blob of the same SHA-256 instead when there is one.
    pub blob_key: String,
}

/// The blob key of bytes first stored by one upload: its id (32 hex digits), never reused
/// for other bytes, and never again for the same bytes once released. Known from the
/// upload's first byte, so a store can write the blob in place while chunks arrive (S3:
/// the multipart upload's destination). Content addressing is the `blobs` table's
/// (sha256 to key), not the key's. Keys made before were `<sha256>-<upload id>`; stores
/// still read them.
#[must_use]
pub fn blob_key(upload: crate::ids::UploadId) -> String {
    upload.to_string()
}

/// What still points at a media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reference {
    Product(i64),
    Variant(i64),
}

/// Who deletes: a user, who may delete any media of the organization (`media:delete`)
/// or only what they uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleter {
    pub org: OrgId,
    pub user: UserId,
    pub any: bool,
}

/// What one delete did, decided in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// Deleted media, with the gallery entries that listed them.
    pub deleted: Vec<(MediaId, uuid::Uuid)>,
    /// Found, but the deleter may not delete them.
    pub forbidden: Vec<uuid::Uuid>,
    /// Found and permitted, but still referenced; left alone.
    pub referenced: Vec<(uuid::Uuid, Vec<Reference>)>,
    /// Blob keys no media uses any more: to remove from the store after the commit.
    pub released: Vec<String>,
}

/// At most this many ids in one bulk delete.
pub const MAX_BULK_DELETE: usize = 10_000;

/// The bulk delete limit, for `requested` ids as sent (strings that are not uuids count).
///
/// # Errors
/// `TooMany` over [`MAX_BULK_DELETE`].
pub fn check_bulk_size(requested: usize) -> Result<(), DeleteMediaError> {
    if requested > MAX_BULK_DELETE {
        return Err(DeleteMediaError::TooMany { max: MAX_BULK_DELETE });
    }
    Ok(())
}

/// Errors of deleting media.
#[derive(Debug, thiserror::Error)]
pub enum DeleteMediaError {
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error("media not found")]
    NotFound,
    #[error("the media is still referenced")]
    Referenced(Vec<Reference>),
    #[error("at most {max} ids per request")]
    TooMany { max: usize },
    #[error(transparent)]
    Repository(#[from] RepoError),
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

/// Bytes opened for reading: a whole blob, or the range of it that was asked for.
pub struct Opened {
    pub range: Option<ByteRange>,
    pub body: ByteStream,
}

/// Why a blob's bytes could not be opened.
#[derive(Debug)]
pub enum Unreadable {
    /// The range lies outside the blob's `size` bytes.
    Range {
        size: u64,
    },
    Store(StoreError),
}

impl From<Unreadable> for GetMediaError {
    fn from(e: Unreadable) -> Self {
        match e {
            Unreadable::Range { size } => GetMediaError::RangeNotSatisfiable { size },
            Unreadable::Store(s) => GetMediaError::Store(s),
        }
    }
}

/// Opens blob `key` of `size` bytes, whole or the range `spec` asks for: the one reading
/// path of originals and renditions.
///
/// # Errors
/// `Range` when the range lies outside the blob; `Store` when it cannot be read.
pub async fn open_blob(
    blobs: &dyn BlobStore,
    key: &str,
    size: u64,
    spec: Option<RangeSpec>,
) -> Result<Opened, Unreadable> {
    let range = spec.map(|s| s.resolve(size).ok_or(Unreadable::Range { size })).transpose()?;
    let span = range.map(|r| (r.start, r.end - r.start + 1));
    let body = blobs.read(key, span).await.map_err(Unreadable::Store)?;
    Ok(Opened { range, body })
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
    pub async fn open(&self, media: &Media, range: Option<RangeSpec>) -> Result<Opened, GetMediaError> {
        Ok(open_blob(&*self.blobs, &media.blob_key, media.size, range).await?)
    }

    /// A media by its public uuid.
    ///
    /// # Errors
    /// `Forbidden` without `media:read`; `NotFound` outside the actor's organization.
    pub async fn get_by_uuid(&self, actor: &Actor, uuid: uuid::Uuid) -> Result<Media, GetMediaError> {
        actor.require(&[Permission::MediaRead])?;
        self.media.find_by_uuid(actor.org(), uuid).await?.ok_or(GetMediaError::NotFound)
    }

    /// Deletes one media (`DELETE /rest/api/medias/{uuid}`).
    ///
    /// # Errors
    /// `NotFound` outside the organization; `Forbidden` (missing `media:delete`) for a
    /// caller who is not the uploader; `Referenced` while a product or variant lists it.
    pub async fn delete_one(&self, actor: &Actor, uuid: uuid::Uuid) -> Result<(), DeleteMediaError> {
        let outcome = self.delete(actor, &[uuid]).await?;
        if let Some((_, refs)) = outcome.referenced.into_iter().next() {
            return Err(DeleteMediaError::Referenced(refs));
        }
        if !outcome.forbidden.is_empty() {
            return Err(Forbidden::missing(vec![Permission::MediaDelete]).into());
        }
        if outcome.deleted.is_empty() {
            return Err(DeleteMediaError::NotFound);
        }
        Ok(())
    }

    /// Deletes what the actor may delete among `uuids` (`DELETE /api/v1/images`) and
    /// answers the uuids actually deleted. Unknown, foreign, forbidden and referenced
    /// ids are left alone.
    ///
    /// # Errors
    /// `TooMany` over [`MAX_BULK_DELETE`] ids (then nothing is deleted).
    pub async fn delete_many(&self, actor: &Actor, uuids: &[uuid::Uuid]) -> Result<Vec<uuid::Uuid>, DeleteMediaError> {
        check_bulk_size(uuids.len())?;
        if uuids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.delete(actor, uuids).await?.deleted.into_iter().map(|(_, u)| u).collect())
    }

    /// The one delete path: rows, gallery entries and blob references go in one
    /// transaction; released blobs are removed after it commits. A crash in between
    /// leaves blobs without a media, which `gc` collects.
    async fn delete(&self, actor: &Actor, uuids: &[uuid::Uuid]) -> Result<DeleteOutcome, RepoError> {
        let deleter =
            Deleter { org: actor.org().clone(), user: actor.user().clone(), any: actor.has(Permission::MediaDelete) };
        let mut unique = uuids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let outcome = self.media.delete(&deleter, &unique).await?;
        if !outcome.released.is_empty() {
            // The blobs and their renditions (whose rows went with the blobs' rows). A
            // failure leaves orphan blobs for gc; the delete itself has happened.
            let _ = self.blobs.delete_blobs(&crate::rendition::with_renditions(&outcome.released)).await;
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MockBlobStore, MockMediaRepository};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn actor(perms: &[Permission]) -> Result<Actor, crate::ids::InvalidId> {
        Ok(Actor::new(UserId::new("u-1")?, OrgId::new("acme")?, perms.iter().copied()))
    }

    fn service(repo: MockMediaRepository, blobs: MockBlobStore) -> MediaService {
        MediaService::new(Arc::new(repo), Arc::new(blobs))
    }

    #[tokio::test]
    async fn deleting_removes_released_blobs_after_the_transaction() -> TestResult {
        let u = uuid::Uuid::new_v4();
        let mut repo = MockMediaRepository::new();
        let mut seq = mockall::Sequence::new();
        repo.expect_delete().times(1).in_sequence(&mut seq).returning(move |d, ids| {
            assert!(d.any, "media:delete lets the deleter delete any media");
            Ok(DeleteOutcome {
                deleted: vec![(MediaId::new(1).unwrap_or_else(|_| unreachable!()), ids[0])],
                released: vec!["k1".into()],
                ..DeleteOutcome::default()
            })
        });
        let mut blobs = MockBlobStore::new();
        blobs
            .expect_delete_blobs()
            .withf(|k| k == ["k1", "k1.thumb", "k1.preview"])
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        service(repo, blobs).delete_one(&actor(&[Permission::MediaDelete])?, u).await?;
        Ok(())
    }

    #[tokio::test]
    async fn a_referenced_media_is_a_conflict_naming_the_references() -> TestResult {
        let mut repo = MockMediaRepository::new();
        repo.expect_delete().returning(|_, ids| {
            Ok(DeleteOutcome {
                referenced: vec![(ids[0], vec![Reference::Product(3), Reference::Variant(9)])],
                ..DeleteOutcome::default()
            })
        });
        let err = service(repo, MockBlobStore::new()).delete_one(&actor(&[])?, uuid::Uuid::new_v4()).await;
        assert!(
            matches!(err, Err(DeleteMediaError::Referenced(r)) if r == vec![Reference::Product(3), Reference::Variant(9)])
        );
        Ok(())
    }

    #[tokio::test]
    async fn someone_elses_media_without_media_delete_is_forbidden_and_a_stranger_is_not_found() -> TestResult {
        let mut repo = MockMediaRepository::new();
        repo.expect_delete().returning(|d, ids| {
            assert!(!d.any);
            Ok(DeleteOutcome { forbidden: vec![ids[0]], ..DeleteOutcome::default() })
        });
        let err = service(repo, MockBlobStore::new()).delete_one(&actor(&[])?, uuid::Uuid::new_v4()).await;
        assert!(matches!(err, Err(DeleteMediaError::Forbidden(f)) if f.missing == vec![Permission::MediaDelete]));
        let mut repo = MockMediaRepository::new();
        repo.expect_delete().returning(|_, _| Ok(DeleteOutcome::default()));
        let err = service(repo, MockBlobStore::new()).delete_one(&actor(&[])?, uuid::Uuid::new_v4()).await;
        assert!(matches!(err, Err(DeleteMediaError::NotFound)));
        Ok(())
    }

    #[tokio::test]
    async fn a_bulk_delete_over_the_limit_touches_nothing_and_duplicates_count_once() -> TestResult {
        let many: Vec<uuid::Uuid> = (0..=MAX_BULK_DELETE).map(|_| uuid::Uuid::new_v4()).collect();
        let svc = service(MockMediaRepository::new(), MockBlobStore::new());
        assert!(matches!(svc.delete_many(&actor(&[])?, &many).await, Err(DeleteMediaError::TooMany { max: 10_000 })));
        assert_eq!(svc.delete_many(&actor(&[])?, &[]).await?, Vec::<uuid::Uuid>::new());
        let u = uuid::Uuid::new_v4();
        let mut repo = MockMediaRepository::new();
        repo.expect_delete().withf(move |_, ids| ids == [u]).returning(|_, _| Ok(DeleteOutcome::default()));
        service(repo, MockBlobStore::new()).delete_many(&actor(&[])?, &[u, u, u]).await?;
        Ok(())
    }

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
