//! Row types and their conversion to and from domain entities. A row that breaks a
//! domain invariant is a database error, never a panic.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use mediabox_domain::event::Event;
use mediabox_domain::ids::InvalidId;
use mediabox_domain::media::{Media, MediaKind, NewMedia};
use mediabox_domain::rendition::{Rendition, RenditionRecord, Variant};
use mediabox_domain::upload::{Concat, Upload};
use mediabox_domain::{EventId, MediaId, OrgId, UploadId, UserId};

use crate::schema::{events, media, renditions, uploads};

#[derive(Debug, thiserror::Error)]
pub(crate) enum RowError {
    #[error(transparent)]
    Id(#[from] InvalidId),
    #[error("bad value in column {0}")]
    Value(&'static str),
}

impl From<RowError> for diesel::result::Error {
    fn from(e: RowError) -> Self {
        diesel::result::Error::DeserializationError(Box::new(e))
    }
}

pub(crate) fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

fn to_u32(v: Option<i32>, col: &'static str) -> Result<Option<u32>, RowError> {
    v.map(|x| u32::try_from(x).map_err(|_| RowError::Value(col))).transpose()
}

fn to_u64(v: i64, col: &'static str) -> Result<u64, RowError> {
    u64::try_from(v).map_err(|_| RowError::Value(col))
}

pub(crate) fn to_i64(v: u64) -> Result<i64, diesel::result::Error> {
    i64::try_from(v).map_err(|_| RowError::Value("integer out of range").into())
}

#[derive(Debug, Queryable)]
pub(crate) struct MediaRow {
    pub(crate) id: i64,
    uuid: String,
    org: String,
    uploaded_by: String,
    filename: String,
    content_type: String,
    size: i64,
    sha256: String,
    md5: String,
    kind: String,
    width: Option<i32>,
    height: Option<i32>,
    created_at: NaiveDateTime,
    blob_key: Option<String>,
    duration_ms: Option<i64>,
}

impl TryFrom<MediaRow> for Media {
    type Error = RowError;
    fn try_from(r: MediaRow) -> Result<Self, RowError> {
        Ok(Media {
            id: MediaId::new(r.id)?,
            uuid: uuid::Uuid::parse_str(&r.uuid).map_err(|_| RowError::Value("media.uuid"))?,
            org: OrgId::new(r.org)?,
            uploaded_by: UserId::new(r.uploaded_by)?,
            filename: r.filename,
            content_type: r.content_type,
            size: to_u64(r.size, "media.size")?,
            md5: r.md5,
            kind: MediaKind::parse(&r.kind),
            width: to_u32(r.width, "media.width")?,
            height: to_u32(r.height, "media.height")?,
            duration_ms: r.duration_ms.map(|d| to_u64(d, "media.duration_ms")).transpose()?,
            created_at: utc(r.created_at),
            blob_key: r.blob_key.unwrap_or_else(|| r.sha256.clone()),
            sha256: r.sha256,
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = media)]
pub(crate) struct NewMediaRow {
    uuid: String,
    org: String,
    uploaded_by: String,
    filename: String,
    content_type: String,
    size: i64,
    sha256: String,
    md5: String,
    kind: String,
    width: Option<i32>,
    height: Option<i32>,
    created_at: NaiveDateTime,
    blob_key: Option<String>,
    duration_ms: Option<i64>,
}

impl NewMediaRow {
    /// A video's displayed size and duration, known already of its bytes.
    pub(crate) fn video_facts(&mut self, (width, height, duration_ms): (Option<i32>, Option<i32>, Option<i64>)) {
        (self.width, self.height, self.duration_ms) = (width, height, duration_ms);
    }

    /// The row of `m`, its bytes under blob `blob_key`.
    pub(crate) fn from_domain(m: &NewMedia, blob_key: &str) -> Result<Self, diesel::result::Error> {
        let dim = |v: Option<u32>| v.map(|x| i32::try_from(x).map_err(|_| RowError::Value("dimension"))).transpose();
        Ok(Self {
            uuid: m.uuid.to_string(),
            org: m.org.as_str().to_owned(),
            uploaded_by: m.uploaded_by.as_str().to_owned(),
            filename: m.filename.clone(),
            content_type: m.content_type.clone(),
            size: to_i64(m.size)?,
            sha256: m.sha256.clone(),
            md5: m.md5.clone(),
            kind: m.kind.as_str().to_owned(),
            width: dim(m.width)?,
            height: dim(m.height)?,
            created_at: m.created_at.naive_utc(),
            blob_key: Some(blob_key.to_owned()),
            duration_ms: None,
        })
    }
}

#[derive(Debug, Queryable)]
pub(crate) struct UploadRow {
    id: String,
    org: String,
    user_id: String,
    filename: String,
    byte_offset: i64,
    total: Option<i64>,
    sha256_state: Vec<u8>,
    md5_state: Vec<u8>,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    media_id: Option<i64>,
    #[allow(dead_code)]
    lease: Option<String>,
    #[allow(dead_code)]
    lease_expires: Option<NaiveDateTime>,
    staging_state: Option<String>,
    event_id: Option<i64>,
    concat: Option<String>,
    final_id: Option<String>,
}

fn upload_id(s: &str, column: &'static str) -> Result<UploadId, RowError> {
    uuid::Uuid::parse_str(s).map(UploadId::from_uuid).map_err(|_| RowError::Value(column))
}

/// `concat` and `final_id` as the domain knows them.
fn concat_from_row(concat: Option<&str>, final_id: Option<&str>) -> Result<Option<Concat>, RowError> {
    let Some(text) = concat else { return Ok(None) };
    let mut words = text.split(' ');
    match words.next() {
        Some("partial") => {
            Ok(Some(Concat::Partial { final_upload: final_id.map(|f| upload_id(f, "uploads.final_id")).transpose()? }))
        }
        Some("final") => {
            Ok(Some(Concat::Final { parts: words.map(|w| upload_id(w, "uploads.concat")).collect::<Result<_, _>>()? }))
        }
        _ => Err(RowError::Value("uploads.concat")),
    }
}

/// The `concat` column of an upload.
pub(crate) fn concat_column(c: Option<&Concat>) -> Option<String> {
    match c? {
        Concat::Partial { .. } => Some("partial".to_owned()),
        Concat::Final { parts } => Some(
            std::iter::once("final".to_owned())
                .chain(parts.iter().map(|p| upload_key(*p)))
                .collect::<Vec<_>>()
                .join(" "),
        ),
    }
}

impl TryFrom<UploadRow> for Upload {
    type Error = RowError;
    fn try_from(r: UploadRow) -> Result<Self, RowError> {
        Ok(Upload {
            id: UploadId::from_uuid(uuid::Uuid::parse_str(&r.id).map_err(|_| RowError::Value("uploads.id"))?),
            org: OrgId::new(r.org)?,
            user: UserId::new(r.user_id)?,
            filename: r.filename,
            offset: to_u64(r.byte_offset, "uploads.byte_offset")?,
            total: r.total.map(|t| to_u64(t, "uploads.total")).transpose()?,
            sha256_state: r.sha256_state,
            md5_state: r.md5_state,
            created_at: utc(r.created_at),
            expires_at: utc(r.expires_at),
            media: r.media_id.map(MediaId::new).transpose()?,
            staging_state: r.staging_state,
            event: r.event_id.map(EventId::new).transpose()?,
            concat: concat_from_row(r.concat.as_deref(), r.final_id.as_deref())?,
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = uploads)]
pub(crate) struct NewUploadRow {
    id: String,
    org: String,
    user_id: String,
    filename: String,
    byte_offset: i64,
    total: Option<i64>,
    sha256_state: Vec<u8>,
    md5_state: Vec<u8>,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    staging_state: Option<String>,
    lease: Option<String>,
    lease_expires: Option<NaiveDateTime>,
    event_id: Option<i64>,
    concat: Option<String>,
}

impl NewUploadRow {
    /// The row of a new upload, holding `lease` until its time when one is given.
    pub(crate) fn from_domain(
        u: &Upload,
        lease: Option<(uuid::Uuid, chrono::DateTime<chrono::Utc>)>,
    ) -> Result<Self, diesel::result::Error> {
        Ok(Self {
            id: upload_key(u.id),
            org: u.org.as_str().to_owned(),
            user_id: u.user.as_str().to_owned(),
            filename: u.filename.clone(),
            byte_offset: to_i64(u.offset)?,
            total: u.total.map(to_i64).transpose()?,
            sha256_state: u.sha256_state.clone(),
            md5_state: u.md5_state.clone(),
            created_at: u.created_at.naive_utc(),
            expires_at: u.expires_at.naive_utc(),
            staging_state: u.staging_state.clone(),
            lease: lease.map(|(l, _)| l.to_string()),
            lease_expires: lease.map(|(_, until)| until.naive_utc()),
            event_id: u.event.map(EventId::get),
            concat: concat_column(u.concat.as_ref()),
        })
    }
}

/// The text key of an upload row.
pub(crate) fn upload_key(id: UploadId) -> String {
    id.as_uuid().to_string()
}

#[derive(Debug, Queryable)]
pub(crate) struct EventRow {
    pub(crate) id: i64,
    org: String,
    title: String,
    description: Option<String>,
    starts_at: Option<NaiveDateTime>,
    ends_at: Option<NaiveDateTime>,
    gallery_count: i64,
    created_at: NaiveDateTime,
}

impl EventRow {
    pub(crate) fn into_domain(self, managers: Vec<String>) -> Result<Event, RowError> {
        Ok(Event {
            id: EventId::new(self.id)?,
            org: OrgId::new(self.org)?,
            title: self.title,
            description: self.description,
            starts_at: self.starts_at.map(utc),
            ends_at: self.ends_at.map(utc),
            managers: managers.into_iter().map(UserId::new).collect::<Result<_, _>>()?,
            gallery_count: to_u64(self.gallery_count, "events.gallery_count")?,
            created_at: utc(self.created_at),
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = events)]
pub(crate) struct NewEventRow {
    pub(crate) org: String,
    pub(crate) title: String,
    pub(crate) description: Option<String>,
    pub(crate) starts_at: Option<NaiveDateTime>,
    pub(crate) ends_at: Option<NaiveDateTime>,
    pub(crate) gallery_count: i64,
    pub(crate) created_at: NaiveDateTime,
}

#[derive(Debug, AsChangeset, Default)]
#[diesel(table_name = events)]
pub(crate) struct EventChanges {
    pub(crate) title: Option<String>,
    pub(crate) description: Option<Option<String>>,
    pub(crate) starts_at: Option<Option<NaiveDateTime>>,
    pub(crate) ends_at: Option<Option<NaiveDateTime>>,
}

/// A `renditions` row: a made rendition (`status = 'ready'`, every column set) or the
/// record that none can be made.
#[derive(Debug, Queryable, Insertable)]
#[diesel(table_name = renditions)]
pub(crate) struct RenditionRow {
    blob_key: String,
    variant: String,
    status: String,
    content_type: Option<String>,
    size: Option<i64>,
    sha256: Option<String>,
    width: Option<i32>,
    height: Option<i32>,
    created_at: NaiveDateTime,
}

const READY: &str = "ready";
const NOT_DECODABLE: &str = "not-decodable";

impl RenditionRow {
    pub(crate) fn new(
        blob_key: &str,
        variant: Variant,
        record: &RenditionRecord,
        now: DateTime<Utc>,
    ) -> Result<Self, diesel::result::Error> {
        let dim = |v: u32| i32::try_from(v).map_err(|_| RowError::Value("rendition dimension"));
        let mut row = Self {
            blob_key: blob_key.to_owned(),
            variant: variant.as_str().to_owned(),
            status: NOT_DECODABLE.to_owned(),
            content_type: None,
            size: None,
            sha256: None,
            width: None,
            height: None,
            created_at: now.naive_utc(),
        };
        if let RenditionRecord::Ready(r) = record {
            row.status = READY.to_owned();
            row.content_type = Some(r.content_type.clone());
            row.size = Some(to_i64(r.size)?);
            row.sha256 = Some(r.sha256.clone());
            row.width = Some(dim(r.width)?);
            row.height = Some(dim(r.height)?);
        }
        Ok(row)
    }
}

impl TryFrom<RenditionRow> for RenditionRecord {
    type Error = RowError;
    fn try_from(r: RenditionRow) -> Result<Self, RowError> {
        if r.status != READY {
            return Ok(RenditionRecord::NotDecodable);
        }
        let need = |v: Option<u32>, col| v.ok_or(RowError::Value(col));
        Ok(RenditionRecord::Ready(Rendition {
            variant: Variant::parse(&r.variant).ok_or(RowError::Value("renditions.variant"))?,
            content_type: r.content_type.ok_or(RowError::Value("renditions.content_type"))?,
            size: to_u64(r.size.ok_or(RowError::Value("renditions.size"))?, "renditions.size")?,
            sha256: r.sha256.ok_or(RowError::Value("renditions.sha256"))?,
            width: need(to_u32(r.width, "renditions.width")?, "renditions.width")?,
            height: need(to_u32(r.height, "renditions.height")?, "renditions.height")?,
            blob_key: r.blob_key,
        }))
    }
}
