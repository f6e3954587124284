//! The upload repository: rows of uploads in progress, their write lease, and the one
//! transaction that turns a finished upload into a media.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use mediabox_domain::media::{Media, MediaKind, NewMedia};
use mediabox_domain::ports::UploadRepository;
use mediabox_domain::upload::{ChunkAdvance, Concat, Upload};
use mediabox_domain::{OrgId, RepoError, UploadId, UserId};

use crate::connection::{as_pg, per_backend, AnyConnection, Db, TxError};
use crate::media_repo::find_media;
use crate::rows::{to_i64, upload_key, MediaRow, NewMediaRow, NewUploadRow, UploadRow};
use crate::schema::{blobs, media, uploads};

/// Upload rows through diesel.
#[derive(Debug, Clone)]
pub struct DieselUploadRepository {
    db: Db,
}

impl DieselUploadRepository {
    #[must_use]
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

/// Why a complete transaction rolled back.
enum CompleteRace {
    /// Another complete won the race; its media is the answer.
    AlreadyCompleted,
    /// Another upload of the same bytes created their blob row at the same moment: run
    /// again, and share it.
    BlobCreated,
}

/// The blob of these bytes: an existing one (locked until the transaction ends, so that a
/// concurrent delete cannot release it meanwhile) or a new row for `candidate`.
fn claim_blob(c: &mut AnyConnection, new: &NewMedia) -> Result<String, TxError<CompleteRace>> {
    #[derive(QueryableByName)]
    struct Key {
        #[diesel(sql_type = diesel::sql_types::Text)]
        blob_key: String,
    }
    // New bytes (the common case) are one statement: the insert. Identical bytes stored
    // already (or just now, by a complete that committed first) insert nothing, and the
    // existing row is read, locked on PostgreSQL against a delete of its last media.
    let insert = diesel::insert_into(blobs::table)
        .values((
            blobs::blob_key.eq(&new.blob_key),
            blobs::sha256.eq(&new.sha256),
            blobs::size.eq(to_i64(new.size)?),
            blobs::created_at.eq(new.created_at.naive_utc()),
        ))
        .on_conflict_do_nothing();
    if per_backend!(c, |c| insert.execute(c))? == 1 {
        return Ok(new.blob_key.clone());
    }
    let existing: Option<String> = match as_pg(c) {
        Some(pg) => diesel::sql_query("SELECT blob_key FROM blobs WHERE sha256 = $1 FOR UPDATE")
            .bind::<diesel::sql_types::Text, _>(&new.sha256)
            .get_result::<Key>(pg)
            .optional()?
            .map(|k| k.blob_key),
        None => {
            let same = blobs::table.filter(blobs::sha256.eq(&new.sha256)).select(blobs::blob_key);
            per_backend!(c, |c| same.get_result(c).optional())?
        }
    };
    // Gone again between the two (its last media deleted): the complete runs again.
    existing.ok_or(TxError::Rollback(CompleteRace::BlobCreated))
}

type Unleased = diesel::dsl::Or<
    diesel::dsl::IsNull<uploads::lease>,
    diesel::dsl::Lt<uploads::lease_expires, chrono::NaiveDateTime>,
>;

/// No request holds the upload's write lease: none was taken, or it lapsed before `now`.
fn unleased(now: DateTime<Utc>) -> Unleased {
    uploads::lease.is_null().or(uploads::lease_expires.lt(now.naive_utc()))
}

type TakeLease =
    (diesel::dsl::Eq<uploads::lease, String>, diesel::dsl::Eq<uploads::lease_expires, chrono::NaiveDateTime>);

/// The write lease `lease`, held until `until`.
fn take_lease(lease: uuid::Uuid, until: DateTime<Utc>) -> TakeLease {
    (uploads::lease.eq(lease.to_string()), uploads::lease_expires.eq(until.naive_utc()))
}

#[async_trait]
impl UploadRepository for DieselUploadRepository {
    async fn create(&self, upload: &Upload, lease: uuid::Uuid, until: DateTime<Utc>) -> Result<(), RepoError> {
        let upload = upload.clone();
        self.db
            .write_one(move |c| {
                diesel::insert_into(uploads::table)
                    .values(NewUploadRow::from_domain(&upload, Some((lease, until)))?)
                    .execute(c)?;
                Ok(())
            })
            .await
    }

    async fn insert(&self, upload: &Upload) -> Result<(), RepoError> {
        let upload = upload.clone();
        self.db
            .write_one(move |c| {
                let row = NewUploadRow::from_domain(&upload, None)?;
                per_backend!(c, |c| diesel::insert_into(uploads::table).values(&row).execute(c))?;
                Ok(())
            })
            .await
    }

    async fn find(&self, id: UploadId) -> Result<Option<Upload>, RepoError> {
        self.db
            .run(move |c| {
                let row: Option<UploadRow> = uploads::table.find(upload_key(id)).first(c).optional()?;
                row.map(|r| Upload::try_from(r).map_err(Into::into)).transpose()
            })
            .await
    }

    async fn lease_unfinished(
        &self,
        id: UploadId,
        org: &OrgId,
        user: &UserId,
        lease: uuid::Uuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Upload>, RepoError> {
        let (org, user) = (org.as_str().to_owned(), user.as_str().to_owned());
        self.db
            .write_one(move |c| {
                let update = diesel::update(
                    uploads::table
                        .filter(uploads::id.eq(upload_key(id)))
                        .filter(uploads::org.eq(&org))
                        .filter(uploads::user_id.eq(&user))
                        .filter(uploads::media_id.is_null())
                        .filter(uploads::expires_at.gt(now.naive_utc()))
                        .filter(unleased(now)),
                )
                .set(take_lease(lease, until));
                let row: Option<UploadRow> = per_backend!(c, |c| update.get_result(c).optional())?;
                row.map(|r| Upload::try_from(r).map_err(Into::into)).transpose()
            })
            .await
    }

    async fn acquire_lease(
        &self,
        id: UploadId,
        offset: u64,
        lease: uuid::Uuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, RepoError> {
        self.db
            .write_one(move |c| {
                let n = diesel::update(
                    uploads::table
                        .filter(uploads::id.eq(upload_key(id)))
                        .filter(uploads::byte_offset.eq(to_i64(offset)?))
                        .filter(uploads::media_id.is_null())
                        .filter(unleased(now)),
                )
                .set(take_lease(lease, until))
                .execute(c)?;
                Ok(n == 1)
            })
            .await
    }

    async fn advance(&self, id: UploadId, lease: uuid::Uuid, advance: &ChunkAdvance) -> Result<bool, RepoError> {
        self.record(id, lease, advance, None).await
    }

    async fn progress(
        &self,
        id: UploadId,
        lease: uuid::Uuid,
        advance: &ChunkAdvance,
        until: DateTime<Utc>,
    ) -> Result<bool, RepoError> {
        self.record(id, lease, advance, Some(until)).await
    }

    async fn insert_final(&self, upload: &Upload, now: DateTime<Utc>) -> Result<bool, RepoError> {
        let upload = upload.clone();
        let parts: Vec<String> = match &upload.concat {
            Some(Concat::Final { parts }) => parts.iter().map(|p| upload_key(*p)).collect(),
            _ => return Err(RepoError::Other("insert_final takes a final upload".into())),
        };
        self.db
            .write(move |c| {
                let claimed = diesel::update(
                    uploads::table
                        .filter(uploads::id.eq_any(&parts))
                        .filter(uploads::org.eq(upload.org.as_str()))
                        .filter(uploads::user_id.eq(upload.user.as_str()))
                        .filter(uploads::concat.eq("partial"))
                        .filter(uploads::final_id.is_null())
                        .filter(uploads::expires_at.gt(now.naive_utc())),
                )
                .set(uploads::final_id.eq(upload_key(upload.id)))
                .execute(c)?;
                if claimed != parts.len() {
                    return Err(TxError::Rollback(()));
                }
                diesel::insert_into(uploads::table).values(NewUploadRow::from_domain(&upload, None)?).execute(c)?;
                Ok(())
            })
            .await
            .map(|r| r.is_ok())
    }

    async fn record_staging(
        &self,
        id: UploadId,
        lease: uuid::Uuid,
        staging: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, RepoError> {
        let staging = staging.to_owned();
        self.db
            .write_one(move |c| {
                let n = diesel::update(
                    uploads::table
                        .filter(uploads::id.eq(upload_key(id)))
                        .filter(uploads::lease.eq(lease.to_string()))
                        .filter(uploads::expires_at.gt(now.naive_utc())),
                )
                .set(uploads::staging_state.eq(&staging))
                .execute(c)?;
                Ok(n == 1)
            })
            .await
    }

    async fn expire(&self, id: UploadId, now: DateTime<Utc>) -> Result<(), RepoError> {
        self.db
            .write_one(move |c| {
                diesel::update(uploads::table.filter(uploads::id.eq(upload_key(id))))
                    .set(uploads::expires_at.eq(now.naive_utc()))
                    .execute(c)?;
                Ok(())
            })
            .await
    }

    async fn release_lease(&self, id: UploadId, lease: uuid::Uuid) -> Result<(), RepoError> {
        self.db
            .write_one(move |c| {
                diesel::update(
                    uploads::table.filter(uploads::id.eq(upload_key(id))).filter(uploads::lease.eq(lease.to_string())),
                )
                .set((uploads::lease.eq(None::<String>), uploads::lease_expires.eq(None::<chrono::NaiveDateTime>)))
                .execute(c)?;
                Ok(())
            })
            .await
    }

    async fn complete(&self, id: UploadId, new: &NewMedia) -> Result<Media, RepoError> {
        let org = new.org.as_str().to_owned();
        let mut outcome = Err(CompleteRace::BlobCreated);
        for _ in 0..3 {
            outcome = self.complete_once(id, new.clone()).await?;
            if !matches!(outcome, Err(CompleteRace::BlobCreated)) {
                break;
            }
        }
        match outcome {
            Ok(m) => Ok(m),
            Err(CompleteRace::BlobCreated) => Err(RepoError::Other("blob row kept being created concurrently".into())),
            Err(CompleteRace::AlreadyCompleted) => {
                self.db
                    .run(move |c| {
                        let mid: Option<i64> =
                            uploads::table.find(upload_key(id)).select(uploads::media_id).first(c)?;
                        let mid = mid.ok_or(diesel::result::Error::NotFound)?;
                        find_media(c, &org, mid)?.ok_or(diesel::result::Error::NotFound)
                    })
                    .await
            }
        }
    }

    async fn delete(&self, ids: &[UploadId]) -> Result<(), RepoError> {
        let keys: Vec<String> = ids.iter().map(|id| upload_key(*id)).collect();
        self.db
            .write_one(move |c| {
                diesel::delete(uploads::table.filter(uploads::id.eq_any(&keys))).execute(c)?;
                Ok(())
            })
            .await
    }

    async fn unfinished(&self, ids: &[UploadId]) -> Result<Vec<UploadId>, RepoError> {
        let keys: Vec<String> = ids.iter().map(|id| upload_key(*id)).collect();
        self.db
            .run(move |c| {
                let found: Vec<String> = uploads::table
                    .filter(uploads::id.eq_any(&keys))
                    .filter(uploads::media_id.is_null())
                    .select(uploads::id)
                    .load(c)?;
                Ok(found.iter().filter_map(|s| uuid::Uuid::parse_str(s).ok()).map(UploadId::from_uuid).collect())
            })
            .await
    }

    async fn expired(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<(UploadId, Option<String>)>, RepoError> {
        self.db
            .run(move |c| {
                // Not while a chunk holds the lease: it finishes (or its lease lapses) first.
                let rows: Vec<(String, Option<String>)> = uploads::table
                    .filter(uploads::expires_at.le(now.naive_utc()))
                    .filter(unleased(now))
                    .order(uploads::expires_at.asc())
                    .limit(i64::from(limit))
                    .select((uploads::id, uploads::staging_state))
                    .load(c)?;
                Ok(rows
                    .into_iter()
                    .filter_map(|(id, st)| uuid::Uuid::parse_str(&id).ok().map(|u| (UploadId::from_uuid(u), st)))
                    .collect())
            })
            .await
    }
}

impl DieselUploadRepository {
    /// Records a write under `lease`: the lease goes with it, or, given `keep_until`, stays
    /// held until then.
    async fn record(
        &self,
        id: UploadId,
        lease: uuid::Uuid,
        advance: &ChunkAdvance,
        keep_until: Option<DateTime<Utc>>,
    ) -> Result<bool, RepoError> {
        let a = advance.clone();
        self.db
            .write_one(move |c| {
                let held = lease.to_string();
                let n = diesel::update(
                    uploads::table.filter(uploads::id.eq(upload_key(id))).filter(uploads::lease.eq(&held)),
                )
                .set((
                    uploads::byte_offset.eq(to_i64(a.offset)?),
                    uploads::total.eq(a.total.map(to_i64).transpose()?),
                    uploads::sha256_state.eq(&a.sha256_state),
                    uploads::md5_state.eq(&a.md5_state),
                    uploads::staging_state.eq(&a.staging_state),
                    uploads::lease.eq(keep_until.map(|_| held.clone())),
                    uploads::lease_expires.eq(keep_until.map(|t| t.naive_utc())),
                ))
                .execute(c)?;
                Ok(n == 1)
            })
            .await
    }

    /// One attempt at the complete transaction.
    async fn complete_once(&self, id: UploadId, new: NewMedia) -> Result<Result<Media, CompleteRace>, RepoError> {
        self.db
            .write(move |c| {
                let key = upload_key(id);
                // An upload completed already is found by the link at the end (nothing
                // linked: all of this rolls back); no read first, one statement less.
                let blob = claim_blob(c, &new)?;
                let mut row = NewMediaRow::from_domain(&new, &blob)?;
                if blob != new.blob_key && new.kind == MediaKind::Video {
                    // Identical bytes of a video already known: its poster is made, so
                    // what it found (size, duration) comes from the media that has it.
                    let known = media::table
                        .filter(media::blob_key.eq(&blob))
                        .filter(media::duration_ms.is_not_null())
                        .select((media::width, media::height, media::duration_ms))
                        .first::<(Option<i32>, Option<i32>, Option<i64>)>(c)
                        .optional()?;
                    if let Some(facts) = known {
                        row.video_facts(facts);
                    }
                }
                // The stored row comes back from the insert itself: no read after it.
                let made: MediaRow = per_backend!(c, |c| diesel::insert_into(media::table)
                    .values(&row)
                    .returning(media::all_columns)
                    .get_result(c))?;
                let media_id = made.id;
                // Only one complete links its media: a concurrent one finds media_id set
                // (PostgreSQL re-checks the row after the first commits) and rolls back.
                // The complete's lease goes with it: a completed upload takes no lease again.
                let link = diesel::update(uploads::table.find(&key).filter(uploads::media_id.is_null())).set((
                    uploads::media_id.eq(media_id),
                    uploads::lease.eq(None::<String>),
                    uploads::lease_expires.eq(None::<chrono::NaiveDateTime>),
                ));
                let linked = per_backend!(c, |c| link.execute(c))?;
                if linked != 1 {
                    return Err(TxError::Rollback(CompleteRace::AlreadyCompleted));
                }
                Media::try_from(made).map_err(|e| TxError::Db(e.into()))
            })
            .await
    }
}
