//! tus 1.0.0 (SPEC 12): the protocol's status codes and headers, auth, CORS, metadata,
//! completion, interruption and races, over real HTTP on both databases.

use base64::Engine as _;
use mediabox_tests::{
    expect_json, expect_problem, on_both_databases, png, sha256_hex, Backend, Caller, TestResult, TestServer, ALL,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::json;
use tokio::io::AsyncWriteExt;

const TUS: &str = "/api/v2/media/tus/";
const MIB: usize = 1 << 20;

on_both_databases!(
    options_tells_the_protocol_without_authentication,
    requests_without_our_tus_version_are_refused_with_412,
    an_upload_created_then_patched_in_pieces_becomes_a_media_announced_by_its_last_byte,
    creation_with_upload_sends_a_small_file_in_one_request,
    a_deferred_length_is_announced_by_a_patch_and_an_empty_upload_is_an_empty_media,
    a_patch_at_the_wrong_offset_or_of_the_wrong_type_keeps_nothing,
    a_checksum_mismatch_answers_460_and_keeps_nothing_of_that_patch,
    termination_forgets_the_upload_and_keeps_a_completed_media,
    an_expired_upload_answers_410,
    only_the_uploader_sees_an_upload_and_writing_needs_media_write,
    the_event_in_the_metadata_adds_the_media_to_its_gallery_under_seed_001s_rule,
    partial_uploads_join_into_a_final_upload_sent_before_they_finish,
    two_patches_racing_for_one_offset_append_once,
    cors_preflight_and_exposed_headers_for_configured_origins_only,
);

// A chunk limit of 1 MiB: a PATCH of a few MiB is recorded in several segments.
on_both_databases!(using start, |c| c.max_chunk_bytes = 1 << 20;
    a_patch_cut_off_mid_body_keeps_what_arrived_and_the_client_resumes_there,
    a_patch_longer_than_the_chunk_limit_is_one_request_and_a_checksummed_one_is_not,
);

/// A tus request: bearer token and `Tus-Resumable`.
fn tus(u: &Caller<'_>, method: Method, path: &str) -> RequestBuilder {
    u.req(method, path).header("Tus-Resumable", "1.0.0")
}

/// The path of an absolute `Location`.
fn path_of(r: &Response) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let loc = header(r, "location").ok_or("no Location")?;
    assert!(loc.starts_with("http://"), "Location is absolute: {loc}");
    Ok(loc.split_once("/api/").map(|(_, p)| format!("/api/{p}")).ok_or("odd Location")?)
}

fn header(r: &Response, name: &str) -> Option<String> {
    r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Creates an upload of `len` bytes (with `metadata`) and answers its path.
pub(crate) async fn create(
    u: &Caller<'_>,
    len: usize,
    metadata: &str,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let mut req = tus(u, Method::POST, TUS).header("Upload-Length", len.to_string());
    if !metadata.is_empty() {
        req = req.header("Upload-Metadata", metadata);
    }
    let r = req.send().await?;
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    path_of(&r)
}

pub(crate) fn patch(u: &Caller<'_>, path: &str, offset: usize, bytes: &[u8]) -> RequestBuilder {
    tus(u, Method::PATCH, path)
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(bytes.to_vec())
}

pub(crate) async fn offset(u: &Caller<'_>, path: &str) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let r = tus(u, Method::HEAD, path).send().await?;
    assert_eq!(r.status(), StatusCode::OK, "HEAD {path}");
    Ok(header(&r, "upload-offset").ok_or("no Upload-Offset")?.parse()?)
}

/// The media a `Media-Location` names.
pub(crate) async fn media_at(
    u: &Caller<'_>,
    r: &Response,
) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
    let loc = header(r, "media-location").ok_or("no Media-Location")?;
    assert!(loc.starts_with("/api/v2/media/") && loc.ends_with('/'), "{loc}");
    expect_json(u.get(&loc).send().await?, StatusCode::OK).await
}

async fn download(u: &Caller<'_>, m: &serde_json::Value) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    Ok(u.get(&format!("/api/v2/media/{}/file", m["id"])).send().await?.bytes().await?.to_vec())
}

fn file(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 11) as u8).collect()
}

async fn options_tells_the_protocol_without_authentication(s: TestServer) -> TestResult {
    for path in [TUS.to_owned(), format!("{TUS}00000000-0000-0000-0000-000000000000")] {
        let r = s.http.request(Method::OPTIONS, s.url(&path)).send().await?;
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{path}");
        assert_eq!(header(&r, "tus-resumable").as_deref(), Some("1.0.0"));
        assert_eq!(header(&r, "tus-version").as_deref(), Some("1.0.0"));
        let ext = header(&r, "tus-extension").ok_or("no Tus-Extension")?;
        for e in [
            "creation",
            "creation-with-upload",
            "creation-defer-length",
            "termination",
            "checksum",
            "expiration",
            "concatenation",
            "concatenation-unfinished",
        ] {
            assert!(ext.split(',').any(|x| x == e), "{e} missing from {ext}");
        }
        assert_eq!(header(&r, "tus-max-size"), Some(s.config.max_upload_bytes.to_string()));
        assert_eq!(header(&r, "tus-checksum-algorithm").as_deref(), Some("sha1,md5,sha256"));
    }
    Ok(())
}

async fn requests_without_our_tus_version_are_refused_with_412(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    for version in [None, Some("0.2.2")] {
        let mut req = u.post(TUS).header("Upload-Length", "5");
        if let Some(v) = version {
            req = req.header("Tus-Resumable", v);
        }
        let r = req.send().await?;
        assert_eq!(header(&r, "tus-version").as_deref(), Some("1.0.0"));
        assert_eq!(header(&r, "tus-resumable").as_deref(), Some("1.0.0"), "on errors too");
        expect_problem(r, StatusCode::PRECONDITION_FAILED).await?;
    }
    assert_eq!(s.exec_sql("DELETE FROM uploads")?, 0, "nothing was created");
    Ok(())
}

async fn an_upload_created_then_patched_in_pieces_becomes_a_media_announced_by_its_last_byte(
    s: TestServer,
) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let bytes = png(64, 48, 3);
    // The client claims a type; the bytes decide.
    let meta = format!("filename {},filetype {}", b64("../holiday <1>.png"), b64("text/html"));
    let r = tus(&u, Method::POST, TUS)
        .header("Upload-Length", bytes.len().to_string())
        .header("Upload-Metadata", &meta)
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(header(&r, "upload-expires").is_some_and(|e| e.ends_with(" GMT")), "RFC 9110 date");
    let path = path_of(&r)?;
    let r = tus(&u, Method::HEAD, &path).send().await?;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "upload-offset").as_deref(), Some("0"));
    assert_eq!(header(&r, "upload-length"), Some(bytes.len().to_string()));
    assert_eq!(header(&r, "cache-control").as_deref(), Some("no-store"));
    assert!(header(&r, "upload-metadata").is_some_and(|m| m.contains("filename ")));
    assert!(header(&r, "media-location").is_none());
    let cut = bytes.len() / 3;
    let r = patch(&u, &path, 0, &bytes[..cut]).send().await?;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "upload-offset"), Some(cut.to_string()));
    assert!(header(&r, "upload-expires").is_some() && header(&r, "media-location").is_none());
    // X-HTTP-Method-Override: a POST that means PATCH.
    let r = tus(&u, Method::POST, &path)
        .header("X-HTTP-Method-Override", "PATCH")
        .header("Upload-Offset", cut.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(bytes[cut..].to_vec())
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "upload-offset"), Some(bytes.len().to_string()));
    assert!(header(&r, "upload-expires").is_none(), "a finished upload does not expire");
    let m = media_at(&u, &r).await?;
    assert_eq!(m["content_type"], "image/png");
    assert_eq!((m["width"].as_u64(), m["height"].as_u64()), (Some(64), Some(48)));
    assert_eq!(m["sha256"], sha256_hex(&bytes));
    let name = m["filename"].as_str().ok_or("filename")?;
    assert!(name.contains("holiday") && !name.contains('/'), "named by the metadata, sanitized: {name}");
    assert_eq!(download(&u, &m).await?, bytes);
    // Every later HEAD says where the media is.
    let r = tus(&u, Method::HEAD, &path).send().await?;
    assert_eq!(header(&r, "upload-offset"), Some(bytes.len().to_string()));
    assert_eq!(media_at(&u, &r).await?["id"], m["id"]);
    Ok(())
}

async fn creation_with_upload_sends_a_small_file_in_one_request(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let bytes = file(64 * 1024, 1);
    let r = tus(&u, Method::POST, TUS)
        .header("Upload-Length", bytes.len().to_string())
        .header("Upload-Metadata", format!("name {}", b64("one.bin")))
        .header("Content-Type", "application/offset+octet-stream")
        .body(bytes.clone())
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "upload-offset"), Some(bytes.len().to_string()));
    let m = media_at(&u, &r).await?;
    assert_eq!(m["filename"], "one.bin", "Uppy's `name` names it too");
    assert_eq!(download(&u, &m).await?, bytes);
    // A first part only: the rest follows by PATCH.
    let r = tus(&u, Method::POST, TUS)
        .header("Upload-Length", (bytes.len() * 2).to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(bytes.clone())
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "upload-offset"), Some(bytes.len().to_string()));
    assert!(header(&r, "media-location").is_none());
    // A body with another type is not taken for upload bytes.
    let r = tus(&u, Method::POST, TUS)
        .header("Upload-Length", "3")
        .header("Content-Type", "text/plain")
        .body("abc")
        .send()
        .await?;
    expect_problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await?;
    Ok(())
}

async fn a_deferred_length_is_announced_by_a_patch_and_an_empty_upload_is_an_empty_media(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let r = tus(&u, Method::POST, TUS).header("Upload-Defer-Length", "1").send().await?;
    assert_eq!(r.status(), StatusCode::CREATED);
    let path = path_of(&r)?;
    let r = tus(&u, Method::HEAD, &path).send().await?;
    assert_eq!(header(&r, "upload-defer-length").as_deref(), Some("1"));
    assert!(header(&r, "upload-length").is_none());
    let bytes = file(1000, 2);
    assert_eq!(patch(&u, &path, 0, &bytes[..600]).send().await?.status(), StatusCode::NO_CONTENT);
    let r = patch(&u, &path, 600, &bytes[600..]).header("Upload-Length", "1000").send().await?;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(download(&u, &media_at(&u, &r).await?).await?, bytes);
    // Neither a length nor a deferral: 400. Both: 400.
    expect_problem(tus(&u, Method::POST, TUS).send().await?, StatusCode::BAD_REQUEST).await?;
    let both = tus(&u, Method::POST, TUS).header("Upload-Length", "3").header("Upload-Defer-Length", "1");
    expect_problem(both.send().await?, StatusCode::BAD_REQUEST).await?;
    // Over the upload limit: 413.
    let huge = tus(&u, Method::POST, TUS).header("Upload-Length", (s.config.max_upload_bytes + 1).to_string());
    expect_problem(huge.send().await?, StatusCode::PAYLOAD_TOO_LARGE).await?;
    // Upload-Length: 0 makes an empty media at once.
    let r = tus(&u, Method::POST, TUS).header("Upload-Length", "0").send().await?;
    assert_eq!(r.status(), StatusCode::CREATED);
    let m = media_at(&u, &r).await?;
    assert_eq!((m["size"].as_u64(), m["sha256"].as_str()), (Some(0), Some(sha256_hex(b"").as_str())));
    assert!(download(&u, &m).await?.is_empty());
    Ok(())
}

async fn a_patch_at_the_wrong_offset_or_of_the_wrong_type_keeps_nothing(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let bytes = file(3000, 3);
    let path = create(&u, bytes.len(), "").await?;
    assert_eq!(patch(&u, &path, 0, &bytes[..1000]).send().await?.status(), StatusCode::NO_CONTENT);
    // No retry rule in tus: resending the last PATCH is a conflict.
    let r = patch(&u, &path, 0, &bytes[..1000]).send().await?;
    let p = expect_problem(r, StatusCode::CONFLICT).await?;
    assert_eq!(p["offset"], 1000);
    expect_problem(patch(&u, &path, 1500, &bytes[1500..]).send().await?, StatusCode::CONFLICT).await?;
    let wrong_type = tus(&u, Method::PATCH, &path)
        .header("Upload-Offset", "1000")
        .header("Content-Type", "application/octet-stream")
        .body(bytes[1000..].to_vec());
    expect_problem(wrong_type.send().await?, StatusCode::UNSUPPORTED_MEDIA_TYPE).await?;
    let no_offset = tus(&u, Method::PATCH, &path)
        .header("Content-Type", "application/offset+octet-stream")
        .body(bytes[1000..].to_vec());
    expect_problem(no_offset.send().await?, StatusCode::BAD_REQUEST).await?;
    // Past the length: 413, nothing kept.
    let mut long = bytes[1000..].to_vec();
    long.push(0);
    expect_problem(patch(&u, &path, 1000, &long).send().await?, StatusCode::PAYLOAD_TOO_LARGE).await?;
    assert_eq!(offset(&u, &path).await?, 1000);
    let r = patch(&u, &path, 1000, &bytes[1000..]).send().await?;
    assert_eq!(download(&u, &media_at(&u, &r).await?).await?, bytes);
    // An unknown upload, or an id that is none: 404.
    let r = tus(&u, Method::HEAD, &format!("{TUS}00000000-0000-0000-0000-000000000000")).send().await?;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    expect_problem(patch(&u, &format!("{TUS}not-an-id"), 0, b"x").send().await?, StatusCode::NOT_FOUND).await?;
    Ok(())
}

async fn a_checksum_mismatch_answers_460_and_keeps_nothing_of_that_patch(s: TestServer) -> TestResult {
    use sha2::Digest;
    let u = s.as_user("u-1", "acme", ALL);
    let bytes = file(5000, 4);
    let path = create(&u, bytes.len(), "").await?;
    let (a, b) = bytes.split_at(2000);
    let sha1 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(sha1_of(d));
    let r = patch(&u, &path, 0, a).header("Upload-Checksum", format!("sha1 {}", sha1(b))).send().await?;
    let p = expect_problem(r, StatusCode::from_u16(460)?).await?;
    assert_eq!(p["title"], "Checksum Mismatch");
    assert_eq!(offset(&u, &path).await?, 0, "nothing of that PATCH was kept");
    let r = patch(&u, &path, 0, a).header("Upload-Checksum", format!("sha1 {}", sha1(a))).send().await?;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let unknown = patch(&u, &path, 2000, b).header("Upload-Checksum", "crc32 AAAA");
    let p = expect_problem(unknown.send().await?, StatusCode::BAD_REQUEST).await?;
    assert_eq!(p["field"], "Upload-Checksum");
    let sha256 = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(b));
    let r = patch(&u, &path, 2000, b).header("Upload-Checksum", format!("sha256 {sha256}")).send().await?;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let m = media_at(&u, &r).await?;
    assert_eq!(m["sha256"], sha256_hex(&bytes));
    Ok(())
}

fn sha1_of(d: &[u8]) -> Vec<u8> {
    use sha1::Digest;
    sha1::Sha1::digest(d).to_vec()
}

async fn termination_forgets_the_upload_and_keeps_a_completed_media(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let path = create(&u, 100, "").await?;
    assert_eq!(patch(&u, &path, 0, &file(50, 5)).send().await?.status(), StatusCode::NO_CONTENT);
    assert_eq!(tus(&u, Method::DELETE, &path).send().await?.status(), StatusCode::NO_CONTENT);
    assert_eq!(tus(&u, Method::HEAD, &path).send().await?.status(), StatusCode::NOT_FOUND);
    expect_problem(patch(&u, &path, 50, &file(50, 5)).send().await?, StatusCode::NOT_FOUND).await?;
    // A completed upload: terminating forgets the upload, never the media.
    let bytes = file(100, 6);
    let path = create(&u, bytes.len(), "").await?;
    let r = patch(&u, &path, 0, &bytes).send().await?;
    let m = media_at(&u, &r).await?;
    // Through the override too.
    let r = tus(&u, Method::POST, &path).header("X-HTTP-Method-Override", "DELETE").send().await?;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(download(&u, &m).await?, bytes);
    Ok(())
}

async fn an_expired_upload_answers_410(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let path = create(&u, 100, "").await?;
    assert_eq!(patch(&u, &path, 0, &file(10, 7)).send().await?.status(), StatusCode::NO_CONTENT);
    s.exec_sql("UPDATE uploads SET expires_at = created_at")?;
    // HEAD answers carry no body: the status is what counts.
    assert_eq!(tus(&u, Method::HEAD, &path).send().await?.status(), StatusCode::GONE);
    expect_problem(patch(&u, &path, 10, &file(10, 7)).send().await?, StatusCode::GONE).await?;
    Ok(())
}

async fn only_the_uploader_sees_an_upload_and_writing_needs_media_write(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let path = create(&u, 100, "").await?;
    for stranger in [s.as_user("u-2", "acme", ALL), s.as_user("u-1", "beta", ALL)] {
        assert_eq!(tus(&stranger, Method::HEAD, &path).send().await?.status(), StatusCode::NOT_FOUND);
        expect_problem(patch(&stranger, &path, 0, b"x").send().await?, StatusCode::NOT_FOUND).await?;
        expect_problem(tus(&stranger, Method::DELETE, &path).send().await?, StatusCode::NOT_FOUND).await?;
    }
    let reader = s.as_user("u-1", "acme", &["media:read"]);
    let p = expect_problem(patch(&reader, &path, 0, b"x").send().await?, StatusCode::FORBIDDEN).await?;
    assert_eq!(p["missingPermissions"], json!(["media:write"]));
    let r = tus(&reader, Method::POST, TUS).header("Upload-Length", "3").send().await?;
    expect_problem(r, StatusCode::FORBIDDEN).await?;
    expect_problem(tus(&reader, Method::DELETE, &path).send().await?, StatusCode::FORBIDDEN).await?;
    // The reader may see where their upload stands.
    assert_eq!(offset(&reader, &path).await?, 0);
    let anonymous = s.http.post(s.url(TUS)).header("Tus-Resumable", "1.0.0").header("Upload-Length", "3");
    expect_problem(anonymous.send().await?, StatusCode::UNAUTHORIZED).await?;
    assert_eq!(offset(&u, &path).await?, 0, "nothing reached the upload");
    Ok(())
}

async fn the_event_in_the_metadata_adds_the_media_to_its_gallery_under_seed_001s_rule(s: TestServer) -> TestResult {
    let manager = s.as_user("u-1", "acme", ALL);
    let guest = s.as_user("u-2", "acme", ALL);
    let event = manager.event("wedding").await?;
    let gallery = format!("/api/v2/event/{event}/gallery/");
    let meta = |name: &str, event: &str| format!("filename {},event {}", b64(name), b64(event));
    let bytes = png(20, 20, 1);
    let path = create(&manager, bytes.len(), &meta("a.png", &event.to_string())).await?;
    let r = patch(&manager, &path, 0, &bytes).send().await?;
    assert!(header(&r, "media-gallery-error").is_none(), "{:?}", header(&r, "media-gallery-error"));
    let m = media_at(&manager, &r).await?;
    let page = expect_json(manager.get(&gallery).send().await?, StatusCode::OK).await?;
    assert_eq!(page["results"][0]["id"], m["id"]);
    // Not a manager: the media is kept, the gallery entry is not made, and the answer says why.
    let bytes = png(21, 20, 2);
    let path = create(&guest, bytes.len(), &meta("b.png", &event.to_string())).await?;
    let r = patch(&guest, &path, 0, &bytes).send().await?;
    let why = header(&r, "media-gallery-error").ok_or("no Media-Gallery-Error")?;
    assert!(why.starts_with("403"), "{why}");
    let kept = media_at(&guest, &r).await?;
    assert_eq!(download(&guest, &kept).await?, bytes);
    // An unknown event, or one of another organization: the same.
    let other_org = s.as_user("u-1", "beta", ALL).event("elsewhere").await?;
    for target in [999_999, other_org] {
        let bytes = png(22, 20, 3 + target as u8);
        let path = create(&manager, bytes.len(), &meta("c.png", &target.to_string())).await?;
        let r = patch(&manager, &path, 0, &bytes).send().await?;
        assert!(header(&r, "media-gallery-error").is_some_and(|w| w.starts_with("404")), "event {target}");
        media_at(&manager, &r).await?;
    }
    let page = expect_json(manager.get(&gallery).send().await?, StatusCode::OK).await?;
    assert_eq!(page["count"], 1);
    // An event that is no id at all is refused at creation.
    let r = tus(&manager, Method::POST, TUS).header("Upload-Length", "3").header("Upload-Metadata", meta("d", "x"));
    expect_problem(r.send().await?, StatusCode::BAD_REQUEST).await?;
    Ok(())
}

async fn partial_uploads_join_into_a_final_upload_sent_before_they_finish(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let event = u.event("concat").await?;
    let bytes = file(300_000, 8);
    let (a, b) = bytes.split_at(120_000);
    let partial = |len: usize| {
        tus(&u, Method::POST, TUS).header("Upload-Length", len.to_string()).header("Upload-Concat", "partial")
    };
    let pa = path_of(&partial(a.len()).send().await?)?;
    let pb = path_of(&partial(b.len()).send().await?)?;
    assert_eq!(patch(&u, &pa, 0, a).send().await?.status(), StatusCode::NO_CONTENT, "a partial makes no media");
    // The final upload before the second part is done (concatenation-unfinished).
    let r = tus(&u, Method::POST, TUS)
        .header("Upload-Concat", format!("final;{} {}", s.url(&pa), pb))
        .header("Upload-Metadata", format!("filename {},event {}", b64("joined.bin"), b64(&event.to_string())))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(header(&r, "media-location").is_none());
    let fin = path_of(&r)?;
    let r = tus(&u, Method::HEAD, &fin).send().await?;
    assert!(header(&r, "upload-concat").is_some_and(|c| c.starts_with("final;")));
    assert!(header(&r, "upload-offset").is_none(), "an unfinished final upload tells no offset");
    expect_problem(patch(&u, &fin, 0, b"x").send().await?, StatusCode::FORBIDDEN).await?;
    // Another user's final naming these parts: not found.
    let stranger = s.as_user("u-2", "acme", ALL);
    let r = tus(&stranger, Method::POST, TUS).header("Upload-Concat", format!("final;{pa}")).send().await?;
    expect_problem(r, StatusCode::NOT_FOUND).await?;
    // The PATCH completing the last part announces the final upload's media.
    let r = patch(&u, &pb, 0, b).send().await?;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(header(&r, "media-gallery-error").is_none());
    let m = media_at(&u, &r).await?;
    assert_eq!(m["filename"], "joined.bin");
    assert_eq!(m["sha256"], sha256_hex(&bytes), "digests of the joined bytes");
    assert_eq!(download(&u, &m).await?, bytes);
    let r = tus(&u, Method::HEAD, &fin).send().await?;
    assert_eq!(media_at(&u, &r).await?["id"], m["id"]);
    let page = expect_json(u.get(&format!("/api/v2/event/{event}/gallery/")).send().await?, StatusCode::OK).await?;
    assert_eq!(page["results"][0]["id"], m["id"]);
    // Parts complete first: the final POST announces the media.
    let pc = path_of(&partial(a.len()).send().await?)?;
    let pd = path_of(&partial(b.len()).send().await?)?;
    let too_long = patch(&u, &pc, 0, b).send().await?;
    assert_eq!(too_long.status(), StatusCode::PAYLOAD_TOO_LARGE, "past the part's length: nothing kept");
    patch(&u, &pc, 0, a).send().await?;
    patch(&u, &pd, 0, b).send().await?;
    let r = tus(&u, Method::POST, TUS).header("Upload-Concat", format!("final;{pd} {pc}")).send().await?;
    assert_eq!(r.status(), StatusCode::CREATED);
    let mut swapped = b.to_vec();
    swapped.extend_from_slice(a);
    assert_eq!(download(&u, &media_at(&u, &r).await?).await?, swapped);
    // Parts are spent: no final can name them again.
    let r = tus(&u, Method::POST, TUS).header("Upload-Concat", format!("final;{pc}")).send().await?;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    Ok(())
}

/// A PATCH from offset 0 over raw HTTP announcing all of `bytes`, whose connection drops
/// after `sent` of them.
pub(crate) async fn patch_cut_off(
    s: &TestServer,
    u: &Caller<'_>,
    path: &str,
    bytes: &[u8],
    sent: usize,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await?;
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nTus-Resumable: 1.0.0\r\n\
         Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {}\r\n\r\n",
        u.token,
        bytes.len()
    );
    tcp.write_all(head.as_bytes()).await?;
    tcp.write_all(&bytes[..sent]).await?;
    tcp.flush().await?;
    Ok(())
}

pub(crate) async fn a_patch_cut_off_mid_body_keeps_what_arrived_and_the_client_resumes_there(
    s: TestServer,
) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let limit = usize::try_from(s.config.max_chunk_bytes)?;
    let bytes = file(3 * limit + 12_345, 9);
    let path = create(&u, bytes.len(), "").await?;
    // Raw HTTP: the whole length announced, two and a half limits sent, then the connection drops.
    let sent = 2 * limit + limit / 2;
    patch_cut_off(&s, &u, &path, &bytes, sent).await?;
    // Like a tus client: HEAD, then PATCH the rest from there, again while the server
    // still finishes the broken request (423) or moved on meanwhile (409).
    let mut attempts = 0;
    let done = loop {
        attempts += 1;
        let at = offset(&u, &path).await?;
        assert!(at <= sent, "never more than was sent: {at}");
        let r = patch(&u, &path, at, &bytes[at..]).send().await?;
        match r.status() {
            StatusCode::NO_CONTENT => break (at, r),
            StatusCode::LOCKED | StatusCode::CONFLICT if attempts < 200 => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            other => return Err(format!("resume at {at} answered {other}").into()),
        }
    };
    let (resumed_at, r) = done;
    assert!(resumed_at + limit >= sent, "kept {resumed_at} of the {sent} bytes that arrived (limit {limit})");
    assert_eq!(sha256_hex(&download(&u, &media_at(&u, &r).await?).await?), sha256_hex(&bytes));
    Ok(())
}

async fn a_patch_longer_than_the_chunk_limit_is_one_request_and_a_checksummed_one_is_not(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let limit = usize::try_from(s.config.max_chunk_bytes)?;
    let bytes = file(5 * limit + 3, 13);
    let path = create(&u, bytes.len(), "").await?;
    // All or nothing: a checksummed PATCH is held to the chunk limit.
    let sha1 = base64::engine::general_purpose::STANDARD.encode(sha1_of(&bytes));
    let r = patch(&u, &path, 0, &bytes).header("Upload-Checksum", format!("sha1 {sha1}")).send().await?;
    expect_problem(r, StatusCode::PAYLOAD_TOO_LARGE).await?;
    let r = patch(&u, &path, 0, &bytes).send().await?;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(sha256_hex(&download(&u, &media_at(&u, &r).await?).await?), sha256_hex(&bytes));
    Ok(())
}

async fn two_patches_racing_for_one_offset_append_once(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    for round in 0..3u8 {
        let bytes = file(2 * MIB + 7, 10 + round);
        let path = create(&u, bytes.len(), "").await?;
        let (r1, r2) = tokio::join!(patch(&u, &path, 0, &bytes).send(), patch(&u, &path, 0, &bytes).send());
        let (r1, r2) = (r1?, r2?);
        let statuses = [r1.status(), r2.status()];
        let winners = statuses.iter().filter(|st| **st == StatusCode::NO_CONTENT).count();
        assert_eq!(winners, 1, "one append: {statuses:?}");
        assert!(
            statuses.iter().all(|st| [StatusCode::NO_CONTENT, StatusCode::CONFLICT, StatusCode::LOCKED].contains(st)),
            "{statuses:?}"
        );
        let winner = if r1.status() == StatusCode::NO_CONTENT { r1 } else { r2 };
        assert_eq!(download(&u, &media_at(&u, &winner).await?).await?, bytes);
    }
    Ok(())
}

async fn cors_preflight_and_exposed_headers_for_configured_origins_only(s: TestServer) -> TestResult {
    // This server runs without CORS: a preflight gets no allowance.
    let r = s
        .http
        .request(Method::OPTIONS, s.url(TUS))
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await?;
    assert!(header(&r, "access-control-allow-origin").is_none());
    let backend = s.backend;
    drop(s);
    let name = format!("tus::cors::{backend:?}");
    let Some(s) = TestServer::start(backend, &name, |c| {
        c.cors_origins = vec!["https://app.example".to_owned()];
    })
    .await?
    else {
        return Ok(());
    };
    let preflight = |origin: &'static str| {
        s.http
            .request(Method::OPTIONS, s.url(TUS))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "PATCH")
            .header("Access-Control-Request-Headers", "tus-resumable, upload-offset, authorization, content-type")
    };
    let r = preflight("https://app.example").send().await?;
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(header(&r, "access-control-allow-origin").as_deref(), Some("https://app.example"));
    let allowed = header(&r, "access-control-allow-headers").unwrap_or_default().to_ascii_lowercase();
    assert!(allowed.contains("upload-offset") && allowed.contains("authorization"), "{allowed}");
    assert!(header(&preflight("https://evil.example").send().await?, "access-control-allow-origin").is_none());
    let u = s.as_user("u-1", "acme", ALL);
    let r =
        tus(&u, Method::POST, TUS).header("Origin", "https://app.example").header("Upload-Length", "5").send().await?;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "access-control-allow-origin").as_deref(), Some("https://app.example"));
    let exposed = header(&r, "access-control-expose-headers").unwrap_or_default().to_ascii_lowercase();
    for h in [
        "location",
        "upload-offset",
        "upload-expires",
        "tus-resumable",
        "media-location",
        "media-gallery-error",
        "x-token",
    ] {
        assert!(exposed.split(',').any(|e| e.trim() == h), "{h} not exposed: {exposed}");
    }
    Ok(())
}

/// One upload's PATCHes sent to two server processes sharing PostgreSQL and a bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_uploads_patches_go_to_two_instances_on_postgres_and_s3() -> TestResult {
    let Some(s) = TestServer::start_on_s3(Backend::Postgres, "tus::two_instances", |_| {}).await? else {
        return Ok(());
    };
    let other = s.second_instance()?;
    other.ready(&s.http).await?;
    let u = s.as_user("u-1", "acme", ALL);
    let v = u.at(&other.base);
    // Pieces below and above S3's 5 MiB part minimum, alternating instances; the first
    // PATCH is longer than the chunk limit, so it is recorded in segments.
    let bytes = file(40 * MIB + 5, 11);
    let path = create(&u, bytes.len(), "").await?;
    let cuts = [0, 17 * MIB, 17 * MIB + 300_000, 30 * MIB, bytes.len()];
    let mut last = None;
    for (i, w) in cuts.windows(2).enumerate() {
        let who = if i % 2 == 0 { &v } else { &u };
        assert_eq!(offset(who, &path).await?, w[0]);
        let r = patch(who, &path, w[0], &bytes[w[0]..w[1]]).send().await?;
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "PATCH {i}");
        last = Some(r);
    }
    let m = media_at(&u, &last.ok_or("no PATCH")?).await?;
    for who in [&u, &v] {
        assert_eq!(sha256_hex(&download(who, &m).await?), sha256_hex(&bytes));
    }
    assert_eq!(s.stored_files().len(), 1, "one object, no staging left: {:?}", s.stored_files());
    // Two PATCHes racing for one offset on two instances: appended once.
    let bytes = file(6 * MIB, 12);
    let path = create(&u, bytes.len(), "").await?;
    let (r1, r2) = tokio::join!(patch(&u, &path, 0, &bytes).send(), patch(&v, &path, 0, &bytes).send());
    let statuses = [r1?.status(), r2?.status()];
    assert_eq!(statuses.iter().filter(|st| **st == StatusCode::NO_CONTENT).count(), 1, "{statuses:?}");
    Ok(())
}
