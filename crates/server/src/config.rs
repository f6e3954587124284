//! Configuration: an optional TOML file, then the environment (which wins). The variable
//! names are part of the contract (SPEC 9); the TOML keys are the same names in lower
//! case without the `MEDIABOX_` prefix.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

/// Every setting, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub storage: String,
    /// The bucket, when `storage` is `s3`.
    pub s3: Option<mediabox_storage::S3Config>,
    pub jwt_secret: Option<String>,
    pub jwt_public_key: Option<PathBuf>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub auth_refresh: bool,
    pub url_signing_secret: Option<String>,
    /// Sync written bytes before acknowledging them (filesystem store).
    pub fsync: bool,
    pub max_chunk_bytes: u64,
    pub max_upload_bytes: u64,
    pub upload_ttl_secs: i64,
    pub gc_interval_secs: u64,
    pub db_timeout_secs: u64,
    /// HTTP worker threads (default: one per core).
    pub workers: Option<usize>,
    /// Images whose header claims more pixels get no rendition (422).
    pub max_image_pixels: u64,
    /// Origins whose browsers may call the API (`*`: any); none by default.
    pub cors_origins: Vec<String>,
    /// The ffmpeg for video posters (ffprobe beside it); `None`: found on `PATH`.
    pub ffmpeg: Option<PathBuf>,
    /// How long one ffmpeg or ffprobe may run before it is killed.
    pub ffmpeg_timeout_secs: u64,
    /// The address space one ffmpeg or ffprobe may use.
    pub ffmpeg_max_memory_mb: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    storage: Option<String>,
    s3_bucket: Option<String>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_access_key_id: Option<String>,
    s3_secret_access_key: Option<String>,
    jwt_secret: Option<String>,
    jwt_public_key: Option<PathBuf>,
    jwt_issuer: Option<String>,
    jwt_audience: Option<String>,
    auth_refresh: Option<bool>,
    fsync: Option<bool>,
    url_signing_secret: Option<String>,
    max_chunk_bytes: Option<u64>,
    max_upload_bytes: Option<u64>,
    upload_ttl_secs: Option<i64>,
    gc_interval_secs: Option<u64>,
    db_timeout_secs: Option<u64>,
    workers: Option<usize>,
    max_image_pixels: Option<u64>,
    cors_origins: Option<String>,
    ffmpeg: Option<PathBuf>,
    ffmpeg_timeout_secs: Option<u64>,
    ffmpeg_max_memory_mb: Option<u64>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(format!("MEDIABOX_{name}")).ok().filter(|v| !v.trim().is_empty())
}

fn env_parse<T: std::str::FromStr>(name: &str) -> anyhow::Result<Option<T>> {
    env(name)
        .map(|v| v.trim().parse::<T>().map_err(|_| anyhow::anyhow!("MEDIABOX_{name}={v:?} is not a valid value")))
        .transpose()
}

impl Config {
    /// Reads the file (when given) and the environment.
    ///
    /// # Errors
    /// When the file cannot be read or parsed, or a variable has a bad value.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let f: FileConfig = match file {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("reading config file {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing config file {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let data_dir = env("DATA_DIR").map(PathBuf::from).or(f.data_dir).unwrap_or_else(|| PathBuf::from("./data"));
        let database_url = env("DATABASE_URL")
            .or(f.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("mediabox.db").display()));
        let storage = env("STORAGE").or(f.storage).unwrap_or_else(|| "fs".to_owned());
        let s3 = match storage.as_str() {
            "fs" => None,
            "s3" => Some(mediabox_storage::S3Config {
                bucket: env("S3_BUCKET")
                    .or(f.s3_bucket)
                    .context("MEDIABOX_STORAGE=s3 needs MEDIABOX_S3_BUCKET (the bucket's name)")?,
                endpoint: env("S3_ENDPOINT").or(f.s3_endpoint),
                region: env("S3_REGION").or(f.s3_region),
                access_key_id: env("S3_ACCESS_KEY_ID").or(f.s3_access_key_id),
                secret_access_key: env("S3_SECRET_ACCESS_KEY").or(f.s3_secret_access_key),
            }),
            other => bail!("MEDIABOX_STORAGE={other:?}: expected `fs` or `s3`"),
        };
        Ok(Self {
            s3,
            listen: env("LISTEN").or(f.listen).unwrap_or_else(|| "127.0.0.1:8080".to_owned()),
            database_url,
            storage,
            jwt_secret: env("JWT_SECRET").or(f.jwt_secret),
            jwt_public_key: env("JWT_PUBLIC_KEY").map(PathBuf::from).or(f.jwt_public_key),
            jwt_issuer: env("JWT_ISSUER").or(f.jwt_issuer),
            jwt_audience: env("JWT_AUDIENCE").or(f.jwt_audience),
            auth_refresh: env_parse("AUTH_REFRESH")?.or(f.auth_refresh).unwrap_or(true),
            fsync: env_parse("FSYNC")?.or(f.fsync).unwrap_or(true),
            url_signing_secret: env("URL_SIGNING_SECRET").or(f.url_signing_secret),
            max_chunk_bytes: env_parse("MAX_CHUNK_BYTES")?.or(f.max_chunk_bytes).unwrap_or(16 << 20),
            max_upload_bytes: env_parse("MAX_UPLOAD_BYTES")?.or(f.max_upload_bytes).unwrap_or(5 << 30),
            upload_ttl_secs: env_parse("UPLOAD_TTL_SECS")?.or(f.upload_ttl_secs).unwrap_or(86_400),
            gc_interval_secs: env_parse("GC_INTERVAL_SECS")?.or(f.gc_interval_secs).unwrap_or(600),
            db_timeout_secs: env_parse("DB_TIMEOUT_SECS")?.or(f.db_timeout_secs).unwrap_or(3),
            workers: env_parse("WORKERS")?.or(f.workers),
            max_image_pixels: env_parse("MAX_IMAGE_PIXELS")?.or(f.max_image_pixels).unwrap_or(100_000_000),
            cors_origins: env("CORS_ORIGINS")
                .or(f.cors_origins)
                .map(|v| {
                    v.split(',').map(|o| o.trim().trim_end_matches('/').to_owned()).filter(|o| !o.is_empty()).collect()
                })
                .unwrap_or_default(),
            ffmpeg: env("FFMPEG").map(PathBuf::from).or(f.ffmpeg),
            ffmpeg_timeout_secs: env_parse("FFMPEG_TIMEOUT_SECS")?.or(f.ffmpeg_timeout_secs).unwrap_or(30),
            ffmpeg_max_memory_mb: env_parse("FFMPEG_MAX_MEMORY_MB")?.or(f.ffmpeg_max_memory_mb).unwrap_or(2048),
            data_dir,
        })
    }

    /// The embedded default for tests and tools: everything under `data_dir`.
    #[must_use]
    pub fn for_dir(data_dir: &Path) -> Self {
        Self {
            listen: "127.0.0.1:0".to_owned(),
            data_dir: data_dir.to_owned(),
            database_url: format!("sqlite://{}", data_dir.join("mediabox.db").display()),
            storage: "fs".to_owned(),
            s3: None,
            jwt_secret: None,
            jwt_public_key: None,
            jwt_issuer: None,
            jwt_audience: None,
            auth_refresh: true,
            fsync: true,
            url_signing_secret: None,
            max_chunk_bytes: 16 << 20,
            max_upload_bytes: 5 << 30,
            upload_ttl_secs: 86_400,
            gc_interval_secs: 600,
            db_timeout_secs: 3,
            workers: None,
            max_image_pixels: 100_000_000,
            cors_origins: Vec::new(),
            ffmpeg: None,
            ffmpeg_timeout_secs: 30,
            ffmpeg_max_memory_mb: 2048,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn the_environment_wins_over_the_file_and_defaults_fill_the_rest() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("mediabox.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:9000\"\nmax_chunk_bytes = 1024\ndata_dir = \"/srv/mb\"\n")?;
        // The only test of this binary that touches these variables.
        std::env::set_var("MEDIABOX_MAX_CHUNK_BYTES", "2048");
        let c = Config::load(Some(&file));
        std::env::remove_var("MEDIABOX_MAX_CHUNK_BYTES");
        let c = c?;
        assert_eq!(c.max_image_pixels, 100_000_000, "SPEC 11's default");
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.max_chunk_bytes, 2048);
        assert_eq!(c.database_url, "sqlite:///srv/mb/mediabox.db");
        assert_eq!(c.max_upload_bytes, 5 << 30);
        assert!(c.cors_origins.is_empty(), "no CORS unless configured (SPEC 9)");
        std::fs::write(&file, "cors_origins = \"https://a.example/, https://b.example\"\n")?;
        let c = Config::load(Some(&file))?;
        assert_eq!(c.cors_origins, vec!["https://a.example".to_owned(), "https://b.example".to_owned()]);
        std::fs::write(&file, "max_image_pixels = 4000000\n")?;
        std::env::set_var("MEDIABOX_MAX_IMAGE_PIXELS", "12000000");
        let c = Config::load(Some(&file));
        std::env::remove_var("MEDIABOX_MAX_IMAGE_PIXELS");
        assert_eq!(c?.max_image_pixels, 12_000_000);
        assert_eq!(Config::load(Some(&file))?.max_image_pixels, 4_000_000);
        std::fs::write(&file, "no_such_setting = 1\n")?;
        assert!(Config::load(Some(&file)).is_err(), "unknown keys are refused");
        Ok(())
    }
}
