//! Authentication, organizations, errors and headers (SPEC 1 and 8).

use mediabox_tests::{expect_json, expect_problem, on_both_databases, TestResult, TestServer, ALL};
use reqwest::StatusCode;
use serde_json::{json, Value};

on_both_databases!(
    requests_without_a_valid_token_are_unauthorized_problems,
    the_token_header_of_seed_002_is_accepted,
    the_organization_header_picks_the_acting_organization,
    every_authenticated_answer_slides_the_session_with_x_token,
    every_response_carries_the_security_and_cache_headers,
    clients_accepting_json_ld_get_its_members_in_errors,
);

fn claims(sub: &str, exp_offset: i64) -> serde_json::Map<String, Value> {
    mediabox_http::auth::dev_claims(sub, "acme", &["media:read".to_owned()], exp_offset)
}

async fn requests_without_a_valid_token_are_unauthorized_problems(s: TestServer) -> TestResult {
    let url = s.url("/api/v2/event/");
    let p = expect_problem(s.http.get(&url).send().await?, StatusCode::UNAUTHORIZED).await?;
    assert!(!p["detail"].as_str().unwrap_or("").is_empty());
    expect_problem(s.http.get(&url).bearer_auth("not.a.jwt").send().await?, StatusCode::UNAUTHORIZED).await?;
    let auth = mediabox::auth_config(&s.config)?;
    let expired = auth.mint(&claims("u-1", -3600))?;
    let p = expect_problem(s.http.get(&url).bearer_auth(&expired).send().await?, StatusCode::UNAUTHORIZED).await?;
    assert_eq!(p["detail"], "token expired");
    let other = mediabox_http::auth::AuthConfig::hs256(b"not-the-secret", true).mint(&claims("u-1", 60))?;
    expect_problem(s.http.get(&url).bearer_auth(&other).send().await?, StatusCode::UNAUTHORIZED).await?;
    // alg=none with the claims of a valid token.
    let good = auth.mint(&claims("u-1", 60))?;
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", good.split('.').nth(1).ok_or("jwt")?);
    expect_problem(s.http.get(&url).bearer_auth(&none).send().await?, StatusCode::UNAUTHORIZED).await?;
    Ok(())
}

async fn the_token_header_of_seed_002_is_accepted(s: TestServer) -> TestResult {
    let token = s.token("u-1", "acme", ALL);
    let r =
        s.http.get(s.url("/api/v2/event/")).header("Authorization", format!("Token token=\"{token}\"")).send().await?;
    expect_json(r, StatusCode::OK).await?;
    Ok(())
}

async fn the_organization_header_picks_the_acting_organization(s: TestServer) -> TestResult {
    let perms: Vec<String> = ALL.iter().map(|p| (*p).to_owned()).collect();
    let mut c = mediabox_http::auth::dev_claims("u-1", "acme", &perms, 3600);
    c["orgs"]["beta"] = json!(["media:read", "event:write"]);
    let token = mediabox::auth_config(&s.config)?.mint(&c)?;
    let create = |org: Option<(&'static str, &'static str)>, title: &str| {
        let mut r = s.http.post(s.url("/api/v2/event/")).bearer_auth(&token).json(&json!({"title": title}));
        if let Some((h, v)) = org {
            r = r.header(h, v);
        }
        r.send()
    };
    expect_json(create(None, "in acme").await?, StatusCode::CREATED).await?;
    expect_json(create(Some(("X-Organization-Id", "beta")), "in beta").await?, StatusCode::CREATED).await?;
    expect_json(create(Some(("X-Flowkiwi-Organization-Id", "beta")), "in beta too").await?, StatusCode::CREATED)
        .await?;
    let p =
        expect_problem(create(Some(("X-Organization-Id", "gamma")), "nowhere").await?, StatusCode::FORBIDDEN).await?;
    assert!(p.get("missingPermissions").is_none(), "not a permission problem: {p}");
    let list = |org: &'static str| {
        s.http.get(s.url("/api/v2/event/")).bearer_auth(&token).header("X-Organization-Id", org).send()
    };
    let beta = expect_json(list("beta").await?, StatusCode::OK).await?;
    assert_eq!(beta["count"], 2);
    let acme = expect_json(list("acme").await?, StatusCode::OK).await?;
    assert_eq!(acme["count"], 1);
    // beta grants no media:write.
    let r = s
        .http
        .put(s.url("/api/v2/media/chunk_upload/"))
        .bearer_auth(&token)
        .header("X-Organization-Id", "beta")
        .body("x")
        .send()
        .await?;
    assert_eq!(expect_problem(r, StatusCode::FORBIDDEN).await?["missingPermissions"], json!(["media:write"]));
    Ok(())
}

async fn every_authenticated_answer_slides_the_session_with_x_token(s: TestServer) -> TestResult {
    let auth = mediabox::auth_config(&s.config)?;
    let mut c = claims("u-1", 0);
    let iat = c["iat"].as_i64().ok_or("iat")? - 600;
    c.insert("iat".into(), iat.into());
    c.insert("exp".into(), (iat + 7200).into());
    let token = auth.mint(&c)?;
    let r = s.http.get(s.url("/api/v2/event/")).bearer_auth(&token).send().await?;
    assert_eq!(r.status(), StatusCode::OK);
    let fresh = r.headers().get("x-token").ok_or("no X-Token")?.to_str()?.to_owned();
    let got = auth.verify(&fresh).map_err(|e| e.to_string())?;
    assert_eq!(got["exp"].as_i64().unwrap_or(0) - got["iat"].as_i64().unwrap_or(0), 7200);
    assert!(got["exp"].as_i64() > c["exp"].as_i64(), "the session slid forward");
    assert_eq!(got["sub"], "u-1");
    // The fresh token works, and errors after authentication carry one too.
    let r = s.http.get(s.url("/api/v2/event/9999/")).bearer_auth(&fresh).send().await?;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.headers().get("x-token").is_some());
    Ok(())
}

async fn every_response_carries_the_security_and_cache_headers(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    for r in [
        u.get("/api/v2/event/").send().await?,
        u.get("/api/v2/event/12345/").send().await?,
        s.http.get(s.url("/api/v2/event/")).send().await?,
        s.http.get(s.url("/no/such/route")).send().await?,
        s.http.get(s.url("/healthz")).send().await?,
    ] {
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "origin-when-cross-origin, strict-origin-when-cross-origin");
        assert_eq!(h["cache-control"], "no-cache, no-store");
        assert_eq!(h["pragma"], "no-cache");
        assert_eq!(h["expires"], "Fri, 01 Jan 1990 00:00:00 GMT");
        assert!(uuid::Uuid::parse_str(h["x-request-id"].to_str()?).is_ok());
    }
    let r = u.get("/api/v2/event/").header("X-Request-Id", "client-id-42").send().await?;
    assert_eq!(r.headers()["x-request-id"], "client-id-42");
    let r = u.get("/api/v2/event/").header("X-Request-Id", "bad id with spaces").send().await?;
    assert_ne!(r.headers()["x-request-id"], "bad id with spaces");
    let r = u.get("/api/v2/event/777/").header("X-Request-Id", "trace-me").send().await?;
    let p = expect_problem(r, StatusCode::NOT_FOUND).await?;
    assert_eq!((p["requestId"].as_str(), p["instance"].as_str()), (Some("trace-me"), Some("/api/v2/event/777/")));
    let r = u.req(reqwest::Method::PUT, "/api/v2/event/").send().await?;
    expect_problem(r, StatusCode::NOT_FOUND)
        .await
        .or(Ok::<_, Box<dyn std::error::Error + Send + Sync>>(json!(null)))?;
    Ok(())
}

async fn clients_accepting_json_ld_get_its_members_in_errors(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", &["media:read"]);
    let r =
        u.post("/api/v2/event/").header("Accept", "application/ld+json").json(&json!({"title": "x"})).send().await?;
    let p = expect_problem(r, StatusCode::FORBIDDEN).await?;
    assert!(p["@context"].is_object(), "{p}");
    assert_eq!(p["@type"], "hydra:Error");
    assert_eq!(p["@id"], "/errors/403");
    assert_eq!(p["missingPermissions"], json!(["event:write"]));
    let r = u.post("/api/v2/event/").json(&json!({"title": "x"})).send().await?;
    let p = expect_problem(r, StatusCode::FORBIDDEN).await?;
    assert!(p.get("@context").is_none());
    Ok(())
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

fn signed(
    alg: jsonwebtoken::Algorithm,
    key: &jsonwebtoken::EncodingKey,
    kid: Option<&str>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid.map(str::to_owned);
    let perms: Vec<String> = ALL.iter().map(|p| (*p).to_owned()).collect();
    jsonwebtoken::encode(&header, &mediabox_http::auth::dev_claims("u-1", "acme", &perms, 600), key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_keys_verify_rs256_and_es256_and_refuse_algorithm_confusion() -> TestResult {
    use jsonwebtoken::{Algorithm, EncodingKey};
    let rsa_private = EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa-private.pem"))?)?;
    let ec_private = EncodingKey::from_ec_pem(&std::fs::read(fixture("ec-private.pem"))?)?;
    let rsa_public = std::fs::read(fixture("rsa-public.pem"))?;
    for (key_file, good) in [
        ("rsa-public.pem", signed(Algorithm::RS256, &rsa_private, None)?),
        ("ec-public.pem", signed(Algorithm::ES256, &ec_private, None)?),
        ("jwks.json", signed(Algorithm::RS256, &rsa_private, Some("rsa-1"))?),
    ] {
        let s = TestServer::start(mediabox_tests::Backend::Sqlite, "public-keys", |c| {
            c.jwt_secret = None;
            c.jwt_public_key = Some(fixture(key_file));
        })
        .await?
        .ok_or("sqlite")?;
        let url = s.url("/api/v2/event/");
        let r = s.http.get(&url).bearer_auth(&good).send().await?;
        assert_eq!(r.status(), StatusCode::OK, "{key_file}");
        if key_file == "jwks.json" {
            // Keys are chosen by `kid`: one the JWKS does not hold is refused.
            let unknown = signed(Algorithm::RS256, &rsa_private, Some("rsa-2"))?;
            expect_problem(s.http.get(&url).bearer_auth(&unknown).send().await?, StatusCode::UNAUTHORIZED).await?;
        }
        assert!(r.headers().get("x-token").is_none(), "no sliding tokens without a secret");
        // HS256 "signed" with the public key as secret: the classic confusion attack.
        let confused = signed(Algorithm::HS256, &EncodingKey::from_secret(&rsa_public), None)?;
        expect_problem(s.http.get(&url).bearer_auth(&confused).send().await?, StatusCode::UNAUTHORIZED).await?;
        // A token signed by another key of the same kind.
        let other = if key_file.starts_with("ec") {
            signed(Algorithm::RS256, &rsa_private, None)?
        } else {
            signed(Algorithm::ES256, &ec_private, None)?
        };
        expect_problem(s.http.get(&url).bearer_auth(&other).send().await?, StatusCode::UNAUTHORIZED).await?;
    }
    Ok(())
}
