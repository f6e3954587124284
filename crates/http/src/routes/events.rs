//! Events, managers and the photo gallery (SPEC 4, seeds 000 and 001).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use mediabox_domain::event::{EventInput, EventPatch};
use mediabox_domain::page::PageRequest;
use mediabox_domain::{MediaId, UserId};
use serde_json::Value;

use crate::auth::AuthUser;
use crate::body;
use crate::constrained::PageSize;
use crate::dto::{
    decode_cursor, page_links, AddToGalleryRequest, CreateEventRequest, EventDto, EventPage, ManagerRequest, MediaDto,
    MediaPage, PageQuery, RemoveFromGalleryRequest,
};
use crate::error::ApiError;
use crate::routes::{event_id, media_dto, origin, Linker};
use crate::state::AppState;

fn page_request(q: &PageQuery) -> Result<PageRequest, ApiError> {
    let size = match q.page_size.as_deref() {
        None => None,
        Some(s) => Some(PageSize::parse(s).map_err(|why| ApiError::bad_field("page_size", why))?),
    };
    let cursor =
        match q.cursor.as_deref() {
            None => None,
            Some(c) => Some(decode_cursor(c).ok_or_else(|| {
                ApiError::bad_field("cursor", "cursor must be one that a page's next or previous gave")
            })?),
        };
    Ok(PageRequest::new(size, cursor))
}

fn date(field: &'static str, v: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    v.map(|s| {
        // RFC 3339 allows a lower-case `t` and `z`; chrono wants them upper-case.
        DateTime::parse_from_rfc3339(&s.to_ascii_uppercase())
            .map(|d| d.with_timezone(&Utc))
            .map_err(|_| ApiError::bad_field(field, format!("{field} must be an RFC 3339 date-time")))
    })
    .transpose()
}

/// The user named by a managers request body.
fn manager_user(req: &HttpRequest, raw: &[u8]) -> Result<UserId, ApiError> {
    let b: ManagerRequest = body::parse(req, raw, &[])?;
    UserId::new(b.user.into_inner().trim()).map_err(|e| ApiError::bad_field("user", e.to_string()))
}

/// Creates an event; the caller becomes its first manager. Needs `event:write`.
#[utoipa::path(post, path = "/api/v2/event/", tag = "event",
    request_body(content = CreateEventRequest, content_type = "application/json"),
    responses((status = 201, body = EventDto), (status = 400), (status = 403)))]
pub async fn create(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
    raw: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let b: CreateEventRequest = body::parse(&req, &raw, &[])?;
    let input = EventInput {
        title: b.title.into_inner(),
        description: b.description.map(|d| d.0),
        starts_at: date("starts_at", b.starts_at.as_deref())?,
        ends_at: date("ends_at", b.ends_at.as_deref())?,
    };
    let event = state.events.create(&auth.0, input).await?;
    Ok(HttpResponse::Created().json(EventDto::from(event)))
}

/// The organization's events, oldest first, cursor-paginated.
#[utoipa::path(get, path = "/api/v2/event/", tag = "event", params(PageQuery),
    responses((status = 200, body = EventPage), (status = 403)))]
pub async fn list(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let pr = page_request(&q)?;
    let page = state.events.list(&auth.0, pr).await?;
    let (next, previous) = page_links(&page, &format!("{}/api/v2/event/", origin(&req)), pr.size);
    let count = page.count;
    let results = page.items.into_iter().map(|(_, e)| EventDto::from(e)).collect();
    Ok(HttpResponse::Ok().json(EventPage { count, next, previous, results }))
}

/// One event.
#[utoipa::path(get, path = "/api/v2/event/{id}/", tag = "event", params(("id" = i64, Path)),
    responses((status = 200, body = EventDto), (status = 404)))]
pub async fn get(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let event = state.events.get(&auth.0, event_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(EventDto::from(event)))
}

/// Changes an event (managers only). `null` clears an optional field.
#[utoipa::path(patch, path = "/api/v2/event/{id}/", tag = "event", params(("id" = i64, Path)),
    request_body(content = Option<crate::dto::EventPatchRequest>, description = "any subset of the fields (none: no change)", content_type = "application/json"),
    responses((status = 200, body = EventDto), (status = 400), (status = 403), (status = 404)))]
pub async fn update(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
    path: web::Path<String>,
    raw: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = event_id(&path)?;
    let Value::Object(m) = body::to_value(&req, &raw, &[])? else {
        return Err(ApiError::bad_request("the body must be an object"));
    };
    let text = |k: &'static str| -> Result<Option<Option<String>>, ApiError> {
        match m.get(k) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
            Some(_) => Err(ApiError::bad_field(k, format!("{k} must be a string"))),
        }
    };
    let title = match text("title")? {
        Some(None) => return Err(ApiError::bad_field("title", "title cannot be cleared")),
        other => other.flatten(),
    };
    let patch = EventPatch {
        title,
        description: text("description")?,
        starts_at: text("starts_at")?.map(|v| date("starts_at", v.as_deref())).transpose()?,
        ends_at: text("ends_at")?.map(|v| date("ends_at", v.as_deref())).transpose()?,
    };
    let event = state.events.update(&auth.0, id, patch).await?;
    Ok(HttpResponse::Ok().json(EventDto::from(event)))
}

/// Deletes an event (managers only); its gallery empties, its media stay.
#[utoipa::path(delete, path = "/api/v2/event/{id}/", tag = "event", params(("id" = i64, Path)),
    responses((status = 204), (status = 403), (status = 404)))]
pub async fn delete(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.events.delete(&auth.0, event_id(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Adds a manager (managers only); answers the event.
#[utoipa::path(post, path = "/api/v2/event/{id}/managers/", tag = "event", params(("id" = i64, Path)),
    request_body(content = ManagerRequest, content_type = "application/json"),
    responses((status = 200, body = EventDto), (status = 403), (status = 404)))]
pub async fn add_manager(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
    path: web::Path<String>,
    raw: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let event = state.events.add_manager(&auth.0, event_id(&path)?, manager_user(&req, &raw)?).await?;
    Ok(HttpResponse::Ok().json(EventDto::from(event)))
}

/// Removes a manager (managers only); the last one stays (409).
#[utoipa::path(delete, path = "/api/v2/event/{id}/managers/", tag = "event", params(("id" = i64, Path)),
    request_body(content = ManagerRequest, content_type = "application/json"),
    responses((status = 204), (status = 403), (status = 404), (status = 409)))]
pub async fn remove_manager(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
    path: web::Path<String>,
    raw: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state.events.remove_manager(&auth.0, event_id(&path)?, manager_user(&req, &raw)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Adds a media to the event's photo gallery (seed 001). The caller must manage the event
/// and have uploaded the media. Adding one already there answers 200 too.
#[utoipa::path(post, path = "/api/v2/event/{id}/gallery/", tag = "gallery", params(("id" = i64, Path)),
    request_body(content = AddToGalleryRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = MediaDto), (status = 400), (status = 403), (status = 404)))]
pub async fn add_to_gallery(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
    path: web::Path<String>,
    raw: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = event_id(&path)?;
    let b: AddToGalleryRequest = body::parse(&req, &raw, &[])?;
    let media_id = MediaId::new(b.media.0).map_err(|e| ApiError::bad_field("media", e.to_string()))?;
    let media = state.events.add_to_gallery(&auth.0, id, media_id).await?;
    Ok(HttpResponse::Ok().json(media_dto(&state, &req, media)))
}

/// Removes media from the gallery (seed 000): managers only, all or nothing, at most
/// 1000 ids; ids not in the gallery are ignored.
#[utoipa::path(delete, path = "/api/v2/event/{id}/gallery/", tag = "gallery", params(("id" = i64, Path)),
    request_body(content = Option<RemoveFromGalleryRequest>, description = "`medias=42&medias=43` or `{\"medias\": [42, 43]}`; no body, or no `medias`, removes nothing", content_type = "application/x-www-form-urlencoded"),
    responses((status = 204), (status = 400), (status = 403), (status = 404)))]
pub async fn remove_from_gallery(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
    path: web::Path<String>,
    raw: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = event_id(&path)?;
    let b: RemoveFromGalleryRequest = body::parse(&req, &raw, &["medias"])?;
    let ids = b
        .medias
        .0
        .into_iter()
        .map(|m| MediaId::new(m).map_err(|e| ApiError::bad_field("medias", e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    state.events.remove_from_gallery(&auth.0, id, &ids).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The gallery in the order added, cursor-paginated (`media:read`).
#[utoipa::path(get, path = "/api/v2/event/{id}/gallery/", tag = "gallery", params(("id" = i64, Path), PageQuery),
    responses((status = 200, body = MediaPage), (status = 403), (status = 404)))]
pub async fn gallery(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = event_id(&path)?;
    let pr = page_request(&q)?;
    let page = state.events.gallery(&auth.0, id, pr).await?;
    let (next, previous) = page_links(&page, &format!("{}/api/v2/event/{id}/gallery/", origin(&req)), pr.size);
    let count = page.count;
    let links = Linker::new(&state, &req);
    let results = page.items.into_iter().map(|(_, m)| links.dto(m)).collect();
    Ok(HttpResponse::Ok().json(MediaPage { count, next, previous, results }))
}
