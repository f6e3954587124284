//! The interleavings of the delete path, run many times at once, then the invariants:
//! no reference to a deleted media, every stored media's blob exists, no blob without a
//! media after gc, gallery counts equal to what the galleries list.

use mediabox_tests::{expect_json, files_under, on_both_databases, png, Caller, Res, TestResult, TestServer, ALL};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{json, Value};

on_both_databases!(
    deleting_while_adding_to_a_gallery_leaves_no_dangling_entry,
    deleting_while_a_product_takes_the_media_leaves_no_dangling_reference,
    concurrent_deletes_of_media_sharing_bytes_remove_the_blob_exactly_when_the_last_goes,
);

const ROUNDS: u8 = 15;
const PAIRS: u8 = 8;

fn rest(r: RequestBuilder) -> RequestBuilder {
    r.header("X-Flowkiwi-Organization-Id", "acme")
}

async fn upload(u: &Caller<'_>, seed: u8) -> Res<Value> {
    u.upload(&png(3, 3, seed), 1000, "p.png").await
}

/// Every media still listed anywhere can be downloaded, and gc finds nothing to
/// collect but blobs of deleted media.
async fn check_store(s: &TestServer, u: &Caller<'_>, live: &[Value]) -> TestResult {
    for m in live {
        let r = u.get(&format!("/api/v2/media/{}/file", m["id"])).send().await?;
        assert_eq!(r.status(), StatusCode::OK, "the blob of live media {} exists", m["id"]);
    }
    mediabox::gc_once(&s.running.wired, chrono::Duration::zero()).await?;
    let files = files_under(&s.blob_root().join("blobs")).len();
    let mut keys: Vec<String> = Vec::new();
    for m in live {
        let v = expect_json(
            rest(u.get(&format!("/rest/api/medias/{}", m["uuid"].as_str().unwrap_or_default()))).send().await?,
            StatusCode::OK,
        )
        .await?;
        keys.push(v["sha256"].as_str().unwrap_or_default().to_owned());
    }
    keys.sort();
    keys.dedup();
    assert_eq!(files, keys.len(), "after gc, one blob per distinct live content and nothing else");
    Ok(())
}

async fn deleting_while_adding_to_a_gallery_leaves_no_dangling_entry(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let e = u.event("Party").await?;
    let mut live = Vec::new();
    for round in 0..ROUNDS / 3 {
        let mut media = Vec::new();
        for i in 0..PAIRS {
            media.push(upload(&u, round * PAIRS + i).await?);
        }
        // Every media deleted and added at once, in both orders.
        let mut calls = Vec::new();
        for (i, m) in media.iter().enumerate() {
            let del = rest(u.delete(&format!("/rest/api/medias/{}", m["uuid"].as_str().unwrap_or_default())));
            let add = u.post(&format!("/api/v2/event/{e}/gallery/")).json(&json!({"media": m["id"]}));
            let pair = if i % 2 == 0 { [("delete", del), ("add", add)] } else { [("add", add), ("delete", del)] };
            calls.extend(pair);
        }
        let sent =
            futures_util::future::join_all(calls.into_iter().map(|(what, r)| async move { (what, r.send().await) }))
                .await;
        for (what, r) in sent {
            let st = r?.status();
            match what {
                "delete" => assert_eq!(
                    st,
                    StatusCode::NO_CONTENT,
                    "nothing but galleries point at it, and they do not block a delete"
                ),
                _ => assert!(st == StatusCode::OK || st == StatusCode::NOT_FOUND, "add answered {st}"),
            }
        }
        let g = expect_json(u.get(&format!("/api/v2/event/{e}/gallery/?page_size=500")).send().await?, StatusCode::OK)
            .await?;
        let listed: Vec<i64> =
            g["results"].as_array().ok_or("results")?.iter().filter_map(|x| x["id"].as_i64()).collect();
        for m in &media {
            assert!(
                !listed.contains(&m["id"].as_i64().unwrap_or_default()),
                "round {round}: a deleted media is still in the gallery"
            );
        }
        assert_eq!(g["count"].as_u64(), Some(listed.len() as u64), "round {round}: the count matches the gallery");
        let keep = upload(&u, 200 + round).await?;
        expect_json(
            u.post(&format!("/api/v2/event/{e}/gallery/")).json(&json!({"media": keep["id"]})).send().await?,
            StatusCode::OK,
        )
        .await?;
        live.push(keep);
    }
    check_store(&s, &u, &live).await
}

async fn deleting_while_a_product_takes_the_media_leaves_no_dangling_reference(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let mut live = Vec::new();
    for round in 0..ROUNDS / 3 {
        let mut pairs = Vec::new();
        for i in 0..PAIRS {
            let m = upload(&u, round * PAIRS + i).await?;
            let p = expect_json(
                rest(u.post("/rest/api/products")).json(&json!({"name": "Shoe"})).send().await?,
                StatusCode::CREATED,
            )
            .await?;
            pairs.push((m, p["@id"].as_str().ok_or("@id")?.to_owned()));
        }
        let mut calls = Vec::new();
        for (i, (m, pid)) in pairs.iter().enumerate() {
            let iri = format!("/rest/api/medias/{}", m["uuid"].as_str().unwrap_or_default());
            let del = rest(u.delete(&iri));
            let take = rest(u.patch(pid))
                .header("Content-Type", "application/merge-patch+json")
                .body(json!({"medias": [iri]}).to_string());
            let pair = if i % 2 == 0 {
                [(i, "delete", del), (i, "take", take)]
            } else {
                [(i, "take", take), (i, "delete", del)]
            };
            calls.extend(pair);
        }
        let sent = futures_util::future::join_all(
            calls.into_iter().map(|(i, what, r)| async move { (i, what, r.send().await) }),
        )
        .await;
        let mut outcomes = vec![(StatusCode::OK, StatusCode::OK); pairs.len()];
        for (i, what, r) in sent {
            let st = r?.status();
            if what == "delete" {
                outcomes[i].0 = st
            } else {
                outcomes[i].1 = st
            }
        }
        for (i, (m, pid)) in pairs.iter().enumerate() {
            match outcomes[i] {
                // The delete came first: the product could not take a media that was gone.
                (StatusCode::NO_CONTENT, StatusCode::UNPROCESSABLE_ENTITY) => {}
                // The product came first: the delete was refused.
                (StatusCode::CONFLICT, StatusCode::OK) => live.push(m.clone()),
                other => return Err(format!("round {round}: impossible outcome {other:?}").into()),
            }
            let now = expect_json(rest(u.get(pid)).send().await?, StatusCode::OK).await?;
            for listed in now["medias"].as_array().ok_or("medias")? {
                let r = rest(u.get(listed.as_str().unwrap_or_default())).send().await?;
                assert_eq!(r.status(), StatusCode::OK, "round {round}: a product lists a media that is gone");
            }
        }
    }
    check_store(&s, &u, &live).await
}

async fn concurrent_deletes_of_media_sharing_bytes_remove_the_blob_exactly_when_the_last_goes(
    s: TestServer,
) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let v = s.as_user("u-2", "acme", ALL);
    let mut live = Vec::new();
    for round in 0..ROUNDS {
        let bytes = png(5, 5, round);
        let (a, b) = (u.upload(&bytes, 1000, "a.png").await?, v.upload(&bytes, 1000, "b.png").await?);
        let c = if round % 3 == 0 { Some(u.upload(&bytes, 1000, "c.png").await?) } else { None };
        let da = rest(u.delete(&format!("/rest/api/medias/{}", a["uuid"].as_str().unwrap_or_default()))).send();
        let db = rest(v.delete(&format!("/rest/api/medias/{}", b["uuid"].as_str().unwrap_or_default()))).send();
        let (ra, rb) = tokio::join!(da, db);
        assert_eq!((ra?.status(), rb?.status()), (StatusCode::NO_CONTENT, StatusCode::NO_CONTENT));
        if let Some(c) = c {
            live.push(c);
        }
        // Without gc: the blob is gone exactly when no media shares it.
        let files = files_under(&s.blob_root().join("blobs")).len();
        assert_eq!(files, live.len(), "round {round}: blobs {files}, live media {}", live.len());
    }
    check_store(&s, &u, &live).await
}
