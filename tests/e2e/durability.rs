//! `MEDIABOX_FSYNC` (SPEC 3): without syncs, uploads work as with them; after a machine
//! crash, an upload whose staged bytes fall short of its recorded offset answers 410
//! (`upload-lost`) to its next chunk and to complete, and makes no media.

use mediabox_tests::{expect_json, expect_problem, on_both_databases, sha256_hex, Res, TestResult, TestServer, ALL};
use reqwest::StatusCode;
use serde_json::json;

on_both_databases!(using start, |c| c.fsync = false;
    uploads_without_sync_come_back_byte_for_byte,
    bytes_lost_in_a_crash_answer_410_and_make_no_media,
);

async fn uploads_without_sync_come_back_byte_for_byte(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let bytes: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let m = u.upload(&bytes, 256 * 1024, "a.bin").await?;
    let got = u.get(&format!("/api/v2/media/{}/file", m["id"])).send().await?;
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(sha256_hex(&got.bytes().await?), sha256_hex(&bytes));
    // Chunks over 1 MiB (the filesystem store's direct writes), starting inside a block.
    let large: Vec<u8> = (0..3_500_000u32).map(|i| (i.wrapping_mul(40_503) >> 7) as u8).collect();
    let m = u.upload(&large, 1_200_001, "b.bin").await?;
    let got = u.get(&format!("/api/v2/media/{}/file", m["id"])).send().await?;
    assert_eq!(sha256_hex(&got.bytes().await?), sha256_hex(&large));
    Ok(())
}

async fn bytes_lost_in_a_crash_answer_410_and_make_no_media(mut s: TestServer) -> TestResult {
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let (a, b, c) = {
        let u = s.as_user("u-1", "acme", ALL);
        let mut ids = Vec::new();
        // a and c with 200 000 of their 300 000 bytes acknowledged, b with all of them.
        for (name, sent) in [("a", 200_000), ("b", bytes.len()), ("c", 200_000)] {
            let r = u.chunk(None, &bytes[..sent], 0, Some(bytes.len()), name).send().await?;
            let v = expect_json(r, StatusCode::OK).await?;
            assert_eq!(v["offset"], sent);
            ids.push(v["upload_id"].as_str().ok_or("upload_id")?.to_owned());
        }
        (ids[0].clone(), ids[1].clone(), ids[2].clone())
    };
    let staging = |id: &str| -> Res<std::path::PathBuf> {
        Ok(s.blob_root().join("staging").join(uuid::Uuid::parse_str(id)?.simple().to_string()))
    };
    let (sa, sb) = (staging(&a)?, staging(&b)?);
    // The crash: the page cache held the tail of a's bytes and all of b's file.
    s.restart(|_| {
        std::fs::OpenOptions::new().write(true).open(&sa)?.set_len(150_000)?;
        std::fs::remove_file(&sb)?;
        Ok(())
    })
    .await?;
    let u = s.as_user("u-1", "acme", ALL);
    // a: the next chunk is refused, whatever offset the client believes in.
    let r = u.chunk(Some(&a), &bytes[200_000..], 200_000, Some(bytes.len()), "a").send().await?;
    let p = expect_problem(r, StatusCode::GONE).await?;
    assert!(p["type"].as_str().unwrap_or_default().ends_with("upload-lost"), "{p}");
    let complete = |id: &str| u.post("/api/v2/media/chunk_upload_complete/").json(&json!({"upload_id": id})).send();
    expect_problem(complete(&a).await?, StatusCode::GONE).await?;
    // b: completing is refused (nothing to complete from), and so is what follows.
    let p = expect_problem(complete(&b).await?, StatusCode::GONE).await?;
    assert!(p["type"].as_str().unwrap_or_default().ends_with("upload-lost"), "{p}");
    expect_problem(complete(&b).await?, StatusCode::GONE).await?;
    expect_problem(u.get(&format!("/api/v2/media/chunk_upload/{b}/")).send().await?, StatusCode::GONE).await?;
    // c kept its bytes: it goes on and completes exactly.
    let r = u.chunk(Some(&c), &bytes[200_000..], 200_000, Some(bytes.len()), "c").send().await?;
    expect_json(r, StatusCode::OK).await?;
    let m = expect_json(complete(&c).await?, StatusCode::OK).await?;
    assert_eq!(m["sha256"].as_str(), Some(sha256_hex(&bytes).as_str()));
    // No media but c's, and gc leaves nothing of a and b.
    assert_eq!(s.exec_sql("UPDATE media SET filename = filename")?, 1, "only c made a media");
    let done = mediabox::gc_once(&s.running.wired, mediabox::BLOB_GRACE).await?;
    assert_eq!(done.uploads.count, 2, "a and b are collected by their rows");
    assert!(!sa.exists() && !sb.exists());
    Ok(())
}
