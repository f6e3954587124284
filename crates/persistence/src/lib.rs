//! mediabox-persistence: diesel adapters of the domain's repository ports, over one
//! `MultiConnection` that speaks SQLite and PostgreSQL. Every call runs on the blocking
//! pool through [`Db`]; transactions live where the domain's atomic rules are.

mod catalog_repo;
mod connection;
mod event_repo;
mod executor;
mod media_repo;
mod rows;
mod schema;
#[cfg(feature = "testing")]
pub mod testing;
mod upload_repo;

pub use catalog_repo::DieselCatalogRepository;
pub use connection::{statements_sent, AnyConnection, ConnectError, Db};
pub use event_repo::DieselEventRepository;
pub use media_repo::DieselMediaRepository;
pub use upload_repo::DieselUploadRepository;
