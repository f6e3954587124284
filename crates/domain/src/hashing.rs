//! SHA-256 and MD5 computed while bytes stream, with midstates that serialize into the
//! upload's row after every chunk, so any instance can take the next chunk and complete
//! never re-reads the file.

use md5::Md5;
use sha2::digest::common::hazmat::SerializableState;
use sha2::{Digest, Sha256};

/// Both running digests of one upload.
#[derive(Clone, Default)]
pub struct Hashes {
    sha256: Sha256,
    md5: Md5,
}

/// A stored midstate could not be read back (corrupt or from another format).
#[derive(Debug, thiserror::Error)]
#[error("stored hash state is invalid")]
pub struct BadHashState;

impl Hashes {
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        self.md5.update(bytes);
    }

    /// The midstates as bytes: (sha256, md5).
    #[must_use]
    pub fn to_state(&self) -> (Vec<u8>, Vec<u8>) {
        (self.sha256.serialize().to_vec(), self.md5.serialize().to_vec())
    }

    /// # Errors
    /// [`BadHashState`] when either state has the wrong length or content.
    pub fn from_state(sha256: &[u8], md5: &[u8]) -> Result<Self, BadHashState> {
        let s = sha256.try_into().map_err(|_| BadHashState)?;
        let m = md5.try_into().map_err(|_| BadHashState)?;
        Ok(Self {
            sha256: Sha256::deserialize(s).map_err(|_| BadHashState)?,
            md5: Md5::deserialize(m).map_err(|_| BadHashState)?,
        })
    }

    /// Lower-case hex digests: (sha256, md5).
    #[must_use]
    pub fn finish(self) -> (String, String) {
        (hex::encode(self.sha256.finalize()), hex::encode(self.md5.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_resumed_from_its_state_equals_one_computed_at_once() -> Result<(), BadHashState> {
        let mut a = Hashes::default();
        a.update(b"hello ");
        let (s, m) = a.to_state();
        let mut b = Hashes::from_state(&s, &m)?;
        b.update(b"world");
        let (sha, md5) = b.finish();
        assert_eq!(sha, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
        assert_eq!(md5, "5eb63bbbe01eeed093cb22bb8f5acdc3");
        Ok(())
    }

    #[test]
    fn a_truncated_state_is_refused() {
        let (s, m) = Hashes::default().to_state();
        assert!(Hashes::from_state(&s[1..], &m).is_err());
    }
}
