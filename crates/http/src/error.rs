//! Errors as RFC 9457 problem details. Policy: handlers return [`ApiError`]; the `From`
//! impls below are the only place where a domain error becomes a status code. Sources of
//! 500s are logged (with the request id, by the middleware) and never shown: no SQL, paths,
//! or secrets reach a body.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use mediabox_domain::catalog::CatalogError;
use mediabox_domain::error::{Forbidden, RepoError, StoreError};
use mediabox_domain::event::EventError;
use mediabox_domain::media::{DeleteMediaError, GetMediaError, Reference};
use mediabox_domain::rendition::RenditionError;
use mediabox_domain::upload::{ChunkError, CompleteError, UploadError};
use serde_json::{json, Map, Value};

/// An error answered as a problem. Boxed, so that `Result<_, ApiError>` stays small.
#[derive(Debug, Clone)]
pub struct ApiError(Box<Problem>);

impl std::ops::Deref for ApiError {
    type Target = Problem;
    fn deref(&self) -> &Problem {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut Problem {
        &mut self.0
    }
}

/// A problem: status, a short stable title, a human detail and extra members.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    /// The last segment of the problem `type` URI, e.g. `offset-mismatch`.
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub members: Map<String, Value>,
    /// Extra response headers (e.g. `Content-Range` on 416).
    pub headers: Vec<(&'static str, String)>,
    /// Logged, never shown.
    pub internal: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.title, self.detail)
    }
}

impl ApiError {
    #[must_use]
    pub fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self(Box::new(Problem {
            status,
            kind,
            title,
            detail: detail.into(),
            members: Map::new(),
            headers: Vec::new(),
            internal: None,
        }))
    }
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.members.insert(key.to_owned(), value.into());
        self
    }
    #[must_use]
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not Found", detail)
    }
    /// A malformed request naming the field that is wrong.
    pub fn bad_field(field: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid-request", "Bad Request", detail).with("field", field)
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid-request", "Bad Request", detail)
    }
    /// 405 for a method a resource lacks, naming the ones it has (`Allow`).
    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method Not Allowed",
            format!("this resource answers {allow}"),
        )
        .header("Allow", allow)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", detail).header("WWW-Authenticate", "Bearer")
    }
    pub fn internal(source: impl std::fmt::Display) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal Server Error",
            "an unexpected error occurred; quote the request id when reporting it",
        );
        e.internal = Some(source.to_string());
        e
    }
    pub fn unavailable(what: &str, source: impl std::fmt::Display) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service Unavailable",
            format!("the {what} is unreachable; retry shortly"),
        )
        .header("Retry-After", "5");
        e.internal = Some(source.to_string());
        e
    }

    /// The problem body (without `instance` and request id, which the middleware adds).
    #[must_use]
    pub fn body(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("type".into(), json!(format!("/problems/{}", self.kind)));
        m.insert("title".into(), json!(self.title));
        m.insert("status".into(), json!(self.status.as_u16()));
        m.insert("detail".into(), json!(self.detail));
        for (k, v) in &self.members {
            m.insert(k.clone(), v.clone());
        }
        m
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut b = HttpResponse::build(self.status);
        b.content_type("application/problem+json");
        for (k, v) in &self.headers {
            b.insert_header((*k, v.as_str()));
        }
        b.body(Value::Object(self.body()).to_string())
    }
}

impl From<Forbidden> for ApiError {
    fn from(f: Forbidden) -> Self {
        let e = ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", f.reason.clone());
        if f.missing.is_empty() {
            e
        } else {
            let names: Vec<&str> = f.missing.iter().map(|p| p.as_str()).collect();
            e.with("missingPermissions", names)
        }
    }
}

impl From<RepoError> for ApiError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Unavailable(src) => ApiError::unavailable("database", src),
            RepoError::Other(src) => ApiError::internal(src),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(src) => ApiError::unavailable("storage", src),
            StoreError::Body(src) => {
                let mut e = ApiError::bad_request("the request body could not be read to its end");
                e.internal = Some(src.to_string());
                e
            }
            StoreError::NotFound => ApiError::internal("blob missing from the store"),
            StoreError::Lost { .. } => lost(),
            StoreError::Other(src) => ApiError::internal(src),
        }
    }
}

/// 410 for an upload whose staged bytes a crash lost: the client starts again.
fn lost() -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        "upload-lost",
        "Gone",
        "the server lost bytes of this upload in a crash; start the upload again".to_owned(),
    )
}

fn offset_error(status: StatusCode, kind: &'static str, title: &'static str, detail: String, offset: u64) -> ApiError {
    ApiError::new(status, kind, title, detail).with("offset", offset)
}

impl From<ChunkError> for ApiError {
    fn from(e: ChunkError) -> Self {
        let detail = e.to_string();
        match e {
            ChunkError::Forbidden(f) => f.into(),
            ChunkError::NotFound => ApiError::not_found("no such upload"),
            ChunkError::Expired => ApiError::new(StatusCode::GONE, "upload-expired", "Gone", detail),
            ChunkError::Completed => ApiError::new(StatusCode::CONFLICT, "upload-completed", "Conflict", detail),
            ChunkError::OffsetMismatch { offset, .. } => {
                offset_error(StatusCode::BAD_REQUEST, "offset-mismatch", "Bad Request", detail, offset)
            }
            ChunkError::Busy { offset } => {
                offset_error(StatusCode::CONFLICT, "chunk-in-progress", "Conflict", detail, offset)
            }
            ChunkError::LengthMismatch { offset, .. } => {
                offset_error(StatusCode::BAD_REQUEST, "length-mismatch", "Bad Request", detail, offset)
                    .with("field", "Content-Range")
            }
            ChunkError::BadRange(_) | ChunkError::TotalMismatch { .. } => ApiError::bad_field("Content-Range", detail),
            ChunkError::ChunkTooLarge { limit } | ChunkError::UploadTooLarge { limit } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", "Payload Too Large", detail)
                    .with("limit", limit)
            }
            ChunkError::ChecksumMismatch { offset, algorithm } => ApiError::new(
                StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST),
                "checksum-mismatch",
                "Checksum Mismatch",
                detail,
            )
            .with("offset", offset)
            .with("field", algorithm),
            ChunkError::BeyondLength { length } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "beyond-length", "Payload Too Large", detail)
                    .with("length", length)
            }
            ChunkError::FinalNotWritable => ApiError::new(StatusCode::FORBIDDEN, "final-upload", "Forbidden", detail),
            ChunkError::BadConcat(_) => ApiError::bad_field("Upload-Concat", detail),
            ChunkError::Corrupt => ApiError::internal("corrupt upload state"),
            ChunkError::Repository(r) => r.into(),
            ChunkError::Store(s) => s.into(),
        }
    }
}

/// A write's error as tus (SPEC 12) answers it: 409 for a wrong offset (no retry rule),
/// 423 while another request writes the upload, and the length headers named; the rest
/// as the chunk API answers them.
#[must_use]
pub fn tus_problem(e: ChunkError) -> ApiError {
    let detail = e.to_string();
    match e {
        ChunkError::OffsetMismatch { offset, .. } => {
            offset_error(StatusCode::CONFLICT, "offset-mismatch", "Conflict", detail, offset)
                .with("field", "Upload-Offset")
        }
        ChunkError::Busy { offset } => offset_error(StatusCode::LOCKED, "upload-locked", "Locked", detail, offset),
        ChunkError::TotalMismatch { .. } | ChunkError::BadRange(_) => ApiError::bad_field("Upload-Length", detail),
        other => other.into(),
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        let detail = e.to_string();
        match e {
            UploadError::Forbidden(f) => f.into(),
            UploadError::NotFound => ApiError::not_found("no such upload"),
            UploadError::Expired => ApiError::new(StatusCode::GONE, "upload-expired", "Gone", detail),
            UploadError::Repository(r) => r.into(),
            UploadError::Store(s) => s.into(),
        }
    }
}

impl From<CompleteError> for ApiError {
    fn from(e: CompleteError) -> Self {
        let detail = e.to_string();
        match e {
            CompleteError::Forbidden(f) => f.into(),
            CompleteError::NotFound => ApiError::not_found("no such upload"),
            CompleteError::Expired => ApiError::new(StatusCode::GONE, "upload-expired", "Gone", detail),
            CompleteError::Empty => ApiError::bad_field("upload_id", detail),
            CompleteError::Incomplete { offset, .. } => {
                offset_error(StatusCode::BAD_REQUEST, "upload-incomplete", "Bad Request", detail, offset)
            }
            CompleteError::ChecksumMismatch { algorithm, offset } => {
                offset_error(StatusCode::BAD_REQUEST, "checksum-mismatch", "Bad Request", detail, offset)
                    .with("field", algorithm)
            }
            CompleteError::Busy { offset } => {
                offset_error(StatusCode::CONFLICT, "upload-in-progress", "Conflict", detail, offset)
            }
            CompleteError::Corrupt => ApiError::internal("corrupt upload state"),
            CompleteError::Repository(r) => r.into(),
            CompleteError::Store(s) => s.into(),
        }
    }
}

impl From<GetMediaError> for ApiError {
    fn from(e: GetMediaError) -> Self {
        match e {
            GetMediaError::Forbidden(f) => f.into(),
            GetMediaError::NotFound => ApiError::not_found("no such media"),
            GetMediaError::RangeNotSatisfiable { size } => ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range-not-satisfiable",
                "Range Not Satisfiable",
                format!("the range lies outside the file of {size} bytes"),
            )
            .header("Content-Range", format!("bytes */{size}")),
            GetMediaError::Repository(r) => r.into(),
            GetMediaError::Store(s) => s.into(),
        }
    }
}

impl From<RenditionError> for ApiError {
    fn from(e: RenditionError) -> Self {
        let detail = e.to_string();
        let unprocessable =
            |kind| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, kind, "Unprocessable Entity", detail);
        match e {
            RenditionError::NoRendition(_) => ApiError::not_found(e.to_string()),
            RenditionError::TooLarge { .. } | RenditionError::FileTooLarge { .. } => unprocessable("image-too-large"),
            RenditionError::NotDecodable => unprocessable("image-not-decodable"),
            RenditionError::VideoNotDecodable => unprocessable("media-not-decodable"),
            RenditionError::NotFound => ApiError::not_found("no such media"),
            RenditionError::RangeNotSatisfiable { size } => GetMediaError::RangeNotSatisfiable { size }.into(),
            RenditionError::Repository(r) => r.into(),
            RenditionError::Store(s) => s.into(),
        }
    }
}

impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        let detail = e.to_string();
        match e {
            EventError::Forbidden(f) => f.into(),
            EventError::NotFound => ApiError::not_found("no such event"),
            EventError::MediaNotFound => ApiError::not_found("no such media"),
            EventError::Invalid { field, .. } => ApiError::bad_field(field, detail),
            EventError::LastManager => ApiError::new(StatusCode::CONFLICT, "last-manager", "Conflict", detail),
            EventError::Repository(r) => r.into(),
        }
    }
}

/// The IRI of what references a media.
#[must_use]
pub fn reference_iri(r: Reference) -> String {
    match r {
        Reference::Product(id) => format!("/rest/api/products/{id}"),
        Reference::Variant(id) => format!("/rest/api/variants/{id}"),
    }
}

impl From<DeleteMediaError> for ApiError {
    fn from(e: DeleteMediaError) -> Self {
        let detail = e.to_string();
        match e {
            DeleteMediaError::Forbidden(f) => f.into(),
            DeleteMediaError::NotFound => ApiError::not_found("no such media"),
            DeleteMediaError::Referenced(refs) => {
                let iris: Vec<String> = refs.into_iter().map(reference_iri).collect();
                ApiError::new(
                    StatusCode::CONFLICT,
                    "media-referenced",
                    "Conflict",
                    format!("the media is still referenced by {}", iris.join(", ")),
                )
                .with("references", iris)
            }
            DeleteMediaError::TooMany { .. } => ApiError::bad_field("image_ids", detail),
            DeleteMediaError::Repository(r) => r.into(),
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Forbidden(f) => f.into(),
            CatalogError::NotFound => ApiError::not_found("no such resource"),
            CatalogError::Invalid(violations) => {
                let detail =
                    violations.iter().map(|v| format!("{}: {}", v.path, v.message)).collect::<Vec<_>>().join("\n");
                let list: Vec<Value> =
                    violations.into_iter().map(|v| json!({"propertyPath": v.path, "message": v.message})).collect();
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", "Unprocessable Entity", detail)
                    .with("violations", list)
            }
            CatalogError::Referenced(variants) => {
                let iris: Vec<String> = variants.into_iter().map(|v| reference_iri(Reference::Variant(v))).collect();
                ApiError::new(
                    StatusCode::CONFLICT,
                    "product-referenced",
                    "Conflict",
                    format!("the product still has variants: {}", iris.join(", ")),
                )
                .with("references", iris)
            }
            CatalogError::Repository(r) => r.into(),
        }
    }
}
