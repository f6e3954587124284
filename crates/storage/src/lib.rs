//! mediabox-storage: blob store adapters of the domain's `BlobStore` port.
//! [`FsBlobStore`] keeps blobs on a local filesystem (the embedded default);
//! [`S3BlobStore`] in one bucket of any S3-compatible service. Both pass one contract
//! test suite (`tests/contract.rs`).

mod fs;
mod s3;
#[cfg(feature = "testing")]
pub mod testing;

pub use fs::FsBlobStore;
pub use s3::{S3BlobStore, S3Config};
