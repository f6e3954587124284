//! Many requests at once: uploads in parallel and concurrent gallery adds.

use mediabox_tests::{expect_json, on_both_databases, png, sha256_hex, TestResult, TestServer, ALL};
use reqwest::StatusCode;
use serde_json::json;

on_both_databases!(sixteen_uploads_in_parallel_all_complete_intact, twenty_concurrent_gallery_adds_all_land);

async fn sixteen_uploads_in_parallel_all_complete_intact(s: TestServer) -> TestResult {
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let u = s.as_user(&format!("u-{i}"), "acme", ALL);
            let bytes = png(64 + u32::from(i), 48, i);
            let m = u.upload(&bytes, 512, &format!("p{i}.png")).await?;
            let got = u.get(&format!("/api/v2/media/{}/file", m["id"])).send().await?.bytes().await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((m, bytes, got))
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let (m, bytes, got) = t.await??;
        assert_eq!(m["sha256"], sha256_hex(&bytes));
        assert_eq!(got.as_ref(), bytes.as_slice());
        assert!(ids.insert(m["id"].as_i64()));
    }
    assert_eq!(ids.len(), 16);
    Ok(())
}

async fn twenty_concurrent_gallery_adds_all_land(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let e = u.event("Party").await?;
    let mut media = Vec::new();
    for i in 0..20u8 {
        media.push(u.upload(&png(2, 2, 100 + i), 1000, "p.png").await?["id"].as_i64().ok_or("id")?);
    }
    let path = format!("/api/v2/event/{e}/gallery/");
    let adds = media.iter().map(|id| u.post(&path).json(&json!({"media": id})).send());
    for r in futures_util::future::join_all(adds).await {
        expect_json(r?, StatusCode::OK).await?;
    }
    let page = expect_json(u.get(&format!("{path}?page_size=500")).send().await?, StatusCode::OK).await?;
    assert_eq!(page["count"], 20);
    let mut got: Vec<i64> =
        page["results"].as_array().ok_or("results")?.iter().filter_map(|m| m["id"].as_i64()).collect();
    got.sort_unstable();
    let mut want = media.clone();
    want.sort_unstable();
    assert_eq!(got, want);
    Ok(())
}
