//! Errors shared by every use case. Policy: each use case has its own `thiserror` enum
//! naming what can go wrong in the user's terms; adapter failures arrive as [`RepoError`] or
//! [`StoreError`] and are wrapped, never inspected for strings. The http crate alone maps
//! these to status codes.

use crate::actor::Permission;

/// The caller may not do this. `missing` lists permissions when that is the cause; it is
/// empty when the cause is a rule (not a manager, not the uploader).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Forbidden {
    pub missing: Vec<Permission>,
    pub reason: String,
}

impl Forbidden {
    #[must_use]
    pub fn missing(missing: Vec<Permission>) -> Self {
        let names: Vec<&str> = missing.iter().map(|p| p.as_str()).collect();
        Self { reason: format!("missing permissions: {}", names.join(", ")), missing }
    }
    #[must_use]
    pub fn rule(reason: impl Into<String>) -> Self {
        Self { missing: Vec::new(), reason: reason.into() }
    }
}

/// A repository failure. Adapters translate their own errors into these.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The database cannot be reached now (pool timeout, connection refused). Retryable.
    #[error("database unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Anything else; the source is logged, never shown to clients.
    #[error("database error")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A blob store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached now. Retryable.
    #[error("storage unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The object asked for does not exist.
    #[error("object not found")]
    NotFound,
    /// The bytes sent by the client could not be read (connection dropped mid-chunk).
    #[error("request body could not be read")]
    Body(#[source] std::io::Error),
    /// An upload's staging holds fewer bytes than its row recorded: written without a
    /// sync (`MEDIABOX_FSYNC=false`) and lost in a machine crash. The upload cannot go on.
    #[error("the store holds {have} of the upload's {recorded} recorded bytes")]
    Lost { have: u64, recorded: u64 },
    #[error("storage error")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}
