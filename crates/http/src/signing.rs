//! Signed, expiring `file` URLs: an HMAC-SHA256 over organization, media id and expiry,
//! so that an `<img>` tag loads a photo without a bearer header and a link stops working
//! when it expires.

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use mediabox_domain::{MediaId, OrgId};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Signs and checks file URLs.
pub struct UrlSigner {
    key: Vec<u8>,
    ttl: chrono::Duration,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl UrlSigner {
    #[must_use]
    pub fn new(key: &[u8], ttl: chrono::Duration) -> Self {
        Self { key: key.to_vec(), ttl }
    }

    fn mac(&self, org: &OrgId, id: MediaId, expires: i64) -> HmacSha256 {
        #[allow(clippy::expect_used)]
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(format!("{org}\n{id}\n{expires}").as_bytes());
        mac
    }

    /// The query string of a signed URL for this media, valid from `now` for the TTL.
    #[must_use]
    pub fn query(&self, org: &OrgId, id: MediaId, now: DateTime<Utc>) -> String {
        let expires = (now + self.ttl).timestamp();
        let sig = hex::encode(self.mac(org, id, expires).finalize().into_bytes());
        let org_q: String = form_urlencoded::byte_serialize(org.as_str().as_bytes()).collect();
        format!("org={org_q}&expires={expires}&signature={sig}")
    }

    /// Whether `signature` is this signer's for the media and `expires` is still ahead.
    #[must_use]
    pub fn verify(&self, org: &OrgId, id: MediaId, expires: i64, signature: &str, now: DateTime<Utc>) -> bool {
        if expires < now.timestamp() {
            return false;
        }
        let Ok(sig) = hex::decode(signature) else { return false };
        self.mac(org, id, expires).verify_slice(&sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_for_its_media_until_it_expires() -> Result<(), Box<dyn std::error::Error>> {
        let s = UrlSigner::new(b"k", chrono::Duration::seconds(60));
        let (org, id, now) = (OrgId::new("acme")?, MediaId::new(7)?, Utc::now());
        let q = s.query(&org, id, now);
        let parts: std::collections::HashMap<_, _> = form_urlencoded::parse(q.as_bytes()).into_owned().collect();
        let exp: i64 = parts["expires"].parse()?;
        let sig = &parts["signature"];
        assert!(s.verify(&org, id, exp, sig, now));
        assert!(!s.verify(&org, MediaId::new(8)?, exp, sig, now), "another media");
        assert!(!s.verify(&OrgId::new("beta")?, id, exp, sig, now), "another organization");
        assert!(!s.verify(&org, id, exp + 1, sig, now), "a stretched expiry");
        assert!(!s.verify(&org, id, exp, sig, now + chrono::Duration::seconds(61)), "expired");
        assert!(!UrlSigner::new(b"other", chrono::Duration::seconds(60)).verify(&org, id, exp, sig, now));
        Ok(())
    }
}
