//! The media repository.

use async_trait::async_trait;
use diesel::prelude::*;
use mediabox_domain::media::Media;
use mediabox_domain::ports::MediaRepository;
use mediabox_domain::{MediaId, OrgId, RepoError};

use crate::connection::{AnyConnection, Db};
use crate::rows::MediaRow;
use crate::schema::media;

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
    let row: Option<MediaRow> = media::table
        .filter(media::id.eq(id))
        .filter(media::org.eq(org))
        .select(media::all_columns)
        .first(conn)
        .optional()?;
    row.map(|r| Media::try_from(r).map_err(Into::into)).transpose()
}

#[async_trait]
impl MediaRepository for DieselMediaRepository {
    async fn find(&self, org: &OrgId, id: MediaId) -> Result<Option<Media>, RepoError> {
        let org = org.as_str().to_owned();
        self.db.run(move |c| find_media(c, &org, id.get())).await
    }
}
