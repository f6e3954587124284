//! CORS (SPEC 9, 12): `MEDIABOX_CORS_ORIGINS` lets browsers on those origins call the
//! API, preflight included. The configured origin is echoed (never `*` unless `*` is
//! configured), and the headers a tus client reads are exposed by name.

/// The response headers a browser script may read: tus's, ours, and the sliding token.
pub const EXPOSED: [&str; 13] = [
    "Location",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Expires",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "Media-Location",
    "Media-Gallery-Error",
    "X-Token",
    "X-Request-Id",
];

/// The CORS middleware for these origins (`*`: any).
pub fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut c = actix_cors::Cors::default().allow_any_method().allow_any_header().expose_headers(EXPOSED).max_age(3600);
    for o in origins {
        c = if o == "*" { c.allow_any_origin().send_wildcard() } else { c.allowed_origin(o) };
    }
    c
}
