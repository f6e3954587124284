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

#[cfg(test)]
mod tests {
    use actix_web::{test, web, App, HttpResponse};

    async fn allowed(origins: &[&str], origin: &str) -> Option<String> {
        let origins: Vec<String> = origins.iter().map(|o| (*o).to_owned()).collect();
        let app = test::init_service(
            App::new().wrap(super::cors(&origins)).route("/", web::get().to(|| async { HttpResponse::Ok().finish() })),
        )
        .await;
        let res =
            test::call_service(&app, test::TestRequest::get().uri("/").insert_header(("Origin", origin)).to_request())
                .await;
        res.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    #[actix_web::test]
    async fn the_configured_origin_is_echoed_and_star_only_when_configured() {
        assert_eq!(
            allowed(&["https://app.example"], "https://app.example").await.as_deref(),
            Some("https://app.example")
        );
        assert_eq!(allowed(&["https://app.example"], "https://evil.example").await, None);
        assert_eq!(allowed(&["*"], "https://anyone.example").await.as_deref(), Some("*"));
    }
}
