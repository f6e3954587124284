//! mediabox-imaging: the image codecs behind the domain's [`MediaProcessor`] port
//! (SPEC 11). Reading an image's size from its header and making its renditions: decode,
//! orient, shrink, encode. Pure computation, no IO; the domain calls `render` on a
//! blocking thread, at most one per worker, and keeps every rule (which variants, their
//! sizes, the pixel limit, made once, stored once).
//!
//! - The header's dimensions are checked against the pixel limit before any pixel is
//!   decoded, and the decoders get allocation limits, so a small file claiming a huge
//!   image costs nothing.
//! - JPEGs are decoded at a reduced scale (1/2, 1/4 or 1/8 through the DCT, by
//!   `jpeg-decoder`) when the target is that much smaller: a 12-megapixel photo's
//!   thumbnail decodes 1/64 of its pixels.
//! - The output is JPEG (quality 82) for opaque images and PNG for images with
//!   transparency, EXIF orientation applied, with no metadata at all: the encoders write
//!   pixels only (no EXIF, GPS, XMP, ICC, comments).

use std::io::Cursor;

use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, GenericImageView, ImageDecoder, ImageFormat};
use mediabox_domain::ports::{MediaProcessor, Probe};
use mediabox_domain::render::{fit_within, Poster, RenderError, Rendered, Variant};

#[cfg(feature = "testing")]
pub mod testing;
pub mod video;

pub use video::Ffmpeg;

/// The codecs of the `image` and `jpeg-decoder` crates, and ffmpeg for videos when found.
#[derive(Debug, Clone, Default)]
pub struct Codecs {
    video: Option<Ffmpeg>,
}

impl Codecs {
    /// Images only: videos get no renditions.
    #[must_use]
    pub fn images_only() -> Self {
        Self { video: None }
    }

    /// Images, and video posters through `ffmpeg`.
    #[must_use]
    pub fn with_video(ffmpeg: Ffmpeg) -> Self {
        Self { video: Some(ffmpeg) }
    }
}

#[async_trait::async_trait]
impl MediaProcessor for Codecs {
    fn probe(&self, _content_type: &str, head: &[u8]) -> Probe {
        let size = image::ImageReader::new(Cursor::new(head))
            .with_guessed_format()
            .ok()
            .and_then(|r| r.into_dimensions().ok());
        Probe { width: size.map(|s| s.0), height: size.map(|s| s.1) }
    }

    fn render(&self, src: &[u8], variant: Variant, max_pixels: u64) -> Result<Rendered, RenderError> {
        render(src, variant, max_pixels)
    }

    fn renders_video(&self) -> bool {
        self.video.is_some()
    }

    async fn poster(&self, video: &std::path::Path, variant: Variant, max_pixels: u64) -> Result<Poster, RenderError> {
        match &self.video {
            Some(ffmpeg) => ffmpeg.poster(video, variant, max_pixels).await,
            None => Err(RenderError::NotDecodable("no video engine (ffmpeg) was found".into())),
        }
    }
}

/// The JPEG quality of renditions: small files, no visible blocking at these sizes.
const JPEG_QUALITY: u8 = 82;

/// Makes `variant` of the image in `src`, refusing images over `max_pixels`.
///
/// # Errors
/// `TooLarge` when the header claims more than `max_pixels`; `NotDecodable` when the bytes
/// are not a decodable image.
fn render(src: &[u8], variant: Variant, max_pixels: u64) -> Result<Rendered, RenderError> {
    let format = image::guess_format(src).map_err(|_| not_decodable("not a known image format"))?;
    let (img, orientation) = match format {
        ImageFormat::Jpeg => decode_jpeg(src, variant.max_side(), max_pixels)?,
        _ => decode_other(src, format, max_pixels)?,
    };
    let mut img = shrink(img, variant.max_side());
    img.apply_orientation(orientation);
    encode(&img)
}

fn not_decodable(reason: impl Into<String>) -> RenderError {
    RenderError::NotDecodable(reason.into())
}

fn check_pixels(width: u32, height: u32, max: u64) -> Result<(), RenderError> {
    if u64::from(width) * u64::from(height) > max {
        return Err(RenderError::TooLarge { width, height, max });
    }
    if width == 0 || height == 0 {
        return Err(not_decodable("the image has no pixels"));
    }
    Ok(())
}

/// A JPEG, decoded at the smallest DCT scale that still covers the target box.
fn decode_jpeg(src: &[u8], side: u32, max_pixels: u64) -> Result<(DynamicImage, Orientation), RenderError> {
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(src));
    decoder.read_info().map_err(|e| not_decodable(e.to_string()))?;
    let info = decoder.info().ok_or_else(|| not_decodable("no JPEG frame header"))?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    check_pixels(width, height, max_pixels)?;
    // The scale is picked so that both sides stay at least the target's (or the image's
    // own, when it is smaller): never shrinking below what the resize needs.
    let fit = fit_within(width, height, side);
    let want = (u16::try_from(fit.0).unwrap_or(u16::MAX), u16::try_from(fit.1).unwrap_or(u16::MAX));
    let (w, h) = decoder.scale(want.0.max(1), want.1.max(1)).map_err(|e| not_decodable(e.to_string()))?;
    // What the decoder may hold: the scaled output plus its per-component planes.
    let bytes = usize::from(w) * usize::from(h) * 4;
    decoder.set_max_decoding_buffer_size(bytes.saturating_mul(3).max(1 << 20));
    let pixels = decoder.decode().map_err(|e| not_decodable(e.to_string()))?;
    let info = decoder.info().ok_or_else(|| not_decodable("no JPEG frame header"))?;
    // Known once decoded: the EXIF segment may follow the frame header.
    let orientation = decoder.exif_data().and_then(Orientation::from_exif_chunk).unwrap_or(Orientation::NoTransforms);
    let (w, h) = (u32::from(w), u32::from(h));
    let img = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => image::RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8),
        jpeg_decoder::PixelFormat::L8 => image::GrayImage::from_raw(w, h, pixels).map(DynamicImage::ImageLuma8),
        jpeg_decoder::PixelFormat::L16 => {
            let wide: Vec<u16> = pixels.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]])).collect();
            image::ImageBuffer::from_raw(w, h, wide).map(DynamicImage::ImageLuma16)
        }
        jpeg_decoder::PixelFormat::CMYK32 => {
            image::RgbImage::from_raw(w, h, cmyk_to_rgb(&pixels)).map(DynamicImage::ImageRgb8)
        }
    };
    img.map(|i| (i, orientation)).ok_or_else(|| not_decodable("the JPEG decoder gave a short image"))
}

fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(cmyk.len() / 4 * 3);
    for p in cmyk.chunks_exact(4) {
        // jpeg-decoder hands ink amounts (0: none): light left is (255 - ink) * (255 - k).
        let white = u16::from(u8::MAX - p[3]);
        for &ink in &p[..3] {
            out.push(u8::try_from(u16::from(u8::MAX - ink) * white / 255).unwrap_or(u8::MAX));
        }
    }
    out
}

/// PNG, GIF (first frame), WebP, BMP, TIFF through `image`, with its allocation limits.
fn decode_other(src: &[u8], format: ImageFormat, max_pixels: u64) -> Result<(DynamicImage, Orientation), RenderError> {
    let mut reader = image::ImageReader::with_format(Cursor::new(src), format);
    let mut limits = image::Limits::default();
    // One buffer of at most 8 bytes per pixel (16-bit RGBA) for the largest image allowed.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).min(4 << 30));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| not_decodable(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, max_pixels)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let img = DynamicImage::from_decoder(decoder).map_err(|e| not_decodable(e.to_string()))?;
    Ok((img, orientation))
}

/// Shrinks to fit the box (never enlarging): a fast box filter down to twice the target,
/// then Catmull-Rom for the last step, which keeps edges sharp without ringing.
fn shrink(img: DynamicImage, side: u32) -> DynamicImage {
    let (w, h) = img.dimensions();
    let (tw, th) = fit_within(w, h, side);
    if (tw, th) == (w, h) {
        return img;
    }
    let img = if w > tw * 2 && h > th * 2 { img.thumbnail_exact(tw * 2, th * 2) } else { img };
    img.resize_exact(tw, th, FilterType::CatmullRom)
}

fn encode(img: &DynamicImage) -> Result<Rendered, RenderError> {
    let (width, height) = img.dimensions();
    // Converted once: checked for transparency, and encoded when there is some.
    let rgba = img.color().has_alpha().then(|| img.to_rgba8()).filter(|i| i.pixels().any(|p| p[3] < u8::MAX));
    let mut out = Cursor::new(Vec::new());
    let content_type = if let Some(rgba) = rgba {
        DynamicImage::ImageRgba8(rgba).write_to(&mut out, ImageFormat::Png).map_err(encode_error)?;
        "image/png"
    } else {
        let opaque = if img.color().channel_count() <= 2 {
            DynamicImage::ImageLuma8(img.to_luma8())
        } else {
            DynamicImage::ImageRgb8(img.to_rgb8())
        };
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY);
        opaque.write_with_encoder(encoder).map_err(encode_error)?;
        "image/jpeg"
    };
    Ok(Rendered { bytes: out.into_inner(), content_type, width, height })
}

fn encode_error(e: image::ImageError) -> RenderError {
    not_decodable(format!("the rendition cannot be encoded: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(img: &DynamicImage, format: ImageFormat) -> Result<Vec<u8>, image::ImageError> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format)?;
        Ok(out.into_inner())
    }

    #[test]
    fn a_big_jpeg_is_decoded_at_a_reduced_scale_and_shrunk_to_fit() -> Result<(), Box<dyn std::error::Error>> {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(2000, 1500, |x, _| {
            image::Rgb([(x % 256) as u8, 80, 160])
        }));
        let jpeg = encoded(&img, ImageFormat::Jpeg)?;
        let out = render(&jpeg, Variant::Thumb, 100_000_000)?;
        assert_eq!((out.width, out.height, out.content_type), (320, 240, "image/jpeg"));
        assert_eq!(image::load_from_memory(&out.bytes)?.dimensions(), (320, 240));
        // Grey stays grey.
        let grey = encoded(&DynamicImage::ImageLuma8(image::GrayImage::new(700, 700)), ImageFormat::Jpeg)?;
        let out = render(&grey, Variant::Thumb, 100_000_000)?;
        assert_eq!((out.width, out.height), (320, 320));
        Ok(())
    }

    #[test]
    fn the_probe_reads_a_size_from_the_header_alone() -> Result<(), Box<dyn std::error::Error>> {
        let png = encoded(&DynamicImage::ImageRgb8(image::RgbImage::new(3, 2)), ImageFormat::Png)?;
        assert_eq!(Codecs::images_only().probe("image/png", &png), Probe { width: Some(3), height: Some(2) });
        let jpeg = encoded(&DynamicImage::ImageRgb8(image::RgbImage::new(640, 480)), ImageFormat::Jpeg)?;
        assert_eq!(
            Codecs::images_only().probe("image/jpeg", &jpeg[..jpeg.len().min(1024)]),
            Probe { width: Some(640), height: Some(480) }
        );
        assert_eq!(Codecs::images_only().probe("text/plain", b"just words"), Probe::default());
        Ok(())
    }

    #[test]
    fn the_header_decides_before_any_pixel_is_decoded() -> Result<(), Box<dyn std::error::Error>> {
        let jpeg = encoded(&DynamicImage::ImageRgb8(image::RgbImage::new(300, 200)), ImageFormat::Jpeg)?;
        assert_eq!(
            render(&jpeg, Variant::Thumb, 300 * 200 - 1),
            Err(RenderError::TooLarge { width: 300, height: 200, max: 59_999 })
        );
        let png = encoded(&DynamicImage::ImageRgba8(image::RgbaImage::new(300, 200)), ImageFormat::Png)?;
        assert!(matches!(render(&png, Variant::Thumb, 1000), Err(RenderError::TooLarge { .. })));
        assert!(matches!(render(b"not an image at all", Variant::Thumb, 1000), Err(RenderError::NotDecodable(_))));
        assert!(matches!(render(&jpeg[..jpeg.len() / 3], Variant::Thumb, 1 << 20), Err(RenderError::NotDecodable(_))));
        Ok(())
    }
}
