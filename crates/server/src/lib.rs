//! The mediabox server: configuration, wiring of adapters into use cases, and start-up.
//! The binary (`main.rs`) adds the command line; end-to-end tests start the server
//! through [`start`] exactly as `mediabox serve` does.

pub mod config;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{middleware::from_fn, web, App, HttpServer};
use anyhow::Context;
use async_trait::async_trait;
use mediabox_domain::catalog::CatalogService;
use mediabox_domain::event::EventService;
use mediabox_domain::media::MediaService;
use mediabox_domain::ports::{BlobStore, Clock, MediaProcessor, MediaRepository, StoredBlob, SystemClock};
use mediabox_domain::rendition::{RenditionLimits, RenditionService};
use mediabox_domain::upload::{Removed, UploadLimits, UploadService};
use mediabox_http::auth::AuthConfig;
use mediabox_http::metrics::{Metrics, Total};
use mediabox_http::signing::UrlSigner;
use mediabox_http::{AppState, Readiness};
use mediabox_persistence::{
    Db, DieselCatalogRepository, DieselEventRepository, DieselMediaRepository, DieselUploadRepository,
};
use mediabox_storage::{FsBlobStore, S3BlobStore};
use sha2::{Digest, Sha256};

pub use config::Config;

#[doc(hidden)]
pub use mediabox_http as http;

/// Everything wired: the database, the store and the use cases.
#[derive(Clone)]
pub struct Wired {
    pub db: Db,
    pub store: Arc<dyn BlobStore>,
    pub uploads: Arc<UploadService>,
    pub media_repo: Arc<DieselMediaRepository>,
    pub state: web::Data<AppState>,
}

/// The HS256 secret: configured, or made once in `data_dir/jwt-secret` (embedded default).
///
/// # Errors
/// When the secret file cannot be read or written.
pub fn jwt_secret(config: &Config) -> anyhow::Result<String> {
    if let Some(s) = &config.jwt_secret {
        return Ok(s.clone());
    }
    read_or_make_secret(&config.data_dir.join("jwt-secret"))
}

fn read_or_make_secret(path: &Path) -> anyhow::Result<String> {
    if let Ok(s) = std::fs::read_to_string(path) {
        let s = s.trim().to_owned();
        if !s.is_empty() {
            return Ok(s);
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    write_private(path, &secret).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "made a new secret");
    Ok(secret)
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// How tokens are checked: a PEM/JWKS public key when configured, else the HS256 secret.
///
/// # Errors
/// When the key file cannot be read or parsed.
pub fn auth_config(config: &Config) -> anyhow::Result<AuthConfig> {
    let auth = match &config.jwt_public_key {
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("reading MEDIABOX_JWT_PUBLIC_KEY {}", p.display()))?;
            AuthConfig::public_keys(&bytes).context("loading MEDIABOX_JWT_PUBLIC_KEY")?
        }
        None => AuthConfig::hs256(jwt_secret(config)?.as_bytes(), config.auth_refresh),
    };
    Ok(auth.with_issuer(config.jwt_issuer.clone()).with_audience(config.jwt_audience.clone()))
}

fn signing_key(config: &Config) -> anyhow::Result<Vec<u8>> {
    let base = match (&config.url_signing_secret, &config.jwt_public_key) {
        (Some(s), _) => s.clone(),
        (None, None) => jwt_secret(config)?,
        (None, Some(_)) => read_or_make_secret(&config.data_dir.join("url-signing-secret"))?,
    };
    // Domain-separated from the JWT secret: a file URL signature is never a token MAC.
    Ok(Sha256::digest(format!("mediabox file urls\n{base}")).to_vec())
}

struct Probes {
    db: Db,
    store: Arc<dyn BlobStore>,
}

#[async_trait]
impl Readiness for Probes {
    async fn check(&self) -> Result<(), &'static str> {
        match tokio::time::timeout(Duration::from_secs(3), self.db.ping()).await {
            Ok(Ok(())) => {}
            _ => return Err("database"),
        }
        match tokio::time::timeout(Duration::from_secs(3), self.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err("storage"),
        }
    }
}

/// Opens the database (applying migrations) and the store, and builds the use cases.
///
/// # Errors
/// When any of them cannot be opened.
pub async fn wire(config: &Config) -> anyhow::Result<Wired> {
    let db_url = config.database_url.clone();
    let fsync = config.fsync;
    let timeout = Duration::from_secs(config.db_timeout_secs.max(1));
    let db = tokio::task::spawn_blocking(move || -> anyhow::Result<Db> {
        let db = Db::connect(&db_url, 16, timeout).context("opening the database")?.with_durable_commits(fsync);
        db.migrate().context("applying migrations")?;
        Ok(db)
    })
    .await
    .context("joining the database start-up")??;
    let (store, s3_requests) = open_store(config).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let media_repo = Arc::new(DieselMediaRepository::new(db.clone()));
    let blobs = store.clone();
    let limits = UploadLimits {
        max_chunk_bytes: config.max_chunk_bytes,
        max_upload_bytes: config.max_upload_bytes,
        ttl: chrono::Duration::seconds(config.upload_ttl_secs),
    };
    // The image codecs and ffmpeg, behind the domain's MediaProcessor port.
    let processor: Arc<dyn MediaProcessor> = Arc::new(media_processor(config));
    let renditions = Arc::new(RenditionService::new(
        media_repo.clone(),
        blobs.clone(),
        processor.clone(),
        clock.clone(),
        RenditionLimits { max_pixels: config.max_image_pixels, ..RenditionLimits::default() },
    ));
    let warm = renditions.clone();
    let uploads = Arc::new(
        UploadService::new(
            Arc::new(DieselUploadRepository::new(db.clone())),
            media_repo.clone(),
            blobs.clone(),
            processor,
            clock.clone(),
            limits,
        )
        .with_after_complete(Arc::new(move |m| warm.prepare(m))),
    );
    let state = web::Data::new(AppState {
        uploads: uploads.clone(),
        media: Arc::new(MediaService::new(media_repo.clone(), blobs)),
        renditions,
        events: Arc::new(EventService::new(
            Arc::new(DieselEventRepository::new(db.clone())),
            media_repo.clone(),
            clock.clone(),
        )),
        catalog: Arc::new(CatalogService::new(
            Arc::new(DieselCatalogRepository::new(db.clone())),
            media_repo.clone(),
            clock,
        )),
        auth: Arc::new(auth_config(config)?),
        signer: Arc::new(UrlSigner::new(&signing_key(config)?, chrono::Duration::hours(1))),
        readiness: Arc::new(Probes { db: db.clone(), store: store.clone() }),
        metrics: Arc::new(metrics(s3_requests)?),
    });
    Ok(Wired { db, store, uploads, media_repo, state })
}

/// The blob store `config` names. An S3 bucket that does not answer at start is logged
/// in one line (bucket and cause, never a secret) and the server starts anyway: `/readyz`
/// answers 503 and requests that need the store 503 until it answers.
/// The codecs: images always; video posters when ffmpeg is found (`MEDIABOX_FFMPEG`, else
/// on `PATH`). Without it the service runs, and says so once.
fn media_processor(config: &Config) -> mediabox_imaging::Codecs {
    let timeout = std::time::Duration::from_secs(config.ffmpeg_timeout_secs.max(1));
    let memory = config.ffmpeg_max_memory_mb.saturating_mul(1 << 20);
    match mediabox_imaging::Ffmpeg::find(config.ffmpeg.as_deref(), timeout, memory) {
        Some(ffmpeg) => {
            tracing::info!(ffmpeg = %ffmpeg.path().display(), "video posters through ffmpeg");
            mediabox_imaging::Codecs::with_video(ffmpeg)
        }
        None => {
            let where_ = config.ffmpeg.as_ref().map_or("on PATH".to_owned(), |p| format!("at {}", p.display()));
            tracing::warn!(
                "no ffmpeg and ffprobe {where_}: videos get no thumbnail or preview (install ffmpeg, or set MEDIABOX_FFMPEG)"
            );
            mediabox_imaging::Codecs::images_only()
        }
    }
}

async fn open_store(config: &Config) -> anyhow::Result<(Arc<dyn BlobStore>, Option<Total>)> {
    let Some(s3) = &config.s3 else {
        let fs = FsBlobStore::open(config.data_dir.join("blobs"))
            .await
            .with_context(|| format!("opening the blob store under {}", config.data_dir.display()))?
            .with_fsync(config.fsync);
        return Ok((Arc::new(fs), None));
    };
    let store = S3BlobStore::new(s3).with_context(|| format!("configuring the S3 bucket {:?}", s3.bucket))?;
    match tokio::time::timeout(Duration::from_secs(10), store.ping()).await {
        Ok(Ok(())) => tracing::info!(bucket = %s3.bucket, endpoint = ?s3.endpoint, "S3 bucket answers"),
        Ok(Err(e)) => tracing::error!(
            bucket = %s3.bucket, endpoint = ?s3.endpoint, cause = %cause(&e),
            "S3 bucket unusable; serving with /readyz at 503 until it answers"
        ),
        Err(_) => tracing::error!(
            bucket = %s3.bucket, endpoint = ?s3.endpoint,
            "S3 bucket did not answer within 10 s; serving with /readyz at 503 until it answers"
        ),
    }
    let counting = store.clone();
    Ok((Arc::new(store), Some(Box::new(move || counting.requests_sent()))))
}

/// The service's metrics, with the database's statements and, on S3, the store's
/// requests (what the bench divides by the files uploaded).
fn metrics(s3_requests: Option<Total>) -> anyhow::Result<Metrics> {
    let metrics = Metrics::new().context("registering metrics")?;
    metrics
        .count(
            "mediabox_db_statements_total",
            "Statements sent to the database, transaction control included",
            Box::new(mediabox_persistence::statements_sent),
        )
        .context("registering metrics")?;
    if let Some(total) = s3_requests {
        metrics
            .count("mediabox_s3_requests_total", "HTTP requests sent to the S3 service, retries included", total)
            .context("registering metrics")?;
    }
    Ok(metrics)
}

/// Why the store failed, once: the client's error already tells its own causes.
fn cause(e: &mediabox_domain::StoreError) -> String {
    std::error::Error::source(e).map_or_else(|| e.to_string(), ToString::to_string)
}

/// What one garbage collection removed: how many, and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    /// Expired or abandoned uploads (their rows and staging bytes).
    pub uploads: Removed,
    /// Staging bytes whose upload row was already gone.
    pub staging: Removed,
    /// Blobs that no row names.
    pub blobs: Removed,
}

impl Collected {
    /// Nothing was removed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.uploads.count + self.staging.count + self.blobs.count == 0
    }
}

/// Blobs and stray staging younger than this are never collected: a complete may be
/// between storing its bytes and committing their row, and a chunk may write for as long
/// as it holds its lease. Longer than any lease (SPEC 10), by five minutes.
pub const BLOB_GRACE: chrono::Duration = chrono::Duration::seconds(mediabox_domain::upload::LEASE_SECS + 300);

/// Runs garbage collection once: expired uploads (their staging bytes and rows), staging
/// bytes whose upload is gone, and blobs that no row names (left by a crash between a delete's commit and the removal of
/// its blob, or between a complete's rename and its commit). Safe to run from several
/// instances at once: every step is idempotent. What it removed is added to `/metrics`
/// as it goes, so a run that fails half-way still counts what it did.
///
/// # Errors
/// The first failure.
pub async fn gc_once(wired: &Wired, blob_grace: chrono::Duration) -> anyhow::Result<Collected> {
    let metrics = &wired.state.metrics;
    let mut done = Collected::default();
    loop {
        let n = wired.uploads.collect_expired(500).await.context("collecting expired uploads")?;
        metrics.gc_removed("uploads", n.count, n.bytes);
        done.uploads += n;
        if n.count < 500 {
            break;
        }
    }
    let cutoff = chrono::Utc::now() - blob_grace;
    done.staging = wired.uploads.collect_stray_staging(cutoff).await.context("collecting stray staging files")?;
    metrics.gc_removed("staging", done.staging.count, done.staging.bytes);
    let old: Vec<StoredBlob> =
        wired.store.list_blobs().await.context("listing blobs")?.into_iter().filter(|b| b.modified < cutoff).collect();
    let keys: Vec<String> = old.iter().map(|b| b.key.clone()).collect();
    let orphans: std::collections::HashSet<String> =
        wired.media_repo.unreferenced_blob_keys(&keys).await.context("checking blob keys")?.into_iter().collect();
    let orphans: Vec<&StoredBlob> = old.iter().filter(|b| orphans.contains(&b.key)).collect();
    // One batch (S3: `DeleteObjects`, up to 1000 keys a request), not a request per blob.
    let keys: Vec<String> = orphans.iter().map(|b| b.key.clone()).collect();
    wired.store.delete_blobs(&keys).await.context("removing orphan blobs")?;
    done.blobs = Removed { count: orphans.len(), bytes: orphans.iter().map(|b| b.size).sum() };
    metrics.gc_removed("blobs", done.blobs.count, done.blobs.bytes);
    Ok(done)
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    pub wired: Wired,
}

/// Starts serving on `config.listen` (port 0 picks a free one) and returns once the
/// socket accepts connections. Also starts the periodic garbage collector.
///
/// # Errors
/// When wiring fails or the address cannot be bound.
pub async fn start(config: &Config) -> anyhow::Result<Running> {
    let wired = wire(config).await?;
    let state = wired.state.clone();
    let origins = config.cors_origins.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            // Inside `around`: preflight answers get the request id and security headers too.
            .wrap(actix_web::middleware::Condition::new(!origins.is_empty(), mediabox_http::cors::cors(&origins)))
            .wrap(from_fn(mediabox_http::middleware::around))
            .configure(mediabox_http::configure)
    })
    // Without it, a response whose body follows its head in a second write waits for the
    // client's delayed ACK (40 ms on Linux) on a kept-alive connection: measured on the
    // first request for a thumbnail (bench/thumbs.sh).
    .on_connect(|conn, _| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .bind(&config.listen)
    .with_context(|| format!("binding {}", config.listen))?;
    let addr = *server.addrs().first().context("the server bound no address")?;
    let server = server.shutdown_timeout(5).run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    let gc = wired.clone();
    let every = Duration::from_secs(config.gc_interval_secs.max(1));
    tokio::spawn(async move {
        // The first run waits one interval: start-up is not the moment to sweep.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tick.tick().await;
            match gc_once(&gc, BLOB_GRACE).await {
                Ok(c) if c.is_empty() => {}
                Ok(c) => tracing::info!(
                    uploads = c.uploads.count,
                    upload_bytes = c.uploads.bytes,
                    stray_staging = c.staging.count,
                    stray_staging_bytes = c.staging.bytes,
                    orphan_blobs = c.blobs.count,
                    orphan_blob_bytes = c.blobs.bytes,
                    "gc collected"
                ),
                Err(e) => tracing::warn!(error = %e, "gc failed; retrying at the next interval"),
            }
        }
    });
    Ok(Running { addr, handle, task, wired })
}
