//! A bulk delete costs the same number of SQL statements whatever the number of ids
//! (SPEC 5: no statement per id). Counted by the count `/metrics` shows
//! ([`statements_sent`]: diesel's instrumentation on every connection, which sees every
//! statement sent, transaction control included). Its own test binary: the count is
//! process-wide.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mediabox_domain::event::NewEvent;
use mediabox_domain::media::{blob_key, Deleter, MediaKind, NewMedia};
use mediabox_domain::ports::{EventRepository, MediaRepository, UploadRepository};
use mediabox_domain::upload::Upload;
use mediabox_domain::{OrgId, UploadId, UserId};
use mediabox_persistence::testing::{new_upload, TestDb};
use mediabox_persistence::{statements_sent, Db, DieselEventRepository, DieselMediaRepository, DieselUploadRepository};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

async fn statements_for(db: &Db, n: usize) -> Result<(usize, usize), Box<dyn std::error::Error + Send + Sync>> {
    let (org, user) = (OrgId::new("acme")?, UserId::new("u-1")?);
    let uploads = DieselUploadRepository::new(db.clone());
    let media = Arc::new(DieselMediaRepository::new(db.clone()));
    let events = DieselEventRepository::new(db.clone());
    let event = events
        .create(
            &NewEvent {
                org: org.clone(),
                title: "e".into(),
                description: None,
                starts_at: None,
                ends_at: None,
                created_at: Utc::now(),
            },
            &user,
        )
        .await?;
    let mut uuids = Vec::new();
    for i in 0..n {
        let up = Upload { offset: 1, total: None, ..new_upload(&org, &user) };
        uploads.create(&up, uuid::Uuid::new_v4(), Utc::now()).await?;
        let sha = format!("{:064x}", i + n * 1_000_000);
        let new = NewMedia {
            uuid: uuid::Uuid::new_v4(),
            org: org.clone(),
            uploaded_by: user.clone(),
            filename: "a".into(),
            content_type: "image/png".into(),
            size: 1,
            sha256: sha.clone(),
            md5: "0".repeat(32),
            kind: MediaKind::Image,
            width: None,
            height: None,
            created_at: Utc::now(),
            blob_key: blob_key(up.id),
        };
        let m = uploads.complete(up.id, &new).await?;
        if i % 2 == 0 {
            events.add_to_gallery(event.id, m.id).await?;
        }
        uuids.push(m.uuid);
    }
    let deleter = Deleter { org, user, any: true };
    let before = statements_sent();
    let out = media.delete(&deleter, &uuids).await?;
    let used = usize::try_from(statements_sent() - before)?;
    Ok((used, out.deleted.len()))
}

async fn check(t: TestDb) -> TestResult {
    let db = Db::connect(&t.url, 4, Duration::from_secs(5))?;
    db.migrate()?;
    let (small, n_small) = statements_for(&db, 10).await?;
    let (large, n_large) = statements_for(&db, 1000).await?;
    assert_eq!((n_small, n_large), (10, 1000));
    // A pooled connection may be checked (one `SELECT 1`) when it is taken from the pool.
    assert!(small.abs_diff(large) <= 1, "10 ids took {small} statements, 1000 took {large}");
    assert!(large <= 16, "{large} statements");
    eprintln!("bulk delete: {small} statements for 10 ids, {large} for 1000 ids");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_delete_takes_a_bounded_number_of_statements_on_sqlite() -> TestResult {
    check(TestDb::sqlite()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_delete_takes_a_bounded_number_of_statements_on_postgres() -> TestResult {
    match TestDb::postgres("a_bulk_delete_takes_a_bounded_number_of_statements_on_postgres") {
        Some(t) => check(t).await,
        None => Ok(()),
    }
}

async fn reused(t: TestDb) -> TestResult {
    // One connection, so the second lookup gets the connection the first one used.
    let db = Db::connect(&t.url, 1, Duration::from_secs(5))?;
    db.migrate()?;
    let uploads = DieselUploadRepository::new(db.clone());
    uploads.find(UploadId::random()).await?;
    let before = statements_sent();
    uploads.find(UploadId::random()).await?;
    let used = statements_sent() - before;
    assert_eq!(used, 1, "a connection used just now is handed out without a `SELECT 1` first");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_used_just_now_is_not_pinged_again_on_sqlite() -> TestResult {
    reused(TestDb::sqlite()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_used_just_now_is_not_pinged_again_on_postgres() -> TestResult {
    match TestDb::postgres("a_connection_used_just_now_is_not_pinged_again_on_postgres") {
        Some(t) => reused(t).await,
        None => Ok(()),
    }
}

/// A write that is one statement is sent alone on PostgreSQL: no `BEGIN` and `COMMIT`
/// around it (each a round trip; a small file's upload makes several such writes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_statement_write_is_sent_without_a_transaction_on_postgres() -> TestResult {
    use mediabox_domain::ports::UploadRepository;
    let Some(t) = TestDb::postgres("a_one_statement_write_is_sent_without_a_transaction_on_postgres") else {
        return Ok(());
    };
    let db = Db::connect(&t.url, 1, Duration::from_secs(5))?;
    db.migrate()?;
    let uploads = DieselUploadRepository::new(db.clone());
    let up = Upload { total: Some(3), ..new_upload(&OrgId::new("acme")?, &UserId::new("u-1")?) };
    uploads.find(up.id).await?;
    let before = statements_sent();
    uploads.insert(&up).await?;
    assert_eq!(statements_sent() - before, 1, "the insert alone");
    let before = statements_sent();
    let lease = uuid::Uuid::new_v4();
    assert!(uploads.acquire_lease(up.id, 0, lease, Utc::now() + chrono::Duration::minutes(1), Utc::now()).await?);
    uploads.release_lease(up.id, lease).await?;
    assert_eq!(statements_sent() - before, 2, "one UPDATE each");
    Ok(())
}
