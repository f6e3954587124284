//! What a rendition is (SPEC 11): the variants and their sizes, what a render makes, and
//! why it may not. The pixels themselves are made behind the [`MediaProcessor`] port
//! (`mediabox-imaging` holds the codecs).
//!
//! [`MediaProcessor`]: crate::ports::MediaProcessor

/// The renditions the service makes of a raster image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// Fits in 320x320.
    Thumb,
    /// Fits in 1600x1600.
    Preview,
}

impl Variant {
    pub const ALL: [Variant; 2] = [Variant::Thumb, Variant::Preview];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Thumb => "thumb",
            Variant::Preview => "preview",
        }
    }

    /// `None` for anything but `thumb` and `preview`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "thumb" => Some(Variant::Thumb),
            "preview" => Some(Variant::Preview),
            _ => None,
        }
    }

    /// The side of the square the rendition fits in.
    #[must_use]
    pub fn max_side(self) -> u32 {
        match self {
            Variant::Thumb => 320,
            Variant::Preview => 1600,
        }
    }
}

/// A rendition made: its encoded bytes and what they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub bytes: Vec<u8>,
    /// `image/jpeg` or `image/png`.
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
}

/// What a video is, as its poster was made: its displayed size (rotation applied) and
/// its duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFacts {
    pub width: u32,
    pub height: u32,
    pub duration_ms: u64,
}

/// A video's poster and what making it found out about the video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poster {
    pub rendered: Rendered,
    pub facts: VideoFacts,
}

/// Why no rendition can be made of an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The header claims more pixels than allowed.
    #[error("the image is {width}x{height} pixels, over the limit of {max} pixels")]
    TooLarge { width: u32, height: u32, max: u64 },
    /// Not an image the service can decode, or damaged.
    #[error("the image cannot be decoded: {0}")]
    NotDecodable(String),
}

/// The size of `(width, height)` fitted into a `side` square, never larger than it is.
#[must_use]
pub fn fit_within(width: u32, height: u32, side: u32) -> (u32, u32) {
    if width <= side && height <= side {
        return (width, height);
    }
    let (w, h, s) = (u64::from(width), u64::from(height), u64::from(side));
    let (nw, nh) = if w >= h { (s, (h * s + w / 2) / w) } else { ((w * s + h / 2) / h, s) };
    (u32::try_from(nw).unwrap_or(side).max(1), u32::try_from(nh).unwrap_or(side).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_fit_without_enlarging() {
        assert_eq!(fit_within(4000, 3000, 320), (320, 240));
        assert_eq!(fit_within(3000, 4000, 320), (240, 320));
        assert_eq!(fit_within(100, 50, 320), (100, 50));
        assert_eq!(fit_within(10_000, 1, 320), (320, 1));
        assert_eq!(Variant::parse("thumb").map(Variant::max_side), Some(320));
        assert_eq!(Variant::parse("preview").map(Variant::max_side), Some(1600));
        assert_eq!(Variant::parse("Thumb"), None);
    }
}
