//! `DELETE /api/v1/images` (seed 002): bulk delete of the caller's deletable images.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use crate::auth::AuthUser;
use crate::body;
use crate::error::ApiError;
use crate::state::AppState;

/// The uuids of a bulk delete body: `image_ids[]=` form fields or a JSON `image_ids`
/// list. Entries that are not uuids are left out, like unknown ids.
fn image_ids(v: &Value) -> Result<Vec<uuid::Uuid>, ApiError> {
    if !v.is_object() {
        return Err(ApiError::bad_request("the body must be an object with image_ids, or nothing"));
    }
    match v.get("image_ids") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            mediabox_domain::media::check_bulk_size(items.len())?;
            Ok(items.iter().filter_map(Value::as_str).filter_map(|s| uuid::Uuid::parse_str(s.trim()).ok()).collect())
        }
        Some(_) => Err(ApiError::bad_field("image_ids", "image_ids must be a list of uuids")),
    }
}

/// Deletes the images among `image_ids` that the caller may delete (`media:delete`, or
/// their own uploads) and that nothing references; answers the uuids actually deleted.
#[utoipa::path(delete, path = "/api/v1/images", tag = "images",
    request_body(content = Option<crate::dto::DeleteImagesRequest>, description = "`image_ids[]=<uuid>&image_ids[]=...` or `{\"image_ids\": [...]}`; optional",
        content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "the uuids deleted", body = Vec<String>), (status = 400), (status = 401)))]
pub async fn delete(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
    raw: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let ids = image_ids(&body::to_value(&req, &raw, &["image_ids"])?)?;
    let deleted = state.media.delete_many(&auth.0, &ids).await?;
    let deleted: Vec<String> = deleted.into_iter().map(|u| u.to_string()).collect();
    Ok(HttpResponse::Ok().content_type("application/json; charset=utf-8").json(deleted))
}
