//! Events and their managers (SPEC 4).

use mediabox_tests::{expect_json, expect_problem, on_both_databases, png, TestResult, TestServer, ALL};
use reqwest::StatusCode;
use serde_json::json;

on_both_databases!(
    creating_an_event_needs_event_write_and_makes_the_creator_its_manager,
    events_are_created_from_forms_and_checked,
    events_are_listed_per_organization_with_cursors,
    a_manager_changes_and_deletes_an_event_and_the_media_stay,
    managers_are_added_and_removed_but_the_last_one_stays,
    another_organizations_event_is_not_found,
);

async fn creating_an_event_needs_event_write_and_makes_the_creator_its_manager(s: TestServer) -> TestResult {
    let reader = s.as_user("u-1", "acme", &["media:read"]);
    let r = reader.post("/api/v2/event/").json(&json!({"title": "Party"})).send().await?;
    let p = expect_problem(r, StatusCode::FORBIDDEN).await?;
    assert_eq!(p["missingPermissions"], json!(["event:write"]));
    let u = s.as_user("u-1", "acme", ALL);
    let body = json!({"title": "Party", "description": "d", "starts_at": "2026-12-01T18:00:00Z", "ends_at": "2026-12-01T23:00:00+01:00"});
    let e = expect_json(u.post("/api/v2/event/").json(&body).send().await?, StatusCode::CREATED).await?;
    assert_eq!(e["title"], "Party");
    assert_eq!(e["managers"], json!(["u-1"]));
    assert_eq!(e["starts_at"], "2026-12-01T18:00:00Z");
    assert_eq!(e["ends_at"], "2026-12-01T22:00:00Z");
    let got = expect_json(u.get(&format!("/api/v2/event/{}/", e["id"])).send().await?, StatusCode::OK).await?;
    assert_eq!(got, e);
    Ok(())
}

async fn events_are_created_from_forms_and_checked(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let e = expect_json(u.post("/api/v2/event/").form(&[("title", "Form party")]).send().await?, StatusCode::CREATED)
        .await?;
    assert_eq!(e["title"], "Form party");
    let p = expect_problem(u.post("/api/v2/event/").json(&json!({})).send().await?, StatusCode::BAD_REQUEST).await?;
    assert_eq!(p["field"], "title");
    let p =
        expect_problem(u.post("/api/v2/event/").json(&json!({"title": "  "})).send().await?, StatusCode::BAD_REQUEST)
            .await?;
    assert_eq!(p["field"], "title");
    let r = u.post("/api/v2/event/").json(&json!({"title": "x", "starts_at": "tomorrow"})).send().await?;
    assert_eq!(expect_problem(r, StatusCode::BAD_REQUEST).await?["field"], "starts_at");
    let r = u
        .post("/api/v2/event/")
        .json(&json!({"title": "x", "starts_at": "2026-12-02T00:00:00Z", "ends_at": "2026-12-01T00:00:00Z"}))
        .send()
        .await?;
    assert_eq!(expect_problem(r, StatusCode::BAD_REQUEST).await?["field"], "ends_at");
    let r = u.post("/api/v2/event/").header("Content-Type", "application/json").body("{not json").send().await?;
    expect_problem(r, StatusCode::BAD_REQUEST).await?;
    let r = u.post("/api/v2/event/").header("Content-Type", "text/csv").body("title\nx").send().await?;
    expect_problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await?;
    Ok(())
}

async fn events_are_listed_per_organization_with_cursors(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    for i in 0..5 {
        u.event(&format!("e{i}")).await?;
    }
    s.as_user("u-9", "beta", ALL).event("elsewhere").await?;
    let p1 = expect_json(u.get("/api/v2/event/?page_size=2").send().await?, StatusCode::OK).await?;
    assert_eq!(p1["count"], 5);
    assert!(p1["previous"].is_null());
    let titles = |p: &serde_json::Value| {
        p["results"].as_array().map(|a| a.iter().map(|e| e["title"].clone()).collect::<Vec<_>>())
    };
    assert_eq!(titles(&p1), Some(vec![json!("e0"), json!("e1")]));
    let next = p1["next"].as_str().ok_or("next")?;
    let p2 = expect_json(u.req(reqwest::Method::GET, &next.replace(&s.base, "")).send().await?, StatusCode::OK).await?;
    assert_eq!(titles(&p2), Some(vec![json!("e2"), json!("e3")]));
    let prev = p2["previous"].as_str().ok_or("previous")?;
    let back =
        expect_json(u.req(reqwest::Method::GET, &prev.replace(&s.base, "")).send().await?, StatusCode::OK).await?;
    assert_eq!(titles(&back), titles(&p1));
    let p = expect_problem(u.get("/api/v2/event/?cursor=garbage").send().await?, StatusCode::BAD_REQUEST).await?;
    assert_eq!(p["field"], "cursor");
    Ok(())
}

async fn a_manager_changes_and_deletes_an_event_and_the_media_stay(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let id = u.event("Before").await?;
    let other = s.as_user("u-2", "acme", ALL);
    let path = format!("/api/v2/event/{id}/");
    expect_problem(other.patch(&path).json(&json!({"title": "Hijacked"})).send().await?, StatusCode::FORBIDDEN).await?;
    let e = expect_json(
        u.patch(&path).json(&json!({"title": "After", "description": "now"})).send().await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!((e["title"].as_str(), e["description"].as_str()), (Some("After"), Some("now")));
    let e = expect_json(u.patch(&path).json(&json!({"description": null})).send().await?, StatusCode::OK).await?;
    assert!(e["description"].is_null());
    assert_eq!(e["title"], "After");
    let m = u.upload(&png(2, 2, 4), 1000, "a.png").await?;
    expect_json(
        u.post(&format!("/api/v2/event/{id}/gallery/")).json(&json!({"media": m["id"]})).send().await?,
        StatusCode::OK,
    )
    .await?;
    expect_problem(other.delete(&path).send().await?, StatusCode::FORBIDDEN).await?;
    assert_eq!(u.delete(&path).send().await?.status(), StatusCode::NO_CONTENT);
    expect_problem(u.get(&path).send().await?, StatusCode::NOT_FOUND).await?;
    expect_json(u.get(&format!("/api/v2/media/{}/", m["id"])).send().await?, StatusCode::OK).await?;
    Ok(())
}

async fn managers_are_added_and_removed_but_the_last_one_stays(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let id = u.event("Party").await?;
    let path = format!("/api/v2/event/{id}/managers/");
    let e = expect_json(u.post(&path).json(&json!({"user": "u-2"})).send().await?, StatusCode::OK).await?;
    assert_eq!(e["managers"], json!(["u-1", "u-2"]));
    let e = expect_json(u.post(&path).form(&[("user", "u-2")]).send().await?, StatusCode::OK).await?;
    assert_eq!(e["managers"], json!(["u-1", "u-2"]), "adding twice changes nothing");
    let outsider = s.as_user("u-3", "acme", ALL);
    expect_problem(outsider.post(&path).json(&json!({"user": "u-3"})).send().await?, StatusCode::FORBIDDEN).await?;
    // The new manager removes the creator, then cannot remove themself.
    let u2 = s.as_user("u-2", "acme", &["media:read"]);
    assert_eq!(u2.delete(&path).json(&json!({"user": "u-1"})).send().await?.status(), StatusCode::NO_CONTENT);
    expect_problem(u2.delete(&path).json(&json!({"user": "u-2"})).send().await?, StatusCode::CONFLICT).await?;
    expect_problem(u.delete(&path).json(&json!({"user": "u-2"})).send().await?, StatusCode::FORBIDDEN).await?;
    let e = expect_json(u2.get(&format!("/api/v2/event/{id}/")).send().await?, StatusCode::OK).await?;
    assert_eq!(e["managers"], json!(["u-2"]));
    Ok(())
}

async fn another_organizations_event_is_not_found(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let id = u.event("Party").await?;
    let stranger = s.as_user("u-1", "beta", ALL);
    for (m, p) in [
        (reqwest::Method::GET, format!("/api/v2/event/{id}/")),
        (reqwest::Method::PATCH, format!("/api/v2/event/{id}/")),
        (reqwest::Method::DELETE, format!("/api/v2/event/{id}/")),
        (reqwest::Method::GET, format!("/api/v2/event/{id}/gallery/")),
        (reqwest::Method::POST, format!("/api/v2/event/{id}/gallery/")),
        (reqwest::Method::DELETE, format!("/api/v2/event/{id}/gallery/")),
        (reqwest::Method::POST, format!("/api/v2/event/{id}/managers/")),
    ] {
        let r = stranger
            .req(m.clone(), &p)
            .json(&json!({"media": 1, "medias": [1], "user": "x", "title": "t"}))
            .send()
            .await?;
        expect_problem(r, StatusCode::NOT_FOUND).await.map_err(|e| format!("{m} {p}: {e}"))?;
    }
    for bad in ["abc", "0", "-4", "1.5"] {
        expect_problem(u.get(&format!("/api/v2/event/{bad}/")).send().await?, StatusCode::NOT_FOUND).await?;
    }
    Ok(())
}
