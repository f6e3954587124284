//! Test databases: a fresh SQLite file, or a fresh database on the PostgreSQL server named
//! by `MEDIABOX_TEST_PG_URL` (the Makefile starts a throwaway cluster and sets it when the
//! variable is unset and `initdb` exists). Without a server PostgreSQL tests say loudly
//! that they skipped, unless `MEDIABOX_REQUIRE_PG=1`, which makes them fail instead.

#![allow(clippy::expect_used, clippy::panic)]

use diesel::{Connection, RunQueryDsl};

/// A database that lives as long as the value.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// A new SQLite database in a temporary directory.
    #[must_use]
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        Self { url, _dir: Some(dir), pg: None }
    }

    /// A new PostgreSQL database, or `None` (after a loud message) when no server is
    /// configured and `MEDIABOX_REQUIRE_PG` is not set.
    ///
    /// # Panics
    /// When `MEDIABOX_REQUIRE_PG=1` and no server is configured, or the server refuses.
    #[must_use]
    pub fn postgres(test: &str) -> Option<Self> {
        let Some(admin) = std::env::var("MEDIABOX_TEST_PG_URL").ok().filter(|s| !s.is_empty()) else {
            assert!(
                std::env::var("MEDIABOX_REQUIRE_PG").as_deref() != Ok("1"),
                "MEDIABOX_REQUIRE_PG=1 but MEDIABOX_TEST_PG_URL is not set: PostgreSQL tests cannot run"
            );
            eprintln!("!!! SKIPPED (PostgreSQL): {test}: MEDIABOX_TEST_PG_URL is not set and no cluster was started");
            return None;
        };
        let name = format!("mb_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = diesel::pg::PgConnection::establish(&admin).expect("connect to MEDIABOX_TEST_PG_URL");
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn).expect("create test database");
        let url = replace_db(&admin, &name);
        Some(Self { url, _dir: None, pg: Some((admin, name)) })
    }
}

/// `admin` with its database name replaced by `name`.
fn replace_db(admin: &str, name: &str) -> String {
    let (base, query) = admin.split_once('?').map_or((admin, None), |(b, q)| (b, Some(q)));
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.pg {
            if let Ok(mut conn) = diesel::pg::PgConnection::establish(admin) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn);
            }
        }
    }
}

/// A new upload of `user` in `org` at offset 0 of 10 bytes, not yet stored, expiring in an
/// hour.
#[must_use]
pub fn new_upload(org: &mediabox_domain::OrgId, user: &mediabox_domain::UserId) -> mediabox_domain::upload::Upload {
    let (sha256_state, md5_state) = mediabox_domain::hashing::Hashes::default().to_state();
    let now = chrono::Utc::now();
    mediabox_domain::upload::Upload {
        id: mediabox_domain::UploadId::random(),
        org: org.clone(),
        user: user.clone(),
        filename: "a.jpg".into(),
        offset: 0,
        total: Some(10),
        sha256_state,
        md5_state,
        created_at: now,
        expires_at: now + chrono::Duration::hours(1),
        media: None,
        staging_state: None,
        event: None,
        concat: None,
    }
}

#[cfg(test)]
mod tests {
    use super::replace_db;

    #[test]
    fn the_database_name_is_replaced_and_options_kept() {
        assert_eq!(replace_db("postgres://u@h:1/test", "x"), "postgres://u@h:1/x");
        assert_eq!(replace_db("postgres://u@h:1/test?sslmode=disable", "x"), "postgres://u@h:1/x?sslmode=disable");
        assert_eq!(replace_db("postgres://u@h:1", "x"), "postgres://u@h:1/x");
    }
}
