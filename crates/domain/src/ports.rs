//! Ports: one trait per outside concern. Adapters implement them; tests mock them
//! (feature `mocks`). Every method documents what it must return when.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_core::Stream;

use crate::catalog::{CatalogItem, ItemDeleted, ItemKind, ItemWrite, WriteRejected};
use crate::error::{RepoError, StoreError};
use crate::event::{Event, EventPatch, NewEvent, RemoveManagerOutcome};
use crate::ids::{EventId, MediaId, OrgId, UploadId, UserId};
use crate::media::{DeleteOutcome, Deleter, Media, NewMedia};
use crate::page::{Page, PageRequest};
use crate::render::{Poster, RenderError, Rendered, VideoFacts};
use crate::rendition::{RenditionRecord, Variant};
use crate::upload::{ChunkAdvance, Upload};

/// A stream of bytes going out of the store.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// A request body coming in. Not `Send`: web frameworks hand bodies to one worker thread,
/// and the chunk is written from there without another copy.
pub type IncomingBody = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>>>>;

/// The time now. A port so that expiry is testable.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Stored media.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait MediaRepository: Send + Sync {
    /// # Errors
    /// `Ok(None)` when no media `id` exists in `org` (also when it exists in another one).
    async fn find(&self, org: &OrgId, id: MediaId) -> Result<Option<Media>, RepoError>;

    /// # Errors
    /// `Ok(None)` when no media with this uuid exists in `org`.
    async fn find_by_uuid(&self, org: &OrgId, uuid: uuid::Uuid) -> Result<Option<Media>, RepoError>;

    /// The ids of those of `uuids` that exist in `org`, as `(uuid, id)` pairs.
    /// # Errors
    /// `RepoError` when the database fails.
    async fn resolve(&self, org: &OrgId, uuids: &[uuid::Uuid]) -> Result<Vec<(uuid::Uuid, MediaId)>, RepoError>;

    /// Deletes those of `uuids` (distinct) in the deleter's organization that the deleter
    /// may delete and nothing references, in one transaction with a bounded number of
    /// statements: the media rows, their gallery entries (keeping gallery counts right)
    /// and the blob rows no media uses any more. Concurrent adds to galleries, catalog
    /// updates and other deletes never leave a reference to a deleted media or a blob
    /// row without its last media.
    /// # Errors
    /// `RepoError` when the database fails (then nothing is deleted).
    async fn delete(&self, deleter: &Deleter, uuids: &[uuid::Uuid]) -> Result<DeleteOutcome, RepoError>;

    /// What is recorded of rendition `variant` of blob `blob_key`.
    /// # Errors
    /// `RepoError` when the database fails.
    async fn find_rendition(&self, blob_key: &str, variant: Variant) -> Result<Option<RenditionRecord>, RepoError>;

    /// Records a rendition of blob `blob_key` (owned by the blob's row: deleting it
    /// deletes the record). When one is recorded already (another instance made it
    /// too), keeps that one.
    /// # Errors
    /// `Ok(false)` when the blob's row is gone (its last media was deleted): nothing is
    /// recorded. `RepoError` when the database fails.
    async fn save_rendition(
        &self,
        blob_key: &str,
        variant: Variant,
        record: &RenditionRecord,
        now: DateTime<Utc>,
    ) -> Result<bool, RepoError>;

    /// Records what making a poster found out of the video in blob `blob_key` (its
    /// displayed size and duration) on every media of that blob.
    /// # Errors
    /// `RepoError` when the database fails.
    async fn save_video_facts(&self, blob_key: &str, facts: &VideoFacts) -> Result<(), RepoError>;

    /// Those of `keys` that no blob row names, nor any upload still in progress: blobs
    /// in the store that nothing will ever read. A rendition's key
    /// ([`crate::rendition::rendition_key`]) counts as named when its original's is.
    /// # Errors
    /// `RepoError` when the database fails.
    async fn unreferenced_blob_keys(&self, keys: &[String]) -> Result<Vec<String>, RepoError>;
}

/// Chunked uploads in progress.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UploadRepository: Send + Sync {
    /// Stores a new upload (offset 0) already holding `lease` until `until`: its first
    /// chunk needs no second statement to take it.
    /// # Errors
    /// `RepoError` when it cannot be written.
    async fn create(&self, upload: &Upload, lease: uuid::Uuid, until: DateTime<Utc>) -> Result<(), RepoError>;

    /// Stores an upload whose first chunk is already staged (its offset, hash states and
    /// staging state as given), holding no lease: one statement for a whole small file's
    /// first request.
    /// # Errors
    /// `RepoError` when it cannot be written.
    async fn insert(&self, upload: &Upload) -> Result<(), RepoError>;

    /// # Errors
    /// `Ok(None)` when no upload has this id.
    async fn find(&self, id: UploadId) -> Result<Option<Upload>, RepoError>;

    /// Takes the write lease of an unexpired upload of `org` started by `user` that no
    /// media was made of and no request holds the lease of, at whatever offset it stands,
    /// and answers it as it stands: what `find` then `acquire_lease` do, in one statement
    /// (a complete's first step).
    /// # Errors
    /// `Ok(None)` when any of that does not hold; the caller then asks `find` why.
    async fn lease_unfinished(
        &self,
        id: UploadId,
        org: &OrgId,
        user: &UserId,
        lease: uuid::Uuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Upload>, RepoError>;

    /// Takes the upload's write lease if its offset is still `offset`, no media was made of
    /// it and no unexpired lease is held. This is what keeps two chunks racing for one
    /// offset from both being written.
    /// # Errors
    /// `Ok(false)` when the offset moved, the upload is complete or gone, or another
    /// request holds the lease.
    async fn acquire_lease(
        &self,
        id: UploadId,
        offset: u64,
        lease: uuid::Uuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, RepoError>;

    /// Records a written chunk (new offset, total, hash midstates) and releases the lease.
    /// # Errors
    /// `Ok(false)` when `lease` is no longer held (it expired and another took it).
    async fn advance(&self, id: UploadId, lease: uuid::Uuid, advance: &ChunkAdvance) -> Result<bool, RepoError>;

    /// Records the progress of a long write (new offset, total, hash midstates, staging)
    /// and keeps holding the lease, now until `until`: the write goes on.
    /// # Errors
    /// `Ok(false)` when `lease` is no longer held (it expired and another took it).
    async fn progress(
        &self,
        id: UploadId,
        lease: uuid::Uuid,
        advance: &ChunkAdvance,
        until: DateTime<Utc>,
    ) -> Result<bool, RepoError>;

    /// Stores a final upload (no bytes, no lease) and claims its parts for it, in one
    /// transaction: every part must be an unexpired partial upload of the same
    /// organization and user that no final upload claimed yet.
    /// # Errors
    /// `Ok(false)` when a part cannot be claimed: nothing is written.
    async fn insert_final(&self, upload: &Upload, now: DateTime<Utc>) -> Result<bool, RepoError>;

    /// Records the staging state a chunk's store opened (S3: a multipart upload), before
    /// any byte is written into it, if `lease` is still held and the upload has not
    /// expired (an abandon expires it first).
    /// # Errors
    /// `Ok(false)` when the lease is gone or the upload expired or is gone.
    async fn record_staging(
        &self,
        id: UploadId,
        lease: uuid::Uuid,
        staging: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, RepoError>;

    /// Makes an upload expire at once (abandoning it): from then on no lease can be taken
    /// nor staging recorded, and gc collects it if the abandon does not finish.
    /// # Errors
    /// `RepoError` when the database fails.
    async fn expire(&self, id: UploadId, now: DateTime<Utc>) -> Result<(), RepoError>;

    /// Releases the lease without moving the offset (a chunk that failed).
    /// # Errors
    /// `RepoError` when the database fails.
    async fn release_lease(&self, id: UploadId, lease: uuid::Uuid) -> Result<(), RepoError>;

    /// Creates the media of a finished upload and links it, in one transaction. When the
    /// upload already has a media (a concurrent or repeated complete), stores nothing and
    /// returns that media.
    /// # Errors
    /// `RepoError` when the database fails.
    async fn complete(&self, id: UploadId, media: &NewMedia) -> Result<Media, RepoError>;

    /// Deletes these uploads' rows in one statement. Missing ones are not an error.
    /// # Errors
    /// `RepoError` when the database fails.
    async fn delete(&self, ids: &[UploadId]) -> Result<(), RepoError>;

    /// Those of `ids` whose row is there and not completed: the uploads that may still
    /// own staging bytes.
    /// # Errors
    /// `RepoError` when the database fails.
    async fn unfinished(&self, ids: &[UploadId]) -> Result<Vec<UploadId>, RepoError>;

    /// Uploads that expired before `now` (or at it) and hold no unexpired lease, at most
    /// `limit`, oldest first, with their staging state.
    /// # Errors
    /// `RepoError` when the database fails.
    async fn expired(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<(UploadId, Option<String>)>, RepoError>;
}

/// Events, their managers and their galleries.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait EventRepository: Send + Sync {
    /// Creates an event with `manager` as its only manager.
    /// # Errors
    /// `RepoError` when the database fails.
    async fn create(&self, event: &NewEvent, manager: &UserId) -> Result<Event, RepoError>;
    /// # Errors
    /// `Ok(None)` when no event `id` exists in `org`.
    async fn find(&self, org: &OrgId, id: EventId) -> Result<Option<Event>, RepoError>;
    /// The organization's events in id order.
    /// # Errors
    /// `RepoError` when the database fails.
    async fn list(&self, org: &OrgId, page: PageRequest) -> Result<Page<Event>, RepoError>;
    /// # Errors
    /// `Ok(None)` when no event `id` exists in `org`.
    async fn update(&self, org: &OrgId, id: EventId, patch: &EventPatch) -> Result<Option<Event>, RepoError>;
    /// Deletes the event, its managers and its gallery entries (never the media).
    /// # Errors
    /// `Ok(false)` when no event `id` exists in `org`.
    async fn delete(&self, org: &OrgId, id: EventId) -> Result<bool, RepoError>;
    /// Adds a manager; adding one already there changes nothing.
    /// # Errors
    /// `RepoError` when the database fails.
    async fn add_manager(&self, id: EventId, user: &UserId) -> Result<(), RepoError>;
    /// Removes a manager unless it is the last one, checked in the same transaction.
    /// # Errors
    /// `RepoError` when the database fails.
    async fn remove_manager(&self, id: EventId, user: &UserId) -> Result<RemoveManagerOutcome, RepoError>;
    /// Appends a media to the gallery; a media already there stays where it is.
    /// # Errors
    /// `Ok(false)` when the media was deleted before the entry could be written (nothing
    /// is written); `RepoError` when the database fails.
    async fn add_to_gallery(&self, id: EventId, media: MediaId) -> Result<bool, RepoError>;
    /// Removes these media from the gallery in one transaction; ids not in it are ignored.
    /// # Errors
    /// `RepoError` when the database fails (then nothing is removed).
    async fn remove_from_gallery(&self, id: EventId, media: &[MediaId]) -> Result<(), RepoError>;
    /// A page of the gallery, in the order added.
    /// # Errors
    /// `RepoError` when the database fails.
    async fn gallery(&self, id: EventId, page: PageRequest) -> Result<Page<Media>, RepoError>;
}

/// Products and variants.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait CatalogRepository: Send + Sync {
    /// Creates an item with the media of `write` in order.
    /// # Errors
    /// `Ok(Err(..))` when a media or the product was deleted before the write landed.
    async fn create(
        &self,
        kind: ItemKind,
        org: &OrgId,
        write: &ItemWrite,
        now: DateTime<Utc>,
    ) -> Result<Result<CatalogItem, WriteRejected>, RepoError>;
    /// Changes the fields `write` sets (its `medias` replace the list).
    /// # Errors
    /// `Ok(Ok(None))` when no such item exists in `org`; `Ok(Err(..))` as for create.
    async fn update(
        &self,
        kind: ItemKind,
        org: &OrgId,
        id: i64,
        write: &ItemWrite,
        now: DateTime<Utc>,
    ) -> Result<Result<Option<CatalogItem>, WriteRejected>, RepoError>;
    /// # Errors
    /// `Ok(None)` when no such item exists in `org`.
    async fn find(&self, kind: ItemKind, org: &OrgId, id: i64) -> Result<Option<CatalogItem>, RepoError>;
    /// A page (from 1) in id order, and the total.
    /// # Errors
    /// `RepoError` when the database fails.
    async fn list(
        &self,
        kind: ItemKind,
        org: &OrgId,
        page: u32,
        per_page: u32,
    ) -> Result<(Vec<CatalogItem>, u64), RepoError>;
    /// Deletes an item unless variants name it.
    /// # Errors
    /// `RepoError` when the database fails.
    async fn delete(&self, kind: ItemKind, org: &OrgId, id: i64) -> Result<ItemDeleted, RepoError>;
}

/// Writes one chunk's bytes into an upload's staging object.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ChunkWriter: Send {
    /// Takes the next piece (shared, not copied: a store may hold it until written).
    /// # Errors
    /// `StoreError` when the bytes cannot be written.
    async fn write(&mut self, bytes: Bytes) -> Result<(), StoreError>;
    /// Makes the written bytes durable and returns the staging state to record with the
    /// new offset (`None` for stores that keep none).
    /// # Errors
    /// `StoreError` when they cannot be flushed.
    async fn finish(&mut self) -> Result<Option<String>, StoreError>;
    /// The chunk failed: waits until no write of it is still on its way, so that a retry
    /// of the chunk can never be overwritten by this one's late bytes.
    async fn abandon(&mut self);
}

/// One blob as the store lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub key: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
}

/// What the domain knows of a write into staging before its bytes arrive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteSize {
    /// How many bytes the writer gets when the request arrives whole (a chunk's range, a
    /// request's announced length, at most a segment); `None` when unknown. More is never
    /// written; fewer only when a tus body breaks off, and then `finish` keeps what came
    /// (or fails, when `whole`).
    pub len: Option<u64>,
    /// Those `len` bytes are all of the file (from offset 0, the upload's total, checked
    /// before `finish`): a store may write them where the upload's blob goes, in one
    /// request (S3), and `commit_staging` then has nothing to move. Such a store keeps
    /// nothing of a writer that got fewer: its `finish` fails.
    pub whole: bool,
}

/// Where bytes live: per-upload staging (the bytes of chunks received so far) and blobs,
/// named by keys the domain makes ([`crate::media::blob_key`]).
///
/// A store may keep state about an upload's staging between chunks (S3: a multipart
/// upload's id and parts); the domain keeps it in the upload's row, opaque, and hands it
/// back on the next call. Every adapter passes the same contract tests
/// (`mediabox-storage`'s `contract` module).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Opens what the upload's next chunk, of `len` bytes (`None`: unknown), needs
    /// before bytes flow. Returns a new staging state when it opened something the database must know
    /// of before any byte goes into it (S3: a multipart upload); `None` when nothing
    /// changed. `whole`: the chunk is all of the file (see [`Self::staging_writer`]); a
    /// store that will write it in one request opens nothing for it.
    /// # Errors
    /// `StoreError` when the store cannot be reached.
    async fn prepare_staging(
        &self,
        upload: UploadId,
        staging: Option<String>,
        len: Option<u64>,
        whole: bool,
    ) -> Result<Option<String>, StoreError>;
    /// A writer placing bytes into the upload's staging from `offset` on. Bytes past
    /// `offset` left by a chunk that failed are overwritten; nothing the recorded state
    /// refers to is changed until the new state is recorded. `size`: what the domain knows
    /// of the bytes to come (see [`WriteSize`]); a store may stream them on as they arrive
    /// (S3: into parts, or one PUT for a whole file) instead of gathering them first.
    /// # Errors
    /// `StoreError` when the staging cannot be opened.
    async fn staging_writer(
        &self,
        upload: UploadId,
        offset: u64,
        staging: Option<String>,
        size: WriteSize,
    ) -> Result<Box<dyn ChunkWriter>, StoreError>;
    /// Turns the first `size` bytes of the upload's staging into blob `key`, removes the
    /// staging, and answers up to `head` leading bytes of the blob (what the upload is
    /// sniffed by: a store that has the file open anyway reads them in the same step).
    /// Idempotent: when blob `key` already exists the staging is dropped and it succeeds.
    /// # Errors
    /// `NotFound` when neither exists.
    async fn commit_staging(
        &self,
        upload: UploadId,
        size: u64,
        key: &str,
        staging: Option<String>,
        head: usize,
    ) -> Result<Vec<u8>, StoreError>;
    /// Removes an upload's staging (what `staging` names, and whatever the store finds
    /// of that upload without it); a missing one is not an error. Returns the bytes it
    /// freed, as far as the store can tell (for gc's report).
    /// # Errors
    /// `StoreError` when it cannot be removed.
    async fn delete_staging(&self, upload: UploadId, staging: Option<String>) -> Result<u64, StoreError>;
    /// Streams blob `key`, whole or `(start, length)`.
    /// # Errors
    /// `NotFound` when the blob does not exist.
    async fn read(&self, key: &str, range: Option<(u64, u64)>) -> Result<ByteStream, StoreError>;
    /// A file holding blob `key`'s bytes, for a tool that reads files and seeks in them
    /// (ffmpeg): the store's own file where it keeps one, else a temporary copy that is
    /// removed when the [`LocalFile`] is dropped. Its path is made by the store from the
    /// key, never from anything a client sent.
    /// # Errors
    /// `NotFound` when the blob does not exist.
    async fn local_file(&self, key: &str) -> Result<LocalFile, StoreError>;
    /// Stores `bytes` whole as blob `key` (something the service made: a rendition),
    /// replacing one stored before. Readers see the old bytes or the new, never a part.
    /// # Errors
    /// `StoreError` when they cannot be stored.
    async fn put_blob(&self, key: &str, bytes: Bytes) -> Result<(), StoreError>;
    /// Removes blob `key`; a missing one is not an error.
    /// # Errors
    /// `StoreError` when it cannot be removed.
    async fn delete_blob(&self, key: &str) -> Result<(), StoreError>;
    /// Removes these blobs; missing ones are not an error. Goes on past a failure.
    /// # Errors
    /// The first `StoreError` met, after trying every key.
    async fn delete_blobs(&self, keys: &[String]) -> Result<(), StoreError>;
    /// Every upload with staging bytes, with the time they were last written (for gc).
    /// # Errors
    /// `StoreError` when the store cannot be listed.
    async fn list_staging(&self) -> Result<Vec<(UploadId, DateTime<Utc>)>, StoreError>;
    /// Every blob in the store, with its size and the time it was last written (for gc).
    /// # Errors
    /// `StoreError` when the store cannot be listed.
    async fn list_blobs(&self) -> Result<Vec<StoredBlob>, StoreError>;
    /// Checks that the store answers.
    /// # Errors
    /// `Unavailable` when it does not.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// A file holding a blob's bytes (see [`BlobStore::local_file`]).
pub struct LocalFile {
    path: std::path::PathBuf,
    /// What keeps a temporary copy alive; dropping it removes the copy.
    _keep: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl LocalFile {
    /// The store's own file.
    #[must_use]
    pub fn stored(path: std::path::PathBuf) -> Self {
        Self { path, _keep: None }
    }

    /// A copy at `path` that lives as long as `keep` (a temporary file's handle).
    #[must_use]
    pub fn temporary(path: std::path::PathBuf, keep: impl std::any::Any + Send + Sync) -> Self {
        Self { path, _keep: Some(Box::new(keep)) }
    }

    #[must_use]
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl std::fmt::Debug for LocalFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalFile").field("path", &self.path).field("temporary", &self._keep.is_some()).finish()
    }
}

/// What a file's header tells of its pixels: an image's width and height.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Probe {
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// Image and video codecs (SPEC 11), like the database a technology behind a port:
/// reading what a file's header says of its pixels, making an image's rendition, and a
/// video's poster. The domain keeps the rules (which media have renditions, their sizes,
/// the pixel limit, made once, stored once, deleted with the media, one at a time per
/// worker); `mediabox-imaging` holds the codecs and runs ffmpeg. `probe` and `render`
/// compute on the bytes they are given and do no IO (`render` is called on a blocking
/// thread); `poster` runs an external program on a file the blob store gave.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait MediaProcessor: Send + Sync {
    /// What the leading bytes `head` of a file sniffed as `content_type` say; nothing
    /// known when its header cannot be read from them.
    fn probe(&self, content_type: &str, head: &[u8]) -> Probe;

    /// Makes `variant` of the image in `src`: fitted in a `variant.max_side()` square
    /// (never enlarged), its orientation applied, no metadata kept.
    ///
    /// # Errors
    /// `TooLarge` when the header claims more than `max_pixels` (before any pixel is
    /// decoded); `NotDecodable` for bytes that are not an image it can decode.
    fn render(&self, src: &[u8], variant: Variant, max_pixels: u64) -> Result<Rendered, RenderError>;

    /// Whether it makes posters of videos; `false` when it has no video engine (no
    /// ffmpeg), and then videos have no renditions.
    fn renders_video(&self) -> bool;

    /// Makes `variant`'s poster of the video in the file at `video`: a JPEG of a
    /// representative frame (not a black opening), fitted in `variant.max_side()`, its
    /// rotation applied; and the video's displayed size and duration.
    ///
    /// # Errors
    /// `TooLarge` when the frames have more than `max_pixels`; `NotDecodable` for a file
    /// that is not a video it can decode (truncated, garbage), or one that takes longer
    /// than its time limit.
    async fn poster(&self, video: &std::path::Path, variant: Variant, max_pixels: u64) -> Result<Poster, RenderError>;
}
