//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::dto;
use crate::routes::{events, images, media, ops, rest, tus, uploads};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = api.components.as_mut() {
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
            );
        }
    }
}

/// RFC 9457 problem details: the body of every error (SPEC 8).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct Problem {
    /// A URI reference naming the kind of problem, e.g. `/problems/offset-mismatch`.
    r#type: String,
    /// A short summary of the kind, e.g. `Conflict`.
    title: String,
    /// The HTTP status.
    status: u16,
    /// What went wrong here, for a person.
    detail: String,
    /// The request path.
    instance: String,
    /// The request id (also in `X-Request-Id`).
    #[schema(rename = "requestId")]
    request_id: String,
    /// The field of the request that is wrong (400).
    field: Option<String>,
    /// Permissions the caller lacks (403).
    #[schema(rename = "missingPermissions")]
    missing_permissions: Option<Vec<String>>,
    /// IRIs of what still references the resource (409).
    references: Option<Vec<String>>,
    /// The upload's current offset (upload conflicts).
    offset: Option<u64>,
}

/// Every error answered with the same problem+json body, documented once: each error
/// status of each operation gets the `Problem` schema; every operation that needs a
/// token documents 401 and, since any of them can meet a malformed organization header
/// or an unreachable database, 400 and 503.
struct Problems;

impl Modify for Problems {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let components = api.components.get_or_insert_with(Default::default);
        components.schemas.insert("Problem".into(), <Problem as utoipa::PartialSchema>::schema());
        let problem = || ContentBuilder::new().schema(Some(RefOr::Ref(Ref::from_schema_name("Problem")))).build();
        let global_security = api.security.clone();
        for op in operations(api) {
            let open = op.security.as_ref().is_some_and(|s| s.iter().all(|r| *r == Default::default()));
            let secured = !open && (op.security.is_some() || global_security.is_some());
            let responses = &mut op.responses.responses;
            if secured {
                for (code, why) in [
                    ("400", "the request is malformed: the problem's `field` names what is wrong"),
                    ("401", "no token, or one that is not valid"),
                    ("503", "the database or the storage is unreachable; retry shortly"),
                ] {
                    responses
                        .entry(code.to_owned())
                        .or_insert_with(|| RefOr::T(ResponseBuilder::new().description(why).build()));
                }
            }
            for (code, response) in responses.iter_mut() {
                let RefOr::T(r) = response else { continue };
                // OpenAPI requires a description of every response.
                if r.description.is_empty() {
                    r.description = reason(code).to_owned();
                }
                if code.starts_with('4') || code.starts_with('5') {
                    r.content.clear();
                    r.content.insert("application/problem+json".into(), RefOr::T(problem()));
                }
            }
        }
    }
}

/// The create-then-use chains, as OpenAPI links: what an answer's body names, and the
/// operations that take it (a generated client or a stateful fuzzer follows them).
/// `(path, method, status, [(link name, target path, target method, [(parameter, expression)])])`.
type Chain = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str, &'static str, &'static [(&'static str, &'static str)])],
);

const CHAINS: &[Chain] = &[
    (
        "/api/v2/event/",
        "post",
        "201",
        &[
            ("GetEvent", "/api/v2/event/{id}/", "get", &[("id", "$response.body#/id")]),
            ("UpdateEvent", "/api/v2/event/{id}/", "patch", &[("id", "$response.body#/id")]),
            ("DeleteEvent", "/api/v2/event/{id}/", "delete", &[("id", "$response.body#/id")]),
            ("AddToGallery", "/api/v2/event/{id}/gallery/", "post", &[("id", "$response.body#/id")]),
            ("ListGallery", "/api/v2/event/{id}/gallery/", "get", &[("id", "$response.body#/id")]),
            ("RemoveFromGallery", "/api/v2/event/{id}/gallery/", "delete", &[("id", "$response.body#/id")]),
            ("AddManager", "/api/v2/event/{id}/managers/", "post", &[("id", "$response.body#/id")]),
        ],
    ),
    (
        "/api/v2/media/chunk_upload/",
        "put",
        "200",
        &[
            (
                "UploadStatus",
                "/api/v2/media/chunk_upload/{upload_id}/",
                "get",
                &[("upload_id", "$response.body#/upload_id")],
            ),
            (
                "NextChunk",
                "/api/v2/media/chunk_upload/{upload_id}/",
                "put",
                &[("upload_id", "$response.body#/upload_id")],
            ),
            (
                "Abandon",
                "/api/v2/media/chunk_upload/{upload_id}/",
                "delete",
                &[("upload_id", "$response.body#/upload_id")],
            ),
        ],
    ),
    (
        "/api/v2/media/chunk_upload_complete/",
        "post",
        "200",
        &[
            ("GetMedia", "/api/v2/media/{id}/", "get", &[("id", "$response.body#/id")]),
            ("GetFile", "/api/v2/media/{id}/file", "get", &[("id", "$response.body#/id")]),
            ("GetRestMedia", "/rest/api/medias/{uuid}", "get", &[("uuid", "$response.body#/uuid")]),
            ("DeleteMedia", "/rest/api/medias/{uuid}", "delete", &[("uuid", "$response.body#/uuid")]),
        ],
    ),
    (
        "/rest/api/products",
        "post",
        "201",
        &[
            ("GetProduct", "/rest/api/products/{id}", "get", &[("id", "$response.body#/id")]),
            ("UpdateProduct", "/rest/api/products/{id}", "patch", &[("id", "$response.body#/id")]),
            ("DeleteProduct", "/rest/api/products/{id}", "delete", &[("id", "$response.body#/id")]),
        ],
    ),
    (
        "/rest/api/variants",
        "post",
        "201",
        &[
            ("GetVariant", "/rest/api/variants/{id}", "get", &[("id", "$response.body#/id")]),
            ("UpdateVariant", "/rest/api/variants/{id}", "patch", &[("id", "$response.body#/id")]),
            ("DeleteVariant", "/rest/api/variants/{id}", "delete", &[("id", "$response.body#/id")]),
        ],
    ),
];

/// Adds [`CHAINS`] to the document.
struct Links;

impl Modify for Links {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::link::LinkBuilder;
        use utoipa::openapi::RefOr;
        for (path, method, status, links) in CHAINS {
            let Some(item) = api.paths.paths.get_mut(*path) else { continue };
            let op = match *method {
                "post" => item.post.as_mut(),
                "put" => item.put.as_mut(),
                _ => None,
            };
            let Some(RefOr::T(response)) = op.and_then(|o| o.responses.responses.get_mut(*status)) else { continue };
            for (name, target, target_method, params) in *links {
                // A JSON pointer into `paths`: `/` in the path is written `~1`.
                let operation_ref = format!("#/paths/{}/{target_method}", target.replace('~', "~0").replace('/', "~1"));
                let mut link = LinkBuilder::new().operation_ref(operation_ref);
                for (param, expression) in *params {
                    link = link.parameter(*param, *expression);
                }
                response.links.insert((*name).to_owned(), RefOr::T(link.build()));
            }
        }
    }
}

/// A parameter is sent as text in a path, query or header, or not at all: it has no
/// `null`; nor has an optional request body, which is left out, not sent as `null`.
/// utoipa describes an `Option<T>` parameter or body as "T or null"; this keeps the T (it
/// stays optional through `required: false`), so no client or fuzzer sends the text `null`
/// where the server reads a number, a pattern, an enum or an object.
struct NoNulls;

impl Modify for NoNulls {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        for op in operations(api) {
            for p in op.parameters.iter_mut().flatten().filter_map(inline) {
                if let Some(schema) = p.schema.take() {
                    p.schema = Some(without_null(schema));
                }
            }
            let bodies = op.request_body.iter_mut().filter_map(inline);
            for content in bodies.flat_map(|b| b.content.values_mut()).filter_map(inline) {
                if let Some(schema) = content.schema.take() {
                    content.schema = Some(without_null(schema));
                }
            }
        }
    }
}

/// Every operation of the document, whatever its method.
fn operations(api: &mut utoipa::openapi::OpenApi) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    api.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
    })
}

/// What `r` holds when it is written out rather than referenced.
fn inline<T>(r: &mut utoipa::openapi::RefOr<T>) -> Option<&mut T> {
    match r {
        utoipa::openapi::RefOr::T(t) => Some(t),
        utoipa::openapi::RefOr::Ref(_) => None,
    }
}

/// `schema` without its `null` alternative: `type: [T, "null"]` becomes `type: T`, and
/// `oneOf: [S, {type: null}]` becomes `S`.
fn without_null(
    schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use serde_json::Value;
    let Ok(mut v) = serde_json::to_value(&schema) else { return schema };
    if let Some(Value::Array(types)) = v.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            v["type"] = only;
        }
    }
    let one_of = v.get("oneOf").and_then(Value::as_array).map(|alternatives| {
        alternatives
            .iter()
            .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
            .cloned()
            .collect::<Vec<_>>()
    });
    if let Some(mut rest) = one_of {
        if rest.len() == 1 {
            let mut only = rest.remove(0);
            // Keep what the parameter's schema said beside `oneOf` (a description, a default).
            if let (Value::Object(outer), Value::Object(inner)) = (&v, &mut only) {
                for (k, val) in outer {
                    if k != "oneOf" {
                        inner.entry(k.clone()).or_insert_with(|| val.clone());
                    }
                }
            }
            v = only;
        } else {
            v["oneOf"] = Value::Array(rest);
        }
    }
    serde_json::from_value(v).unwrap_or(schema)
}

/// The standard reason phrase of a status code.
fn reason(code: &str) -> &'static str {
    code.parse::<u16>()
        .ok()
        .and_then(|c| actix_web::http::StatusCode::from_u16(c).ok())
        .and_then(|c| c.canonical_reason())
        .unwrap_or("Error")
}

/// The document, built once per process.
#[must_use]
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// The whole API.
#[derive(OpenApi)]
#[openapi(
    info(title = "mediabox", description = "Media, chunked uploads, events and their photo galleries."),
    paths(
        uploads::start, uploads::append, uploads::status, uploads::abandon, uploads::complete,
        tus::collection, tus::options_doc, tus::resource, tus::head_doc, tus::delete_doc,
        media::get, media::file,
        events::create, events::list, events::get, events::update, events::delete,
        events::add_manager, events::remove_manager,
        events::add_to_gallery, events::remove_from_gallery, events::gallery,
        images::delete,
        rest::get_media, rest::delete_media,
        rest::list_products, rest::create_product, rest::get_product, rest::update_product, rest::delete_product,
        rest::list_variants, rest::create_variant, rest::get_variant, rest::update_variant, rest::delete_variant,
        ops::healthz, ops::readyz, ops::metrics, ops::openapi,
    ),
    components(schemas(
        dto::MediaDto, dto::UploadDto, dto::CompleteRequest, dto::EventDto, dto::CreateEventRequest,
        dto::ManagerRequest, dto::AddToGalleryRequest, dto::RemoveFromGalleryRequest, dto::MediaPage, dto::EventPage,
        rest::CatalogItemLd,
    )),
    modifiers(&BearerAuth, &Problems, &Links, &NoNulls),
    security(("bearer" = [])),
)]
pub struct ApiDoc;
