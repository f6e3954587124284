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
    verified: VerifiedTokens,
}

/// Seconds of clock skew allowed on `exp` and `nbf`.
const LEEWAY_SECS: i64 = 30;

/// A token whose signature, algorithm, issuer and audience were checked, and what it says.
/// Only its time claims can change their verdict later.
struct Verified {
    user: UserId,
    org_claim: Option<String>,
    orgs: HashMap<String, Vec<Permission>>,
    claims: Map<String, Value>,
    exp: i64,
    nbf: Option<i64>,
    /// The last sliding token minted from this one, and the second it was minted in.
    refreshed: std::sync::Mutex<Option<(i64, String)>>,
}

/// Tokens verified recently, by their exact text. A client sends the same token with
/// every request; checking its signature and parsing its claims each time was an eighth
/// of the server's work on a metadata read. A hit re-checks `exp` and `nbf` against the
/// clock; everything else a token's text decides cannot change while the keys do not.
/// Bounded: when full it is emptied and refills with the tokens in use.
#[derive(Default)]
struct VerifiedTokens(std::sync::Mutex<HashMap<Box<str>, std::sync::Arc<Verified>>>);

const VERIFIED_TOKENS_MAX: usize = 4096;

impl VerifiedTokens {
    fn get(&self, token: &str) -> Option<std::sync::Arc<Verified>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(token).cloned()
    }

    fn put(&self, token: &str, v: std::sync::Arc<Verified>) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= VERIFIED_TOKENS_MAX {
            map.clear();
        }
        map.insert(token.into(), v);
    }
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
            verified: VerifiedTokens::default(),
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
        Ok(Self {
            keys: Keys::Public(keys),
            issuer: None,
            audience: None,
            refresh: false,
            verified: VerifiedTokens::default(),
        })
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
        v.leeway = LEEWAY_SECS.unsigned_abs();
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

    /// The sliding-session token: the same claims with `iat` at `now` and the same
    /// lifetime; `None` unless this service issues tokens (a secret, refresh on).
    fn refreshed_at(&self, claims: &Map<String, Value>, now: i64) -> Option<String> {
        let Keys::Hmac { encoding, .. } = &self.keys else { return None };
        if !self.refresh {
            return None;
        }
        let exp = claims.get("exp")?.as_i64()?;
        let iat = claims.get("iat")?.as_i64()?;
        let mut fresh = claims.clone();
        fresh.insert("iat".into(), now.into());
        fresh.insert("exp".into(), (now + (exp - iat).max(0)).into());
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &fresh, encoding).ok()
    }

    /// The sliding token of a verified one: minted at most once a second (within a second
    /// the same claims give the same token).
    fn refreshed_of(&self, v: &Verified) -> Option<String> {
        let now = chrono::Utc::now().timestamp();
        let mut last = v.refreshed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, token)) = last.as_ref().filter(|(at, _)| *at == now) {
            return Some(token.clone());
        }
        let token = self.refreshed_at(&v.claims, now)?;
        *last = Some((now, token.clone()));
        Some(token)
    }

    /// Verifies a token, or finds it verified before and checks its time claims again.
    fn verified(&self, token: &str) -> Result<std::sync::Arc<Verified>, ApiError> {
        self.verified_at(token, chrono::Utc::now().timestamp())
    }

    fn verified_at(&self, token: &str, now: i64) -> Result<std::sync::Arc<Verified>, ApiError> {
        if let Some(v) = self.verified.get(token) {
            if v.exp < now - LEEWAY_SECS {
                return Err(ApiError::unauthorized("token expired"));
            }
            if v.nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECS) {
                return Err(ApiError::unauthorized("token not valid yet"));
            }
            return Ok(v);
        }
        let claims = self.verify(token)?;
        let sub = claims.get("sub").and_then(Value::as_str).ok_or_else(|| ApiError::unauthorized("token lacks sub"))?;
        let user = UserId::new(sub).map_err(|_| ApiError::unauthorized("token sub is not a valid user id"))?;
        let orgs: HashMap<String, Vec<Permission>> = claims
            .get("orgs")
            .cloned()
            .map(serde_json::from_value::<BTreeMap<String, Vec<String>>>)
            .transpose()
            .map_err(|_| ApiError::unauthorized("token orgs claim is malformed"))?
            .unwrap_or_default()
            .into_iter()
            .map(|(org, perms)| (org, perms.iter().filter_map(|p| Permission::parse(p)).collect()))
            .collect();
        let v = std::sync::Arc::new(Verified {
            user,
            org_claim: claims.get("org").and_then(Value::as_str).map(str::to_owned),
            orgs,
            exp: claims.get("exp").and_then(Value::as_i64).ok_or_else(|| ApiError::unauthorized("token invalid"))?,
            nbf: claims.get("nbf").and_then(Value::as_i64),
            claims,
            refreshed: std::sync::Mutex::new(None),
        });
        self.verified.put(token, std::sync::Arc::clone(&v));
        Ok(v)
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
    pub(crate) fn from_request_sync(req: &HttpRequest) -> Result<Self, ApiError> {
        let state =
            req.app_data::<actix_web::web::Data<AppState>>().ok_or_else(|| ApiError::internal("no app state"))?;
        let token = bearer(req).ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        let v = state.auth.verified(token)?;
        let org = match header_org(req)? {
            Some(o) => o,
            None => {
                let claim = v.org_claim.as_deref().ok_or_else(|| {
                    ApiError::bad_field(
                        ORG_HEADERS[0],
                        "no organization: send X-Organization-Id or use a token with an org claim",
                    )
                })?;
                OrgId::new(claim).map_err(|_| ApiError::unauthorized("token org is not a valid organization id"))?
            }
        };
        let Some(perms) = v.orgs.get(org.as_str()) else {
            return Err(ApiError::new(
                actix_web::http::StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                "the token does not grant access to this organization",
            ));
        };
        let actor = Actor::new(v.user.clone(), org, perms.iter().copied());
        if let Some(t) = state.auth.refreshed_of(&v) {
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
    fn a_token_verified_before_is_still_refused_once_expired_or_before_nbf() -> Result<(), String> {
        let auth = AuthConfig::hs256(b"secret", true);
        let now = chrono::Utc::now().timestamp();
        let mut claims = dev_claims("u-1", "acme", &["media:read".into()], 60);
        claims.insert("nbf".into(), now.into());
        let token = auth.mint(&claims)?;
        let first = auth.verified_at(&token, now).map_err(|e| e.to_string())?;
        assert_eq!(first.orgs.get("acme").map(Vec::len), Some(1));
        assert!(auth.verified.get(&token).is_some(), "kept for the next request");
        // The same text later: the kept verdict's time claims are checked again.
        assert!(auth.verified_at(&token, now + 60 + LEEWAY_SECS).is_ok(), "within the leeway");
        let late = auth.verified_at(&token, now + 61 + LEEWAY_SECS).map(|_| ()).map_err(|e| e.to_string());
        assert!(late.is_err_and(|e| e.contains("token expired")));
        let early = auth.verified_at(&token, now - 1 - LEEWAY_SECS).map(|_| ()).map_err(|e| e.to_string());
        assert!(early.is_err_and(|e| e.contains("not valid yet")));
        // A token with one character changed is another token: its signature is checked.
        let mut forged = token.clone();
        let last = forged.pop().ok_or("empty token")?;
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert!(auth.verified_at(&forged, now).is_err());
        Ok(())
    }

    #[test]
    fn the_sliding_token_is_minted_once_a_second() -> Result<(), String> {
        let auth = AuthConfig::hs256(b"secret", true);
        let token = auth.mint(&dev_claims("u-1", "acme", &["media:read".into()], 60))?;
        let v = auth.verified(&token).map_err(|e| e.to_string())?;
        let a = auth.refreshed_of(&v).ok_or("no refresh")?;
        let kept = v.refreshed.lock().map_err(|e| e.to_string())?.clone().ok_or("not kept")?;
        assert_eq!(kept.1, a);
        // A sliding token minted in another second is minted afresh, not served stale.
        *v.refreshed.lock().map_err(|e| e.to_string())? = Some((kept.0 - 5, "stale".into()));
        assert_ne!(auth.refreshed_of(&v).as_deref(), Some("stale"));
        let off = AuthConfig::hs256(b"secret", false);
        let v = off.verified(&token).map_err(|e| e.to_string())?;
        assert!(off.refreshed_of(&v).is_none(), "refresh off: no sliding token");
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
        let now = chrono::Utc::now().timestamp();
        let fresh = auth.refreshed_at(&c, now).ok_or("no refresh")?;
        let got = auth.verify(&fresh).map_err(|e| e.to_string())?;
        let (iat, exp) = (got["iat"].as_i64().unwrap_or_default(), got["exp"].as_i64().unwrap_or_default());
        assert_eq!(exp - iat, 3600);
        assert!(iat > old_iat);
        assert_eq!(got["orgs"], c["orgs"]);
        assert!(AuthConfig::hs256(b"secret", false).refreshed_at(&c, now).is_none());
        Ok(())
    }
}
