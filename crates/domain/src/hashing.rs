//! SHA-256 and MD5 computed while bytes stream, with midstates that serialize into the
//! upload's row after every chunk, so any instance can take the next chunk and complete
//! never re-reads the file.

use bytes::Bytes;
use md5::Md5;
use sha2::digest::common::hazmat::SerializableState;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Both running digests of one upload.
#[derive(Clone, Default)]
pub struct Hashes {
    sha256: Sha256,
    md5: Md5,
}

/// A stored midstate could not be read back (corrupt or from another format).
#[derive(Debug, thiserror::Error)]
#[error("stored hash state is invalid")]
pub struct BadHashState;

impl Hashes {
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        self.md5.update(bytes);
    }

    /// The midstates as bytes: (sha256, md5).
    #[must_use]
    pub fn to_state(&self) -> (Vec<u8>, Vec<u8>) {
        (self.sha256.serialize().to_vec(), self.md5.serialize().to_vec())
    }

    /// # Errors
    /// [`BadHashState`] when either state has the wrong length or content.
    pub fn from_state(sha256: &[u8], md5: &[u8]) -> Result<Self, BadHashState> {
        let s = sha256.try_into().map_err(|_| BadHashState)?;
        let m = md5.try_into().map_err(|_| BadHashState)?;
        Ok(Self {
            sha256: Sha256::deserialize(s).map_err(|_| BadHashState)?,
            md5: Md5::deserialize(m).map_err(|_| BadHashState)?,
        })
    }

    /// Lower-case hex digests: (sha256, md5).
    #[must_use]
    pub fn finish(self) -> (String, String) {
        (hex::encode(self.sha256.finalize()), hex::encode(self.md5.finalize()))
    }
}

/// Chunks at least this long have their MD5 on a thread of its own; shorter ones are
/// hashed inline, where starting a thread would cost more than it saves.
pub const PARALLEL_MIN: u64 = 1 << 20;

/// Pieces go to MD5's thread in batches of about this many bytes (shared with the
/// writer, not copied): one wake-up per batch, not per socket read.
const BATCH: usize = 256 << 10;

/// Batches queued for MD5 before the stream waits for it: at most about 1 MiB
/// held for hashing. The answer to a chunk waits for MD5 to drain this queue while the
/// socket is idle, so a short queue keeps that wait short (16 batches: 392 MB/s on a
/// 1 GiB upload without syncs, 4: 410, means of 3-4 runs on the 2-core bench machine).
const QUEUE: usize = 4;

type Batch = std::sync::Arc<Vec<Bytes>>;

/// A hashing thread panicked.
#[derive(Debug, thiserror::Error)]
#[error("hashing failed")]
pub struct HashingFailed;

/// Both digests of one chunk as it streams: inline for a small chunk; for a large one,
/// MD5 (the slower, about 540 MB/s a core here) on a blocking thread of its own and
/// SHA-256 (about 1.5 GB/s with SHA-NI) inline as pieces arrive, so that a large chunk
/// costs MD5, not the sum of both. SHA-256 had a thread of its own too until 2026-12:
/// one more thread runnable on two cores preempted MD5 and the socket reader, and
/// inline it is faster (1 GiB in 16 MiB chunks without syncs: 398 against 377 MB/s,
/// five alternating pairs; with syncs 396 against 375, two pairs).
pub enum StreamHasher {
    Inline(Hashes),
    Parallel { sha256: Sha256, md5: Feed<Md5>, batch: Vec<Bytes>, batched: usize },
}

/// What a digest's thread is sent: bytes, or a request for its state so far.
enum Message<D> {
    Batch(Batch),
    Checkpoint(tokio::sync::oneshot::Sender<D>),
}

/// One digest on its thread, and the queue into it.
pub struct Feed<D> {
    queue: mpsc::Sender<Message<D>>,
    thread: JoinHandle<D>,
}

fn feed<D: Digest + Clone + Send + 'static>(mut digest: D) -> Feed<D> {
    let (queue, mut rx) = mpsc::channel::<Message<D>>(QUEUE);
    let thread = tokio::task::spawn_blocking(move || {
        while let Some(message) = rx.blocking_recv() {
            match message {
                Message::Batch(batch) => batch.iter().for_each(|b| digest.update(b)),
                Message::Checkpoint(answer) => drop(answer.send(digest.clone())),
            }
        }
        digest
    });
    Feed { queue, thread }
}

/// Sends the batch gathered so far to MD5's thread.
async fn flush(md5: &Feed<Md5>, batch: &mut Vec<Bytes>, batched: &mut usize) {
    if batch.is_empty() {
        return;
    }
    let full: Batch = std::sync::Arc::new(std::mem::take(batch));
    *batched = 0;
    // A send fails only when its thread is gone (panicked): `finish` says so.
    let _ = md5.queue.send(Message::Batch(full)).await;
}

/// Both digests' state at a point of the stream, ready once MD5's thread has reached it
/// (see [`StreamHasher::checkpoint`]).
pub enum Checkpoint {
    Ready(Hashes),
    Pending { sha256: Sha256, md5: tokio::sync::oneshot::Receiver<Md5> },
}

impl Checkpoint {
    /// # Errors
    /// [`HashingFailed`] when MD5's thread is gone.
    pub async fn hashes(self) -> Result<Hashes, HashingFailed> {
        match self {
            Self::Ready(h) => Ok(h),
            Self::Pending { sha256, md5 } => Ok(Hashes { sha256, md5: md5.await.map_err(|_| HashingFailed)? }),
        }
    }
}

impl StreamHasher {
    /// Continues `hashes` over a chunk of `len` bytes (`None`: unknown).
    #[must_use]
    pub fn start(hashes: Hashes, len: Option<u64>) -> Self {
        if len.is_some_and(|l| l >= PARALLEL_MIN) {
            Self::Parallel { sha256: hashes.sha256, md5: feed(hashes.md5), batch: Vec::new(), batched: 0 }
        } else {
            Self::Inline(hashes)
        }
    }

    /// Hashes the next piece (waits only when a digest is a queue behind).
    pub async fn update(&mut self, piece: &Bytes) {
        match self {
            Self::Inline(h) => h.update(piece),
            Self::Parallel { sha256, md5, batch, batched } => {
                sha256.update(piece);
                batch.push(piece.clone());
                *batched += piece.len();
                if *batched >= BATCH {
                    flush(md5, batch, batched).await;
                }
            }
        }
    }

    /// The state of both digests after the pieces given so far, without waiting for MD5's
    /// thread: hashing goes on with the next pieces while the checkpoint is awaited.
    pub async fn checkpoint(&mut self) -> Checkpoint {
        match self {
            Self::Inline(h) => Checkpoint::Ready(h.clone()),
            Self::Parallel { sha256, md5, batch, batched } => {
                flush(md5, batch, batched).await;
                let (tx, rx) = tokio::sync::oneshot::channel();
                let _ = md5.queue.send(Message::Checkpoint(tx)).await;
                Checkpoint::Pending { sha256: sha256.clone(), md5: rx }
            }
        }
    }

    /// Both digests, once every piece is hashed.
    ///
    /// # Errors
    /// [`HashingFailed`] when a hashing thread panicked.
    pub async fn finish(self) -> Result<Hashes, HashingFailed> {
        match self {
            Self::Inline(h) => Ok(h),
            Self::Parallel { sha256, md5, mut batch, mut batched } => {
                flush(&md5, &mut batch, &mut batched).await;
                drop(md5.queue);
                Ok(Hashes { sha256, md5: md5.thread.await.map_err(|_| HashingFailed)? })
            }
        }
    }
}

/// An algorithm a client may name for the digest of one request's bytes (tus
/// `Upload-Checksum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Sha1,
    Md5,
    Sha256,
}

impl DigestAlgorithm {
    /// The name tus uses for it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Md5 => "md5",
            Self::Sha256 => "sha256",
        }
    }

    /// The algorithm tus names `name`, if it is one of ours.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Sha1, Self::Md5, Self::Sha256].into_iter().find(|a| a.as_str() == name)
    }
}

/// The digest of one request's bytes, computed as they stream (apart from the upload's
/// own running digests, which span every request).
#[derive(Clone)]
pub enum BodyDigest {
    Sha1(sha1::Sha1),
    Md5(Md5),
    Sha256(Sha256),
}

impl BodyDigest {
    #[must_use]
    pub fn new(algorithm: DigestAlgorithm) -> Self {
        match algorithm {
            DigestAlgorithm::Sha1 => Self::Sha1(sha1::Sha1::new()),
            DigestAlgorithm::Md5 => Self::Md5(Md5::new()),
            DigestAlgorithm::Sha256 => Self::Sha256(Sha256::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha1(d) => d.update(bytes),
            Self::Md5(d) => d.update(bytes),
            Self::Sha256(d) => d.update(bytes),
        }
    }

    /// The raw digest bytes.
    #[must_use]
    pub fn finish(self) -> Vec<u8> {
        match self {
            Self::Sha1(d) => d.finalize().to_vec(),
            Self::Md5(d) => d.finalize().to_vec(),
            Self::Sha256(d) => d.finalize().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_resumed_from_its_state_equals_one_computed_at_once() -> Result<(), BadHashState> {
        let mut a = Hashes::default();
        a.update(b"hello ");
        let (s, m) = a.to_state();
        let mut b = Hashes::from_state(&s, &m)?;
        b.update(b"world");
        let (sha, md5) = b.finish();
        assert_eq!(sha, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
        assert_eq!(md5, "5eb63bbbe01eeed093cb22bb8f5acdc3");
        Ok(())
    }

    #[tokio::test]
    async fn hashing_on_threads_equals_hashing_inline() -> Result<(), HashingFailed> {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 257) as u8).collect();
        let mut first = Hashes::default();
        first.update(b"earlier chunk");
        let mut each = Vec::new();
        for len in [Some(10), Some(PARALLEL_MIN), None] {
            let mut h = StreamHasher::start(first.clone(), len);
            assert_eq!(matches!(h, StreamHasher::Parallel { .. }), len == Some(PARALLEL_MIN));
            for piece in data.chunks(65_521) {
                h.update(&Bytes::copy_from_slice(piece)).await;
            }
            each.push(h.finish().await?.finish());
        }
        let mut all = b"earlier chunk".to_vec();
        all.extend_from_slice(&data);
        let whole = (hex::encode(Sha256::digest(&all)), hex::encode(Md5::digest(&all)));
        assert!(each.iter().all(|d| *d == whole), "{each:?} vs {whole:?}");
        Ok(())
    }

    #[tokio::test]
    async fn a_checkpoint_is_the_state_at_its_point_while_hashing_goes_on() -> Result<(), HashingFailed> {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (a, b) = data.split_at(1_234_567);
        for len in [None, Some(PARALLEL_MIN)] {
            let mut h = StreamHasher::start(Hashes::default(), len);
            h.update(&Bytes::copy_from_slice(a)).await;
            let at_a = h.checkpoint().await;
            h.update(&Bytes::copy_from_slice(b)).await;
            let mut expect_a = Hashes::default();
            expect_a.update(a);
            assert_eq!(at_a.hashes().await?.finish(), expect_a.finish(), "{len:?}");
            let mut whole = Hashes::default();
            whole.update(&data);
            assert_eq!(h.finish().await?.finish(), whole.finish(), "{len:?}");
        }
        Ok(())
    }

    #[test]
    fn body_digests_match_the_known_values_of_each_algorithm() {
        let known = [
            (DigestAlgorithm::Sha1, "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed"),
            (DigestAlgorithm::Md5, "5eb63bbbe01eeed093cb22bb8f5acdc3"),
            (DigestAlgorithm::Sha256, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"),
        ];
        for (algorithm, hex_digest) in known {
            let mut d = BodyDigest::new(algorithm);
            d.update(b"hello ");
            d.update(b"world");
            assert_eq!(hex::encode(d.finish()), hex_digest, "{algorithm:?}");
            assert_eq!(DigestAlgorithm::parse(algorithm.as_str()), Some(algorithm));
        }
        assert_eq!(DigestAlgorithm::parse("crc32"), None);
    }

    #[test]
    fn a_truncated_state_is_refused() {
        let (s, m) = Hashes::default().to_state();
        assert!(Hashes::from_state(&s[1..], &m).is_err());
    }
}
