//! Test videos, made by ffmpeg from its own `testsrc` (feature `testing`): the adapter's
//! tests and the end-to-end tests use the same ones.

use std::path::Path;

/// Four seconds of `testsrc`, 640x360 at 25 fps.
pub const PLAIN: &[&str] = &["-f", "lavfi", "-i", "testsrc=size=640x360:rate=25:duration=4"];

/// One black second, then [`PLAIN`]'s four: five seconds.
pub const BLACK_FIRST_SECOND: &[&str] = &[
    "-f",
    "lavfi",
    "-i",
    "color=black:size=640x360:rate=25:duration=1",
    "-f",
    "lavfi",
    "-i",
    "testsrc=size=640x360:rate=25:duration=4",
    "-filter_complex",
    "[0:v][1:v]concat=n=2:v=1[v]",
    "-map",
    "[v]",
];

/// Makes `out` with `ffmpeg` from `inputs` (one of the recipes above), H.264 in MP4.
///
/// # Errors
/// When ffmpeg cannot be run or fails.
pub fn make(ffmpeg: &Path, out: &Path, inputs: &[&str]) -> std::io::Result<Vec<u8>> {
    run(ffmpeg, inputs, &["-c:v", "libx264", "-pix_fmt", "yuv420p"], out)
}

/// Copies `video` to `out` with rotation metadata of a quarter turn (a phone held
/// upright), the frames untouched.
///
/// # Errors
/// When ffmpeg cannot be run or fails.
pub fn rotated(ffmpeg: &Path, video: &Path, out: &Path) -> std::io::Result<Vec<u8>> {
    let input = ["-i", video.to_str().ok_or_else(|| std::io::Error::other("a path that is not UTF-8"))?];
    run(ffmpeg, &input, &["-c", "copy", "-metadata:s:v:0", "rotate=90"], out)
}

fn run(ffmpeg: &Path, inputs: &[&str], outputs: &[&str], out: &Path) -> std::io::Result<Vec<u8>> {
    let status =
        std::process::Command::new(ffmpeg).args(["-v", "error", "-y"]).args(inputs).args(outputs).arg(out).status()?;
    if !status.success() {
        return Err(std::io::Error::other(format!("ffmpeg could not make {}", out.display())));
    }
    std::fs::read(out)
}
