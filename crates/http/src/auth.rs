//! Authentication: the only file that knows JWT. [`AuthUser`] is the extractor every
//! protected handler takes; it verifies the token, picks the acting organization and
//! turns the claims into a domain [`Actor`]. With an HS256 secret and refresh on, it also
//! mints the sliding-session `X-Token` that the middleware puts on the response.

use std::collections::{BTreeMap, HashMap};
use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use mediabox_domain::{Actor, OrgId, Permission, UserId};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::state::AppState;

/// The headers that name the acting organization, in order of preference.
pub const ORG_HEADERS: [&str; 2] = ["X-Organization-Id", "X-Flowkiwi-Organization-Id"];

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the public key file is neither an RSA/EC PEM nor a JWKS: {0}")]
    Unreadable(String),
    #[error("the JWKS holds no RSA or EC key")]
    EmptyJwks,
}

enum Keys {
    Hmac { decoding: DecodingKey, encoding: EncodingKey },
    Public(Vec<(Option<String>, DecodingKey, Algorithm)>),
}

/// How tokens are verified (and, with a secret, minted).
pub struct AuthConfig {
    keys: Keys,
    issuer: Option<String>,
    audience: Option<String>,
    refresh: bool,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("issuer", &self.issuer)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl AuthConfig {
    /// HS256 with a shared secret; `refresh` turns on sliding `X-Token`s.
    #[must_use]
    pub fn hs256(secret: &[u8], refresh: bool) -> Self {
        Self {
            keys: Keys::Hmac { decoding: DecodingKey::from_secret(secret), encoding: EncodingKey::from_secret(secret) },
            issuer: None,
            audience: None,
            refresh,
        }
    }

    /// RS256/ES256 with a PEM public key, or any RSA/EC keys of a JWKS (chosen by `kid`).
    ///
    /// # Errors
    /// [`KeyError`] when the bytes are neither.
    pub fn public_keys(bytes: &[u8]) -> Result<Self, KeyError> {
        let keys = if let Ok(set) = serde_json::from_slice::<JwkSet>(bytes) {
            let keys: Vec<_> = set
                .keys
                .iter()
                .filter_map(|jwk| {
                    let alg = match jwk.algorithm {
                        AlgorithmParameters::RSA(_) => Algorithm::RS256,
                        AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                        _ => return None,
                    };
                    DecodingKey::from_jwk(jwk).ok().map(|k| (jwk.common.key_id.clone(), k, alg))
                })
                .collect();
            if keys.is_empty() {
                return Err(KeyError::EmptyJwks);
            }
            keys
        } else if let Ok(k) = DecodingKey::from_rsa_pem(bytes) {
            vec![(None, k, Algorithm::RS256)]
        } else {
            let k = DecodingKey::from_ec_pem(bytes).map_err(|e| KeyError::Unreadable(e.to_string()))?;
            vec![(None, k, Algorithm::ES256)]
        };
        Ok(Self { keys: Keys::Public(keys), issuer: None, audience: None, refresh: false })
    }

    #[must_use]
    pub fn with_issuer(mut self, issuer: Option<String>) -> Self {
        self.issuer = issuer;
        self
    }
    #[must_use]
    pub fn with_audience(mut self, audience: Option<String>) -> Self {
        self.audience = audience;
        self
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.algorithms = vec![alg];
        v.validate_exp = true;
        v.validate_nbf = true;
        v.leeway = 30;
        let mut required = vec!["exp", "sub"];
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        if let Some(aud) = &self.audience {
            v.set_audience(&[aud]);
            required.push("aud");
        } else {
            v.validate_aud = false;
        }
        v.set_required_spec_claims(&required);
        v
    }

    /// Verifies a token and returns its claims.
    ///
    /// # Errors
    /// A 401 problem saying why, without echoing the token.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| ApiError::unauthorized("malformed token"))?;
        let (key, alg) = match &self.keys {
            Keys::Hmac { decoding, .. } => (decoding, Algorithm::HS256),
            Keys::Public(keys) => {
                let found = keys.iter().find(|(kid, _, alg)| {
                    *alg == header.alg && (header.kid.is_none() || kid.is_none() || *kid == header.kid)
                });
                let (_, k, a) =
                    found.ok_or_else(|| ApiError::unauthorized("token signed with an unknown key or algorithm"))?;
                (k, *a)
            }
        };
        if header.alg != alg {
            return Err(ApiError::unauthorized("token algorithm not accepted"));
        }
        jsonwebtoken::decode::<Map<String, Value>>(token, key, &self.validation(alg)).map(|d| d.claims).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            let why = match e.kind() {
                K::ExpiredSignature => "token expired",
                K::ImmatureSignature => "token not valid yet",
                K::InvalidIssuer => "token issuer not accepted",
                K::InvalidAudience => "token audience not accepted",
                K::MissingRequiredClaim(_) => "token lacks a required claim",
                K::InvalidSignature => "token signature invalid",
                _ => "token invalid",
            };
            ApiError::unauthorized(why)
        })
    }

    /// The sliding-session token: the same claims with `iat` now and the same lifetime.
    #[must_use]
    pub fn refreshed(&self, claims: &Map<String, Value>) -> Option<String> {
        let Keys::Hmac { encoding, .. } = &self.keys else { return None };
        if !self.refresh {
            return None;
        }
        let exp = claims.get("exp")?.as_i64()?;
        let iat = claims.get("iat")?.as_i64()?;
        let now = chrono::Utc::now().timestamp();
        let mut fresh = claims.clone();
        fresh.insert("iat".into(), now.into());
        fresh.insert("exp".into(), (now + (exp - iat).max(0)).into());
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &fresh, encoding).ok()
    }

    /// Mints a token with the secret (for `mediabox token` and tests).
    ///
    /// # Errors
    /// When no secret is configured or encoding fails.
    pub fn mint(&self, claims: &Map<String, Value>) -> Result<String, String> {
        let Keys::Hmac { encoding, .. } = &self.keys else {
            return Err("tokens can only be minted with an HS256 secret (MEDIABOX_JWT_SECRET)".into());
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, encoding).map_err(|e| e.to_string())
    }
}

/// Builds the claims of a development token.
#[must_use]
pub fn dev_claims(sub: &str, org: &str, perms: &[String], ttl_secs: i64) -> Map<String, Value> {
    let now = chrono::Utc::now().timestamp();
    let mut orgs = Map::new();
    orgs.insert(org.to_owned(), Value::from(perms.to_vec()));
    let mut m = Map::new();
    m.insert("sub".into(), sub.into());
    m.insert("org".into(), org.into());
    m.insert("orgs".into(), Value::Object(orgs));
    m.insert("iat".into(), now.into());
    m.insert("exp".into(), (now + ttl_secs).into());
    m
}

/// The sliding token to set on the response, left in the request's extensions.
#[derive(Debug, Clone)]
pub struct RefreshedToken(pub String);

/// The bearer token of a request: `Authorization: Bearer <jwt>` or `Token token="<jwt>"`.
fn bearer(req: &HttpRequest) -> Option<&str> {
    let h = req.headers().get("Authorization")?.to_str().ok()?.trim();
    if let Some(t) = h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")) {
        return Some(t.trim());
    }
    let rest = h.strip_prefix("Token ")?.trim();
    let v = rest.strip_prefix("token=").unwrap_or(rest);
    Some(v.trim_matches('"'))
}

/// The organization named by the request's headers, if any.
///
/// # Errors
/// 400 when the header is present but not a valid organization id.
pub fn header_org(req: &HttpRequest) -> Result<Option<OrgId>, ApiError> {
    for name in ORG_HEADERS {
        if let Some(v) = req.headers().get(name) {
            let s = v.to_str().map_err(|_| ApiError::bad_field(name, "not valid text"))?;
            return OrgId::new(s.trim()).map(Some).map_err(|e| ApiError::bad_field(name, e.to_string()));
        }
    }
    Ok(None)
}

/// An authenticated caller acting in one organization.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Actor);

impl AuthUser {
    fn from_request_sync(req: &HttpRequest) -> Result<Self, ApiError> {
        let state =
            req.app_data::<actix_web::web::Data<AppState>>().ok_or_else(|| ApiError::internal("no app state"))?;
        let token = bearer(req).ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        let claims = state.auth.verify(token)?;
        let sub = claims.get("sub").and_then(Value::as_str).ok_or_else(|| ApiError::unauthorized("token lacks sub"))?;
        let user = UserId::new(sub).map_err(|_| ApiError::unauthorized("token sub is not a valid user id"))?;
        let org = match header_org(req)? {
            Some(o) => o,
            None => {
                let claim = claims.get("org").and_then(Value::as_str).ok_or_else(|| {
                    ApiError::bad_field(
                        ORG_HEADERS[0],
                        "no organization: send X-Organization-Id or use a token with an org claim",
                    )
                })?;
                OrgId::new(claim).map_err(|_| ApiError::unauthorized("token org is not a valid organization id"))?
            }
        };
        let orgs: HashMap<String, Vec<String>> = claims
            .get("orgs")
            .cloned()
            .map(serde_json::from_value::<BTreeMap<String, Vec<String>>>)
            .transpose()
            .map_err(|_| ApiError::unauthorized("token orgs claim is malformed"))?
            .unwrap_or_default()
            .into_iter()
            .collect();
        let Some(perms) = orgs.get(org.as_str()) else {
            return Err(ApiError::new(
                actix_web::http::StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                "the token does not grant access to this organization",
            ));
        };
        let actor = Actor::new(user, org, perms.iter().filter_map(|p| Permission::parse(p)));
        if let Some(t) = state.auth.refreshed(&claims) {
            req.extensions_mut().insert(RefreshedToken(t));
        }
        Ok(AuthUser(actor))
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::from_request_sync(req))
    }
}

/// An authenticated caller of the `/rest/api` routes, which require the organization
/// header (seed 003): 400 when it is missing.
#[derive(Debug, Clone)]
pub struct RestUser(pub Actor);

impl FromRequest for RestUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(AuthUser::from_request_sync(req).and_then(|AuthUser(actor)| match header_org(req)? {
            Some(_) => Ok(RestUser(actor)),
            None => Err(ApiError::bad_field(
                ORG_HEADERS[1],
                "this route needs the organization header X-Flowkiwi-Organization-Id (or X-Organization-Id)",
            )),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_with_another_algorithm_is_refused() -> Result<(), String> {
        let auth = AuthConfig::hs256(b"secret", true);
        let claims = dev_claims("u-1", "acme", &["media:read".into()], 60);
        let good = auth.mint(&claims)?;
        assert!(auth.verify(&good).is_ok());
        let other = AuthConfig::hs256(b"other", true).mint(&claims)?;
        assert!(auth.verify(&other).is_err(), "wrong secret");
        let hs384 = jsonwebtoken::encode(&Header::new(Algorithm::HS384), &claims, &EncodingKey::from_secret(b"secret"))
            .map_err(|e| e.to_string())?;
        assert!(auth.verify(&hs384).is_err(), "another HMAC algorithm");
        // alg "none": header {"alg":"none"} and an empty signature.
        let none = format!("eyJhbGciOiJub25lIn0.{}.", good.split('.').nth(1).unwrap_or_default());
        assert!(auth.verify(&none).is_err());
        Ok(())
    }

    #[test]
    fn expired_tokens_and_tokens_without_exp_are_refused() -> Result<(), String> {
        let auth = AuthConfig::hs256(b"secret", true);
        let expired = dev_claims("u-1", "acme", &[], -3600);
        assert!(auth.verify(&auth.mint(&expired)?).is_err());
        let mut no_exp = dev_claims("u-1", "acme", &[], 60);
        no_exp.remove("exp");
        assert!(auth.verify(&auth.mint(&no_exp)?).is_err());
        Ok(())
    }

    #[test]
    fn a_token_not_valid_yet_is_refused() -> Result<(), String> {
        let auth = AuthConfig::hs256(b"secret", true);
        let mut c = dev_claims("u-1", "acme", &[], 3600);
        c.insert("nbf".into(), (chrono::Utc::now().timestamp() + 600).into());
        assert!(auth.verify(&auth.mint(&c)?).is_err());
        c.insert("nbf".into(), (chrono::Utc::now().timestamp() - 600).into());
        assert!(auth.verify(&auth.mint(&c)?).is_ok());
        Ok(())
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() -> Result<(), String> {
        let auth =
            AuthConfig::hs256(b"s", false).with_issuer(Some("idp".into())).with_audience(Some("mediabox".into()));
        let mut c = dev_claims("u-1", "acme", &[], 60);
        assert!(auth.verify(&auth.mint(&c)?).is_err(), "no iss/aud");
        c.insert("iss".into(), "idp".into());
        c.insert("aud".into(), "mediabox".into());
        assert!(auth.verify(&auth.mint(&c)?).is_ok());
        c.insert("aud".into(), "elsewhere".into());
        assert!(auth.verify(&auth.mint(&c)?).is_err());
        Ok(())
    }

    #[test]
    fn the_refreshed_token_keeps_the_lifetime_and_claims() -> Result<(), String> {
        let auth = AuthConfig::hs256(b"secret", true);
        let mut c = dev_claims("u-1", "acme", &["media:read".into()], 3600);
        let old_iat = c.get("iat").and_then(Value::as_i64).unwrap_or_default() - 100;
        c.insert("iat".into(), old_iat.into());
        c.insert("exp".into(), (old_iat + 3600).into());
        let fresh = auth.refreshed(&c).ok_or("no refresh")?;
        let got = auth.verify(&fresh).map_err(|e| e.to_string())?;
        let (iat, exp) = (got["iat"].as_i64().unwrap_or_default(), got["exp"].as_i64().unwrap_or_default());
        assert_eq!(exp - iat, 3600);
        assert!(iat > old_iat);
        assert_eq!(got["orgs"], c["orgs"]);
        assert!(AuthConfig::hs256(b"secret", false).refreshed(&c).is_none());
        Ok(())
    }
}
