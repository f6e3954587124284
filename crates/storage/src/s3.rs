//! The S3 blob store (any S3-compatible service), through `object_store`.
//!
//! Layout in the bucket: `blobs/<key>` holds committed blobs; `staging/<upload id>/...`
//! holds the small chunks of an upload that are not yet part of a multipart part.
//!
//! An upload writes straight into a multipart upload whose destination is its blob's
//! path (the blob key is the upload's id, known from the first byte), so complete is one
//! `CompleteMultipartUpload`, never a copy of the bytes. S3 refuses parts under 5 MiB
//! except the last, and clients send chunks of any size: chunks that leave fewer bytes
//! than a part are kept as one small object each (`staging/<upload>/<start>-<end>`) until
//! enough arrive, then read back once and sent as one part (as tusd's s3store does).
//! When a chunk's length is announced, its parts stream to S3 as the bytes arrive (a
//! signed `UploadPart` whose body is the request's pieces), and a file that comes whole
//! in one request of at most a part streams into one PUT where its blob goes (`Staging`'s
//! `whole`): memory stays a few pieces, not a part or a file.
//!
//! What an upload's staging is (multipart id, part ids, small objects) lives in the
//! upload's row as [`Staging`] JSON: any instance can take the next chunk, and gc knows
//! every multipart upload to abort without listing them (not every S3 server can). The
//! multipart upload is opened in [`BlobStore::prepare_staging`], whose answer the domain
//! records before a byte is written into it. Objects a recorded state names are never
//! changed: a part is re-sent under the same number (replacing an unrecorded one left by
//! a failed chunk), a small object is named by its byte range, and small objects that
//! became a part are removed only after the state without them was recorded (they are
//! listed as `garbage` until then).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt};
use mediabox_domain::kept::Kept;
use mediabox_domain::ports::{BlobStore, ByteStream, ChunkWriter, LocalFile, StoredBlob, WriteSize};
use mediabox_domain::{StoreError, UploadId};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig,
};
use serde::{Deserialize, Serialize};

use crate::fs::valid_key;

/// How much of a file put whole is kept for its complete to sniff (the domain's
/// `SNIFF_BYTES`), and for how many files at once (most recent first; older ones are read
/// back with one ranged GET).
const HEAD_CACHED: usize = 256 * 1024;
const HEADS_CACHED: usize = 64;

/// S3 refuses smaller parts, except the last.
const MIN_PART: u64 = 5 << 20;
/// Parts are cut at this size while a chunk streams: memory per request stays about one
/// part, whatever the chunk size.
const PART: u64 = 8 << 20;

/// Where the bucket is and how to reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// Any S3-compatible endpoint (`http://127.0.0.1:9000`); requests are then path-style
    /// and plain HTTP is allowed. `None`: AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

/// Blobs in one bucket.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    s3: Arc<AmazonS3>,
    /// The heads of files put whole by this process, until their complete asks for them
    /// (most completes come to the instance that took the bytes): no GET to sniff them.
    heads: Arc<Kept<UploadId, Bytes>>,
    /// HTTP requests sent to the S3 service, retries included (`/metrics`, the bench and
    /// the contract tests count requests per upload with it).
    requests: Arc<AtomicU64>,
    /// Streams a whole file's PUT (a URL signed by object_store, `UNSIGNED-PAYLOAD`):
    /// object_store's own `put` needs the whole payload in memory first.
    http: s3_http::Client,
}

/// object_store's own HTTP client, counting each request it sends.
#[derive(Debug)]
struct CountingConnector {
    requests: Arc<AtomicU64>,
}

impl HttpConnector for CountingConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(CountingService { inner, requests: self.requests.clone() }))
    }
}

#[derive(Debug)]
struct CountingService {
    inner: HttpClient,
    requests: Arc<AtomicU64>,
}

#[async_trait]
impl HttpService for CountingService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inner.execute(req).await
    }
}

/// What the row keeps of an upload's staging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Staging {
    /// The multipart upload, once opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multipart: Option<String>,
    /// Ids of the parts sent, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    parts: Vec<String>,
    /// Bytes in those parts: the upload's bytes `0..parted`.
    #[serde(default)]
    parted: u64,
    /// Small objects holding the bytes from `parted` on, as `(start, end)` ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending: Vec<(u64, u64)>,
    /// Small objects whose bytes went into a part: removed by the next chunk or complete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    garbage: Vec<(u64, u64)>,
    /// The whole file (`parted` bytes) was put in one request where the upload's blob
    /// goes: complete has nothing to move.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    whole: bool,
}

impl Staging {
    fn parse(state: Option<&str>) -> Result<Self, StoreError> {
        match state {
            None => Ok(Self::default()),
            Some(s) => serde_json::from_str(s).map_err(|e| StoreError::Other(Box::new(e))),
        }
    }
    fn to_json(&self) -> Result<String, StoreError> {
        serde_json::to_string(self).map_err(|e| StoreError::Other(Box::new(e)))
    }
    fn pending_len(&self) -> u64 {
        self.pending.iter().map(|(a, b)| b - a).sum()
    }
}

fn store_error(e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { .. } => StoreError::NotFound,
        // Every other failure of a remote store is treated as the store being unavailable
        // (503, retryable); the source is logged, never shown.
        e => StoreError::Unavailable(Box::new(e)),
    }
}

/// A write failed: a 404 there means the bucket is missing, never that an object is.
fn write_error(e: object_store::Error) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

fn blob_path(key: &str) -> Result<Path, StoreError> {
    Ok(Path::from(format!("blobs/{}", valid_key(key)?)))
}

fn staging_dir(upload: UploadId) -> Path {
    Path::from(format!("staging/{upload}"))
}

fn pending_path(upload: UploadId, (start, end): (u64, u64)) -> Path {
    Path::from(format!("staging/{upload}/{start:020}-{end:020}"))
}

/// Where an upload's multipart upload writes: the path of the blob it becomes.
fn upload_blob_path(upload: UploadId) -> Result<Path, StoreError> {
    blob_path(&mediabox_domain::media::blob_key(upload))
}

impl S3BlobStore {
    /// Up to `len` leading bytes of blob `key`.
    async fn read_head(&self, key: &str, len: usize) -> Result<Vec<u8>, StoreError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let opts = GetOptions { range: Some(GetRange::Bounded(0..len as u64)), ..GetOptions::default() };
        let got = self.s3.get_opts(&blob_path(key)?, opts).await.map_err(store_error)?;
        Ok(got.bytes().await.map_err(store_error)?.to_vec())
    }

    /// A store on `config`'s bucket. Nothing is sent yet: [`BlobStore::ping`] tells
    /// whether the bucket answers.
    ///
    /// # Errors
    /// When the configuration is not usable (no bucket, a malformed endpoint).
    pub fn new(config: &S3Config) -> Result<Self, StoreError> {
        // Bounded: a store that does not answer gives an error within seconds, and a
        // request waiting on it answers 503 instead of hanging.
        let options = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(60))
            .with_pool_idle_timeout(Duration::from_secs(30));
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_secs(1),
                base: 2.0,
            },
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
        };
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_region(config.region.clone().unwrap_or_else(|| "us-east-1".to_owned()))
            .with_client_options(options)
            .with_retry(retry);
        if let Some(endpoint) = &config.endpoint {
            b = b.with_endpoint(endpoint).with_allow_http(true).with_virtual_hosted_style_request(false);
        }
        if let Some(k) = &config.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &config.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        let requests = Arc::new(AtomicU64::new(0));
        b = b.with_http_connector(CountingConnector { requests: requests.clone() });
        let s3 = b.build().map_err(|e| StoreError::Other(Box::new(e)))?;
        let http = s3_http::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            // No read timeout: a streamed PUT lasts as long as its client sends, however
            // slowly. A stalled S3 service is noticed by the stream instead (`STALLED`).
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| StoreError::Other(Box::new(e)))?;
        Ok(Self { s3: Arc::new(s3), requests, heads: Arc::new(Kept::new(HEADS_CACHED)), http })
    }

    /// How many HTTP requests this store has sent to the S3 service so far, retries
    /// included.
    #[must_use]
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    async fn read_all(&self, upload: UploadId, ranges: &[(u64, u64)], into: &mut Vec<u8>) -> Result<(), StoreError> {
        // Owned, boxed futures: the borrow of `ranges` ends here (the writer is `Send`).
        let gets: Vec<futures_util::future::BoxFuture<'static, object_store::Result<Bytes>>> = ranges
            .iter()
            .map(|r| {
                let path = pending_path(upload, *r);
                let s3 = self.s3.clone();
                futures_util::FutureExt::boxed(async move { s3.get(&path).await?.bytes().await })
            })
            .collect();
        let mut gets = futures_util::stream::iter(gets).buffered(8);
        while let Some(b) = gets.next().await {
            into.extend_from_slice(&b.map_err(store_error)?);
        }
        Ok(())
    }

    async fn delete_paths(&self, paths: Vec<Path>) -> Result<(), StoreError> {
        if paths.is_empty() {
            return Ok(());
        }
        let stream = futures_util::stream::iter(paths.into_iter().map(Ok)).boxed();
        let mut results = self.s3.delete_stream(stream);
        let mut first = None;
        while let Some(r) = results.next().await {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    first.get_or_insert(store_error(e));
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Every object under the upload's staging folder.
    async fn staging_objects(&self, upload: UploadId) -> Result<Vec<ObjectMeta>, StoreError> {
        self.s3.list(Some(&staging_dir(upload))).try_collect().await.map_err(store_error)
    }

    async fn exists(&self, path: &Path) -> Result<bool, StoreError> {
        match self.s3.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn assemble(&self, upload: UploadId, size: u64, dest: &Path, st: &Staging) -> Result<(), StoreError> {
        if st.parted + st.pending_len() != size {
            return Err(StoreError::Other(
                format!("staging holds {} bytes, the upload {size}", st.parted + st.pending_len()).into(),
            ));
        }
        match &st.multipart {
            Some(mp) => {
                let mp = mp.clone();
                let mut parts: Vec<PartId> = st.parts.iter().map(|p| PartId { content_id: p.clone() }).collect();
                if !st.pending.is_empty() {
                    // The last part may be small.
                    let mut last = Vec::with_capacity(usize::try_from(st.pending_len()).unwrap_or(0));
                    self.read_all(upload, &st.pending, &mut last).await?;
                    let id = self.s3.put_part(dest, &mp, parts.len(), PutPayload::from(last)).await;
                    parts.push(id.map_err(write_error)?);
                }
                self.s3.complete_multipart(dest, &mp, parts).await.map_err(write_error)?;
            }
            None => match st.pending.as_slice() {
                [] => return Err(StoreError::NotFound),
                [one] => self.s3.copy(&pending_path(upload, *one), dest).await.map_err(write_error)?,
                many => {
                    let mut all = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                    self.read_all(upload, many, &mut all).await?;
                    self.s3.put(dest, PutPayload::from(all)).await.map_err(write_error)?;
                }
            },
        }
        Ok(())
    }
}

struct S3ChunkWriter {
    store: S3BlobStore,
    upload: UploadId,
    dest: Path,
    st: Staging,
    /// Objects named as garbage by the state this chunk started from.
    old_garbage: Vec<(u64, u64)>,
    /// The upload's byte just past what this chunk received so far.
    end: u64,
    /// Bytes of this chunk in neither a part nor a small object yet.
    buf: Vec<u8>,
    /// Parts being sent, oldest first, while the next one fills from the socket (at most
    /// [`IN_FLIGHT`], so memory stays under `IN_FLIGHT + 1` parts).
    in_flight: std::collections::VecDeque<InFlight>,
    /// The whole file comes in this chunk, at most [`PART`] (no multipart opened): it
    /// streams into one PUT where the blob goes.
    whole: Option<WholePut>,
    /// Where this chunk ends when it arrives whole (its announced length), so that parts
    /// of known length stream to S3 as the bytes arrive (a signed `UploadPart`), instead
    /// of being gathered first: S3 receives while the client sends. `None`: unknown, and
    /// parts are gathered in `buf`.
    chunk_end: Option<u64>,
    /// The part streaming now, if any.
    part: Option<PartStream>,
}

/// How many of a request's pieces wait for a streamed PUT to take them: the request reads
/// on while the PUT sends, and memory stays a few pieces whatever the file's size.
const PUT_QUEUE: usize = 4;

/// A PUT whose body streams through a channel (a URL object_store signs,
/// `UNSIGNED-PAYLOAD`): object_store's own `put` and `put_part` need the whole payload in
/// memory first. Its task answers the object's or part's ETag.
struct StreamedPut {
    tx: Option<tokio::sync::mpsc::Sender<std::io::Result<Bytes>>>,
    /// Until awaited (a handle is awaited once).
    task: Option<tokio::task::JoinHandle<Result<String, StoreError>>>,
}

impl StreamedPut {
    /// Starts a PUT of `len` bytes to `url`.
    fn start(store: &S3BlobStore, url: s3_http::Url, len: u64) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(PUT_QUEUE);
        let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let request =
            store.http.put(url).header(s3_http::header::CONTENT_LENGTH, len).body(s3_http::Body::wrap_stream(body));
        store.requests.fetch_add(1, Ordering::Relaxed);
        let task = tokio::spawn(async move {
            // Without its URL: a signed URL in a log would be a key to the object for
            // its lifetime.
            let answer = request.send().await.map_err(|e| StoreError::Unavailable(Box::new(e.without_url())))?;
            let status = answer.status();
            if status.is_success() {
                let etag = answer.headers().get(s3_http::header::ETAG).and_then(|v| v.to_str().ok());
                return Ok(etag.unwrap_or_default().to_owned());
            }
            // Logged by the caller, never shown: S3's error document names the bucket.
            let text = answer.text().await.unwrap_or_default();
            Err(StoreError::Unavailable(format!("S3 answered the PUT with {status}: {text}").into()))
        });
        Self { tx: Some(tx), task: Some(task) }
    }

    /// S3's answer, once (later: an error).
    async fn answer(&mut self) -> Result<String, StoreError> {
        let Some(mut task) = self.task.take() else {
            return Err(StoreError::Unavailable("the S3 PUT ended before its body".into()));
        };
        match tokio::time::timeout(STALLED, &mut task).await {
            Ok(done) => done.map_err(|e| StoreError::Other(Box::new(e)))?,
            Err(_) => {
                task.abort();
                Err(StoreError::Unavailable("the S3 service did not answer a PUT within 60 s".into()))
            }
        }
    }

    /// Sends the next piece of the body.
    async fn send(&mut self, piece: Bytes) -> Result<(), StoreError> {
        let sent = match &self.tx {
            Some(tx) => match tokio::time::timeout(STALLED, tx.send(Ok(piece))).await {
                Ok(sent) => sent.is_ok(),
                Err(_) => {
                    // S3 took nothing for that long: it is stalled, not the client.
                    self.tx = None;
                    if let Some(task) = self.task.take() {
                        task.abort();
                    }
                    return Err(StoreError::Unavailable("the S3 service took no bytes of a PUT for 60 s".into()));
                }
            },
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The PUT ended before its body did: its answer says why.
        self.tx = None;
        match self.answer().await {
            Err(e) => Err(e),
            Ok(_) => Err(StoreError::Unavailable("the S3 PUT ended before its body".into())),
        }
    }

    /// The body is complete: S3's answer.
    async fn end(mut self) -> Result<String, StoreError> {
        self.tx = None;
        self.answer().await
    }

    /// Ends the PUT short of its length: S3 keeps nothing of it.
    async fn stop(mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.try_send(Err(std::io::Error::other("the upload's chunk was abandoned")));
        }
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for StreamedPut {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A whole file streaming into one PUT where its blob goes. The request's last piece is
/// held back until `finish`: S3 has the object only once every byte came and was checked
/// (length, checksum), and a writer abandoned or dropped before that ends the PUT short,
/// which S3 refuses: no object.
struct WholePut {
    /// The file's length: the PUT's `Content-Length`.
    len: u64,
    /// Started at the first piece.
    put: Option<StreamedPut>,
    /// The latest piece, not yet sent.
    held: Option<Bytes>,
    /// A copy of the file's first bytes, for its complete to sniff.
    head: Vec<u8>,
}

/// A part of known length streaming to S3 while its bytes arrive.
struct PartStream {
    put: StreamedPut,
    /// Bytes still to send.
    left: u64,
    /// The upload's bytes `0..end` are in the parts once it lands.
    end: u64,
    /// Small objects whose bytes it carries (sent first): garbage once it lands, pending
    /// again if it stops short.
    consumed: Vec<(u64, u64)>,
    /// This chunk's pieces in it (not copied): kept as a small object when the body ends
    /// before the part (a tus PATCH that broke off keeps what arrived).
    kept: Vec<Bytes>,
}

/// Parts of one chunk on their way while the next fills from the socket. One: receiving
/// and hashing overlap the sending. Two measured no faster on 2 cores (`bench/s3.sh`:
/// 75 against 76 MB/s) for a third part of memory.
const IN_FLIGHT: usize = 1;

/// A part on its way: recorded in the state only once S3 has it.
struct InFlight {
    /// The upload's bytes `0..end` are in the parts once it lands.
    end: u64,
    /// Small objects whose bytes it carries: garbage once it lands.
    consumed: Vec<(u64, u64)>,
    /// The part's ETag, once S3 has it.
    task: tokio::task::JoinHandle<Result<String, StoreError>>,
}

impl S3ChunkWriter {
    /// Starts sending the small objects and `buf` as the next part, once fewer than
    /// [`IN_FLIGHT`] parts are on their way.
    async fn send_part(&mut self) -> Result<(), StoreError> {
        if self.in_flight.len() >= IN_FLIGHT {
            self.land_oldest().await?;
        }
        let Some(mp) = self.st.multipart.clone() else {
            return Err(StoreError::Other("no multipart upload to send a part to".into()));
        };
        let buf = std::mem::take(&mut self.buf);
        let payload = if self.st.pending.is_empty() {
            PutPayload::from(buf)
        } else {
            let mut all = Vec::with_capacity(usize::try_from(self.st.pending_len()).unwrap_or(0) + buf.len());
            self.store.read_all(self.upload, &self.st.pending, &mut all).await?;
            PutPayload::from_iter([Bytes::from(all), Bytes::from(buf)])
        };
        let (s3, dest) = (self.store.s3.clone(), self.dest.clone());
        let index = self.st.parts.len() + self.in_flight.len();
        let task = tokio::spawn(async move {
            s3.put_part(&dest, &mp, index, payload).await.map(|id| id.content_id).map_err(write_error)
        });
        self.in_flight.push_back(InFlight { end: self.end, consumed: std::mem::take(&mut self.st.pending), task });
        Ok(())
    }

    /// Starts streaming the next part, of `len` bytes: the small objects first (read back),
    /// then this chunk's bytes as they come.
    async fn start_part(&mut self, len: u64) -> Result<(), StoreError> {
        if self.in_flight.len() >= IN_FLIGHT {
            self.land_oldest().await?;
        }
        let Some(mp) = self.st.multipart.clone() else {
            return Err(StoreError::Other("no multipart upload to send a part to".into()));
        };
        let index = self.st.parts.len() + self.in_flight.len();
        let options = object_store::signer::SignedUrlOptions::default()
            .with_query([("partNumber", (index + 1).to_string()), ("uploadId", mp)]);
        let url = self.store.s3.signed_url_opts(s3_http::Method::PUT, &self.dest, SIGNED_FOR, &options).await;
        let mut put = StreamedPut::start(&self.store, url.map_err(write_error)?, len);
        let consumed = std::mem::take(&mut self.st.pending);
        let carried: u64 = consumed.iter().map(|(a, b)| b - a).sum();
        if carried > 0 {
            let mut earlier = Vec::with_capacity(usize::try_from(carried).unwrap_or(0));
            if let Err(e) = self.store.read_all(self.upload, &consumed, &mut earlier).await {
                self.st.pending = consumed;
                put.stop().await;
                return Err(e);
            }
            if let Err(e) = put.send(Bytes::from(earlier)).await {
                self.st.pending = consumed;
                return Err(e);
            }
        }
        let end = self.end + (len - carried);
        self.part = Some(PartStream { put, left: len - carried, end, consumed, kept: Vec::new() });
        Ok(())
    }

    /// Streams this chunk's `bytes` into parts of known length, cut as the chunk allows;
    /// what no part takes (a tail under the part minimum) gathers in `buf`.
    async fn stream_parts(&mut self, mut bytes: Bytes, chunk_end: u64) -> Result<(), StoreError> {
        while !bytes.is_empty() {
            if self.part.is_none() {
                // The small objects (all of them go into the next part, whatever their
                // size), then this chunk's bytes still to come, up to a part.
                let (carried, coming) = (self.st.pending_len(), chunk_end.saturating_sub(self.end));
                if !self.buf.is_empty() || carried + coming < MIN_PART {
                    break;
                }
                self.start_part(carried + coming.min(PART.saturating_sub(carried))).await?;
            }
            let Some(part) = self.part.as_mut() else { break };
            if part.left > 0 {
                let n = usize::try_from(part.left).unwrap_or(usize::MAX).min(bytes.len());
                let piece = bytes.split_to(n);
                part.left -= n as u64;
                part.kept.push(piece.clone());
                self.end += n as u64;
                if let Err(e) = part.put.send(piece).await {
                    // The PUT failed before its part was whole (S3 gave up on a client
                    // that paused longer than its idle timeout, a dropped connection):
                    // this chunk goes on gathering its parts, from the pieces kept.
                    tracing::info!(upload = %self.upload, error = %e, "a streamed part failed; gathering this chunk instead");
                    self.stop_part().await;
                    self.chunk_end = None;
                    return self.gather(bytes).await;
                }
            }
            if part.left == 0 {
                if let Some(done) = self.part.take() {
                    let task = tokio::spawn(async move {
                        // CompleteMultipartUpload names each part by its ETag.
                        let etag = done.put.end().await?;
                        if etag.is_empty() {
                            return Err(StoreError::Unavailable("S3 answered a part without its ETag".into()));
                        }
                        Ok(etag)
                    });
                    self.in_flight.push_back(InFlight { end: done.end, consumed: done.consumed, task });
                }
            }
        }
        if !bytes.is_empty() {
            self.buf.extend_from_slice(&bytes);
            self.end += bytes.len() as u64;
        }
        Ok(())
    }

    /// Gathers `bytes` in `buf`, sending a part once there is one (a chunk of unknown
    /// length).
    async fn gather(&mut self, bytes: Bytes) -> Result<(), StoreError> {
        if self.buf.capacity() == 0 && self.st.multipart.is_some() {
            // One allocation per part, not a doubling series: the allocator reuses it.
            self.buf.reserve_exact(usize::try_from(PART).unwrap_or(0));
        }
        self.buf.extend_from_slice(&bytes);
        self.end += bytes.len() as u64;
        if self.st.multipart.is_some() && self.st.pending_len() + self.buf.len() as u64 >= PART {
            self.send_part().await?;
        }
        Ok(())
    }

    /// A part that stopped short (the body ended before it): S3 keeps nothing of it, its
    /// small objects are pending again and this chunk's bytes in it gather in `buf`.
    async fn stop_part(&mut self) {
        if let Some(part) = self.part.take() {
            part.put.stop().await;
            let mut pending = part.consumed;
            pending.append(&mut self.st.pending);
            self.st.pending = pending;
            let kept: usize = part.kept.iter().map(Bytes::len).sum();
            let mut buf = Vec::with_capacity(kept + self.buf.len());
            for p in &part.kept {
                buf.extend_from_slice(p);
            }
            buf.append(&mut self.buf);
            self.buf = buf;
        }
    }

    /// Waits for the oldest part in flight, if any, and records it in the state.
    async fn land_oldest(&mut self) -> Result<(), StoreError> {
        let Some(part) = self.in_flight.front_mut() else { return Ok(()) };
        let id = (&mut part.task).await.map_err(|e| StoreError::Other(Box::new(e)))??;
        let Some(part) = self.in_flight.pop_front() else { return Ok(()) };
        self.st.parts.push(id);
        self.st.parted = part.end;
        self.st.garbage.extend(part.consumed);
        Ok(())
    }

    /// Waits for every part in flight, in order.
    async fn land(&mut self) -> Result<(), StoreError> {
        while !self.in_flight.is_empty() {
            self.land_oldest().await?;
        }
        Ok(())
    }

    /// Sends `piece` into the whole file's PUT, starting the PUT at the first one.
    async fn send_whole(&mut self, piece: Bytes) -> Result<(), StoreError> {
        let Some(w) = self.whole.as_mut() else { return Ok(()) };
        if w.put.is_none() {
            let url = self.store.s3.signed_url(s3_http::Method::PUT, &self.dest, SIGNED_FOR).await;
            w.put = Some(StreamedPut::start(&self.store, url.map_err(write_error)?, w.len));
        }
        match w.put.as_mut() {
            Some(put) => put.send(piece).await,
            None => Ok(()),
        }
    }
}

/// A streamed PUT whose S3 service takes no bytes, or does not answer once the body is
/// sent, for this long has failed (its client may send as slowly as it likes).
const STALLED: Duration = Duration::from_secs(60);

/// How long a signed URL for a streamed PUT stays valid (it is used at once).
const SIGNED_FOR: Duration = Duration::from_secs(900);

impl Drop for S3ChunkWriter {
    /// A chunk that failed or was cancelled stops its part: the state it started from
    /// stays true, and a retry sends that part again. A streamed PUT stops short (its
    /// own drop).
    fn drop(&mut self) {
        for part in &self.in_flight {
            part.task.abort();
        }
    }
}

#[async_trait]
impl ChunkWriter for S3ChunkWriter {
    async fn write(&mut self, bytes: Bytes) -> Result<(), StoreError> {
        if let Some(w) = self.whole.as_mut() {
            self.end += bytes.len() as u64;
            let room = HEAD_CACHED.saturating_sub(w.head.len());
            w.head.extend_from_slice(&bytes[..bytes.len().min(room)]);
            if let Some(earlier) = w.held.replace(bytes) {
                self.send_whole(earlier).await?;
            }
            return Ok(());
        }
        if let (Some(chunk_end), Some(_)) = (self.chunk_end, &self.st.multipart) {
            return self.stream_parts(bytes, chunk_end).await;
        }
        self.gather(bytes).await
    }

    async fn finish(&mut self) -> Result<Option<String>, StoreError> {
        if let Some((len, end)) = self.whole.as_ref().map(|w| (w.len, self.end)).filter(|(len, end)| len != end) {
            // A body that broke off (a tus PATCH keeps what arrived where it can): the PUT
            // never ends, so nothing of it is kept; the client sends the file again.
            self.abandon().await;
            return Err(StoreError::Body(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the file's body ended after {end} of its {len} bytes"),
            )));
        }
        if let Some(last) = self.whole.as_mut().map(|w| w.held.take()) {
            // Every byte came and was checked: the last piece ends the PUT's body. Until
            // the upload's row records this state, gc sees a blob no row names, an orphan
            // it removes (the upload's own key, never another's).
            self.send_whole(last.unwrap_or_default()).await?;
            let Some(w) = self.whole.take() else { return Ok(None) };
            if let Some(put) = w.put {
                put.end().await?;
            }
            self.store.heads.put(self.upload, Bytes::from(w.head));
            self.st.parted = self.end;
            self.st.whole = true;
            return self.st.to_json().map(Some);
        }
        // The body ended before the part it was streaming into (a tus PATCH that broke
        // off): what arrived is kept below, as bytes not in a part.
        self.stop_part().await;
        self.land().await?;
        if !self.buf.is_empty() {
            if self.st.multipart.is_some() && self.st.pending.is_empty() && self.buf.len() as u64 >= MIN_PART {
                self.send_part().await?;
                self.land().await?;
            } else {
                let range = (self.end - self.buf.len() as u64, self.end);
                let buf = std::mem::take(&mut self.buf);
                let path = pending_path(self.upload, range);
                self.store.s3.put(&path, PutPayload::from(buf)).await.map_err(write_error)?;
                self.st.pending.push(range);
            }
        }
        // Garbage of the state this chunk started from is named by no state any more.
        let old: Vec<Path> = self.old_garbage.iter().map(|r| pending_path(self.upload, *r)).collect();
        if self.store.delete_paths(old).await.is_ok() {
            let done = std::mem::take(&mut self.old_garbage);
            self.st.garbage.retain(|r| !done.contains(r));
        }
        self.st.to_json().map(Some)
    }

    async fn abandon(&mut self) {
        // A part still on its way is stopped, or has landed; either way no retry's part
        // is overwritten after this (a retry records the ETag S3 gives it).
        for part in self.in_flight.drain(..) {
            part.task.abort();
            let _ = part.task.await;
        }
        if let Some(part) = self.part.take() {
            part.put.stop().await;
        }
        // A whole file's PUT ends short (its last piece was held back): S3 keeps nothing.
        if let Some(put) = self.whole.take().and_then(|w| w.put) {
            put.stop().await;
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn prepare_staging(
        &self,
        upload: UploadId,
        staging: Option<String>,
        len: Option<u64>,
        whole: bool,
    ) -> Result<Option<String>, StoreError> {
        let mut st = Staging::parse(staging.as_deref())?;
        if whole && staging.is_none() && len.is_some_and(|l| l <= PART) {
            // Put in one request at the end (the whole file fits a part's memory).
            return Ok(None);
        }
        // A multipart upload is opened once a part can be made; a chunk of unknown length
        // is kept as one small object (it is at most the chunk limit).
        let enough = st.pending_len() >= MIN_PART || len.is_some_and(|l| st.pending_len() + l >= MIN_PART);
        if st.multipart.is_some() || !enough {
            return Ok(None);
        }
        let mp = self.s3.create_multipart(&upload_blob_path(upload)?).await.map_err(write_error)?;
        st.multipart = Some(mp);
        st.to_json().map(Some)
    }

    async fn staging_writer(
        &self,
        upload: UploadId,
        offset: u64,
        staging: Option<String>,
        size: WriteSize,
    ) -> Result<Box<dyn ChunkWriter>, StoreError> {
        let st = Staging::parse(staging.as_deref())?;
        if st.parted + st.pending_len() != offset {
            return Err(StoreError::Other(format!("staging does not end at offset {offset}").into()));
        }
        if st.whole {
            return Err(StoreError::Other("the upload's bytes were all written".into()));
        }
        // A whole file of at most a part (no multipart was opened for it) goes in one PUT;
        // a larger one streams into its multipart upload as any chunk does.
        let whole = size
            .len
            .filter(|len| size.whole && *len <= PART && offset == 0 && st.multipart.is_none() && st.pending.is_empty());
        let old_garbage = st.garbage.clone();
        Ok(Box::new(S3ChunkWriter {
            store: self.clone(),
            upload,
            dest: upload_blob_path(upload)?,
            st,
            old_garbage,
            end: offset,
            buf: Vec::new(),
            in_flight: std::collections::VecDeque::with_capacity(IN_FLIGHT),
            chunk_end: size.len.map(|len| offset + len),
            part: None,
            whole: whole.map(|len| WholePut {
                len,
                put: None,
                held: None,
                head: Vec::with_capacity(usize::try_from(len).map_or(HEAD_CACHED, |n| n.min(HEAD_CACHED))),
            }),
        }))
    }

    async fn commit_staging(
        &self,
        upload: UploadId,
        size: u64,
        key: &str,
        staging: Option<String>,
        head: usize,
    ) -> Result<Vec<u8>, StoreError> {
        let dest = blob_path(key)?;
        let st = Staging::parse(staging.as_deref())?;
        if st.multipart.is_some() && dest != upload_blob_path(upload)? {
            return Err(StoreError::Other("a multipart upload completes only into its upload's blob".into()));
        }
        if st.whole {
            // Put whole where its blob goes already: nothing to move or remove.
            if dest != upload_blob_path(upload)? || st.parted != size {
                return Err(StoreError::Other("a file put whole completes only as itself".into()));
            }
            if let Some(cached) = self.heads.take(&upload) {
                if cached.len() >= head || cached.len() as u64 == size {
                    return Ok(cached[..head.min(cached.len())].to_vec());
                }
            }
            return self.read_head(key, head).await;
        }
        // No HEAD first (one request less per file): assembling again is harmless, and
        // when it fails the blob may be there already: committed before, its answer lost
        // (a retried `CompleteMultipartUpload` finds no upload, a copy no pending object).
        // Completes of one upload never run at once: the domain holds the upload's lease.
        if let Err(e) = self.assemble(upload, size, &dest, &st).await {
            if !self.exists(&dest).await? {
                return Err(e);
            }
        }
        // The small objects the state names; no listing (one request less per file).
        // Others (a failed chunk's object it never recorded) are stray once the upload is
        // completed: gc's stray staging sweep takes them.
        let small = st.pending.iter().chain(&st.garbage).map(|r| pending_path(upload, *r)).collect();
        self.delete_paths(small).await?;
        // The parts were not readable before the blob was assembled.
        self.read_head(key, head).await
    }

    async fn delete_staging(&self, upload: UploadId, staging: Option<String>) -> Result<u64, StoreError> {
        let st = Staging::parse(staging.as_deref())?;
        let mut freed = 0;
        if st.whole {
            // An upload put whole and never completed (abandoned, expired): its bytes are
            // where its blob would have gone.
            self.heads.take(&upload);
            match self.s3.delete(&upload_blob_path(upload)?).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => freed += st.parted,
                Err(e) => return Err(store_error(e)),
            }
        }
        if let Some(mp) = &st.multipart {
            match self.s3.abort_multipart(&upload_blob_path(upload)?, mp).await {
                Ok(()) => freed += st.parted,
                // Gone already (aborted or completed before). Servers say so differently:
                // 404 NoSuchUpload (AWS, MinIO), 403 (s3s-fs). A real permission problem
                // fails the listing below too, and the row is kept for the next gc.
                Err(object_store::Error::NotFound { .. } | object_store::Error::PermissionDenied { .. }) => {}
                Err(e) if format!("{e}").contains("NoSuchUpload") => {}
                Err(e) => return Err(store_error(e)),
            }
        }
        // Every small object (pending or garbage) lives under the upload's folder.
        let objects = self.staging_objects(upload).await?;
        freed += objects.iter().map(|m| m.size).sum::<u64>();
        self.delete_paths(objects.into_iter().map(|m| m.location).collect()).await?;
        Ok(freed)
    }

    async fn read(&self, key: &str, range: Option<(u64, u64)>) -> Result<ByteStream, StoreError> {
        let opts = GetOptions {
            range: range.map(|(start, len)| GetRange::Bounded(start..start + len)),
            ..GetOptions::default()
        };
        let got = self.s3.get_opts(&blob_path(key)?, opts).await.map_err(store_error)?;
        Ok(Box::pin(got.into_stream().map_err(std::io::Error::other)))
    }

    async fn local_file(&self, key: &str) -> Result<LocalFile, StoreError> {
        use tokio::io::AsyncWriteExt;
        // A temporary copy (removed with the LocalFile): a program reading files, ffmpeg,
        // gets a file it can seek in and never a network address.
        let got = self.s3.get(&blob_path(key)?).await.map_err(store_error)?;
        let temp =
            tempfile::Builder::new().prefix("mediabox-blob-").tempfile().map_err(|e| StoreError::Other(Box::new(e)))?;
        let mut file = tokio::fs::File::from_std(temp.reopen().map_err(|e| StoreError::Other(Box::new(e)))?);
        let mut body = got.into_stream();
        while let Some(piece) = body.next().await {
            file.write_all(&piece.map_err(store_error)?).await.map_err(|e| StoreError::Other(Box::new(e)))?;
        }
        file.flush().await.map_err(|e| StoreError::Other(Box::new(e)))?;
        Ok(LocalFile::temporary(temp.path().to_owned(), temp))
    }

    async fn put_blob(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        // One PUT: S3 shows a whole object or none.
        self.s3.put(&blob_path(key)?, bytes.into()).await.map(|_| ()).map_err(write_error)
    }

    async fn delete_blob(&self, key: &str) -> Result<(), StoreError> {
        match self.s3.delete(&blob_path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn delete_blobs(&self, keys: &[String]) -> Result<(), StoreError> {
        let paths = keys.iter().map(|k| blob_path(k)).collect::<Result<Vec<_>, _>>()?;
        self.delete_paths(paths).await
    }

    async fn list_staging(&self) -> Result<Vec<(UploadId, DateTime<Utc>)>, StoreError> {
        let mut latest: std::collections::HashMap<UploadId, DateTime<Utc>> = std::collections::HashMap::new();
        let mut objects = self.s3.list(Some(&Path::from("staging")));
        while let Some(meta) = objects.next().await {
            let meta = meta.map_err(store_error)?;
            let Some(id) = meta.location.parts().nth(1).and_then(|p| uuid::Uuid::parse_str(p.as_ref()).ok()) else {
                continue;
            };
            let t = latest.entry(UploadId::from_uuid(id)).or_insert(meta.last_modified);
            *t = (*t).max(meta.last_modified);
        }
        Ok(latest.into_iter().collect())
    }

    async fn list_blobs(&self) -> Result<Vec<StoredBlob>, StoreError> {
        let mut out = Vec::new();
        let mut objects = self.s3.list(Some(&Path::from("blobs")));
        while let Some(meta) = objects.next().await {
            let meta = meta.map_err(store_error)?;
            if let Some(name) = meta.location.filename().filter(|n| valid_key(n).is_ok()) {
                out.push(StoredBlob { key: name.to_owned(), size: meta.size, modified: meta.last_modified });
            }
        }
        Ok(out)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // A listing (not a HEAD, whose 404 cannot tell a missing object from a missing
        // bucket) shows that the bucket exists and the credentials work.
        match self.s3.list_with_delimiter(Some(&Path::from("mediabox-readiness-probe"))).await {
            Ok(_) => Ok(()),
            Err(e) => Err(StoreError::Unavailable(Box::new(e))),
        }
    }
}
