//! The filesystem blob store.
//!
//! Layout under the root: `staging/<upload id>` holds an upload's bytes while chunks
//! arrive (each chunk written at its offset); `blobs/ab/<key>` holds committed blobs (`ab`:
//! the key's first two hex digits, so 256 folders, each made once). Blobs stored before
//! 2026-12 live one level deeper, at `blobs/ab/cd/<key>`: reads and deletes look there
//! too, and nothing needs moving. Committing is a rename on the same filesystem, so a
//! blob appears whole or not at all; no path is ever built from a client's file name.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use mediabox_domain::ports::{BlobStore, ByteStream, ChunkWriter, LocalFile, StoredBlob, WriteSize};
use mediabox_domain::{StoreError, UploadId};
use tokio::fs::{self, File};
use tokio::io::AsyncReadExt;

const READ_BUF: usize = 64 * 1024;

/// Blobs under one directory.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
    /// Whether written bytes are synced before they are acknowledged (`MEDIABOX_FSYNC`).
    fsync: bool,
}

fn other(e: std::io::Error) -> StoreError {
    if e.kind() == std::io::ErrorKind::NotFound {
        StoreError::NotFound
    } else {
        StoreError::Other(Box::new(e))
    }
}

fn lower_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A blob key: an upload id (32 hex digits), or as made before, a SHA-256 in hex
/// optionally followed by `-` and an upload id; either may be followed by `.thumb` or
/// `.preview` (a rendition of it). Never a path from outside.
pub(crate) fn valid_key(key: &str) -> Result<&str, StoreError> {
    let hex_of = |s: &str, n: usize| s.len() == n && lower_hex(s);
    let owner = mediabox_domain::rendition::owner_key(key);
    let ok = match owner.split_once('-') {
        Some((sha, upload)) => hex_of(sha, 64) && hex_of(upload, 32),
        None => hex_of(owner, 32) || hex_of(owner, 64),
    };
    if ok {
        Ok(key)
    } else {
        Err(StoreError::Other("not a blob key".into()))
    }
}

impl FsBlobStore {
    /// A store rooted at `root`, creating its directories.
    ///
    /// # Errors
    /// When the directories cannot be created.
    pub async fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(root.join("staging")).await?;
        fs::create_dir_all(root.join("blobs")).await?;
        Ok(Self { root, fsync: true })
    }

    /// Whether bytes are synced to disk before a chunk or complete is acknowledged
    /// (default: yes). Without, a machine crash can lose acknowledged bytes: the next
    /// chunk or complete of such an upload fails with [`StoreError::Lost`].
    #[must_use]
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.fsync = fsync;
        self
    }

    fn staging_path(&self, upload: UploadId) -> PathBuf {
        self.root.join("staging").join(upload.to_string())
    }

    /// Where blob `key` is stored now.
    ///
    /// # Errors
    /// When `key` is not a blob key (never a path from outside).
    pub fn blob_path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let key = valid_key(key)?;
        Ok(self.root.join("blobs").join(&key[0..2]).join(key))
    }

    /// Where blob `key` was stored before 2026-12 (one more folder level: a new blob made a
    /// new folder for most of the first tens of thousands).
    ///
    /// # Errors
    /// When `key` is not a blob key.
    pub fn legacy_blob_path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let key = valid_key(key)?;
        Ok(self.root.join("blobs").join(&key[0..2]).join(&key[2..4]).join(key))
    }

    /// Both places blob `key` may be, the current one first.
    fn blob_places(&self, key: &str) -> Result<[PathBuf; 2], StoreError> {
        Ok([self.blob_path(key)?, self.legacy_blob_path(key)?])
    }

    /// Whether the upload still has staging bytes.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn staging_exists(&self, upload: UploadId) -> Result<bool, StoreError> {
        fs::try_exists(self.staging_path(upload)).await.map_err(other)
    }
}

/// Bytes are written from a blocking thread in batches of about this size, one batch in
/// flight while the next gathers from the socket; the pieces are the request's own, not
/// copied.
const WRITE_BATCH: usize = 1 << 20;

struct FsChunkWriter {
    /// The file, while no batch is being written (the writing thread holds it then).
    sink: Option<Sink>,
    in_flight: Option<tokio::task::JoinHandle<std::io::Result<Sink>>>,
    batch: Vec<Bytes>,
    batched: usize,
    fsync: bool,
    /// The staging directory, when this chunk made the file: its entry is synced too.
    made_in: Option<PathBuf>,
}

/// A chunk's staging file and where its next byte goes, handed between the writer and
/// its blocking thread.
struct Sink {
    file: std::fs::File,
    path: PathBuf,
    pos: u64,
    /// Large chunks only: set by the first batch (see [`Direct`]).
    mode: Mode,
}

enum Mode {
    /// Not decided yet: nothing written.
    Open,
    /// Through the page cache.
    Buffered,
    Direct(Direct),
}

/// Direct writes for a large chunk (at least [`WRITE_BATCH`]: its first batch filled):
/// `O_DIRECT` from one reused, aligned buffer, past the page cache. On this machine kind
/// (a VM whose host takes freed memory back), writing a large file through the page cache
/// touches memory the host must map again first: `dd bs=16M` into a new file ran at 232
/// MB/s to 2.6 GB/s depending on which pages it got, `oflag=direct` at 1.2-1.6 GB/s every
/// time. Every byte of the chunk goes direct: a partial block before it is read back and
/// written again whole, so that no part of the chunk sits in the page cache behind a size
/// the direct writes already extended; only the last partial block goes buffered.
struct Direct {
    fd: std::fs::File,
    /// Longer than [`DIRECT_BUF`] by one alignment, so that an aligned window fits.
    buf: Vec<u8>,
    /// Where the window starts in `buf`, and how much of it is filled.
    at: usize,
    filled: usize,
    /// The file offset of the window's first byte (aligned).
    start: u64,
}

/// Alignment of direct writes' offsets, lengths and buffer (a page: every block size a
/// Linux disk has).
const ALIGN: usize = 4096;
/// One direct write's size.
const DIRECT_BUF: usize = 1 << 20;

impl Sink {
    /// Writes one batch (blocking).
    fn write(&mut self, batch: &[Bytes], large: bool) -> std::io::Result<()> {
        if matches!(self.mode, Mode::Open) {
            self.mode = if large { self.open_direct()? } else { Mode::Buffered };
        }
        for piece in batch {
            let mut data = &piece[..];
            while !data.is_empty() {
                let n = match &mut self.mode {
                    Mode::Direct(d) => {
                        let n = data.len().min(DIRECT_BUF - d.filled);
                        d.buf[d.at + d.filled..d.at + d.filled + n].copy_from_slice(&data[..n]);
                        d.filled += n;
                        if d.filled == DIRECT_BUF {
                            self.flush_direct()?;
                        }
                        n
                    }
                    _ => {
                        use std::os::unix::fs::FileExt;
                        self.file.write_all_at(data, self.pos)?;
                        data.len()
                    }
                };
                self.pos += n as u64;
                data = &data[n..];
            }
        }
        Ok(())
    }

    /// Direct mode from here on, with the partial block before `pos` read back into the
    /// window; buffered where the filesystem cannot write direct.
    #[cfg(target_os = "linux")]
    fn open_direct(&mut self) -> std::io::Result<Mode> {
        use std::os::unix::fs::{FileExt, OpenOptionsExt};
        let Ok(fd) = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(&self.path) else {
            return Ok(Mode::Buffered);
        };
        let mut buf = vec![0; DIRECT_BUF + ALIGN];
        let at = buf.as_ptr().align_offset(ALIGN);
        let head = usize::try_from(self.pos % ALIGN as u64).unwrap_or(0);
        let start = self.pos - head as u64;
        self.file.read_exact_at(&mut buf[at..at + head], start)?;
        Ok(Mode::Direct(Direct { fd, buf, at, filled: head, start }))
    }

    #[cfg(not(target_os = "linux"))]
    fn open_direct(&mut self) -> std::io::Result<Mode> {
        Ok(Mode::Buffered)
    }

    /// Writes the window's whole blocks direct and keeps the partial one (blocking). A
    /// filesystem that refuses the direct write (`EINVAL`) gets it buffered, and every
    /// later byte of the chunk too.
    fn flush_direct(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let Mode::Direct(d) = &mut self.mode else { return Ok(()) };
        let whole = d.filled - d.filled % ALIGN;
        let window = &d.buf[d.at..d.at + whole];
        match d.fd.write_all_at(window, d.start) {
            // EINVAL, which the standard library names `InvalidInput`.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                self.file.write_all_at(&d.buf[d.at..d.at + d.filled], d.start)?;
                self.mode = Mode::Buffered;
                return Ok(());
            }
            done => done?,
        }
        d.buf.copy_within(d.at + whole..d.at + d.filled, d.at);
        d.filled -= whole;
        d.start += whole as u64;
        Ok(())
    }

    /// Writes what is left: whole blocks direct, the last partial one buffered (blocking).
    fn finish(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.flush_direct()?;
        if let Mode::Direct(d) = &self.mode {
            self.file.write_all_at(&d.buf[d.at..d.at + d.filled], d.start)?;
        }
        Ok(())
    }
}

fn join_error(e: tokio::task::JoinError) -> StoreError {
    StoreError::Other(Box::new(e))
}

/// Runs file work on a blocking thread: one trip for a whole step (each `tokio::fs` call
/// is a trip of its own).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(join_error)?.map_err(other)
}

impl FsChunkWriter {
    /// Waits for the batch being written, if any, and takes the file back.
    async fn land(&mut self) -> Result<(), StoreError> {
        if let Some(task) = self.in_flight.take() {
            self.sink = Some(task.await.map_err(join_error)?.map_err(other)?);
        }
        Ok(())
    }

    /// The file, to hand to a blocking thread (which gives it back).
    fn take_sink(&mut self) -> Result<Sink, StoreError> {
        self.sink.take().ok_or_else(|| StoreError::Other("staging file lost its handle".into()))
    }

    /// Starts writing the gathered batch, once the one before it is written; `last` when
    /// the chunk has no more (then whatever direct writing kept back is written too).
    async fn send_batch(&mut self, last: bool) -> Result<(), StoreError> {
        self.land().await?;
        if self.batch.is_empty() && !last {
            return Ok(());
        }
        let mut sink = self.take_sink()?;
        let batch = std::mem::take(&mut self.batch);
        self.batched = 0;
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            // A first batch that filled up before the chunk ended: a large chunk.
            sink.write(&batch, !last)?;
            if last {
                sink.finish()?;
            }
            Ok(sink)
        }));
        Ok(())
    }
}

#[async_trait]
impl ChunkWriter for FsChunkWriter {
    async fn write(&mut self, bytes: Bytes) -> Result<(), StoreError> {
        self.batched += bytes.len();
        self.batch.push(bytes);
        if self.batched >= WRITE_BATCH {
            self.send_batch(false).await?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<Option<String>, StoreError> {
        self.send_batch(true).await?;
        self.land().await?;
        if self.fsync {
            let sink = self.take_sink()?;
            let sink = blocking(move || sink.file.sync_data().map(|()| sink)).await?;
            self.sink = Some(sink);
            if let Some(dir) = self.made_in.take() {
                blocking(move || sync_dir(&dir)).await?;
            }
        }
        // The staging file is found by the upload's id alone: no state to keep.
        Ok(None)
    }

    async fn abandon(&mut self) {
        // The batch on its way lands (or fails) before the lease goes.
        self.batch.clear();
        let _ = self.land().await;
    }
}

/// Syncs a directory, so that entries made or removed in it survive a crash (blocking).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Renames a finished file to `blob`, making its folder when it is the first blob there;
/// with `fsync`, the new entry (and a new folder's) is durable before this returns. Not
/// the folder it came from: should that name come back after a crash, gc's stray staging
/// sweep removes it (blocking).
fn rename_into_place(from: &Path, blob: &Path, fsync: bool) -> std::io::Result<()> {
    let dir = blob.parent().ok_or_else(|| std::io::Error::other("a blob path has a parent"))?;
    // Each of the 256 folders is made once, by the first blob that lands in it: the
    // rename is tried first; when it finds no folder, the folder is made (or found made
    // by a concurrent commit meanwhile) and the rename tried again. A missing source
    // fails the second rename too.
    let made = match std::fs::rename(from, blob) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let made = match std::fs::create_dir(dir) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
                made => made.map(|()| true)?,
            };
            std::fs::rename(from, blob)?;
            made
        }
        renamed => renamed.map(|()| false)?,
    };
    if fsync {
        sync_dir(dir)?;
        if let Some(parent) = dir.parent().filter(|_| made) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Opens the blob at the first of `places` that holds it (blocking).
fn open_blob(places: &[PathBuf; 2]) -> std::io::Result<std::fs::File> {
    match std::fs::File::open(&places[0]) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::File::open(&places[1]),
        opened => opened,
    }
}

/// Up to `len` leading bytes of a file just opened (blocking).
fn head_of(file: &std::fs::File, len: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(len.min(1 << 20));
    file.take(len as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Removes a file; gone already is fine (blocking).
fn remove_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes the blob from every place it is in (blocking).
fn remove_blob(places: &[PathBuf; 2]) -> std::io::Result<()> {
    places.iter().try_for_each(|p| remove_present(p))
}

/// What committing a staging file found.
enum Committed {
    /// The blob is in place; its head.
    Done(Vec<u8>),
    /// The staging holds only this many bytes (or is gone, 0): a crash lost the rest.
    Short(u64),
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn prepare_staging(
        &self,
        _upload: UploadId,
        _staging: Option<String>,
        _len: Option<u64>,
        _whole: bool,
    ) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    async fn staging_writer(
        &self,
        upload: UploadId,
        offset: u64,
        _staging: Option<String>,
        // A whole file is staged like any chunk: completing it is one rename.
        _size: WriteSize,
    ) -> Result<Box<dyn ChunkWriter>, StoreError> {
        // Opened, measured and positioned in one trip to a blocking thread (three with
        // tokio::fs): a small file's chunk is mostly such trips.
        let path = self.staging_path(upload);
        let (file, have, path) = blocking(move || {
            // Readable too: a large chunk reads back the partial block it starts in.
            let file = std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path)?;
            let have = file.metadata()?.len();
            Ok((file, have, path))
        })
        .await?;
        if have < offset {
            return Err(StoreError::Lost { have, recorded: offset });
        }
        let made_in = (have == 0).then(|| self.root.join("staging"));
        // Past the end when bytes were lost: refused above before anything is written.
        Ok(Box::new(FsChunkWriter {
            sink: Some(Sink { file, path, pos: offset, mode: Mode::Open }),
            in_flight: None,
            batch: Vec::new(),
            batched: 0,
            fsync: self.fsync,
            made_in,
        }))
    }

    async fn commit_staging(
        &self,
        upload: UploadId,
        size: u64,
        key: &str,
        _staging: Option<String>,
        head: usize,
    ) -> Result<Vec<u8>, StoreError> {
        let places = self.blob_places(key)?;
        let staging = self.staging_path(upload);
        let fsync = self.fsync;
        // One trip to a blocking thread for the whole step, the head read from the file
        // it opened anyway: a small file's complete is mostly such trips.
        let committed = blocking(move || {
            let blob_head = |places: &[PathBuf; 2]| -> std::io::Result<Option<Vec<u8>>> {
                match open_blob(places) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    opened => head_of(&opened?, head).map(Some),
                }
            };
            let file = match std::fs::OpenOptions::new().read(true).write(true).open(&staging) {
                // Committed already (a retry: the rename took the staging file), or, when
                // the blob is not there either, the bytes were never made durable.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(blob_head(&places)?.map_or(Committed::Short(0), Committed::Done));
                }
                opened => opened?,
            };
            let have = file.metadata()?.len();
            if have < size {
                if let Some(head) = blob_head(&places)? {
                    // Committed already, and a later chunk made the staging file again.
                    drop(file);
                    remove_present(&staging)?;
                    return Ok(Committed::Done(head));
                }
                return Ok(Committed::Short(have));
            }
            if have > size {
                // Bytes past the offset are left by a chunk that failed half-way: cut them.
                file.set_len(size)?;
                if fsync {
                    file.sync_all()?;
                }
            }
            // Otherwise the bytes are durable already: each chunk synced its own.
            let head = head_of(&file, head)?;
            drop(file);
            rename_into_place(&staging, &places[0], fsync)?;
            Ok(Committed::Done(head))
        })
        .await?;
        match committed {
            Committed::Done(head) => Ok(head),
            Committed::Short(have) => Err(StoreError::Lost { have, recorded: size }),
        }
    }

    async fn delete_staging(&self, upload: UploadId, _staging: Option<String>) -> Result<u64, StoreError> {
        let path = self.staging_path(upload);
        // Measured and removed in one trip; gone already is nothing removed.
        blocking(move || {
            let len = std::fs::metadata(&path).map_or(0, |m| m.len());
            remove_present(&path).map(|()| len)
        })
        .await
    }

    async fn local_file(&self, key: &str) -> Result<LocalFile, StoreError> {
        // The blob's own file, where it is (the current place first): no copy.
        let places = self.blob_places(key)?;
        blocking(move || {
            for place in places {
                if place.is_file() {
                    return Ok(Some(place));
                }
            }
            Ok(None)
        })
        .await?
        .map(LocalFile::stored)
        .ok_or(StoreError::NotFound)
    }

    async fn read(&self, key: &str, range: Option<(u64, u64)>) -> Result<ByteStream, StoreError> {
        let places = self.blob_places(key)?;
        let (file, remaining) = blocking(move || {
            use std::io::Seek;
            let mut file = open_blob(&places)?;
            let remaining = match range {
                Some((start, len)) => {
                    file.seek(SeekFrom::Start(start))?;
                    len
                }
                None => file.metadata()?.len(),
            };
            Ok((File::from_std(file), remaining))
        })
        .await?;
        let stream = futures_util::stream::unfold((file, remaining), |(mut file, remaining)| async move {
            if remaining == 0 {
                return None;
            }
            let want = usize::try_from(remaining).map_or(READ_BUF, |r| r.min(READ_BUF));
            let mut buf = vec![0u8; want];
            match file.read(&mut buf).await {
                Ok(0) => Some((
                    Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "blob shorter than expected")),
                    (file, 0),
                )),
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), (file, remaining - n as u64)))
                }
                Err(e) => Some((Err(e), (file, 0))),
            }
        });
        Ok(Box::pin(stream))
    }

    async fn put_blob(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        let blob = self.blob_path(key)?;
        // Written under a fresh upload-id name in staging and renamed into place: readers
        // never see a part, and a crash leaves a stray staging file that gc removes.
        let temp = self.staging_path(UploadId::from_uuid(uuid::Uuid::new_v4()));
        let fsync = self.fsync;
        blocking(move || {
            use std::io::Write;
            let written = (|| {
                let mut file = std::fs::File::create(&temp)?;
                file.write_all(&bytes)?;
                if fsync {
                    file.sync_data()?;
                }
                rename_into_place(&temp, &blob, fsync)
            })();
            if written.is_err() {
                let _ = std::fs::remove_file(&temp);
            }
            written
        })
        .await
    }

    async fn delete_blob(&self, key: &str) -> Result<(), StoreError> {
        let places = self.blob_places(key)?;
        blocking(move || remove_blob(&places)).await
    }

    async fn delete_blobs(&self, keys: &[String]) -> Result<(), StoreError> {
        let places = keys.iter().map(|k| self.blob_places(k)).collect::<Result<Vec<_>, _>>()?;
        // One trip to the blocking pool for the whole list, not one per file; a failure
        // does not stop the rest.
        blocking(move || {
            let mut first = None;
            for p in places {
                if let Err(e) = remove_blob(&p) {
                    first.get_or_insert(e);
                }
            }
            first.map_or(Ok(()), Err)
        })
        .await
    }

    async fn list_staging(&self) -> Result<Vec<(UploadId, DateTime<Utc>)>, StoreError> {
        let dir = self.root.join("staging");
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for entry in std::fs::read_dir(&dir).map_err(other)? {
                let entry = entry.map_err(other)?;
                let Some(id) = entry.file_name().to_str().and_then(|n| uuid::Uuid::parse_str(n).ok()) else { continue };
                let modified = entry.metadata().and_then(|m| m.modified()).map(DateTime::<Utc>::from).map_err(other)?;
                out.push((UploadId::from_uuid(id), modified));
            }
            Ok(out)
        })
        .await
        .map_err(join_error)?
    }

    async fn list_blobs(&self) -> Result<Vec<StoredBlob>, StoreError> {
        let root = self.root.join("blobs");
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut dirs = vec![root];
            while let Some(dir) = dirs.pop() {
                for entry in std::fs::read_dir(&dir).map_err(other)? {
                    let entry = entry.map_err(other)?;
                    let meta = entry.metadata().map_err(other)?;
                    if meta.is_dir() {
                        dirs.push(entry.path());
                    } else if let Some(name) = entry.file_name().to_str().filter(|n| valid_key(n).is_ok()) {
                        let modified = meta.modified().map(DateTime::<Utc>::from).unwrap_or_else(|_| Utc::now());
                        out.push(StoredBlob { key: name.to_owned(), size: meta.len(), modified });
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(join_error)?
    }

    async fn ping(&self) -> Result<(), StoreError> {
        fs::metadata(self.root.join("blobs")).await.map(|_| ()).map_err(|e| StoreError::Unavailable(Box::new(e)))
    }
}
