//! mediabox-http: the actix-web adapter. Routes, DTOs, auth, errors; it knows the domain
//! and nothing of the database or the blob store.

pub mod app;
pub mod auth;
pub mod body;
pub mod constrained;
pub mod cors;
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

/// One path and its methods (`allow`, as the `Allow` header lists them); another
/// method on it answers 405 with `Allow`. An unknown path answers 404.
fn at(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || middleware::method_not_allowed(allow)))
}

/// Registers every route. Chunk bodies stream (`web::Payload`); other bodies are small.
///
/// Grouped by static prefixes (`web::scope`), one resource per path: actix matches a
/// dynamic path with a regular expression, trying resources in order, and a request for
/// a media's metadata used to try four before its own (6 % of the server's work). Static
/// paths come before the dynamic ones they would otherwise match (`chunk_upload/`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    use routes::{events, images, media, ops, rest, tus, uploads};
    cfg.app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .service(at("/healthz", "GET").route(web::get().to(ops::healthz)))
        .service(at("/readyz", "GET").route(web::get().to(ops::readyz)))
        .service(at("/metrics", "GET").route(web::get().to(ops::metrics)))
        .service(at("/openapi.json", "GET").route(web::get().to(ops::openapi)))
        .service(at("/docs", "GET").route(web::get().to(ops::docs_redirect)))
        .service(at("/app", "GET").route(web::get().to(app::redirect)))
        .service(at("/app/{name:.*}", "GET").route(web::get().to(app::asset)))
        .service(
            utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}").url("/docs/openapi.json", openapi::document().clone()),
        )
        .service(
            web::scope("/api/v2/media")
                .service(
                    web::scope("/tus")
                        .wrap(tus::resumable_header())
                        .service(web::resource("/").route(web::route().to(tus::collection)))
                        .service(web::resource("/{upload_id}").route(web::route().to(tus::resource))),
                )
                .service(at("/chunk_upload/", "PUT").route(web::put().to(uploads::start)))
                .service(at("/chunk_upload_complete/", "POST").route(web::post().to(uploads::complete)))
                .service(
                    web::scope("/chunk_upload").service(
                        at("/{upload_id}/", "PUT, GET, DELETE")
                            .route(web::put().to(uploads::append))
                            .route(web::get().to(uploads::status))
                            .route(web::delete().to(uploads::abandon)),
                    ),
                )
                .service(at("/{id}/", "GET").route(web::get().to(media::get)))
                .service(at("/{id}/file", "GET").route(web::get().to(media::file))),
        )
        .service(
            web::scope("/api/v2/event")
                .service(at("/", "POST, GET").route(web::post().to(events::create)).route(web::get().to(events::list)))
                .service(
                    web::scope("/{id}")
                        .service(
                            at("/", "GET, PATCH, DELETE")
                                .route(web::get().to(events::get))
                                .route(web::patch().to(events::update))
                                .route(web::delete().to(events::delete)),
                        )
                        .service(
                            at("/managers/", "POST, DELETE")
                                .route(web::post().to(events::add_manager))
                                .route(web::delete().to(events::remove_manager)),
                        )
                        .service(
                            at("/gallery/", "GET, POST, DELETE")
                                .route(web::get().to(events::gallery))
                                .route(web::post().to(events::add_to_gallery))
                                .route(web::delete().to(events::remove_from_gallery)),
                        ),
                ),
        )
        .service(at("/api/v1/images", "DELETE").route(web::delete().to(images::delete)))
        .service(
            web::scope("/rest/api")
                .service(
                    at("/medias/{uuid}", "GET, DELETE")
                        .route(web::get().to(rest::get_media))
                        .route(web::delete().to(rest::delete_media)),
                )
                .service(
                    at("/products", "GET, POST")
                        .route(web::get().to(rest::list_products))
                        .route(web::post().to(rest::create_product)),
                )
                .service(
                    at("/products/{id}", "GET, PATCH, DELETE")
                        .route(web::get().to(rest::get_product))
                        .route(web::patch().to(rest::update_product))
                        .route(web::delete().to(rest::delete_product)),
                )
                .service(
                    at("/variants", "GET, POST")
                        .route(web::get().to(rest::list_variants))
                        .route(web::post().to(rest::create_variant)),
                )
                .service(
                    at("/variants/{id}", "GET, PATCH, DELETE")
                        .route(web::get().to(rest::get_variant))
                        .route(web::patch().to(rest::update_variant))
                        .route(web::delete().to(rest::delete_variant)),
                ),
        )
        .default_service(web::to(middleware::not_found));
}
