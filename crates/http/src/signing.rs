//! Signed, expiring `file` URLs: an HMAC-SHA256 over organization, media id, expiry and
//! (for a rendition) the variant, so that an `<img>` tag loads a photo without a bearer
//! header, a link stops working when it expires, and a thumbnail's link never opens the
//! original.

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use mediabox_domain::rendition::Variant;
use mediabox_domain::{MediaId, OrgId};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Signs and checks file URLs.
pub struct UrlSigner {
    /// Keyed once: each URL clones it instead of hashing the key again (a gallery page
    /// signs 150 URLs).
    keyed: HmacSha256,
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
        #[allow(clippy::expect_used)]
        let keyed = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
        Self { keyed, ttl }
    }

    fn mac(&self, org: &OrgId, id: MediaId, expires: i64, variant: Option<Variant>) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(format!("{org}\n{id}\n{expires}").as_bytes());
        if let Some(v) = variant {
            mac.update(format!("\n{}", v.as_str()).as_bytes());
        }
        mac
    }

    /// The query string of a signed URL for this media (or its `variant`), valid from
    /// `now` for the TTL.
    #[must_use]
    pub fn query(&self, org: &OrgId, id: MediaId, variant: Option<Variant>, now: DateTime<Utc>) -> String {
        let expires = (now + self.ttl).timestamp();
        let sig = hex::encode(self.mac(org, id, expires, variant).finalize().into_bytes());
        let org_q: String = form_urlencoded::byte_serialize(org.as_str().as_bytes()).collect();
        let variant_q = variant.map(|v| format!("variant={}&", v.as_str())).unwrap_or_default();
        format!("{variant_q}org={org_q}&expires={expires}&signature={sig}")
    }

    /// Whether `signature` is this signer's for the media (or its `variant`) and
    /// `expires` is still ahead.
    #[must_use]
    pub fn verify(&self, link: &SignedLink<'_>, now: DateTime<Utc>) -> bool {
        if link.expires < now.timestamp() {
            return false;
        }
        let Ok(sig) = hex::decode(link.signature) else { return false };
        self.mac(link.org, link.id, link.expires, link.variant).verify_slice(&sig).is_ok()
    }
}

/// What a signed link names, as it came in.
#[derive(Debug, Clone, Copy)]
pub struct SignedLink<'a> {
    pub org: &'a OrgId,
    pub id: MediaId,
    pub variant: Option<Variant>,
    pub expires: i64,
    pub signature: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_for_its_media_until_it_expires() -> Result<(), Box<dyn std::error::Error>> {
        let s = UrlSigner::new(b"k", chrono::Duration::seconds(60));
        let (org, id, now) = (OrgId::new("acme")?, MediaId::new(7)?, Utc::now());
        let q = s.query(&org, id, None, now);
        let parts: std::collections::HashMap<_, _> = form_urlencoded::parse(q.as_bytes()).into_owned().collect();
        let exp: i64 = parts["expires"].parse()?;
        let sig = &parts["signature"];
        let link = SignedLink { org: &org, id, variant: None, expires: exp, signature: sig };
        assert!(s.verify(&link, now));
        assert!(!s.verify(&SignedLink { id: MediaId::new(8)?, ..link }, now), "another media");
        let beta = OrgId::new("beta")?;
        assert!(!s.verify(&SignedLink { org: &beta, ..link }, now), "another organization");
        assert!(!s.verify(&SignedLink { expires: exp + 1, ..link }, now), "a stretched expiry");
        assert!(!s.verify(&link, now + chrono::Duration::seconds(61)), "expired");
        assert!(!UrlSigner::new(b"other", chrono::Duration::seconds(60)).verify(&link, now));
        assert!(
            !s.verify(&SignedLink { variant: Some(Variant::Thumb), ..link }, now),
            "the original's link opens no rendition"
        );
        let tq = s.query(&org, id, Some(Variant::Thumb), now);
        let tparts: std::collections::HashMap<_, _> = form_urlencoded::parse(tq.as_bytes()).into_owned().collect();
        assert_eq!(tparts["variant"], "thumb");
        let thumb = SignedLink { variant: Some(Variant::Thumb), signature: &tparts["signature"], ..link };
        assert!(s.verify(&thumb, now));
        assert!(!s.verify(&SignedLink { variant: None, ..thumb }, now), "a thumbnail's link never opens the original");
        assert!(!s.verify(&SignedLink { variant: Some(Variant::Preview), ..thumb }, now));
        Ok(())
    }
}
