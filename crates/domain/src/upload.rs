//! The resumable chunked upload: start with a first chunk, append chunks at the current
//! offset, ask for the offset, abandon, and complete into a [`Media`].
//!
//! Bytes stream from the request straight into the upload's staging object; SHA-256 and
//! MD5 are computed on the way and their midstates stored after each chunk, so complete
//! never re-reads the file and any instance can take the next chunk. A write lease in the
//! upload's row keeps two chunks racing for one offset from both being written.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;

use crate::actor::{Actor, Permission};
use crate::error::{Forbidden, RepoError, StoreError};
use crate::hashing::{BodyDigest, DigestAlgorithm, Hashes, StreamHasher};
use crate::ids::{EventId, MediaId, OrgId, UploadId, UserId};
use crate::media::{blob_key, Media, MediaKind, NewMedia};
use crate::ports::{
    BlobStore, ChunkWriter, Clock, IncomingBody, MediaProcessor, MediaRepository, Probe, UploadRepository, WriteSize,
};
use crate::sniff::{content_type, sanitize_filename, SNIFF_BYTES};

mod open_ended;
pub use open_ended::{Body, Completed, NewUpload, Progress};

/// How long a chunk may hold an upload's write lease before another request may take it
/// (a crashed instance's lease expires).
pub const LEASE_SECS: i64 = 600;

/// Reading one's own upload's offset or abandoning it needs either of these: a user whose
/// `media:write` was taken away mid-upload can still see where it stopped and drop it.
const UPLOAD_OWNER_PERMISSIONS: [Permission; 2] = [Permission::MediaRead, Permission::MediaWrite];

/// An upload in progress (or completed: then `media` is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub id: UploadId,
    pub org: OrgId,
    pub user: UserId,
    pub filename: String,
    pub offset: u64,
    pub total: Option<u64>,
    pub sha256_state: Vec<u8>,
    pub md5_state: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub media: Option<MediaId>,
    /// What the blob store remembers of this upload's staging between chunks (S3: the
    /// multipart upload and its parts); opaque here, kept in the row.
    pub staging_state: Option<String>,
    /// The event whose gallery the media joins when the upload completes.
    pub event: Option<EventId>,
    /// Its part in a concatenation (tus), if any.
    pub concat: Option<Concat>,
}

/// An upload's part in a concatenation: a part of a final upload, or the final upload
/// that joins parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Concat {
    /// Never becomes a media of its own; `final_upload` once a final upload claimed it.
    Partial { final_upload: Option<UploadId> },
    /// Its bytes are its parts', in this order.
    Final { parts: Vec<UploadId> },
}

/// What a written chunk changes in its upload's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkAdvance {
    pub offset: u64,
    pub total: Option<u64>,
    pub sha256_state: Vec<u8>,
    pub md5_state: Vec<u8>,
    pub staging_state: Option<String>,
}

/// Whether `n` bytes written into `staging` at the upload's offset are all of the file
/// (see [`Upload::whole_in`]): what the store is told, so that it may write them in one
/// request.
fn whole_write(upload: &Upload, staging: Option<&String>, n: Option<u64>) -> bool {
    staging.is_none() && upload.whole_in(upload.offset, n)
}

impl Upload {
    /// Whether `len` bytes written at `offset` are all of the file: the whole file in one
    /// write (its length announced and checked), which completes the upload. A part of a
    /// concatenation is never the file.
    #[must_use]
    pub fn whole_in(&self, offset: u64, len: Option<u64>) -> bool {
        offset == 0 && len.is_some() && len == self.total && !matches!(self.concat, Some(Concat::Partial { .. }))
    }

    /// The upload once `advance` is recorded.
    #[must_use]
    pub fn advanced(self, advance: ChunkAdvance) -> Self {
        Upload {
            offset: advance.offset,
            total: advance.total,
            sha256_state: advance.sha256_state,
            md5_state: advance.md5_state,
            staging_state: advance.staging_state,
            ..self
        }
    }
}

/// Where a chunk goes, from `Content-Range: bytes START-END/TOTAL` (END inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRange {
    pub start: u64,
    pub end: u64,
    pub total: Option<u64>,
}

impl ChunkRange {
    /// # Errors
    /// A message naming what is wrong when END < START or END >= TOTAL.
    pub fn new(start: u64, end: u64, total: Option<u64>) -> Result<Self, &'static str> {
        if end < start {
            return Err("Content-Range end is before its start");
        }
        if total.is_some_and(|t| end >= t) {
            return Err("Content-Range end is not below the total");
        }
        Ok(Self { start, end, total })
    }
    /// How many bytes the chunk holds (never zero: END is inclusive).
    #[must_use]
    pub fn byte_count(&self) -> u64 {
        self.end - self.start + 1
    }
}

/// How the bytes of one write into staging may run.
#[derive(Clone, Copy)]
struct Span<'a> {
    /// At most this many bytes (more: `ChunkTooLarge`).
    limit: u64,
    /// How many are expected when the range does not say (sizes the hashing).
    hint: Option<u64>,
    /// The digest the client sent for exactly these bytes.
    verify: Option<&'a BodyChecksum>,
    /// How many bytes come when the body arrives whole, when the range does not say it
    /// (a tus PATCH's announced length, at most a segment): all of the file when that is
    /// the upload's total from offset 0.
    announced: Option<u64>,
}

/// A digest the client sent for one request's bytes (tus `Upload-Checksum`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyChecksum {
    pub algorithm: DigestAlgorithm,
    pub digest: Vec<u8>,
}

/// Configurable limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    pub max_chunk_bytes: u64,
    pub max_upload_bytes: u64,
    pub ttl: Duration,
}

impl Default for UploadLimits {
    fn default() -> Self {
        Self { max_chunk_bytes: 16 << 20, max_upload_bytes: 5 << 30, ttl: Duration::hours(24) }
    }
}

/// A checksum the client asks complete to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    Md5(String),
    Sha256(String),
}

/// Errors of sending a chunk.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error("upload not found")]
    NotFound,
    #[error("upload expired")]
    Expired,
    #[error("upload already completed")]
    Completed,
    #[error("chunk starts at {start} but the upload's offset is {offset}")]
    OffsetMismatch { start: u64, offset: u64 },
    #[error("another chunk is being written at offset {offset}")]
    Busy { offset: u64 },
    #[error("{0}")]
    BadRange(&'static str),
    #[error("chunk body has {got} bytes, Content-Range says {expected}")]
    LengthMismatch { expected: u64, got: u64, offset: u64 },
    #[error("chunk is larger than the limit of {limit} bytes")]
    ChunkTooLarge { limit: u64 },
    #[error("upload would be larger than the limit of {limit} bytes")]
    UploadTooLarge { limit: u64 },
    #[error("total size {got} differs from the upload's total {expected}")]
    TotalMismatch { expected: u64, got: u64 },
    #[error("stored upload state is corrupt")]
    Corrupt,
    #[error("the {algorithm} checksum does not match the bytes of this request; none of them were kept")]
    ChecksumMismatch { algorithm: &'static str, offset: u64 },
    #[error("the request's bytes would run past the upload's length of {length} bytes")]
    BeyondLength { length: u64 },
    #[error("a final upload's bytes are its parts'; it takes none of its own")]
    FinalNotWritable,
    #[error("{0}")]
    BadConcat(String),
    #[error(transparent)]
    Repository(#[from] RepoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Errors of asking for or abandoning an upload.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error("upload not found")]
    NotFound,
    #[error("upload expired")]
    Expired,
    #[error(transparent)]
    Repository(#[from] RepoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Errors of completing an upload.
#[derive(Debug, thiserror::Error)]
pub enum CompleteError {
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error("upload not found")]
    NotFound,
    #[error("upload expired")]
    Expired,
    #[error("upload is empty")]
    Empty,
    #[error("upload has {offset} of {total} bytes")]
    Incomplete { offset: u64, total: u64 },
    #[error("{algorithm} checksum does not match the uploaded bytes")]
    ChecksumMismatch { algorithm: &'static str, offset: u64 },
    #[error("a chunk or another complete of this upload is in progress at offset {offset}")]
    Busy { offset: u64 },
    #[error("stored upload state is corrupt")]
    Corrupt,
    #[error(transparent)]
    Repository(#[from] RepoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a collection removed: how many things, and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    pub count: usize,
    pub bytes: u64,
}

impl std::ops::AddAssign for Removed {
    fn add_assign(&mut self, other: Self) {
        self.count += other.count;
        self.bytes += other.bytes;
    }
}

/// The chunked upload use cases.
pub struct UploadService {
    uploads: Arc<dyn UploadRepository>,
    media: Arc<dyn MediaRepository>,
    blobs: Arc<dyn BlobStore>,
    /// Reads an image's size from its header when a media is made.
    processor: Arc<dyn MediaProcessor>,
    clock: Arc<dyn Clock>,
    limits: UploadLimits,
    /// Told of every media an upload makes (a video's poster starts in the background).
    after_complete: Option<AfterComplete>,
}

/// What is told of a media just made by an upload; it must not block.
pub type AfterComplete = Arc<dyn Fn(&Media) + Send + Sync>;

enum Access {
    Ok(Box<Upload>),
    NotFound,
    Forbidden,
    Expired,
}

impl UploadService {
    #[must_use]
    pub fn new(
        uploads: Arc<dyn UploadRepository>,
        media: Arc<dyn MediaRepository>,
        blobs: Arc<dyn BlobStore>,
        processor: Arc<dyn MediaProcessor>,
        clock: Arc<dyn Clock>,
        limits: UploadLimits,
    ) -> Self {
        Self { uploads, media, blobs, processor, clock, limits, after_complete: None }
    }

    /// Tells `hook` of every media an upload makes, right after it is recorded.
    #[must_use]
    pub fn with_after_complete(mut self, hook: AfterComplete) -> Self {
        self.after_complete = Some(hook);
        self
    }

    #[must_use]
    pub fn limits(&self) -> UploadLimits {
        self.limits
    }

    /// Starts an upload with its first chunk. Without a range the body is the first chunk,
    /// placed at 0.
    ///
    /// # Errors
    /// `Forbidden` without `media:write`; `BadRange` when the range does not start at 0;
    /// the size and length errors of [`Self::append`].
    pub async fn start(
        &self,
        actor: &Actor,
        filename: &str,
        range: Option<ChunkRange>,
        body: IncomingBody,
    ) -> Result<Upload, ChunkError> {
        actor.require(&[Permission::MediaWrite])?;
        if let Some(r) = range {
            if r.start != 0 {
                return Err(ChunkError::BadRange("the first chunk must start at byte 0"));
            }
        }
        self.check_size(range, None)?;
        let now = self.clock.now();
        let upload = self.fresh(now, actor, filename, range.and_then(|r| r.total), None, None);
        // Nobody knows this upload's id before its row exists. Unless the store opens
        // something the row must record before bytes flow (S3: a multipart upload), the
        // first chunk streams first and the row is inserted once, already holding it: no
        // lease to take and give back (one statement instead of two). A crash in between
        // leaves staging bytes without a row, which gc's stray staging sweep removes.
        let len = range.map(|r| r.byte_count());
        let whole = upload.whole_in(range.map_or(0, |r| r.start), len);
        match self.blobs.prepare_staging(upload.id, None, len, whole).await? {
            Some(opened) => {
                let upload = Upload { staging_state: Some(opened), ..upload };
                let lease = uuid::Uuid::new_v4();
                self.uploads.create(&upload, lease, now + Duration::seconds(LEASE_SECS)).await?;
                self.write_leased(upload, lease, range, body).await
            }
            None => self.write_first(upload, range, self.chunk_span(), body, None).await,
        }
    }

    /// A new upload at offset 0 of the actor, made `now`, not yet stored.
    fn fresh(
        &self,
        now: DateTime<Utc>,
        actor: &Actor,
        filename: &str,
        total: Option<u64>,
        event: Option<EventId>,
        concat: Option<Concat>,
    ) -> Upload {
        let (sha256_state, md5_state) = Hashes::default().to_state();
        Upload {
            id: UploadId::random(),
            org: actor.org().clone(),
            user: actor.user().clone(),
            filename: sanitize_filename(filename),
            offset: 0,
            total,
            sha256_state,
            md5_state,
            created_at: now,
            expires_at: now + self.limits.ttl,
            media: None,
            staging_state: None,
            event,
            concat,
        }
    }

    /// The first bytes of an upload that has no row yet (see [`Self::start`]): its bytes,
    /// then its row, in one statement, holding `hold` as its lease when given (the caller
    /// goes on under it). A failure on the way leaves neither.
    async fn write_first(
        &self,
        upload: Upload,
        range: Option<ChunkRange>,
        span: Span<'_>,
        body: IncomingBody,
        hold: Option<uuid::Uuid>,
    ) -> Result<Upload, ChunkError> {
        let advance = match self.stream_into_staging(&upload, None, range, span, body).await {
            Ok(a) => a,
            Err(e) => {
                // Best effort: what is left is stray staging, gc's to remove.
                let _ = self.blobs.delete_staging(upload.id, None).await;
                return Err(e);
            }
        };
        // Stray staging is collected once older than a lease (and a margin): a first chunk
        // that streamed longer than a lease may have lost its bytes to gc, as a leased
        // chunk would have lost its lease. It is refused; the client starts again.
        if self.clock.now() > upload.created_at + Duration::seconds(LEASE_SECS) {
            let _ = self.blobs.delete_staging(upload.id, advance.staging_state).await;
            return Err(ChunkError::Busy { offset: 0 });
        }
        let upload = upload.advanced(advance);
        let recorded = match hold {
            Some(lease) => self.uploads.create(&upload, lease, self.clock.now() + Duration::seconds(LEASE_SECS)).await,
            None => self.uploads.insert(&upload).await,
        };
        if let Err(e) = recorded {
            let _ = self.blobs.delete_staging(upload.id, upload.staging_state.clone()).await;
            return Err(e.into());
        }
        Ok(upload)
    }

    /// Appends a chunk at the upload's offset.
    ///
    /// # Errors
    /// `Forbidden` without `media:write` (checked before the upload is looked up);
    /// `NotFound` for an unknown upload or one of another organization; `Forbidden` when
    /// the actor did not start it; `Expired` (410) past its lifetime; `Completed` once
    /// completed; `OffsetMismatch` when the chunk does not start at the offset (a retry of
    /// the chunk that ends at the offset is not an error: it answers the upload unchanged);
    /// `Busy` when another chunk is being written; `ChunkTooLarge`/`UploadTooLarge` over a
    /// limit; `LengthMismatch` when the body is shorter or longer than its range.
    pub async fn append(
        &self,
        actor: &Actor,
        id: UploadId,
        range: ChunkRange,
        body: IncomingBody,
    ) -> Result<Upload, ChunkError> {
        // Checked on every chunk, before anything is read: a permission taken away
        // mid-upload takes effect on the next request.
        actor.require(&[Permission::MediaWrite])?;
        let upload = match self.access(actor, id).await? {
            Access::Ok(u) => *u,
            Access::NotFound => return Err(ChunkError::NotFound),
            Access::Forbidden => {
                return Err(Forbidden::rule("only the user who started an upload may send to it").into())
            }
            Access::Expired => return Err(ChunkError::Expired),
        };
        if upload.media.is_some() {
            return Err(ChunkError::Completed);
        }
        if range.start != upload.offset {
            if range.end + 1 == upload.offset {
                // A retry of the chunk that was appended last, whose answer was lost.
                return Ok(upload);
            }
            return Err(ChunkError::OffsetMismatch { start: range.start, offset: upload.offset });
        }
        if let (Some(expected), Some(got)) = (upload.total, range.total) {
            if expected != got {
                return Err(ChunkError::TotalMismatch { expected, got });
            }
        }
        self.check_size(Some(range), upload.total)?;
        self.write_chunk(upload, Some(range), body).await
    }

    /// How a chunk of the chunk API may run: up to the chunk limit, nothing to verify.
    fn chunk_span(&self) -> Span<'static> {
        Span { limit: self.limits.max_chunk_bytes, hint: None, verify: None, announced: None }
    }

    fn check_size(&self, range: Option<ChunkRange>, total: Option<u64>) -> Result<(), ChunkError> {
        let Some(r) = range else { return Ok(()) };
        if r.byte_count() > self.limits.max_chunk_bytes {
            return Err(ChunkError::ChunkTooLarge { limit: self.limits.max_chunk_bytes });
        }
        let total = r.total.or(total);
        if r.end + 1 > self.limits.max_upload_bytes || total.is_some_and(|t| t > self.limits.max_upload_bytes) {
            return Err(ChunkError::UploadTooLarge { limit: self.limits.max_upload_bytes });
        }
        Ok(())
    }

    async fn write_chunk(
        &self,
        upload: Upload,
        range: Option<ChunkRange>,
        body: IncomingBody,
    ) -> Result<Upload, ChunkError> {
        let lease = uuid::Uuid::new_v4();
        let now = self.clock.now();
        if !self
            .uploads
            .acquire_lease(upload.id, upload.offset, lease, now + Duration::seconds(LEASE_SECS), now)
            .await?
        {
            return match self.uploads.find(upload.id).await? {
                // Abandoned or collected meanwhile.
                None => Err(ChunkError::NotFound),
                Some(u) => Err(ChunkError::Busy { offset: u.offset }),
            };
        }
        self.write_leased(upload, lease, range, body).await
    }

    /// Writes a chunk under the upload's `lease` (taken by the caller), then records it
    /// and lets the lease go.
    async fn write_leased(
        &self,
        upload: Upload,
        lease: uuid::Uuid,
        range: Option<ChunkRange>,
        body: IncomingBody,
    ) -> Result<Upload, ChunkError> {
        let written = async {
            let staging = self.prepare_staging(&upload, lease, range.map(|r| r.byte_count())).await?;
            self.stream_into_staging(&upload, staging, range, self.chunk_span(), body).await
        }
        .await;
        match written {
            Ok(advance) => {
                if !self.uploads.advance(upload.id, lease, &advance).await? {
                    return Err(ChunkError::Busy { offset: upload.offset });
                }
                Ok(upload.advanced(advance))
            }
            Err(ChunkError::Store(lost @ StoreError::Lost { .. })) => {
                self.forget_lost(upload.id, lease).await?;
                Err(ChunkError::Store(lost))
            }
            Err(e) => {
                self.uploads.release_lease(upload.id, lease).await?;
                Err(e)
            }
        }
    }

    /// Lets the store open what the chunk needs before bytes flow and records it in the
    /// row first (S3: a multipart upload), so that nothing opened is ever unknown to the
    /// database. Returns the staging state the chunk writes with.
    async fn prepare_staging(
        &self,
        upload: &Upload,
        lease: uuid::Uuid,
        len: Option<u64>,
    ) -> Result<Option<String>, ChunkError> {
        let current = upload.staging_state.clone();
        let Some(opened) = self.blobs.prepare_staging(upload.id, current.clone(), len, false).await? else {
            return Ok(current);
        };
        self.record_opened(upload, lease, opened).await
    }

    /// Records what the store opened for the upload's next write (see
    /// [`Self::prepare_staging`]); removes it when the upload is gone meanwhile.
    async fn record_opened(
        &self,
        upload: &Upload,
        lease: uuid::Uuid,
        opened: String,
    ) -> Result<Option<String>, ChunkError> {
        if self.uploads.record_staging(upload.id, lease, &opened, self.clock.now()).await? {
            return Ok(Some(opened));
        }
        // Abandoned or expired meanwhile (its staging goes), or the lease lapsed.
        match self.uploads.find(upload.id).await? {
            Some(u) if u.expires_at > self.clock.now() => Err(ChunkError::Busy { offset: u.offset }),
            gone => {
                self.blobs.delete_staging(upload.id, Some(opened)).await?;
                Err(if gone.is_some() { ChunkError::Expired } else { ChunkError::NotFound })
            }
        }
    }

    /// Streams one chunk into the upload's staging from its offset and answers what it
    /// changes: the new offset, the digests' midstates and the store's staging state.
    async fn stream_into_staging(
        &self,
        upload: &Upload,
        staging: Option<String>,
        range: Option<ChunkRange>,
        span: Span<'_>,
        body: IncomingBody,
    ) -> Result<ChunkAdvance, ChunkError> {
        let hashes = Hashes::from_state(&upload.sha256_state, &upload.md5_state).map_err(|_| ChunkError::Corrupt)?;
        let expected = range.map(|r| r.byte_count());
        let mut hashes = StreamHasher::start(hashes, expected.or(span.hint));
        let (got, mut writer) = self.stream_with(upload, &mut hashes, staging, expected, span, body).await?;
        // The sync and the digests' last pieces overlap.
        let (staging_state, hashed) = futures_util::future::join(writer.finish(), hashes.finish()).await;
        let staging_state = staging_state?;
        let (sha256_state, md5_state) = hashed.map_err(|_| ChunkError::Corrupt)?.to_state();
        Ok(ChunkAdvance {
            offset: upload.offset + got,
            total: upload.total.or(range.and_then(|r| r.total)),
            sha256_state,
            md5_state,
            staging_state,
        })
    }

    /// Streams `body` into the upload's staging from its offset through `hashes` (and the
    /// span's digest to verify), within the span's and the upload's limits and exactly
    /// `expected` bytes when given. Answers how many bytes, and the writer, which the
    /// caller finishes; on an error the writer is abandoned.
    async fn stream_with(
        &self,
        upload: &Upload,
        hashes: &mut StreamHasher,
        staging: Option<String>,
        expected: Option<u64>,
        span: Span<'_>,
        mut body: IncomingBody,
    ) -> Result<(u64, Box<dyn ChunkWriter>), ChunkError> {
        let mut digest = span.verify.map(|v| BodyDigest::new(v.algorithm));
        let chunk_limit = span.limit;
        let upload_room = self.limits.max_upload_bytes.saturating_sub(upload.offset);
        // The whole file in this one write (its length known and checked before finish):
        // a store may put it where its blob goes, in one request (S3).
        let len = expected.or(span.announced);
        let size = WriteSize { len, whole: whole_write(upload, staging.as_ref(), len) };
        let mut writer = self.blobs.staging_writer(upload.id, upload.offset, staging, size).await?;
        let streamed = async {
            let mut got: u64 = 0;
            while let Some(piece) = body.next().await {
                let piece = piece.map_err(StoreError::Body)?;
                got += piece.len() as u64;
                if let Some(e) = expected {
                    if got > e {
                        return Err(ChunkError::LengthMismatch { expected: e, got, offset: upload.offset });
                    }
                }
                if got > chunk_limit {
                    return Err(ChunkError::ChunkTooLarge { limit: chunk_limit });
                }
                if got > upload_room {
                    return Err(ChunkError::UploadTooLarge { limit: self.limits.max_upload_bytes });
                }
                hashes.update(&piece).await;
                if let Some(d) = digest.as_mut() {
                    d.update(&piece);
                }
                writer.write(piece).await?;
            }
            if let Some(e) = expected {
                if got != e {
                    return Err(ChunkError::LengthMismatch { expected: e, got, offset: upload.offset });
                }
            }
            if let (Some(v), Some(d)) = (span.verify, digest.take()) {
                if d.finish() != v.digest {
                    return Err(ChunkError::ChecksumMismatch {
                        algorithm: v.algorithm.as_str(),
                        offset: upload.offset,
                    });
                }
            }
            Ok(got)
        }
        .await;
        match streamed {
            Ok(got) => Ok((got, writer)),
            Err(e) => {
                // Before the lease goes: no late byte of this chunk may land on a retry's.
                writer.abandon().await;
                Err(e)
            }
        }
    }

    async fn access(&self, actor: &Actor, id: UploadId) -> Result<Access, RepoError> {
        let Some(upload) = self.uploads.find(id).await? else { return Ok(Access::NotFound) };
        if upload.org != *actor.org() {
            return Ok(Access::NotFound);
        }
        if upload.user != *actor.user() {
            return Ok(Access::Forbidden);
        }
        if upload.media.is_none() && upload.expires_at <= self.clock.now() {
            return Ok(Access::Expired);
        }
        Ok(Access::Ok(Box::new(upload)))
    }

    /// The upload as stored: its offset tells a client where to resume.
    ///
    /// # Errors
    /// `Forbidden` with neither `media:read` nor `media:write`; `NotFound`, `Forbidden`,
    /// `Expired` as for [`Self::append`].
    pub async fn status(&self, actor: &Actor, id: UploadId) -> Result<Upload, UploadError> {
        actor.require_any(&UPLOAD_OWNER_PERMISSIONS)?;
        match self.access(actor, id).await? {
            Access::Ok(u) => Ok(*u),
            Access::NotFound => Err(UploadError::NotFound),
            Access::Forbidden => Err(Forbidden::rule("only the user who started an upload may see it").into()),
            Access::Expired => Err(UploadError::Expired),
        }
    }

    /// Abandons an upload: its staging bytes and row are removed.
    ///
    /// # Errors
    /// `Forbidden` with neither `media:read` nor `media:write`; `NotFound`, `Forbidden` as
    /// for [`Self::append`] (an expired upload can be abandoned).
    pub async fn abandon(&self, actor: &Actor, id: UploadId) -> Result<(), UploadError> {
        actor.require_any(&UPLOAD_OWNER_PERMISSIONS)?;
        let upload = match self.access(actor, id).await? {
            Access::Ok(u) => *u,
            Access::Expired => self.uploads.find(id).await?.ok_or(UploadError::NotFound)?,
            Access::NotFound => return Err(UploadError::NotFound),
            Access::Forbidden => {
                return Err(Forbidden::rule("only the user who started an upload may abandon it").into())
            }
        };
        if upload.media.is_some() {
            // Completed: its bytes live in the blob store; only the row goes.
            return Ok(self.uploads.delete(&[upload.id]).await?);
        }
        // Expire the row first: no chunk can take the lease or record staging after that,
        // and a crash from here on leaves an expired row that gc collects with its staging.
        self.uploads.expire(upload.id, self.clock.now()).await?;
        // Read again: a chunk in flight may have recorded staging (a multipart upload).
        let staging = self.uploads.find(upload.id).await?.map_or(upload.staging_state, |u| u.staging_state);
        self.blobs.delete_staging(upload.id, staging).await?;
        self.uploads.delete(&[upload.id]).await?;
        Ok(())
    }

    /// Collects up to `limit` expired uploads: staging bytes first, then the row, so a
    /// crash in between leaves a row that the next run collects, never bytes without one.
    /// Returns how many were collected and the staging bytes they freed.
    ///
    /// # Errors
    /// The first repository or store failure.
    pub async fn collect_expired(&self, limit: u32) -> Result<Removed, UploadError> {
        let expired = self.uploads.expired(self.clock.now(), limit).await?;
        let mut ids = Vec::with_capacity(expired.len());
        let mut bytes = 0;
        for (id, staging) in expired {
            bytes += self.blobs.delete_staging(id, staging).await?;
            ids.push(id);
        }
        if !ids.is_empty() {
            self.uploads.delete(&ids).await?;
        }
        Ok(Removed { count: ids.len(), bytes })
    }

    /// Removes staging bytes whose upload row is gone or completed and that were last
    /// written before `before` (a chunk that raced an abandon, or a chunk that failed
    /// after storing bytes it never recorded, can leave them). Returns how many uploads'
    /// staging went, and its bytes.
    ///
    /// # Errors
    /// The first repository or store failure.
    pub async fn collect_stray_staging(&self, before: DateTime<Utc>) -> Result<Removed, UploadError> {
        let old: Vec<UploadId> =
            self.blobs.list_staging().await?.into_iter().filter(|(_, t)| *t < before).map(|(id, _)| id).collect();
        let mut stray = Removed::default();
        for batch in old.chunks(1000) {
            let alive = self.uploads.unfinished(batch).await?;
            for id in batch.iter().filter(|id| !alive.contains(id)) {
                stray += Removed { count: 1, bytes: self.blobs.delete_staging(*id, None).await? };
            }
        }
        Ok(stray)
    }

    /// Completes an upload into a media: checks the checksum when one is given, sniffs
    /// the content type and dimensions, moves the bytes into the content-addressed store
    /// and records the media. Completing again answers the same media.
    ///
    /// # Errors
    /// `Forbidden` without `media:write`; `NotFound`, `Forbidden`, `Expired` as for
    /// [`Self::append`]; `ChecksumMismatch` when
    /// the bytes do not match (the upload stays resumable); `Empty` with no bytes;
    /// `Incomplete` when a total was announced and not reached.
    pub async fn complete(
        &self,
        actor: &Actor,
        id: UploadId,
        checksum: Option<Checksum>,
    ) -> Result<Media, CompleteError> {
        actor.require(&[Permission::MediaWrite])?;
        // The chunks' write lease: no chunk can append, and no other complete commit,
        // while these bytes become a blob. The common case takes it in the statement that
        // reads the upload; anything else (someone else's upload, expired, completed, a
        // chunk in flight) is told apart below, the slower way.
        let lease = uuid::Uuid::new_v4();
        let now = self.clock.now();
        let until = now + Duration::seconds(LEASE_SECS);
        if let Some(upload) = self.uploads.lease_unfinished(id, actor.org(), actor.user(), lease, until, now).await? {
            let checked = completable(&upload, checksum.as_ref(), false);
            return self.commit_leased(&upload, lease, checked).await;
        }
        let upload = match self.access(actor, id).await? {
            Access::Ok(u) => *u,
            Access::NotFound => return Err(CompleteError::NotFound),
            Access::Forbidden => {
                return Err(Forbidden::rule("only the user who started an upload may complete it").into())
            }
            Access::Expired => return Err(CompleteError::Expired),
        };
        if let Some(done) = upload.media {
            // Completed before: the same media (its bytes may live under another key).
            return self.media.find(&upload.org, done).await?.ok_or(CompleteError::NotFound);
        }
        let (sha256, md5) = completable(&upload, checksum.as_ref(), false)?;
        if !self.uploads.acquire_lease(upload.id, upload.offset, lease, until, now).await? {
            return match self.uploads.find(upload.id).await? {
                // A concurrent complete finished first: its media is the answer.
                Some(Upload { media: Some(done), org, .. }) => {
                    self.media.find(&org, done).await?.ok_or(CompleteError::NotFound)
                }
                Some(u) => Err(CompleteError::Busy { offset: u.offset }),
                None => Err(CompleteError::NotFound),
            };
        }
        self.commit_leased(&upload, lease, Ok((sha256, md5))).await
    }

    /// Under the upload's lease: makes the media when the upload passed its checks, and
    /// lets the lease go when it did not or the commit failed (the upload stays
    /// resumable).
    async fn commit_leased(
        &self,
        upload: &Upload,
        lease: uuid::Uuid,
        checked: Result<(String, String), CompleteError>,
    ) -> Result<Media, CompleteError> {
        let made = match checked {
            Ok((sha256, md5)) => self.commit_media(upload, sha256, md5).await,
            Err(e) => Err(e),
        };
        match made {
            Err(CompleteError::Store(StoreError::Lost { .. })) => self.forget_lost(upload.id, lease).await?,
            // A failure to release leaves a lease that lapses.
            Err(_) => drop(self.uploads.release_lease(upload.id, lease).await),
            Ok(_) => {}
        }
        made
    }

    /// An upload whose staged bytes a crash lost ends here: its row expires (every
    /// later request answers 410) and gc removes what is left of it.
    async fn forget_lost(&self, id: UploadId, lease: uuid::Uuid) -> Result<(), RepoError> {
        self.uploads.expire(id, self.clock.now()).await?;
        self.uploads.release_lease(id, lease).await
    }

    /// Commits the staging into a blob (under the upload's lease), sniffs it and records
    /// the media.
    async fn commit_media(&self, upload: &Upload, sha256: String, md5: String) -> Result<Media, CompleteError> {
        let key = blob_key(upload.id);
        // Bytes first, row second: a crash in between leaves a blob without a media, which
        // gc collects; never a media without its blob. Committing again (a retry) is fine.
        let head_len = usize::try_from(upload.offset).map_or(SNIFF_BYTES, |o| o.min(SNIFF_BYTES));
        let head = if upload.offset == 0 {
            // An empty file (tus `Upload-Length: 0`): no staging to commit.
            self.blobs.put_blob(&key, bytes::Bytes::new()).await?;
            self.blobs.delete_staging(upload.id, upload.staging_state.clone()).await?;
            Vec::new()
        } else {
            self.blobs.commit_staging(upload.id, upload.offset, &key, upload.staging_state.clone(), head_len).await?
        };
        let content_type = content_type(&head);
        let kind = MediaKind::of_content_type(&content_type);
        // A raster image's size, from its header (an SVG's is not in pixels).
        let probe = if kind == MediaKind::Image && content_type != "image/svg+xml" {
            self.processor.probe(&content_type, &head)
        } else {
            Probe::default()
        };
        let new = NewMedia {
            uuid: uuid::Uuid::new_v4(),
            org: upload.org.clone(),
            uploaded_by: upload.user.clone(),
            filename: upload.filename.clone(),
            kind,
            content_type,
            size: upload.offset,
            sha256,
            md5,
            width: probe.width,
            height: probe.height,
            created_at: self.clock.now(),
            blob_key: key.clone(),
        };
        let media = self.uploads.complete(upload.id, &new).await?;
        if let Some(hook) = &self.after_complete {
            hook(&media);
        }
        if media.blob_key != key {
            // Identical bytes were stored already: this copy is not needed. A failure
            // leaves an orphan that gc collects.
            let _ = self.blobs.delete_blob(&key).await;
        }
        Ok(media)
    }
}

/// What completing `upload` needs before its bytes are touched: bytes, all of them when
/// a total was announced, and the checksum the client sent, if any. Answers its digests.
fn completable(
    upload: &Upload,
    checksum: Option<&Checksum>,
    allow_empty: bool,
) -> Result<(String, String), CompleteError> {
    let hashes = Hashes::from_state(&upload.sha256_state, &upload.md5_state).map_err(|_| CompleteError::Corrupt)?;
    let (sha256, md5) = hashes.finish();
    if upload.offset == 0 && !allow_empty {
        return Err(CompleteError::Empty);
    }
    if let Some(total) = upload.total.filter(|t| *t != upload.offset) {
        return Err(CompleteError::Incomplete { offset: upload.offset, total });
    }
    match checksum {
        Some(Checksum::Md5(m)) if !m.eq_ignore_ascii_case(&md5) => {
            Err(CompleteError::ChecksumMismatch { algorithm: "md5", offset: upload.offset })
        }
        Some(Checksum::Sha256(s)) if !s.eq_ignore_ascii_case(&sha256) => {
            Err(CompleteError::ChecksumMismatch { algorithm: "sha256", offset: upload.offset })
        }
        _ => Ok((sha256, md5)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MockBlobStore, MockChunkWriter, MockClock, MockUploadRepository, WriteSize};
    use bytes::Bytes;
    use chrono::TimeZone;
    use mockall::predicate::eq;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    pub(super) fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().unwrap_or_default()
    }

    pub(super) fn clock() -> Arc<dyn Clock> {
        let mut c = MockClock::new();
        c.expect_now().returning(now);
        Arc::new(c)
    }

    fn actor(user: &str, perms: &[Permission]) -> Result<Actor, crate::ids::InvalidId> {
        Ok(Actor::new(UserId::new(user)?, OrgId::new("acme")?, perms.iter().copied()))
    }

    /// A chunk writer that takes every piece; each test says how it ends.
    fn accepting_writer() -> MockChunkWriter {
        let mut w = MockChunkWriter::new();
        w.expect_write().returning(|_| Ok(()));
        w
    }

    /// A chunk writer that takes every piece and finishes with `state`.
    fn finishing_writer(state: Option<&'static str>) -> Result<Box<dyn crate::ports::ChunkWriter>, StoreError> {
        let mut w = accepting_writer();
        w.expect_finish().returning(move || Ok(state.map(str::to_owned)));
        Ok(Box::new(w))
    }

    pub(super) fn writer(user: &str) -> Result<Actor, crate::ids::InvalidId> {
        actor(user, &[Permission::MediaWrite])
    }

    fn body(parts: &[&'static [u8]]) -> IncomingBody {
        let items: Vec<Result<Bytes, std::io::Error>> = parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Box::pin(futures_util::stream::iter(items))
    }

    fn upload(offset: u64) -> Result<Upload, crate::ids::InvalidId> {
        let mut h = Hashes::default();
        h.update(&b"0123456789"[..usize::try_from(offset).unwrap_or(0).min(10)]);
        let (s, m) = h.to_state();
        Ok(Upload {
            id: UploadId::random(),
            org: OrgId::new("acme")?,
            user: UserId::new("u-1")?,
            filename: "a.bin".into(),
            offset,
            total: None,
            sha256_state: s,
            md5_state: m,
            created_at: now(),
            expires_at: now() + Duration::hours(1),
            media: None,
            staging_state: None,
            event: None,
            concat: None,
        })
    }

    fn service(repo: MockUploadRepository, blobs: MockBlobStore) -> UploadService {
        service_with(repo, blobs, crate::ports::MockMediaProcessor::new())
    }

    fn service_with(
        repo: MockUploadRepository,
        blobs: MockBlobStore,
        processor: crate::ports::MockMediaProcessor,
    ) -> UploadService {
        UploadService::new(
            Arc::new(repo),
            Arc::new(crate::ports::MockMediaRepository::new()),
            Arc::new(blobs),
            Arc::new(processor),
            clock(),
            UploadLimits { max_chunk_bytes: 8, max_upload_bytes: 20, ..UploadLimits::default() },
        )
    }

    #[tokio::test]
    async fn starting_an_upload_needs_media_write() -> TestResult {
        let svc = service(MockUploadRepository::new(), MockBlobStore::new());
        let err = svc.start(&actor("u-1", &[Permission::MediaRead])?, "a", None, body(&[b"x"])).await;
        assert!(matches!(err, Err(ChunkError::Forbidden(f)) if f.missing == vec![Permission::MediaWrite]));
        Ok(())
    }

    /// A store may put a file that comes whole in one write where its blob goes (S3: one
    /// request): the domain says so exactly when the chunk is all of the file.
    #[tokio::test]
    async fn only_a_first_chunk_that_is_all_of_the_file_is_written_whole() -> TestResult {
        for (total, whole) in [(Some(2), true), (Some(10), false), (None, false)] {
            let mut repo = MockUploadRepository::new();
            repo.expect_insert().returning(|_| Ok(()));
            let mut blobs = MockBlobStore::new();
            blobs
                .expect_prepare_staging()
                .withf(move |_, _, _, w| *w == whole)
                .times(1)
                .returning(|_, _, _, _| Ok(None));
            blobs
                .expect_staging_writer()
                .withf(move |_, _, _, w| *w == WriteSize { len: Some(2), whole })
                .times(1)
                .returning(|_, _, _, _| finishing_writer(None));
            let range = ChunkRange::new(0, 1, total).map_err(|e| e.to_string())?;
            service(repo, blobs).start(&writer("u-1")?, "a.bin", Some(range), body(&[b"ab"])).await?;
        }
        let up = Upload { total: Some(2), ..upload(0)? };
        assert!(up.whole_in(0, Some(2)));
        assert!(!up.whole_in(1, Some(2)), "not from the start");
        assert!(!up.whole_in(0, None), "length unknown");
        let part = Upload { concat: Some(Concat::Partial { final_upload: None }), ..up };
        assert!(!part.whole_in(0, Some(2)), "a part of a concatenation is not the file");
        Ok(())
    }

    #[tokio::test]
    async fn a_first_chunk_is_staged_then_its_upload_inserted_once_without_a_lease() -> TestResult {
        let mut seq = mockall::Sequence::new();
        let mut repo = MockUploadRepository::new();
        let mut blobs = MockBlobStore::new();
        blobs.expect_prepare_staging().times(1).in_sequence(&mut seq).returning(|_, _, _, _| Ok(None));
        blobs
            .expect_staging_writer()
            .withf(|_, offset, _, _| *offset == 0)
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _, _| finishing_writer(None));
        // One statement, after the bytes: the row holds the chunk and no lease.
        let mut done = Hashes::default();
        done.update(b"ab");
        let (sha, md5) = done.to_state();
        repo.expect_insert()
            .withf(move |u| u.offset == 2 && u.sha256_state == sha && u.md5_state == md5 && u.filename == "a.bin")
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        repo.expect_create().never();
        repo.expect_acquire_lease().never();
        repo.expect_advance().never();
        let up = service(repo, blobs).start(&writer("u-1")?, "a.bin", None, body(&[b"ab"])).await?;
        assert_eq!(up.offset, 2);
        Ok(())
    }

    #[tokio::test]
    async fn a_first_chunk_that_fails_leaves_no_row_and_its_staging_is_removed() -> TestResult {
        // The body breaks off: no row, the staging goes.
        let mut repo = MockUploadRepository::new();
        repo.expect_insert().never();
        repo.expect_create().never();
        let mut blobs = MockBlobStore::new();
        blobs.expect_prepare_staging().returning(|_, _, _, _| Ok(None));
        blobs.expect_staging_writer().returning(|_, _, _, _| {
            let mut w = accepting_writer();
            w.expect_abandon().returning(|| ());
            Ok(Box::new(w))
        });
        blobs.expect_delete_staging().withf(|_, st| st.is_none()).times(1).returning(|_, _| Ok(0));
        let broken: IncomingBody = Box::pin(futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"ab")),
            Err(std::io::Error::other("connection reset")),
        ]));
        let err = service(repo, blobs).start(&writer("u-1")?, "a.bin", None, broken).await;
        assert!(matches!(err, Err(ChunkError::Store(StoreError::Body(_)))), "{err:?}");

        // The bytes are staged but the row cannot be written: the staging goes too.
        let mut repo = MockUploadRepository::new();
        repo.expect_insert().times(1).returning(|_| Err(RepoError::Unavailable("database down".into())));
        let mut blobs = MockBlobStore::new();
        blobs.expect_prepare_staging().returning(|_, _, _, _| Ok(None));
        blobs.expect_staging_writer().returning(|_, _, _, _| finishing_writer(Some("parts")));
        blobs.expect_delete_staging().withf(|_, st| st.as_deref() == Some("parts")).times(1).returning(|_, _| Ok(2));
        let err = service(repo, blobs).start(&writer("u-1")?, "a.bin", None, body(&[b"ab"])).await;
        assert!(matches!(err, Err(ChunkError::Repository(RepoError::Unavailable(_)))), "{err:?}");
        Ok(())
    }

    #[tokio::test]
    async fn a_first_chunk_that_arrived_slower_than_a_lease_is_refused_and_leaves_nothing() -> TestResult {
        // gc may sweep row-less staging once older than a lease: such a chunk is not
        // recorded, its staging goes, and the client is told to start again at 0.
        let mut clock = MockClock::new();
        let mut seq = mockall::Sequence::new();
        clock.expect_now().times(1).in_sequence(&mut seq).returning(now);
        clock.expect_now().returning(|| now() + Duration::seconds(LEASE_SECS + 1));
        let mut repo = MockUploadRepository::new();
        repo.expect_insert().never();
        let mut blobs = MockBlobStore::new();
        blobs.expect_prepare_staging().returning(|_, _, _, _| Ok(None));
        blobs.expect_staging_writer().returning(|_, _, _, _| finishing_writer(Some("parts")));
        blobs.expect_delete_staging().withf(|_, st| st.as_deref() == Some("parts")).times(1).returning(|_, _| Ok(2));
        let svc = UploadService::new(
            Arc::new(repo),
            Arc::new(crate::ports::MockMediaRepository::new()),
            Arc::new(blobs),
            Arc::new(crate::ports::MockMediaProcessor::new()),
            Arc::new(clock),
            UploadLimits { max_chunk_bytes: 8, max_upload_bytes: 20, ..UploadLimits::default() },
        );
        let err = svc.start(&writer("u-1")?, "a.bin", None, body(&[b"ab"])).await;
        assert!(matches!(err, Err(ChunkError::Busy { offset: 0 })), "{err:?}");
        Ok(())
    }

    #[tokio::test]
    async fn a_first_chunk_the_store_opens_staging_for_is_recorded_under_a_lease_before_any_byte() -> TestResult {
        let mut seq = mockall::Sequence::new();
        let mut repo = MockUploadRepository::new();
        let mut blobs = MockBlobStore::new();
        blobs.expect_prepare_staging().times(1).in_sequence(&mut seq).returning(|_, _, _, _| Ok(Some("mp".into())));
        let taken = std::sync::Arc::new(std::sync::Mutex::new(None));
        let held = taken.clone();
        repo.expect_create()
            .withf(|u, _, _| u.offset == 0 && u.staging_state.as_deref() == Some("mp"))
            .times(1)
            .in_sequence(&mut seq)
            .returning(move |u, lease, until| {
                assert_eq!(until - u.created_at, Duration::seconds(LEASE_SECS));
                *held.lock().map_err(|_| RepoError::Other("poisoned".into()))? = Some(lease);
                Ok(())
            });
        // Opened already: the store opens nothing more, and nothing is recorded again.
        blobs
            .expect_prepare_staging()
            .withf(|_, st, _, _| st.as_deref() == Some("mp"))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _, _| Ok(None));
        repo.expect_record_staging().never();
        blobs
            .expect_staging_writer()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _, _| finishing_writer(Some("mp+part")));
        let used = taken.clone();
        repo.expect_advance()
            .withf(move |_, lease, adv| used.lock().is_ok_and(|l| *l == Some(*lease)) && adv.offset == 2)
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _| Ok(true));
        repo.expect_insert().never();
        let up = service(repo, blobs).start(&writer("u-1")?, "a.bin", None, body(&[b"ab"])).await?;
        assert_eq!((up.offset, up.staging_state.as_deref()), (2, Some("mp+part")));
        Ok(())
    }

    #[tokio::test]
    async fn continuing_or_completing_needs_media_write_and_touches_nothing() -> TestResult {
        // The uploader's own upload, but a token that lost `media:write` since: no lookup,
        // no lease, no bytes, no media (the mocks panic on any call).
        let reader = actor("u-1", &[Permission::MediaRead])?;
        let svc = service(MockUploadRepository::new(), MockBlobStore::new());
        let id = UploadId::random();
        let sent = svc.append(&reader, id, ChunkRange::new(0, 1, None)?, body(&[b"ab"])).await;
        assert!(matches!(sent, Err(ChunkError::Forbidden(f)) if f.missing == vec![Permission::MediaWrite]));
        let done = svc.complete(&reader, id, None).await;
        assert!(matches!(done, Err(CompleteError::Forbidden(f)) if f.missing == vec![Permission::MediaWrite]));
        Ok(())
    }

    #[tokio::test]
    async fn status_and_abandon_need_read_or_write() -> TestResult {
        let up = upload(4)?;
        let id = up.id;
        let mut repo = MockUploadRepository::new();
        repo.expect_find().returning(move |_| Ok(Some(up.clone())));
        repo.expect_expire().times(1).returning(|_, _| Ok(()));
        repo.expect_delete().times(1).returning(|_| Ok(()));
        let mut blobs = MockBlobStore::new();
        blobs.expect_delete_staging().times(1).returning(|_, _| Ok(2));
        let svc = service(repo, blobs);
        let neither = actor("u-1", &[Permission::EventWrite])?;
        let seen = svc.status(&neither, id).await;
        assert!(matches!(seen, Err(UploadError::Forbidden(f)) if f.missing.len() == 2));
        assert!(matches!(svc.abandon(&neither, id).await, Err(UploadError::Forbidden(_))));
        let reader = actor("u-1", &[Permission::MediaRead])?;
        assert_eq!(svc.status(&reader, id).await?.offset, 4);
        let writer_only = writer("u-1")?;
        assert_eq!(svc.status(&writer_only, id).await?.offset, 4);
        svc.abandon(&reader, id).await?;
        Ok(())
    }

    #[tokio::test]
    async fn a_chunk_at_the_wrong_offset_is_refused_and_writes_nothing() -> TestResult {
        let up = upload(4)?;
        let id = up.id;
        let mut repo = MockUploadRepository::new();
        repo.expect_find().with(eq(id)).returning(move |_| Ok(Some(up.clone())));
        // No lease taken, no writer opened: the mocks would panic on an unexpected call.
        let svc = service(repo, MockBlobStore::new());
        let r = ChunkRange::new(6, 7, None)?;
        let err = svc.append(&writer("u-1")?, id, r, body(&[b"ab"])).await;
        assert!(matches!(err, Err(ChunkError::OffsetMismatch { start: 6, offset: 4 })));
        Ok(())
    }

    #[tokio::test]
    async fn resending_the_last_chunk_answers_the_same_offset() -> TestResult {
        let up = upload(4)?;
        let id = up.id;
        let mut repo = MockUploadRepository::new();
        repo.expect_find().returning(move |_| Ok(Some(up.clone())));
        let svc = service(repo, MockBlobStore::new());
        let got = svc.append(&writer("u-1")?, id, ChunkRange::new(2, 3, None)?, body(&[b"23"])).await?;
        assert_eq!(got.offset, 4);
        Ok(())
    }

    #[tokio::test]
    async fn another_users_upload_is_forbidden_and_another_orgs_is_not_found() -> TestResult {
        let up = upload(0)?;
        let id = up.id;
        let mut repo = MockUploadRepository::new();
        repo.expect_find().returning(move |_| Ok(Some(up.clone())));
        let svc = service(repo, MockBlobStore::new());
        let r = ChunkRange::new(0, 0, None)?;
        let other_user = svc.append(&writer("u-2")?, id, r, body(&[b"x"])).await;
        assert!(matches!(other_user, Err(ChunkError::Forbidden(_))));
        let stranger = Actor::new(UserId::new("u-1")?, OrgId::new("beta")?, [Permission::MediaWrite]);
        assert!(matches!(svc.append(&stranger, id, r, body(&[b"x"])).await, Err(ChunkError::NotFound)));
        Ok(())
    }

    #[tokio::test]
    async fn a_body_shorter_than_its_range_releases_the_lease_and_keeps_the_offset() -> TestResult {
        let up = upload(0)?;
        let id = up.id;
        let mut repo = MockUploadRepository::new();
        repo.expect_find().returning(move |_| Ok(Some(up.clone())));
        repo.expect_acquire_lease().returning(|_, _, _, _, _| Ok(true));
        repo.expect_release_lease().times(1).returning(|_, _| Ok(()));
        repo.expect_advance().never();
        let mut blobs = MockBlobStore::new();
        blobs.expect_prepare_staging().returning(|_, _, _, _| Ok(None));
        blobs.expect_staging_writer().returning(|_, _, _, _| {
            let mut w = accepting_writer();
            w.expect_abandon().times(1).returning(|| ());
            Ok(Box::new(w))
        });
        let svc = service(repo, blobs);
        let err = svc.append(&writer("u-1")?, id, ChunkRange::new(0, 4, None)?, body(&[b"ab"])).await;
        assert!(matches!(err, Err(ChunkError::LengthMismatch { expected: 5, got: 2, offset: 0 })));
        Ok(())
    }

    #[tokio::test]
    async fn what_the_store_opens_is_recorded_before_any_byte_and_the_new_state_with_the_offset() -> TestResult {
        let up = upload(0)?;
        let id = up.id;
        let mut seq = mockall::Sequence::new();
        let mut repo = MockUploadRepository::new();
        let mut blobs = MockBlobStore::new();
        repo.expect_find().returning(move |_| Ok(Some(up.clone())));
        repo.expect_acquire_lease().times(1).in_sequence(&mut seq).returning(|_, _, _, _, _| Ok(true));
        blobs
            .expect_prepare_staging()
            .withf(|_, st, len, _| st.is_none() && *len == Some(2))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _, _| Ok(Some("opened".into())));
        repo.expect_record_staging()
            .withf(|_, _, st, _| st == "opened")
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _, _| Ok(true));
        blobs
            .expect_staging_writer()
            .withf(|_, _, st, _| st.as_deref() == Some("opened"))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _, _| finishing_writer(Some("opened+part")));
        repo.expect_advance()
            .withf(|_, _, a| a.offset == 2 && a.staging_state.as_deref() == Some("opened+part"))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _| Ok(true));
        let svc = service(repo, blobs);
        let got = svc.append(&writer("u-1")?, id, ChunkRange::new(0, 1, None)?, body(&[b"ab"])).await?;
        assert_eq!(got.staging_state.as_deref(), Some("opened+part"));
        Ok(())
    }

    #[tokio::test]
    async fn staging_opened_for_an_upload_abandoned_meanwhile_is_removed() -> TestResult {
        let up = upload(0)?;
        let id = up.id;
        let mut gone = up.clone();
        gone.expires_at = now() - Duration::seconds(1);
        let mut repo = MockUploadRepository::new();
        let mut seq = mockall::Sequence::new();
        repo.expect_find().times(1).in_sequence(&mut seq).returning(move |_| Ok(Some(up.clone())));
        repo.expect_acquire_lease().returning(|_, _, _, _, _| Ok(true));
        repo.expect_record_staging().returning(|_, _, _, _| Ok(false));
        repo.expect_find().times(1).in_sequence(&mut seq).returning(move |_| Ok(Some(gone.clone())));
        repo.expect_release_lease().returning(|_, _| Ok(()));
        let mut blobs = MockBlobStore::new();
        blobs.expect_prepare_staging().returning(|_, _, _, _| Ok(Some("mp".into())));
        blobs.expect_delete_staging().withf(|_, st| st.as_deref() == Some("mp")).times(1).returning(|_, _| Ok(0));
        let svc = service(repo, blobs);
        let err = svc.append(&writer("u-1")?, id, ChunkRange::new(0, 1, None)?, body(&[b"ab"])).await;
        assert!(matches!(err, Err(ChunkError::Expired)), "{err:?}");
        Ok(())
    }

    #[tokio::test]
    async fn a_chunk_over_the_limit_is_too_large() -> TestResult {
        let up = upload(0)?;
        let id = up.id;
        let mut repo = MockUploadRepository::new();
        repo.expect_find().returning(move |_| Ok(Some(up.clone())));
        let svc = service(repo, MockBlobStore::new());
        let err = svc.append(&writer("u-1")?, id, ChunkRange::new(0, 8, None)?, body(&[b"123456789"])).await;
        assert!(matches!(err, Err(ChunkError::ChunkTooLarge { limit: 8 })));
        let err = svc.append(&writer("u-1")?, id, ChunkRange::new(0, 3, Some(21))?, body(&[b"1234"])).await;
        assert!(matches!(err, Err(ChunkError::UploadTooLarge { limit: 20 })));
        Ok(())
    }

    #[tokio::test]
    async fn a_lost_race_for_the_offset_is_busy() -> TestResult {
        let up = upload(0)?;
        let id = up.id;
        let mut repo = MockUploadRepository::new();
        repo.expect_find().returning(move |_| Ok(Some(up.clone())));
        repo.expect_acquire_lease().returning(|_, _, _, _, _| Ok(false));
        let svc = service(repo, MockBlobStore::new());
        let err = svc.append(&writer("u-1")?, id, ChunkRange::new(0, 1, None)?, body(&[b"ab"])).await;
        assert!(matches!(err, Err(ChunkError::Busy { offset: 0 })));
        Ok(())
    }

    #[tokio::test]
    async fn a_chunk_for_an_upload_collected_meanwhile_is_not_found() -> TestResult {
        let up = upload(0)?;
        let id = up.id;
        let mut repo = MockUploadRepository::new();
        let mut seq = mockall::Sequence::new();
        repo.expect_find().times(1).in_sequence(&mut seq).returning(move |_| Ok(Some(up.clone())));
        repo.expect_acquire_lease().returning(|_, _, _, _, _| Ok(false));
        repo.expect_find().times(1).in_sequence(&mut seq).returning(|_| Ok(None));
        let svc = service(repo, MockBlobStore::new());
        let err = svc.append(&writer("u-1")?, id, ChunkRange::new(0, 1, None)?, body(&[b"ab"])).await;
        assert!(matches!(err, Err(ChunkError::NotFound)));
        Ok(())
    }

    #[tokio::test]
    async fn expired_uploads_lose_their_bytes_first_then_all_rows_at_once() -> TestResult {
        let ids = vec![UploadId::random(), UploadId::random(), UploadId::random()];
        let listed: Vec<(UploadId, Option<String>)> = ids.iter().map(|id| (*id, Some(format!("mp-{id}")))).collect();
        let expected = ids.clone();
        let mut seq = mockall::Sequence::new();
        let mut repo = MockUploadRepository::new();
        repo.expect_expired().returning(move |_, _| Ok(listed.clone()));
        let mut blobs = MockBlobStore::new();
        // Each upload's staging goes with the state its row kept (S3: its multipart upload).
        blobs
            .expect_delete_staging()
            .withf(|id, st| st.as_deref() == Some(format!("mp-{id}").as_str()))
            .times(3)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(100));
        repo.expect_delete()
            .withf(move |d| d == expected.as_slice())
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        assert_eq!(service(repo, blobs).collect_expired(500).await?, Removed { count: 3, bytes: 300 });
        Ok(())
    }

    #[tokio::test]
    async fn an_expired_upload_is_gone() -> TestResult {
        let mut up = upload(0)?;
        up.expires_at = now() - Duration::seconds(1);
        let id = up.id;
        let mut repo = MockUploadRepository::new();
        repo.expect_find().returning(move |_| Ok(Some(up.clone())));
        let svc = service(repo, MockBlobStore::new());
        assert!(matches!(svc.status(&writer("u-1")?, id).await, Err(UploadError::Expired)));
        Ok(())
    }

    #[tokio::test]
    async fn completing_while_a_chunk_or_another_complete_holds_the_upload_commits_nothing() -> TestResult {
        let up = upload(10)?;
        let id = up.id;
        let mut repo = MockUploadRepository::new();
        // The one-statement lease finds the lease held; the slower path says by whom.
        repo.expect_lease_unfinished().times(1).returning(|_, _, _, _, _, _| Ok(None));
        repo.expect_find().returning(move |_| Ok(Some(up.clone())));
        repo.expect_acquire_lease().times(1).returning(|_, _, _, _, _| Ok(false));
        repo.expect_complete().never();
        // No commit: the mock store panics on any call.
        let svc = service(repo, MockBlobStore::new());
        let err = svc.complete(&writer("u-1")?, id, None).await;
        assert!(matches!(err, Err(CompleteError::Busy { offset: 10 })), "{err:?}");
        Ok(())
    }

    #[tokio::test]
    async fn a_failed_commit_releases_the_lease_and_records_no_media() -> TestResult {
        let up = upload(10)?;
        let id = up.id;
        let mut repo = MockUploadRepository::new();
        repo.expect_lease_unfinished().times(1).returning(move |_, _, _, _, _, _| Ok(Some(up.clone())));
        repo.expect_release_lease().times(1).returning(|_, _| Ok(()));
        repo.expect_complete().never();
        let mut blobs = MockBlobStore::new();
        blobs.expect_commit_staging().returning(|_, _, _, _, _| Err(StoreError::Unavailable("bucket down".into())));
        let svc = service(repo, blobs);
        let err = svc.complete(&writer("u-1")?, id, None).await;
        assert!(matches!(err, Err(CompleteError::Store(StoreError::Unavailable(_)))), "{err:?}");
        Ok(())
    }

    #[tokio::test]
    async fn staged_bytes_lost_in_a_crash_expire_the_upload_and_record_no_media() -> TestResult {
        let up = upload(10)?;
        let id = up.id;
        let mut seq = mockall::Sequence::new();
        let mut repo = MockUploadRepository::new();
        repo.expect_lease_unfinished().times(1).returning(move |_, _, _, _, _, _| Ok(Some(up.clone())));
        repo.expect_expire().withf(move |i, _| *i == id).times(1).in_sequence(&mut seq).returning(|_, _| Ok(()));
        repo.expect_release_lease().times(1).in_sequence(&mut seq).returning(|_, _| Ok(()));
        repo.expect_complete().never();
        let mut blobs = MockBlobStore::new();
        blobs.expect_commit_staging().returning(|_, _, _, _, _| Err(StoreError::Lost { have: 4, recorded: 10 }));
        let svc = service(repo, blobs);
        let err = svc.complete(&writer("u-1")?, id, None).await;
        assert!(matches!(err, Err(CompleteError::Store(StoreError::Lost { have: 4, recorded: 10 }))), "{err:?}");
        Ok(())
    }

    #[tokio::test]
    async fn a_checksum_mismatch_leaves_the_upload_resumable() -> TestResult {
        let up = upload(10)?;
        let id = up.id;
        // Leased in the reading statement: the lease goes back, nothing is committed.
        let mut repo = MockUploadRepository::new();
        let leased = up.clone();
        repo.expect_lease_unfinished().times(1).returning(move |_, _, _, _, _, _| Ok(Some(leased.clone())));
        repo.expect_release_lease().times(1).returning(|_, _| Ok(()));
        repo.expect_complete().never();
        let svc = service(repo, MockBlobStore::new());
        let err = svc.complete(&writer("u-1")?, id, Some(Checksum::Md5("00".into()))).await;
        assert!(matches!(err, Err(CompleteError::ChecksumMismatch { algorithm: "md5", offset: 10 })), "{err:?}");
        // The slower path (the lease was held when asked) checks before taking any lease.
        let mut repo = MockUploadRepository::new();
        repo.expect_lease_unfinished().times(1).returning(|_, _, _, _, _, _| Ok(None));
        repo.expect_find().returning(move |_| Ok(Some(up.clone())));
        repo.expect_acquire_lease().never();
        repo.expect_complete().never();
        let svc = service(repo, MockBlobStore::new());
        let err = svc.complete(&writer("u-1")?, id, Some(Checksum::Md5("00".into()))).await;
        assert!(matches!(err, Err(CompleteError::ChecksumMismatch { algorithm: "md5", offset: 10 })), "{err:?}");
        Ok(())
    }

    #[tokio::test]
    async fn completing_commits_the_bytes_before_recording_the_media() -> TestResult {
        let up = upload(10)?;
        let id = up.id;
        let mut seq = mockall::Sequence::new();
        let mut repo = MockUploadRepository::new();
        let mut blobs = MockBlobStore::new();
        // One statement reads the upload and takes its lease, for its owner only.
        repo.expect_lease_unfinished()
            .withf(move |i, org, user, _, _, _| *i == id && org.as_str() == "acme" && user.as_str() == "u-1")
            .times(1)
            .in_sequence(&mut seq)
            .returning(move |_, _, _, _, _, _| Ok(Some(up.clone())));
        repo.expect_find().never();
        repo.expect_acquire_lease().never();
        // The head is sniffed from the committed blob (S3 parts are not readable before),
        // which the commit answers: the blob is not opened again.
        blobs
            .expect_commit_staging()
            .withf(|_, size, _, _, head| *size == 10 && *head == 10)
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _, _, _| Ok(b"0123456789".to_vec()));
        repo.expect_complete().times(1).in_sequence(&mut seq).returning(|_, new| Ok(recorded(new)));
        let svc = service(repo, blobs);
        let sha = "84d89877f0d4041efb6bf91a16f0248f2fd573e6af05c19f96bedb9f882f7882";
        let media = svc.complete(&writer("u-1")?, id, Some(Checksum::Sha256(sha.into()))).await?;
        assert_eq!(media.sha256, sha);
        assert_eq!(media.md5, "781e5e245d69b566979b86e28d23f2c7");
        assert_eq!(media.content_type, "text/plain");
        assert_eq!(media.size, 10);
        Ok(())
    }

    /// The media a repository records for `new` (also for `open_ended`'s tests).
    pub(super) fn recorded(new: &NewMedia) -> Media {
        Media {
            id: MediaId::new(1).unwrap_or_else(|_| unreachable!()),
            uuid: new.uuid,
            org: new.org.clone(),
            uploaded_by: new.uploaded_by.clone(),
            filename: new.filename.clone(),
            content_type: new.content_type.clone(),
            size: new.size,
            sha256: new.sha256.clone(),
            md5: new.md5.clone(),
            kind: new.kind,
            width: new.width,
            height: new.height,
            duration_ms: None,
            created_at: new.created_at,
            blob_key: new.blob_key.clone(),
        }
    }

    #[tokio::test]
    async fn an_image_gets_the_size_the_processor_reads_from_its_head_and_other_files_none() -> TestResult {
        let png = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n', 0, 0, 0, 13, b'I', b'H', b'D', b'R'];
        for (head, kind, size) in [
            (png.to_vec(), MediaKind::Image, (Some(640), Some(480))),
            (b"<svg xmlns='x'/>".to_vec(), MediaKind::Image, (None, None)),
            (b"just some words".to_vec(), MediaKind::Other, (None, None)),
        ] {
            let up = upload(head.len() as u64)?;
            let id = up.id;
            let mut repo = MockUploadRepository::new();
            repo.expect_lease_unfinished().returning(move |_, _, _, _, _, _| Ok(Some(up.clone())));
            repo.expect_complete().times(1).returning(|_, new| Ok(recorded(new)));
            let mut blobs = MockBlobStore::new();
            let h = head.clone();
            blobs.expect_commit_staging().returning(move |_, _, _, _, _| Ok(h.clone()));
            let mut processor = crate::ports::MockMediaProcessor::new();
            // Asked only of raster images (an SVG's size is not in pixels), with the head.
            let expected = head.clone();
            processor
                .expect_probe()
                .withf(move |t, h| t == "image/png" && h == expected.as_slice())
                .times(usize::from(size.0.is_some()))
                .returning(|_, _| Probe { width: Some(640), height: Some(480) });
            let media = service_with(repo, blobs, processor).complete(&writer("u-1")?, id, None).await?;
            assert_eq!((media.kind, (media.width, media.height)), (kind, size), "{}", media.content_type);
        }
        Ok(())
    }
}
