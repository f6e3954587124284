//! Newtype identifiers. Constructors check their invariants, so a value of one of these
//! types is always valid.

use std::fmt;

/// An identifier that was empty, too long, or not a positive integer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct InvalidId {
    pub kind: &'static str,
    pub reason: &'static str,
}

/// A text id's length limit, in characters.
pub const ID_MAX_CHARS: usize = 128;

fn check_text(kind: &'static str, s: &str) -> Result<(), InvalidId> {
    if s.is_empty() {
        return Err(InvalidId { kind, reason: "empty" });
    }
    if s.chars().count() > ID_MAX_CHARS {
        return Err(InvalidId { kind, reason: "longer than 128 characters" });
    }
    if s.chars().any(char::is_control) {
        return Err(InvalidId { kind, reason: "contains control characters" });
    }
    Ok(())
}

macro_rules! text_id {
    ($(#[$m:meta])* $name:ident, $kind:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// # Errors
            /// [`InvalidId`] when the string is empty, over 128 bytes or holds control characters.
            pub fn new(s: impl Into<String>) -> Result<Self, InvalidId> {
                let s = s.into();
                check_text($kind, &s)?;
                Ok(Self(s))
            }
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// An organization (tenant). Every resource belongs to exactly one.
    OrgId,
    "organization id"
);
text_id!(
    /// A user, the `sub` claim of the identity provider's token. Opaque.
    UserId,
    "user id"
);

macro_rules! int_id {
    ($(#[$m:meta])* $name:ident, $kind:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(i64);

        impl $name {
            /// # Errors
            /// [`InvalidId`] when the value is not a positive integer.
            pub fn new(v: i64) -> Result<Self, InvalidId> {
                if v <= 0 {
                    return Err(InvalidId { kind: $kind, reason: "not a positive integer" });
                }
                Ok(Self(v))
            }
            #[must_use]
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

int_id!(
    /// The integer key of a media (the v2 API's id).
    MediaId,
    "media id"
);
int_id!(
    /// The integer key of an event.
    EventId,
    "event id"
);

/// A chunked upload's id: a random uuid, so it cannot be guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UploadId(uuid::Uuid);

impl UploadId {
    #[must_use]
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4())
    }
    #[must_use]
    pub fn from_uuid(u: uuid::Uuid) -> Self {
        Self(u)
    }
    #[must_use]
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.simple())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_what_they_cannot_hold() {
        assert!(MediaId::new(0).is_err());
        assert!(MediaId::new(-3).is_err());
        assert_eq!(MediaId::new(7).map(MediaId::get), Ok(7));
        assert!(OrgId::new("").is_err());
        assert!(UserId::new("a\nb").is_err());
        assert!(UserId::new("x".repeat(129)).is_err());
        assert_eq!(OrgId::new("acme").map(|o| o.to_string()), Ok("acme".to_owned()));
    }
}
