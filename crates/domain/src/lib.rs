//! mediabox-domain: the entities, rules, use cases and ports of mediabox. No IO lives here:
//! every outside concern (database, blob store, clock) is a port in [`ports`], implemented
//! by the adapter crates and mocked (feature `mocks`) in tests.

pub mod actor;
pub mod catalog;
pub mod error;
pub mod event;
pub mod hashing;
pub mod ids;
pub mod kept;
pub mod media;
pub mod page;
pub mod ports;
pub mod render;
pub mod rendition;
pub mod sniff;
pub mod upload;

pub use actor::{Actor, Permission};
pub use error::{Forbidden, RepoError, StoreError};
pub use ids::{EventId, MediaId, OrgId, UploadId, UserId};
