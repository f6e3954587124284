//! Test support: a real S3-protocol server (`s3s-fs`) per test, on a free port over a
//! temporary folder, stopped when dropped. `make test` installs `s3s-fs` once
//! (`scripts/tools.sh`) and names it in `MEDIABOX_S3FS_BIN`. Without it, S3 tests say
//! loudly that they skipped, and fail instead when `MEDIABOX_REQUIRE_S3=1` (CI).

#![allow(clippy::missing_panics_doc)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{S3BlobStore, S3Config};

/// A running `s3s-fs`.
pub struct S3Server {
    child: std::sync::Mutex<Option<Child>>,
    bin: PathBuf,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

/// The access key and secret every test server takes.
pub const KEY: &str = "mediabox-test";
pub const SECRET: &str = "mediabox-test-secret";

fn binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("MEDIABOX_S3FS_BIN") {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var("HOME").ok()?;
    let dir = std::env::var("MEDIABOX_TOOLS_DIR").unwrap_or_else(|_| format!("{home}/.cache/mediabox-tools"));
    let p = PathBuf::from(dir).join("s3s-fs-0.14.1/bin/s3s-fs");
    p.exists().then_some(p)
}

impl S3Server {
    /// Starts a server; `None` (after a loud message) when `s3s-fs` is not installed.
    ///
    /// # Errors
    /// When it cannot be started, or when it is missing and `MEDIABOX_REQUIRE_S3=1`.
    pub fn start(test: &str) -> Result<Option<Self>, Box<dyn std::error::Error + Send + Sync>> {
        let Some(bin) = binary().filter(|b| b.exists()) else {
            if std::env::var("MEDIABOX_REQUIRE_S3").is_ok_and(|v| v == "1") {
                return Err("MEDIABOX_REQUIRE_S3=1 but s3s-fs is not installed (run scripts/tools.sh s3s-fs)".into());
            }
            eprintln!("!!! SKIPPED (S3) {test}: s3s-fs is not installed; `make test` installs it");
            return Ok(None);
        };
        let dir = tempfile::tempdir()?;
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let server = Self { child: std::sync::Mutex::new(None), bin, addr, dir };
        server.spawn()?;
        Ok(Some(server))
    }

    fn spawn(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let child = Command::new(&self.bin)
            .args(["--host", "127.0.0.1", "--port", &self.addr.port().to_string()])
            .args(["--access-key", KEY, "--secret-key", SECRET])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        *self.child.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(self.addr).is_err() {
            if Instant::now() > deadline {
                return Err(format!("s3s-fs did not listen on {} within 10 s", self.addr).into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stops the server (the bucket's files stay), as an outage.
    pub fn stop(&self) {
        if let Some(mut c) = self.child.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and folder.
    ///
    /// # Errors
    /// When it cannot be started.
    pub fn restart(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.stop();
        self.spawn()
    }

    /// Makes a bucket (a folder, for s3s-fs) and answers the settings to reach it.
    ///
    /// # Errors
    /// When the folder cannot be made.
    pub fn bucket(&self, name: &str) -> std::io::Result<S3Config> {
        std::fs::create_dir_all(self.dir.path().join(name))?;
        Ok(self.config(name))
    }

    /// Settings for `bucket`, made or not.
    #[must_use]
    pub fn config(&self, bucket: &str) -> S3Config {
        S3Config {
            bucket: bucket.to_owned(),
            endpoint: Some(format!("http://{}", self.addr)),
            region: Some("us-east-1".to_owned()),
            access_key_id: Some(KEY.to_owned()),
            secret_access_key: Some(SECRET.to_owned()),
        }
    }

    /// A store on a new bucket.
    ///
    /// # Errors
    /// When the bucket or the client cannot be made.
    pub fn store(&self, bucket: &str) -> Result<S3BlobStore, Box<dyn std::error::Error + Send + Sync>> {
        Ok(S3BlobStore::new(&self.bucket(bucket)?)?)
    }

    /// Every file under a bucket's folder (s3s-fs keeps objects as files).
    #[must_use]
    pub fn files(&self, bucket: &str) -> Vec<PathBuf> {
        walk(self.dir.path().join(bucket))
    }

    /// Every file of bytes s3s-fs holds, in buckets or not (parts of multipart uploads
    /// in progress too). Not its per-object metadata files (`.bucket-*.json`), which it
    /// leaves behind when an object is deleted.
    #[must_use]
    pub fn all_files(&self) -> Vec<PathBuf> {
        let metadata = |p: &PathBuf| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(".bucket-") && n.ends_with(".json"))
        };
        walk(self.dir.path().to_path_buf()).into_iter().filter(|p| !metadata(p)).collect()
    }
}

fn walk(root: PathBuf) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                dirs.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
