//! Video posters through ffmpeg and ffprobe (Debian's `ffmpeg`), run as external
//! processes as pict-rs and Immich do. Hostile files are expected:
//!
//! - the input is a file the blob store gave (a path it made from a blob key), read with
//!   `-protocol_whitelist file` and nothing else (no network, no other protocol), through
//!   the demuxers of video containers only (`-format_whitelist`: no playlist, no concat
//!   list, no image sequence reaching other files);
//! - each process runs under a time limit (killed past it), an address-space limit (through
//!   util-linux's `prlimit` when present) and one thread for decoding and for filters;
//! - stdin is closed and the environment cleared; the poster comes back on stdout, at most
//!   [`MAX_POSTER_BYTES`].
//!
//! The poster is a representative frame: from about 10 % of the duration (at most
//! [`MAX_SEEK_SECS`] in), ffmpeg's `thumbnail` filter picks the frame of the next
//! [`WINDOW_FRAMES`] closest to their average, so a black opening or a fade is passed
//! over. ffmpeg applies the rotation metadata itself (autorotate), so the poster is upright
//! and the displayed size has width and height swapped for a quarter turn.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use mediabox_domain::render::{Poster, RenderError, Rendered, Variant, VideoFacts};
use tokio::io::AsyncReadExt;

/// How far in the poster is looked for, at most.
pub const MAX_SEEK_SECS: f64 = 3.0;
/// The frames the `thumbnail` filter chooses among.
pub const WINDOW_FRAMES: u32 = 48;
/// The demuxers ffmpeg may use: the containers of the videos the service sniffs. A file
/// that is something else (a playlist naming other files, an image sequence) is refused
/// by ffmpeg before it opens anything.
pub const DEMUXERS: &str = "mov,matroska,avi,mpegts,mpeg,flv,asf,ogg";
/// A poster larger than this is refused (a 1600x1600 JPEG is far smaller).
pub const MAX_POSTER_BYTES: usize = 16 << 20;

/// How ffmpeg is run.
#[derive(Debug, Clone)]
pub struct Ffmpeg {
    ffmpeg: PathBuf,
    ffprobe: PathBuf,
    /// `prlimit`, when the machine has it.
    prlimit: Option<PathBuf>,
    /// Per process.
    pub timeout: Duration,
    /// Address space per process.
    pub max_memory_bytes: u64,
}

/// Where a program is: `configured` when given, else the first `name` on `PATH`.
fn locate(name: &str, configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = configured {
        return p.is_file().then(|| p.to_owned());
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

impl Ffmpeg {
    /// ffmpeg at `configured` (`MEDIABOX_FFMPEG`) or on `PATH`, with the ffprobe beside
    /// it (or on `PATH`); `None` when either is missing.
    #[must_use]
    pub fn find(configured: Option<&Path>, timeout: Duration, max_memory_bytes: u64) -> Option<Self> {
        let ffmpeg = locate("ffmpeg", configured)?;
        let beside = ffmpeg.with_file_name("ffprobe");
        let ffprobe = if beside.is_file() { beside } else { locate("ffprobe", None)? };
        Some(Self { ffmpeg, ffprobe, prlimit: locate("prlimit", None), timeout, max_memory_bytes })
    }

    /// The ffmpeg this runs.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.ffmpeg
    }

    /// A command for `program` under the limits.
    fn command(&self, program: &Path) -> tokio::process::Command {
        let mut cmd = match &self.prlimit {
            Some(prlimit) => {
                let mut c = tokio::process::Command::new(prlimit);
                c.arg(format!("--as={}", self.max_memory_bytes)).arg("--").arg(program);
                c
            }
            None => tokio::process::Command::new(program),
        };
        cmd.env_clear().stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        cmd
    }

    /// Runs `cmd`; its stdout, when it exits 0 within the time limit.
    async fn run(&self, mut cmd: tokio::process::Command, limit: usize) -> Result<Vec<u8>, RenderError> {
        let mut child = cmd.spawn().map_err(|e| not_decodable(format!("ffmpeg could not be started: {e}")))?;
        let mut stdout = child.stdout.take().ok_or_else(|| not_decodable("no stdout"))?;
        let mut stderr = child.stderr.take().ok_or_else(|| not_decodable("no stderr"))?;
        let work = async {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let mut out_limited = (&mut stdout).take(limit as u64 + 1);
            let mut err_limited = (&mut stderr).take(64 * 1024);
            let (read_out, read_err) =
                tokio::join!(out_limited.read_to_end(&mut out), err_limited.read_to_end(&mut err));
            read_out.and(read_err).map_err(|e| not_decodable(e.to_string()))?;
            let status = child.wait().await.map_err(|e| not_decodable(e.to_string()))?;
            Ok::<_, RenderError>((status, out, err))
        };
        let (status, out, err) = match tokio::time::timeout(self.timeout, work).await {
            Ok(done) => done?,
            // Dropping the child kills it (kill_on_drop).
            Err(_) => return Err(not_decodable(format!("ffmpeg took longer than {:?}", self.timeout))),
        };
        if out.len() > limit {
            return Err(not_decodable("ffmpeg's output is over the limit"));
        }
        if !status.success() {
            let why = String::from_utf8_lossy(&err);
            let why = why.lines().last().unwrap_or("ffmpeg failed").trim();
            return Err(not_decodable(format!("{status}: {why}")));
        }
        Ok(out)
    }

    /// The first video stream's displayed size and the duration.
    async fn facts(&self, video: &Path) -> Result<VideoFacts, RenderError> {
        let mut cmd = self.command(&self.ffprobe);
        cmd.args([
            "-v",
            "error",
            "-protocol_whitelist",
            "file",
            "-format_whitelist",
            DEMUXERS,
            "-select_streams",
            "v:0",
        ]);
        cmd.args([
            "-show_entries",
            "stream=width,height,duration:stream_tags=rotate:stream_side_data=rotation:format=duration",
        ]);
        cmd.args(["-of", "json", "-i"]).arg(video);
        let out = self.run(cmd, 1 << 20).await?;
        facts_of(&out)
    }

    /// Makes `variant`'s poster of `video`.
    ///
    /// # Errors
    /// `TooLarge` over `max_pixels`; `NotDecodable` for anything ffmpeg cannot read.
    pub async fn poster(&self, video: &Path, variant: Variant, max_pixels: u64) -> Result<Poster, RenderError> {
        let facts = self.facts(video).await?;
        let (width, height) = (facts.width, facts.height);
        if u64::from(width) * u64::from(height) > max_pixels {
            return Err(RenderError::TooLarge { width, height, max: max_pixels });
        }
        let at = seek_secs(facts.duration_ms);
        let side = variant.max_side();
        let mut cmd = self.command(&self.ffmpeg);
        cmd.args(["-nostdin", "-v", "error", "-threads", "1", "-filter_threads", "1"]);
        cmd.args(["-protocol_whitelist", "file", "-format_whitelist", DEMUXERS, "-ss", &format!("{at:.3}"), "-i"]);
        cmd.arg(video);
        let filters = format!(
            "thumbnail={WINDOW_FRAMES},scale=w='min({side},iw)':h='min({side},ih)':force_original_aspect_ratio=decrease"
        );
        cmd.args(["-map", "0:v:0", "-an", "-sn", "-dn", "-vf", &filters, "-frames:v", "1"]);
        cmd.args(["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact"]);
        cmd.args(["-c:v", "mjpeg", "-q:v", "3", "-f", "image2pipe", "pipe:1"]);
        let bytes = self.run(cmd, MAX_POSTER_BYTES).await?;
        let (w, h) = jpeg_size(&bytes).ok_or_else(|| not_decodable("ffmpeg made no frame"))?;
        let rendered = Rendered { bytes, content_type: "image/jpeg", width: w, height: h };
        Ok(Poster { rendered, facts })
    }
}

fn not_decodable(reason: impl Into<String>) -> RenderError {
    RenderError::NotDecodable(reason.into())
}

/// Where the poster is looked for: about 10 % in, at most [`MAX_SEEK_SECS`].
#[must_use]
pub fn seek_secs(duration_ms: u64) -> f64 {
    (duration_ms as f64 / 1000.0 * 0.1).min(MAX_SEEK_SECS)
}

/// What ffprobe's JSON says: the stream's size (swapped for a quarter turn) and the
/// duration (the container's, else the stream's).
fn facts_of(json: &[u8]) -> Result<VideoFacts, RenderError> {
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|e| not_decodable(e.to_string()))?;
    let stream = v["streams"].get(0).ok_or_else(|| not_decodable("no video stream"))?;
    let dim = |k: &str| stream[k].as_u64().and_then(|x| u32::try_from(x).ok()).filter(|x| *x > 0);
    let (width, height) = dim("width").zip(dim("height")).ok_or_else(|| not_decodable("no frame size"))?;
    let rotation = stream["side_data_list"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|d| d["rotation"].as_i64())
        .or_else(|| stream["tags"]["rotate"].as_str().and_then(|r| r.parse().ok()))
        .unwrap_or(0);
    let quarter = rotation.rem_euclid(180) == 90;
    let secs =
        |x: &serde_json::Value| x.as_str().and_then(|s| s.parse::<f64>().ok()).filter(|d| d.is_finite() && *d >= 0.0);
    let duration = secs(&v["format"]["duration"])
        .or_else(|| secs(&stream["duration"]))
        .ok_or_else(|| not_decodable("no duration"))?;
    let (width, height) = if quarter { (height, width) } else { (width, height) };
    Ok(VideoFacts { width, height, duration_ms: (duration * 1000.0).round() as u64 })
}

/// A JPEG's size, from its header.
fn jpeg_size(bytes: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::with_format(std::io::Cursor::new(bytes), image::ImageFormat::Jpeg).into_dimensions().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_poster_is_looked_for_a_tenth_in_but_not_far() {
        assert!((seek_secs(5_000) - 0.5).abs() < 1e-9);
        assert!((seek_secs(60_000) - 3.0).abs() < 1e-9);
        assert!(seek_secs(0).abs() < 1e-9);
    }

    #[test]
    fn ffprobe_json_gives_the_displayed_size_and_duration() -> Result<(), RenderError> {
        let plain = br#"{"streams":[{"width":640,"height":360}],"format":{"duration":"4.000000"}}"#;
        assert_eq!(facts_of(plain)?, VideoFacts { width: 640, height: 360, duration_ms: 4000 });
        let turned = br#"{"streams":[{"width":640,"height":360,"side_data_list":[{"rotation":-90}]}],"format":{"duration":"2.5"}}"#;
        assert_eq!(facts_of(turned)?, VideoFacts { width: 360, height: 640, duration_ms: 2500 });
        let tagged =
            br#"{"streams":[{"width":640,"height":360,"tags":{"rotate":"270"},"duration":"1.25"}],"format":{}}"#;
        assert_eq!(facts_of(tagged)?, VideoFacts { width: 360, height: 640, duration_ms: 1250 });
        assert!(facts_of(br#"{"streams":[],"format":{"duration":"1"}}"#).is_err());
        assert!(facts_of(br#"{"streams":[{"width":0,"height":360}],"format":{"duration":"1"}}"#).is_err());
        assert!(facts_of(b"garbage").is_err());
        Ok(())
    }
}
