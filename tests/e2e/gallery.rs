//! The event photo gallery (seeds 000 and 001).

use mediabox_tests::{expect_json, expect_problem, on_both_databases, png, Caller, Res, TestResult, TestServer, ALL};
use reqwest::StatusCode;
use serde_json::{json, Value};

on_both_databases!(
    a_manager_adds_media_they_uploaded_with_json_or_form_bodies,
    adding_media_uploaded_by_someone_else_is_forbidden,
    a_caller_who_is_not_a_manager_cannot_add_or_remove,
    a_media_of_another_organization_is_not_found,
    removing_a_list_is_all_or_nothing_and_ignores_ids_not_in_the_gallery,
    removing_more_than_a_thousand_ids_is_refused_and_removes_nothing,
    the_gallery_lists_in_the_order_added_with_cursors_both_ways,
    malformed_gallery_bodies_name_the_wrong_field,
);

async fn gallery_ids(u: &Caller<'_>, event: i64) -> Res<Vec<i64>> {
    let page =
        expect_json(u.get(&format!("/api/v2/event/{event}/gallery/?page_size=500")).send().await?, StatusCode::OK)
            .await?;
    Ok(page["results"].as_array().ok_or("results")?.iter().filter_map(|m| m["id"].as_i64()).collect())
}

async fn media(u: &Caller<'_>, seed: u8) -> Res<i64> {
    let m = u.upload(&png(3, 3, seed), 1000, "p.png").await?;
    m["id"].as_i64().ok_or_else(|| "id".into())
}

async fn a_manager_adds_media_they_uploaded_with_json_or_form_bodies(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let e = u.event("Party").await?;
    let (a, b) = (media(&u, 1).await?, media(&u, 2).await?);
    let path = format!("/api/v2/event/{e}/gallery/");
    let m = expect_json(u.post(&path).json(&json!({"media": a})).send().await?, StatusCode::OK).await?;
    assert_eq!(m["id"], a);
    assert_eq!(m["content_type"], "image/png");
    let m = expect_json(u.post(&path).form(&[("media", b.to_string())]).send().await?, StatusCode::OK).await?;
    assert_eq!(m["id"], b);
    // Again: a no-op that answers 200 with the media.
    let again = expect_json(u.post(&path).json(&json!({"media": a})).send().await?, StatusCode::OK).await?;
    assert_eq!(again["id"], a);
    assert_eq!(gallery_ids(&u, e).await?, vec![a, b]);
    let ev = expect_json(u.get(&format!("/api/v2/event/{e}/")).send().await?, StatusCode::OK).await?;
    assert_eq!(ev["gallery_count"], 2);
    Ok(())
}

async fn adding_media_uploaded_by_someone_else_is_forbidden(s: TestServer) -> TestResult {
    let u1 = s.as_user("u-1", "acme", ALL);
    let u2 = s.as_user("u-2", "acme", ALL);
    let e = u1.event("Party").await?;
    expect_json(
        u1.post(&format!("/api/v2/event/{e}/managers/")).json(&json!({"user": "u-2"})).send().await?,
        StatusCode::OK,
    )
    .await?;
    let theirs = media(&u2, 3).await?;
    let r = u1.post(&format!("/api/v2/event/{e}/gallery/")).json(&json!({"media": theirs})).send().await?;
    expect_problem(r, StatusCode::FORBIDDEN).await?;
    assert!(gallery_ids(&u1, e).await?.is_empty());
    // The uploader, being a manager, may add it.
    expect_json(
        u2.post(&format!("/api/v2/event/{e}/gallery/")).json(&json!({"media": theirs})).send().await?,
        StatusCode::OK,
    )
    .await?;
    Ok(())
}

async fn a_caller_who_is_not_a_manager_cannot_add_or_remove(s: TestServer) -> TestResult {
    let owner = s.as_user("u-1", "acme", ALL);
    let guest = s.as_user("u-2", "acme", ALL);
    let e = owner.event("Party").await?;
    let mine = media(&owner, 4).await?;
    expect_json(
        owner.post(&format!("/api/v2/event/{e}/gallery/")).json(&json!({"media": mine})).send().await?,
        StatusCode::OK,
    )
    .await?;
    let guests = media(&guest, 5).await?;
    let path = format!("/api/v2/event/{e}/gallery/");
    expect_problem(guest.post(&path).json(&json!({"media": guests})).send().await?, StatusCode::FORBIDDEN).await?;
    expect_problem(guest.delete(&path).json(&json!({"medias": [mine]})).send().await?, StatusCode::FORBIDDEN).await?;
    assert_eq!(gallery_ids(&guest, e).await?, vec![mine], "a reader sees the gallery");
    Ok(())
}

async fn a_media_of_another_organization_is_not_found(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let e = u.event("Party").await?;
    let elsewhere = media(&s.as_user("u-1", "beta", ALL), 6).await?;
    let r = u.post(&format!("/api/v2/event/{e}/gallery/")).json(&json!({"media": elsewhere})).send().await?;
    expect_problem(r, StatusCode::NOT_FOUND).await?;
    let r = u.post(&format!("/api/v2/event/{e}/gallery/")).json(&json!({"media": 987_654})).send().await?;
    expect_problem(r, StatusCode::NOT_FOUND).await?;
    Ok(())
}

async fn removing_a_list_is_all_or_nothing_and_ignores_ids_not_in_the_gallery(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let e = u.event("Party").await?;
    let mut ids = Vec::new();
    for seed in 10..16 {
        let id = media(&u, seed).await?;
        expect_json(
            u.post(&format!("/api/v2/event/{e}/gallery/")).json(&json!({"media": id})).send().await?,
            StatusCode::OK,
        )
        .await?;
        ids.push(id);
    }
    let path = format!("/api/v2/event/{e}/gallery/");
    // JSON, with an id that is not in the gallery.
    let r = u.delete(&path).json(&json!({"medias": [ids[0], 999_999]})).send().await?;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // Form, repeated keys.
    let r = u.delete(&path).form(&[("medias", ids[1].to_string()), ("medias", ids[2].to_string())]).send().await?;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // Form, PHP/Rails style keys as in seed 002.
    let r = u
        .delete(&path)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("medias[]={}&medias[]={}", ids[3], ids[4]))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(gallery_ids(&u, e).await?, vec![ids[5]]);
    // An invalid id anywhere in the list refuses the whole request.
    let p =
        expect_problem(u.delete(&path).json(&json!({"medias": [ids[5], "x"]})).send().await?, StatusCode::BAD_REQUEST)
            .await?;
    assert_eq!(p["field"], "medias");
    assert_eq!(gallery_ids(&u, e).await?, vec![ids[5]]);
    // The media themselves stay.
    expect_json(u.get(&format!("/api/v2/media/{}/", ids[0])).send().await?, StatusCode::OK).await?;
    Ok(())
}

async fn removing_more_than_a_thousand_ids_is_refused_and_removes_nothing(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let e = u.event("Party").await?;
    let id = media(&u, 20).await?;
    expect_json(
        u.post(&format!("/api/v2/event/{e}/gallery/")).json(&json!({"media": id})).send().await?,
        StatusCode::OK,
    )
    .await?;
    let mut many: Vec<i64> = (1_000_000..1_001_000).collect();
    many.push(id);
    let p = expect_problem(
        u.delete(&format!("/api/v2/event/{e}/gallery/")).json(&json!({"medias": many})).send().await?,
        StatusCode::BAD_REQUEST,
    )
    .await?;
    assert_eq!(p["field"], "medias");
    assert_eq!(gallery_ids(&u, e).await?, vec![id]);
    let ok: Vec<i64> = many[1..].to_vec();
    assert_eq!(ok.len(), 1000);
    assert_eq!(
        u.delete(&format!("/api/v2/event/{e}/gallery/")).json(&json!({"medias": ok})).send().await?.status(),
        StatusCode::NO_CONTENT
    );
    assert!(gallery_ids(&u, e).await?.is_empty());
    Ok(())
}

async fn the_gallery_lists_in_the_order_added_with_cursors_both_ways(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let e = u.event("Party").await?;
    let mut ids = Vec::new();
    for seed in 30..37 {
        ids.push(media(&u, seed).await?);
    }
    ids.reverse();
    for id in &ids {
        expect_json(
            u.post(&format!("/api/v2/event/{e}/gallery/")).form(&[("media", id.to_string())]).send().await?,
            StatusCode::OK,
        )
        .await?;
    }
    let mut seen = Vec::new();
    let mut pages: Vec<Value> = Vec::new();
    let mut next = Some(format!("/api/v2/event/{e}/gallery/?page_size=3"));
    while let Some(path) = next {
        let page = expect_json(u.get(&path).send().await?, StatusCode::OK).await?;
        assert_eq!(page["count"], 7);
        seen.extend(page["results"].as_array().ok_or("results")?.iter().filter_map(|m| m["id"].as_i64()));
        next = page["next"].as_str().map(|n| n.replace(&s.base, ""));
        pages.push(page);
    }
    assert_eq!(seen, ids);
    assert_eq!(pages.len(), 3);
    assert!(pages[0]["previous"].is_null());
    let prev = pages[2]["previous"].as_str().ok_or("previous")?.replace(&s.base, "");
    let back = expect_json(u.get(&prev).send().await?, StatusCode::OK).await?;
    // Ids, not whole objects: each answer signs its `file` URLs afresh.
    let ids = |p: &Value| p["results"].as_array().map(|a| a.iter().map(|m| m["id"].clone()).collect::<Vec<_>>());
    assert_eq!(ids(&back), ids(&pages[1]));
    let p = expect_problem(
        u.get(&format!("/api/v2/event/{e}/gallery/?page_size=many")).send().await?,
        StatusCode::BAD_REQUEST,
    )
    .await?;
    assert_eq!(p["field"], "page_size");
    let big = expect_json(u.get(&format!("/api/v2/event/{e}/gallery/?page_size=100000")).send().await?, StatusCode::OK)
        .await?;
    assert_eq!(big["results"].as_array().map(Vec::len), Some(7));
    let no_read = s.as_user("u-1", "acme", &["media:write"]);
    expect_problem(no_read.get(&format!("/api/v2/event/{e}/gallery/")).send().await?, StatusCode::FORBIDDEN).await?;
    Ok(())
}

async fn malformed_gallery_bodies_name_the_wrong_field(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let e = u.event("Party").await?;
    let path = format!("/api/v2/event/{e}/gallery/");
    for body in [json!({}), json!({"media": "abc"}), json!({"media": 0}), json!({"media": [1]})] {
        let p = expect_problem(u.post(&path).json(&body).send().await?, StatusCode::BAD_REQUEST).await?;
        assert_eq!(p["field"], "media", "{body}");
    }
    let p = expect_problem(u.post(&path).form(&[("media", "x")]).send().await?, StatusCode::BAD_REQUEST).await?;
    assert_eq!(p["field"], "media");
    let p = expect_problem(u.delete(&path).json(&json!({"medias": 5})).send().await?, StatusCode::BAD_REQUEST).await?;
    assert_eq!(p["field"], "medias");
    Ok(())
}
