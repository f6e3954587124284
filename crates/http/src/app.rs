//! The web app (SPEC 13) at `/app/`: static files embedded in the binary at compile time
//! (`include_bytes!`), so `make run` needs no Node.js. The app talks only to the public
//! API. Every answer carries a Content-Security-Policy that allows scripts, styles and
//! connections from this origin only (no inline script, no `eval`) and images from this
//! origin (thumbnails) or the page's own blobs (a file being uploaded).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::Digest;

/// The app's Content-Security-Policy.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// Every file of the app. `vendor/uppy.min.mjs` is Uppy 6.0.1 (MIT, `vendor/uppy.LICENSE`),
/// as `scripts/build-app.sh` fetches it from npm.
const ASSETS: &[Asset] = &[
    Asset { name: "", content_type: "text/html; charset=utf-8", bytes: include_bytes!("../app/index.html") },
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("../app/app.js") },
    Asset { name: "app.css", content_type: "text/css; charset=utf-8", bytes: include_bytes!("../app/app.css") },
    Asset {
        name: "vendor/uppy.min.mjs",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../app/vendor/uppy.min.mjs"),
    },
    Asset {
        name: "vendor/uppy.LICENSE",
        content_type: "text/plain; charset=utf-8",
        bytes: include_bytes!("../app/vendor/uppy.LICENSE"),
    },
];

/// Each asset's ETag (its SHA-256), worked out once.
fn etags() -> &'static [String] {
    static TAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    TAGS.get_or_init(|| ASSETS.iter().map(|a| format!("\"{}\"", hex::encode(sha2::Sha256::digest(a.bytes)))).collect())
}

/// `/app`: the app lives at `/app/`, so that its relative links resolve.
pub async fn redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header((header::LOCATION, "/app/")).finish()
}

/// `/app/{name}`: one of the app's files, with its ETag (304 when unchanged).
pub async fn asset(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    let Some(i) = ASSETS.iter().position(|a| a.name == name.as_str()) else {
        return with_policy(HttpResponse::NotFound().content_type("text/plain; charset=utf-8").body("no such file"));
    };
    let (a, tag) = (&ASSETS[i], &etags()[i]);
    let fresh = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == tag);
    let mut res = if fresh { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    res.insert_header((header::ETAG, tag.as_str()))
        // Revalidated on every load (cheap: a 304), so a new binary's app is seen at once.
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    let res = if fresh { res.finish() } else { res.content_type(a.content_type).body(a.bytes) };
    with_policy(res)
}

fn with_policy(mut res: HttpResponse) -> HttpResponse {
    res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    res
}
