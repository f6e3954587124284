//! mediabox-http: the actix-web adapter. Routes, DTOs, auth, errors; it knows the domain
//! and nothing of the database or the blob store.

pub mod auth;
pub mod body;
pub mod dto;
pub mod error;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod routes;
pub mod signing;
pub mod state;

use actix_web::web;

pub use state::{AppState, Readiness};

/// Largest non-chunk body accepted (JSON and form bodies).
pub const MAX_BODY_BYTES: usize = 2 << 20;

/// Registers every route. Chunk bodies stream (`web::Payload`); other bodies are small.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use routes::{events, images, media, ops, rest, uploads};
    cfg.app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/metrics", web::get().to(ops::metrics))
        .route("/openapi.json", web::get().to(ops::openapi))
        .route("/docs", web::get().to(ops::docs_redirect))
        .service(
            utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}").url("/docs/openapi.json", openapi::document().clone()),
        )
        .route("/api/v2/media/chunk_upload/", web::put().to(uploads::start))
        .route("/api/v2/media/chunk_upload/{upload_id}/", web::put().to(uploads::append))
        .route("/api/v2/media/chunk_upload/{upload_id}/", web::get().to(uploads::status))
        .route("/api/v2/media/chunk_upload/{upload_id}/", web::delete().to(uploads::abandon))
        .route("/api/v2/media/chunk_upload_complete/", web::post().to(uploads::complete))
        .route("/api/v2/media/{id}/", web::get().to(media::get))
        .route("/api/v2/media/{id}/file", web::get().to(media::file))
        .route("/api/v2/event/", web::post().to(events::create))
        .route("/api/v2/event/", web::get().to(events::list))
        .route("/api/v2/event/{id}/", web::get().to(events::get))
        .route("/api/v2/event/{id}/", web::patch().to(events::update))
        .route("/api/v2/event/{id}/", web::delete().to(events::delete))
        .route("/api/v2/event/{id}/managers/", web::post().to(events::add_manager))
        .route("/api/v2/event/{id}/managers/", web::delete().to(events::remove_manager))
        .route("/api/v2/event/{id}/gallery/", web::post().to(events::add_to_gallery))
        .route("/api/v2/event/{id}/gallery/", web::delete().to(events::remove_from_gallery))
        .route("/api/v2/event/{id}/gallery/", web::get().to(events::gallery))
        .route("/api/v1/images", web::delete().to(images::delete))
        .route("/rest/api/medias/{uuid}", web::get().to(rest::get_media))
        .route("/rest/api/medias/{uuid}", web::delete().to(rest::delete_media))
        .route("/rest/api/products", web::get().to(rest::list_products))
        .route("/rest/api/products", web::post().to(rest::create_product))
        .route("/rest/api/products/{id}", web::get().to(rest::get_product))
        .route("/rest/api/products/{id}", web::patch().to(rest::update_product))
        .route("/rest/api/products/{id}", web::delete().to(rest::delete_product))
        .route("/rest/api/variants", web::get().to(rest::list_variants))
        .route("/rest/api/variants", web::post().to(rest::create_variant))
        .route("/rest/api/variants/{id}", web::get().to(rest::get_variant))
        .route("/rest/api/variants/{id}", web::patch().to(rest::update_variant))
        .route("/rest/api/variants/{id}", web::delete().to(rest::delete_variant))
        .default_service(web::to(middleware::not_found));
}
