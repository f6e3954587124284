//! The JSON-LD rest API (SPEC 6 and 7, seed 003): media by uuid, products and variants.
//! Every route needs the organization header ([`RestUser`]).

use actix_web::{web, HttpRequest, HttpResponse};
use mediabox_domain::catalog::{CatalogItem, ItemInput, ItemKind};
use serde_json::{json, Value};

use crate::auth::RestUser;
use crate::body;
use crate::dto::rfc3339;
use crate::error::ApiError;
use crate::routes::media_dto;
use crate::state::AppState;

const LD: &str = "application/ld+json; charset=utf-8";
const PER_PAGE: u32 = 30;

fn ld(status: actix_web::http::StatusCode, v: Value) -> HttpResponse {
    HttpResponse::build(status).content_type(LD).body(v.to_string())
}

fn media_iri(u: uuid::Uuid) -> String {
    format!("/rest/api/medias/{u}")
}

fn collection_path(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Product => "/rest/api/products",
        ItemKind::Variant => "/rest/api/variants",
    }
}

fn type_name(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Product => "Product",
        ItemKind::Variant => "Variant",
    }
}

fn item_json(i: &CatalogItem, with_context: bool) -> Value {
    let item = CatalogItemLd {
        context: with_context.then(|| format!("/rest/api/contexts/{}", type_name(i.kind))),
        iri: format!("{}/{}", collection_path(i.kind), i.id),
        kind: type_name(i.kind).to_owned(),
        id: i.id,
        name: i.name.clone(),
        product: i.product.map(|p| format!("/rest/api/products/{p}")),
        medias: i.medias.iter().map(|u| media_iri(*u)).collect(),
        created_at: rfc3339(i.created_at),
        updated_at: rfc3339(i.updated_at),
    };
    serde_json::to_value(item).unwrap_or_default()
}

/// A product or variant as JSON-LD (SPEC 6): what the rest API answers, and its schema.
/// Every item also carries the JSON-LD keywords `@id` (its IRI, e.g.
/// `/rest/api/products/7`), `@type` (`Product` or `Variant`) and, outside a collection,
/// `@context`. They are left out of the schema's properties: client generators name
/// `@id` and `id` alike, and drop the whole schema for it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CatalogItemLd {
    #[serde(rename = "@context", skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub context: Option<String>,
    #[serde(rename = "@id")]
    #[schema(ignore)]
    pub iri: String,
    #[serde(rename = "@type")]
    #[schema(ignore)]
    pub kind: String,
    pub id: i64,
    pub name: String,
    /// The product's IRI (variants only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// IRIs of the media it shows, in order.
    pub medias: Vec<String>,
    #[serde(rename = "createdAt")]
    #[schema(format = DateTime)]
    pub created_at: String,
    #[serde(rename = "updatedAt")]
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// The organization headers of the rest API: one of the two is required (seed 003 names
/// the first; SPEC 1 makes the second its equal). Without either: 400.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct OrgHeaders {
    /// The acting organization (or send `X-Organization-Id`; one of the two is required).
    #[serde(rename = "X-Flowkiwi-Organization-Id")]
    #[param(rename = "X-Flowkiwi-Organization-Id")]
    pub flowkiwi: Option<String>,
    /// The acting organization (or send `X-Flowkiwi-Organization-Id`).
    #[serde(rename = "X-Organization-Id")]
    #[param(rename = "X-Organization-Id")]
    pub organization: Option<String>,
}

fn path_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| ApiError::not_found("no such resource"))
}

fn media_uuid(raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| ApiError::not_found("no such media"))
}

/// Reads `name`, `product` and `medias` of a JSON(-LD) body. IRIs that do not name a
/// media at all are kept as errors for the domain to report as violations.
fn item_input(v: &Value) -> Result<ItemInput, ApiError> {
    let Value::Object(m) = v else { return Err(ApiError::bad_request("the body must be a JSON object")) };
    let name = match m.get("name") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::bad_field("name", "name must be a string")),
    };
    let product = match m.get("product") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            Some(s.strip_prefix("/rest/api/products/").and_then(|id| id.parse::<i64>().ok()).unwrap_or(-1))
        }
        Some(_) => return Err(ApiError::bad_field("product", "product must be a product IRI")),
    };
    let medias = match m.get("medias") {
        None => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|x| {
                    let s = x.as_str().unwrap_or_default();
                    s.strip_prefix("/rest/api/medias/")
                        .and_then(|u| uuid::Uuid::parse_str(u).ok())
                        .ok_or_else(|| s.to_owned())
                })
                .collect(),
        ),
        Some(_) => return Err(ApiError::bad_field("medias", "medias must be a list of media IRIs")),
    };
    Ok(ItemInput { name, product, medias })
}

/// A media as JSON-LD.
#[utoipa::path(get, path = "/rest/api/medias/{uuid}", tag = "rest",
    params(("uuid" = String, Path), OrgHeaders),
    responses((status = 200, description = "the media, JSON-LD"), (status = 400), (status = 404)))]
pub async fn get_media(
    state: web::Data<AppState>,
    auth: RestUser,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let m = state.media.get_by_uuid(&auth.0, media_uuid(&path)?).await?;
    let uuid = m.uuid;
    let dto = serde_json::to_value(media_dto(&state, &req, m)).map_err(ApiError::internal)?;
    let thumbnail = dto.get("thumbnail").cloned().unwrap_or(Value::Null);
    let mut v = json!({"@context": "/rest/api/contexts/Media", "@id": media_iri(uuid), "@type": "Media",
        "thumbnailUrl": thumbnail});
    if let (Value::Object(out), Value::Object(fields)) = (&mut v, dto) {
        out.extend(fields);
    }
    Ok(ld(actix_web::http::StatusCode::OK, v))
}

/// Deletes a media (seed 003): 204; 403 with `missingPermissions`; 404; 409 with the
/// referencing IRIs in `references`.
#[utoipa::path(delete, path = "/rest/api/medias/{uuid}", tag = "rest",
    params(("uuid" = String, Path), OrgHeaders),
    responses((status = 204), (status = 400), (status = 403), (status = 404), (status = 409)))]
pub async fn delete_media(
    state: web::Data<AppState>,
    auth: RestUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.media.delete_one(&auth.0, media_uuid(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `?page=` of a collection.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct PageParam {
    /// The page, from 1 (the first, when left out).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 4_294_967_295_i64)]
    pub page: Option<String>,
}

impl PageParam {
    fn number(&self) -> Result<Option<u32>, ApiError> {
        self.page
            .as_deref()
            .map(|p| {
                p.trim().parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ApiError::bad_field("page", format!("page must be an integer from 1 to {}", u32::MAX))
                })
            })
            .transpose()
    }
}

async fn list(state: &AppState, auth: &RestUser, kind: ItemKind, page: Option<u32>) -> Result<HttpResponse, ApiError> {
    let page = page.unwrap_or(1).max(1);
    let (items, total) = state.catalog.list(&auth.0, kind, page, PER_PAGE).await?;
    let base = collection_path(kind);
    let mut view = json!({"@id": format!("{base}?page={page}"), "@type": "hydra:PartialCollectionView"});
    if u64::from(page) * u64::from(PER_PAGE) < total {
        view["hydra:next"] = json!(format!("{base}?page={}", page + 1));
    }
    if page > 1 {
        view["hydra:previous"] = json!(format!("{base}?page={}", page - 1));
    }
    Ok(ld(
        actix_web::http::StatusCode::OK,
        json!({
            "@context": format!("/rest/api/contexts/{}", type_name(kind)),
            "@id": base,
            "@type": "hydra:Collection",
            "hydra:totalItems": total,
            "hydra:member": items.iter().map(|i| item_json(i, false)).collect::<Vec<_>>(),
            "hydra:view": view,
        }),
    ))
}

async fn create(
    state: &AppState,
    auth: &RestUser,
    kind: ItemKind,
    req: &HttpRequest,
    raw: &[u8],
) -> Result<HttpResponse, ApiError> {
    let input = item_input(&body::to_value(req, raw, &[])?)?;
    let item = state.catalog.create(&auth.0, kind, input).await?;
    let iri = format!("{}/{}", collection_path(kind), item.id);
    let mut res = ld(actix_web::http::StatusCode::CREATED, item_json(&item, true));
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&iri) {
        res.headers_mut().insert(actix_web::http::header::LOCATION, v);
    }
    Ok(res)
}

async fn get(state: &AppState, auth: &RestUser, kind: ItemKind, raw_id: &str) -> Result<HttpResponse, ApiError> {
    let item = state.catalog.get(&auth.0, kind, path_id(raw_id)?).await?;
    Ok(ld(actix_web::http::StatusCode::OK, item_json(&item, true)))
}

async fn update(
    state: &AppState,
    auth: &RestUser,
    kind: ItemKind,
    raw_id: &str,
    req: &HttpRequest,
    raw: &[u8],
) -> Result<HttpResponse, ApiError> {
    let id = path_id(raw_id)?;
    let input = item_input(&body::to_value(req, raw, &[])?)?;
    let item = state.catalog.update(&auth.0, kind, id, input).await?;
    Ok(ld(actix_web::http::StatusCode::OK, item_json(&item, true)))
}

async fn delete(state: &AppState, auth: &RestUser, kind: ItemKind, raw_id: &str) -> Result<HttpResponse, ApiError> {
    state.catalog.delete(&auth.0, kind, path_id(raw_id)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

macro_rules! catalog_routes {
    ($kind:expr, $path:literal, $body:ty, $list:ident, $create:ident, $get:ident, $update:ident, $delete:ident) => {
        /// The collection (`hydra:Collection`, 30 a page).
        #[utoipa::path(get, path = $path, tag = "rest", params(PageParam, OrgHeaders),
                            responses((status = 200, description = "hydra:Collection")))]
        pub async fn $list(
            state: web::Data<AppState>,
            auth: RestUser,
            q: web::Query<PageParam>,
        ) -> Result<HttpResponse, ApiError> {
            list(&state, &auth, $kind, q.number()?).await
        }

        /// Creates one (`catalog:write`); `medias` are media IRIs of the organization.
        #[utoipa::path(post, path = $path, tag = "rest", params(OrgHeaders),
                            request_body(content = $body, content_type = "application/ld+json"),
                            responses((status = 201, body = CatalogItemLd, content_type = "application/ld+json"), (status = 403), (status = 422, description = "`violations`")))]
        pub async fn $create(
            state: web::Data<AppState>,
            auth: RestUser,
            req: HttpRequest,
            raw: web::Bytes,
        ) -> Result<HttpResponse, ApiError> {
            create(&state, &auth, $kind, &req, &raw).await
        }

        /// One item.
        #[utoipa::path(get, path = concat!($path, "/{id}"), tag = "rest",
                            params(("id" = i64, Path), OrgHeaders),
                            responses((status = 200, body = CatalogItemLd, content_type = "application/ld+json"), (status = 404)))]
        pub async fn $get(
            state: web::Data<AppState>,
            auth: RestUser,
            path: web::Path<String>,
        ) -> Result<HttpResponse, ApiError> {
            get(&state, &auth, $kind, &path).await
        }

        /// Changes the fields sent (JSON merge patch; `catalog:write`).
        #[utoipa::path(patch, path = concat!($path, "/{id}"), tag = "rest",
                            params(("id" = i64, Path), OrgHeaders),
                            request_body(content = crate::dto::ItemPatch, content_type = "application/merge-patch+json"),
                            responses((status = 200, body = CatalogItemLd, content_type = "application/ld+json"), (status = 403), (status = 404), (status = 422)))]
        pub async fn $update(
            state: web::Data<AppState>,
            auth: RestUser,
            req: HttpRequest,
            path: web::Path<String>,
            raw: web::Bytes,
        ) -> Result<HttpResponse, ApiError> {
            update(&state, &auth, $kind, &path, &req, &raw).await
        }

        /// Deletes one (`catalog:write`); its media stay.
        #[utoipa::path(delete, path = concat!($path, "/{id}"), tag = "rest",
                            params(("id" = i64, Path), OrgHeaders),
                            responses((status = 204), (status = 403), (status = 404), (status = 409)))]
        pub async fn $delete(
            state: web::Data<AppState>,
            auth: RestUser,
            path: web::Path<String>,
        ) -> Result<HttpResponse, ApiError> {
            delete(&state, &auth, $kind, &path).await
        }
    };
}

catalog_routes!(
    ItemKind::Product,
    "/rest/api/products",
    crate::dto::ProductBody,
    list_products,
    create_product,
    get_product,
    update_product,
    delete_product
);
catalog_routes!(
    ItemKind::Variant,
    "/rest/api/variants",
    crate::dto::VariantBody,
    list_variants,
    create_variant,
    get_variant,
    update_variant,
    delete_variant
);
