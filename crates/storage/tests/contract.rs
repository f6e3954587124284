//! The blob store contract: every adapter of the `BlobStore` port passes these same tests,
//! the filesystem store on a temporary folder and the S3 store on a real S3-protocol
//! server (`s3s-fs`). Chunks are sent as the upload use case sends them: prepare (its
//! answer recorded), write, finish (its answer recorded with the new offset).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::StreamExt;
use mediabox_domain::media::blob_key;
use mediabox_domain::ports::{BlobStore, ByteStream, ChunkWriter, WriteSize};
use mediabox_domain::{StoreError, UploadId};
use mediabox_storage::testing::S3Server;
use mediabox_storage::FsBlobStore;
use sha2::Digest;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// One test per adapter.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fs() -> super::TestResult {
                let dir = tempfile::tempdir()?;
                let store = mediabox_storage::FsBlobStore::open(dir.path()).await?;
                super::$name(&store, None).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3() -> super::TestResult {
                let Some(server) = super::S3Server::start(concat!("contract::", stringify!($name)))? else {
                    return Ok(());
                };
                let store = server.store("contract")?;
                super::$name(&store, Some(&server)).await
            }
        }
    )*};
}

contract!(
    chunks_of_any_size_become_one_blob_with_exactly_their_bytes,
    pieces_of_any_size_at_any_offset_land_in_order,
    a_failed_chunk_leaves_the_recorded_staging_intact,
    ranges_and_heads_read_slices_of_a_blob,
    committing_again_is_harmless,
    uploads_committed_at_once_into_one_new_folder_all_land,
    deleting_staging_leaves_nothing_behind,
    a_chunk_of_unknown_length_is_kept_and_grouped_later,
    blobs_are_listed_and_deleted_idempotently,
    missing_blobs_are_not_found_and_keys_are_never_paths,
    renditions_are_put_whole_beside_their_blob_listed_and_deleted_with_it,
    a_blob_is_given_as_a_local_file_for_programs_that_read_files,
    a_whole_file_written_at_once_completes_with_its_bytes_or_leaves_nothing,
    a_chunk_that_ends_before_its_announced_length_keeps_what_arrived,
    bytes_kept_aside_beyond_a_part_go_whole_into_the_next,
    a_part_whose_stream_fails_midway_is_gathered_and_sent_again,
);

/// What the upload row would hold: the offset and the staging state.
struct Row {
    id: UploadId,
    offset: u64,
    state: Option<String>,
}

impl Row {
    fn new() -> Self {
        Self { id: UploadId::random(), offset: 0, state: None }
    }
}

/// Sends one chunk as the use case does, in pieces of `piece` bytes, and records it.
async fn send(store: &dyn BlobStore, row: &mut Row, bytes: &[u8], len_known: bool, piece: usize) -> TestResult {
    send_as(store, row, bytes, len_known, piece, false).await
}

/// As the domain sends a chunk; `whole`: these bytes are the whole file.
async fn send_as(
    store: &dyn BlobStore,
    row: &mut Row,
    bytes: &[u8],
    len_known: bool,
    piece: usize,
    whole: bool,
) -> TestResult {
    let mut w = writer_for(store, row, len_known.then_some(bytes.len() as u64), whole).await?;
    for p in bytes.chunks(piece) {
        w.write(bytes::Bytes::copy_from_slice(p)).await?;
    }
    row.state = w.finish().await?;
    row.offset += bytes.len() as u64;
    Ok(())
}

/// What the domain opens for a chunk announced at `announced` bytes (recorded in the row)
/// and the writer it then gets.
async fn writer_for(
    store: &dyn BlobStore,
    row: &mut Row,
    announced: Option<u64>,
    whole: bool,
) -> Result<Box<dyn ChunkWriter>, StoreError> {
    if let Some(opened) = store.prepare_staging(row.id, row.state.clone(), announced, whole).await? {
        row.state = Some(opened);
    }
    store.staging_writer(row.id, row.offset, row.state.clone(), WriteSize { len: announced, whole }).await
}

/// The row's upload committed, and its blob read back.
async fn committed(store: &dyn BlobStore, row: &Row) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    let key = commit(store, row).await?;
    Ok(collect(store.read(&key, None).await?).await?)
}

async fn collect(mut s: ByteStream) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(b) = s.next().await {
        out.extend_from_slice(&b?);
    }
    Ok(out)
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8).collect()
}

fn sha(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

async fn commit(store: &dyn BlobStore, row: &Row) -> Result<String, StoreError> {
    let key = blob_key(row.id);
    let head = store.commit_staging(row.id, row.offset, &key, row.state.clone(), 16).await?;
    assert_eq!(head.len(), 16.min(usize::try_from(row.offset).unwrap_or(16)), "the commit answers the blob's head");
    Ok(key)
}

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

async fn chunks_of_any_size_become_one_blob_with_exactly_their_bytes(
    store: &dyn BlobStore,
    s3: Option<&S3Server>,
) -> TestResult {
    // 256 KiB chunks (far under S3's 5 MiB part minimum), 6 MiB chunks, a 1-byte chunk,
    // a 16 MiB chunk (several parts), then small ones again as the last part.
    let sizes = [256 * KIB; 30].into_iter().chain([6 * MIB, 1, 6 * MIB, 16 * MIB, 100 * KIB, 256 * KIB, 3]);
    let sizes: Vec<usize> = sizes.collect();
    let file = bytes(sizes.iter().sum(), 7);
    let mut row = Row::new();
    let mut at = 0;
    for n in &sizes {
        send(store, &mut row, &file[at..at + n], true, 64 * KIB).await?;
        at += n;
    }
    let key = commit(store, &row).await?;
    let got = collect(store.read(&key, None).await?).await?;
    assert_eq!(got.len(), file.len());
    assert_eq!(sha(&got), sha(&file), "the blob holds exactly the bytes sent");
    assert!(store.list_staging().await?.is_empty(), "no staging left after commit");
    let listed = store.list_blobs().await?;
    assert_eq!(
        listed.iter().map(|b| (b.key.as_str(), b.size)).collect::<Vec<_>>(),
        vec![(key.as_str(), file.len() as u64)]
    );
    if let Some(server) = s3 {
        assert_eq!(server.files("contract").len(), 1, "one object: {:?}", server.files("contract"));
    }
    Ok(())
}

async fn pieces_of_any_size_at_any_offset_land_in_order(store: &dyn BlobStore, _s3: Option<&S3Server>) -> TestResult {
    // Large chunks starting inside a disk block, in pieces that never line up with one,
    // between small ones: the filesystem store writes large chunks past the page cache in
    // whole blocks, reading back the partial block a chunk starts in.
    let sizes = [4093, 5 * MIB + 3, 3 * MIB + 4093, 1, 2 * MIB, MIB + 1, 700];
    let file = bytes(sizes.iter().sum(), 5);
    let mut row = Row::new();
    let mut at = 0;
    for (i, n) in sizes.iter().enumerate() {
        send(store, &mut row, &file[at..at + n], true, if i % 2 == 0 { 77_777 } else { 4097 }).await?;
        at += n;
    }
    let key = commit(store, &row).await?;
    let got = collect(store.read(&key, None).await?).await?;
    assert_eq!(got.len(), file.len());
    assert_eq!(sha(&got), sha(&file), "the blob holds exactly the bytes sent, in order");
    Ok(())
}

async fn a_failed_chunk_leaves_the_recorded_staging_intact(
    store: &dyn BlobStore,
    _s3: Option<&S3Server>,
) -> TestResult {
    let file = bytes(14 * MIB, 3);
    let mut row = Row::new();
    send(store, &mut row, &file[..3 * MIB], true, 64 * KIB).await?;
    // A chunk that fails half-way: bytes written (a part sent, for S3), never recorded.
    let before = (row.offset, row.state.clone());
    if let Some(opened) = store.prepare_staging(row.id, row.state.clone(), Some(9 * MIB as u64), false).await? {
        row.state = Some(opened);
    }
    let mut w = store.staging_writer(row.id, row.offset, row.state.clone(), WriteSize::default()).await?;
    w.write(bytes::Bytes::from(vec![b'X'; 8 * MIB + 7])).await?;
    w.abandon().await;
    drop(w);
    assert_eq!(row.offset, before.0);
    // The retry at the same offset, from the state recorded before (plus what prepare opened).
    send(store, &mut row, &file[3 * MIB..12 * MIB], true, 64 * KIB).await?;
    send(store, &mut row, &file[12 * MIB..], true, 64 * KIB).await?;
    let key = commit(store, &row).await?;
    assert_eq!(sha(&collect(store.read(&key, None).await?).await?), sha(&file));
    Ok(())
}

async fn ranges_and_heads_read_slices_of_a_blob(store: &dyn BlobStore, _s3: Option<&S3Server>) -> TestResult {
    let mut row = Row::new();
    send(store, &mut row, b"hello ", true, 3).await?;
    send(store, &mut row, b"world", true, 3).await?;
    let key = commit(store, &row).await?;
    assert_eq!(collect(store.read(&key, None).await?).await?, b"hello world");
    assert_eq!(collect(store.read(&key, Some((6, 3))).await?).await?, b"wor");
    assert_eq!(collect(store.read(&key, Some((10, 1))).await?).await?, b"d");
    assert_eq!(collect(store.read(&key, Some((0, 5))).await?).await?, b"hello");
    Ok(())
}

async fn committing_again_is_harmless(store: &dyn BlobStore, _s3: Option<&S3Server>) -> TestResult {
    let file = bytes(7 * MIB, 9);
    let mut row = Row::new();
    send(store, &mut row, &file, true, 256 * KIB).await?;
    let key = commit(store, &row).await?;
    // Again (a complete retried after its row failed to commit): the blob is there, the
    // staging gone. Commits of one upload never run at once (the upload's lease).
    let head = store.commit_staging(row.id, row.offset, &key, row.state.clone(), 100).await?;
    assert_eq!(head, file[..100], "committing again answers the same head");
    assert_eq!(sha(&collect(store.read(&key, None).await?).await?), sha(&file));
    assert!(store.list_staging().await?.is_empty());
    assert_eq!(store.list_blobs().await?.len(), 1);
    Ok(())
}

async fn uploads_committed_at_once_into_one_new_folder_all_land(
    store: &dyn BlobStore,
    _s3: Option<&S3Server>,
) -> TestResult {
    // Keys that share their first hex digits: on the filesystem, one folder that none of
    // them finds made, so their commits race to make it (a lost race once answered 500).
    // Eight such folders, 16 uploads each, all committed at once.
    let mut rows: Vec<Row> = (0..8 * 16).map(|_| Row::new()).collect();
    let sends = rows.iter_mut().enumerate().map(|(i, row)| async move {
        let data = bytes(100 + i, 1);
        send(store, row, &data, true, 512).await
    });
    for sent in futures_util::future::join_all(sends).await {
        sent?;
    }
    let keys: Vec<String> =
        rows.iter().enumerate().map(|(i, row)| format!("{:02x}{}", i % 8, &blob_key(row.id)[2..])).collect();
    let commits =
        rows.iter().zip(&keys).map(|(row, key)| store.commit_staging(row.id, row.offset, key, row.state.clone(), 1000));
    for (i, committed) in futures_util::future::join_all(commits).await.into_iter().enumerate() {
        assert_eq!(committed?, bytes(100 + i, 1), "commit {i} answers its own blob's head");
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(collect(store.read(key, None).await?).await?, bytes(100 + i, 1), "blob {i} holds its own bytes");
    }
    assert!(store.list_staging().await?.is_empty());
    Ok(())
}

async fn deleting_staging_leaves_nothing_behind(store: &dyn BlobStore, s3: Option<&S3Server>) -> TestResult {
    let mut row = Row::new();
    // Parts in a multipart upload (S3) and small chunks not yet grouped.
    send(store, &mut row, &bytes(6 * MIB, 1), true, 64 * KIB).await?;
    send(store, &mut row, &bytes(300 * KIB, 2), true, 64 * KIB).await?;
    let listed: Vec<UploadId> = store.list_staging().await?.into_iter().map(|(id, _)| id).collect();
    assert_eq!(listed, vec![row.id], "staging is listed by upload");
    if let Some(server) = s3 {
        let parts = server.all_files().into_iter().filter(|f| !f.starts_with(server.dir.path().join("contract")));
        assert!(parts.count() > 0, "a part of the open multipart upload is held outside the bucket");
    }
    let freed = store.delete_staging(row.id, row.state.clone()).await?;
    assert_eq!(freed, row.offset, "it tells the bytes it freed");
    assert_eq!(store.delete_staging(row.id, row.state.clone()).await?, 0, "twice frees nothing more");
    assert!(store.list_staging().await?.is_empty());
    assert!(store.list_blobs().await?.is_empty(), "an abandoned upload makes no blob");
    if let Some(server) = s3 {
        // Nothing at all: no object, and no part of an open multipart upload.
        assert_eq!(server.all_files(), Vec::<std::path::PathBuf>::new());
    }
    Ok(())
}

async fn a_chunk_of_unknown_length_is_kept_and_grouped_later(
    store: &dyn BlobStore,
    _s3: Option<&S3Server>,
) -> TestResult {
    let file = bytes(6 * MIB + 5, 4);
    let mut row = Row::new();
    // A first chunk without Content-Range: its size is known only at its end.
    send(store, &mut row, &file[..5 * MIB + 1], false, 64 * KIB).await?;
    send(store, &mut row, &file[5 * MIB + 1..], true, 64 * KIB).await?;
    let key = commit(store, &row).await?;
    assert_eq!(sha(&collect(store.read(&key, None).await?).await?), sha(&file));
    // One small file, in one chunk of unknown length.
    let mut small = Row::new();
    send(store, &mut small, b"tiny", false, 64 * KIB).await?;
    let key = commit(store, &small).await?;
    assert_eq!(collect(store.read(&key, None).await?).await?, b"tiny");
    Ok(())
}

async fn blobs_are_listed_and_deleted_idempotently(store: &dyn BlobStore, _s3: Option<&S3Server>) -> TestResult {
    let mut keys = Vec::new();
    for i in 0..3u8 {
        let mut row = Row::new();
        send(store, &mut row, &[i; 10], true, 4).await?;
        keys.push(commit(store, &row).await?);
    }
    let mut listed: Vec<String> = store.list_blobs().await?.into_iter().map(|b| b.key).collect();
    listed.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(listed, expected);
    let now = chrono::Utc::now();
    let blobs = store.list_blobs().await?;
    assert!(blobs.iter().all(|b| (now - b.modified).num_minutes().abs() < 5), "times are real");
    assert!(blobs.iter().all(|b| b.size == 10), "sizes are real");
    store.delete_blob(&keys[0]).await?;
    store.delete_blob(&keys[0]).await?;
    store.delete_blobs(&keys).await?;
    assert!(store.list_blobs().await?.is_empty());
    Ok(())
}

async fn missing_blobs_are_not_found_and_keys_are_never_paths(
    store: &dyn BlobStore,
    _s3: Option<&S3Server>,
) -> TestResult {
    let missing = blob_key(UploadId::random());
    assert!(matches!(store.read(&missing, None).await, Err(StoreError::NotFound)));
    assert!(matches!(store.read(&missing, Some((0, 10))).await, Err(StoreError::NotFound)));
    for bad in [
        "../../etc/passwd",
        "blobs/../x",
        &"A".repeat(32),
        &format!("{}-../x", "a".repeat(64)),
        &format!("{missing}.thumb/../x"),
        &format!("{missing}.original"),
        ".thumb",
    ] {
        assert!(store.read(bad, None).await.is_err(), "{bad}");
        assert!(store.delete_blob(bad).await.is_err(), "{bad}");
        assert!(store.put_blob(bad, bytes::Bytes::from_static(b"x")).await.is_err(), "{bad}");
    }
    store.ping().await?;
    Ok(())
}

async fn renditions_are_put_whole_beside_their_blob_listed_and_deleted_with_it(
    store: &dyn BlobStore,
    _s3: Option<&S3Server>,
) -> TestResult {
    use mediabox_domain::rendition::{rendition_key, with_renditions, Variant};
    let mut row = Row::new();
    send(store, &mut row, b"the original", true, 5).await?;
    let key = commit(store, &row).await?;
    let thumb = rendition_key(&key, Variant::Thumb);
    store.put_blob(&thumb, bytes::Bytes::from_static(b"first thumb")).await?;
    assert_eq!(collect(store.read(&thumb, None).await?).await?, b"first thumb");
    // Put again (another instance made it too): replaced whole.
    store.put_blob(&thumb, bytes::Bytes::from_static(b"thumb")).await?;
    assert_eq!(collect(store.read(&thumb, None).await?).await?, b"thumb");
    assert_eq!(collect(store.read(&thumb, Some((1, 3))).await?).await?, b"hum");
    assert_eq!(collect(store.read(&key, None).await?).await?, b"the original", "the original is untouched");
    let mut listed: Vec<(String, u64)> = store.list_blobs().await?.into_iter().map(|b| (b.key, b.size)).collect();
    listed.sort();
    let mut expected = vec![(key.clone(), 12), (thumb.clone(), 5)];
    expected.sort();
    assert_eq!(listed, expected, "renditions are listed as blobs (for gc), and nothing else was left");
    assert!(store.list_staging().await?.is_empty(), "putting leaves no staging behind");
    store.delete_blobs(&with_renditions(std::slice::from_ref(&key))).await?;
    assert!(store.list_blobs().await?.is_empty());
    Ok(())
}

async fn a_blob_is_given_as_a_local_file_for_programs_that_read_files(
    store: &dyn BlobStore,
    s3: Option<&S3Server>,
) -> TestResult {
    let mut row = Row::new();
    let bytes = bytes(3_000_000, 51);
    send(store, &mut row, &bytes, true, 1 << 20).await?;
    let key = commit(store, &row).await?;
    let file = store.local_file(&key).await?;
    assert_eq!(std::fs::read(file.path())?, bytes, "the file holds exactly the blob's bytes");
    let path = file.path().to_owned();
    drop(file);
    // The filesystem store gives its own file, which stays; an S3 copy is removed.
    assert_eq!(path.exists(), s3.is_none(), "{}", path.display());
    assert!(matches!(store.local_file(&blob_key(UploadId::random())).await, Err(StoreError::NotFound)));
    assert!(store.local_file("../../etc/passwd").await.is_err(), "keys are never paths");
    Ok(())
}

#[tokio::test]
async fn the_fs_store_makes_one_folder_level_and_still_serves_blobs_stored_two_levels_deep() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = FsBlobStore::open(dir.path()).await?;
    let mut row = Row::new();
    send(&store, &mut row, b"new bytes", true, 4).await?;
    let key = commit(&store, &row).await?;
    let blobs = dir.path().join("blobs");
    assert_eq!(std::fs::read(blobs.join(&key[0..2]).join(&key))?, b"new bytes", "blobs/ab/<key>");
    assert_eq!(store.blob_path(&key)?, blobs.join(&key[0..2]).join(&key));
    assert!(!store.staging_exists(row.id).await?, "the staging file became the blob");

    // A blob committed by a release from before 2026-12, at blobs/ab/cd/<key>, and its thumbnail.
    let old = blob_key(UploadId::from_uuid(uuid::Uuid::new_v4()));
    let old_thumb = format!("{old}.thumb");
    let old_place = store.legacy_blob_path(&old)?;
    std::fs::create_dir_all(old_place.parent().unwrap())?;
    std::fs::write(&old_place, b"stored long ago")?;
    std::fs::write(store.legacy_blob_path(&old_thumb)?, b"old thumb")?;
    assert_eq!(collect(store.read(&old, None).await?).await?, b"stored long ago");
    assert_eq!(collect(store.read(&old, Some((7, 4))).await?).await?, b"long");
    assert_eq!(collect(store.read(&old, Some((0, 6))).await?).await?, b"stored");
    let mut listed: Vec<String> = store.list_blobs().await?.into_iter().map(|b| b.key).collect();
    listed.sort();
    let mut expected = vec![key.clone(), old.clone(), old_thumb.clone()];
    expected.sort();
    assert_eq!(listed, expected);

    // An upload whose blob an old release committed (it crashed before its row): a retried
    // commit finds it, and does not answer that the bytes were lost.
    let retried = Row { id: UploadId::from_uuid(uuid::Uuid::new_v4()), offset: 15, state: None };
    let retried_key = blob_key(retried.id);
    let retried_place = store.legacy_blob_path(&retried_key)?;
    std::fs::create_dir_all(retried_place.parent().unwrap())?;
    std::fs::write(&retried_place, b"committed once.")?;
    assert_eq!(commit(&store, &retried).await?, retried_key);
    assert_eq!(collect(store.read(&retried_key, None).await?).await?, b"committed once.");
    assert!(!store.blob_path(&retried_key)?.exists(), "not copied to the new place");

    store.delete_blob(&old).await?;
    assert!(matches!(store.read(&old, None).await.err(), Some(StoreError::NotFound)));
    store.delete_blobs(&[old_thumb.clone(), retried_key, key]).await?;
    assert!(store.list_blobs().await?.is_empty(), "deleted from either place");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_store_on_a_missing_bucket_is_not_ready_and_recovers_when_it_appears() -> TestResult {
    let Some(server) = S3Server::start("contract::missing_bucket")? else { return Ok(()) };
    let store = mediabox_storage::S3BlobStore::new(&server.config("no-such-bucket"))?;
    assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
    server.bucket("no-such-bucket")?;
    store.ping().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_store_whose_server_stops_answers_unavailable_within_seconds_then_recovers() -> TestResult {
    let Some(server) = S3Server::start("contract::outage")? else { return Ok(()) };
    let store = server.store("outage")?;
    let mut row = Row::new();
    send(&store, &mut row, b"kept", true, 4).await?;
    let key = commit(&store, &row).await?;
    server.stop();
    let t = std::time::Instant::now();
    assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
    assert!(matches!(store.read(&key, None).await, Err(StoreError::Unavailable(_))));
    assert!(t.elapsed() < std::time::Duration::from_secs(10), "took {:?}", t.elapsed());
    server.restart()?;
    store.ping().await?;
    assert_eq!(collect(store.read(&key, None).await?).await?, b"kept");
    Ok(())
}

async fn a_whole_file_written_at_once_completes_with_its_bytes_or_leaves_nothing(
    store: &dyn BlobStore,
    _s3: Option<&S3Server>,
) -> TestResult {
    for size in [1, 64 * KIB, 4 * MIB, 8 * MIB, 8 * MIB + 1, 12 * MIB] {
        let bytes = bytes(size, 53);
        let mut row = Row::new();
        send_as(store, &mut row, &bytes, true, 256 * KIB, true).await?;
        let key = commit(store, &row).await?;
        assert_eq!(collect(store.read(&key, None).await?).await?, bytes, "{size} bytes");
        // Committing again (a retried complete) is harmless.
        commit(store, &row).await?;
        store.delete_blob(&key).await?;
        assert!(store.list_staging().await?.is_empty(), "{size}: no staging left");
    }
    // Every byte written, then refused before finish (a checksum that did not match, a
    // body longer than announced): the writer is abandoned and nothing is stored. Also
    // when it is refused halfway.
    for written in [8 * MIB, 3 * MIB] {
        let bytes = vec![3u8; 8 * MIB];
        let mut row = Row::new();
        let mut w = writer_for(store, &mut row, Some(bytes.len() as u64), true).await?;
        for p in bytes[..written].chunks(64 * KIB) {
            w.write(bytes::Bytes::copy_from_slice(p)).await?;
        }
        w.abandon().await;
        drop(w);
        assert!(store.list_blobs().await?.is_empty(), "{written}: {:?}", store.list_blobs().await?);
        store.delete_staging(row.id, None).await?;
        assert!(store.list_staging().await?.is_empty());
    }
    // Abandoned (or expired) before complete: nothing is left anywhere.
    let mut row = Row::new();
    send_as(store, &mut row, &[9u8; 64 * KIB], true, 16 * KIB, true).await?;
    store.delete_staging(row.id, row.state.clone()).await?;
    assert!(store.list_blobs().await?.is_empty(), "{:?}", store.list_blobs().await?);
    assert!(store.list_staging().await?.is_empty());
    Ok(())
}

/// What the S3 store sends for a file that comes in one request: one PUT, where its blob
/// goes; complete on the same instance sends nothing more, on another one ranged GET (its
/// head, to sniff it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_a_file_in_one_request_costs_one_request() -> TestResult {
    let Some(server) = S3Server::start("contract::one_request")? else { return Ok(()) };
    let store = server.store("contract")?;
    let elsewhere = server.store("contract")?;
    for size in [64 * KIB, 4 * MIB, 8 * MIB] {
        let bytes = vec![5u8; size];
        let mut row = Row::new();
        let before = store.requests_sent();
        send_as(&store, &mut row, &bytes, true, 256 * KIB, true).await?;
        commit(&store, &row).await?;
        assert_eq!(store.requests_sent() - before, 1, "{size} bytes: one PUT");
        // Completed by another instance: the head is read back, nothing else.
        let mut row = Row::new();
        send_as(&store, &mut row, &[6u8; 1000], true, 256, true).await?;
        let before = elsewhere.requests_sent();
        commit(&elsewhere, &row).await?;
        assert_eq!(elsewhere.requests_sent() - before, 1, "one ranged GET");
    }
    Ok(())
}

/// A chunk announced at one length whose body ends early (a tus PATCH that broke off):
/// `finish` keeps every byte that arrived, whatever part was streaming then (S3 streams
/// parts of known length as the bytes come), and the upload goes on from there.
async fn a_chunk_that_ends_before_its_announced_length_keeps_what_arrived(
    store: &dyn BlobStore,
    _s3: Option<&S3Server>,
) -> TestResult {
    let bytes = bytes(30 * MIB, 41);
    // Small objects first (3 MiB under the part minimum), then chunks announced at 20 MiB
    // that end after 3 + 9.5 MiB (inside the second part), then after 1 MiB (inside the
    // first part, which carries the small objects), then the rest whole.
    let mut row = Row::new();
    send(store, &mut row, &bytes[..3 * MIB], true, 256 * KIB).await?;
    for arrived in [9 * MIB + MIB / 2, MIB] {
        let at = usize::try_from(row.offset)?;
        let mut w = writer_for(store, &mut row, Some(20 * MIB as u64), false).await?;
        for p in bytes[at..at + arrived].chunks(256 * KIB) {
            w.write(bytes::Bytes::copy_from_slice(p)).await?;
        }
        row.state = w.finish().await?;
        row.offset += arrived as u64;
    }
    let at = usize::try_from(row.offset)?;
    send(store, &mut row, &bytes[at..], true, 256 * KIB).await?;
    assert_eq!(sha(&committed(store, &row).await?), sha(&bytes));
    assert!(store.list_staging().await?.is_empty(), "no staging left");
    Ok(())
}

/// A chunk of unknown length is kept aside whole (S3: one small object, however large),
/// and the next chunk, of known length, carries all of it into its first part before its
/// own bytes.
async fn bytes_kept_aside_beyond_a_part_go_whole_into_the_next(
    store: &dyn BlobStore,
    _s3: Option<&S3Server>,
) -> TestResult {
    let bytes = bytes(24 * MIB, 43);
    let mut row = Row::new();
    send(store, &mut row, &bytes[..12 * MIB], false, 256 * KIB).await?;
    send(store, &mut row, &bytes[12 * MIB..15 * MIB], true, 256 * KIB).await?;
    send(store, &mut row, &bytes[15 * MIB..], true, 256 * KIB).await?;
    assert_eq!(sha(&committed(store, &row).await?), sha(&bytes));
    Ok(())
}

/// The S3 service drops a part's streamed PUT midway (a restart here; a client that paused
/// past its idle timeout in the wild): the chunk goes on, its parts gathered from the
/// pieces kept and sent as object_store sends them (retrying), and the file is whole.
async fn a_part_whose_stream_fails_midway_is_gathered_and_sent_again(
    store: &dyn BlobStore,
    s3: Option<&S3Server>,
) -> TestResult {
    let bytes = bytes(20 * MIB, 47);
    let mut row = Row::new();
    let mut w = writer_for(store, &mut row, Some(bytes.len() as u64), false).await?;
    for (i, p) in bytes.chunks(256 * KIB).enumerate() {
        if i == 12 {
            // 3 MiB into the first part.
            if let Some(server) = s3 {
                server.restart()?;
            }
        }
        w.write(bytes::Bytes::copy_from_slice(p)).await?;
    }
    row.state = w.finish().await?;
    row.offset = bytes.len() as u64;
    assert_eq!(sha(&committed(store, &row).await?), sha(&bytes));
    Ok(())
}
