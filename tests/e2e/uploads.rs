//! The chunked upload (SPEC 3).

use mediabox_tests::{
    expect_json, expect_problem, files_under, md5_hex, on_both_databases, png, sha256_hex, Backend, TestResult,
    TestServer, ALL,
};
use reqwest::StatusCode;
use serde_json::json;

on_both_databases!(
    a_file_sent_in_chunks_becomes_a_media_with_its_sniffed_type_and_dimensions,
    large_chunks_at_any_offset_come_back_byte_for_byte,
    a_multipart_first_chunk_names_the_file_and_the_name_is_sanitized,
    a_chunk_at_the_wrong_offset_is_refused_with_the_current_offset,
    resending_the_last_chunk_answers_the_same_offset,
    the_status_tells_the_offset_and_abandoning_drops_the_upload,
    a_checksum_mismatch_is_refused_and_the_upload_stays_resumable,
    completing_twice_answers_the_same_media,
    only_the_uploader_may_send_see_or_complete,
    a_body_shorter_or_longer_than_its_range_is_refused,
    a_refused_first_chunk_leaves_no_upload_and_no_bytes,
    starting_an_upload_needs_media_write,
    continuing_or_completing_an_upload_needs_media_write_on_every_request,
    reading_or_abandoning_ones_upload_needs_media_read_or_write,
    identical_bytes_are_stored_once,
    two_chunks_racing_for_one_offset_are_never_both_appended,
    a_chunk_racing_completes_never_changes_the_completed_file,
    one_upload_can_send_its_chunks_to_different_instances,
    an_internal_error_is_logged_and_answered_with_the_request_id_only,
);

async fn a_file_sent_in_chunks_becomes_a_media_with_its_sniffed_type_and_dimensions(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let bytes = png(40, 30, 7);
    // Named .txt and sent as octet-stream: the type comes from the bytes anyway.
    let m = u.upload(&bytes, 100, "photo.txt").await?;
    assert_eq!(m["content_type"], "image/png");
    assert_eq!(m["kind"], "image");
    assert_eq!((m["width"].as_u64(), m["height"].as_u64()), (Some(40), Some(30)));
    assert_eq!(m["size"], bytes.len());
    assert_eq!(m["sha256"], sha256_hex(&bytes));
    assert_eq!(m["md5"], md5_hex(&bytes));
    assert_eq!(m["uploaded_by"], "u-1");
    let id = m["id"].as_i64().ok_or("id")?;
    let got = u.get(&format!("/api/v2/media/{id}/file")).send().await?.bytes().await?;
    assert_eq!(got.as_ref(), bytes.as_slice());
    // The staging bytes are gone: only the blob remains.
    let staged = files_under(&s.blob_root().join("staging"));
    assert!(staged.is_empty(), "staging left: {staged:?}");
    Ok(())
}

async fn a_multipart_first_chunk_names_the_file_and_the_name_is_sanitized(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let part = reqwest::multipart::Part::bytes(b"GIF89a-not-really".to_vec()).file_name("../../etc/pa\"ss.gif");
    let form = reqwest::multipart::Form::new().part("file", part);
    let r = u.put("/api/v2/media/chunk_upload/").multipart(form).send().await?;
    let up = expect_json(r, StatusCode::OK).await?;
    assert_eq!(up["offset"], 17);
    assert!(up["expires"].as_str().is_some_and(|e| e.ends_with('Z')), "{up}");
    let r = u
        .post("/api/v2/media/chunk_upload_complete/")
        .form(&[("upload_id", up["upload_id"].as_str().ok_or("id")?)])
        .send()
        .await?;
    let m = expect_json(r, StatusCode::OK).await?;
    assert_eq!(m["filename"], "pa_ss.gif");
    assert_eq!(m["content_type"], "image/gif");
    Ok(())
}

async fn a_chunk_at_the_wrong_offset_is_refused_with_the_current_offset(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let up = expect_json(u.chunk(None, b"0123", 0, None, "a.bin").send().await?, StatusCode::OK).await?;
    let id = up["upload_id"].as_str().ok_or("id")?;
    let p = expect_problem(u.chunk(Some(id), b"89", 8, None, "a.bin").send().await?, StatusCode::BAD_REQUEST).await?;
    assert_eq!(p["offset"], 4);
    let st = expect_json(u.get(&format!("/api/v2/media/chunk_upload/{id}/")).send().await?, StatusCode::OK).await?;
    assert_eq!(st["offset"], 4, "a refused chunk changes nothing");
    // Chunks after the first must say where they go.
    let r = u.put(&format!("/api/v2/media/chunk_upload/{id}/")).body("x").send().await?;
    let p = expect_problem(r, StatusCode::BAD_REQUEST).await?;
    assert_eq!(p["field"], "Content-Range");
    let r = u
        .put(&format!("/api/v2/media/chunk_upload/{id}/"))
        .header("Content-Range", "bytes 9-4/*")
        .body("x")
        .send()
        .await?;
    expect_problem(r, StatusCode::BAD_REQUEST).await?;
    Ok(())
}

async fn resending_the_last_chunk_answers_the_same_offset(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let up = expect_json(u.chunk(None, b"0123", 0, Some(8), "a.bin").send().await?, StatusCode::OK).await?;
    let id = up["upload_id"].as_str().ok_or("id")?.to_owned();
    let a = expect_json(u.chunk(Some(&id), b"4567", 4, Some(8), "a.bin").send().await?, StatusCode::OK).await?;
    let b = expect_json(u.chunk(Some(&id), b"4567", 4, Some(8), "a.bin").send().await?, StatusCode::OK).await?;
    assert_eq!((a["offset"].as_u64(), b["offset"].as_u64()), (Some(8), Some(8)));
    let r = u.post("/api/v2/media/chunk_upload_complete/").json(&json!({"upload_id": id})).send().await?;
    let m = expect_json(r, StatusCode::OK).await?;
    assert_eq!(m["sha256"], sha256_hex(b"01234567"), "the retry was not appended twice");
    Ok(())
}

async fn the_status_tells_the_offset_and_abandoning_drops_the_upload(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let up = expect_json(u.chunk(None, b"abcdef", 0, None, "a.bin").send().await?, StatusCode::OK).await?;
    let id = up["upload_id"].as_str().ok_or("id")?;
    let path = format!("/api/v2/media/chunk_upload/{id}/");
    let st = expect_json(u.get(&path).send().await?, StatusCode::OK).await?;
    assert_eq!((st["offset"].as_u64(), st["upload_id"].as_str()), (Some(6), Some(id)));
    assert_eq!(files_under(&s.blob_root().join("staging")).len(), 1);
    assert_eq!(u.delete(&path).send().await?.status(), StatusCode::NO_CONTENT);
    expect_problem(u.get(&path).send().await?, StatusCode::NOT_FOUND).await?;
    assert!(files_under(&s.blob_root().join("staging")).is_empty(), "the bytes went with it");
    expect_problem(u.get("/api/v2/media/chunk_upload/not-a-uuid/").send().await?, StatusCode::NOT_FOUND).await?;
    Ok(())
}

async fn a_checksum_mismatch_is_refused_and_the_upload_stays_resumable(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let up = expect_json(u.chunk(None, b"hello ", 0, None, "a.txt").send().await?, StatusCode::OK).await?;
    let id = up["upload_id"].as_str().ok_or("id")?.to_owned();
    let r = u
        .post("/api/v2/media/chunk_upload_complete/")
        .json(&json!({"upload_id": id, "md5": md5_hex(b"hello world")}))
        .send()
        .await?;
    let p = expect_problem(r, StatusCode::BAD_REQUEST).await?;
    assert_eq!((p["offset"].as_u64(), p["field"].as_str()), (Some(6), Some("md5")));
    expect_json(u.chunk(Some(&id), b"world", 6, None, "a.txt").send().await?, StatusCode::OK).await?;
    let r = u
        .post("/api/v2/media/chunk_upload_complete/")
        .json(&json!({"upload_id": id, "sha256": "00".repeat(32)}))
        .send()
        .await?;
    expect_problem(r, StatusCode::BAD_REQUEST).await?;
    let r = u
        .post("/api/v2/media/chunk_upload_complete/")
        .json(&json!({"upload_id": id, "md5": md5_hex(b"hello world")}))
        .send()
        .await?;
    let m = expect_json(r, StatusCode::OK).await?;
    assert_eq!(m["size"], 11);
    Ok(())
}

async fn completing_twice_answers_the_same_media(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let up = expect_json(u.chunk(None, b"twice", 0, Some(5), "a.txt").send().await?, StatusCode::OK).await?;
    let body = json!({"upload_id": up["upload_id"]});
    let a =
        expect_json(u.post("/api/v2/media/chunk_upload_complete/").json(&body).send().await?, StatusCode::OK).await?;
    let b =
        expect_json(u.post("/api/v2/media/chunk_upload_complete/").json(&body).send().await?, StatusCode::OK).await?;
    assert_eq!(a["id"], b["id"]);
    assert_eq!(a["uuid"], b["uuid"]);
    // A completed upload takes no more chunks.
    let id = up["upload_id"].as_str().ok_or("id")?;
    expect_problem(u.chunk(Some(id), b"more", 5, None, "a.txt").send().await?, StatusCode::CONFLICT).await?;
    Ok(())
}

async fn only_the_uploader_may_send_see_or_complete(s: TestServer) -> TestResult {
    let owner = s.as_user("u-1", "acme", ALL);
    let colleague = s.as_user("u-2", "acme", ALL);
    let stranger = s.as_user("u-1", "beta", ALL);
    let up = expect_json(owner.chunk(None, b"mine", 0, None, "a.bin").send().await?, StatusCode::OK).await?;
    let id = up["upload_id"].as_str().ok_or("id")?;
    expect_problem(colleague.chunk(Some(id), b"x", 4, None, "a").send().await?, StatusCode::FORBIDDEN).await?;
    expect_problem(stranger.chunk(Some(id), b"x", 4, None, "a").send().await?, StatusCode::NOT_FOUND).await?;
    expect_problem(stranger.get(&format!("/api/v2/media/chunk_upload/{id}/")).send().await?, StatusCode::NOT_FOUND)
        .await?;
    let body = json!({"upload_id": id});
    let r = colleague.post("/api/v2/media/chunk_upload_complete/").json(&body).send().await?;
    expect_problem(r, StatusCode::FORBIDDEN).await?;
    let r = stranger.post("/api/v2/media/chunk_upload_complete/").json(&body).send().await?;
    expect_problem(r, StatusCode::NOT_FOUND).await?;
    let st = expect_json(owner.get(&format!("/api/v2/media/chunk_upload/{id}/")).send().await?, StatusCode::OK).await?;
    assert_eq!(st["offset"], 4);
    Ok(())
}

async fn a_body_shorter_or_longer_than_its_range_is_refused(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let up = expect_json(u.chunk(None, b"0123", 0, None, "a.bin").send().await?, StatusCode::OK).await?;
    let id = up["upload_id"].as_str().ok_or("id")?;
    let path = format!("/api/v2/media/chunk_upload/{id}/");
    let short = u.put(&path).header("Content-Range", "bytes 4-13/*").body("45").send().await?;
    let p = expect_problem(short, StatusCode::BAD_REQUEST).await?;
    assert_eq!(p["offset"], 4);
    let long = u.put(&path).header("Content-Range", "bytes 4-5/*").body("456789").send().await?;
    expect_problem(long, StatusCode::BAD_REQUEST).await?;
    // Neither left a trace: the next good chunk lands at 4 and the file is exact.
    expect_json(u.chunk(Some(id), b"45", 4, None, "a").send().await?, StatusCode::OK).await?;
    let m = expect_json(
        u.post("/api/v2/media/chunk_upload_complete/").json(&json!({"upload_id": id})).send().await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(m["sha256"], sha256_hex(b"012345"));
    let got = u.get(&format!("/api/v2/media/{}/file", m["id"])).send().await?.bytes().await?;
    assert_eq!(got.as_ref(), b"012345");
    Ok(())
}

/// A first chunk is staged before its upload's row exists: when it is refused midway,
/// neither the row nor any of its bytes stays behind (filesystem and S3).
pub async fn a_refused_first_chunk_leaves_no_upload_and_no_bytes(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let start = "/api/v2/media/chunk_upload/?filename=a.bin";
    let long = u.put(start).header("Content-Range", "bytes 0-3/*").body("0123456789").send().await?;
    expect_problem(long, StatusCode::BAD_REQUEST).await?;
    let short = u.put(start).header("Content-Range", "bytes 0-9/10").body("0123").send().await?;
    expect_problem(short, StatusCode::BAD_REQUEST).await?;
    assert_eq!(s.exec_sql("DELETE FROM uploads")?, 0, "no upload row was left");
    assert_eq!(s.stored_files(), Vec::<std::path::PathBuf>::new(), "no staged bytes were left");
    // A good first chunk after them is an upload like any other.
    let up = expect_json(u.chunk(None, b"0123", 0, Some(4), "a.bin").send().await?, StatusCode::OK).await?;
    assert_eq!(up["offset"], 4);
    assert_eq!(s.exec_sql("UPDATE uploads SET filename = filename")?, 1);
    Ok(())
}

async fn starting_an_upload_needs_media_write(s: TestServer) -> TestResult {
    let reader = s.as_user("u-1", "acme", &["media:read"]);
    let p = expect_problem(reader.chunk(None, b"x", 0, None, "a").send().await?, StatusCode::FORBIDDEN).await?;
    assert_eq!(p["missingPermissions"], json!(["media:write"]));
    Ok(())
}

async fn continuing_or_completing_an_upload_needs_media_write_on_every_request(s: TestServer) -> TestResult {
    let writer = s.as_user("u-1", "acme", &["media:read", "media:write"]);
    // The same user and organization, after `media:write` was taken away.
    let reader = s.as_user("u-1", "acme", &["media:read"]);
    let up = expect_json(writer.chunk(None, b"head", 0, None, "a.bin").send().await?, StatusCode::OK).await?;
    let id = up["upload_id"].as_str().ok_or("id")?;
    let p = expect_problem(reader.chunk(Some(id), b"tail", 4, None, "a").send().await?, StatusCode::FORBIDDEN).await?;
    assert_eq!(p["missingPermissions"], json!(["media:write"]));
    let done = reader.post("/api/v2/media/chunk_upload_complete/").json(&json!({"upload_id": id})).send().await?;
    let p = expect_problem(done, StatusCode::FORBIDDEN).await?;
    assert_eq!(p["missingPermissions"], json!(["media:write"]));
    // Nothing changed: the offset, the staging bytes, no blob and so no media.
    let st =
        expect_json(writer.get(&format!("/api/v2/media/chunk_upload/{id}/")).send().await?, StatusCode::OK).await?;
    assert_eq!(st["offset"], 4);
    let staged = files_under(&s.blob_root().join("staging"));
    let sizes: Vec<u64> = staged.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).collect();
    assert_eq!(sizes, vec![4], "staging: {staged:?}");
    assert!(files_under(&s.blob_root().join("blobs")).is_empty(), "a media was stored");
    // The writer's token carries on from where it stopped, and the file is exact.
    expect_json(writer.chunk(Some(id), b"body", 4, None, "a").send().await?, StatusCode::OK).await?;
    let done = writer.post("/api/v2/media/chunk_upload_complete/").json(&json!({"upload_id": id})).send().await?;
    let m = expect_json(done, StatusCode::OK).await?;
    assert_eq!(m["sha256"], sha256_hex(b"headbody"));
    // Completing again (idempotent) is uploading too.
    let again = reader.post("/api/v2/media/chunk_upload_complete/").json(&json!({"upload_id": id})).send().await?;
    expect_problem(again, StatusCode::FORBIDDEN).await?;
    Ok(())
}

async fn reading_or_abandoning_ones_upload_needs_media_read_or_write(s: TestServer) -> TestResult {
    let writer = s.as_user("u-1", "acme", &["media:write"]);
    let reader = s.as_user("u-1", "acme", &["media:read"]);
    let neither = s.as_user("u-1", "acme", &["event:write"]);
    let up = expect_json(writer.chunk(None, b"head", 0, None, "a.bin").send().await?, StatusCode::OK).await?;
    let path = format!("/api/v2/media/chunk_upload/{}/", up["upload_id"].as_str().ok_or("id")?);
    let p = expect_problem(neither.get(&path).send().await?, StatusCode::FORBIDDEN).await?;
    assert_eq!(p["missingPermissions"], json!(["media:read", "media:write"]));
    expect_problem(neither.delete(&path).send().await?, StatusCode::FORBIDDEN).await?;
    for who in [&writer, &reader] {
        assert_eq!(expect_json(who.get(&path).send().await?, StatusCode::OK).await?["offset"], 4);
    }
    // A user who lost `media:write` can still drop what they started.
    assert_eq!(reader.delete(&path).send().await?.status(), StatusCode::NO_CONTENT);
    expect_problem(writer.get(&path).send().await?, StatusCode::NOT_FOUND).await?;
    assert!(files_under(&s.blob_root().join("staging")).is_empty());
    Ok(())
}

/// Chunks over 1 MiB take the filesystem store's direct writes (whole disk blocks from an
/// aligned buffer, the block a chunk starts in read back first): chunks that start and end
/// inside a block, a small one between them, and the file and a range across a chunk's
/// first block come back exactly.
async fn large_chunks_at_any_offset_come_back_byte_for_byte(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let bytes: Vec<u8> = (0..5_300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    let mut id: Option<String> = None;
    let mut at = 0;
    for len in [1_500_003, 5, 2_097_152, 1_702_840] {
        let r = u.chunk(id.as_deref(), &bytes[at..at + len], at, Some(bytes.len()), "big.bin").send().await?;
        let v = expect_json(r, StatusCode::OK).await?;
        at += len;
        assert_eq!(v["offset"], at);
        id = Some(v["upload_id"].as_str().ok_or("upload_id")?.to_owned());
    }
    let r = u
        .post("/api/v2/media/chunk_upload_complete/")
        .json(&json!({"upload_id": id, "md5": md5_hex(&bytes)}))
        .send()
        .await?;
    let m = expect_json(r, StatusCode::OK).await?;
    assert_eq!(
        (m["size"].as_u64(), m["sha256"].as_str()),
        (Some(bytes.len() as u64), Some(sha256_hex(&bytes).as_str()))
    );
    let file = format!("/api/v2/media/{}/file", m["id"]);
    let got = u.get(&file).send().await?;
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(sha256_hex(&got.bytes().await?), sha256_hex(&bytes), "the file, byte for byte");
    // Around the third chunk's start (1,500,008: inside a 4 KiB block).
    let r = u.get(&file).header("Range", "bytes=1499000-1510000").send().await?;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await?.as_ref(), &bytes[1_499_000..=1_510_000]);
    Ok(())
}

async fn identical_bytes_are_stored_once(s: TestServer) -> TestResult {
    let a = s.as_user("u-1", "acme", ALL);
    let b = s.as_user("u-2", "beta", ALL);
    let bytes = png(8, 8, 1);
    let m1 = a.upload(&bytes, 1000, "a.png").await?;
    let m2 = b.upload(&bytes, 50, "b.png").await?;
    assert_ne!(m1["id"], m2["id"]);
    assert_eq!(m1["sha256"], m2["sha256"]);
    assert_eq!(files_under(&s.blob_root().join("blobs")).len(), 1);
    Ok(())
}

/// A chunk and two completes of one upload at once: the completes answer one media or
/// 409 (`upload-in-progress`, with `offset`), the chunk lands before the bytes become a
/// blob or is refused, and the stored file always matches its media's size and SHA-256.
/// Also run on S3 (`e2e::s3`).
pub async fn a_chunk_racing_completes_never_changes_the_completed_file(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let tail = vec![b'y'; 64 * 1024];
    for _ in 0..8 {
        let up = expect_json(u.chunk(None, b"head", 0, None, "a.bin").send().await?, StatusCode::OK).await?;
        let id = up["upload_id"].as_str().ok_or("id")?.to_owned();
        let complete = || u.post("/api/v2/media/chunk_upload_complete/").json(&json!({"upload_id": id})).send();
        let (chunk, c1, c2) = tokio::join!(u.chunk(Some(&id), &tail, 4, None, "a").send(), complete(), complete());
        assert!(matches!(chunk?.status(), StatusCode::OK | StatusCode::CONFLICT | StatusCode::BAD_REQUEST));
        let mut answered = Vec::new();
        for r in [c1?, c2?] {
            if r.status() == StatusCode::CONFLICT {
                let p = expect_problem(r, StatusCode::CONFLICT).await?;
                assert!(p["offset"].is_u64(), "{p}");
            } else {
                answered.push(expect_json(r, StatusCode::OK).await?["id"].clone());
            }
        }
        let m = expect_json(complete().await?, StatusCode::OK).await?;
        assert!(answered.iter().all(|a| *a == m["id"]), "one media: {answered:?} vs {}", m["id"]);
        let got = u.get(&format!("/api/v2/media/{}/file", m["id"])).send().await?.bytes().await?;
        assert_eq!(got.len() as u64, m["size"].as_u64().ok_or("size")?);
        assert_eq!(sha256_hex(&got), m["sha256"], "the stored file is the media's bytes");
        assert!(m["size"] == 4 || m["size"] == 4 + 64 * 1024, "{}", m["size"]);
    }
    Ok(())
}

async fn two_chunks_racing_for_one_offset_are_never_both_appended(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    for _ in 0..10 {
        let up = expect_json(u.chunk(None, b"head", 0, None, "a.bin").send().await?, StatusCode::OK).await?;
        let id = up["upload_id"].as_str().ok_or("id")?.to_owned();
        let x = vec![b'x'; 64 * 1024];
        let y = vec![b'y'; 64 * 1024];
        let (rx, ry) =
            tokio::join!(u.chunk(Some(&id), &x, 4, None, "a").send(), u.chunk(Some(&id), &y, 4, None, "a").send());
        let (rx, ry) = (rx?, ry?);
        let statuses = [rx.status(), ry.status()];
        let winners = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        let (winner_bytes, loser) = if rx.status() == StatusCode::OK { (&x, ry) } else { (&y, rx) };
        if winners == 2 {
            // The second arrived after the first finished: a retry of the same range.
            // Legal only if it answered the same offset and changed nothing.
        } else {
            assert_eq!(winners, 1, "{statuses:?}");
            assert!(matches!(loser.status(), StatusCode::BAD_REQUEST | StatusCode::CONFLICT));
            let p: serde_json::Value = loser.json().await?;
            assert!(p["offset"].is_u64(), "{p}");
        }
        let m = expect_json(
            u.post("/api/v2/media/chunk_upload_complete/").json(&json!({"upload_id": id})).send().await?,
            StatusCode::OK,
        )
        .await?;
        assert_eq!(m["size"], 4 + 64 * 1024);
        let mut want = b"head".to_vec();
        want.extend_from_slice(winner_bytes);
        if winners == 1 {
            assert_eq!(m["sha256"], sha256_hex(&want));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_and_uploads_over_the_limits_are_too_large() -> TestResult {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(s) = TestServer::start(backend, "limits", |c| {
            c.max_chunk_bytes = 1024;
            c.max_upload_bytes = 4096;
        })
        .await?
        else {
            continue;
        };
        let u = s.as_user("u-1", "acme", ALL);
        let p = expect_problem(u.chunk(None, &[0; 2000], 0, None, "a").send().await?, StatusCode::PAYLOAD_TOO_LARGE)
            .await?;
        assert_eq!(p["limit"], 1024);
        expect_problem(u.chunk(None, &[0; 100], 0, Some(5000), "a").send().await?, StatusCode::PAYLOAD_TOO_LARGE)
            .await?;
        // Without a range the limit is enforced on the bytes as they stream.
        let r = u.put("/api/v2/media/chunk_upload/").body(vec![0u8; 3000]).send().await?;
        expect_problem(r, StatusCode::PAYLOAD_TOO_LARGE).await?;
        let up = expect_json(u.chunk(None, &[1; 1024], 0, None, "a").send().await?, StatusCode::OK).await?;
        let id = up["upload_id"].as_str().ok_or("id")?.to_owned();
        for i in 1..4 {
            expect_json(u.chunk(Some(&id), &[1; 1024], i * 1024, None, "a").send().await?, StatusCode::OK).await?;
        }
        expect_problem(u.chunk(Some(&id), &[1; 1], 4096, None, "a").send().await?, StatusCode::PAYLOAD_TOO_LARGE)
            .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_upload_is_gone_and_collected() -> TestResult {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        // A lifetime of zero: every upload is expired as soon as it is made.
        let Some(s) = TestServer::start(backend, "expiry", |c| c.upload_ttl_secs = 0).await? else { continue };
        let u = s.as_user("u-1", "acme", ALL);
        let up = expect_json(u.chunk(None, b"soon gone", 0, None, "a").send().await?, StatusCode::OK).await?;
        let id = up["upload_id"].as_str().ok_or("id")?;
        expect_problem(u.chunk(Some(id), b"!", 9, None, "a").send().await?, StatusCode::GONE).await?;
        expect_problem(u.get(&format!("/api/v2/media/chunk_upload/{id}/")).send().await?, StatusCode::GONE).await?;
        let r = u.post("/api/v2/media/chunk_upload_complete/").json(&json!({"upload_id": id})).send().await?;
        expect_problem(r, StatusCode::GONE).await?;
        assert_eq!(files_under(&s.blob_root().join("staging")).len(), 1);
        let n = mediabox::gc_once(&s.running.wired, mediabox::BLOB_GRACE).await?;
        assert_eq!((n.uploads.count, n.uploads.bytes), (1, 9), "one upload, its 9 staged bytes");
        assert!(files_under(&s.blob_root().join("staging")).is_empty(), "the chunks were collected");
        expect_problem(u.get(&format!("/api/v2/media/chunk_upload/{id}/")).send().await?, StatusCode::NOT_FOUND)
            .await?;
    }
    Ok(())
}

async fn one_upload_can_send_its_chunks_to_different_instances(s: TestServer) -> TestResult {
    // A second instance on the same database and data directory, as behind a load balancer.
    let other = mediabox::start(&s.config).await?;
    let b_base = format!("http://{}", other.addr);
    let u = s.as_user("u-1", "acme", ALL);
    let up = expect_json(u.chunk(None, b"first-", 0, Some(12), "a.bin").send().await?, StatusCode::OK).await?;
    let id = up["upload_id"].as_str().ok_or("id")?;
    let r = s
        .http
        .put(format!("{b_base}/api/v2/media/chunk_upload/{id}/"))
        .bearer_auth(&u.token)
        .header("Content-Range", "bytes 6-11/12")
        .body("second")
        .send()
        .await?;
    assert_eq!(expect_json(r, StatusCode::OK).await?["offset"], 12);
    let m = expect_json(
        u.post("/api/v2/media/chunk_upload_complete/")
            .json(&json!({"upload_id": id, "md5": md5_hex(b"first-second")}))
            .send()
            .await?,
        StatusCode::OK,
    )
    .await?;
    let r = s.http.get(format!("{b_base}/api/v2/media/{}/file", m["id"])).bearer_auth(&u.token).send().await?;
    assert_eq!(r.bytes().await?.as_ref(), b"first-second");
    drop(other.handle.stop(false));
    Ok(())
}

async fn an_internal_error_is_logged_and_answered_with_the_request_id_only(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let up = expect_json(u.chunk(None, b"data", 0, None, "a.bin").send().await?, StatusCode::OK).await?;
    let id = up["upload_id"].as_str().ok_or("id")?;
    // Corrupt the stored hash state behind the service's back.
    s.exec_sql("UPDATE uploads SET sha256_state = md5_state")?;
    let r = u
        .post("/api/v2/media/chunk_upload_complete/")
        .header("X-Request-Id", "req-500")
        .json(&json!({"upload_id": id}))
        .send()
        .await?;
    let p = expect_problem(r, StatusCode::INTERNAL_SERVER_ERROR).await?;
    assert_eq!(p["requestId"], "req-500");
    let body = p.to_string().to_lowercase();
    for leak in ["uploads", "sha256_state", "select", "update", "/tmp", "panicked", "corrupt"] {
        assert!(!body.contains(leak), "{leak} leaked: {body}");
    }
    Ok(())
}
