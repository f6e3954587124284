//! One middleware around every request: the request id, the security and cache headers,
//! the sliding `X-Token`, problem+json for every error (with `instance`, the request id,
//! and JSON-LD members when the client accepts `application/ld+json`), metrics, and one
//! structured log line.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse};
use serde_json::{json, Value};

use crate::auth::RefreshedToken;
use crate::error::ApiError;
use crate::state::AppState;

fn sane_request_id(v: &str) -> bool {
    !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

fn generic_problem(status: StatusCode) -> ApiError {
    let title = status.canonical_reason().unwrap_or("Error");
    let (kind, detail) = match status {
        StatusCode::NOT_FOUND => ("not-found", "no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "this method is not allowed on this resource"),
        StatusCode::PAYLOAD_TOO_LARGE => ("too-large", "the request body is too large"),
        s if s.is_server_error() => {
            ("internal", "an unexpected error occurred; quote the request id when reporting it")
        }
        _ => ("invalid-request", "the request could not be processed"),
    };
    ApiError::new(status, kind, title, detail)
}

/// Whether error bodies get the JSON-LD members: when the client accepts
/// `application/ld+json`, or, on the rest API (whose default it is), when it names no
/// type or accepts anything.
fn accepts_ld(req: &actix_web::HttpRequest) -> bool {
    let accept = req.headers().get("Accept").and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let rest = req.path().starts_with("/rest/");
    accept.contains("application/ld+json") || (rest && (accept.trim().is_empty() || accept.contains("*/*")))
}

fn problem_response(
    problem: &ApiError,
    old: &HttpResponse,
    instance: &str,
    request_id: &str,
    ld: bool,
) -> HttpResponse {
    let mut body = problem.body();
    body.insert("instance".into(), json!(instance));
    body.insert("requestId".into(), json!(request_id));
    if ld {
        body.insert(
            "@context".into(),
            json!({"@vocab": "http://www.w3.org/ns/hydra/core#", "hydra": "http://www.w3.org/ns/hydra/core#"}),
        );
        body.insert("@id".into(), json!(format!("/errors/{}", problem.status.as_u16())));
        body.insert("@type".into(), json!("hydra:Error"));
    }
    let mut res = HttpResponse::build(problem.status);
    for (k, v) in old.headers() {
        if k != CONTENT_TYPE && k != CONTENT_LENGTH {
            res.append_header((k.clone(), v.clone()));
        }
    }
    res.content_type("application/problem+json").body(Value::Object(body).to_string())
}

/// The middleware function; see the module docs.
///
/// # Errors
/// Never: errors of inner services become problem responses.
pub async fn around(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get("X-Request-Id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane_request_id(v))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    // The request cannot be cloned before routing (the router needs it alone).
    let method = req.method().to_string();
    let path = req.path().to_owned();
    let ld = accepts_ld(req.request());

    let res: ServiceResponse<BoxBody> = next.call(req).await?.map_into_boxed_body();
    let http_req = res.request().clone();
    let status = res.status();
    let mut res = if status.as_u16() >= 400 && !is_problem(res.response()) {
        let api = res.response().error().and_then(|e| e.as_error::<ApiError>()).cloned();
        let problem = api.unwrap_or_else(|| {
            let mut p = match res.response().error() {
                // Errors of extractors (bad JSON, payload too large) keep their message,
                // which names the problem and holds nothing internal.
                Some(e) if status.is_client_error() => generic_problem(status).with("reason", e.to_string()),
                _ => generic_problem(status),
            };
            if status.is_server_error() {
                p.internal = res.response().error().map(ToString::to_string);
            }
            p
        });
        if let Some(internal) = &problem.internal {
            if status.is_server_error() {
                tracing::error!(request_id = %request_id, error = %internal, "request failed");
            } else {
                tracing::info!(request_id = %request_id, error = %internal, "request refused");
            }
        }
        let body = problem_response(&problem, res.response(), &path, &request_id, ld);
        ServiceResponse::new(http_req.clone(), body)
    } else {
        res
    };

    let route = http_req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let h = res.headers_mut();
    let set = |h: &mut actix_web::http::header::HeaderMap, k: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(HeaderName::from_static(k), v);
        }
    };
    set(h, "x-request-id", &request_id);
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "origin-when-cross-origin, strict-origin-when-cross-origin");
    if !h.contains_key(CACHE_CONTROL) {
        set(h, "cache-control", "no-cache, no-store");
        set(h, "pragma", "no-cache");
        set(h, "expires", "Fri, 01 Jan 1990 00:00:00 GMT");
    }
    if let Some(RefreshedToken(t)) = http_req.extensions().get::<RefreshedToken>() {
        set(h, "x-token", t);
    }
    let elapsed = started.elapsed();
    let status = res.status().as_u16();
    if let Some(state) = http_req.app_data::<web::Data<AppState>>() {
        state.metrics.observe(&method, &route, status, elapsed.as_secs_f64());
    }
    tracing::info!(
        request_id = %request_id,
        method = %method,
        route = %route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    Ok(res)
}

fn is_problem(res: &HttpResponse) -> bool {
    res.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"))
        && res.error().and_then(|e| e.as_error::<ApiError>()).is_none()
}

/// The answer for a method that a path lacks: 405 naming the methods it has.
///
/// # Errors
/// Always: a 405 problem with `Allow`.
pub async fn method_not_allowed(allow: &'static str) -> Result<HttpResponse, ApiError> {
    Err(ApiError::method_not_allowed(allow))
}

/// The answer for routes that do not exist.
///
/// # Errors
/// Always: a 404 problem.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("no such resource"))
}

#[cfg(test)]
mod tests {
    use super::sane_request_id;

    #[test]
    fn only_sane_request_ids_are_echoed() {
        assert!(sane_request_id("3cdcadc9-532d-4f5e-8826-8584694cf195"));
        assert!(!sane_request_id("a b"));
        assert!(!sane_request_id("x\r\nSet-Cookie: y"));
        assert!(!sane_request_id(&"a".repeat(200)));
    }
}
