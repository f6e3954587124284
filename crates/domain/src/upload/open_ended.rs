//! Writes of any length into the same upload model (the tus door, SPEC 12): a request's
//! body streams into staging in segments of at most the chunk limit, each recorded (offset,
//! digests' midstates, staging state) under one lease held for the whole request, so a
//! body cut off mid-way keeps what arrived and a racing request for the same offset is
//! refused. The last byte completes the upload in the same request. Concatenation joins
//! partial uploads' bytes into a final upload through the same segments, so the final's
//! digests are computed over the joined bytes like any other upload's.

use std::cell::RefCell;
use std::rc::Rc;

use super::{
    blob_key, completable, whole_write, Access, BodyChecksum, ChunkAdvance, ChunkError, ChunkRange, Concat, Duration,
    Hashes, IncomingBody, Media, Permission, Span, StoreError, StreamExt, Upload, UploadError, UploadId, UploadService,
    LEASE_SECS, UPLOAD_OWNER_PERMISSIONS,
};
use crate::actor::Actor;
use crate::hashing::{Checkpoint, StreamHasher};
use crate::ids::{EventId, MediaId};

/// A new upload, as a tus creation describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpload {
    pub filename: String,
    /// `None`: announced by a later request (tus creation-defer-length).
    pub length: Option<u64>,
    /// The event whose gallery the media joins on completion.
    pub event: Option<EventId>,
    /// `Partial { final_upload: None }` or `Final { parts }`; `None` for a plain upload.
    pub concat: Option<Concat>,
}

/// A request's body and what the request says of it.
pub struct Body {
    pub stream: IncomingBody,
    /// Its length, when the request tells it (`Content-Length`).
    pub len: Option<u64>,
    /// The digest the client sent for exactly these bytes: all of them are kept, or none.
    pub checksum: Option<BodyChecksum>,
}

/// Where an upload stands after a request, and the media the request completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub upload: Upload,
    pub completed: Option<Completed>,
}

/// A media made by this request: the upload's own or, when the request finished the last
/// part of a final upload, the final upload's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub media: MediaId,
    /// The event the upload asked to join (its gallery is the caller's to try).
    pub event: Option<EventId>,
}

/// A body cut into consecutive segments (see [`segment`]).
struct Feed {
    body: IncomingBody,
    /// Read past the last segment's end: the next segment's first piece.
    held: Option<bytes::Bytes>,
    ended: bool,
    /// The body broke off; kept here (rather than failing the segment) when what arrived
    /// before it is to be kept.
    broken: Option<std::io::Error>,
    keep_partial: bool,
}

type SharedFeed = Rc<RefCell<Option<Feed>>>;

/// A segment's record on its way (see [`UploadService::pour`]).
type Recording<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Hashes, ChunkError>> + 'a>>;

impl Feed {
    async fn next_upto(&mut self, left: u64) -> Option<Result<bytes::Bytes, std::io::Error>> {
        if left == 0 || self.ended || self.broken.is_some() {
            return None;
        }
        let mut piece = match self.held.take() {
            Some(p) => p,
            None => match self.body.next().await {
                None => {
                    self.ended = true;
                    return None;
                }
                Some(Err(e)) if self.keep_partial => {
                    self.broken = Some(e);
                    return None;
                }
                Some(Err(e)) => {
                    self.ended = true;
                    return Some(Err(e));
                }
                Some(Ok(p)) => p,
            },
        };
        if piece.len() as u64 > left {
            self.held = Some(piece.split_off(usize::try_from(left).unwrap_or(usize::MAX)));
        }
        Some(Ok(piece))
    }

    /// Whether bytes follow the last segment (reads ahead one piece to know).
    async fn has_more(&mut self) -> bool {
        loop {
            if self.held.as_ref().is_some_and(|p| !p.is_empty()) {
                return true;
            }
            if self.ended || self.broken.is_some() {
                return false;
            }
            match self.body.next().await {
                None => self.ended = true,
                Some(Err(e)) => self.broken = Some(e),
                Some(Ok(p)) => self.held = Some(p),
            }
        }
    }
}

/// The next at most `cap` bytes of the feed, as a body of their own.
fn segment(feed: &SharedFeed, cap: u64) -> IncomingBody {
    Box::pin(futures_util::stream::unfold((feed.clone(), cap), |(feed, left)| async move {
        // Taken out while awaited: no `RefCell` borrow lives across an await.
        let mut f = feed.borrow_mut().take()?;
        let item = f.next_upto(left).await;
        *feed.borrow_mut() = Some(f);
        let item = item?;
        let left = left - item.as_ref().map_or(0, |b| b.len() as u64);
        Some((item, (feed, left)))
    }))
}

impl UploadService {
    /// Creates an upload (tus creation), writing `body` into it when one comes along
    /// (creation-with-upload). A final upload claims its parts and completes at once
    /// when they are all complete.
    ///
    /// # Errors
    /// `Forbidden` without `media:write`; `UploadTooLarge` over the upload limit;
    /// `NotFound` for a part that is not the caller's; `BadConcat` for a part that is no
    /// partial upload or is claimed already; the errors of [`Self::append_stream`].
    pub async fn create(&self, actor: &Actor, new: NewUpload, body: Option<Body>) -> Result<Progress, ChunkError> {
        actor.require(&[Permission::MediaWrite])?;
        if new.length.is_some_and(|l| l > self.limits.max_upload_bytes) {
            return Err(ChunkError::UploadTooLarge { limit: self.limits.max_upload_bytes });
        }
        let now = self.clock.now();
        let upload = self.fresh(now, actor, &new.filename, new.length, new.event, new.concat);
        if let Some(Concat::Final { parts }) = &upload.concat {
            if body.is_some() {
                return Err(ChunkError::FinalNotWritable);
            }
            let parts = parts.clone();
            return self.create_final(actor, upload, &parts).await;
        }
        let lease = uuid::Uuid::new_v4();
        let until = now + Duration::seconds(LEASE_SECS);
        let body = match body {
            Some(b) => b,
            // An empty upload is complete as it is created.
            None if upload.total == Some(0) => empty_body(),
            None => {
                self.uploads.insert(&upload).await?;
                return Ok(Progress { upload, completed: None });
            }
        };
        if let Some(n) = body.len.filter(|n| *n <= self.limits.max_chunk_bytes) {
            if upload.total.is_some_and(|t| n > t) {
                return Err(ChunkError::BeyondLength { length: upload.total.unwrap_or_default() });
            }
            let whole = upload.whole_in(0, Some(n));
            match self.blobs.prepare_staging(upload.id, None, Some(n), whole).await? {
                None => return self.create_with_bytes(upload, lease, body).await,
                // The row records what the store opened before any byte goes into it.
                Some(opened) => {
                    let upload = Upload { staging_state: Some(opened), ..upload };
                    self.uploads.create(&upload, lease, until).await?;
                    return self.write_open_ended(upload, lease, body).await;
                }
            }
        }
        self.uploads.create(&upload, lease, until).await?;
        self.write_open_ended(upload, lease, body).await
    }

    /// A new upload whose body fits one segment and whose store needs nothing opened
    /// first (the common photo): the chunk API's first chunk (`write_first`: its bytes,
    /// then its row in one statement, holding the lease only when those bytes complete
    /// it), then the media.
    async fn create_with_bytes(&self, upload: Upload, lease: uuid::Uuid, body: Body) -> Result<Progress, ChunkError> {
        let n = body.len.unwrap_or_default();
        let completes = upload.whole_in(0, Some(n));
        // Exactly the length the request announced (the caller checked it fits the upload).
        let range = match n {
            0 => None,
            _ => Some(ChunkRange::new(0, n - 1, upload.total).map_err(ChunkError::BadRange)?),
        };
        let span = Span { limit: n, hint: Some(n), verify: body.checksum.as_ref(), announced: None };
        let upload = self.write_first(upload, range, span, body.stream, completes.then_some(lease)).await?;
        if !completes {
            return Ok(Progress { upload, completed: None });
        }
        let checked = completable(&upload, None, true);
        let media = self.commit_leased(&upload, lease, checked).await.map_err(complete_to_chunk)?;
        Ok(finished(upload, &media))
    }

    /// Appends `body` at `offset`, the upload's offset (tus PATCH), announcing the length
    /// first when `length` is given and none was; completes the upload when its last
    /// byte arrives.
    ///
    /// # Errors
    /// `Forbidden` without `media:write`; `NotFound` for an unknown upload or one that is
    /// not the caller's; `Expired`; `OffsetMismatch` when `offset` is not the upload's;
    /// `Busy` while another request writes it; `TotalMismatch`/`BadRange` for a length
    /// that contradicts the upload; `BeyondLength`, `UploadTooLarge`, `ChunkTooLarge` (a
    /// checksummed body over the chunk limit); `ChecksumMismatch` (nothing kept);
    /// `FinalNotWritable`. A body that breaks off keeps what arrived and answers
    /// `Store(Body)`.
    pub async fn append_stream(
        &self,
        actor: &Actor,
        id: UploadId,
        offset: u64,
        length: Option<u64>,
        body: Body,
    ) -> Result<Progress, ChunkError> {
        actor.require(&[Permission::MediaWrite])?;
        let upload = self.owned(actor, id).await.map_err(|e| match e {
            UploadError::Expired => ChunkError::Expired,
            UploadError::NotFound | UploadError::Forbidden(_) => ChunkError::NotFound,
            UploadError::Repository(r) => r.into(),
            UploadError::Store(s) => s.into(),
        })?;
        if matches!(upload.concat, Some(Concat::Final { .. })) {
            return Err(ChunkError::FinalNotWritable);
        }
        if offset != upload.offset {
            return Err(ChunkError::OffsetMismatch { start: offset, offset: upload.offset });
        }
        if upload.media.is_some() {
            // Complete already: nothing to add, nothing to do.
            return Ok(Progress { upload, completed: None });
        }
        let total = match (upload.total, length) {
            (Some(expected), Some(got)) if expected != got => return Err(ChunkError::TotalMismatch { expected, got }),
            (t, l) => t.or(l),
        };
        if let Some(t) = total {
            if t > self.limits.max_upload_bytes {
                return Err(ChunkError::UploadTooLarge { limit: self.limits.max_upload_bytes });
            }
            if t < offset {
                return Err(ChunkError::BadRange("the length is below the upload's offset"));
            }
            if body.len.is_some_and(|n| offset + n > t) {
                return Err(ChunkError::BeyondLength { length: t });
            }
        }
        if body.checksum.is_some() && body.len.is_some_and(|n| n > self.limits.max_chunk_bytes) {
            return Err(ChunkError::ChunkTooLarge { limit: self.limits.max_chunk_bytes });
        }
        let lease = uuid::Uuid::new_v4();
        let now = self.clock.now();
        if !self.uploads.acquire_lease(id, offset, lease, now + Duration::seconds(LEASE_SECS), now).await? {
            return match self.uploads.find(id).await? {
                None => Err(ChunkError::NotFound),
                Some(u) => Err(ChunkError::Busy { offset: u.offset }),
            };
        }
        self.write_open_ended(Upload { total, ..upload }, lease, body).await
    }

    /// The caller's upload as it stands (tus HEAD): another user's or organization's is
    /// not found.
    ///
    /// # Errors
    /// `Forbidden` with neither `media:read` nor `media:write`; `NotFound`; `Expired`.
    pub async fn owned(&self, actor: &Actor, id: UploadId) -> Result<Upload, UploadError> {
        actor.require_any(&UPLOAD_OWNER_PERMISSIONS)?;
        match self.access(actor, id).await? {
            Access::Ok(u) => Ok(*u),
            Access::NotFound | Access::Forbidden => Err(UploadError::NotFound),
            Access::Expired => Err(UploadError::Expired),
        }
    }

    /// Terminates the caller's upload (tus termination): an unfinished one loses its
    /// bytes; a completed one is forgotten, its media kept.
    ///
    /// # Errors
    /// `Forbidden` without `media:write`; `NotFound` as for [`Self::owned`] (an expired
    /// upload can be terminated).
    pub async fn terminate(&self, actor: &Actor, id: UploadId) -> Result<(), UploadError> {
        actor.require(&[Permission::MediaWrite])?;
        match self.access(actor, id).await? {
            Access::NotFound | Access::Forbidden => Err(UploadError::NotFound),
            Access::Ok(_) | Access::Expired => self.abandon(actor, id).await,
        }
    }

    /// Under `lease` (taken at the upload's offset): writes the body, then completes
    /// the upload when it is whole. Lets the lease go on every way out.
    async fn write_open_ended(&self, upload: Upload, lease: uuid::Uuid, body: Body) -> Result<Progress, ChunkError> {
        let id = upload.id;
        let upload = match self.pour(upload, lease, body).await {
            Ok(u) => u,
            Err(e) => return Err(self.let_go(id, lease, e).await),
        };
        if upload.total != Some(upload.offset) {
            self.uploads.release_lease(upload.id, lease).await?;
            return Ok(Progress { upload, completed: None });
        }
        if let Some(Concat::Partial { .. }) = upload.concat {
            self.uploads.release_lease(upload.id, lease).await?;
            // Read again: a final upload may have claimed this part meanwhile.
            let claimed = self.uploads.find(upload.id).await?;
            let completed = match claimed.and_then(|u| u.concat) {
                Some(Concat::Partial { final_upload: Some(f) }) => self.assemble(f).await?,
                _ => None,
            };
            return Ok(Progress { upload, completed });
        }
        let checked = completable(&upload, None, true);
        let media = self.commit_leased(&upload, lease, checked).await.map_err(complete_to_chunk)?;
        Ok(finished(upload, &media))
    }

    /// Writes the body in segments of at most the chunk limit, recording each under
    /// `lease` (kept). Returns the upload as recorded after the last.
    ///
    /// One digest stream spans the whole body: a segment's record (its digests' state at
    /// its end, then the statement) goes on while the next segment streams, so MD5, the
    /// slowest step, never waits at a segment's end. Records land in order: a segment's
    /// is awaited before the next one's is made.
    async fn pour(&self, mut upload: Upload, lease: uuid::Uuid, body: Body) -> Result<Upload, ChunkError> {
        let checksum = body.checksum;
        let started = upload.offset;
        let feed: SharedFeed = Rc::new(RefCell::new(Some(Feed {
            body: body.stream,
            held: None,
            ended: false,
            broken: None,
            keep_partial: checksum.is_none(),
        })));
        let first = Hashes::from_state(&upload.sha256_state, &upload.md5_state).map_err(|_| ChunkError::Corrupt)?;
        let mut hashes = StreamHasher::start(first, Some(body.len.unwrap_or(self.limits.max_chunk_bytes)));
        let mut recording: Option<Recording<'_>> = None;
        loop {
            let to_end = upload.total.map_or(u64::MAX, |t| t - upload.offset);
            let cap = self.limits.max_chunk_bytes.min(to_end);
            let told_left = body.len.map(|n| n.saturating_sub(upload.offset - started));
            let hint = told_left.map_or(cap, |n| n.min(cap));
            // What this segment brings when the body arrives whole: the rest of the file
            // in one segment (the one PATCH tus-js-client and tuspy send after creation)
            // is the whole file.
            let announced = told_left.map(|n| n.min(cap));
            let span = Span { limit: cap, hint: Some(hint), verify: checksum.as_ref(), announced };
            let before = recording.take();
            let (got, staging_state) =
                self.stream_segment(&upload, lease, &mut hashes, span, segment(&feed, cap), before).await?;
            let (more, broken) = {
                let taken = feed.borrow_mut().take();
                match taken {
                    Some(mut f) => {
                        let more = f.has_more().await;
                        let broken = f.broken.take();
                        *feed.borrow_mut() = Some(f);
                        (more, broken)
                    }
                    None => (false, None),
                }
            };
            if more && (checksum.is_some() || cap == to_end) {
                // Bytes past what this request may hold: none of this segment is kept.
                return Err(if cap == to_end {
                    ChunkError::BeyondLength { length: upload.total.unwrap_or_default() }
                } else {
                    ChunkError::ChunkTooLarge { limit: self.limits.max_chunk_bytes }
                });
            }
            if let (Some(e), Some(_)) = (&broken, &checksum) {
                return Err(ChunkError::Store(StoreError::Body(std::io::Error::other(e.to_string()))));
            }
            let at = hashes.checkpoint().await;
            upload.offset += got;
            upload.staging_state = staging_state;
            let record = self.record_segment(&upload, lease, at);
            if more {
                recording = Some(record);
                continue;
            }
            let last = record.await?;
            if let Some(e) = broken {
                return Err(ChunkError::Store(StoreError::Body(e)));
            }
            let (sha256_state, md5_state) = last.to_state();
            return Ok(Upload { sha256_state, md5_state, ..upload });
        }
    }

    /// One segment: what the store opens first (recorded after the segment before, whose
    /// record would otherwise write over it), then its bytes, while the segment before is
    /// recorded. Answers its length and the store's staging state after it.
    async fn stream_segment(
        &self,
        upload: &Upload,
        lease: uuid::Uuid,
        hashes: &mut StreamHasher,
        span: Span<'_>,
        body: IncomingBody,
        before: Option<Recording<'_>>,
    ) -> Result<(u64, Option<String>), ChunkError> {
        let mut before = before;
        let whole = whole_write(upload, upload.staging_state.as_ref(), span.announced);
        let staging =
            match self.blobs.prepare_staging(upload.id, upload.staging_state.clone(), span.hint, whole).await? {
                None => upload.staging_state.clone(),
                Some(opened) => {
                    if let Some(r) = before.take() {
                        r.await?;
                    }
                    self.record_opened(upload, lease, opened).await?
                }
            };
        let streaming = async {
            let (got, mut writer) = self.stream_with(upload, hashes, staging, None, span, body).await?;
            Ok::<_, ChunkError>((got, writer.finish().await?))
        };
        let earlier = async {
            match before {
                Some(r) => r.await.map(drop),
                None => Ok(()),
            }
        };
        let (earlier, streamed) = futures_util::future::join(earlier, streaming).await;
        let streamed = streamed?;
        earlier?;
        Ok(streamed)
    }

    /// Records the upload as it stands after a segment, once the digests reach `at`;
    /// answers their state there.
    fn record_segment<'a>(&'a self, upload: &Upload, lease: uuid::Uuid, at: Checkpoint) -> Recording<'a> {
        let (id, offset, total, staging_state) = (upload.id, upload.offset, upload.total, upload.staging_state.clone());
        Box::pin(async move {
            let hashes = at.hashes().await.map_err(|_| ChunkError::Corrupt)?;
            let (sha256_state, md5_state) = hashes.to_state();
            let advance = ChunkAdvance { offset, total, sha256_state, md5_state, staging_state };
            let until = self.clock.now() + Duration::seconds(LEASE_SECS);
            if !self.uploads.progress(id, lease, &advance, until).await? {
                return Err(ChunkError::Busy { offset });
            }
            Ok(hashes)
        })
    }

    /// After a failed write under `lease`: an upload whose bytes a crash lost is
    /// forgotten, any other lets the lease go. Answers the error.
    async fn let_go(&self, id: UploadId, lease: uuid::Uuid, e: ChunkError) -> ChunkError {
        let released = match &e {
            ChunkError::Store(StoreError::Lost { .. }) => self.forget_lost(id, lease).await,
            _ => self.uploads.release_lease(id, lease).await,
        };
        match released {
            // A failure to release leaves a lease that lapses; the write's error says more.
            Err(_) | Ok(()) => e,
        }
    }

    /// A final upload: its row and its claim on the parts in one transaction, then the
    /// joined bytes when every part is complete.
    async fn create_final(&self, actor: &Actor, upload: Upload, parts: &[UploadId]) -> Result<Progress, ChunkError> {
        if parts.is_empty() {
            return Err(ChunkError::BadConcat("a final upload names at least one partial upload".into()));
        }
        let mut total = Some(0u64);
        for (i, part) in parts.iter().enumerate() {
            if parts[..i].contains(part) {
                return Err(ChunkError::BadConcat(format!("partial upload {part} is named twice")));
            }
            let found = match self.access(actor, *part).await? {
                Access::Ok(u) => *u,
                Access::NotFound | Access::Forbidden => return Err(ChunkError::NotFound),
                Access::Expired => return Err(ChunkError::Expired),
            };
            match found.concat {
                Some(Concat::Partial { final_upload: None }) => {}
                Some(Concat::Partial { final_upload: Some(_) }) => {
                    return Err(ChunkError::BadConcat(format!("partial upload {part} belongs to another final upload")))
                }
                _ => return Err(ChunkError::BadConcat(format!("upload {part} is not a partial upload"))),
            }
            total = total.zip(found.total).map(|(a, b)| a + b);
        }
        if total.is_some_and(|t| t > self.limits.max_upload_bytes) {
            return Err(ChunkError::UploadTooLarge { limit: self.limits.max_upload_bytes });
        }
        let upload = Upload { total, ..upload };
        if !self.uploads.insert_final(&upload, self.clock.now()).await? {
            return Err(ChunkError::BadConcat("a partial upload was claimed, removed or expired meanwhile".into()));
        }
        let completed = self.assemble(upload.id).await?;
        let upload = match completed {
            Some(_) => self.uploads.find(upload.id).await?.unwrap_or(upload),
            None => upload,
        };
        Ok(Progress { upload, completed })
    }

    /// Joins a final upload's parts once every one is complete, and makes its media.
    /// `None` while a part is unfinished, when another request is joining them, or when
    /// the final upload is gone or complete already.
    async fn assemble(&self, final_id: UploadId) -> Result<Option<Completed>, ChunkError> {
        let Some(fin) = self.uploads.find(final_id).await? else { return Ok(None) };
        let Some(Concat::Final { parts: ids }) = fin.concat.clone() else { return Ok(None) };
        if fin.media.is_some() || fin.offset != 0 && fin.total != Some(fin.offset) {
            return Ok(None);
        }
        let mut parts = Vec::with_capacity(ids.len());
        for id in &ids {
            match self.uploads.find(*id).await? {
                Some(p) if p.total == Some(p.offset) => parts.push(p),
                _ => return Ok(None),
            }
        }
        let lease = uuid::Uuid::new_v4();
        let now = self.clock.now();
        if !self.uploads.acquire_lease(fin.id, 0, lease, now + Duration::seconds(LEASE_SECS), now).await? {
            return Ok(None);
        }
        let total = parts.iter().map(|p| p.offset).sum();
        let fin_id = fin.id;
        let mut upload = Upload { total: Some(total), ..fin };
        let mut keys = Vec::with_capacity(parts.len());
        for part in parts.iter().filter(|p| p.offset > 0) {
            let key = blob_key(part.id);
            // Idempotent: a join that crashed after this step finds the blob made.
            let joined = async {
                self.blobs.commit_staging(part.id, part.offset, &key, part.staging_state.clone(), 0).await?;
                let stream = self.blobs.read(&key, None).await?;
                Ok::<_, ChunkError>(Body { stream, len: Some(part.offset), checksum: None })
            }
            .await;
            let body = match joined {
                Ok(b) => b,
                Err(e) => return Err(self.let_go(upload.id, lease, e).await),
            };
            upload = match self.pour(upload, lease, body).await {
                Ok(u) => u,
                Err(e) => return Err(self.let_go(fin_id, lease, e).await),
            };
            keys.push(key);
        }
        if upload.offset == 0 {
            // Only empty parts: record the length the final upload now has.
            let (sha256_state, md5_state) = (upload.sha256_state.clone(), upload.md5_state.clone());
            let advance = ChunkAdvance {
                offset: 0,
                total: Some(0),
                sha256_state,
                md5_state,
                staging_state: upload.staging_state.clone(),
            };
            let until = self.clock.now() + Duration::seconds(LEASE_SECS);
            self.uploads.progress(upload.id, lease, &advance, until).await?;
        }
        let checked = completable(&upload, None, true);
        let media = self.commit_leased(&upload, lease, checked).await.map_err(complete_to_chunk)?;
        // The parts are spent: their rows go, then their bytes (gc collects what a failure
        // here leaves: blobs that no row names).
        if self.uploads.delete(&ids).await.is_ok() {
            let _ = self.blobs.delete_blobs(&keys).await;
        }
        Ok(finished(upload, &media).completed)
    }
}

/// A body of no bytes.
fn empty_body() -> Body {
    Body { stream: Box::pin(futures_util::stream::empty()), len: Some(0), checksum: None }
}

fn finished(upload: Upload, media: &Media) -> Progress {
    let completed = Completed { media: media.id, event: upload.event };
    Progress { upload: Upload { media: Some(media.id), ..upload }, completed: Some(completed) }
}

/// A complete's errors as a write's: the request that completes is a write.
fn complete_to_chunk(e: super::CompleteError) -> ChunkError {
    use super::CompleteError as C;
    match e {
        C::Forbidden(f) => ChunkError::Forbidden(f),
        C::NotFound => ChunkError::NotFound,
        C::Expired => ChunkError::Expired,
        C::Busy { offset } => ChunkError::Busy { offset },
        C::Repository(r) => ChunkError::Repository(r),
        C::Store(s) => ChunkError::Store(s),
        C::Empty | C::Incomplete { .. } | C::ChecksumMismatch { .. } | C::Corrupt => ChunkError::Corrupt,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use sha2::Digest;

    use super::*;
    use crate::hashing::DigestAlgorithm;
    use crate::ids::{OrgId, UserId};
    use crate::ports::{MockBlobStore, MockChunkWriter, MockMediaRepository, MockUploadRepository, WriteSize};
    use crate::upload::tests::recorded;
    use crate::upload::UploadLimits;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    use crate::upload::tests::{clock, now, writer as writer_actor};

    /// A repository holding `up`, whose lease the request takes once.
    fn leasing_repo(up: &Upload) -> MockUploadRepository {
        let found = up.clone();
        let mut repo = MockUploadRepository::new();
        repo.expect_find().returning(move |_| Ok(Some(found.clone())));
        repo.expect_acquire_lease().times(1).returning(|_, _, _, _, _| Ok(true));
        repo
    }

    /// Records the offset of every `progress` the repository is asked for.
    fn recording_progress(repo: &mut MockUploadRepository) -> Arc<Mutex<Vec<u64>>> {
        let offsets = Arc::new(Mutex::new(Vec::new()));
        let seen = offsets.clone();
        repo.expect_progress().returning(move |_, _, a, _| {
            seen.lock().map(|mut s| s.push(a.offset)).map_err(|_| crate::RepoError::Other("poisoned".into()))?;
            Ok(true)
        });
        offsets
    }

    fn upload(total: Option<u64>) -> Result<Upload, crate::ids::InvalidId> {
        let (sha256_state, md5_state) = Hashes::default().to_state();
        Ok(Upload {
            id: UploadId::random(),
            org: OrgId::new("acme")?,
            user: UserId::new("u-1")?,
            filename: "a.bin".into(),
            offset: 0,
            total,
            sha256_state,
            md5_state,
            created_at: now(),
            expires_at: now() + Duration::hours(1),
            media: None,
            staging_state: None,
            event: None,
            concat: None,
        })
    }

    /// A body of these pieces, then, when `broken`, a connection reset.
    fn body(pieces: &[&'static [u8]], broken: bool) -> Body {
        let mut items: Vec<Result<Bytes, std::io::Error>> = pieces.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        if broken {
            items.push(Err(std::io::Error::other("connection reset")));
        }
        Body { stream: Box::pin(futures_util::stream::iter(items)), len: None, checksum: None }
    }

    /// A store whose staging writers append what they get to `written`.
    fn recording_store(written: &Arc<Mutex<Vec<u8>>>) -> MockBlobStore {
        let mut blobs = MockBlobStore::new();
        blobs.expect_prepare_staging().returning(|_, _, _, _| Ok(None));
        let sink = written.clone();
        blobs.expect_staging_writer().returning(move |_, _, _, _| {
            let mut w = MockChunkWriter::new();
            let sink = sink.clone();
            w.expect_write().returning(move |b| {
                sink.lock().map_err(|_| StoreError::Other("poisoned".into()))?.extend_from_slice(&b);
                Ok(())
            });
            w.expect_finish().returning(|| Ok(None));
            w.expect_abandon().returning(|| ());
            Ok(Box::new(w))
        });
        blobs
    }

    fn service(repo: MockUploadRepository, blobs: MockBlobStore, media: MockMediaRepository) -> UploadService {
        UploadService::new(
            Arc::new(repo),
            Arc::new(media),
            Arc::new(blobs),
            Arc::new(crate::ports::MockMediaProcessor::new()),
            clock(),
            UploadLimits { max_chunk_bytes: 4, max_upload_bytes: 100, ..UploadLimits::default() },
        )
    }

    #[tokio::test]
    async fn a_long_body_is_recorded_every_chunk_limit_under_one_lease_and_its_last_byte_completes() -> TestResult {
        let up = upload(Some(10))?;
        let mut repo = leasing_repo(&up);
        let offsets = recording_progress(&mut repo);
        repo.expect_advance().never();
        repo.expect_release_lease().never();
        let whole = b"0123456789";
        let sha = hex::encode(sha2::Sha256::digest(whole));
        repo.expect_complete()
            .withf(move |_, m| m.size == 10 && m.sha256 == sha)
            .times(1)
            .returning(|_, m| Ok(recorded(m)));
        let written = Arc::new(Mutex::new(Vec::new()));
        let mut blobs = recording_store(&written);
        blobs.expect_commit_staging().times(1).returning(|_, _, _, _, _| Ok(b"0123".to_vec()));
        let svc = service(repo, blobs, MockMediaRepository::new());
        // Pieces that straddle the 4-byte segments.
        let got =
            svc.append_stream(&writer_actor("u-1")?, up.id, 0, None, body(&[b"012345", b"6", b"789"], false)).await?;
        assert_eq!(*offsets.lock().map_err(|_| "poisoned")?, vec![4, 8, 10]);
        assert_eq!(written.lock().map_err(|_| "poisoned")?.as_slice(), whole);
        assert_eq!(got.completed.map(|c| c.media.get()), Some(1));
        assert_eq!(got.upload.offset, 10);
        Ok(())
    }

    /// The one PATCH most tus clients send after creation carries the whole file: the store
    /// is told so (S3 then puts it in one request). A PATCH of part of the file, of a body
    /// of unknown length, or of a file longer than a segment is not.
    #[tokio::test]
    async fn a_patch_that_carries_the_whole_file_is_written_whole() -> TestResult {
        /// The upload's total, the body, its announced length, what the store is told
        /// (of the first segment: the limit is 4 bytes).
        type Case = (Option<u64>, &'static [u8], Option<u64>, WriteSize);
        let cases: [Case; 4] = [
            (Some(3), b"abc", Some(3), WriteSize { len: Some(3), whole: true }),
            (Some(4), b"abc", Some(3), WriteSize { len: Some(3), whole: false }),
            (Some(3), b"abc", None, WriteSize { len: None, whole: false }),
            (Some(10), b"0123456789", Some(10), WriteSize { len: Some(4), whole: false }),
        ];
        for (total, bytes, len, whole) in cases {
            let up = upload(total)?;
            let mut repo = leasing_repo(&up);
            recording_progress(&mut repo);
            repo.expect_release_lease().returning(|_, _| Ok(()));
            repo.expect_complete().returning(|_, m| Ok(recorded(m)));
            let mut blobs = MockBlobStore::new();
            blobs.expect_prepare_staging().withf(move |_, _, _, w| *w == whole.whole).returning(|_, _, _, _| Ok(None));
            let told = Arc::new(Mutex::new(Vec::new()));
            let t = told.clone();
            blobs.expect_staging_writer().times(1..).returning(move |_, _, _, w| {
                t.lock().map_err(|_| StoreError::Other("poisoned".into()))?.push(w);
                let mut writer = MockChunkWriter::new();
                writer.expect_write().returning(|_| Ok(()));
                writer.expect_finish().returning(|| Ok(None));
                writer.expect_abandon().returning(|| ());
                Ok(Box::new(writer))
            });
            blobs.expect_commit_staging().returning(|_, _, _, _, _| Ok(b"abc".to_vec()));
            let svc = service(repo, blobs, MockMediaRepository::new());
            let body = Body { len, ..body(&[bytes], false) };
            svc.append_stream(&writer_actor("u-1")?, up.id, 0, None, body).await?;
            assert_eq!(told.lock().map_err(|_| "poisoned")?.first(), Some(&whole), "{total:?} {len:?}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_small_file_created_with_its_bytes_is_staged_then_recorded_in_one_statement_and_completed() -> TestResult
    {
        let mut seq = mockall::Sequence::new();
        let written = Arc::new(Mutex::new(Vec::new()));
        let mut blobs = recording_store(&written);
        let mut repo = MockUploadRepository::new();
        // The row is made once, after the bytes, already at its end and holding the lease.
        repo.expect_create()
            .withf(|u, _, _| u.offset == 3 && u.total == Some(3))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _| Ok(()));
        repo.expect_complete().times(1).in_sequence(&mut seq).returning(|_, m| Ok(recorded(m)));
        repo.expect_insert().never();
        repo.expect_acquire_lease().never();
        repo.expect_progress().never();
        blobs.expect_commit_staging().times(1).returning(|_, _, _, _, _| Ok(b"abc".to_vec()));
        let svc = service(repo, blobs, MockMediaRepository::new());
        let mut b = body(&[b"ab", b"c"], false);
        b.len = Some(3);
        let new = NewUpload { filename: "a.txt".into(), length: Some(3), event: None, concat: None };
        let got = svc.create(&writer_actor("u-1")?, new, Some(b)).await?;
        assert_eq!(got.completed.map(|c| c.media.get()), Some(1));
        assert_eq!(written.lock().map_err(|_| "poisoned")?.as_slice(), b"abc");
        Ok(())
    }

    #[tokio::test]
    async fn a_body_that_breaks_off_keeps_what_arrived_and_lets_the_lease_go() -> TestResult {
        let up = upload(Some(10))?;
        let mut repo = leasing_repo(&up);
        let offsets = recording_progress(&mut repo);
        repo.expect_release_lease().times(1).returning(|_, _| Ok(()));
        repo.expect_complete().never();
        let written = Arc::new(Mutex::new(Vec::new()));
        let svc = service(repo, recording_store(&written), MockMediaRepository::new());
        let err = svc.append_stream(&writer_actor("u-1")?, up.id, 0, None, body(&[b"01234", b"56"], true)).await;
        assert!(matches!(err, Err(ChunkError::Store(StoreError::Body(_)))), "{err:?}");
        // Every byte that arrived is recorded, the last 3 in a short segment of their own.
        assert_eq!(*offsets.lock().map_err(|_| "poisoned")?, vec![4, 7]);
        Ok(())
    }

    #[tokio::test]
    async fn a_checksum_mismatch_records_nothing_and_lets_the_lease_go() -> TestResult {
        let up = upload(Some(10))?;
        let mut repo = leasing_repo(&up);
        repo.expect_progress().never();
        repo.expect_release_lease().times(1).returning(|_, _| Ok(()));
        let written = Arc::new(Mutex::new(Vec::new()));
        let svc = service(repo, recording_store(&written), MockMediaRepository::new());
        let mut b = body(&[b"012"], false);
        b.checksum = Some(BodyChecksum { algorithm: DigestAlgorithm::Sha1, digest: vec![0; 20] });
        let err = svc.append_stream(&writer_actor("u-1")?, up.id, 0, None, b).await;
        assert!(matches!(err, Err(ChunkError::ChecksumMismatch { algorithm: "sha1", offset: 0 })), "{err:?}");
        Ok(())
    }

    #[tokio::test]
    async fn another_users_upload_is_not_found_and_a_wrong_offset_takes_no_lease() -> TestResult {
        let up = upload(Some(10))?;
        let found = up.clone();
        let mut repo = MockUploadRepository::new();
        repo.expect_find().returning(move |_| Ok(Some(found.clone())));
        repo.expect_acquire_lease().never();
        let svc = service(repo, MockBlobStore::new(), MockMediaRepository::new());
        let err = svc.append_stream(&writer_actor("u-2")?, up.id, 0, None, body(&[b"0"], false)).await;
        assert!(matches!(err, Err(ChunkError::NotFound)), "{err:?}");
        let err = svc.append_stream(&writer_actor("u-1")?, up.id, 3, None, body(&[b"0"], false)).await;
        assert!(matches!(err, Err(ChunkError::OffsetMismatch { start: 3, offset: 0 })), "{err:?}");
        let mut b = body(&[b"0"], false);
        b.len = Some(11);
        let err = svc.append_stream(&writer_actor("u-1")?, up.id, 0, None, b).await;
        assert!(matches!(err, Err(ChunkError::BeyondLength { length: 10 })), "{err:?}");
        Ok(())
    }

    #[tokio::test]
    async fn a_final_upload_joins_its_complete_parts_and_its_digests_are_the_joined_bytes() -> TestResult {
        let mut a = upload(Some(3))?;
        let mut b = upload(Some(4))?;
        for (p, bytes) in [(&mut a, &b"abc"[..]), (&mut b, &b"defg"[..])] {
            p.offset = p.total.unwrap_or_default();
            p.concat = Some(Concat::Partial { final_upload: None });
            let mut h = Hashes::default();
            h.update(bytes);
            (p.sha256_state, p.md5_state) = h.to_state();
        }
        let parts = [a.clone(), b.clone()];
        let (a_id, b_id) = (a.id, b.id);
        let mut repo = MockUploadRepository::new();
        let stored: Arc<Mutex<Option<Upload>>> = Arc::new(Mutex::new(None));
        let keep = stored.clone();
        repo.expect_insert_final().times(1).returning(move |u, _| {
            *keep.lock().map_err(|_| crate::RepoError::Other("poisoned".into()))? = Some(u.clone());
            Ok(true)
        });
        let read = stored.clone();
        repo.expect_find().returning(move |id| {
            Ok(match parts.iter().find(|p| p.id == id) {
                Some(p) => Some(p.clone()),
                None => read.lock().ok().and_then(|s| s.clone()),
            })
        });
        repo.expect_acquire_lease().times(1).returning(|_, _, _, _, _| Ok(true));
        repo.expect_progress().returning(|_, _, _, _| Ok(true));
        let joined = b"abcdefg";
        let sha = hex::encode(sha2::Sha256::digest(joined));
        repo.expect_complete()
            .withf(move |_, m| m.size == 7 && m.sha256 == sha)
            .times(1)
            .returning(|_, m| Ok(recorded(m)));
        repo.expect_delete().withf(move |ids| ids == [a_id, b_id]).times(1).returning(|_| Ok(()));
        let written = Arc::new(Mutex::new(Vec::new()));
        let mut blobs = recording_store(&written);
        blobs.expect_commit_staging().returning(|_, _, _, _, _| Ok(Vec::new()));
        blobs.expect_read().returning(move |key, _| {
            let bytes: &'static [u8] = if *key == blob_key(a_id) { b"abc" } else { b"defg" };
            Ok(Box::pin(futures_util::stream::iter([Ok(Bytes::from_static(bytes))])))
        });
        blobs.expect_delete_blobs().times(1).returning(|_| Ok(()));
        let svc = service(repo, blobs, MockMediaRepository::new());
        let new = NewUpload {
            filename: "joined.bin".into(),
            length: None,
            event: None,
            concat: Some(Concat::Final { parts: vec![a_id, b_id] }),
        };
        let got = svc.create(&writer_actor("u-1")?, new, None).await?;
        assert_eq!(got.completed.map(|c| c.media.get()), Some(1));
        assert_eq!(written.lock().map_err(|_| "poisoned")?.as_slice(), joined);
        Ok(())
    }
}
