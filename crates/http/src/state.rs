//! What every handler can reach: the use cases, auth, URL signing, readiness and metrics.

use std::sync::Arc;

use async_trait::async_trait;
use mediabox_domain::catalog::CatalogService;
use mediabox_domain::event::EventService;
use mediabox_domain::media::MediaService;
use mediabox_domain::rendition::RenditionService;
use mediabox_domain::upload::UploadService;

use crate::auth::AuthConfig;
use crate::metrics::Metrics;
use crate::signing::UrlSigner;

/// Whether the service's dependencies answer, for `/readyz`.
#[async_trait]
pub trait Readiness: Send + Sync {
    /// # Errors
    /// The name of the first dependency that does not answer.
    async fn check(&self) -> Result<(), &'static str>;
}

/// Shared application state.
pub struct AppState {
    pub uploads: Arc<UploadService>,
    pub media: Arc<MediaService>,
    pub renditions: Arc<RenditionService>,
    pub events: Arc<EventService>,
    pub catalog: Arc<CatalogService>,
    pub auth: Arc<AuthConfig>,
    pub signer: Arc<UrlSigner>,
    pub readiness: Arc<dyn Readiness>,
    pub metrics: Arc<Metrics>,
}
