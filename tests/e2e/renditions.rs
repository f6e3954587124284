//! Thumbnails and previews (SPEC 11), with real images made here.

use futures_util::future::join_all;
use image::GenericImageView;
use mediabox_tests::images::{self, colour_at, decode, METADATA_MARKS};
use mediabox_tests::{expect_json, expect_problem, on_both_databases, png, sha256_hex, TestResult, TestServer, ALL};
use reqwest::StatusCode;
use serde_json::{json, Value};

on_both_databases!(
    a_portrait_phone_photo_gets_upright_renditions_without_any_metadata,
    renditions_answer_etag_304_and_ranges_with_a_bearer_or_their_signed_link,
    transparency_stays_png_and_small_images_are_never_enlarged,
    media_that_are_not_raster_images_have_none_and_an_unknown_variant_is_400,
    a_decompression_bomb_and_a_damaged_jpeg_answer_422_never_500,
    concurrent_first_requests_make_and_store_one_copy,
    deleting_the_media_removes_its_renditions_and_gc_collects_strays,
    galleries_and_json_ld_carry_thumbnail_urls,
    a_burst_of_first_thumbnails_never_stalls_an_upload_and_memory_stays_bounded,
    first_requests_racing_deletes_leave_no_rendition_behind,
);

on_both_databases!(using start, |c| c.max_image_pixels = 10_000;
    the_pixel_limit_is_configurable,
);

on_both_databases!(using start_on_s3, |_| {};
    renditions_are_stored_in_the_bucket_and_removed_with_their_media,
);

async fn fetch(
    s: &TestServer,
    url: &str,
) -> Result<(reqwest::header::HeaderMap, Vec<u8>), Box<dyn std::error::Error + Send + Sync>> {
    let r = s.http.get(url).send().await?;
    if r.status() != StatusCode::OK {
        return Err(format!("{url}: {} {}", r.status(), r.text().await?).into());
    }
    let headers = r.headers().clone();
    Ok((headers, r.bytes().await?.to_vec()))
}

fn link<'a>(m: &'a Value, member: &str) -> Result<&'a str, String> {
    m[member].as_str().ok_or_else(|| format!("no {member} in {m}"))
}

fn assert_no_metadata(bytes: &[u8]) {
    for mark in METADATA_MARKS {
        assert!(!bytes.windows(mark.len()).any(|w| w == mark), "{} left in a rendition", String::from_utf8_lossy(mark));
    }
}

async fn a_portrait_phone_photo_gets_upright_renditions_without_any_metadata(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    // Stored 2400x1200 (landscape), orientation 6: shown upright it is 1200x2400.
    let photo = images::phone_photo(2400, 1200, 6, b"");
    let m = u.upload(&photo, 1 << 20, "IMG_0001.JPG").await?;
    assert_eq!(m["content_type"], "image/jpeg");

    let (h, thumb) = fetch(&s, link(&m, "thumbnail")?).await?;
    assert_eq!(h["content-type"], "image/jpeg");
    assert!(h["content-disposition"].to_str()?.starts_with("inline; filename=\"IMG_0001-thumb.jpg\""));
    let t = decode(&thumb)?;
    assert_eq!(t.dimensions(), (160, 320), "fits 320x320, upright");
    // Upright: the stored top (red) is now on the right, the bottom (blue) on the left.
    assert_eq!((colour_at(&t, 0.8, 0.5), colour_at(&t, 0.2, 0.5)), ("red", "blue"));
    assert_no_metadata(&thumb);

    let (_, preview) = fetch(&s, link(&m, "preview")?).await?;
    let p = decode(&preview)?;
    assert_eq!(p.dimensions(), (800, 1600), "fits 1600x1600, upright");
    assert_eq!((colour_at(&p, 0.8, 0.5), colour_at(&p, 0.2, 0.5)), ("red", "blue"));
    assert_no_metadata(&preview);

    // The original is untouched: the same bytes, EXIF and all.
    let (_, original) = fetch(&s, link(&m, "file")?).await?;
    assert_eq!(sha256_hex(&original), sha256_hex(&photo));
    assert_eq!(m["sha256"], sha256_hex(&photo));
    Ok(())
}

async fn renditions_answer_etag_304_and_ranges_with_a_bearer_or_their_signed_link(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let m = u.upload(&images::phone_photo(1000, 800, 1, b""), 1 << 20, "a.jpg").await?;
    let id = m["id"].as_i64().ok_or("id")?;
    let (signed_headers, signed) = fetch(&s, link(&m, "thumbnail")?).await?;
    let r = u.get(&format!("/api/v2/media/{id}/file?variant=thumb")).send().await?;
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers()["etag"].to_str()?.to_owned();
    assert_eq!(r.headers()["content-length"].to_str()?, signed.len().to_string());
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.bytes().await?.to_vec(), signed, "the bearer and the signed link serve the same bytes");
    assert_eq!(signed_headers["etag"].to_str()?, etag);
    assert_eq!(etag, format!("\"{}\"", sha256_hex(&signed)), "the ETag is the rendition's, not the original's");
    assert_ne!(etag, format!("\"{}\"", m["sha256"].as_str().ok_or("sha")?));

    let path = format!("/api/v2/media/{id}/file?variant=thumb");
    let r = u.get(&path).header("If-None-Match", &etag).send().await?;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = u.get(&path).header("Range", "bytes=2-9").send().await?;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"].to_str()?, format!("bytes 2-9/{}", signed.len()));
    assert_eq!(r.bytes().await?.to_vec(), signed[2..10].to_vec());
    let r = u.get(&path).header("Range", format!("bytes={}-", signed.len())).send().await?;
    expect_problem(r, StatusCode::RANGE_NOT_SATISFIABLE).await?;

    // A thumbnail's link never opens the original or the preview, nor another's thumbnail.
    let thumb_link = link(&m, "thumbnail")?.to_owned();
    for (tampered, why) in [
        (thumb_link.replace("variant=thumb&", ""), "without its variant"),
        (thumb_link.replace("variant=thumb", "variant=preview"), "as a preview"),
    ] {
        let r = s.http.get(&tampered).send().await?;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{why}");
    }
    let stranger = s.as_user("u-9", "beta", ALL);
    expect_problem(stranger.get(&path).send().await?, StatusCode::NOT_FOUND).await?;
    let no_read = s.as_user("u-1", "acme", &["media:write"]);
    expect_problem(no_read.get(&path).send().await?, StatusCode::FORBIDDEN).await?;
    Ok(())
}

async fn transparency_stays_png_and_small_images_are_never_enlarged(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let m = u.upload(&images::transparent_png(800, 400), 1 << 20, "logo.png").await?;
    let (h, thumb) = fetch(&s, link(&m, "thumbnail")?).await?;
    assert_eq!(h["content-type"], "image/png");
    let t = decode(&thumb)?;
    assert_eq!(t.dimensions(), (320, 160));
    let px = |x, y| t.to_rgba8().get_pixel(x, y).0;
    assert_eq!(px(10, 80)[3], 0, "the transparent half stays transparent");
    assert_eq!(px(300, 80)[3], 255);

    // An opaque PNG becomes a JPEG; a tiny one keeps its size.
    let tiny = u.upload(&png(3, 2, 7), 1000, "tiny.png").await?;
    for member in ["thumbnail", "preview"] {
        let (h, bytes) = fetch(&s, link(&tiny, member)?).await?;
        assert_eq!(h["content-type"], "image/jpeg");
        assert_eq!(decode(&bytes)?.dimensions(), (3, 2), "{member} is never upscaled");
    }
    Ok(())
}

async fn media_that_are_not_raster_images_have_none_and_an_unknown_variant_is_400(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>"#;
    for (bytes, name) in [(b"just some words".as_slice(), "notes.txt"), (svg.as_slice(), "icon.svg")] {
        let m = u.upload(bytes, 1000, name).await?;
        assert_eq!((&m["thumbnail"], &m["preview"]), (&Value::Null, &Value::Null), "{name}");
        let r = u
            .get(&format!("/rest/api/medias/{}", m["uuid"].as_str().ok_or("uuid")?))
            .header("X-Organization-Id", "acme")
            .send()
            .await?;
        let ld = expect_json(r, StatusCode::OK).await?;
        assert_eq!(ld["thumbnailUrl"], Value::Null, "{name}: no thumbnailUrl in JSON-LD");
        // SPEC 11: `duration` is a video's; `null` for other kinds, in both views.
        assert_eq!((&m["duration"], &ld["duration"]), (&Value::Null, &Value::Null), "{name}");
        let r = u.get(&format!("/api/v2/media/{}/file?variant=thumb", m["id"])).send().await?;
        expect_problem(r, StatusCode::NOT_FOUND).await?;
    }
    let photo = u.upload(&png(4, 4, 1), 1000, "p.png").await?;
    assert_eq!((&photo["duration"], photo["width"].as_u64()), (&Value::Null, Some(4)), "an image has no duration");
    for bad in ["huge", "THUMB", "", "original"] {
        let r = u.get(&format!("/api/v2/media/{}/file?variant={bad}", photo["id"])).send().await?;
        let p = expect_problem(r, StatusCode::BAD_REQUEST).await?;
        assert!(p["detail"].as_str().is_some_and(|d| d.contains("thumb or preview")), "{p}");
    }
    Ok(())
}

async fn a_decompression_bomb_and_a_damaged_jpeg_answer_422_never_500(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let bomb_bytes = images::png_bomb(50_000, 50_000);
    assert!(bomb_bytes.len() < 100 * 1024, "the bomb is small: {} bytes", bomb_bytes.len());
    let bomb = u.upload(&bomb_bytes, 1 << 20, "bomb.png").await?;
    assert_eq!((bomb["width"].as_u64(), bomb["height"].as_u64()), (Some(50_000), Some(50_000)));
    let damaged = u.upload(&images::damaged_jpeg(), 1 << 20, "damaged.jpg").await?;
    assert_eq!(damaged["content_type"], "image/jpeg");
    for _ in 0..2 {
        for (m, kind) in [(&bomb, "image-too-large"), (&damaged, "image-not-decodable")] {
            for member in ["thumbnail", "preview"] {
                let p = expect_problem(s.http.get(link(m, member)?).send().await?, StatusCode::UNPROCESSABLE_ENTITY)
                    .await?;
                assert!(p["type"].as_str().is_some_and(|t| t.ends_with(kind)), "{p}");
            }
        }
    }
    // The bomb's own header decides, also when its dimensions were never recorded.
    s.exec_sql("UPDATE media SET width = NULL, height = NULL")?;
    let p =
        expect_problem(s.http.get(link(&bomb, "thumbnail")?).send().await?, StatusCode::UNPROCESSABLE_ENTITY).await?;
    assert!(p["type"].as_str().is_some_and(|t| t.ends_with("image-too-large")), "{p}");
    // And the server is well.
    let fine = u.upload(&png(40, 40, 3), 1000, "fine.png").await?;
    fetch(&s, link(&fine, "thumbnail")?).await?;
    Ok(())
}

async fn the_pixel_limit_is_configurable(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let small = u.upload(&png(100, 100, 1), 1000, "small.png").await?;
    let big = u.upload(&png(101, 100, 1), 1000, "big.png").await?;
    fetch(&s, link(&small, "thumbnail")?).await?;
    let p =
        expect_problem(s.http.get(link(&big, "thumbnail")?).send().await?, StatusCode::UNPROCESSABLE_ENTITY).await?;
    assert!(p["type"].as_str().is_some_and(|t| t.ends_with("image-too-large")), "{p}");
    assert!(p["detail"].as_str().is_some_and(|d| d.contains("10000")), "{p}");
    Ok(())
}

async fn concurrent_first_requests_make_and_store_one_copy(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let m = u.upload(&images::phone_photo(1600, 1200, 1, b""), 1 << 20, "a.jpg").await?;
    let url = link(&m, "thumbnail")?.to_owned();
    let got = join_all((0..16).map(|_| fetch(&s, &url))).await;
    let bodies: Vec<Vec<u8>> = got.into_iter().map(|r| r.map(|(_, b)| b)).collect::<Result<_, _>>()?;
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "every request got the same bytes");
    assert_eq!(s.rendition_files().len(), 1, "one stored copy");
    assert_eq!(s.exec_sql("UPDATE renditions SET width = width")?, 1, "one record");
    Ok(())
}

async fn deleting_the_media_removes_its_renditions_and_gc_collects_strays(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let bytes = images::phone_photo(800, 600, 1, b"");
    // Two media of the same bytes share one blob and its renditions.
    let a = u.upload(&bytes, 1 << 20, "a.jpg").await?;
    let b = u.upload(&bytes, 1 << 20, "b.jpg").await?;
    for m in [&a, &b] {
        for member in ["thumbnail", "preview"] {
            fetch(&s, link(m, member)?).await?;
        }
    }
    assert_eq!(s.rendition_files().len(), 2, "a thumb and a preview, shared");
    u.delete_through_rest(&a).await?;
    assert_eq!(s.rendition_files().len(), 2, "still used by the other media");
    fetch(&s, link(&b, "thumbnail")?).await?;
    let gone =
        expect_json(u.delete("/api/v1/images").json(&json!({"image_ids": [b["uuid"]]})).send().await?, StatusCode::OK)
            .await?;
    assert_eq!(gone, json!([b["uuid"]]));
    assert!(s.rendition_files().is_empty(), "the renditions went with their last media");
    assert!(s.stored_files().is_empty(), "nothing is left: {:?}", s.stored_files());
    assert_eq!(s.exec_sql("DELETE FROM renditions")?, 0, "no record is left");

    // A rendition left behind (a crash between a delete's commit and its removal of the
    // files) is collected by gc, while a live media's renditions stay.
    let c = u.upload(&images::phone_photo(640, 480, 1, b"c"), 1 << 20, "c.jpg").await?;
    fetch(&s, link(&c, "thumbnail")?).await?;
    let live = s.stored_files();
    let thumb = live.iter().find(|p| p.to_string_lossy().ends_with(".thumb")).ok_or("thumb file")?.clone();
    let stray_key = format!("{}.preview", uuid::Uuid::new_v4().simple());
    let stray = s.blob_root().join("blobs").join(&stray_key[0..2]).join(&stray_key);
    std::fs::create_dir_all(stray.parent().ok_or("parent")?)?;
    std::fs::write(&stray, b"stray")?;
    let done = mediabox::gc_once(&s.running.wired, chrono::Duration::zero()).await?;
    assert_eq!((done.blobs.count, done.blobs.bytes), (1, 5));
    assert!(!stray.exists());
    assert!(thumb.exists(), "a live media's rendition is kept");
    fetch(&s, link(&c, "thumbnail")?).await?;
    Ok(())
}

async fn galleries_and_json_ld_carry_thumbnail_urls(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let event = u.event("party").await?;
    let m = u.upload(&images::phone_photo(640, 480, 1, b""), 1 << 20, "p.jpg").await?;
    let r = u.post(&format!("/api/v2/event/{event}/gallery/")).json(&json!({"media": m["id"]})).send().await?;
    assert!(r.status().is_success(), "{}", r.status());
    let page = expect_json(u.get(&format!("/api/v2/event/{event}/gallery/")).send().await?, StatusCode::OK).await?;
    let item = &page["results"][0];
    let (_, thumb) = fetch(&s, link(item, "thumbnail")?).await?;
    assert_eq!(decode(&thumb)?.dimensions(), (320, 240));
    fetch(&s, link(item, "preview")?).await?;

    let r = u
        .get(&format!("/rest/api/medias/{}", m["uuid"].as_str().ok_or("uuid")?))
        .header("X-Flowkiwi-Organization-Id", "acme")
        .header("Accept", "application/ld+json")
        .send()
        .await?;
    let ld = expect_json(r, StatusCode::OK).await?;
    let (_, same) = fetch(&s, link(&ld, "thumbnailUrl")?).await?;
    assert_eq!(same, thumb);
    Ok(())
}

async fn renditions_are_stored_in_the_bucket_and_removed_with_their_media(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let m = u.upload(&images::phone_photo(1200, 900, 6, b""), 1 << 20, "s3.jpg").await?;
    let (_, thumb) = fetch(&s, link(&m, "thumbnail")?).await?;
    assert_eq!(decode(&thumb)?.dimensions(), (240, 320));
    assert_no_metadata(&thumb);
    assert_eq!(s.rendition_files().len(), 1, "stored in the bucket");
    // Served from the bucket the second time, the same bytes.
    assert_eq!(fetch(&s, link(&m, "thumbnail")?).await?.1, thumb);

    // Two instances on one bucket and database, each asked at once for a preview
    // nobody has made yet (SPEC 10 and 11): one copy is stored, one is recorded, and
    // both answer its bytes.
    let other = s.second_instance()?;
    other.ready(&s.http).await?;
    let preview = link(&m, "preview")?.to_owned();
    let elsewhere = preview.replacen(&s.base, &other.base, 1);
    let (here, there) = tokio::join!(fetch(&s, &preview), fetch(&s, &elsewhere));
    let (here, there) = (here?.1, there?.1);
    assert_eq!(decode(&here)?.dimensions(), (900, 1200));
    assert_eq!(here, there, "both instances answer the same preview");
    assert_eq!(s.rendition_files().len(), 2, "one thumb and one preview in the bucket");
    assert_eq!(s.exec_sql("UPDATE renditions SET width = width")?, 2, "one record each");

    u.delete_through_rest(&m).await?;
    assert!(s.rendition_files().is_empty());
    Ok(())
}

async fn a_burst_of_first_thumbnails_never_stalls_an_upload_and_memory_stays_bounded(s: TestServer) -> TestResult {
    // A server process of its own, so that its memory is its own.
    let server = s.second_instance()?;
    server.ready(&s.http).await?;
    let u = s.as_user("u-1", "acme", ALL);
    let u = u.at(&server.base);
    // 32 distinct 12-megapixel photos (the same picture, different bytes after its end).
    let big = images::phone_photo(4000, 3000, 1, b"");
    let mut thumbs = Vec::new();
    for i in 0..32u8 {
        let m = u.upload(&[big.as_slice(), &[i]].concat(), 8 << 20, "big.jpg").await?;
        thumbs.push(link(&m, "thumbnail")?.to_owned());
    }
    let after_uploads = server.peak_rss_kib();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let first_done = std::sync::Arc::new(tokio::sync::Notify::new());
    let burst: Vec<_> = thumbs
        .into_iter()
        .map(|url| {
            let (http, done, first_done) = (s.http.clone(), done.clone(), first_done.clone());
            tokio::spawn(async move {
                let r = http.get(&url).send().await?;
                let ok = r.status() == StatusCode::OK
                    && decode(&r.bytes().await?).is_ok_and(|t| t.dimensions() == (320, 240));
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                first_done.notify_one();
                Ok::<bool, reqwest::Error>(ok)
            })
        })
        .collect();
    // The first thumbnails are made (on at most one thread per core) while a small photo
    // is uploaded: the upload is answered while most of the burst still waits.
    first_done.notified().await;
    let small = u.upload(&png(64, 64, 5), 1 << 20, "small.png").await?;
    let finished_then = done.load(std::sync::atomic::Ordering::SeqCst);
    assert!(small["id"].as_i64().is_some());
    eprintln!("the upload was answered after {finished_then} of 32 thumbnails");
    assert!(finished_then <= 16, "the upload waited for {finished_then} of 32 thumbnails");
    for t in join_all(burst).await {
        assert!(t??, "every thumbnail is made, 320x240");
    }
    if let (Some(before), Some(peak)) = (after_uploads, server.peak_rss_kib()) {
        // Each render holds one original (a few MiB) and its pixels decoded at 1/8 scale;
        // 32 full decodes would hold 32 x 36 MiB.
        eprintln!("peak RSS {} MiB, {} MiB after the uploads", peak / 1024, before / 1024);
        assert!(peak < 200 * 1024, "peak RSS {} MiB (after the uploads {} MiB)", peak / 1024, before / 1024);
    }
    Ok(())
}

async fn first_requests_racing_deletes_leave_no_rendition_behind(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let photo = images::phone_photo(1600, 1200, 1, b"");
    for round in 0..6u8 {
        let mut media = Vec::new();
        for i in 0..4u8 {
            media.push(u.upload(&[photo.as_slice(), &[round, i]].concat(), 1 << 20, "r.jpg").await?);
        }
        // Each photo's thumbnail and preview are asked for while it is being deleted.
        let renders = media.iter().flat_map(|m| ["thumbnail", "preview"].map(|k| m[k].as_str().map(str::to_owned)));
        let renders = join_all(renders.flatten().map(|url| {
            let http = s.http.clone();
            async move { http.get(url).send().await.map(|r| r.status()) }
        }));
        let ids: Vec<Value> = media.iter().map(|m| m["uuid"].clone()).collect();
        let delete = async { u.delete("/api/v1/images").json(&json!({ "image_ids": ids })).send().await };
        let (statuses, deleted) = tokio::join!(renders, delete);
        assert_eq!(deleted?.status(), StatusCode::OK);
        for st in statuses {
            let st = st?;
            assert!(st == StatusCode::OK || st == StatusCode::NOT_FOUND, "a racing first request answered {st}");
        }
        assert!(s.stored_files().is_empty(), "round {round}: left behind {:?}", s.stored_files());
        assert_eq!(s.exec_sql("DELETE FROM renditions")?, 0, "round {round}: a record outlived its blob");
    }
    Ok(())
}
