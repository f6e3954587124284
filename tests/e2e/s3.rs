//! The S3 store and many instances (SPEC 10): the real server on a bucket of a real
//! S3-protocol server (`s3s-fs`), on SQLite and on PostgreSQL; two server processes on
//! one database and one bucket.

use mediabox_tests::{
    expect_json, expect_problem, md5_hex, on_both_databases, png, sha256_hex, Backend, Caller, Res, TestResult,
    TestServer, ALL,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::tus::a_patch_cut_off_mid_body_keeps_what_arrived_and_the_client_resumes_there;
use crate::uploads::{
    a_chunk_racing_completes_never_changes_the_completed_file, a_refused_first_chunk_leaves_no_upload_and_no_bytes,
};

// Each on S3, with SQLite and with PostgreSQL.
on_both_databases!(using start_on_s3, |_| {};
    uploads_in_small_and_large_chunks_download_identical_with_range_etag_and_304,
    a_chunk_racing_completes_never_changes_the_completed_file,
    a_refused_first_chunk_leaves_no_upload_and_no_bytes,
    gc_runs_at_once_while_uploads_complete_lose_nothing,
    identical_bytes_are_one_object_and_deleting_the_last_media_removes_it,
    an_abandoned_upload_leaves_nothing_in_the_bucket,
    an_expired_upload_leaves_nothing_in_the_bucket_after_one_gc,
    photos_in_one_request_are_one_object_each_and_identical_ones_share_it_even_racing,
    a_crash_between_a_whole_file_put_and_its_row_leaves_an_orphan_gc_removes,
    a_tus_upload_sent_in_one_patch_is_one_put_and_a_broken_one_keeps_nothing,
    a_crash_between_a_patchs_put_and_its_record_is_collected_with_the_expired_upload,
);

// SPEC 12's bound on S3, with a chunk limit over a part: an interrupted PATCH loses at
// most the last chunk limit of what arrived, also when it broke off inside a part that
// was streaming to S3.
on_both_databases!(using start_on_s3, |c| c.max_chunk_bytes = 12 << 20;
    a_patch_cut_off_mid_body_keeps_what_arrived_and_the_client_resumes_there,
);

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

fn file(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed) ^ (i >> 11) as u8).collect()
}

/// Sends `bytes` in chunks of the given sizes (cycling), chunk `i` through
/// `callers[i % callers.len()]`, and completes with the SHA-256 through `completer`.
async fn upload_across(
    callers: &[&Caller<'_>],
    bytes: &[u8],
    sizes: &[usize],
    completer: &Caller<'_>,
    name: &str,
) -> Res<Value> {
    let mut id: Option<String> = None;
    let (mut at, mut i) = (0, 0);
    while at < bytes.len() {
        let n = sizes[i % sizes.len()].min(bytes.len() - at);
        let who = callers[i % callers.len()];
        let r = who.chunk(id.as_deref(), &bytes[at..at + n], at, Some(bytes.len()), name).send().await?;
        let v = expect_json(r, StatusCode::OK).await?;
        id = Some(v["upload_id"].as_str().ok_or("no upload_id")?.to_owned());
        at += n;
        i += 1;
    }
    let r = completer
        .post("/api/v2/media/chunk_upload_complete/")
        .json(&json!({"upload_id": id.ok_or("empty")?, "sha256": sha256_hex(bytes)}))
        .send()
        .await?;
    expect_json(r, StatusCode::OK).await
}

async fn download(u: &Caller<'_>, id: &Value) -> Res<Vec<u8>> {
    let r = u.get(&format!("/api/v2/media/{id}/file")).send().await?;
    assert_eq!(r.status(), StatusCode::OK);
    Ok(r.bytes().await?.to_vec())
}

/// Starts an upload holding a multipart part (6 MiB) and a small chunk not yet grouped
/// (300 KiB); answers its id.
async fn half_done_upload(u: &Caller<'_>, seed: u8) -> Res<String> {
    let bytes = file(6 * MIB + 300 * KIB, seed);
    let up = expect_json(u.chunk(None, &bytes[..6 * MIB], 0, None, "a").send().await?, StatusCode::OK).await?;
    let id = up["upload_id"].as_str().ok_or("id")?.to_owned();
    expect_json(u.chunk(Some(&id), &bytes[6 * MIB..], 6 * MIB, None, "a").send().await?, StatusCode::OK).await?;
    Ok(id)
}

async fn uploads_in_small_and_large_chunks_download_identical_with_range_etag_and_304(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let bytes = file(13 * MIB + 12_345, 1);
    let m = upload_across(&[&u], &bytes, &[256 * KIB, 6 * MIB, 256 * KIB], &u, "big.bin").await?;
    assert_eq!((m["size"].as_u64(), m["md5"].as_str()), (Some(bytes.len() as u64), Some(md5_hex(&bytes).as_str())));
    assert_eq!(sha256_hex(&download(&u, &m["id"]).await?), sha256_hex(&bytes));
    assert_eq!(s.stored_files().len(), 1, "one object, no staging: {:?}", s.stored_files());
    let path = format!("/api/v2/media/{}/file", m["id"]);
    let r = u.get(&path).header("Range", "bytes=7340000-7340009").send().await?;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await?.as_ref(), &bytes[7_340_000..7_340_010]);
    let r = u.get(&path).header("Range", format!("bytes={}-", bytes.len())).send().await?;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let etag = u.get(&path).send().await?.headers()["etag"].to_str()?.to_owned();
    let r = u.get(&path).header("If-None-Match", &etag).send().await?;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    // An image: type and dimensions come from the bytes in the bucket.
    let img = u.upload(&png(40, 30, 9), 100, "a.png").await?;
    assert_eq!((img["content_type"].as_str(), img["width"].as_u64()), (Some("image/png"), Some(40)));
    Ok(())
}

async fn identical_bytes_are_one_object_and_deleting_the_last_media_removes_it(s: TestServer) -> TestResult {
    let a = s.as_user("u-1", "acme", ALL);
    let b = s.as_user("u-2", "beta", ALL);
    let bytes = file(6 * MIB + 1, 2);
    let m1 = upload_across(&[&a], &bytes, &[6 * MIB], &a, "a.bin").await?;
    let m2 = upload_across(&[&b], &bytes, &[256 * KIB], &b, "b.bin").await?;
    assert_ne!(m1["id"], m2["id"]);
    assert_eq!(s.stored_files().len(), 1, "identical bytes are one object: {:?}", s.stored_files());
    assert_eq!(download(&b, &m2["id"]).await?, bytes);
    for (who, m) in [(&a, &m1), (&b, &m2)] {
        let r = who.delete("/api/v1/images").json(&json!({"image_ids": [m["uuid"]]})).send().await?;
        expect_json(r, StatusCode::OK).await?;
    }
    assert_eq!(s.stored_files(), Vec::<std::path::PathBuf>::new(), "the last delete removes the object");
    Ok(())
}

async fn an_abandoned_upload_leaves_nothing_in_the_bucket(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let id = half_done_upload(&u, 3).await?;
    assert!(!s.stored_files().is_empty());
    let r = u.delete(&format!("/api/v2/media/chunk_upload/{id}/")).send().await?;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(s.stored_files(), Vec::<std::path::PathBuf>::new());
    Ok(())
}

async fn an_expired_upload_leaves_nothing_in_the_bucket_after_one_gc(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    half_done_upload(&u, 4).await?;
    // A completed one, whose object must stay.
    let kept = u.upload(b"kept", 4, "k").await?;
    s.exec_sql("UPDATE uploads SET expires_at = '2000-01-01 00:00:00' WHERE media_id IS NULL")?;
    // Known by its row: collected at once, not after the orphan grace period.
    let done = mediabox::gc_once(&s.running.wired, mediabox::BLOB_GRACE).await?;
    let staged = (6 * MIB + 300 * KIB) as u64;
    assert_eq!((done.uploads.count, done.uploads.bytes), (1, staged), "one upload, its part and its pending object");
    assert_eq!(s.stored_files().len(), 1, "only the completed media's object: {:?}", s.stored_files());
    // Reported in /metrics too.
    let text = s.http.get(s.url("/metrics")).send().await?.text().await?;
    assert!(text.contains(r#"mediabox_gc_removed_total{kind="uploads"} 1"#), "{text}");
    assert!(text.contains(&format!(r#"mediabox_gc_removed_bytes_total{{kind="uploads"}} {staged}"#)), "{text}");
    assert!(text.contains(r#"mediabox_gc_removed_total{kind="blobs"} 0"#), "{text}");
    assert_eq!(download(&u, &kept["id"]).await?, b"kept");
    Ok(())
}

async fn gc_runs_at_once_while_uploads_complete_lose_nothing(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    half_done_upload(&u, 5).await?;
    s.exec_sql("UPDATE uploads SET expires_at = '2000-01-01 00:00:00'")?;
    // Two uploads staged (a multipart part and small objects), then completed while two
    // gc runs with no grace period at all sweep the bucket.
    let (a, b) = (file(6 * MIB + 7, 6), file(300 * KIB, 7));
    let mut ids = Vec::new();
    for bytes in [&a, &b] {
        let mut id: Option<String> = None;
        for (i, part) in bytes.chunks(256 * KIB).enumerate() {
            let r = u.chunk(id.as_deref(), part, i * 256 * KIB, Some(bytes.len()), "x").send().await?;
            id = Some(expect_json(r, StatusCode::OK).await?["upload_id"].as_str().ok_or("id")?.to_owned());
        }
        ids.push(id.ok_or("id")?);
    }
    let complete = |id: &str| u.post("/api/v2/media/chunk_upload_complete/").json(&json!({"upload_id": id})).send();
    let gc = || mediabox::gc_once(&s.running.wired, chrono::Duration::zero());
    let (g1, g2, ra, rb) = tokio::join!(gc(), gc(), complete(&ids[0]), complete(&ids[1]));
    let collected = g1?.uploads.count + g2?.uploads.count;
    // Both runs may count it: each step is idempotent, so both may remove it.
    assert!((1..=2).contains(&collected), "the expired upload is collected: {collected}");
    let (ma, mb) = (expect_json(ra?, StatusCode::OK).await?, expect_json(rb?, StatusCode::OK).await?);
    // One more run: the expired upload is gone, the completed media keep their objects.
    gc().await?;
    assert_eq!(sha256_hex(&download(&u, &ma["id"]).await?), sha256_hex(&a));
    assert_eq!(download(&u, &mb["id"]).await?, b);
    assert_eq!(s.stored_files().len(), 2, "two objects and nothing else: {:?}", s.stored_files());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_share_one_database_and_one_bucket() -> TestResult {
    let Some(s) = TestServer::start_on_s3(Backend::Postgres, "s3::two_instances", |_| {}).await? else {
        return Ok(());
    };
    let other = s.second_instance()?;
    other.ready(&s.http).await?;
    let u = s.as_user("u-1", "acme", ALL);
    let v = u.at(&other.base);
    // Chunks alternate between the instances, in 256 KiB and 6 MiB chunks.
    let big = file(20 * MIB + 3, 5);
    let m1 = upload_across(&[&u, &v], &big, &[256 * KIB, 6 * MIB, 256 * KIB, 256 * KIB], &v, "big.bin").await?;
    let small = file(700 * KIB, 6);
    let m2 = upload_across(&[&v, &u], &small, &[256 * KIB], &u, "small.bin").await?;
    // The same bytes again, from the other side: stored once.
    let m3 = upload_across(&[&v, &u], &big, &[6 * MIB, 256 * KIB], &u, "again.bin").await?;
    assert_eq!(m3["sha256"], m1["sha256"]);
    for who in [&u, &v] {
        assert_eq!(sha256_hex(&download(who, &m1["id"]).await?), sha256_hex(&big));
        assert_eq!(download(who, &m2["id"]).await?, small);
        assert_eq!(sha256_hex(&download(who, &m3["id"]).await?), sha256_hex(&big));
    }
    assert_eq!(s.stored_files().len(), 2, "two distinct contents, two objects: {:?}", s.stored_files());
    // Gallery operations on either instance see one another.
    let event = u.event("launch").await?;
    let gallery = format!("/api/v2/event/{event}/gallery/");
    expect_json(v.post(&gallery).json(&json!({"media": m1["id"]})).send().await?, StatusCode::OK).await?;
    expect_json(u.post(&gallery).json(&json!({"media": m2["id"]})).send().await?, StatusCode::OK).await?;
    let page = expect_json(v.get(&gallery).send().await?, StatusCode::OK).await?;
    assert_eq!(page["count"], 2);
    let r = u.delete(&gallery).json(&json!({"medias": [m1["id"]]})).send().await?;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let page = expect_json(v.get(&gallery).send().await?, StatusCode::OK).await?;
    assert_eq!(page["results"].as_array().map(Vec::len), Some(1));
    // Two chunks racing for one offset on two instances: never both appended.
    for _ in 0..3 {
        let up = expect_json(u.chunk(None, b"head", 0, None, "r").send().await?, StatusCode::OK).await?;
        let id = up["upload_id"].as_str().ok_or("id")?.to_owned();
        let (x, y) = (file(6 * MIB, 8), file(6 * MIB, 9));
        let (rx, ry) =
            tokio::join!(u.chunk(Some(&id), &x, 4, None, "r").send(), v.chunk(Some(&id), &y, 4, None, "r").send());
        let (sx, sy) = (rx?.status(), ry?.status());
        let r = u.post("/api/v2/media/chunk_upload_complete/").json(&json!({"upload_id": id})).send().await?;
        let m = expect_json(r, StatusCode::OK).await?;
        assert_eq!(m["size"], 4 + 6 * MIB, "one chunk appended ({sx}, {sy})");
        let got = download(&v, &m["id"]).await?;
        assert!(got[4..] == x[..] || got[4..] == y[..], "the file is one chunk's bytes, whole");
        assert_eq!(sha256_hex(&got), m["sha256"]);
    }
    // A signed URL made by one instance works on the other.
    let file_url = page["results"][0]["file"].as_str().ok_or("file url")?;
    let path = file_url.find("/api/").map(|i| &file_url[i..]).ok_or("path")?;
    let r = s.http.get(format!("{}{path}", other.base)).send().await?;
    assert_eq!(r.bytes().await?.as_ref(), small.as_slice());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_s3_server_is_down_requests_answer_503_and_service_resumes() -> TestResult {
    let Some(s) = TestServer::start_on_s3(Backend::Sqlite, "s3::outage", |_| {}).await? else { return Ok(()) };
    let u = s.as_user("u-1", "acme", ALL);
    let m = u.upload(b"survives the outage", 7, "a.txt").await?;
    s.s3.as_ref().ok_or("s3")?.stop();
    let t = std::time::Instant::now();
    expect_problem(s.http.get(s.url("/readyz")).send().await?, StatusCode::SERVICE_UNAVAILABLE).await?;
    let r = u.get(&format!("/api/v2/media/{}/file", m["id"])).send().await?;
    expect_problem(r, StatusCode::SERVICE_UNAVAILABLE).await?;
    let r = u.chunk(None, &file(6 * MIB, 1), 0, None, "b").send().await?;
    expect_problem(r, StatusCode::SERVICE_UNAVAILABLE).await?;
    assert!(t.elapsed() < std::time::Duration::from_secs(15), "503s took {:?}", t.elapsed());
    // Metadata that needs no bytes still answers.
    expect_json(u.get(&format!("/api/v2/media/{}/", m["id"])).send().await?, StatusCode::OK).await?;
    s.s3.as_ref().ok_or("s3")?.restart()?;
    expect_json(s.http.get(s.url("/readyz")).send().await?, StatusCode::OK).await?;
    assert_eq!(download(&u, &m["id"]).await?, b"survives the outage");
    u.upload(&file(6 * MIB + 1, 2), 6 * MIB, "after.bin").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_bucket_at_start_is_not_ready_and_never_panics() -> TestResult {
    let Some(s) = TestServer::start_on_s3(Backend::Sqlite, "s3::wrong_bucket", |c| {
        if let Some(s3) = c.s3.as_mut() {
            s3.bucket = "no-such-bucket".to_owned();
        }
    })
    .await?
    else {
        return Ok(());
    };
    let p = expect_problem(s.http.get(s.url("/readyz")).send().await?, StatusCode::SERVICE_UNAVAILABLE).await?;
    assert_eq!(p["detail"], "the storage is unreachable");
    assert!(!p.to_string().contains("mediabox-test-secret"), "no secret in {p}");
    let u = s.as_user("u-1", "acme", ALL);
    // The bucket is made: ready without a restart.
    s.s3.as_ref().ok_or("s3")?.bucket("no-such-bucket")?;
    expect_json(s.http.get(s.url("/readyz")).send().await?, StatusCode::OK).await?;
    u.upload(b"now it works", 5, "a.txt").await?;
    Ok(())
}

/// A photo sent in one request (the chunk API's first and only chunk, or a tus
/// creation-with-upload) is put where its blob goes in one request (issue 26); identical
/// bytes are still one object, also when they race.
async fn photos_in_one_request_are_one_object_each_and_identical_ones_share_it_even_racing(
    s: TestServer,
) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let photo = file(4 * MIB, 11);
    let first = u.upload(&photo, photo.len(), "a.jpg").await?;
    assert_eq!(s.stored_files().len(), 1, "{:?}", s.stored_files());
    let again = u.upload(&photo, photo.len(), "b.jpg").await?;
    assert_ne!(first["id"], again["id"]);
    assert_eq!(s.stored_files().len(), 1, "identical bytes are one object: {:?}", s.stored_files());
    assert_eq!(download(&u, &again["id"]).await?, photo);
    // Two identical new photos at once: two media, one object.
    let other = file(64 * KIB, 12);
    let (x, y) = tokio::join!(u.upload(&other, other.len(), "x.jpg"), u.upload(&other, other.len(), "y.jpg"));
    let (x, y) = (x?, y?);
    assert_eq!(x["sha256"], y["sha256"]);
    assert_eq!(s.stored_files().len(), 2, "one object per distinct photo: {:?}", s.stored_files());
    assert_eq!(download(&u, &y["id"]).await?, other);
    // Abandoned after its only chunk: nothing is left of it.
    let r = u.chunk(None, &file(1000, 13), 0, Some(1000), "z").send().await?;
    let id = expect_json(r, StatusCode::OK).await?["upload_id"].as_str().ok_or("id")?.to_owned();
    assert_eq!(s.stored_files().len(), 3);
    let r = u.delete(&format!("/api/v2/media/chunk_upload/{id}/")).send().await?;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(s.stored_files().len(), 2, "{:?}", s.stored_files());
    Ok(())
}

/// A process that dies after putting a whole file and before recording its upload leaves
/// an object no row names: gc removes it as an orphan, and touches nothing else.
async fn a_crash_between_a_whole_file_put_and_its_row_leaves_an_orphan_gc_removes(s: TestServer) -> TestResult {
    use mediabox_domain::ports::WriteSize;
    use mediabox_domain::UploadId;
    let u = s.as_user("u-1", "acme", ALL);
    let kept = u.upload(b"kept", 4, "k").await?;
    // What the first chunk does before the row is inserted, and then nothing.
    let store = &s.running.wired.store;
    let mut w = store
        .staging_writer(UploadId::random(), 0, None, WriteSize { len: Some(64 * KIB as u64), whole: true })
        .await?;
    w.write(bytes::Bytes::from(file(64 * KIB, 14))).await?;
    w.finish().await?;
    assert_eq!(s.stored_files().len(), 2);
    let done = mediabox::gc_once(&s.running.wired, chrono::Duration::zero()).await?;
    assert_eq!(done.blobs.count, 1, "the orphan");
    assert_eq!(s.stored_files().len(), 1, "{:?}", s.stored_files());
    assert_eq!(download(&u, &kept["id"]).await?, b"kept");
    Ok(())
}

/// The S3 requests the server has sent so far (`/metrics`).
async fn s3_requests(s: &TestServer) -> Res<u64> {
    let text = s.http.get(s.url("/metrics")).send().await?.text().await?;
    let line = text.lines().find(|l| l.starts_with("mediabox_s3_requests_total ")).ok_or("no S3 requests metric")?;
    Ok(line.rsplit(' ').next().ok_or("no value")?.parse()?)
}

/// tus-js-client and tuspy create an upload, then send the file in one PATCH: on S3 that
/// PATCH is one PUT where the blob goes, and complete sends nothing more. A PATCH that
/// breaks off keeps nothing there (the file goes in one request or not at all) and the
/// client sends it again from 0.
async fn a_tus_upload_sent_in_one_patch_is_one_put_and_a_broken_one_keeps_nothing(s: TestServer) -> TestResult {
    use crate::tus::{create, media_at, offset, patch};
    let u = s.as_user("u-1", "acme", ALL);
    let photo = file(3 * MIB + 5, 21);
    let path = create(&u, photo.len(), "").await?;
    let before = s3_requests(&s).await?;
    let r = patch(&u, &path, 0, &photo).send().await?;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(s3_requests(&s).await? - before, 1, "one PUT for the bytes, nothing at complete");
    let m = media_at(&u, &r).await?;
    assert_eq!(download(&u, &m["id"]).await?, photo);
    assert_eq!(s.stored_files().len(), 1, "{:?}", s.stored_files());
    // Half of another file, then the connection drops.
    let other = file(2 * MIB, 22);
    let path = create(&u, other.len(), "").await?;
    crate::tus::patch_cut_off(&s, &u, &path, &other, MIB).await?;
    // Like a tus client: HEAD, then PATCH from there (423 while the server still ends the
    // broken request).
    let mut attempts = 0;
    let r = loop {
        attempts += 1;
        let at = offset(&u, &path).await?;
        assert_eq!(at, 0, "nothing of the broken PATCH is kept");
        let r = patch(&u, &path, at, &other).send().await?;
        if r.status() != StatusCode::LOCKED || attempts >= 200 {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let m = media_at(&u, &r).await?;
    assert_eq!(download(&u, &m["id"]).await?, other);
    assert_eq!(s.stored_files().len(), 2, "no piece of the broken PATCH: {:?}", s.stored_files());
    Ok(())
}

/// A process that dies after a whole-file PATCH's PUT and before recording it leaves an
/// object under the key of an upload whose row exists: the row keeps it (the upload may
/// still be completing) until the upload expires; the gc that collects the upload then
/// removes the object too.
async fn a_crash_between_a_patchs_put_and_its_record_is_collected_with_the_expired_upload(s: TestServer) -> TestResult {
    use mediabox_domain::ports::WriteSize;
    use mediabox_domain::UploadId;
    let u = s.as_user("u-1", "acme", ALL);
    let kept = u.upload(b"kept", 4, "k").await?;
    let photo = file(64 * KIB, 15);
    let path = crate::tus::create(&u, photo.len(), "").await?;
    let id = UploadId::from_uuid(uuid::Uuid::parse_str(path.trim_end_matches('/').rsplit('/').next().ok_or("id")?)?);
    // What the PATCH does before its record, and then nothing.
    let size = WriteSize { len: Some(photo.len() as u64), whole: true };
    let mut w = s.running.wired.store.staging_writer(id, 0, None, size).await?;
    w.write(bytes::Bytes::from(photo)).await?;
    w.finish().await?;
    assert_eq!(s.stored_files().len(), 2);
    let done = mediabox::gc_once(&s.running.wired, chrono::Duration::zero()).await?;
    assert_eq!(done.blobs.count, 0, "the upload's row keeps its object");
    assert_eq!(s.stored_files().len(), 2);
    s.exec_sql("UPDATE uploads SET expires_at = '2000-01-01 00:00:00' WHERE media_id IS NULL")?;
    let done = mediabox::gc_once(&s.running.wired, chrono::Duration::zero()).await?;
    assert_eq!((done.uploads.count, done.blobs.count), (1, 1), "the upload, then its object");
    assert_eq!(s.stored_files().len(), 1, "{:?}", s.stored_files());
    assert_eq!(download(&u, &kept["id"]).await?, b"kept");
    Ok(())
}
