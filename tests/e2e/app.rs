//! The web app (SPEC 13) in a real browser: `tests/browser/app.cjs` drives Debian's
//! chromium through playwright-core against the real server, on both databases. `make
//! test` installs both (scripts/tools.sh) and passes their paths in `MEDIABOX_PLAYWRIGHT`
//! and `MEDIABOX_CHROMIUM`; `MEDIABOX_REQUIRE_BROWSER=1` (CI) makes their absence a failure.
//! Screenshots go to `MEDIABOX_SCREENSHOTS` when set (docs/ holds three of them).

use mediabox_tests::images::landscape;
use mediabox_tests::{external_tool, on_both_databases, png, Res, TestResult, TestServer, ALL};

on_both_databases!(the_web_app_does_what_spec_13_says_in_a_real_browser);

/// `(playwright-core's node_modules, chromium)`; `None` (a loud skip) when unset.
fn browser() -> Res<Option<(String, String)>> {
    let found = external_tool(["MEDIABOX_PLAYWRIGHT", "MEDIABOX_CHROMIUM"], "MEDIABOX_REQUIRE_BROWSER")?;
    Ok(found.map(|[playwright, chromium]| (playwright, chromium)))
}

async fn the_web_app_does_what_spec_13_says_in_a_real_browser(s: TestServer) -> TestResult {
    let Some((node_path, chromium)) = browser()? else { return Ok(()) };
    let files = tempfile::tempdir()?;
    for (name, (w, h, seed)) in [
        ("beach.jpg", (800, 600, 1)),
        ("dunes.jpg", (600, 800, 2)),
        ("harbour.jpg", (960, 540, 3)),
        ("<img src=x onerror=alert(1)>.jpg", (640, 640, 4)),
    ] {
        std::fs::write(files.path().join(name), landscape(w, h, seed))?;
    }
    std::fs::write(files.path().join("guest.png"), png(200, 150, 15))?;
    let large: Vec<u8> = (0..6u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(files.path().join("large.bin"), large)?;
    let kept;
    let shots = match std::env::var("MEDIABOX_SCREENSHOTS") {
        Ok(dir) if !dir.is_empty() => {
            std::fs::create_dir_all(&dir)?;
            std::path::PathBuf::from(dir)
        }
        _ => {
            kept = tempfile::tempdir()?;
            kept.path().to_owned()
        }
    };
    let out = tokio::process::Command::new("node")
        .env("NODE_PATH", node_path)
        .env("CHROMIUM", chromium)
        .env("MANAGER_TOKEN", s.token("u-1", "acme", ALL))
        .env("GUEST_TOKEN", s.token("u-2", "acme", &["media:read", "media:write"]))
        .arg(format!("{}/browser/app.cjs", env!("CARGO_MANIFEST_DIR")))
        .arg(&s.base)
        .arg(files.path())
        .arg(&shots)
        .output()
        .await?;
    let said = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser test failed:\n{said}");
    assert!(said.contains("\nok"), "{said}");
    for shot in ["gallery.png", "upload.png", "problem.png"] {
        assert!(shots.join(shot).metadata()?.len() > 10_000, "{shot} was taken");
    }
    Ok(())
}
