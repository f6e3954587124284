//! Media and their bytes (SPEC 2).

use mediabox_tests::{expect_json, expect_problem, on_both_databases, png, TestResult, TestServer, ALL};
use reqwest::StatusCode;
use serde_json::json;

on_both_databases!(
    a_media_is_read_in_its_organization_and_not_found_elsewhere,
    downloads_carry_an_etag_and_answer_304_when_it_matches,
    ranges_answer_206_and_unsatisfiable_ranges_416,
    the_signed_file_url_works_without_a_bearer_until_tampered,
    markup_is_served_as_a_sandboxed_attachment_and_photos_inline,
);

async fn a_media_is_read_in_its_organization_and_not_found_elsewhere(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let m = u.upload(&png(4, 4, 1), 1000, "a.png").await?;
    let id = m["id"].as_i64().ok_or("id")?;
    let got = expect_json(u.get(&format!("/api/v2/media/{id}/")).send().await?, StatusCode::OK).await?;
    for k in [
        "id",
        "uuid",
        "filename",
        "content_type",
        "size",
        "sha256",
        "md5",
        "kind",
        "width",
        "height",
        "created_at",
        "uploaded_by",
    ] {
        assert_eq!(got[k], m[k], "{k}");
    }
    assert!(got["file"].as_str().is_some_and(|f| f.contains(&format!("/api/v2/media/{id}/file?"))));
    let stranger = s.as_user("u-1", "beta", ALL);
    expect_problem(stranger.get(&format!("/api/v2/media/{id}/")).send().await?, StatusCode::NOT_FOUND).await?;
    expect_problem(stranger.get(&format!("/api/v2/media/{id}/file")).send().await?, StatusCode::NOT_FOUND).await?;
    for bad in ["abc", "0", "-1", "99999999"] {
        expect_problem(u.get(&format!("/api/v2/media/{bad}/")).send().await?, StatusCode::NOT_FOUND).await?;
    }
    let no_read = s.as_user("u-1", "acme", &["media:write"]);
    let p = expect_problem(no_read.get(&format!("/api/v2/media/{id}/")).send().await?, StatusCode::FORBIDDEN).await?;
    assert_eq!(p["missingPermissions"], json!(["media:read"]));
    Ok(())
}

async fn downloads_carry_an_etag_and_answer_304_when_it_matches(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let bytes = png(5, 5, 2);
    let m = u.upload(&bytes, 1000, "a.png").await?;
    let path = format!("/api/v2/media/{}/file", m["id"]);
    let r = u.get(&path).send().await?;
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers()["etag"].to_str()?.to_owned();
    assert_eq!(etag, format!("\"{}\"", m["sha256"].as_str().ok_or("sha")?));
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.headers()["content-length"].to_str()?, bytes.len().to_string());
    assert_eq!(r.bytes().await?.as_ref(), bytes.as_slice());
    let r = u.get(&path).header("If-None-Match", &etag).send().await?;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers()["etag"].to_str()?, etag);
    assert!(r.bytes().await?.is_empty());
    let r = u.get(&path).header("If-None-Match", "\"something-else\"").send().await?;
    assert_eq!(r.status(), StatusCode::OK);
    Ok(())
}

async fn ranges_answer_206_and_unsatisfiable_ranges_416(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let m = u.upload(&bytes, 300, "a.bin").await?;
    let path = format!("/api/v2/media/{}/file", m["id"]);
    let r = u.get(&path).header("Range", "bytes=10-19").send().await?;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"], "bytes 10-19/1000");
    assert_eq!(r.bytes().await?.as_ref(), &bytes[10..20]);
    let r = u.get(&path).header("Range", "bytes=990-").send().await?;
    assert_eq!(r.headers()["content-range"], "bytes 990-999/1000");
    assert_eq!(r.bytes().await?.as_ref(), &bytes[990..]);
    let r = u.get(&path).header("Range", "bytes=-5").send().await?;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await?.as_ref(), &bytes[995..]);
    let r = u.get(&path).header("Range", "bytes=1000-").send().await?;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers()["content-range"], "bytes */1000");
    expect_problem(r, StatusCode::RANGE_NOT_SATISFIABLE).await?;
    Ok(())
}

async fn the_signed_file_url_works_without_a_bearer_until_tampered(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let bytes = png(3, 3, 3);
    let m = u.upload(&bytes, 1000, "a.png").await?;
    let file = m["file"].as_str().ok_or("file")?.to_owned();
    let r = s.http.get(&file).send().await?;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await?.as_ref(), bytes.as_slice());
    let tampered = file.replace("signature=", "signature=00");
    expect_problem(s.http.get(&tampered).send().await?, StatusCode::FORBIDDEN).await?;
    let other_org = file.replace("org=acme", "org=beta");
    expect_problem(s.http.get(&other_org).send().await?, StatusCode::FORBIDDEN).await?;
    let stretched = {
        let exp: i64 = file.split("expires=").nth(1).and_then(|r| r.split('&').next()).ok_or("exp")?.parse()?;
        file.replace(&format!("expires={exp}"), &format!("expires={}", exp + 3600))
    };
    expect_problem(s.http.get(&stretched).send().await?, StatusCode::FORBIDDEN).await?;
    let unsigned = file.split('?').next().ok_or("url")?.to_owned();
    expect_problem(s.http.get(&unsigned).send().await?, StatusCode::UNAUTHORIZED).await?;
    Ok(())
}

async fn markup_is_served_as_a_sandboxed_attachment_and_photos_inline(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let svg = br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
    let m = u.upload(svg, 1000, "logo.png").await?;
    assert_eq!(m["content_type"], "image/svg+xml");
    let r = u.get(&format!("/api/v2/media/{}/file", m["id"])).send().await?;
    let cd = r.headers()["content-disposition"].to_str()?;
    assert!(cd.starts_with("attachment;"), "{cd}");
    assert_eq!(r.headers()["content-security-policy"], "sandbox");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let html = u.upload(b"<!DOCTYPE html><html><body>hi</body></html>", 1000, "page.jpg").await?;
    assert_eq!(html["content_type"], "text/html");
    let r = u.get(&format!("/api/v2/media/{}/file", html["id"])).send().await?;
    assert!(r.headers()["content-disposition"].to_str()?.starts_with("attachment;"));
    let photo = u.upload(&png(2, 2, 9), 1000, "p\u{e9}.png").await?;
    let r = u.get(&format!("/api/v2/media/{}/file", photo["id"])).send().await?;
    let cd = r.headers()["content-disposition"].to_str()?;
    assert!(cd.starts_with("inline;") && cd.contains("filename*=UTF-8''p%C3%A9.png"), "{cd}");
    assert!(r.headers().get("content-security-policy").is_none());
    Ok(())
}
