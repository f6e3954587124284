//! Deleting media: in bulk (seed 002) and one by one (seed 003), through one use case.

use mediabox_tests::{
    expect_json, expect_problem, files_under, on_both_databases, png, Caller, Res, TestResult, TestServer, ALL,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

on_both_databases!(
    bulk_delete_answers_the_deleted_uuids_with_the_headers_of_seed_002,
    bulk_delete_leaves_alone_what_it_may_not_delete_and_lists_only_what_it_did,
    bulk_delete_of_more_than_ten_thousand_ids_is_refused_and_deletes_nothing,
    deleting_a_media_takes_it_out_of_every_gallery,
    a_media_is_deleted_once_and_then_not_found,
    deleting_a_media_needs_the_organization_header_and_the_right_to_delete_it,
    a_referenced_media_is_a_conflict_listing_the_references_in_json_ld,
    the_rest_api_shows_a_media_as_json_ld,
    gc_collects_blobs_that_no_row_names_and_keeps_the_rest,
);

async fn upload(u: &Caller<'_>, seed: u8) -> Res<Value> {
    u.upload(&png(4, 4, seed), 1000, "p.png").await
}

fn uuid_of(m: &Value) -> String {
    m["uuid"].as_str().unwrap_or_default().to_owned()
}

async fn bulk_delete_answers_the_deleted_uuids_with_the_headers_of_seed_002(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let mut uuids = Vec::new();
    for seed in 0..3 {
        uuids.push(uuid_of(&upload(&u, seed).await?));
    }
    let body: String = uuids.iter().map(|id| format!("image_ids[]={id}")).collect::<Vec<_>>().join("&");
    let r = s
        .http
        .delete(s.url("/api/v1/images"))
        .header("Authorization", format!("Token token=\"{}\"", u.token))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers().clone();
    assert_eq!(h["cache-control"], "no-cache, no-store");
    assert_eq!(h["pragma"], "no-cache");
    assert_eq!(h["expires"], "Fri, 01 Jan 1990 00:00:00 GMT");
    assert_eq!(h["content-type"], "application/json; charset=utf-8");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "origin-when-cross-origin, strict-origin-when-cross-origin");
    assert!(h.contains_key("x-request-id") && h.contains_key("x-token"));
    let mut got: Vec<String> = r.json().await?;
    got.sort();
    uuids.sort();
    assert_eq!(got, uuids);
    for id in &uuids {
        let r = u.get(&format!("/rest/api/medias/{id}")).header("X-Organization-Id", "acme").send().await?;
        expect_problem(r, StatusCode::NOT_FOUND).await?;
    }
    assert!(files_under(&s.blob_root().join("blobs")).is_empty(), "the blobs went with their media");
    Ok(())
}

async fn bulk_delete_leaves_alone_what_it_may_not_delete_and_lists_only_what_it_did(s: TestServer) -> TestResult {
    let me = s.as_user("u-1", "acme", &["media:read", "media:write"]);
    let colleague = s.as_user("u-2", "acme", ALL);
    let stranger = s.as_user("u-9", "beta", ALL);
    let mine = uuid_of(&upload(&me, 1).await?);
    let referenced = uuid_of(&upload(&me, 2).await?);
    let theirs = uuid_of(&upload(&colleague, 3).await?);
    let foreign = uuid_of(&upload(&stranger, 4).await?);
    let r = colleague
        .post("/rest/api/products")
        .header("X-Organization-Id", "acme")
        .json(&json!({"name": "Shoe", "medias": [format!("/rest/api/medias/{referenced}")]}))
        .send()
        .await?;
    expect_json(r, StatusCode::CREATED).await?;
    let ids =
        json!({"image_ids": [mine, referenced, theirs, foreign, uuid::Uuid::new_v4().to_string(), "not-a-uuid", 42]});
    let got: Vec<String> = expect_json(me.delete("/api/v1/images").json(&ids).send().await?, StatusCode::OK)
        .await?
        .as_array()
        .ok_or("array")?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    assert_eq!(got, vec![mine.clone()]);
    // What was left alone is still there, for its owners.
    let ok = |c: &Caller<'_>, id: &str, org: &'static str| {
        c.get(&format!("/rest/api/medias/{id}")).header("X-Organization-Id", org).send()
    };
    expect_json(ok(&colleague, &theirs, "acme").await?, StatusCode::OK).await?;
    expect_json(ok(&colleague, &referenced, "acme").await?, StatusCode::OK).await?;
    expect_json(ok(&stranger, &foreign, "beta").await?, StatusCode::OK).await?;
    // With media:delete, someone else's media goes; no ids at all is an empty answer.
    let got = expect_json(
        colleague.delete("/api/v1/images").form(&[("image_ids[]", theirs.as_str())]).send().await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(got, json!([theirs]));
    assert_eq!(expect_json(me.delete("/api/v1/images").send().await?, StatusCode::OK).await?, json!([]));
    assert_eq!(
        expect_json(me.delete("/api/v1/images").json(&json!({"image_ids": []})).send().await?, StatusCode::OK).await?,
        json!([])
    );
    Ok(())
}

async fn bulk_delete_of_more_than_ten_thousand_ids_is_refused_and_deletes_nothing(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let keep = uuid_of(&upload(&u, 1).await?);
    let mut ids: Vec<String> = (0..10_000).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    ids.push(keep.clone());
    let p = expect_problem(
        u.delete("/api/v1/images").json(&json!({"image_ids": ids})).send().await?,
        StatusCode::BAD_REQUEST,
    )
    .await?;
    assert_eq!(p["field"], "image_ids");
    expect_json(
        u.get(&format!("/rest/api/medias/{keep}")).header("X-Organization-Id", "acme").send().await?,
        StatusCode::OK,
    )
    .await?;
    // Exactly 10 000 is allowed, in one request.
    ids.remove(0);
    let got =
        expect_json(u.delete("/api/v1/images").json(&json!({"image_ids": ids})).send().await?, StatusCode::OK).await?;
    assert_eq!(got, json!([keep]));
    Ok(())
}

async fn deleting_a_media_takes_it_out_of_every_gallery(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let (e1, e2) = (u.event("one").await?, u.event("two").await?);
    let (a, b) = (upload(&u, 1).await?, upload(&u, 2).await?);
    for (e, m) in [(e1, &a), (e1, &b), (e2, &a)] {
        expect_json(
            u.post(&format!("/api/v2/event/{e}/gallery/")).json(&json!({"media": m["id"]})).send().await?,
            StatusCode::OK,
        )
        .await?;
    }
    let r = u
        .delete(&format!("/rest/api/medias/{}", uuid_of(&a)))
        .header("X-Flowkiwi-Organization-Id", "acme")
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let g1 = expect_json(u.get(&format!("/api/v2/event/{e1}/gallery/")).send().await?, StatusCode::OK).await?;
    assert_eq!((g1["count"].as_u64(), g1["results"][0]["id"].as_i64()), (Some(1), b["id"].as_i64()));
    let g2 = expect_json(u.get(&format!("/api/v2/event/{e2}/gallery/")).send().await?, StatusCode::OK).await?;
    assert_eq!((g2["count"].as_u64(), g2["results"].as_array().map(Vec::len)), (Some(0), Some(0)));
    Ok(())
}

async fn a_media_is_deleted_once_and_then_not_found(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let m = upload(&u, 1).await?;
    let path = format!("/rest/api/medias/{}", uuid_of(&m));
    let del =
        || u.delete(&path).header("X-Flowkiwi-Organization-Id", "acme").header("Accept", "application/ld+json").send();
    assert_eq!(del().await?.status(), StatusCode::NO_CONTENT);
    let p = expect_problem(del().await?, StatusCode::NOT_FOUND).await?;
    assert_eq!((p["@type"].as_str(), p["@id"].as_str()), (Some("hydra:Error"), Some("/errors/404")));
    expect_problem(u.get(&format!("/api/v2/media/{}/", m["id"])).send().await?, StatusCode::NOT_FOUND).await?;
    // The signed link stops working too.
    let r = s.http.get(m["file"].as_str().ok_or("file")?).send().await?;
    expect_problem(r, StatusCode::NOT_FOUND).await?;
    for bad in ["not-a-uuid", "42"] {
        let r =
            u.delete(&format!("/rest/api/medias/{bad}")).header("X-Flowkiwi-Organization-Id", "acme").send().await?;
        expect_problem(r, StatusCode::NOT_FOUND).await?;
    }
    Ok(())
}

async fn deleting_a_media_needs_the_organization_header_and_the_right_to_delete_it(s: TestServer) -> TestResult {
    let owner = s.as_user("u-1", "acme", &["media:read", "media:write"]);
    let colleague = s.as_user("u-2", "acme", &["media:read"]);
    let stranger = s.as_user("u-1", "beta", ALL);
    let m = upload(&owner, 1).await?;
    let path = format!("/rest/api/medias/{}", uuid_of(&m));
    let p = expect_problem(owner.delete(&path).send().await?, StatusCode::BAD_REQUEST).await?;
    assert_eq!(p["field"], "X-Flowkiwi-Organization-Id");
    let r = colleague
        .delete(&path)
        .header("X-Flowkiwi-Organization-Id", "acme")
        .header("Accept", "application/ld+json")
        .send()
        .await?;
    let p = expect_problem(r, StatusCode::FORBIDDEN).await?;
    assert_eq!(p["missingPermissions"], json!(["media:delete"]));
    assert!(p["@context"].is_object() && p["@id"].is_string() && p["@type"].is_string(), "{p}");
    let r = stranger.delete(&path).header("X-Flowkiwi-Organization-Id", "beta").send().await?;
    expect_problem(r, StatusCode::NOT_FOUND).await?;
    expect_problem(
        s.http.delete(s.url(&path)).header("X-Flowkiwi-Organization-Id", "acme").send().await?,
        StatusCode::UNAUTHORIZED,
    )
    .await?;
    // The uploader may always delete their own media, without media:delete.
    assert_eq!(
        owner.delete(&path).header("X-Flowkiwi-Organization-Id", "acme").send().await?.status(),
        StatusCode::NO_CONTENT
    );
    Ok(())
}

async fn a_referenced_media_is_a_conflict_listing_the_references_in_json_ld(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let m = upload(&u, 1).await?;
    let iri = format!("/rest/api/medias/{}", uuid_of(&m));
    let rest = |r: reqwest::RequestBuilder| {
        r.header("X-Flowkiwi-Organization-Id", "acme").header("Accept", "application/ld+json")
    };
    let p = expect_json(
        rest(u.post("/rest/api/products")).json(&json!({"name": "Shoe", "medias": [iri]})).send().await?,
        StatusCode::CREATED,
    )
    .await?;
    let v = expect_json(
        rest(u.post("/rest/api/variants"))
            .json(&json!({"name": "Red", "product": p["@id"], "medias": [iri]}))
            .send()
            .await?,
        StatusCode::CREATED,
    )
    .await?;
    let e = expect_problem(rest(u.delete(&iri)).send().await?, StatusCode::CONFLICT).await?;
    assert_eq!(e["references"], json!([p["@id"], v["@id"]]));
    assert_eq!(e["@type"], "hydra:Error");
    assert_eq!(e["@id"], "/errors/409");
    // Still there, and deletable once nothing lists it.
    expect_json(rest(u.get(&iri)).send().await?, StatusCode::OK).await?;
    for item in [&v, &p] {
        let path = item["@id"].as_str().ok_or("@id")?;
        let r = rest(u.patch(path))
            .header("Content-Type", "application/merge-patch+json")
            .body(r#"{"medias": []}"#)
            .send()
            .await?;
        expect_json(r, StatusCode::OK).await?;
    }
    assert_eq!(rest(u.delete(&iri)).send().await?.status(), StatusCode::NO_CONTENT);
    Ok(())
}

async fn the_rest_api_shows_a_media_as_json_ld(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let m = upload(&u, 1).await?;
    let iri = format!("/rest/api/medias/{}", uuid_of(&m));
    let r = u.get(&iri).header("X-Flowkiwi-Organization-Id", "acme").send().await?;
    assert!(r.headers()["content-type"].to_str()?.starts_with("application/ld+json"));
    let v = expect_json(r, StatusCode::OK).await?;
    assert_eq!((v["@id"].as_str(), v["@type"].as_str()), (Some(iri.as_str()), Some("Media")));
    assert_eq!(v["sha256"], m["sha256"]);
    assert_eq!(v["content_type"], "image/png");
    Ok(())
}

async fn gc_collects_blobs_that_no_row_names_and_keeps_the_rest(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let live = upload(&u, 1).await?;
    // An upload in progress whose bytes were renamed into the store, not yet recorded.
    let up = expect_json(u.chunk(None, b"pending", 0, None, "a").send().await?, StatusCode::OK).await?;
    let sha = mediabox_tests::sha256_hex(b"pending");
    let pending_key = format!("{sha}-{}", up["upload_id"].as_str().ok_or("id")?);
    // What a crash between a delete's commit and the blob's removal leaves behind.
    let orphan_key = format!("{}-{}", "ab".repeat(32), uuid::Uuid::new_v4().simple());
    for key in [&pending_key, &orphan_key] {
        // Where a release from before 2026-12 put them (two folder levels).
        let p = s.blob_root().join("blobs").join(&key[0..2]).join(&key[2..4]).join(key);
        std::fs::create_dir_all(p.parent().ok_or("parent")?)?;
        std::fs::write(&p, b"bytes")?;
    }
    assert_eq!(files_under(&s.blob_root().join("blobs")).len(), 3);
    // Staging bytes whose upload is gone (a chunk that raced an abandon), and live ones.
    let stray = s.blob_root().join("staging").join(uuid::Uuid::new_v4().simple().to_string());
    std::fs::write(&stray, b"stray")?;
    // And staging bytes of a completed upload (a failed chunk's bytes it never recorded).
    let done_up = expect_json(u.chunk(None, b"done", 0, None, "d").send().await?, StatusCode::OK).await?;
    let done_id = done_up["upload_id"].as_str().ok_or("id")?;
    let r = u.post("/api/v2/media/chunk_upload_complete/").json(&json!({"upload_id": done_id})).send().await?;
    expect_json(r, StatusCode::OK).await?;
    let late = s.blob_root().join("staging").join(uuid::Uuid::parse_str(done_id)?.simple().to_string());
    std::fs::write(&late, b"late!")?;
    // Young files are never collected.
    assert!(mediabox::gc_once(&s.running.wired, mediabox::BLOB_GRACE).await?.is_empty());
    assert!(stray.exists() && late.exists(), "young staging bytes are kept");
    let done = mediabox::gc_once(&s.running.wired, chrono::Duration::zero()).await?;
    // One orphan blob and two stray staging files, five bytes each.
    assert_eq!((done.blobs.count, done.blobs.bytes, done.staging.count, done.staging.bytes), (1, 5, 2, 10));
    assert!(!stray.exists() && !late.exists());
    let st = expect_json(
        u.get(&format!("/api/v2/media/chunk_upload/{}/", up["upload_id"].as_str().ok_or("id")?)).send().await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(st["offset"], 7, "the live upload keeps its bytes");
    assert_eq!(files_under(&s.blob_root().join("staging")).len(), 1);
    let left: Vec<String> = files_under(&s.blob_root().join("blobs"))
        .iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .collect();
    assert!(!left.contains(&orphan_key) && left.contains(&pending_key), "{left:?}");
    let got = u.get(&format!("/api/v2/media/{}/file", live["id"])).send().await?;
    assert_eq!(got.status(), StatusCode::OK, "the live blob stays");
    Ok(())
}
