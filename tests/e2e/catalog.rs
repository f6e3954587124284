//! The JSON-LD catalog: products and variants (SPEC 6).

use mediabox_tests::{expect_json, expect_problem, on_both_databases, png, Caller, TestResult, TestServer, ALL};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::json;

on_both_databases!(
    products_are_created_read_listed_changed_and_deleted_as_json_ld,
    changing_the_catalog_needs_catalog_write,
    media_iris_that_do_not_resolve_in_the_organization_are_violations,
    a_product_with_variants_is_not_deleted,
);

fn rest(r: RequestBuilder) -> RequestBuilder {
    r.header("X-Flowkiwi-Organization-Id", "acme").header("Accept", "application/ld+json")
}

async fn media_iri(u: &Caller<'_>, seed: u8) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let m = u.upload(&png(2, 2, seed), 1000, "p.png").await?;
    Ok(format!("/rest/api/medias/{}", m["uuid"].as_str().ok_or("uuid")?))
}

async fn products_are_created_read_listed_changed_and_deleted_as_json_ld(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let (a, b) = (media_iri(&u, 1).await?, media_iri(&u, 2).await?);
    let r = rest(u.post("/rest/api/products"))
        .header("Content-Type", "application/ld+json")
        .body(json!({"name": "Shoe", "medias": [a, b]}).to_string())
        .send()
        .await?;
    assert!(r.headers()["content-type"].to_str()?.starts_with("application/ld+json"));
    let p = expect_json(r, StatusCode::CREATED).await?;
    assert_eq!(p["@context"], "/rest/api/contexts/Product");
    assert_eq!(p["@type"], "Product");
    assert_eq!(p["medias"], json!([a, b]));
    let iri = p["@id"].as_str().ok_or("@id")?.to_owned();
    assert_eq!(iri, format!("/rest/api/products/{}", p["id"]));
    assert_eq!(expect_json(rest(u.get(&iri)).send().await?, StatusCode::OK).await?, p);
    rest(u.post("/rest/api/products")).json(&json!({"name": "Boot"})).send().await?;
    let list = expect_json(rest(u.get("/rest/api/products")).send().await?, StatusCode::OK).await?;
    assert_eq!(list["@type"], "hydra:Collection");
    assert_eq!(list["hydra:totalItems"], 2);
    assert_eq!(list["hydra:member"][0]["@id"], iri);
    let r = rest(u.patch(&iri))
        .header("Content-Type", "application/merge-patch+json")
        .body(json!({"name": "Sneaker"}).to_string())
        .send()
        .await?;
    let changed = expect_json(r, StatusCode::OK).await?;
    assert_eq!(
        (changed["name"].as_str(), &changed["medias"]),
        (Some("Sneaker"), &json!([a, b])),
        "a merge patch keeps what it does not name"
    );
    assert_eq!(rest(u.delete(&iri)).send().await?.status(), StatusCode::NO_CONTENT);
    expect_problem(rest(u.get(&iri)).send().await?, StatusCode::NOT_FOUND).await?;
    // The media stay.
    expect_json(rest(u.get(&a)).send().await?, StatusCode::OK).await?;
    // Another organization sees nothing.
    let stranger = s.as_user("u-1", "beta", ALL);
    let list = expect_json(
        stranger.get("/rest/api/products").header("X-Organization-Id", "beta").send().await?,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(list["hydra:totalItems"], 0);
    Ok(())
}

async fn changing_the_catalog_needs_catalog_write(s: TestServer) -> TestResult {
    let reader = s.as_user("u-1", "acme", &["media:read", "media:write"]);
    let p = expect_problem(
        rest(reader.post("/rest/api/products")).json(&json!({"name": "Shoe"})).send().await?,
        StatusCode::FORBIDDEN,
    )
    .await?;
    assert_eq!(p["missingPermissions"], json!(["catalog:write"]));
    let p = expect_problem(
        reader.post("/rest/api/products").json(&json!({"name": "Shoe"})).send().await?,
        StatusCode::BAD_REQUEST,
    )
    .await?;
    assert_eq!(p["field"], "X-Flowkiwi-Organization-Id", "the organization header is required");
    Ok(())
}

async fn media_iris_that_do_not_resolve_in_the_organization_are_violations(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let mine = media_iri(&u, 1).await?;
    let foreign = media_iri(&s.as_user("u-1", "beta", ALL), 2).await?;
    let body = json!({"name": "Shoe", "medias": [mine, foreign, "/rest/api/medias/not-a-uuid", format!("/rest/api/medias/{}", uuid::Uuid::new_v4())]});
    let p =
        expect_problem(rest(u.post("/rest/api/products")).json(&body).send().await?, StatusCode::UNPROCESSABLE_ENTITY)
            .await?;
    let paths: Vec<&str> =
        p["violations"].as_array().ok_or("violations")?.iter().filter_map(|v| v["propertyPath"].as_str()).collect();
    assert_eq!(paths, vec!["medias[1]", "medias[2]", "medias[3]"]);
    assert_eq!(p["@type"], "hydra:Error");
    let list = expect_json(rest(u.get("/rest/api/products")).send().await?, StatusCode::OK).await?;
    assert_eq!(list["hydra:totalItems"], 0, "nothing was created");
    let p = expect_problem(
        rest(u.post("/rest/api/products")).json(&json!({"medias": []})).send().await?,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await?;
    assert_eq!(p["violations"][0]["propertyPath"], "name");
    let p = expect_problem(
        rest(u.post("/rest/api/variants"))
            .json(&json!({"name": "Red", "product": "/rest/api/products/999"}))
            .send()
            .await?,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await?;
    assert_eq!(p["violations"][0]["propertyPath"], "product");
    Ok(())
}

async fn a_product_with_variants_is_not_deleted(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let p = expect_json(
        rest(u.post("/rest/api/products")).json(&json!({"name": "Shoe"})).send().await?,
        StatusCode::CREATED,
    )
    .await?;
    let v = expect_json(
        rest(u.post("/rest/api/variants")).json(&json!({"name": "Red", "product": p["@id"]})).send().await?,
        StatusCode::CREATED,
    )
    .await?;
    assert_eq!((v["@type"].as_str(), &v["product"]), (Some("Variant"), &p["@id"]));
    let pid = p["@id"].as_str().ok_or("@id")?;
    let e = expect_problem(rest(u.delete(pid)).send().await?, StatusCode::CONFLICT).await?;
    assert_eq!(e["references"], json!([v["@id"]]));
    let list = expect_json(rest(u.get("/rest/api/variants")).send().await?, StatusCode::OK).await?;
    assert_eq!(list["hydra:totalItems"], 1);
    assert_eq!(rest(u.delete(v["@id"].as_str().ok_or("@id")?)).send().await?.status(), StatusCode::NO_CONTENT);
    assert_eq!(rest(u.delete(pid)).send().await?.status(), StatusCode::NO_CONTENT);
    Ok(())
}
