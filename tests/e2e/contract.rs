//! The OpenAPI document as the contract (issue 24), tried by the tools an integrator uses:
//! schemathesis (PyPI) fuzzes every operation from `/openapi.json` with `--checks all`,
//! a fixed seed and the stateful phase, and must find nothing; openapi-python-client
//! (PyPI) generates a client from the same document, which then walks through the
//! README. Installed by `scripts/tools.sh`; `make test` passes their paths in
//! `MEDIABOX_SCHEMATHESIS` and `MEDIABOX_OPENAPI_PYTHON_CLIENT`, and CI requires them
//! (`MEDIABOX_REQUIRE_API_TOOLS=1`).

use mediabox_tests::{external_tool, on_both_databases, png, Backend, Res, TestResult, TestServer, ALL};
use serde_json::Value;

on_both_databases!(schemathesis_finds_nothing_with_every_check);

const REQUIRE: &str = "MEDIABOX_REQUIRE_API_TOOLS";

/// The committed schemathesis configuration and hooks, and the walk-through script.
fn here(name: &str) -> String {
    format!("{}/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `cmd`; its output is the error when it fails.
async fn run(mut cmd: tokio::process::Command, what: &str) -> Res<String> {
    let out = cmd.output().await?;
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(format!("{what} failed ({}):\n{text}", out.status).into());
    }
    Ok(text)
}

async fn schemathesis_finds_nothing_with_every_check(s: TestServer) -> TestResult {
    let Some([schemathesis]) = external_tool(["MEDIABOX_SCHEMATHESIS"], REQUIRE)? else { return Ok(()) };
    let token = s.token("u-1", "acme", ALL);
    // A run of its own: schemathesis keeps what it learns in `.schemathesis/` of the
    // working directory, which must not carry over from another run.
    let cwd = tempfile::tempdir()?;
    let mut cmd = tokio::process::Command::new(schemathesis);
    cmd.current_dir(cwd.path()).env("PYTHONPATH", here("schemathesis")).env("NO_COLOR", "1");
    cmd.arg("--config-file").arg(here("schemathesis/schemathesis.toml"));
    cmd.args(["run", &s.url("/openapi.json"), "--checks", "all", "--seed", "24", "--max-examples", "100"]);
    cmd.args(["--phases", "examples,coverage,fuzzing,stateful"]);
    cmd.args(["-H", &format!("Authorization: Bearer {token}"), "-H", "X-Organization-Id: acme"]);
    let report = run(cmd, "schemathesis").await?;
    // Every phase ran, and every operation was tested.
    for phase in ["Coverage", "Fuzzing", "Stateful"] {
        assert!(report.contains(&format!("✅  {phase} (in ")), "{phase} did not pass:\n{report}");
    }
    // (schemathesis leaves out OPTIONS, the tus discovery request, which takes nothing.)
    let doc = s.http.get(s.url("/openapi.json")).send().await?.json::<Value>().await?;
    let paths = doc["paths"].as_object().ok_or("paths")?;
    let count =
        paths.values().flat_map(|p| p.as_object().into_iter().flatten()).filter(|(m, _)| *m != "options").count();
    assert!(report.contains(&format!("Tested: {count}")), "not all {count} operations were tested:\n{report}");
    Ok(())
}

/// openapi-python-client generates a package from `/openapi.json` (not committed: made
/// here each time), and `tests/clients/generated_walkthrough.py` drives the README's
/// walk-through with it: upload, create an event, add the media to its gallery, page
/// through it, remove it, point a product at the media and see the delete refused (409).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_python_client_walks_through_the_readme() -> TestResult {
    let Some([generator]) = external_tool(["MEDIABOX_OPENAPI_PYTHON_CLIENT"], REQUIRE)? else { return Ok(()) };
    let s = TestServer::start(Backend::Sqlite, "generated-client", |_| {}).await?.ok_or("sqlite")?;
    let dir = tempfile::tempdir()?;
    let doc = dir.path().join("openapi.json");
    std::fs::write(&doc, s.http.get(s.url("/openapi.json")).send().await?.bytes().await?)?;
    let out = dir.path().join("client");
    let mut gen = tokio::process::Command::new(&generator);
    gen.current_dir(dir.path()).arg("generate").arg("--path").arg(&doc).arg("--output-path").arg(&out);
    gen.args(["--meta", "none", "--config"]).arg(here("clients/openapi-python-client.yaml"));
    let generated = run(gen, "openapi-python-client generate").await?;
    assert!(!generated.contains("Warning"), "the generator warned about the document:\n{generated}");
    // The generator's own python (its virtual environment has httpx and attrs, which the
    // generated package imports).
    let python = std::path::Path::new(&generator).with_file_name("python");
    let photo = dir.path().join("photo.png");
    std::fs::write(&photo, png(64, 48, 7))?;
    let mut walk = tokio::process::Command::new(python);
    walk.env("PYTHONPATH", dir.path()).arg(here("clients/generated_walkthrough.py"));
    walk.arg(s.url("")).arg(s.token("u-1", "acme", ALL)).arg(&photo);
    let text = run(walk, "the walk-through with the generated client").await?;
    let last = text.lines().rev().find(|l| l.starts_with('{')).ok_or("no result line")?;
    let result: Value = serde_json::from_str(last)?;
    assert_eq!(result["pages"], 3, "five photos in pages of two: {text}");
    assert_eq!(result["removed"], true, "{text}");
    assert_eq!(result["delete_refused"], 409, "{text}");
    Ok(())
}
