//! End-to-end test support: a real mediabox server (started exactly as `mediabox serve`
//! starts it) on a free port, on a fresh SQLite or PostgreSQL database, and a real HTTP
//! client. [`on_both_databases!`] turns one async test function into a test per backend.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::path::PathBuf;

pub mod images;

use mediabox::{Config, Running};
use mediabox_persistence::testing::TestDb;
use mediabox_storage::testing::S3Server;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use sha2::Digest;

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Every permission, for callers who may do anything.
pub const ALL: &[&str] = &["media:read", "media:write", "media:delete", "event:write", "catalog:write"];

/// A running server and what it runs on.
pub struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    pub config: Config,
    pub backend: Backend,
    pub db_url: String,
    pub running: Running,
    /// The S3 server, for servers started on S3.
    pub s3: Option<S3Server>,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

/// The bucket of servers started on S3.
pub const BUCKET: &str = "mediabox-e2e";

impl Drop for TestServer {
    fn drop(&mut self) {
        // Sends the stop command at once; the future only waits for it.
        drop(self.running.handle.stop(false));
    }
}

/// Runs one async test function on SQLite and on PostgreSQL, each with a server of its
/// own. `on_both_databases!(using start_on_s3, |c| ...; names)` picks the starter (S3)
/// and changes the configuration first; a backend that is skipped runs nothing.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $crate::on_both_databases!(using start, |_| {}; $($name),*);
    };
    (using $start:ident, $tweak:expr; $($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() -> $crate::TestResult {
                let name = concat!(module_path!(), "::sqlite");
                match $crate::TestServer::$start($crate::Backend::Sqlite, name, $tweak).await? {
                    Some(s) => super::$name(s).await,
                    None => Ok(()),
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() -> $crate::TestResult {
                let name = concat!(module_path!(), "::postgres");
                match $crate::TestServer::$start($crate::Backend::Postgres, name, $tweak).await? {
                    Some(s) => super::$name(s).await,
                    None => Ok(()),
                }
            }
        }
    )*};
}

/// The paths an external test tool is found at, from the environment variables `vars`
/// (`make test` installs the tool and sets them). `None`, with a loud SKIPPED line, when
/// one is unset; an error instead when the variable `require` is `1` (CI).
pub fn external_tool<const N: usize>(vars: [&str; N], require: &str) -> Res<Option<[String; N]>> {
    let found = vars.map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()));
    if found.iter().all(Option::is_some) {
        return Ok(Some(found.map(Option::unwrap_or_default)));
    }
    let names = vars.join(", ");
    if std::env::var(require).is_ok_and(|v| v == "1") {
        return Err(format!("{require}=1 but {names} is not set (make test sets it)").into());
    }
    eprintln!("!!! SKIPPED: {names} not set (run the tests with make test, which installs the tool)");
    Ok(None)
}

impl TestServer {
    /// Starts a server; `None` when PostgreSQL is asked for and skipped.
    pub async fn start(backend: Backend, name: &str, tweak: impl FnOnce(&mut Config)) -> Res<Option<Self>> {
        let db = match backend {
            Backend::Sqlite => TestDb::sqlite(),
            Backend::Postgres => match TestDb::postgres(&format!("{name}::postgres")) {
                Some(db) => db,
                None => return Ok(None),
            },
        };
        let dir = tempfile::tempdir()?;
        let mut config = Config::for_dir(dir.path());
        config.database_url = db.url.clone();
        config.jwt_secret = Some("e2e-secret".to_owned());
        config.workers = Some(2);
        // Tests run gc themselves, when they mean to.
        config.gc_interval_secs = 3600;
        tweak(&mut config);
        let running = mediabox::start(&config).await?;
        let base = format!("http://{}", running.addr);
        let http = reqwest::Client::builder().no_proxy().build()?;
        Ok(Some(Self { base, http, db_url: db.url.clone(), config, backend, running, s3: None, _db: db, _dir: dir }))
    }

    /// Starts a server whose blob store is a bucket of a real S3-protocol server of its
    /// own; `None` when PostgreSQL or `s3s-fs` is asked for and skipped.
    pub async fn start_on_s3(backend: Backend, name: &str, tweak: impl FnOnce(&mut Config)) -> Res<Option<Self>> {
        let Some(s3) = S3Server::start(name)? else { return Ok(None) };
        let bucket = s3.bucket(BUCKET)?;
        let started = Self::start(backend, name, |c| {
            c.storage = "s3".to_owned();
            c.s3 = Some(bucket);
            tweak(c);
        })
        .await?;
        Ok(started.map(|mut s| {
            s.s3 = Some(s3);
            s
        }))
    }

    /// Stops the server, runs `while_stopped` (a machine crash's damage, say), and starts
    /// it again on the same database, files and settings, on a new port.
    pub async fn restart(&mut self, while_stopped: impl FnOnce(&Self) -> TestResult) -> TestResult {
        self.running.handle.stop(true).await;
        while_stopped(self)?;
        self.running = mediabox::start(&self.config).await?;
        self.base = format!("http://{}", self.running.addr);
        Ok(())
    }

    /// Runs SQL on the server's database behind its back.
    pub fn exec_sql(&self, sql: &str) -> Res<usize> {
        use diesel::{Connection, RunQueryDsl};
        Ok(match self.backend {
            Backend::Sqlite => {
                let mut c = diesel::sqlite::SqliteConnection::establish(self.db_url.trim_start_matches("sqlite://"))?;
                diesel::sql_query(sql).execute(&mut c)?
            }
            Backend::Postgres => {
                let mut c = diesel::pg::PgConnection::establish(&self.db_url)?;
                diesel::sql_query(sql).execute(&mut c)?
            }
        })
    }

    /// Every file of bytes the store holds: blob and staging files on the filesystem;
    /// on S3, the bucket's objects and parts of multipart uploads in progress.
    #[must_use]
    pub fn stored_files(&self) -> Vec<PathBuf> {
        match &self.s3 {
            Some(s3) => s3.all_files(),
            None => files_under(&self.blob_root()),
        }
    }

    /// The names of the stored renditions (`<key>.thumb`, `<key>.preview`), sorted.
    pub fn rendition_files(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .stored_files()
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .filter(|n| n.ends_with(".thumb") || n.ends_with(".preview"))
            .collect();
        names.sort();
        names
    }

    /// Starts another `mediabox serve` process (the built binary) with this server's
    /// settings: the same database, bucket and secrets, as a second instance behind a
    /// load balancer. Stopped when dropped.
    pub fn second_instance(&self) -> Res<Instance> {
        let bin = std::env::current_exe()?
            .parent()
            .and_then(std::path::Path::parent)
            .map(|d| d.join("mediabox"))
            .ok_or("no target directory")?;
        if !bin.exists() {
            return Err(
                format!("{} is not built: run `cargo build --bin mediabox` (make test does)", bin.display()).into()
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let data = tempfile::tempdir()?;
        let mut cmd = std::process::Command::new(bin);
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("MEDIABOX_LISTEN", format!("127.0.0.1:{port}"))
            .env("MEDIABOX_DATA_DIR", data.path())
            .env("MEDIABOX_DATABASE_URL", &self.db_url)
            .env("MEDIABOX_JWT_SECRET", self.config.jwt_secret.as_deref().unwrap_or_default())
            .env("MEDIABOX_GC_INTERVAL_SECS", "3600")
            .env("MEDIABOX_WORKERS", "2")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null());
        if let Some(ffmpeg) = &self.config.ffmpeg {
            cmd.env("MEDIABOX_FFMPEG", ffmpeg);
        }
        if let Some(s3) = &self.config.s3 {
            cmd.env("MEDIABOX_STORAGE", "s3")
                .env("MEDIABOX_S3_BUCKET", &s3.bucket)
                .env("MEDIABOX_S3_ENDPOINT", s3.endpoint.as_deref().unwrap_or_default())
                .env("MEDIABOX_S3_REGION", s3.region.as_deref().unwrap_or_default())
                .env("MEDIABOX_S3_ACCESS_KEY_ID", s3.access_key_id.as_deref().unwrap_or_default())
                .env("MEDIABOX_S3_SECRET_ACCESS_KEY", s3.secret_access_key.as_deref().unwrap_or_default());
        }
        let child = cmd.spawn()?;
        let base = format!("http://127.0.0.1:{port}");
        Ok(Instance { child, base, _data: data })
    }

    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A token for `sub` in `org` with `perms`.
    #[must_use]
    pub fn token(&self, sub: &str, org: &str, perms: &[&str]) -> String {
        let perms: Vec<String> = perms.iter().map(|p| (*p).to_owned()).collect();
        let claims = mediabox_http::auth::dev_claims(sub, org, &perms, 3600);
        mediabox::auth_config(&self.config).expect("auth config").mint(&claims).expect("mint")
    }

    /// A caller acting as `sub` in `org`.
    #[must_use]
    pub fn as_user(&self, sub: &str, org: &str, perms: &[&str]) -> Caller<'_> {
        Caller { server: self, token: self.token(sub, org, perms), base: None }
    }

    /// Where the blob store keeps files.
    #[must_use]
    pub fn blob_root(&self) -> PathBuf {
        self.config.data_dir.join("blobs")
    }
}

/// Files under a directory, recursively.
#[must_use]
pub fn files_under(p: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// Someone calling the API with a bearer token.
pub struct Caller<'a> {
    pub server: &'a TestServer,
    pub token: String,
    /// Another instance to send to instead of `server`.
    pub base: Option<String>,
}

impl Caller<'_> {
    /// The same caller, talking to another instance.
    #[must_use]
    pub fn at(&self, base: &str) -> Self {
        Caller { server: self.server, token: self.token.clone(), base: Some(base.to_owned()) }
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        let url = match &self.base {
            Some(b) => format!("{b}{path}"),
            None => self.server.url(path),
        };
        self.server.http.request(method, url).bearer_auth(&self.token)
    }
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.req(Method::GET, path)
    }
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.req(Method::POST, path)
    }
    pub fn put(&self, path: &str) -> RequestBuilder {
        self.req(Method::PUT, path)
    }
    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.req(Method::DELETE, path)
    }
    pub fn patch(&self, path: &str) -> RequestBuilder {
        self.req(Method::PATCH, path)
    }

    /// Sends one raw chunk; `None` upload id starts a new upload.
    pub fn chunk(
        &self,
        upload: Option<&str>,
        bytes: &[u8],
        start: usize,
        total: Option<usize>,
        filename: &str,
    ) -> RequestBuilder {
        let path = match upload {
            None => format!("/api/v2/media/chunk_upload/?filename={filename}"),
            Some(id) => format!("/api/v2/media/chunk_upload/{id}/"),
        };
        let end = start + bytes.len() - 1;
        let total = total.map_or_else(|| "*".to_owned(), |t| t.to_string());
        self.put(&path)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("bytes {start}-{end}/{total}"))
            .body(bytes.to_vec())
    }

    /// Uploads `bytes` in chunks of `chunk` bytes and completes with the SHA-256.
    pub async fn upload(&self, bytes: &[u8], chunk: usize, filename: &str) -> Res<Value> {
        let mut id: Option<String> = None;
        for (i, part) in bytes.chunks(chunk).enumerate() {
            let r = self.chunk(id.as_deref(), part, i * chunk, Some(bytes.len()), filename).send().await?;
            let v = expect_json(r, StatusCode::OK).await?;
            id = Some(v["upload_id"].as_str().ok_or("no upload_id")?.to_owned());
        }
        let id = id.ok_or("empty file")?;
        let sha = hex::encode(sha2::Sha256::digest(bytes));
        let r = self
            .post("/api/v2/media/chunk_upload_complete/")
            .json(&serde_json::json!({"upload_id": id, "sha256": sha}))
            .send()
            .await?;
        expect_json(r, StatusCode::OK).await
    }

    /// `DELETE /rest/api/medias/{uuid}` of media `m` (its JSON), in organization `acme`:
    /// 204.
    pub async fn delete_through_rest(&self, m: &Value) -> TestResult {
        let uuid = m["uuid"].as_str().ok_or("no uuid")?;
        let r = self.delete(&format!("/rest/api/medias/{uuid}")).header("X-Organization-Id", "acme").send().await?;
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "deleting {uuid}");
        Ok(())
    }

    /// Creates an event and returns its id.
    pub async fn event(&self, title: &str) -> Res<i64> {
        let r = self.post("/api/v2/event/").json(&serde_json::json!({"title": title})).send().await?;
        let v = expect_json(r, StatusCode::CREATED).await?;
        v["id"].as_i64().ok_or_else(|| "no id".into())
    }
}

/// Asserts the status and returns the JSON body; the error names what came back.
pub async fn expect_json(r: Response, status: StatusCode) -> Res<Value> {
    let got = r.status();
    let text = r.text().await?;
    if got != status {
        return Err(format!("expected {status}, got {got}: {text}").into());
    }
    Ok(serde_json::from_str(&text)?)
}

/// Asserts a problem+json error with this status and returns its body.
pub async fn expect_problem(r: Response, status: StatusCode) -> Res<Value> {
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let v = expect_json(r, status).await?;
    assert!(ct.starts_with("application/problem+json"), "content type {ct}");
    assert_eq!(v["status"], status.as_u16(), "{v}");
    for m in ["type", "title", "detail", "instance"] {
        assert!(v.get(m).is_some(), "problem lacks {m}: {v}");
    }
    Ok(v)
}

/// A PNG of `w` x `h` pixels whose bytes depend on `seed`.
#[must_use]
pub fn png(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([seed, x as u8, y as u8]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("encode png");
    out.into_inner()
}

#[must_use]
pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

#[must_use]
pub fn md5_hex(b: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(b))
}

/// Another server process.
pub struct Instance {
    child: std::process::Child,
    pub base: String,
    _data: tempfile::TempDir,
}

impl Instance {
    /// The process's peak resident memory so far (`VmHWM`), in KiB; `None` off Linux.
    #[must_use]
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Waits until it answers `/readyz` (it applies migrations first).
    pub async fn ready(&self, http: &reqwest::Client) -> TestResult {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", self.base)).send().await {
                if r.status() == StatusCode::OK {
                    return Ok(());
                }
            }
            if std::time::Instant::now() > deadline {
                return Err("the second instance was not ready within 60 s".into());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
