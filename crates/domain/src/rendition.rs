//! Renditions of raster images (SPEC 11): `thumb` and `preview`, made on first request,
//! stored through the blob store under a key derived from the original's blob, recorded
//! in the database, and reused.
//!
//! - **Where they live.** Rendition `v` of blob `k` is blob `k.v`. Media sharing bytes
//!   share renditions; the blob's row owns the rendition rows (deleting it deletes them),
//!   and the one delete path removes `k.thumb` and `k.preview` with `k`.
//! - **Made once.** Concurrent first requests in one process wait for one render; two
//!   processes may both render, and store the same bytes under the same key.
//! - **A render never stalls the rest.** Decoding runs on the blocking pool, at most
//!   `workers` at a time; reading the original happens under the same permit, so memory is
//!   bounded by the workers, not by the number of requests.
//! - **A race with delete leaves nothing.** A render stores its blob first, then records
//!   it in a statement that fails when the original's blob row is gone, and then removes
//!   what it stored. A delete that commits after the record removes the blob itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use sha2::Digest;

use crate::error::{RepoError, StoreError};
use crate::kept::Kept;
use crate::media::{open_blob, Media, MediaKind, Opened, RangeSpec, Unreadable};
use crate::ports::{BlobStore, Clock, MediaProcessor, MediaRepository};
pub use crate::render::Variant;
use crate::render::{RenderError, Rendered};

/// The content types the service decodes; other media get no rendition.
pub const RENDERABLE: [&str; 6] = ["image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff"];

/// Whether `media` is a raster image the service makes renditions of.
#[must_use]
pub fn has_renditions(media: &Media) -> bool {
    media.kind == MediaKind::Image && RENDERABLE.contains(&media.content_type.as_str())
}

/// Whether `media` is a video (whose renditions are posters, when videos are rendered).
#[must_use]
pub fn is_video(media: &Media) -> bool {
    media.kind == MediaKind::Video
}

/// Why `media` has no rendition when its bytes cannot be decoded.
fn not_decodable(media: &Media) -> RenditionError {
    if is_video(media) {
        RenditionError::VideoNotDecodable
    } else {
        RenditionError::NotDecodable
    }
}

/// The blob key of rendition `variant` of blob `blob_key`.
#[must_use]
pub fn rendition_key(blob_key: &str, variant: Variant) -> String {
    format!("{blob_key}.{}", variant.as_str())
}

/// The blob a key belongs to: the original's key for a rendition key, else the key.
#[must_use]
pub fn owner_key(key: &str) -> &str {
    Variant::ALL.iter().find_map(|v| key.strip_suffix(v.as_str()).and_then(|k| k.strip_suffix('.'))).unwrap_or(key)
}

/// A blob's keys with those of its renditions: what removing the blob removes.
#[must_use]
pub fn with_renditions(keys: &[String]) -> Vec<String> {
    keys.iter()
        .flat_map(|k| std::iter::once(k.clone()).chain(Variant::ALL.iter().map(|v| rendition_key(k, *v))))
        .collect()
}

/// A stored rendition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendition {
    /// The original's blob key.
    pub blob_key: String,
    pub variant: Variant,
    pub content_type: String,
    pub size: u64,
    /// Of the rendition's bytes (its ETag).
    pub sha256: String,
    pub width: u32,
    pub height: u32,
}

impl Rendition {
    /// Where its bytes are.
    #[must_use]
    pub fn key(&self) -> String {
        rendition_key(&self.blob_key, self.variant)
    }
}

/// What the database knows of a rendition: made, or found impossible (the bytes of an
/// original never change, so neither does that answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenditionRecord {
    Ready(Rendition),
    NotDecodable,
}

/// Limits on making renditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenditionLimits {
    /// `MEDIABOX_MAX_IMAGE_PIXELS`.
    pub max_pixels: u64,
    /// Originals larger than this are not read into memory to be decoded.
    pub max_source_bytes: u64,
    /// Renders at a time (each holds one original and its decoded pixels).
    pub workers: usize,
}

impl Default for RenditionLimits {
    fn default() -> Self {
        Self {
            max_pixels: 100_000_000,
            max_source_bytes: 100 * 1024 * 1024,
            workers: std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
        }
    }
}

/// Errors of getting a rendition.
#[derive(Debug, thiserror::Error)]
pub enum RenditionError {
    /// The media is not a raster image: it has no renditions.
    #[error("the media has no {0} rendition: it is neither a raster image nor a video that ffmpeg renders")]
    NoRendition(&'static str),
    #[error("the image is {width}x{height} pixels, over the limit of {max} pixels")]
    TooLarge { width: u32, height: u32, max: u64 },
    #[error("the image file is {size} bytes, over the limit of {max} bytes for renditions")]
    FileTooLarge { size: u64, max: u64 },
    #[error("the image cannot be decoded")]
    NotDecodable,
    /// A video ffmpeg cannot read (truncated, garbage) or that took too long.
    #[error("the video cannot be decoded")]
    VideoNotDecodable,
    /// The media was deleted while its rendition was being made.
    #[error("media not found")]
    NotFound,
    #[error("requested range not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    #[error(transparent)]
    Repository(#[from] RepoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Unreadable> for RenditionError {
    fn from(e: Unreadable) -> Self {
        match e {
            Unreadable::Range { size } => RenditionError::RangeNotSatisfiable { size },
            Unreadable::Store(s) => RenditionError::Store(s),
        }
    }
}

/// Making and reading renditions.
pub struct RenditionService {
    media: Arc<dyn MediaRepository>,
    blobs: Arc<dyn BlobStore>,
    processor: Arc<dyn MediaProcessor>,
    clock: Arc<dyn Clock>,
    limits: RenditionLimits,
    permits: Arc<tokio::sync::Semaphore>,
    /// One lock per rendition being made, so that concurrent first requests render once.
    making: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    /// Renditions just made (key, bytes), newest last: the request that made one serves
    /// it from here instead of reading back what it just stored (on S3 a request, and
    /// the time to the first thumbnail). Taken by the first `open`.
    just_made: Kept<String, Bytes>,
}

/// How many renditions just made are kept for their first `open` (a thumbnail is a few
/// KiB, a preview some hundred).
const JUST_MADE: usize = 16;

impl RenditionService {
    #[must_use]
    pub fn new(
        media: Arc<dyn MediaRepository>,
        blobs: Arc<dyn BlobStore>,
        processor: Arc<dyn MediaProcessor>,
        clock: Arc<dyn Clock>,
        limits: RenditionLimits,
    ) -> Self {
        let permits = Arc::new(tokio::sync::Semaphore::new(limits.workers.max(1)));
        Self {
            media,
            blobs,
            processor,
            clock,
            limits,
            permits,
            making: Mutex::new(HashMap::new()),
            just_made: Kept::new(JUST_MADE),
        }
    }

    /// The rendition of `media` (already authorized by the caller), made now if it was
    /// not made before.
    ///
    /// # Errors
    /// `NoRendition` for media that are not raster images; `TooLarge`/`FileTooLarge` over
    /// the limits; `NotDecodable` for damaged or unknown images; `NotFound` when the media
    /// was deleted meanwhile.
    pub async fn get(&self, media: &Media, variant: Variant) -> Result<Rendition, RenditionError> {
        self.check(media, variant)?;
        if let Some(r) = self.recorded(media, variant).await? {
            return Ok(r);
        }
        let lock = self.lock_for(&rendition_key(&media.blob_key, variant));
        let _made_here = lock.lock().await;
        if let Some(r) = self.recorded(media, variant).await? {
            return Ok(r);
        }
        self.make(media, variant).await
    }

    /// Starts a video's thumbnail in the background (SPEC 11: a video's size and duration
    /// are known within seconds of complete, and the poster is ready when first asked
    /// for). Nothing for other media, or without a video engine. Returns at once.
    pub fn prepare(self: &Arc<Self>, media: &Media) {
        if !(is_video(media) && self.processor.renders_video()) {
            return;
        }
        let (svc, media) = (Arc::clone(self), media.clone());
        tokio::spawn(async move {
            if let Err(e) = svc.get(&media, Variant::Thumb).await {
                tracing::info!(media = %media.id, error = %e, "no poster made after complete");
            }
        });
    }

    /// Streams a rendition that [`Self::get`] answered, whole or a range. When its bytes
    /// went missing from the store, they are made again (and the range is taken of the
    /// rendition made then).
    ///
    /// # Errors
    /// `RangeNotSatisfiable` outside the rendition; as [`Self::get`] when it is remade.
    pub async fn open(
        &self,
        media: &Media,
        rendition: Rendition,
        range: Option<RangeSpec>,
    ) -> Result<(Rendition, Opened), RenditionError> {
        if let Some(bytes) = self.just_made.take(&rendition.key()).filter(|b| b.len() as u64 == rendition.size) {
            let range = range.map(|s| s.resolve(rendition.size).ok_or(Unreadable::Range { size: rendition.size }));
            let range = range.transpose()?;
            let part = match range {
                Some(r) => bytes.slice(usize::try_from(r.start).unwrap_or(0)..usize::try_from(r.end + 1).unwrap_or(0)),
                None => bytes,
            };
            let body: crate::ports::ByteStream = Box::pin(futures_util::stream::iter([Ok(part)]));
            return Ok((rendition, Opened { range, body }));
        }
        match open_blob(&*self.blobs, &rendition.key(), rendition.size, range).await {
            Err(Unreadable::Store(StoreError::NotFound)) => {
                tracing::warn!(key = %rendition.key(), "a recorded rendition is missing from the store; making it again");
                let lock = self.lock_for(&rendition.key());
                let _made_here = lock.lock().await;
                let fresh = self.make(media, rendition.variant).await?;
                let opened = open_blob(&*self.blobs, &fresh.key(), fresh.size, range).await?;
                Ok((fresh, opened))
            }
            opened => Ok((rendition, opened?)),
        }
    }

    /// Whether `media` has renditions here: a raster image, or a video when the processor
    /// makes posters (it found ffmpeg).
    #[must_use]
    pub fn renders(&self, media: &Media) -> bool {
        has_renditions(media) || (is_video(media) && self.processor.renders_video())
    }

    fn check(&self, media: &Media, variant: Variant) -> Result<(), RenditionError> {
        if !self.renders(media) {
            return Err(RenditionError::NoRendition(variant.as_str()));
        }
        if is_video(media) {
            // ffmpeg reads the file where it lies, seeking; the frame size is checked
            // against the pixel limit by the processor.
            return Ok(());
        }
        if let (Some(width), Some(height)) = (media.width, media.height) {
            if u64::from(width) * u64::from(height) > self.limits.max_pixels {
                return Err(RenditionError::TooLarge { width, height, max: self.limits.max_pixels });
            }
        }
        if media.size > self.limits.max_source_bytes {
            return Err(RenditionError::FileTooLarge { size: media.size, max: self.limits.max_source_bytes });
        }
        Ok(())
    }

    async fn recorded(&self, media: &Media, variant: Variant) -> Result<Option<Rendition>, RenditionError> {
        match self.media.find_rendition(&media.blob_key, variant).await? {
            Some(RenditionRecord::Ready(r)) => Ok(Some(r)),
            Some(RenditionRecord::NotDecodable) => Err(not_decodable(media)),
            None => Ok(None),
        }
    }

    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut making = self.making.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        making.retain(|_, w| w.strong_count() > 0);
        if let Some(l) = making.get(key).and_then(Weak::upgrade) {
            return l;
        }
        let l = Arc::new(tokio::sync::Mutex::new(()));
        making.insert(key.to_owned(), Arc::downgrade(&l));
        l
    }

    /// Renders, stores and records; see the module's notes on races with delete.
    async fn make(&self, media: &Media, variant: Variant) -> Result<Rendition, RenditionError> {
        let rendered = {
            let _permit = self.permits.acquire().await.map_err(|e| StoreError::Other(Box::new(e)))?;
            if is_video(media) {
                self.poster(media, variant).await?
            } else {
                let source = self.read_original(media).await?;
                let max = self.limits.max_pixels;
                let processor = self.processor.clone();
                match tokio::task::spawn_blocking(move || processor.render(&source, variant, max)).await {
                    Ok(done) => done,
                    // A decoder that panics on hostile bytes has met an image it cannot decode.
                    Err(e) if e.is_panic() => Err(RenderError::NotDecodable("the decoder gave up".into())),
                    Err(e) => return Err(StoreError::Other(Box::new(e)).into()),
                }
            }
        };
        let now: DateTime<Utc> = self.clock.now();
        let rendered = match rendered {
            Ok(r) => r,
            Err(RenderError::TooLarge { width, height, max }) => {
                return Err(RenditionError::TooLarge { width, height, max })
            }
            Err(RenderError::NotDecodable(reason)) => {
                tracing::info!(media = %media.id, %reason, "no rendition: the media cannot be decoded");
                if !self.media.save_rendition(&media.blob_key, variant, &RenditionRecord::NotDecodable, now).await? {
                    return Err(RenditionError::NotFound);
                }
                return Err(not_decodable(media));
            }
        };
        let rendition = Rendition {
            blob_key: media.blob_key.clone(),
            variant,
            content_type: rendered.content_type.to_owned(),
            size: rendered.bytes.len() as u64,
            sha256: hex::encode(sha2::Sha256::digest(&rendered.bytes)),
            width: rendered.width,
            height: rendered.height,
        };
        let key = rendition.key();
        let bytes = Bytes::from(rendered.bytes);
        self.blobs.put_blob(&key, bytes.clone()).await?;
        let saved =
            self.media.save_rendition(&media.blob_key, variant, &RenditionRecord::Ready(rendition.clone()), now).await;
        match saved {
            Ok(true) => {
                self.just_made.put(key, bytes);
                Ok(rendition)
            }
            Ok(false) => {
                // The original was deleted meanwhile: nothing may keep this blob.
                let _ = self.blobs.delete_blob(&key).await;
                Err(RenditionError::NotFound)
            }
            // Unrecorded, the blob is an orphan for gc, or is stored again next time.
            Err(e) => Err(e.into()),
        }
    }

    /// A video's poster, from a file the blob store gives (its own, or a copy); what it
    /// found of the video (size, duration) is recorded on the media of its blob first, so
    /// that a recorded poster always has them.
    async fn poster(&self, media: &Media, variant: Variant) -> Result<Result<Rendered, RenderError>, RenditionError> {
        let file = match self.blobs.local_file(&media.blob_key).await {
            Err(StoreError::NotFound) => return Err(RenditionError::NotFound),
            other => other?,
        };
        match self.processor.poster(file.path(), variant, self.limits.max_pixels).await {
            Ok(poster) => {
                self.media.save_video_facts(&media.blob_key, &poster.facts).await?;
                Ok(Ok(poster.rendered))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    async fn read_original(&self, media: &Media) -> Result<Vec<u8>, RenditionError> {
        let mut body = match self.blobs.read(&media.blob_key, None).await {
            Err(StoreError::NotFound) => return Err(RenditionError::NotFound),
            other => other?,
        };
        let mut out = Vec::with_capacity(usize::try_from(media.size).unwrap_or(0));
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|e| StoreError::Other(Box::new(e)))?;
            if (out.len() + piece.len()) as u64 > self.limits.max_source_bytes {
                return Err(RenditionError::FileTooLarge { size: media.size, max: self.limits.max_source_bytes });
            }
            out.extend_from_slice(&piece);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::ids::{MediaId, OrgId, UserId};
    use crate::ports::{ByteStream, LocalFile, MockBlobStore, MockMediaProcessor, MockMediaRepository, SystemClock};
    use crate::render::{fit_within, Poster, Rendered, VideoFacts};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// Stands for an image file: the processor is a mock, so any bytes do.
    fn photo(w: u32, h: u32) -> Vec<u8> {
        format!("an image of {w}x{h}").into_bytes()
    }

    /// A processor without a video engine, asked nothing else.
    fn no_video() -> MockMediaProcessor {
        let mut p = MockMediaProcessor::new();
        p.expect_renders_video().return_const(false);
        p
    }

    /// A processor that renders any source as a JPEG of the size a `w`x`h` image fits.
    fn renders(w: u32, h: u32) -> MockMediaProcessor {
        let mut p = MockMediaProcessor::new();
        p.expect_render().returning(move |src, variant, _| {
            let (width, height) = fit_within(w, h, variant.max_side());
            Ok(Rendered { bytes: [b"jpeg of ".as_slice(), src].concat(), content_type: "image/jpeg", width, height })
        });
        p
    }

    fn media(bytes: &[u8], w: u32, h: u32) -> Result<Media, crate::ids::InvalidId> {
        Ok(Media {
            id: MediaId::new(7)?,
            uuid: uuid::Uuid::new_v4(),
            org: OrgId::new("acme")?,
            uploaded_by: UserId::new("u-1")?,
            filename: "p.png".into(),
            content_type: "image/png".into(),
            size: bytes.len() as u64,
            sha256: String::new(),
            md5: String::new(),
            kind: MediaKind::Image,
            width: Some(w),
            height: Some(h),
            duration_ms: None,
            created_at: Utc::now(),
            blob_key: "b1".into(),
        })
    }

    fn serving(bytes: Vec<u8>) -> impl Fn(&str, Option<(u64, u64)>) -> Result<ByteStream, StoreError> {
        move |_, _| {
            let body: ByteStream = Box::pin(futures_util::stream::iter([Ok(Bytes::from(bytes.clone()))]));
            Ok(body)
        }
    }

    fn service(
        repo: MockMediaRepository,
        blobs: MockBlobStore,
        processor: MockMediaProcessor,
        limits: RenditionLimits,
    ) -> RenditionService {
        RenditionService::new(Arc::new(repo), Arc::new(blobs), Arc::new(processor), Arc::new(SystemClock), limits)
    }

    #[tokio::test]
    async fn a_render_that_loses_the_race_with_a_delete_removes_what_it_stored() -> TestResult {
        let bytes = photo(640, 480);
        let mut repo = MockMediaRepository::new();
        repo.expect_find_rendition().returning(|_, _| Ok(None));
        // The blob's row went between the render's start and its record.
        repo.expect_save_rendition().times(1).returning(|_, _, _, _| Ok(false));
        let mut blobs = MockBlobStore::new();
        let mut seq = mockall::Sequence::new();
        blobs.expect_read().withf(|k, _| k == "b1").times(1).returning(serving(bytes.clone()));
        blobs.expect_put_blob().withf(|k, _| k == "b1.thumb").times(1).in_sequence(&mut seq).returning(|_, _| Ok(()));
        blobs.expect_delete_blob().withf(|k| k == "b1.thumb").times(1).in_sequence(&mut seq).returning(|_| Ok(()));
        let svc = service(repo, blobs, renders(640, 480), RenditionLimits::default());
        let got = svc.get(&media(&bytes, 640, 480)?, Variant::Thumb).await;
        assert!(matches!(got, Err(RenditionError::NotFound)), "{got:?}");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_requests_render_and_store_once() -> TestResult {
        let bytes = photo(800, 600);
        let saved: Arc<Mutex<Option<RenditionRecord>>> = Arc::default();
        let mut repo = MockMediaRepository::new();
        let s = saved.clone();
        repo.expect_find_rendition().returning(move |_, _| Ok(s.lock().map_err(|_| unreachable!())?.clone()));
        let s = saved.clone();
        repo.expect_save_rendition().times(1).returning(move |_, _, r, _| {
            *s.lock().map_err(|_| unreachable!())? = Some(r.clone());
            Ok(true)
        });
        let puts = Arc::new(AtomicUsize::new(0));
        let mut blobs = MockBlobStore::new();
        blobs.expect_read().times(1).returning(serving(bytes.clone()));
        let p = puts.clone();
        blobs.expect_put_blob().returning(move |_, _| {
            p.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        let mut processor = MockMediaProcessor::new();
        processor.expect_render().times(1).returning(|_, variant, _| {
            let (width, height) = fit_within(800, 600, variant.max_side());
            Ok(Rendered { bytes: b"jpeg".to_vec(), content_type: "image/jpeg", width, height })
        });
        let svc = Arc::new(service(repo, blobs, processor, RenditionLimits::default()));
        let m = media(&bytes, 800, 600)?;
        let runs = (0..8).map(|_| {
            let (svc, m) = (svc.clone(), m.clone());
            tokio::spawn(async move { svc.get(&m, Variant::Preview).await })
        });
        let got = futures_util::future::join_all(runs).await;
        let first = got[0].as_ref().map_err(|_| "joined")?.as_ref().map_err(|e| e.to_string())?.clone();
        assert_eq!((first.width, first.height, first.content_type.as_str()), (800, 600, "image/jpeg"));
        for g in &got {
            assert_eq!(g.as_ref().map_err(|_| "joined")?.as_ref().map_err(|e| e.to_string())?, &first);
        }
        assert_eq!(puts.load(Ordering::SeqCst), 1, "one render, one stored copy");
        Ok(())
    }

    #[tokio::test]
    async fn known_answers_read_nothing_from_the_store() -> TestResult {
        let bytes = photo(4, 4);
        let mut repo = MockMediaRepository::new();
        repo.expect_find_rendition().returning(|_, _| Ok(Some(RenditionRecord::NotDecodable)));
        // No expectations: any store call fails the test.
        let svc = service(
            repo,
            MockBlobStore::new(),
            no_video(),
            RenditionLimits { max_pixels: 1000, ..RenditionLimits::default() },
        );
        let got = svc.get(&media(&bytes, 4, 4)?, Variant::Thumb).await;
        assert!(matches!(got, Err(RenditionError::NotDecodable)), "{got:?}");
        // Over the pixel limit by the recorded dimensions: no database, no store.
        let got = svc.get(&media(&bytes, 100, 11)?, Variant::Thumb).await;
        assert!(matches!(got, Err(RenditionError::TooLarge { width: 100, height: 11, max: 1000 })), "{got:?}");
        let mut video = media(&bytes, 4, 4)?;
        (video.kind, video.content_type) = (MediaKind::Video, "video/mp4".into());
        assert!(matches!(svc.get(&video, Variant::Thumb).await, Err(RenditionError::NoRendition("thumb"))));
        Ok(())
    }

    /// The request that made a rendition serves the bytes it made (whole or a range),
    /// not a read of what it just stored; later requests read the store.
    #[tokio::test]
    async fn a_rendition_just_made_is_served_from_its_bytes_once_then_from_the_store() -> TestResult {
        let bytes = photo(64, 48);
        let m = media(&bytes, 64, 48)?;
        let mut repo = MockMediaRepository::new();
        repo.expect_find_rendition().returning(|_, _| Ok(None));
        repo.expect_save_rendition().returning(|_, _, _, _| Ok(true));
        let stored_reads = Arc::new(AtomicUsize::new(0));
        let mut blobs = MockBlobStore::new();
        let n = stored_reads.clone();
        blobs.expect_read().returning(move |k, _| {
            if k != "b1" {
                n.fetch_add(1, Ordering::SeqCst);
            }
            serving(b"jpeg of an image of 64x48".to_vec())(k, None)
        });
        blobs.expect_put_blob().returning(|_, _| Ok(()));
        let svc = service(repo, blobs, renders(64, 48), RenditionLimits::default());
        let read_all = |o: Opened| async move {
            let pieces: Vec<Result<Bytes, std::io::Error>> = o.body.collect().await;
            pieces.into_iter().collect::<Result<Vec<_>, _>>().map(|v| v.concat())
        };
        let made = svc.get(&m, Variant::Thumb).await?;
        let (_, opened) = svc.open(&m, made.clone(), Some(RangeSpec::FromTo(0, Some(3)))).await?;
        assert_eq!(read_all(opened).await?, b"jpeg");
        assert_eq!(stored_reads.load(Ordering::SeqCst), 0, "served from the bytes just made");
        let (_, opened) = svc.open(&m, made, None).await?;
        assert_eq!(read_all(opened).await?, b"jpeg of an image of 64x48");
        assert_eq!(stored_reads.load(Ordering::SeqCst), 1, "then from the store");
        Ok(())
    }

    #[tokio::test]
    async fn a_rendition_missing_from_the_store_is_made_again() -> TestResult {
        let bytes = photo(50, 40);
        let m = media(&bytes, 50, 40)?;
        let stale = Rendition {
            blob_key: "b1".into(),
            variant: Variant::Thumb,
            content_type: "image/jpeg".into(),
            size: 3,
            sha256: "x".into(),
            width: 50,
            height: 40,
        };
        let mut repo = MockMediaRepository::new();
        repo.expect_save_rendition().times(1).returning(|_, _, _, _| Ok(true));
        let mut blobs = MockBlobStore::new();
        let served = Arc::new(Mutex::new(None::<Bytes>));
        let s = served.clone();
        blobs.expect_read().returning(move |k, _| {
            if k == "b1" {
                return serving(bytes.clone())(k, None);
            }
            let stored = s.lock().map_err(|_| StoreError::NotFound)?.clone().ok_or(StoreError::NotFound)?;
            Ok(Box::pin(futures_util::stream::iter([Ok(stored)])))
        });
        let s = served.clone();
        blobs.expect_put_blob().times(1).returning(move |_, b| {
            *s.lock().map_err(|_| StoreError::NotFound)? = Some(b);
            Ok(())
        });
        let svc = service(repo, blobs, renders(50, 40), RenditionLimits::default());
        let (made, opened) = svc.open(&m, stale, None).await?;
        assert_eq!(made.width, 50);
        assert_ne!(made.sha256, "x", "the record is the new rendition's");
        let mut body = opened.body;
        let first = body.next().await.ok_or("a body")??;
        assert_eq!(first.len() as u64, made.size);
        Ok(())
    }

    #[tokio::test]
    async fn an_image_the_processor_cannot_decode_is_recorded_once_and_a_panic_is_the_same() -> TestResult {
        for panics in [false, true] {
            let bytes = photo(64, 64);
            let mut repo = MockMediaRepository::new();
            repo.expect_find_rendition().times(2).returning(|_, _| Ok(None));
            repo.expect_save_rendition()
                .withf(|k, v, r, _| k == "b1" && *v == Variant::Thumb && *r == RenditionRecord::NotDecodable)
                .times(1)
                .returning(|_, _, _, _| Ok(true));
            let mut blobs = MockBlobStore::new();
            blobs.expect_read().times(1).returning(serving(bytes.clone()));
            let mut processor = MockMediaProcessor::new();
            processor.expect_render().times(1).returning(move |_, _, _| {
                assert!(!panics, "a decoder that panics on hostile bytes");
                Err(RenderError::NotDecodable("truncated".into()))
            });
            let svc = service(repo, blobs, processor, RenditionLimits::default());
            let got = svc.get(&media(&bytes, 64, 64)?, Variant::Thumb).await;
            assert!(matches!(got, Err(RenditionError::NotDecodable)), "panics: {panics}: {got:?}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn the_processor_is_asked_for_the_variant_with_the_pixel_limit_and_its_size_is_recorded() -> TestResult {
        let bytes = photo(4000, 3000);
        let mut repo = MockMediaRepository::new();
        repo.expect_find_rendition().returning(|_, _| Ok(None));
        repo.expect_save_rendition()
            .withf(|_, _, r, _| matches!(r, RenditionRecord::Ready(x) if (x.width, x.height, x.size) == (320, 240, 4)))
            .times(1)
            .returning(|_, _, _, _| Ok(true));
        let mut blobs = MockBlobStore::new();
        blobs.expect_read().times(1).returning(serving(bytes.clone()));
        blobs
            .expect_put_blob()
            .withf(|k, b| k == "b1.thumb" && b.as_ref() == b"jpeg")
            .times(1)
            .returning(|_, _| Ok(()));
        let mut processor = MockMediaProcessor::new();
        processor
            .expect_render()
            .withf(|src, v, max| src == b"an image of 4000x3000" && *v == Variant::Thumb && *max == 20_000_000)
            .times(1)
            .returning(|_, _, _| {
                Ok(Rendered { bytes: b"jpeg".to_vec(), content_type: "image/jpeg", width: 320, height: 240 })
            });
        let limits = RenditionLimits { max_pixels: 20_000_000, ..RenditionLimits::default() };
        let made = service(repo, blobs, processor, limits).get(&media(&bytes, 4000, 3000)?, Variant::Thumb).await?;
        assert_eq!(
            (made.width, made.height, made.content_type.as_str(), made.key()),
            (320, 240, "image/jpeg", "b1.thumb".into())
        );
        Ok(())
    }

    fn video(bytes: &[u8]) -> Result<Media, crate::ids::InvalidId> {
        let mut m = media(bytes, 0, 0)?;
        (m.kind, m.content_type, m.width, m.height) = (MediaKind::Video, "video/mp4".into(), None, None);
        Ok(m)
    }

    #[tokio::test]
    async fn a_video_poster_comes_from_the_stores_file_and_its_facts_are_recorded_before_it() -> TestResult {
        let mut seq = mockall::Sequence::new();
        let mut repo = MockMediaRepository::new();
        repo.expect_find_rendition().returning(|_, _| Ok(None));
        let facts = VideoFacts { width: 360, height: 640, duration_ms: 4000 };
        repo.expect_save_video_facts()
            .withf(move |k, f| k == "b1" && *f == facts)
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(()));
        repo.expect_save_rendition()
            .withf(|_, v, r, _| {
                *v == Variant::Preview && matches!(r, RenditionRecord::Ready(x) if (x.width, x.height) == (180, 320))
            })
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _, _| Ok(true));
        let mut blobs = MockBlobStore::new();
        // The original is not read into memory: the processor gets the store's file.
        blobs.expect_read().never();
        blobs
            .expect_local_file()
            .withf(|k| k == "b1")
            .times(1)
            .returning(|_| Ok(LocalFile::stored("/store/b1".into())));
        blobs.expect_put_blob().withf(|k, _| k == "b1.preview").times(1).returning(|_, _| Ok(()));
        let mut processor = MockMediaProcessor::new();
        processor.expect_renders_video().return_const(true);
        processor
            .expect_poster()
            .withf(|path, v, max| {
                path == std::path::Path::new("/store/b1") && *v == Variant::Preview && *max == 100_000_000
            })
            .times(1)
            .returning(move |_, _, _| {
                let rendered =
                    Rendered { bytes: b"poster".to_vec(), content_type: "image/jpeg", width: 180, height: 320 };
                Ok(Poster { rendered, facts })
            });
        let svc = service(repo, blobs, processor, RenditionLimits::default());
        let made = svc.get(&video(b"mp4")?, Variant::Preview).await?;
        assert_eq!((made.content_type.as_str(), made.width, made.height), ("image/jpeg", 180, 320));
        Ok(())
    }

    #[tokio::test]
    async fn without_a_video_engine_a_video_has_no_rendition_and_a_broken_one_is_recorded_once() -> TestResult {
        let svc = service(MockMediaRepository::new(), MockBlobStore::new(), no_video(), RenditionLimits::default());
        assert!(!svc.renders(&video(b"mp4")?));
        assert!(matches!(svc.get(&video(b"mp4")?, Variant::Thumb).await, Err(RenditionError::NoRendition("thumb"))));

        let mut repo = MockMediaRepository::new();
        repo.expect_find_rendition().returning(|_, _| Ok(None));
        repo.expect_save_video_facts().never();
        repo.expect_save_rendition()
            .withf(|_, _, r, _| *r == RenditionRecord::NotDecodable)
            .times(1)
            .returning(|_, _, _, _| Ok(true));
        let mut blobs = MockBlobStore::new();
        blobs.expect_local_file().returning(|_| Ok(LocalFile::stored("/store/b1".into())));
        let mut processor = MockMediaProcessor::new();
        processor.expect_renders_video().return_const(true);
        processor
            .expect_poster()
            .times(1)
            .returning(|_, _, _| Err(RenderError::NotDecodable("moov atom not found".into())));
        let svc = service(repo, blobs, processor, RenditionLimits::default());
        assert!(svc.renders(&video(b"mp4")?));
        let got = svc.get(&video(b"mp4")?, Variant::Thumb).await;
        assert!(matches!(got, Err(RenditionError::VideoNotDecodable)), "{got:?}");
        Ok(())
    }

    #[test]
    fn rendition_keys_name_their_owner() {
        assert_eq!(rendition_key("abc", Variant::Thumb), "abc.thumb");
        assert_eq!(owner_key("abc.thumb"), "abc");
        assert_eq!(owner_key("abc.preview"), "abc");
        assert_eq!(owner_key("abc"), "abc");
        assert_eq!(owner_key("abcthumb"), "abcthumb");
        assert_eq!(with_renditions(&["k".into()]), vec!["k", "k.thumb", "k.preview"]);
    }
}
