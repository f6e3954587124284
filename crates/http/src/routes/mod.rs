//! Route handlers, one file per resource, registered in [`crate::configure`].

pub mod events;
pub mod images;
pub mod media;
pub mod ops;
pub mod rest;
pub mod tus;
pub mod uploads;

use actix_web::HttpRequest;
use mediabox_domain::media::Media;
use mediabox_domain::rendition::Variant;
use mediabox_domain::{EventId, MediaId};

use crate::dto::{MediaDto, MediaLinks};
use crate::error::ApiError;
use crate::state::AppState;

/// A path id that is not a positive integer names nothing: 404.
pub(crate) fn media_id(raw: &str) -> Result<MediaId, ApiError> {
    raw.parse().ok().and_then(|v| MediaId::new(v).ok()).ok_or_else(|| ApiError::not_found("no such media"))
}

pub(crate) fn event_id(raw: &str) -> Result<EventId, ApiError> {
    raw.parse().ok().and_then(|v| EventId::new(v).ok()).ok_or_else(|| ApiError::not_found("no such event"))
}

/// `scheme://host` of the request, for absolute links.
pub(crate) fn origin(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

/// A media as the API shows it, with its signed `file`, `thumbnail` and `preview` URLs.
pub(crate) fn media_dto(state: &AppState, req: &HttpRequest, m: Media) -> MediaDto {
    Linker::new(state, req).dto(m)
}

/// What every media's links on one answer share: the origin and the signing time,
/// worked out once for a page of them.
pub(crate) struct Linker<'a> {
    signer: &'a crate::signing::UrlSigner,
    renditions: &'a mediabox_domain::rendition::RenditionService,
    origin: String,
    now: chrono::DateTime<chrono::Utc>,
}

impl<'a> Linker<'a> {
    pub(crate) fn new(state: &'a AppState, req: &HttpRequest) -> Self {
        Self { signer: &state.signer, renditions: &state.renditions, origin: origin(req), now: chrono::Utc::now() }
    }

    pub(crate) fn dto(&self, m: Media) -> MediaDto {
        let link = |variant: Option<Variant>| {
            let query = self.signer.query(&m.org, m.id, variant, self.now);
            format!("{}/api/v2/media/{}/file?{query}", self.origin, m.id)
        };
        let rendition = |v: Variant| self.renditions.renders(&m).then(|| link(Some(v)));
        let links =
            MediaLinks { file: link(None), thumbnail: rendition(Variant::Thumb), preview: rendition(Variant::Preview) };
        MediaDto::new(m, links)
    }
}
