//! Real images made for the rendition tests (SPEC 11): a phone photo with EXIF
//! orientation, GPS, XMP and a comment; a PNG with transparency; a decompression bomb
//! and a damaged JPEG, both built by hand.

use std::io::Cursor;

use image::{DynamicImage, GenericImageView, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

/// Marks left in the metadata of [`phone_photo`]: none may appear in a rendition.
pub const METADATA_MARKS: [&[u8]; 5] =
    [b"Exif", b"mediabox-test-camera", b"mediabox-test-comment", b"http://ns.adobe.com/xap/1.0/", b"GPS-SECRET"];

const RED: [u8; 3] = [220, 20, 20];
const BLUE: [u8; 3] = [20, 20, 220];

/// A landscape JPEG of `w` x `h` stored pixels, red in its top half and blue in its
/// bottom half, with EXIF orientation `orientation` (6: the camera was held upright, the
/// viewer turns it 90 degrees clockwise), GPS coordinates, a camera model, an XMP packet
/// and a comment. `salt` is appended after the image's end, making distinct bytes of the
/// same picture.
#[must_use]
pub fn phone_photo(w: u32, h: u32, orientation: u16, salt: &[u8]) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| {
        let base = if y < h / 2 { RED } else { BLUE };
        // A little texture, so the encoder has something to do.
        let t = u8::try_from((x / 8 + y / 8) % 8).unwrap_or(0);
        Rgb([base[0].saturating_add(t), base[1].saturating_add(t), base[2].saturating_add(t)])
    });
    let jpeg = encode(&DynamicImage::ImageRgb8(img), ImageFormat::Jpeg);
    let mut segments = Vec::new();
    segments.extend(segment(0xE1, &[b"Exif\0\0".as_slice(), &exif(orientation)].concat()));
    let xmp = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta><GPS-SECRET/></x:xmpmeta>";
    segments.extend(segment(0xE1, xmp));
    segments.extend(segment(0xFE, b"mediabox-test-comment"));
    // Right after SOI, before the encoder's own segments.
    let mut out = jpeg[..2].to_vec();
    out.extend(segments);
    out.extend_from_slice(&jpeg[2..]);
    out.extend_from_slice(salt);
    out
}

fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len() + 2).expect("a JPEG segment is under 64 KiB");
    let mut s = vec![0xFF, marker];
    s.extend_from_slice(&len.to_be_bytes());
    s.extend_from_slice(payload);
    s
}

/// A little-endian TIFF structure: IFD0 with Orientation, Model and a GPS IFD pointer;
/// the GPS IFD with a latitude reference and a latitude.
fn exif(orientation: u16) -> Vec<u8> {
    let model = b"mediabox-test-camera\0";
    // Layout: header (8), IFD0 (2 + 3*12 + 4 = 42) at 8, GPS IFD (2 + 2*12 + 4 = 30) at 50,
    // model at 80, latitude (3 rationals, 24 bytes) after it.
    let (ifd0, gps_ifd, model_at) = (8u32, 50u32, 80u32);
    let lat_at = model_at + u32::try_from(model.len()).unwrap_or(0);
    let mut t = b"II*\0".to_vec();
    t.extend_from_slice(&ifd0.to_le_bytes());
    let entry = |t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]| {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&kind.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&value);
    };
    t.extend_from_slice(&3u16.to_le_bytes());
    let o = orientation.to_le_bytes();
    entry(&mut t, 0x0110, 2, u32::try_from(model.len()).unwrap_or(0), model_at.to_le_bytes());
    entry(&mut t, 0x0112, 3, 1, [o[0], o[1], 0, 0]);
    entry(&mut t, 0x8825, 4, 1, gps_ifd.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&2u16.to_le_bytes());
    entry(&mut t, 0x0001, 2, 2, *b"N\0\0\0");
    entry(&mut t, 0x0002, 5, 3, lat_at.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(model);
    for (num, den) in [(48u32, 1u32), (8, 1), (3000, 100)] {
        t.extend_from_slice(&num.to_le_bytes());
        t.extend_from_slice(&den.to_le_bytes());
    }
    t
}

/// A PNG of `w` x `h` whose left half is fully transparent.
#[must_use]
pub fn transparent_png(w: u32, h: u32) -> Vec<u8> {
    let img = RgbaImage::from_fn(w, h, |x, _| if x < w / 2 { Rgba([0, 0, 0, 0]) } else { Rgba([10, 200, 10, 255]) });
    encode(&DynamicImage::ImageRgba8(img), ImageFormat::Png)
}

/// A small, valid PNG whose header claims `w` x `h` pixels: an all-black 4000x4000 image
/// compressed (a few KiB), its header then rewritten. Decoding it in full would allocate
/// w x h bytes.
#[must_use]
pub fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    let mut png = encode(&DynamicImage::ImageLuma8(image::GrayImage::new(4000, 4000)), ImageFormat::Png);
    // Signature (8), IHDR length (4), "IHDR" (4), then width and height.
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// A JPEG whose headers are intact (it is sniffed as a 640x480 JPEG) and whose image data
/// is cut off after the scan's header.
#[must_use]
pub fn damaged_jpeg() -> Vec<u8> {
    let jpeg = phone_photo(640, 480, 1, b"");
    let sos = jpeg.windows(2).position(|w| w == [0xFF, 0xDA]).expect("a JPEG has a scan");
    let len = usize::from(u16::from_be_bytes([jpeg[sos + 2], jpeg[sos + 3]]));
    let mut out = jpeg[..sos + 2 + len].to_vec();
    out.extend_from_slice(&[0x00; 16]);
    out
}

/// Encodes an image.
#[must_use]
pub fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

/// Decodes a rendition as a browser would (no EXIF applied: a rendition carries none).
pub fn decode(bytes: &[u8]) -> image::ImageResult<DynamicImage> {
    image::load_from_memory(bytes)
}

/// Whether the pixel at (`fx`, `fy`) (fractions of the size) is mostly red or mostly blue.
#[must_use]
pub fn colour_at(img: &DynamicImage, fx: f32, fy: f32) -> &'static str {
    let (w, h) = img.dimensions();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let p = img.get_pixel(((w as f32 * fx) as u32).min(w - 1), ((h as f32 * fy) as u32).min(h - 1));
    match (p[0] > 128, p[2] > 128) {
        (true, false) => "red",
        (false, true) => "blue",
        _ => "other",
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A landscape-like JPEG of `w` x `h` (sky, sun, two rows of hills, sea), its colours and
/// shapes varied by `seed`: what a gallery of photos looks like in a screenshot.
#[must_use]
pub fn landscape(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let s = f32::from(seed);
    let (wf, hf) = (w as f32, h as f32);
    let sun = (wf * (0.2 + (s * 0.37) % 0.6), hf * (0.18 + (s * 0.13) % 0.2), hf * 0.08);
    let dusk = (s * 0.29) % 1.0;
    let img = RgbImage::from_fn(w, h, |x, y| {
        let (xf, yf) = (x as f32, y as f32);
        let t = yf / hf;
        let hill1 = hf * (0.55 + 0.06 * ((xf / wf) * 6.0 + s).sin());
        let hill2 = hf * (0.68 + 0.05 * ((xf / wf) * 9.0 + 2.0 * s).cos());
        let sea = hf * 0.82;
        let px = if yf > sea {
            [20.0, 70.0 + 40.0 * t, 120.0 + 30.0 * ((xf * 0.05 + yf * 0.3).sin())]
        } else if yf > hill2 {
            [40.0 + 30.0 * dusk, 90.0, 40.0]
        } else if yf > hill1 {
            [70.0 + 40.0 * dusk, 120.0, 60.0]
        } else if ((xf - sun.0).powi(2) + (yf - sun.1).powi(2)).sqrt() < sun.2 {
            [255.0, 220.0 - 60.0 * dusk, 120.0]
        } else {
            [90.0 + 150.0 * dusk * t, 150.0 + 60.0 * t - 50.0 * dusk, 235.0 - 80.0 * dusk * t]
        };
        Rgb(px.map(|c| c.clamp(0.0, 255.0) as u8))
    });
    encode(&DynamicImage::ImageRgb8(img), ImageFormat::Jpeg)
}
