//! The repositories on a real SQLite and a real PostgreSQL database.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mediabox_domain::catalog::{ItemDeleted, ItemKind, ItemWrite, WriteRejected};
use mediabox_domain::event::{EventPatch, NewEvent, RemoveManagerOutcome};
use mediabox_domain::media::{Deleter, Reference};
use mediabox_domain::media::{MediaKind, NewMedia};
use mediabox_domain::page::{Cursor, PageRequest};
use mediabox_domain::ports::CatalogRepository;
use mediabox_domain::ports::{EventRepository, MediaRepository, UploadRepository};
use mediabox_domain::upload::{ChunkAdvance, Upload};
use mediabox_domain::{MediaId, OrgId, UploadId, UserId};
use mediabox_persistence::testing::{self, TestDb};
use mediabox_persistence::{
    Db, DieselCatalogRepository, DieselEventRepository, DieselMediaRepository, DieselUploadRepository,
};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

struct Repos {
    _db: TestDb,
    uploads: Arc<DieselUploadRepository>,
    media: Arc<DieselMediaRepository>,
    events: Arc<DieselEventRepository>,
    catalog: Arc<DieselCatalogRepository>,
}

fn repos(t: TestDb) -> Result<Repos, Box<dyn std::error::Error + Send + Sync>> {
    let db = Db::connect(&t.url, 8, Duration::from_secs(5))?;
    db.migrate()?;
    Ok(Repos {
        _db: t,
        uploads: Arc::new(DieselUploadRepository::new(db.clone())),
        media: Arc::new(DieselMediaRepository::new(db.clone())),
        events: Arc::new(DieselEventRepository::new(db.clone())),
        catalog: Arc::new(DieselCatalogRepository::new(db)),
    })
}

macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() -> super::TestResult {
                super::$name(super::repos(mediabox_persistence::testing::TestDb::sqlite())?).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() -> super::TestResult {
                match mediabox_persistence::testing::TestDb::postgres(concat!(stringify!($name), "::postgres")) {
                    Some(db) => super::$name(super::repos(db)?).await,
                    None => Ok(()),
                }
            }
        }
    )*};
}

on_both_databases!(
    an_upload_advances_only_under_its_lease,
    an_upload_inserted_with_its_first_chunk_holds_no_lease,
    a_complete_leases_only_its_owners_unfinished_unheld_upload,
    staging_is_recorded_only_under_the_lease_and_never_after_an_abandon,
    completing_twice_concurrently_makes_one_media,
    media_of_another_organization_is_not_found,
    gallery_pages_follow_the_order_added,
    concurrent_gallery_adds_all_land_once,
    removing_from_the_gallery_is_all_or_nothing_and_ignores_strangers,
    the_last_manager_cannot_be_removed,
    deleting_an_event_keeps_its_media,
    events_update_and_list,
    identical_bytes_share_a_blob_released_with_their_last_media,
    deleting_media_takes_them_out_of_galleries_and_keeps_counts_right,
    referenced_media_are_not_deleted_and_forbidden_ones_are_listed,
    a_product_with_variants_is_not_deleted_and_gone_media_are_refused,
    concurrent_deletes_of_media_sharing_a_blob_release_it_once,
    progress_keeps_the_lease_and_moves_it_on,
    a_final_upload_claims_its_parts_all_or_nothing,
);

async fn progress_keeps_the_lease_and_moves_it_on(r: Repos) -> TestResult {
    let mut up = new_upload();
    up.event = Some(mediabox_domain::EventId::new(42)?);
    r.uploads.insert(&up).await?;
    let (lease, other) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let now = Utc::now();
    assert!(r.uploads.acquire_lease(up.id, 0, lease, now + chrono::Duration::seconds(1), now).await?);
    let adv = ChunkAdvance {
        offset: 4,
        total: Some(10),
        sha256_state: vec![1; 104],
        md5_state: vec![2; 88],
        staging_state: None,
    };
    assert!(!r.uploads.progress(up.id, other, &adv, now).await?, "only the lease holder records progress");
    let later = now + chrono::Duration::minutes(10);
    assert!(r.uploads.progress(up.id, lease, &adv, later).await?);
    let stored = r.uploads.find(up.id).await?.ok_or("upload gone")?;
    assert_eq!((stored.offset, stored.event.map(mediabox_domain::EventId::get)), (4, Some(42)));
    // Still held, now until `later`: another request cannot take it at the new offset.
    let soon = now + chrono::Duration::minutes(5);
    assert!(!r.uploads.acquire_lease(up.id, 4, other, later, soon).await?);
    assert!(r.uploads.advance(up.id, lease, &adv).await?, "the holder still holds it");
    Ok(())
}

async fn a_final_upload_claims_its_parts_all_or_nothing(r: Repos) -> TestResult {
    use mediabox_domain::upload::Concat;
    let part = |user: &str| {
        let mut p = new_upload();
        p.user = self::user(user);
        p.concat = Some(Concat::Partial { final_upload: None });
        p
    };
    let (a, b, strangers) = (part("u-1"), part("u-1"), part("u-2"));
    for p in [&a, &b, &strangers] {
        r.uploads.insert(p).await?;
    }
    let now = Utc::now();
    let final_of = |parts: Vec<UploadId>| {
        let mut f = new_upload();
        f.total = None;
        f.concat = Some(Concat::Final { parts });
        f
    };
    // Another user's part: nothing is claimed, no final stored.
    let refused = final_of(vec![a.id, strangers.id]);
    assert!(!r.uploads.insert_final(&refused, now).await?);
    assert!(r.uploads.find(refused.id).await?.is_none());
    assert_eq!(r.uploads.find(a.id).await?.and_then(|u| u.concat), Some(Concat::Partial { final_upload: None }));
    let fin = final_of(vec![b.id, a.id]);
    assert!(r.uploads.insert_final(&fin, now).await?);
    assert_eq!(r.uploads.find(fin.id).await?.and_then(|u| u.concat), Some(Concat::Final { parts: vec![b.id, a.id] }));
    assert_eq!(
        r.uploads.find(a.id).await?.and_then(|u| u.concat),
        Some(Concat::Partial { final_upload: Some(fin.id) })
    );
    // A part claimed once is not claimed again.
    assert!(!r.uploads.insert_final(&final_of(vec![a.id]), now).await?);
    Ok(())
}

fn deleter(who: &str, any: bool) -> Deleter {
    Deleter { org: org(), user: user(who), any }
}

async fn identical_bytes_share_a_blob_released_with_their_last_media(r: Repos) -> TestResult {
    let sha = "12".repeat(32);
    let a = stored_bytes(&r, &org(), "u-1", &sha).await?;
    let b = stored_bytes(&r, &org(), "u-2", &sha).await?;
    assert_eq!(a.blob_key, b.blob_key, "the second upload reuses the first one's blob");
    let out = r.media.delete(&deleter("u-1", false), &[a.uuid]).await?;
    assert_eq!(out.deleted.len(), 1);
    assert!(out.released.is_empty(), "b still uses the blob");
    let out = r.media.delete(&deleter("u-2", false), &[b.uuid]).await?;
    assert_eq!(out.released, vec![a.blob_key.clone()]);
    // The same bytes again get a new key: removing the old file can never hit them.
    let c = stored_bytes(&r, &org(), "u-1", &sha).await?;
    assert_ne!(c.blob_key, a.blob_key);
    assert_eq!(r.media.unreferenced_blob_keys(&[a.blob_key.clone(), c.blob_key.clone()]).await?, vec![a.blob_key]);
    Ok(())
}

async fn deleting_media_takes_them_out_of_galleries_and_keeps_counts_right(r: Repos) -> TestResult {
    let (e1, e2) = (event(&r, "u-1").await?, event(&r, "u-1").await?);
    let (a, b, c) = (
        stored_media(&r, &org(), "u-1").await?,
        stored_media(&r, &org(), "u-1").await?,
        stored_media(&r, &org(), "u-1").await?,
    );
    for (e, m) in [(e1.id, a.id), (e1.id, b.id), (e1.id, c.id), (e2.id, a.id), (e2.id, c.id)] {
        r.events.add_to_gallery(e, m).await?;
    }
    let out = r.media.delete(&deleter("u-1", false), &[a.uuid, c.uuid, uuid::Uuid::new_v4()]).await?;
    assert_eq!(out.deleted.len(), 2);
    let g1 = r.events.gallery(e1.id, PageRequest::new(None, None)).await?;
    assert_eq!((g1.count, g1.items.iter().map(|(_, m)| m.id).collect::<Vec<_>>()), (1, vec![b.id]));
    assert_eq!(r.events.gallery(e2.id, PageRequest::new(None, None)).await?.count, 0);
    assert!(r.media.find(&org(), a.id).await?.is_none());
    Ok(())
}

async fn referenced_media_are_not_deleted_and_forbidden_ones_are_listed(r: Repos) -> TestResult {
    let (a, b) = (stored_media(&r, &org(), "u-1").await?, stored_media(&r, &org(), "u-2").await?);
    let w = ItemWrite { name: Some("Shoe".into()), product: None, medias: Some(vec![a.id]) };
    let p = r.catalog.create(ItemKind::Product, &org(), &w, Utc::now()).await?.map_err(|e| format!("{e:?}"))?;
    let vw = ItemWrite { name: Some("Red".into()), product: Some(p.id), medias: Some(vec![a.id]) };
    let v = r.catalog.create(ItemKind::Variant, &org(), &vw, Utc::now()).await?.map_err(|e| format!("{e:?}"))?;
    let out = r.media.delete(&deleter("u-1", false), &[a.uuid, b.uuid]).await?;
    assert!(out.deleted.is_empty());
    assert_eq!(out.referenced, vec![(a.uuid, vec![Reference::Product(p.id), Reference::Variant(v.id)])]);
    assert_eq!(out.forbidden, vec![b.uuid]);
    let stranger = Deleter { org: OrgId::new("beta")?, user: user("u-1"), any: true };
    assert_eq!(r.media.delete(&stranger, &[a.uuid, b.uuid]).await?, Default::default());
    // Unlisted, the media can go.
    let none = ItemWrite { name: None, product: None, medias: Some(vec![]) };
    r.catalog.update(ItemKind::Product, &org(), p.id, &none, Utc::now()).await?.map_err(|e| format!("{e:?}"))?;
    r.catalog.update(ItemKind::Variant, &org(), v.id, &none, Utc::now()).await?.map_err(|e| format!("{e:?}"))?;
    assert_eq!(r.media.delete(&deleter("u-1", false), &[a.uuid]).await?.deleted.len(), 1);
    Ok(())
}

async fn a_product_with_variants_is_not_deleted_and_gone_media_are_refused(r: Repos) -> TestResult {
    let a = stored_media(&r, &org(), "u-1").await?;
    let w = ItemWrite { name: Some("Shoe".into()), product: None, medias: Some(vec![a.id]) };
    let p = r.catalog.create(ItemKind::Product, &org(), &w, Utc::now()).await?.map_err(|e| format!("{e:?}"))?;
    assert_eq!(p.medias, vec![a.uuid]);
    let vw = ItemWrite { name: Some("Red".into()), product: Some(p.id), medias: None };
    let v = r.catalog.create(ItemKind::Variant, &org(), &vw, Utc::now()).await?.map_err(|e| format!("{e:?}"))?;
    assert_eq!(r.catalog.delete(ItemKind::Product, &org(), p.id).await?, ItemDeleted::HasVariants(vec![v.id]));
    assert_eq!(
        r.catalog.delete(ItemKind::Product, &org(), v.id).await?,
        ItemDeleted::NotFound,
        "a variant is not a product"
    );
    assert_eq!(r.catalog.delete(ItemKind::Variant, &org(), v.id).await?, ItemDeleted::Deleted);
    assert_eq!(r.catalog.delete(ItemKind::Product, &org(), p.id).await?, ItemDeleted::Deleted);
    let gone = ItemWrite { name: Some("x".into()), product: None, medias: Some(vec![MediaId::new(999_999)?]) };
    assert_eq!(r.catalog.create(ItemKind::Product, &org(), &gone, Utc::now()).await?, Err(WriteRejected::MediaGone));
    let orphan = ItemWrite { name: Some("x".into()), product: Some(p.id), medias: None };
    assert_eq!(
        r.catalog.create(ItemKind::Variant, &org(), &orphan, Utc::now()).await?,
        Err(WriteRejected::ProductGone)
    );
    let (items, total) = r.catalog.list(ItemKind::Product, &org(), 1, 30).await?;
    assert_eq!((items.len(), total), (0, 0));
    Ok(())
}

async fn concurrent_deletes_of_media_sharing_a_blob_release_it_once(r: Repos) -> TestResult {
    for round in 0..10 {
        let sha = format!("{round:02}").repeat(32);
        let a = stored_bytes(&r, &org(), "u-1", &sha).await?;
        let b = stored_bytes(&r, &org(), "u-1", &sha).await?;
        let (x, y) = (r.media.clone(), r.media.clone());
        let (ra, rb) = tokio::join!(
            tokio::spawn(async move { x.delete(&deleter("u-1", false), &[a.uuid]).await }),
            tokio::spawn(async move { y.delete(&deleter("u-1", false), &[b.uuid]).await }),
        );
        let (ra, rb) = (ra??, rb??);
        assert_eq!(ra.deleted.len() + rb.deleted.len(), 2);
        let mut released = ra.released;
        released.extend(rb.released);
        assert_eq!(released, vec![a.blob_key.clone()], "released exactly once");
    }
    Ok(())
}

fn org() -> OrgId {
    OrgId::new("acme").unwrap_or_else(|_| unreachable!())
}
fn user(u: &str) -> UserId {
    UserId::new(u).unwrap_or_else(|_| unreachable!())
}

fn new_upload() -> Upload {
    testing::new_upload(&org(), &user("u-1"))
}

fn new_media(org: &OrgId, by: &str) -> NewMedia {
    new_media_for(org, by, UploadId::random(), &"ab".repeat(32))
}

fn new_media_for(org: &OrgId, by: &str, upload: UploadId, sha: &str) -> NewMedia {
    NewMedia {
        uuid: uuid::Uuid::new_v4(),
        org: org.clone(),
        uploaded_by: user(by),
        filename: "a.jpg".into(),
        content_type: "image/jpeg".into(),
        size: 10,
        sha256: sha.to_owned(),
        md5: "cd".repeat(16),
        kind: MediaKind::Image,
        width: Some(4),
        height: Some(3),
        created_at: Utc::now(),
        blob_key: mediabox_domain::media::blob_key(upload),
    }
}

/// Stores a media through the one path that creates media: completing an upload.
async fn stored_media(
    r: &Repos,
    org: &OrgId,
    by: &str,
) -> Result<mediabox_domain::media::Media, Box<dyn std::error::Error + Send + Sync>> {
    stored_bytes(r, org, by, &uuid::Uuid::new_v4().simple().to_string().repeat(2)).await
}

/// A media whose bytes have this SHA-256 (media with equal digests share a blob).
async fn stored_bytes(
    r: &Repos,
    org: &OrgId,
    by: &str,
    sha: &str,
) -> Result<mediabox_domain::media::Media, Box<dyn std::error::Error + Send + Sync>> {
    let mut up = new_upload();
    up.org = org.clone();
    r.uploads.create(&up, uuid::Uuid::new_v4(), Utc::now()).await?;
    Ok(r.uploads.complete(up.id, &new_media_for(org, by, up.id, sha)).await?)
}

async fn an_upload_advances_only_under_its_lease(r: Repos) -> TestResult {
    let up = new_upload();
    let (lease, other) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let now = Utc::now();
    let until = now + chrono::Duration::minutes(10);
    r.uploads.create(&up, lease, until).await?;
    assert!(!r.uploads.acquire_lease(up.id, 0, other, until, now).await?, "a new upload is made holding its lease");
    assert!(!r.uploads.acquire_lease(up.id, 0, lease, until, now).await?, "a held lease is not taken twice");
    let adv = ChunkAdvance {
        offset: 4,
        total: Some(10),
        sha256_state: vec![1; 104],
        md5_state: vec![2; 88],
        staging_state: Some("parts: 1".into()),
    };
    assert!(!r.uploads.advance(up.id, other, &adv).await?, "only the lease holder advances");
    assert!(r.uploads.advance(up.id, lease, &adv).await?);
    let stored = r.uploads.find(up.id).await?.ok_or("upload gone")?;
    assert_eq!((stored.offset, stored.sha256_state.len()), (4, 104));
    assert!(!r.uploads.acquire_lease(up.id, 0, other, until, now).await?, "the old offset is refused");
    // A lease left by a crashed request expires.
    assert!(r.uploads.acquire_lease(up.id, 4, lease, now, now).await?);
    assert!(r.uploads.acquire_lease(up.id, 4, other, until, now + chrono::Duration::seconds(1)).await?);
    // Expired, but a chunk holds the lease: gc leaves it until the lease lapses.
    let later = now + chrono::Duration::hours(2);
    assert!(r.uploads.acquire_lease(up.id, 4, lease, later + chrono::Duration::minutes(1), later).await?);
    assert!(r.uploads.expired(later, 10).await?.is_empty());
    let expired = r.uploads.expired(later + chrono::Duration::minutes(2), 10).await?;
    assert_eq!(expired, vec![(up.id, Some("parts: 1".to_owned()))], "gc gets the staging state to remove");
    r.uploads.delete(&[up.id]).await?;
    assert!(r.uploads.find(up.id).await?.is_none());
    Ok(())
}

async fn an_upload_inserted_with_its_first_chunk_holds_no_lease(r: Repos) -> TestResult {
    let mut up = new_upload();
    up.offset = 4;
    up.total = Some(10);
    up.sha256_state = vec![1; 104];
    up.md5_state = vec![2; 88];
    up.staging_state = Some("parts: 1".into());
    r.uploads.insert(&up).await?;
    let stored = r.uploads.find(up.id).await?.ok_or("upload gone")?;
    assert_eq!(
        (stored.offset, stored.total, stored.sha256_state.len(), stored.md5_state.len()),
        (4, Some(10), 104, 88)
    );
    assert_eq!(stored.staging_state.as_deref(), Some("parts: 1"));
    let now = Utc::now();
    // The next chunk takes the lease at once: nobody holds it.
    assert!(r.uploads.acquire_lease(up.id, 4, uuid::Uuid::new_v4(), now + chrono::Duration::minutes(10), now).await?);
    assert!(r.uploads.insert(&up).await.is_err(), "an id is inserted once");
    Ok(())
}

async fn a_complete_leases_only_its_owners_unfinished_unheld_upload(r: Repos) -> TestResult {
    let mut up = new_upload();
    up.offset = 10;
    r.uploads.insert(&up).await?;
    let now = Utc::now();
    let until = now + chrono::Duration::minutes(10);
    let (lease, other) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let beta = OrgId::new("beta")?;
    assert!(r.uploads.lease_unfinished(up.id, &beta, &user("u-1"), lease, until, now).await?.is_none(), "another org");
    assert!(
        r.uploads.lease_unfinished(up.id, &org(), &user("u-2"), lease, until, now).await?.is_none(),
        "another user"
    );
    let late = up.expires_at + chrono::Duration::seconds(1);
    assert!(r.uploads.lease_unfinished(up.id, &org(), &user("u-1"), lease, late, late).await?.is_none(), "expired");
    let got = r.uploads.lease_unfinished(up.id, &org(), &user("u-1"), lease, until, now).await?.ok_or("not leased")?;
    assert_eq!((got.id, got.offset), (up.id, 10));
    // Held now: neither a second complete nor a chunk gets it until it is given back.
    assert!(r.uploads.lease_unfinished(up.id, &org(), &user("u-1"), other, until, now).await?.is_none());
    assert!(!r.uploads.acquire_lease(up.id, 10, other, until, now).await?);
    r.uploads.release_lease(up.id, lease).await?;
    assert!(r.uploads.lease_unfinished(up.id, &org(), &user("u-1"), other, until, now).await?.is_some());
    // Completed: nothing to lease.
    r.uploads.release_lease(up.id, other).await?;
    r.uploads.complete(up.id, &new_media_for(&org(), "u-1", up.id, &"cd".repeat(32))).await?;
    assert!(r.uploads.lease_unfinished(up.id, &org(), &user("u-1"), lease, until, now).await?.is_none(), "completed");
    Ok(())
}

async fn staging_is_recorded_only_under_the_lease_and_never_after_an_abandon(r: Repos) -> TestResult {
    let up = new_upload();
    let (lease, other) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let now = Utc::now();
    r.uploads.create(&up, lease, now + chrono::Duration::minutes(10)).await?;
    assert!(!r.uploads.record_staging(up.id, other, "theirs", now).await?, "not without the lease");
    assert!(r.uploads.record_staging(up.id, lease, "multipart 1", now).await?);
    assert_eq!(r.uploads.find(up.id).await?.and_then(|u| u.staging_state).as_deref(), Some("multipart 1"));
    // Abandoning expires the row at once: nothing more is recorded, gc sees it with its state.
    r.uploads.expire(up.id, now).await?;
    assert!(!r.uploads.record_staging(up.id, lease, "multipart 2", now).await?);
    r.uploads.release_lease(up.id, lease).await?;
    assert_eq!(r.uploads.expired(now, 10).await?, vec![(up.id, Some("multipart 1".to_owned()))]);
    Ok(())
}

async fn completing_twice_concurrently_makes_one_media(r: Repos) -> TestResult {
    let up = new_upload();
    r.uploads.create(&up, uuid::Uuid::new_v4(), Utc::now()).await?;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let repo = r.uploads.clone();
        tasks.push(tokio::spawn(async move { repo.complete(up.id, &new_media(&org(), "u-1")).await }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await??.id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every complete answers the same media");
    assert_eq!(r.uploads.find(up.id).await?.and_then(|u| u.media), Some(ids[0]));
    assert!(r.media.find(&org(), MediaId::new(ids[0].get())?).await?.is_some());
    Ok(())
}

async fn media_of_another_organization_is_not_found(r: Repos) -> TestResult {
    let m = stored_media(&r, &org(), "u-1").await?;
    assert_eq!(r.media.find(&org(), m.id).await?.map(|x| x.uuid), Some(m.uuid));
    assert!(r.media.find(&OrgId::new("beta")?, m.id).await?.is_none());
    Ok(())
}

async fn event(
    r: &Repos,
    manager: &str,
) -> Result<mediabox_domain::event::Event, Box<dyn std::error::Error + Send + Sync>> {
    let new = NewEvent {
        org: org(),
        title: "Party".into(),
        description: None,
        starts_at: None,
        ends_at: None,
        created_at: Utc::now(),
    };
    Ok(r.events.create(&new, &user(manager)).await?)
}

async fn gallery_pages_follow_the_order_added(r: Repos) -> TestResult {
    let e = event(&r, "u-1").await?;
    let mut added = Vec::new();
    for _ in 0..7 {
        let m = stored_media(&r, &org(), "u-1").await?;
        added.push(m.id);
    }
    added.reverse(); // the newest first, to show the order is the order added, not the id
    for id in &added {
        assert!(r.events.add_to_gallery(e.id, *id).await?);
    }
    assert!(r.events.add_to_gallery(e.id, added[0]).await?); // again: a no-op
    assert!(!r.events.add_to_gallery(e.id, MediaId::new(987_654)?).await?, "a media that is gone is refused");
    let p1 = r.events.gallery(e.id, PageRequest::new(Some(3), None)).await?;
    assert_eq!(p1.count, 7);
    assert!(p1.has_next && !p1.has_previous);
    let p2 = r.events.gallery(e.id, PageRequest::new(Some(3), p1.next_cursor())).await?;
    let p3 = r.events.gallery(e.id, PageRequest::new(Some(3), p2.next_cursor())).await?;
    assert!(p2.has_next && p2.has_previous && !p3.has_next && p3.has_previous);
    let seen: Vec<MediaId> = [&p1, &p2, &p3].iter().flat_map(|p| p.items.iter().map(|(_, m)| m.id)).collect();
    assert_eq!(seen, added);
    let back = r.events.gallery(e.id, PageRequest::new(Some(3), p3.previous_cursor())).await?;
    assert_eq!(back.items, p2.items);
    let first = r.events.gallery(e.id, PageRequest::new(Some(3), back.previous_cursor())).await?;
    assert_eq!(first.items, p1.items);
    assert!(!first.has_previous);
    assert!(matches!(p1.next_cursor(), Some(Cursor::After(_))));
    Ok(())
}

async fn concurrent_gallery_adds_all_land_once(r: Repos) -> TestResult {
    let e = event(&r, "u-1").await?;
    let mut media = Vec::new();
    for _ in 0..20 {
        media.push(stored_media(&r, &org(), "u-1").await?.id);
    }
    let mut tasks = Vec::new();
    for (i, m) in media.iter().enumerate() {
        let (repo, m, id) = (r.events.clone(), *m, e.id);
        // Every media twice, at once: each lands exactly once.
        tasks.push(tokio::spawn(async move { repo.add_to_gallery(id, m).await }));
        if i % 2 == 0 {
            let repo = r.events.clone();
            tasks.push(tokio::spawn(async move { repo.add_to_gallery(id, m).await }));
        }
    }
    for t in tasks {
        t.await??;
    }
    let page = r.events.gallery(e.id, PageRequest::new(Some(500), None)).await?;
    assert_eq!(page.count, 20);
    let mut got: Vec<i64> = page.items.iter().map(|(_, m)| m.id.get()).collect();
    got.sort_unstable();
    let mut want: Vec<i64> = media.iter().map(|m| m.get()).collect();
    want.sort_unstable();
    assert_eq!(got, want);
    Ok(())
}

async fn removing_from_the_gallery_is_all_or_nothing_and_ignores_strangers(r: Repos) -> TestResult {
    let e = event(&r, "u-1").await?;
    let a = stored_media(&r, &org(), "u-1").await?.id;
    let b = stored_media(&r, &org(), "u-1").await?.id;
    let c = stored_media(&r, &org(), "u-1").await?.id;
    for m in [a, b, c] {
        r.events.add_to_gallery(e.id, m).await?;
    }
    r.events.remove_from_gallery(e.id, &[a, c, MediaId::new(999_999)?]).await?;
    let page = r.events.gallery(e.id, PageRequest::new(None, None)).await?;
    assert_eq!(page.items.iter().map(|(_, m)| m.id).collect::<Vec<_>>(), vec![b]);
    assert_eq!(page.count, 1);
    assert!(r.media.find(&org(), a).await?.is_some(), "the media itself stays");
    Ok(())
}

async fn the_last_manager_cannot_be_removed(r: Repos) -> TestResult {
    let e = event(&r, "u-1").await?;
    r.events.add_manager(e.id, &user("u-2")).await?;
    r.events.add_manager(e.id, &user("u-2")).await?;
    let e2 = r.events.find(&org(), e.id).await?.ok_or("event gone")?;
    assert_eq!(e2.managers, vec![user("u-1"), user("u-2")]);
    // Both managers remove each other at once: one of them must stay.
    let (x, y) = (r.events.clone(), r.events.clone());
    let (r1, r2) = tokio::join!(
        tokio::spawn(async move { x.remove_manager(e.id, &user("u-1")).await }),
        tokio::spawn(async move { y.remove_manager(e.id, &user("u-2")).await }),
    );
    let outcomes = [r1??, r2??];
    assert!(outcomes.contains(&RemoveManagerOutcome::Removed));
    assert!(outcomes.contains(&RemoveManagerOutcome::LastManager));
    assert_eq!(r.events.find(&org(), e.id).await?.ok_or("event gone")?.managers.len(), 1);
    assert_eq!(r.events.remove_manager(e.id, &user("u-9")).await?, RemoveManagerOutcome::NotAManager);
    Ok(())
}

async fn deleting_an_event_keeps_its_media(r: Repos) -> TestResult {
    let e = event(&r, "u-1").await?;
    let m = stored_media(&r, &org(), "u-1").await?.id;
    r.events.add_to_gallery(e.id, m).await?;
    assert!(!r.events.delete(&OrgId::new("beta")?, e.id).await?, "another organization cannot delete it");
    assert!(r.events.delete(&org(), e.id).await?);
    assert!(r.events.find(&org(), e.id).await?.is_none());
    assert!(r.media.find(&org(), m).await?.is_some());
    Ok(())
}

async fn events_update_and_list(r: Repos) -> TestResult {
    let a = event(&r, "u-1").await?;
    let _b = event(&r, "u-1").await?;
    let patch =
        EventPatch { title: Some("Renamed".into()), description: Some(Some("d".into())), ..EventPatch::default() };
    let a2 = r.events.update(&org(), a.id, &patch).await?.ok_or("event gone")?;
    assert_eq!((a2.title.as_str(), a2.description.as_deref()), ("Renamed", Some("d")));
    assert!(r.events.update(&OrgId::new("beta")?, a.id, &patch).await?.is_none());
    let page = r.events.list(&org(), PageRequest::new(Some(1), None)).await?;
    assert_eq!((page.count, page.items.len(), page.has_next), (2, 1, true));
    assert_eq!(r.events.list(&OrgId::new("beta")?, PageRequest::new(None, None)).await?.count, 0);
    Ok(())
}
