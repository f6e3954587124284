//! Operations: health, readiness, metrics, OpenAPI and the docs (SPEC 9).

use mediabox_tests::{expect_json, expect_problem, on_both_databases, png, Backend, TestResult, TestServer, ALL};
use reqwest::StatusCode;
use serde_json::Value;

on_both_databases!(
    health_and_readiness_answer,
    metrics_count_requests_by_route_and_status_and_upload_bytes,
    the_swagger_ui_answers_at_docs_with_and_without_the_slash,
    an_unknown_path_answers_404_and_a_method_a_path_lacks_405_with_allow,
);

async fn an_unknown_path_answers_404_and_a_method_a_path_lacks_405_with_allow(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let id = u.upload(&png(4, 4, 1), 100, "a.png").await?["id"].as_i64().ok_or("id")?;
    let gets_it = u.get(&format!("/api/v2/media/{id}/")).send().await?;
    assert_eq!(gets_it.status(), StatusCode::OK);
    for path in ["/nowhere", "/api/v2/event", "/api/v2/event/1/nowhere/"] {
        let r = u.get(path).send().await?;
        let v = expect_problem(r, StatusCode::NOT_FOUND).await?;
        assert_eq!(v["instance"], path, "{path}");
    }
    for (method, path, allow) in [
        (reqwest::Method::POST, format!("/api/v2/media/{id}/"), "GET"),
        (reqwest::Method::GET, "/api/v2/media/chunk_upload/".to_owned(), "PUT"),
        (reqwest::Method::PUT, "/api/v2/event/".to_owned(), "POST, GET"),
        (reqwest::Method::POST, "/rest/api/products/1".to_owned(), "GET, PATCH, DELETE"),
        (reqwest::Method::TRACE, "/healthz".to_owned(), "GET"),
    ] {
        let r = u.req(method.clone(), &path).send().await?;
        assert_eq!(r.headers().get("allow").and_then(|v| v.to_str().ok()), Some(allow), "{method} {path}");
        let v = expect_problem(r, StatusCode::METHOD_NOT_ALLOWED).await?;
        assert_eq!(v["instance"], path.as_str(), "{method} {path}");
    }
    Ok(())
}

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
    assert!(
        text.contains(r#"http_request_duration_seconds_bucket{method="GET",route="/api/v2/event/{id}/",status="404""#)
    );
    let uploaded: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("mediabox_upload_bytes_total "))
        .ok_or("no upload bytes metric")?
        .trim()
        .parse()?;
    assert_eq!(uploaded, bytes.len() as u64);
    // The database's statements (the bench divides them by the files uploaded); the S3
    // store's requests only on S3.
    let statements = |text: &str| -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
        let line = text.lines().find_map(|l| l.strip_prefix("mediabox_db_statements_total ")).ok_or("no statements")?;
        Ok(line.trim().parse()?)
    };
    let before = statements(&text)?;
    assert!(before > 0, "an upload sends statements");
    assert!(!text.contains("mediabox_s3_requests_total"), "no S3 here");
    // tus bodies count too, kept or not: one refused for its checksum, one kept.
    let r = u.post("/api/v2/media/tus/").header("Tus-Resumable", "1.0.0").header("Upload-Length", "6").send().await?;
    let loc = r.headers().get("location").and_then(|v| v.to_str().ok()).ok_or("no Location")?.to_owned();
    for (checksum, status) in [("sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA=", 460), ("md5 6AtQFwmJUPxYqtg8jBSXjg==", 204)] {
        let r = s
            .http
            .patch(&loc)
            .bearer_auth(&u.token)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", "0")
            .header("Upload-Checksum", checksum)
            .header("Content-Type", "application/offset+octet-stream")
            .body("abcdef")
            .send()
            .await?;
        assert_eq!(r.status().as_u16(), status, "{checksum}");
    }
    let text = s.http.get(s.url("/metrics")).send().await?.text().await?;
    let line = text.lines().find_map(|l| l.strip_prefix("mediabox_upload_bytes_total ")).ok_or("no metric")?;
    assert_eq!(line.trim().parse::<u64>()?, bytes.len() as u64 + 12);
    assert!(statements(&text)? > before, "a tus upload sends more");
    assert!(text.contains(r#"route="/api/v2/media/tus/{upload_id}",status="204""#), "{text}");
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
        ("/api/v2/media/tus/", &["post", "options"][..]),
        ("/api/v2/media/tus/{upload_id}", &["head", "patch", "delete"][..]),
        ("/api/v2/media/{id}/", &["get"][..]),
        ("/api/v2/media/{id}/file", &["get"][..]),
        ("/api/v2/event/", &["get", "post"][..]),
        ("/api/v2/event/{id}/", &["get", "patch", "delete"][..]),
        ("/api/v2/event/{id}/managers/", &["post", "delete"][..]),
        ("/api/v2/event/{id}/gallery/", &["get", "post", "delete"][..]),
        ("/api/v1/images", &["delete"][..]),
        ("/rest/api/medias/{uuid}", &["get", "delete"][..]),
        ("/rest/api/products", &["get", "post"][..]),
        ("/rest/api/products/{id}", &["get", "patch", "delete"][..]),
        ("/rest/api/variants", &["get", "post"][..]),
        ("/rest/api/variants/{id}", &["get", "patch", "delete"][..]),
        ("/healthz", &["get"][..]),
        ("/readyz", &["get"][..]),
        ("/metrics", &["get"][..]),
    ] {
        for m in methods {
            assert!(paths.get(p).and_then(|x| x.get(*m)).is_some(), "{m} {p} missing from the OpenAPI document");
        }
    }
    // Errors are documented once and everywhere: problem+json, 401 where a token is needed.
    let problem = "#/components/schemas/Problem";
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    let op = &doc["paths"]["/api/v2/event/{id}/"]["get"];
    for code in ["401", "404", "503"] {
        assert_eq!(op["responses"][code]["content"]["application/problem+json"]["schema"]["$ref"], problem, "{code}");
    }
    // The open routes need no token.
    for p in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(doc["paths"][p]["get"]["security"], serde_json::json!([{}]), "{p}");
        assert!(doc["paths"][p]["get"]["responses"].get("401").is_none(), "{p}");
    }
    // The rest API's two organization headers are alternatives: neither is required alone.
    let params = doc["paths"]["/rest/api/products"]["get"]["parameters"].as_array().ok_or("parameters")?;
    for name in ["X-Organization-Id", "X-Flowkiwi-Organization-Id"] {
        let p = params.iter().find(|p| p["name"] == name).ok_or(name)?;
        assert_eq!((p["in"].as_str(), p["required"].as_bool()), (Some("header"), Some(false)), "{name}");
    }
    // Every reference resolves, and what a request sends (a parameter, a body) never
    // allows `null`: an optional one is left out, not sent as the text `null`.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for r in refs {
        let target = r.strip_prefix('#').and_then(|p| doc.pointer(p));
        assert!(target.is_some(), "{r} names nothing in the document");
    }
    for (p, methods) in paths {
        for (m, op) in methods.as_object().ok_or("methods")? {
            let params = op["parameters"].as_array().into_iter().flatten().map(|x| &x["schema"]);
            let bodies = op["requestBody"]["content"].as_object().into_iter().flatten().map(|(_, c)| &c["schema"]);
            for schema in params.chain(bodies) {
                let text = schema.to_string();
                assert!(!text.contains(r#""null""#), "{m} {p}: {text}");
            }
        }
    }
    // Bytes are bytes: a chunk's or a tus PATCH's body is a binary string, not an array.
    let chunk = &doc["paths"]["/api/v2/media/tus/{upload_id}"]["patch"]["requestBody"]["content"];
    assert_eq!(chunk["application/offset+octet-stream"]["schema"]["format"], "binary");
    Ok(())
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                out.push(r.clone());
            }
            o.values().for_each(|x| collect_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

async fn the_swagger_ui_answers_at_docs_with_and_without_the_slash(s: TestServer) -> TestResult {
    let direct = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build()?;
    let r = direct.get(s.url("/docs")).send().await?;
    assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.headers().get("location").and_then(|v| v.to_str().ok()), Some("/docs/"));
    // A browser (or any client following redirects) lands on the UI from either URL.
    for path in ["/docs", "/docs/"] {
        let r = s.http.get(s.url(path)).send().await?;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        assert!(ct.starts_with("text/html"), "{path}: {ct}");
        assert!(r.text().await?.to_lowercase().contains("swagger"), "{path}");
    }
    // The UI loads the document it names.
    expect_json(s.http.get(s.url("/docs/openapi.json")).send().await?, StatusCode::OK).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_database_is_unreachable_requests_answer_503_and_service_resumes() -> TestResult {
    use diesel::{Connection, RunQueryDsl};
    let Some(s) = TestServer::start(Backend::Postgres, "db-outage", |_| {}).await? else { return Ok(()) };
    let u = s.as_user("u-1", "acme", ALL);
    expect_json(u.get("/api/v2/event/").send().await?, StatusCode::OK).await?;
    let admin_url = std::env::var("MEDIABOX_TEST_PG_URL")?;
    let db_name = s.db_url.rsplit('/').next().ok_or("db name")?.split('?').next().ok_or("db name")?.to_owned();
    let mut admin = diesel::pg::PgConnection::establish(&admin_url)?;
    let mut exec = |sql: String| diesel::sql_query(sql).execute(&mut admin);
    exec(format!("ALTER DATABASE {db_name} ALLOW_CONNECTIONS false"))?;
    exec(format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db_name}'"))?;
    let started = std::time::Instant::now();
    let p =
        mediabox_tests::expect_problem(u.get("/api/v2/event/").send().await?, StatusCode::SERVICE_UNAVAILABLE).await?;
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "answered in {:?}", started.elapsed());
    let detail = p["detail"].as_str().unwrap_or_default();
    assert!(!detail.contains(&db_name) && !detail.to_lowercase().contains("select"), "no internals: {detail}");
    mediabox_tests::expect_problem(s.http.get(s.url("/readyz")).send().await?, StatusCode::SERVICE_UNAVAILABLE).await?;
    exec(format!("ALTER DATABASE {db_name} ALLOW_CONNECTIONS true"))?;
    expect_json(u.get("/api/v2/event/").send().await?, StatusCode::OK).await?;
    expect_json(s.http.get(s.url("/readyz")).send().await?, StatusCode::OK).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_blob_store_is_unreachable() -> TestResult {
    let s = TestServer::start(Backend::Sqlite, "store-outage", |_| {}).await?.ok_or("sqlite")?;
    let (blobs, away) = (s.blob_root().join("blobs"), s.blob_root().join("blobs-away"));
    std::fs::rename(&blobs, &away)?;
    let p = mediabox_tests::expect_problem(s.http.get(s.url("/readyz")).send().await?, StatusCode::SERVICE_UNAVAILABLE)
        .await?;
    assert_eq!(p["detail"], "the storage is unreachable");
    std::fs::rename(&away, &blobs)?;
    expect_json(s.http.get(s.url("/readyz")).send().await?, StatusCode::OK).await?;
    Ok(())
}
