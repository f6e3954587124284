//! The ffmpeg adapter against the real ffmpeg, on videos made here with ffmpeg's own
//! `testsrc`. Skipped loudly without ffmpeg, unless `MEDIABOX_REQUIRE_FFMPEG=1` (CI).

use std::path::PathBuf;
use std::time::Duration;

use image::GenericImageView;
use mediabox_domain::ports::MediaProcessor;
use mediabox_domain::render::{RenderError, Variant, VideoFacts};
use mediabox_imaging::testing::{self, make, BLACK_FIRST_SECOND, PLAIN};
use mediabox_imaging::{Codecs, Ffmpeg};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn ffmpeg(timeout: Duration) -> Result<Option<Ffmpeg>, String> {
    let configured = std::env::var_os("MEDIABOX_FFMPEG").map(PathBuf::from);
    match Ffmpeg::find(configured.as_deref(), timeout, 2 << 30) {
        Some(f) => Ok(Some(f)),
        None if std::env::var("MEDIABOX_REQUIRE_FFMPEG").is_ok_and(|v| v == "1") => {
            Err("MEDIABOX_REQUIRE_FFMPEG=1 but no ffmpeg was found".into())
        }
        None => {
            eprintln!("!!! SKIPPED: no ffmpeg (make test installs it with apt when running as root)");
            Ok(None)
        }
    }
}

/// The mean brightness of a poster, 0-255.
fn brightness(jpeg: &[u8]) -> Result<f64, image::ImageError> {
    let img = image::load_from_memory(jpeg)?;
    let luma = img.to_luma8();
    Ok(luma.pixels().map(|p| f64::from(p[0])).sum::<f64>() / f64::from(img.width() * img.height()))
}

#[tokio::test]
async fn posters_are_upright_representative_frames_and_the_facts_are_read() -> TestResult {
    let Some(ff) = ffmpeg(Duration::from_secs(30))? else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    let plain = dir.path().join("plain.mp4");
    make(ff.path(), &plain, PLAIN)?;
    let codecs = Codecs::with_video(ff.clone());
    assert!(codecs.renders_video());

    let thumb = codecs.poster(&plain, Variant::Thumb, 100_000_000).await?;
    assert_eq!(thumb.facts, VideoFacts { width: 640, height: 360, duration_ms: 4000 });
    assert_eq!((thumb.rendered.width, thumb.rendered.height, thumb.rendered.content_type), (320, 180, "image/jpeg"));
    assert_eq!(image::load_from_memory(&thumb.rendered.bytes)?.dimensions(), (320, 180));
    assert!(!thumb.rendered.bytes.windows(4).any(|w| w == b"Lavc"), "no encoder comment or other metadata");
    // Never enlarged: the preview of a 640x360 video is 640x360.
    let preview = codecs.poster(&plain, Variant::Preview, 100_000_000).await?;
    assert_eq!((preview.rendered.width, preview.rendered.height), (640, 360));

    // Rotation metadata (a phone held upright): an upright poster, and the displayed size.
    let rotated = dir.path().join("rotated.mp4");
    testing::rotated(ff.path(), &plain, &rotated)?;
    let turned = codecs.poster(&rotated, Variant::Thumb, 100_000_000).await?;
    assert_eq!((turned.facts.width, turned.facts.height), (360, 640));
    assert_eq!((turned.rendered.width, turned.rendered.height), (180, 320));

    // A black first second: the poster is a frame with a picture.
    let black = dir.path().join("black.mp4");
    make(ff.path(), &black, BLACK_FIRST_SECOND)?;
    let poster = codecs.poster(&black, Variant::Thumb, 100_000_000).await?;
    assert_eq!(poster.facts.duration_ms, 5000);
    assert!(brightness(&poster.rendered.bytes)? > 40.0, "not a black frame");

    // Over the pixel limit: refused by its size, before any frame is decoded.
    assert!(matches!(
        codecs.poster(&plain, Variant::Thumb, 640 * 360 - 1).await,
        Err(RenderError::TooLarge { width: 640, height: 360, .. })
    ));
    Ok(())
}

#[tokio::test]
async fn broken_and_slow_videos_are_not_decodable() -> TestResult {
    let Some(ff) = ffmpeg(Duration::from_secs(30))? else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    let plain = dir.path().join("plain.mp4");
    let bytes = make(ff.path(), &plain, PLAIN)?;
    let truncated = dir.path().join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2])?;
    let garbage = dir.path().join("garbage.mp4");
    std::fs::write(&garbage, b"\x00\x00\x00\x18ftypmp42 and then nothing of a video")?;
    // A playlist naming another local file (another tenant's blob, say), named as blobs
    // are, without an extension: refused by ffprobe, the other file never opened. (Without
    // the demuxer whitelist ffprobe reads it as HLS and reports the other file's size and
    // duration; the frame step then happens to make nothing.)
    let playlist = dir.path().join("0123456789abcdef");
    let hls = format!("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nfile:{}\n#EXT-X-ENDLIST\n", plain.display());
    std::fs::write(&playlist, hls)?;
    let codecs = Codecs::with_video(ff.clone());
    for file in [&truncated, &garbage, &playlist, &dir.path().join("missing.mp4")] {
        let got = codecs.poster(file, Variant::Thumb, 100_000_000).await;
        assert!(
            matches!(&got, Err(RenderError::NotDecodable(why)) if !why.contains("made no frame")),
            "{}: {got:?}",
            file.display()
        );
    }
    // Past its time limit, the process is killed and the video is not decodable.
    let mut slow = ff;
    slow.timeout = Duration::from_millis(1);
    let got = Codecs::with_video(slow).poster(&plain, Variant::Thumb, 100_000_000).await;
    assert!(matches!(&got, Err(RenderError::NotDecodable(why)) if why.contains("longer than")), "{got:?}");
    // Without ffmpeg, no video renditions.
    assert!(!Codecs::images_only().renders_video());
    Ok(())
}
