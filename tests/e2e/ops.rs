//! Operations: health, readiness, metrics, OpenAPI and the docs (SPEC 9).

use mediabox_tests::{expect_json, on_both_databases, png, Backend, TestResult, TestServer, ALL};
use reqwest::StatusCode;

on_both_databases!(health_and_readiness_answer, metrics_count_requests_by_route_and_status_and_upload_bytes);

async fn health_and_readiness_answer(s: TestServer) -> TestResult {
    expect_json(s.http.get(s.url("/healthz")).send().await?, StatusCode::OK).await?;
    let r = expect_json(s.http.get(s.url("/readyz")).send().await?, StatusCode::OK).await?;
    assert_eq!(r["status"], "ready");
    Ok(())
}

async fn metrics_count_requests_by_route_and_status_and_upload_bytes(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let bytes = png(10, 10, 1);
    u.upload(&bytes, 100, "a.png").await?;
    u.get("/api/v2/event/424242/").send().await?;
    let text = s.http.get(s.url("/metrics")).send().await?.text().await?;
    assert!(text.contains(r#"http_requests_total{method="GET",route="/api/v2/event/{id}/",status="404"} 1"#), "{text}");
    assert!(text.contains(r#"route="/api/v2/media/chunk_upload_complete/",status="200""#));
    assert!(text.contains("http_request_duration_seconds_bucket"));
    let uploaded: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("mediabox_upload_bytes_total "))
        .ok_or("no upload bytes metric")?
        .trim()
        .parse()?;
    assert_eq!(uploaded, bytes.len() as u64);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route_and_the_docs_are_served() -> TestResult {
    let s = TestServer::start(Backend::Sqlite, "openapi", |_| {}).await?.ok_or("sqlite")?;
    let doc = expect_json(s.http.get(s.url("/openapi.json")).send().await?, StatusCode::OK).await?;
    let paths = doc["paths"].as_object().ok_or("paths")?;
    for (p, methods) in [
        ("/api/v2/media/chunk_upload/", &["put"][..]),
        ("/api/v2/media/chunk_upload/{upload_id}/", &["put", "get", "delete"][..]),
        ("/api/v2/media/chunk_upload_complete/", &["post"][..]),
        ("/api/v2/media/{id}/", &["get"][..]),
        ("/api/v2/media/{id}/file", &["get"][..]),
        ("/api/v2/event/", &["get", "post"][..]),
        ("/api/v2/event/{id}/", &["get", "patch", "delete"][..]),
        ("/api/v2/event/{id}/managers/", &["post", "delete"][..]),
        ("/api/v2/event/{id}/gallery/", &["get", "post", "delete"][..]),
        ("/healthz", &["get"][..]),
        ("/readyz", &["get"][..]),
        ("/metrics", &["get"][..]),
    ] {
        for m in methods {
            assert!(paths.get(p).and_then(|x| x.get(*m)).is_some(), "{m} {p} missing from the OpenAPI document");
        }
    }
    let r = s.http.get(s.url("/docs/")).send().await?;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await?.to_lowercase().contains("swagger"));
    Ok(())
}
