//! mediabox-storage: blob store adapters. [`FsBlobStore`] keeps blobs on a local
//! filesystem, content-addressed by SHA-256; S3 comes later behind the same port.

mod fs;

pub use fs::FsBlobStore;
