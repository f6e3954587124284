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
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;
