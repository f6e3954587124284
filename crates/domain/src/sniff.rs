//! Content sniffing: the content type comes from the bytes (magic numbers, via `infer`),
//! never from the client. (An image's dimensions come from its header, read behind the
//! [`MediaProcessor`](crate::ports::MediaProcessor) port.) Also the file name sanitizer:
//! a client's name is kept for display only.

/// How many leading bytes sniffing needs: enough for magic numbers, and for the frame
/// header of a JPEG that carries a large EXIF block first.
pub const SNIFF_BYTES: usize = 256 * 1024;

/// The content type of a file, from its leading bytes.
#[must_use]
pub fn content_type(head: &[u8]) -> String {
    if let Some(t) = infer::get(head) {
        if t.matcher_type() != infer::MatcherType::Text {
            return t.mime_type().to_owned();
        }
    }
    // Markup that a browser would run is named for what it is, so that it is never served
    // inline. `infer` knows little of text formats (it calls SVG `text/xml`).
    // The markup markers are ASCII: looked for in the bytes (a text copy of binary data,
    // every invalid byte replaced, was the slowest step of a small binary upload).
    let lower = head[..head.len().min(4096)].to_ascii_lowercase();
    let tags = || lower.iter().enumerate().filter(|(_, b)| **b == b'<').map(|(i, _)| &lower[i..]);
    if tags().any(|t| t.starts_with(b"<svg")) {
        return "image/svg+xml".to_owned();
    }
    if tags().any(|t| t.starts_with(b"<script")) {
        return "text/html".to_owned();
    }
    // What the text starts with, after a byte-order mark and white space.
    if let Some(start) =
        tags().next().filter(|t| t.starts_with(b"<!doctype html") || t.starts_with(b"<html") || t.starts_with(b"<?xml"))
    {
        let before = &lower[..lower.len() - start.len()];
        let before = before.strip_prefix("\u{feff}".as_bytes()).unwrap_or(before);
        if std::str::from_utf8(before).is_ok_and(|b| b.trim_start().is_empty()) {
            return if start.starts_with(b"<?xml") { "application/xml" } else { "text/html" }.to_owned();
        }
    }
    if !head.is_empty() && std::str::from_utf8(head).is_ok() {
        return "text/plain".to_owned();
    }
    "application/octet-stream".to_owned()
}

/// A display-safe file name: the last path component, without control characters,
/// quotes or path separators, at most 200 bytes; `"upload"` when nothing is left.
#[must_use]
pub fn sanitize_filename(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut out = String::new();
    for c in last.chars() {
        if c.is_control() || matches!(c, '"' | '\'' | '<' | '>' | ':' | '*' | '?' | '|' | ';' | '%') {
            out.push('_');
        } else {
            out.push(c);
        }
        if out.len() >= 200 {
            break;
        }
    }
    let out = out.trim().trim_start_matches('.').trim().to_owned();
    if out.is_empty() {
        "upload".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_png_is_known_by_its_bytes() {
        let png_signature = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n', 0, 0, 0, 13, b'I', b'H', b'D', b'R'];
        assert_eq!(content_type(&png_signature), "image/png");
    }

    #[test]
    fn svg_and_html_are_named_for_what_they_are() {
        assert_eq!(content_type(b"<?xml version=\"1.0\"?><svg xmlns=\"x\"></svg>"), "image/svg+xml");
        assert_eq!(content_type(b"<!DOCTYPE html><html></html>"), "text/html");
        assert_eq!(content_type(b"just words"), "text/plain");
        assert_eq!(content_type(&[0xff, 0x00, 0x13, 0x37]), "application/octet-stream");
    }

    #[test]
    fn markup_is_found_after_a_byte_order_mark_and_white_space_and_in_binary_noise() {
        assert_eq!(content_type("\u{feff} \n\t<!DOCTYPE HTML><p>".as_bytes()), "text/html");
        assert_eq!(content_type("\u{a0}<HTML lang=\"en\">".as_bytes()), "text/html", "unicode white space");
        assert_eq!(content_type(b"<?xml version=\"1.0\"?><feed/>"), "application/xml");
        assert_eq!(content_type(b"words, then <html>"), "text/plain", "only at the start");
        assert_eq!(content_type(b"x <?xml"), "text/plain");
        let mut noise: Vec<u8> = (0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x80).collect();
        assert_eq!(content_type(&noise), "application/octet-stream");
        noise.extend_from_slice(b"<SCRIPT>");
        assert_eq!(content_type(&noise), "text/html", "a script tag anywhere in the first 4 KiB");
        noise.splice(10..10, b"<svg".iter().copied());
        assert_eq!(content_type(&noise), "image/svg+xml");
    }

    #[test]
    fn file_names_lose_paths_and_dangerous_characters() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("C:\\Users\\me\\photo.jpg"), "photo.jpg");
        assert_eq!(sanitize_filename("a\"b\r\nc.png"), "a_b__c.png");
        assert_eq!(sanitize_filename("..."), "upload");
        assert_eq!(sanitize_filename(""), "upload");
        assert!(sanitize_filename(&"x".repeat(1000)).len() <= 200);
    }
}
