//! The media repository, and the one transaction that deletes media.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use async_trait::async_trait;
use diesel::prelude::*;
use mediabox_domain::media::{DeleteOutcome, Deleter, Media, Reference};
use mediabox_domain::ports::MediaRepository;
use mediabox_domain::render::VideoFacts;
use mediabox_domain::rendition::{owner_key, RenditionRecord, Variant};
use mediabox_domain::{MediaId, OrgId, RepoError};

use crate::connection::{as_pg, is_fk_violation, is_unique_violation, per_backend, AnyConnection, Db};
use crate::rows::{MediaRow, RenditionRow};
use crate::schema::{blobs, catalog_item_media, catalog_items, events, gallery_items, media, renditions, uploads};

/// Media rows through diesel.
#[derive(Debug, Clone)]
pub struct DieselMediaRepository {
    db: Db,
}

impl DieselMediaRepository {
    #[must_use]
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

/// A media by id within an organization, for use inside other queries and transactions.
pub(crate) fn find_media(conn: &mut AnyConnection, org: &str, id: i64) -> QueryResult<Option<Media>> {
    // The id is the primary key: no `LIMIT` needed to get at most one row.
    let query = media::table.filter(media::id.eq(id)).filter(media::org.eq(org)).select(media::all_columns);
    let row: Option<MediaRow> = per_backend!(conn, |c| query.get_result(c).optional())?;
    row.map(|r| Media::try_from(r).map_err(Into::into)).transpose()
}

/// Locks rows of `table` by key until the transaction ends, in key order so that two
/// transactions locking overlapping sets cannot deadlock on each other (PostgreSQL; on
/// SQLite writers already take turns). One statement.
fn lock_rows(c: &mut AnyConnection, sql: &'static str, keys: LockKeys<'_>) -> QueryResult<()> {
    let Some(pg) = as_pg(c) else { return Ok(()) };
    match keys {
        LockKeys::Ids(ids) if !ids.is_empty() => {
            diesel::sql_query(sql).bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(ids).execute(pg)?;
        }
        LockKeys::Texts(keys) if !keys.is_empty() => {
            diesel::sql_query(sql).bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(keys).execute(pg)?;
        }
        _ => {}
    }
    Ok(())
}

enum LockKeys<'a> {
    Ids(&'a [i64]),
    Texts(&'a [String]),
}

/// The delete transaction; see [`MediaRepository::delete`]. Statements, whatever the
/// number of ids: select media, lock them, select references, select galleries, lock
/// events, update gallery counts, delete gallery entries, delete their uploads, delete
/// media, lock blobs, select blobs still used, delete released blobs (at most 12).
fn delete_media(c: &mut AnyConnection, deleter: &Deleter, uuids: &[String]) -> QueryResult<DeleteOutcome> {
    let mut out = DeleteOutcome::default();
    let rows: Vec<(i64, String, String)> = media::table
        .filter(media::org.eq(deleter.org.as_str()))
        .filter(media::uuid.eq_any(uuids))
        .select((media::id, media::uuid, media::uploaded_by))
        .load(c)?;
    let parse =
        |u: &str| uuid::Uuid::parse_str(u).map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)));
    let mut permitted: BTreeMap<i64, uuid::Uuid> = BTreeMap::new();
    for (id, u, by) in rows {
        if deleter.any || by == deleter.user.as_str() {
            permitted.insert(id, parse(&u)?);
        } else {
            out.forbidden.push(parse(&u)?);
        }
    }
    if permitted.is_empty() {
        return Ok(out);
    }
    let ids: Vec<i64> = permitted.keys().copied().collect();
    // From here on no gallery or catalog entry can be added for these media (their
    // foreign-key checks wait for this transaction), and entries added before are visible.
    lock_rows(c, "SELECT id FROM media WHERE id = ANY($1) ORDER BY id FOR UPDATE", LockKeys::Ids(&ids))?;

    let refs: Vec<(i64, i64, String)> = catalog_item_media::table
        .inner_join(catalog_items::table)
        .filter(catalog_item_media::media_id.eq_any(&ids))
        .select((catalog_item_media::media_id, catalog_items::id, catalog_items::kind))
        .distinct()
        .load(c)?;
    let mut referenced: BTreeMap<i64, BTreeSet<Reference>> = BTreeMap::new();
    for (m, item, kind) in refs {
        let r = if kind == "variant" { Reference::Variant(item) } else { Reference::Product(item) };
        referenced.entry(m).or_default().insert(r);
    }
    for (m, r) in &referenced {
        if let Some(u) = permitted.remove(m) {
            out.referenced.push((u, r.iter().copied().collect()));
        }
    }
    let deletable: Vec<i64> = permitted.keys().copied().collect();
    if deletable.is_empty() {
        return Ok(out);
    }

    let touched: Vec<i64> = gallery_items::table
        .filter(gallery_items::media_id.eq_any(&deletable))
        .select(gallery_items::event_id)
        .distinct()
        .load(c)?;
    if !touched.is_empty() {
        let mut sorted = touched.clone();
        sorted.sort_unstable();
        lock_rows(c, "SELECT id FROM events WHERE id = ANY($1) ORDER BY id FOR UPDATE", LockKeys::Ids(&sorted))?;
        let removed = gallery_items::table
            .filter(gallery_items::event_id.eq(events::id))
            .filter(gallery_items::media_id.eq_any(&deletable))
            .count()
            .single_value()
            .assume_not_null();
        diesel::update(events::table.filter(events::id.eq_any(&touched)))
            .set(events::gallery_count.eq(events::gallery_count - removed))
            .execute(c)?;
        diesel::delete(gallery_items::table.filter(gallery_items::media_id.eq_any(&deletable))).execute(c)?;
    }

    // The uploads that made these media: completing them again would have nothing to answer.
    diesel::delete(uploads::table.filter(uploads::media_id.eq_any(&deletable))).execute(c)?;
    let deleted: Vec<(i64, String, Option<String>)> = diesel::delete(media::table.filter(media::id.eq_any(&deletable)))
        .returning((media::id, media::uuid, media::blob_key))
        .get_results(c)?;
    let mut keys: Vec<String> = deleted.iter().filter_map(|(_, _, k)| k.clone()).collect();
    keys.sort_unstable();
    keys.dedup();
    for (id, u, _) in deleted {
        out.deleted.push((
            MediaId::new(id).map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?,
            parse(&u)?,
        ));
    }
    if keys.is_empty() {
        return Ok(out);
    }
    // Another delete of media sharing a blob waits here until this one commits, and then
    // sees these media gone: exactly one of them releases the blob.
    lock_rows(
        c,
        "SELECT blob_key FROM blobs WHERE blob_key = ANY($1) ORDER BY blob_key FOR UPDATE",
        LockKeys::Texts(&keys),
    )?;
    let used: HashSet<String> = media::table
        .filter(media::blob_key.eq_any(&keys))
        .select(media::blob_key.assume_not_null())
        .distinct()
        .load::<String>(c)?
        .into_iter()
        .collect();
    let released: Vec<String> = keys.into_iter().filter(|k| !used.contains(k)).collect();
    if !released.is_empty() {
        diesel::delete(blobs::table.filter(blobs::blob_key.eq_any(&released))).execute(c)?;
    }
    out.released = released;
    Ok(out)
}

#[async_trait]
impl MediaRepository for DieselMediaRepository {
    async fn find(&self, org: &OrgId, id: MediaId) -> Result<Option<Media>, RepoError> {
        let org = org.as_str().to_owned();
        self.db.run(move |c| find_media(c, &org, id.get())).await
    }

    async fn find_by_uuid(&self, org: &OrgId, uuid: uuid::Uuid) -> Result<Option<Media>, RepoError> {
        let (org, uuid) = (org.as_str().to_owned(), uuid.to_string());
        self.db
            .run(move |c| {
                let row: Option<MediaRow> = media::table
                    .filter(media::uuid.eq(&uuid))
                    .filter(media::org.eq(&org))
                    .select(media::all_columns)
                    .first(c)
                    .optional()?;
                row.map(|r| Media::try_from(r).map_err(Into::into)).transpose()
            })
            .await
    }

    async fn resolve(&self, org: &OrgId, uuids: &[uuid::Uuid]) -> Result<Vec<(uuid::Uuid, MediaId)>, RepoError> {
        let org = org.as_str().to_owned();
        let wanted: Vec<String> = uuids.iter().map(ToString::to_string).collect();
        self.db
            .run(move |c| {
                let rows: Vec<(String, i64)> = media::table
                    .filter(media::org.eq(&org))
                    .filter(media::uuid.eq_any(&wanted))
                    .select((media::uuid, media::id))
                    .load(c)?;
                Ok(rows
                    .into_iter()
                    .filter_map(|(u, id)| Some((uuid::Uuid::parse_str(&u).ok()?, MediaId::new(id).ok()?)))
                    .collect())
            })
            .await
    }

    async fn delete(&self, deleter: &Deleter, uuids: &[uuid::Uuid]) -> Result<DeleteOutcome, RepoError> {
        let deleter = deleter.clone();
        let uuids: Vec<String> = uuids.iter().map(ToString::to_string).collect();
        self.db.tx(move |c| delete_media(c, &deleter, &uuids)).await
    }

    async fn find_rendition(&self, blob_key: &str, variant: Variant) -> Result<Option<RenditionRecord>, RepoError> {
        let blob_key = blob_key.to_owned();
        self.db
            .run(move |c| {
                let row: Option<RenditionRow> = renditions::table
                    .filter(renditions::blob_key.eq(&blob_key))
                    .filter(renditions::variant.eq(variant.as_str()))
                    .first(c)
                    .optional()?;
                row.map(|r| RenditionRecord::try_from(r).map_err(Into::into)).transpose()
            })
            .await
    }

    async fn save_rendition(
        &self,
        blob_key: &str,
        variant: Variant,
        record: &RenditionRecord,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, RepoError> {
        let row = RenditionRow::new(blob_key, variant, record, now).map_err(crate::connection::repo_error)?;
        self.db
            .run(move |c| match diesel::insert_into(renditions::table).values(&row).execute(c) {
                Ok(_) => Ok(true),
                // The blob's row is gone: its last media was deleted.
                Err(e) if is_fk_violation(&e) => Ok(false),
                // Recorded already (made by another instance too): that one stays.
                Err(e) if is_unique_violation(&e) => Ok(true),
                Err(e) => Err(e),
            })
            .await
    }

    async fn save_video_facts(&self, blob_key: &str, facts: &VideoFacts) -> Result<(), RepoError> {
        let key = blob_key.to_owned();
        let dim = |v: u32| i32::try_from(v).map_err(|_| RepoError::Other("a video dimension out of range".into()));
        let (width, height) = (dim(facts.width)?, dim(facts.height)?);
        let duration =
            i64::try_from(facts.duration_ms).map_err(|_| RepoError::Other("a duration out of range".into()))?;
        self.db
            .run(move |c| {
                diesel::update(media::table.filter(media::blob_key.eq(&key)))
                    .set((media::width.eq(width), media::height.eq(height), media::duration_ms.eq(duration)))
                    .execute(c)
                    .map(|_| ())
            })
            .await
    }

    async fn unreferenced_blob_keys(&self, keys: &[String]) -> Result<Vec<String>, RepoError> {
        let keys = keys.to_vec();
        self.db
            .run(move |c| {
                let mut out = Vec::new();
                for batch in keys.chunks(5000) {
                    // A rendition is kept as long as its original is.
                    let owners: Vec<&str> = batch.iter().map(|k| owner_key(k)).collect();
                    let known: HashSet<String> = blobs::table
                        .filter(blobs::blob_key.eq_any(&owners))
                        .select(blobs::blob_key)
                        .load::<String>(c)?
                        .into_iter()
                        .collect();
                    // Keys of uploads still completing are kept.
                    let uploads_of: Vec<String> =
                        owners.iter().filter_map(|k| upload_of_key(k)).map(|u| u.to_string()).collect();
                    let pending: HashSet<String> = uploads::table
                        .filter(uploads::id.eq_any(&uploads_of))
                        .filter(uploads::media_id.is_null())
                        .select(uploads::id)
                        .load::<String>(c)?
                        .into_iter()
                        .filter_map(|u| uuid::Uuid::parse_str(&u).ok().map(|u| u.simple().to_string()))
                        .collect();
                    out.extend(
                        batch
                            .iter()
                            .filter(|k| {
                                let owner = owner_key(k);
                                !known.contains(owner)
                                    && upload_of_key(owner).is_none_or(|u| !pending.contains(&u.simple().to_string()))
                            })
                            .cloned(),
                    );
                }
                Ok(out)
            })
            .await
    }
}

/// The upload a blob key was made by: keys are `<upload id>` (32 hex digits), or
/// `<sha256>-<upload id>` as made before; a bare sha256 names none.
fn upload_of_key(key: &str) -> Option<uuid::Uuid> {
    let id = key.split_once('-').map_or(key, |(_, u)| u);
    if id.len() == 32 {
        uuid::Uuid::parse_str(id).ok()
    } else {
        None
    }
}
