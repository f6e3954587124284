//! Request bodies as JSON or `application/x-www-form-urlencoded`, into one DTO type.
//! Form lists are repeated keys (`medias=1&medias=2`) or PHP/Rails style (`medias[]=1`).
//! Errors name the field that is wrong.

use actix_web::http::StatusCode;
use actix_web::HttpRequest;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use validator::Validate;

use crate::error::ApiError;

/// Turns a form body into a JSON object; keys in `lists` are arrays when they are there
/// (a form cannot say "an empty list", so a list left out is missing, not empty).
#[must_use]
pub fn form_to_json(body: &[u8], lists: &[&str]) -> Value {
    let mut m = Map::new();
    for (k, v) in form_urlencoded::parse(body) {
        let key = k.strip_suffix("[]").unwrap_or(&k).to_owned();
        let is_list = k.ends_with("[]") || lists.contains(&key.as_str());
        match m.get_mut(&key) {
            Some(Value::Array(a)) => a.push(Value::String(v.into_owned())),
            Some(other) => {
                let first = other.take();
                *other = Value::Array(vec![first, Value::String(v.into_owned())]);
            }
            None if is_list => {
                m.insert(key, Value::Array(vec![Value::String(v.into_owned())]));
            }
            None => {
                m.insert(key, Value::String(v.into_owned()));
            }
        }
    }
    Value::Object(m)
}

/// The body as a JSON value, from JSON or form encoding.
///
/// # Errors
/// 415 for another content type; 400 for JSON that does not parse.
pub fn to_value(req: &HttpRequest, body: &[u8], lists: &[&str]) -> Result<Value, ApiError> {
    let ct = req.headers().get("Content-Type").and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let mime = ct.split(';').next().unwrap_or("").trim();
    match mime {
        "application/x-www-form-urlencoded" => Ok(form_to_json(body, lists)),
        "application/json" | "application/ld+json" | "application/merge-patch+json" => {
            serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("body is not valid JSON: {e}")))
        }
        "" if body.iter().all(u8::is_ascii_whitespace) => Ok(Value::Object(Map::new())),
        "" => serde_json::from_slice(body).map_err(|_| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported Media Type",
                "send application/json or application/x-www-form-urlencoded",
            )
        }),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported Media Type",
            format!("{other} is not accepted here; send application/json or application/x-www-form-urlencoded"),
        )),
    }
}

/// Parses and validates a body into `T`.
///
/// # Errors
/// 400 naming the first field that is missing, of the wrong type, or invalid.
pub fn parse<T: DeserializeOwned + Validate>(req: &HttpRequest, body: &[u8], lists: &[&str]) -> Result<T, ApiError> {
    from_value(to_value(req, body, lists)?)
}

/// Deserializes and validates a JSON value into `T`.
///
/// # Errors
/// 400 naming the first field that is wrong.
pub fn from_value<T: DeserializeOwned + Validate>(v: Value) -> Result<T, ApiError> {
    let t: T = serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let field = if path == "." {
            inner.split('`').nth(1).unwrap_or("body").to_owned()
        } else {
            path.split(['.', '[']).next().unwrap_or("body").to_owned()
        };
        ApiError::bad_field(&field, in_words(&field, &inner))
    })?;
    t.validate().map_err(|errs| {
        let (field, wanted) = first_violation(&errs);
        ApiError::bad_field(&field, format!("{field} {wanted}"))
    })?;
    Ok(t)
}

/// A serde error about `field` as a person reads it: `title is required`, `media must
/// be an integer, not a boolean`.
fn in_words(field: &str, serde_says: &str) -> String {
    let plain = serde_says.replace('`', "");
    if plain.starts_with("missing field") {
        return format!("{field} is required");
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((got, expected)) = plain.strip_prefix(prefix).and_then(|r| r.split_once(", expected ")) {
            let expected = expected.split(" at line ").next().unwrap_or(expected);
            return format!("{field} must be {expected}, not {got}");
        }
    }
    let plain = plain.split(" at line ").next().unwrap_or(&plain);
    if plain.starts_with("must be") {
        return format!("{field} {plain}");
    }
    format!("{field}: {plain}")
}

/// The first field that failed validation (in name order, so the answer is stable) and
/// what it must be, in words: `title must be 1 to 200 characters`.
fn first_violation(errs: &validator::ValidationErrors) -> (String, String) {
    let fields = errs.field_errors();
    let mut names: Vec<_> = fields.keys().collect();
    names.sort();
    let Some(name) = names.first() else { return ("body".to_owned(), "is invalid".to_owned()) };
    let wanted = fields[*name].first().map_or_else(|| "is invalid".to_owned(), wanted);
    ((*name).to_string(), wanted)
}

/// What one validator asks for, in words.
fn wanted(e: &validator::ValidationError) -> String {
    let n = |key: &str| e.params.get(key).and_then(Value::as_u64);
    let units = match e.params.get("value") {
        Some(Value::Array(_)) => "items",
        _ => "characters",
    };
    match (e.code.as_ref(), n("min"), n("max"), n("equal")) {
        ("length", _, _, Some(eq)) => format!("must be exactly {eq} {units}"),
        ("length", Some(lo), Some(hi), _) => format!("must be {lo} to {hi} {units}"),
        ("length", Some(lo), None, _) => format!("must be at least {lo} {units}"),
        ("length", None, Some(hi), _) => format!("must be at most {hi} {units}"),
        ("range", Some(lo), Some(hi), _) => format!("must be from {lo} to {hi}"),
        ("range", Some(lo), None, _) => format!("must be at least {lo}"),
        ("range", None, Some(hi), _) => format!("must be at most {hi}"),
        _ => e.message.as_ref().map_or_else(|| "is invalid".to_owned(), |m| format!("is invalid: {m}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn forms_become_objects_with_lists() {
        assert_eq!(form_to_json(b"medias=42&medias=43", &["medias"]), json!({"medias": ["42", "43"]}));
        assert_eq!(form_to_json(b"medias[]=42&medias[]=43", &["medias"]), json!({"medias": ["42", "43"]}));
        assert_eq!(form_to_json(b"medias=42", &["medias"]), json!({"medias": ["42"]}));
        assert_eq!(form_to_json(b"media=42", &[]), json!({"media": "42"}));
        assert_eq!(form_to_json(b"", &["medias"]), json!({}));
    }

    #[derive(Debug, serde::Deserialize, Validate)]
    struct Probe {
        media: crate::constrained::Id,
    }

    #[test]
    fn errors_name_the_field() {
        let e = from_value::<Probe>(json!({})).err().map(|e| e.members["field"].clone());
        assert_eq!(e, Some(json!("media")));
        let e = from_value::<Probe>(json!({"media": "x"})).err().map(|e| e.members["field"].clone());
        assert_eq!(e, Some(json!("media")));
        let e = from_value::<Probe>(json!({"media": 0})).err().map(|e| e.members["field"].clone());
        assert_eq!(e, Some(json!("media")));
        assert_eq!(from_value::<Probe>(json!({"media": "12"})).ok().map(|p| p.media.0), Some(12));
    }

    #[derive(Debug, serde::Deserialize, Validate)]
    struct Named {
        #[validate(length(min = 1, max = 200))]
        title: String,
        #[validate(length(equal = 32))]
        md5: Option<String>,
        #[validate(length(max = 3))]
        tags: Option<Vec<String>>,
    }

    fn detail<T: DeserializeOwned + Validate + std::fmt::Debug>(v: Value) -> String {
        from_value::<T>(v).err().map(|e| e.detail.clone()).unwrap_or_default()
    }

    #[test]
    fn errors_say_in_words_what_is_wanted() {
        assert_eq!(detail::<Named>(json!({"title": ""})), "title must be 1 to 200 characters");
        assert_eq!(detail::<Named>(json!({"title": "a", "md5": "ab"})), "md5 must be exactly 32 characters");
        assert_eq!(
            detail::<Named>(json!({"title": "a", "tags": ["a", "b", "c", "d"]})),
            "tags must be at most 3 items"
        );
        assert_eq!(detail::<Named>(json!({})), "title is required");
        assert_eq!(detail::<Named>(json!({"title": 5})), "title must be a string, not integer 5");
        assert_eq!(detail::<Probe>(json!({"media": 0})), "media must be at least 1");
        assert_eq!(detail::<Probe>(json!({"media": true})), "media must be an integer, not boolean true");
        assert_eq!(detail::<Probe>(json!({"media": "x"})), "media must be an integer");
    }
}
