//! Real tus clients (SPEC 12) against the real server: tus-js-client (npm, under node)
//! in small chunks, with `parallelUploads: 2` (concatenation) and resuming after an
//! abort; tuspy (PyPI) with its default chunk size (one PATCH for the whole file) and
//! resuming from a new uploader. Installed by `scripts/tools.sh`; `make test` passes
//! their paths in `MEDIABOX_TUS_JS` and `MEDIABOX_TUSPY`.

use mediabox_tests::{expect_json, external_tool, on_both_databases, sha256_hex, Res, TestResult, TestServer, ALL};
use reqwest::StatusCode;
use serde_json::Value;

on_both_databases!(tus_js_client_uploads_in_chunks_in_parallel_and_resumes, tuspy_uploads_in_one_patch_and_resumes);

/// The client's path from `var` (see [`external_tool`]).
fn client(var: &str) -> Res<Option<String>> {
    Ok(external_tool([var], "MEDIABOX_REQUIRE_TUS_CLIENTS")?.map(|[path]| path))
}

fn script(name: &str) -> String {
    format!("{}/clients/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs a client and parses the JSON line it prints.
async fn run(mut cmd: tokio::process::Command) -> Res<Value> {
    let out = cmd.output().await?;
    if !out.status.success() {
        return Err(format!(
            "client failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let text = String::from_utf8(out.stdout)?;
    Ok(serde_json::from_str(text.lines().last().ok_or("no output")?)?)
}

fn file(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(17).wrapping_add(seed) ^ (i >> 9) as u8).collect()
}

/// The media the upload at `url` became, through `HEAD`'s `Media-Location`.
async fn media_of(s: &TestServer, token: &str, url: &str) -> Res<Value> {
    let r = s.http.head(url).bearer_auth(token).header("Tus-Resumable", "1.0.0").send().await?;
    assert_eq!(r.status(), StatusCode::OK, "HEAD {url}");
    let loc = r.headers().get("media-location").and_then(|v| v.to_str().ok()).ok_or("no Media-Location")?.to_owned();
    expect_json(s.http.get(s.url(&loc)).bearer_auth(token).send().await?, StatusCode::OK).await
}

async fn assert_bytes(s: &TestServer, token: &str, m: &Value, bytes: &[u8]) -> TestResult {
    let got = s.http.get(s.url(&format!("/api/v2/media/{}/file", m["id"]))).bearer_auth(token).send().await?;
    assert_eq!(sha256_hex(&got.bytes().await?), sha256_hex(bytes));
    assert_eq!(m["sha256"], sha256_hex(bytes));
    Ok(())
}

async fn tus_js_client_uploads_in_chunks_in_parallel_and_resumes(s: TestServer) -> TestResult {
    let Some(node_path) = client("MEDIABOX_TUS_JS")? else { return Ok(()) };
    let u = s.as_user("u-1", "acme", ALL);
    let dir = tempfile::tempdir()?;
    for (mode, len) in [("chunks", 1_000_003), ("parallel", 3_000_001), ("resume", 2_000_000)] {
        let bytes = file(len, mode.len() as u8);
        let path = dir.path().join(format!("{mode}.bin"));
        std::fs::write(&path, &bytes)?;
        let mut cmd = tokio::process::Command::new("node");
        cmd.env("NODE_PATH", &node_path).arg(script("tus-js.cjs")).arg(mode).arg(s.url("/api/v2/media/tus/"));
        cmd.arg(&u.token).arg(&path).arg(format!("{mode}.bin"));
        let out = run(cmd).await?;
        let loc = out["media"].as_str().ok_or("no Media-Location on the last answer")?;
        let m = expect_json(u.get(loc).send().await?, StatusCode::OK).await?;
        assert_eq!(m["filename"], format!("{mode}.bin"), "{mode}");
        assert_eq!(m["content_type"], "application/octet-stream", "the claimed filetype is ignored");
        assert_bytes(&s, &u.token, &m, &bytes).await?;
        if mode == "resume" {
            let at = out["resumedAt"].as_u64().ok_or("no resume")?;
            assert!(at > 0 && at < len as u64, "resumed at {at} of {len}");
        }
    }
    Ok(())
}

async fn tuspy_uploads_in_one_patch_and_resumes(s: TestServer) -> TestResult {
    let Some(python) = client("MEDIABOX_TUSPY")? else { return Ok(()) };
    let u = s.as_user("u-1", "acme", ALL);
    let dir = tempfile::tempdir()?;
    let bytes = file(3_000_017, 3);
    let path = dir.path().join("photo.bin");
    std::fs::write(&path, &bytes)?;
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(script("tuspy_upload.py")).arg(s.url("/api/v2/media/tus/")).arg(&u.token).arg(&path).arg("photo.bin");
    let out = run(cmd).await?;
    let whole = media_of(&s, &u.token, out["url"].as_str().ok_or("url")?).await?;
    assert_eq!(whole["filename"], "photo.bin");
    assert_bytes(&s, &u.token, &whole, &bytes).await?;
    assert_eq!(out["resumed_at"], 256 * 1024, "the second uploader resumed where the first stopped");
    let resumed = media_of(&s, &u.token, out["resumed_url"].as_str().ok_or("resumed_url")?).await?;
    assert_eq!(resumed["filename"], "resumed-photo.bin");
    assert_bytes(&s, &u.token, &resumed, &bytes).await?;
    Ok(())
}
