//! Video posters and durations (SPEC 11 extended, issue 25), with videos made here by
//! ffmpeg from its `testsrc`: a plain one, one rotated by metadata, one with a black first
//! second, and a truncated one. ffmpeg is found at `MEDIABOX_FFMPEG` (set by `make test`,
//! which installs Debian's ffmpeg when running as root); without it these tests skip
//! loudly, unless `MEDIABOX_REQUIRE_FFMPEG=1` (CI).

use std::path::Path;

use futures_util::future::join_all;
use image::GenericImageView;
use mediabox_imaging::testing::{self, BLACK_FIRST_SECOND, PLAIN};
use mediabox_tests::images::decode;
use mediabox_tests::{
    expect_json, expect_problem, external_tool, on_both_databases, Caller, Res, TestResult, TestServer, ALL,
};
use reqwest::StatusCode;
use serde_json::Value;

fn configured_ffmpeg(c: &mut mediabox::Config) {
    c.ffmpeg = std::env::var_os("MEDIABOX_FFMPEG").filter(|v| !v.is_empty()).map(Into::into);
}

on_both_databases!(using start, super::configured_ffmpeg;
    a_video_gets_upright_posters_of_a_representative_frame_and_its_size_and_duration,
    a_truncated_video_answers_422_once_recorded_and_deleting_a_video_removes_its_posters,
);

on_both_databases!(using start, |c| c.ffmpeg = Some("/nonexistent/ffmpeg".into());
    without_ffmpeg_a_video_has_no_poster_and_the_server_still_runs,
);

on_both_databases!(using start_on_s3, super::configured_ffmpeg;
    posters_of_a_video_on_s3_are_made_once_for_concurrent_first_requests_and_instances,
);

/// ffmpeg, a scratch folder, and the plain test video made in it; `None` (a loud skip)
/// without ffmpeg.
fn with_plain_video() -> Res<Option<(String, tempfile::TempDir, Vec<u8>)>> {
    let Some(ff) = ffmpeg()? else { return Ok(None) };
    let dir = tempfile::tempdir()?;
    let plain = make(&ff, dir.path(), "plain.mp4", PLAIN)?;
    Ok(Some((ff, dir, plain)))
}

/// ffmpeg's path, or `None` (a loud skip).
fn ffmpeg() -> Res<Option<String>> {
    Ok(external_tool(["MEDIABOX_FFMPEG"], "MEDIABOX_REQUIRE_FFMPEG")?.map(|[path]| path))
}

/// A test video (a recipe of `mediabox_imaging::testing`), made in `dir`.
fn make(ffmpeg: &str, dir: &Path, name: &str, recipe: &[&str]) -> Res<Vec<u8>> {
    Ok(testing::make(Path::new(ffmpeg), &dir.join(name), recipe)?)
}

/// The same video with rotation metadata (a phone held upright).
fn rotated(ffmpeg: &str, dir: &Path, plain: &[u8]) -> Res<Vec<u8>> {
    std::fs::write(dir.join("in.mp4"), plain)?;
    Ok(testing::rotated(Path::new(ffmpeg), &dir.join("in.mp4"), &dir.join("rotated.mp4"))?)
}

async fn fetch(s: &TestServer, url: &str) -> Res<Vec<u8>> {
    let r = s.http.get(url).send().await?;
    if r.status() != StatusCode::OK {
        return Err(format!("{url}: {} {}", r.status(), r.text().await?).into());
    }
    assert_eq!(r.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("image/jpeg"));
    Ok(r.bytes().await?.to_vec())
}

fn link<'a>(m: &'a Value, member: &str) -> Res<&'a str> {
    m[member].as_str().ok_or_else(|| format!("no {member} in {m}").into())
}

async fn media(u: &Caller<'_>, m: &Value) -> Res<Value> {
    expect_json(u.get(&format!("/api/v2/media/{}/", m["id"])).send().await?, StatusCode::OK).await
}

fn brightness(jpeg: &[u8]) -> Res<f64> {
    let img = decode(jpeg)?;
    let luma = img.to_luma8();
    Ok(luma.pixels().map(|p| f64::from(p[0])).sum::<f64>() / f64::from(img.width() * img.height()))
}

async fn a_video_gets_upright_posters_of_a_representative_frame_and_its_size_and_duration(s: TestServer) -> TestResult {
    let Some((ff, dir, plain)) = with_plain_video()? else { return Ok(()) };
    let u = s.as_user("u-1", "acme", ALL);
    let m = u.upload(&plain, 1 << 20, "clip.mp4").await?;
    assert_eq!((m["kind"].as_str(), m["content_type"].as_str()), (Some("video"), Some("video/mp4")));
    // Its size and duration are known within seconds of complete, nothing asked (the
    // thumbnail is made in the background).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while media(&u, &m).await?["duration"].is_null() {
        assert!(std::time::Instant::now() < deadline, "no duration 10 s after complete");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let thumb = fetch(&s, link(&m, "thumbnail")?).await?;
    assert_eq!(decode(&thumb)?.dimensions(), (320, 180));
    let preview = fetch(&s, link(&m, "preview")?).await?;
    assert_eq!(decode(&preview)?.dimensions(), (640, 360), "never enlarged");
    let known = media(&u, &m).await?;
    assert_eq!((known["width"].as_u64(), known["height"].as_u64()), (Some(640), Some(360)));
    let duration = known["duration"].as_f64().ok_or("a duration")?;
    assert!((duration - 4.0).abs() < 0.1, "{duration}");
    // The JSON-LD view says the same.
    let ld = u
        .get(&format!("/rest/api/medias/{}", m["uuid"].as_str().ok_or("uuid")?))
        .header("X-Organization-Id", "acme")
        .send()
        .await?;
    let ld: Value = ld.json().await?;
    assert_eq!((ld["duration"].as_f64(), ld["width"].as_u64()), (Some(duration), Some(640)));
    assert!(ld["thumbnailUrl"].is_string());
    // The same bytes again: one blob and its posters, and its size and duration from the
    // start.
    let again = u.upload(&plain, 1 << 20, "again.mp4").await?;
    assert_eq!((again["width"].as_u64(), again["duration"].as_f64()), (Some(640), Some(duration)));

    // Rotated by metadata: an upright poster, and the size as displayed.
    let turned = u.upload(&rotated(&ff, dir.path(), &plain)?, 1 << 20, "upright.mp4").await?;
    assert_eq!(decode(&fetch(&s, link(&turned, "thumbnail")?).await?)?.dimensions(), (180, 320));
    let known = media(&u, &turned).await?;
    assert_eq!((known["width"].as_u64(), known["height"].as_u64()), (Some(360), Some(640)));

    // A black first second: the poster shows the picture, not the black.
    let black = make(&ff, dir.path(), "black.mp4", BLACK_FIRST_SECOND)?;
    let late = u.upload(&black, 1 << 20, "late.mp4").await?;
    let poster = fetch(&s, link(&late, "thumbnail")?).await?;
    assert!(brightness(&poster)? > 40.0, "the poster is not black");
    let duration = media(&u, &late).await?["duration"].as_f64().ok_or("a duration")?;
    assert!((duration - 5.0).abs() < 0.1, "{duration}");
    Ok(())
}

async fn a_truncated_video_answers_422_once_recorded_and_deleting_a_video_removes_its_posters(
    s: TestServer,
) -> TestResult {
    let Some((_ff, _dir, plain)) = with_plain_video()? else { return Ok(()) };
    let u = s.as_user("u-1", "acme", ALL);

    // Half a file: its index is in the half that is missing.
    let broken = u.upload(&plain[..plain.len() / 2], 1 << 20, "broken.mp4").await?;
    for _ in 0..2 {
        let r = s.http.get(link(&broken, "thumbnail")?).send().await?;
        let p = expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await?;
        assert_eq!(p["type"], "/problems/media-not-decodable");
    }
    assert_eq!(s.exec_sql("UPDATE renditions SET status = status")?, 1, "recorded once, not tried again");
    assert!(media(&u, &broken).await?["duration"].is_null());

    let m = u.upload(&plain, 1 << 20, "clip.mp4").await?;
    for member in ["thumbnail", "preview"] {
        fetch(&s, link(&m, member)?).await?;
    }
    assert_eq!(s.rendition_files().len(), 2);
    u.delete_through_rest(&m).await?;
    assert!(s.rendition_files().is_empty(), "the posters went with the video");
    Ok(())
}

async fn posters_of_a_video_on_s3_are_made_once_for_concurrent_first_requests_and_instances(
    s: TestServer,
) -> TestResult {
    let Some((_ff, _dir, plain)) = with_plain_video()? else { return Ok(()) };
    let u = s.as_user("u-1", "acme", ALL);
    let m = u.upload(&plain, 1 << 20, "s3.mp4").await?;
    let url = link(&m, "thumbnail")?.to_owned();
    let got = join_all((0..8).map(|_| fetch(&s, &url))).await;
    let bodies: Vec<Vec<u8>> = got.into_iter().collect::<Result<_, _>>()?;
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "every request got the same poster");
    assert_eq!(decode(&bodies[0])?.dimensions(), (320, 180));
    assert_eq!(s.rendition_files().len(), 1, "one poster stored in the bucket");
    assert_eq!(s.exec_sql("UPDATE renditions SET width = width")?, 1, "one record");
    let duration = media(&u, &m).await?["duration"].as_f64().ok_or("a duration")?;
    assert!((duration - 4.0).abs() < 0.1, "{duration}");

    // Two instances on one bucket and database, each asked at once for the preview nobody
    // has made yet: one copy stored, one recorded, the same bytes from both.
    let other = s.second_instance()?;
    other.ready(&s.http).await?;
    let preview = link(&m, "preview")?.to_owned();
    let elsewhere = preview.replacen(&s.base, &other.base, 1);
    let (here, there) = tokio::join!(fetch(&s, &preview), fetch(&s, &elsewhere));
    let (here, there) = (here?, there?);
    assert_eq!(decode(&here)?.dimensions(), (640, 360));
    assert_eq!(here, there, "both instances answer the same preview");
    assert_eq!(s.rendition_files().len(), 2, "one thumb and one preview in the bucket");
    assert_eq!(s.exec_sql("UPDATE renditions SET width = width")?, 2, "one record each");
    Ok(())
}

async fn without_ffmpeg_a_video_has_no_poster_and_the_server_still_runs(s: TestServer) -> TestResult {
    let Some((_ff, _dir, plain)) = with_plain_video()? else { return Ok(()) };
    let u = s.as_user("u-1", "acme", ALL);
    let m = u.upload(&plain, 1 << 20, "clip.mp4").await?;
    assert_eq!(m["kind"], "video");
    assert!(m["thumbnail"].is_null() && m["preview"].is_null(), "{m}");
    assert!(m["duration"].is_null());
    let r = u.get(&format!("/api/v2/media/{}/file?variant=thumb", m["id"])).send().await?;
    expect_problem(r, StatusCode::NOT_FOUND).await?;
    // The original is served as ever.
    let r = u.get(&format!("/api/v2/media/{}/file", m["id"])).send().await?;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await?.len(), m["size"].as_u64().ok_or("size")? as usize);
    Ok(())
}
