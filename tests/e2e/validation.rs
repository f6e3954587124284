//! Bad input is answered with a 400 that names the field and says in words what is
//! wanted (issue 24): never a debug dump of the validator or of serde.

use mediabox_tests::{expect_problem, on_both_databases, TestResult, TestServer, ALL};
use reqwest::StatusCode;
use serde_json::{json, Value};

on_both_databases!(every_400_names_the_field_and_says_what_is_wanted);

async fn every_400_names_the_field_and_says_what_is_wanted(s: TestServer) -> TestResult {
    let u = s.as_user("u-1", "acme", ALL);
    let event = u.event("party").await?;
    let cases: Vec<(&str, String, Value, &str, &str)> = vec![
        ("POST", "/api/v2/event/".into(), json!({"title": ""}), "title", "title must be 1 to 200 characters"),
        (
            "POST",
            "/api/v2/event/".into(),
            json!({"title": "x".repeat(201)}),
            "title",
            "title must be 1 to 200 characters",
        ),
        ("POST", "/api/v2/event/".into(), json!({}), "title", "title is required"),
        ("POST", "/api/v2/event/".into(), json!({"title": 5}), "title", "title must be a string, not integer 5"),
        ("POST", format!("/api/v2/event/{event}/gallery/"), json!({"media": 0}), "media", "media must be at least 1"),
        ("POST", format!("/api/v2/event/{event}/gallery/"), json!({"media": "x"}), "media", "media must be an integer"),
        (
            "POST",
            format!("/api/v2/event/{event}/managers/"),
            json!({"user": ""}),
            "user",
            "user must be 1 to 128 characters",
        ),
        (
            "POST",
            "/api/v2/media/chunk_upload_complete/".into(),
            json!({"upload_id": "00000000000000000000000000000000", "md5": "ab"}),
            "md5",
            "md5 must be 32 hexadecimal digits",
        ),
    ];
    for (method, path, body, field, detail) in cases {
        let r = u.req(method.parse()?, &path).json(&body).send().await?;
        let p = expect_problem(r, StatusCode::BAD_REQUEST).await?;
        assert_eq!((p["field"].as_str(), p["detail"].as_str()), (Some(field), Some(detail)), "{method} {path} {body}");
        let text = p.to_string();
        assert!(!text.contains("Validation error") && !text.contains('`') && !text.contains("Number("), "{text}");
    }
    Ok(())
}
