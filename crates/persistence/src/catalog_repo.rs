//! Products and variants (one table, `kind` tells them apart) and the media they list.
//! A media they list cannot be deleted: `catalog_item_media.media_id` has no cascade.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use mediabox_domain::catalog::{CatalogItem, ItemDeleted, ItemKind, ItemWrite, WriteRejected};
use mediabox_domain::ports::CatalogRepository;
use mediabox_domain::{OrgId, RepoError};

use crate::connection::{is_fk_violation, AnyConnection, Db, TxError};
use crate::rows::utc;
use crate::schema::{catalog_item_media, catalog_items, media};

/// The catalog through diesel.
#[derive(Debug, Clone)]
pub struct DieselCatalogRepository {
    db: Db,
}

impl DieselCatalogRepository {
    #[must_use]
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

type ItemRow = (i64, String, Option<i64>, String, NaiveDateTime, NaiveDateTime);

fn bad_row(what: &'static str) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(what.into())
}

/// The media uuids of items, in list order.
fn medias_of(c: &mut AnyConnection, ids: &[i64]) -> QueryResult<HashMap<i64, Vec<uuid::Uuid>>> {
    let rows: Vec<(i64, String)> = catalog_item_media::table
        .inner_join(media::table)
        .filter(catalog_item_media::item_id.eq_any(ids))
        .order((catalog_item_media::item_id, catalog_item_media::position))
        .select((catalog_item_media::item_id, media::uuid))
        .load(c)?;
    let mut out: HashMap<i64, Vec<uuid::Uuid>> = HashMap::new();
    for (item, u) in rows {
        out.entry(item).or_default().push(uuid::Uuid::parse_str(&u).map_err(|_| bad_row("media.uuid"))?);
    }
    Ok(out)
}

fn to_item(kind: ItemKind, row: ItemRow, medias: Vec<uuid::Uuid>) -> QueryResult<CatalogItem> {
    let (id, org, product, name, created, updated) = row;
    Ok(CatalogItem {
        id,
        kind,
        org: OrgId::new(org).map_err(|_| bad_row("catalog_items.org"))?,
        name,
        product,
        medias,
        created_at: utc(created),
        updated_at: utc(updated),
    })
}

type ItemColumns = (
    catalog_items::id,
    catalog_items::org,
    catalog_items::product_id,
    catalog_items::name,
    catalog_items::created_at,
    catalog_items::updated_at,
);

/// The columns of an [`ItemRow`], in its order.
const ITEM_COLUMNS: ItemColumns = (
    catalog_items::id,
    catalog_items::org,
    catalog_items::product_id,
    catalog_items::name,
    catalog_items::created_at,
    catalog_items::updated_at,
);

fn find_item(c: &mut AnyConnection, kind: ItemKind, org: &str, id: i64) -> QueryResult<Option<CatalogItem>> {
    let row: Option<ItemRow> = catalog_items::table
        .filter(catalog_items::id.eq(id))
        .filter(catalog_items::org.eq(org))
        .filter(catalog_items::kind.eq(kind.as_str()))
        .select(ITEM_COLUMNS)
        .first(c)
        .optional()?;
    let Some(row) = row else { return Ok(None) };
    let medias = medias_of(c, &[id])?.remove(&id).unwrap_or_default();
    to_item(kind, row, medias).map(Some)
}

/// Whether `product` is a product of `org`.
fn product_exists(c: &mut AnyConnection, org: &str, product: i64) -> QueryResult<bool> {
    Ok(find_item(c, ItemKind::Product, org, product)?.is_some())
}

/// Replaces an item's media list. A media deleted meanwhile fails the foreign key.
fn write_medias(
    c: &mut AnyConnection,
    item: i64,
    medias: &[mediabox_domain::MediaId],
) -> Result<(), TxError<WriteRejected>> {
    diesel::delete(catalog_item_media::table.filter(catalog_item_media::item_id.eq(item))).execute(c)?;
    for (pos, m) in medias.iter().enumerate() {
        let pos = i32::try_from(pos).map_err(|_| bad_row("too many media"))?;
        let r = diesel::insert_into(catalog_item_media::table)
            .values((
                catalog_item_media::item_id.eq(item),
                catalog_item_media::position.eq(pos),
                catalog_item_media::media_id.eq(m.get()),
            ))
            .execute(c);
        match r {
            Err(e) if is_fk_violation(&e) => return Err(TxError::Rollback(WriteRejected::MediaGone)),
            other => {
                other?;
            }
        }
    }
    Ok(())
}

#[async_trait]
impl CatalogRepository for DieselCatalogRepository {
    async fn create(
        &self,
        kind: ItemKind,
        org: &OrgId,
        write: &ItemWrite,
        now: DateTime<Utc>,
    ) -> Result<Result<CatalogItem, WriteRejected>, RepoError> {
        let (org, w) = (org.as_str().to_owned(), write.clone());
        self.db
            .write(move |c| {
                if let Some(p) = w.product {
                    if !product_exists(c, &org, p)? {
                        return Err(TxError::Rollback(WriteRejected::ProductGone));
                    }
                }
                let inserted = diesel::insert_into(catalog_items::table)
                    .values((
                        catalog_items::org.eq(&org),
                        catalog_items::kind.eq(kind.as_str()),
                        catalog_items::product_id.eq(w.product),
                        catalog_items::name.eq(w.name.clone().unwrap_or_default()),
                        catalog_items::created_at.eq(now.naive_utc()),
                        catalog_items::updated_at.eq(now.naive_utc()),
                    ))
                    .returning(catalog_items::id)
                    .get_result::<i64>(c);
                let id = match inserted {
                    Err(e) if is_fk_violation(&e) => return Err(TxError::Rollback(WriteRejected::ProductGone)),
                    other => other?,
                };
                write_medias(c, id, w.medias.as_deref().unwrap_or_default())?;
                find_item(c, kind, &org, id)?.ok_or_else(|| TxError::Db(diesel::result::Error::NotFound))
            })
            .await
    }

    async fn update(
        &self,
        kind: ItemKind,
        org: &OrgId,
        id: i64,
        write: &ItemWrite,
        now: DateTime<Utc>,
    ) -> Result<Result<Option<CatalogItem>, WriteRejected>, RepoError> {
        let (org, w) = (org.as_str().to_owned(), write.clone());
        self.db
            .write(move |c| {
                if find_item(c, kind, &org, id)?.is_none() {
                    return Ok(None);
                }
                if let Some(p) = w.product {
                    if !product_exists(c, &org, p)? {
                        return Err(TxError::Rollback(WriteRejected::ProductGone));
                    }
                }
                let target = catalog_items::table.filter(catalog_items::id.eq(id));
                diesel::update(target).set(catalog_items::updated_at.eq(now.naive_utc())).execute(c)?;
                if let Some(name) = &w.name {
                    diesel::update(target).set(catalog_items::name.eq(name)).execute(c)?;
                }
                if let Some(p) = w.product {
                    match diesel::update(target).set(catalog_items::product_id.eq(p)).execute(c) {
                        Err(e) if is_fk_violation(&e) => return Err(TxError::Rollback(WriteRejected::ProductGone)),
                        other => {
                            other?;
                        }
                    }
                }
                if let Some(m) = &w.medias {
                    write_medias(c, id, m)?;
                }
                Ok(find_item(c, kind, &org, id)?)
            })
            .await
    }

    async fn find(&self, kind: ItemKind, org: &OrgId, id: i64) -> Result<Option<CatalogItem>, RepoError> {
        let org = org.as_str().to_owned();
        self.db.run(move |c| find_item(c, kind, &org, id)).await
    }

    async fn list(
        &self,
        kind: ItemKind,
        org: &OrgId,
        page: u32,
        per_page: u32,
    ) -> Result<(Vec<CatalogItem>, u64), RepoError> {
        let org = org.as_str().to_owned();
        self.db
            .run(move |c| {
                let base = catalog_items::table
                    .filter(catalog_items::org.eq(&org))
                    .filter(catalog_items::kind.eq(kind.as_str()));
                let total: i64 = base.count().get_result(c)?;
                let rows: Vec<ItemRow> = base
                    .order(catalog_items::id.asc())
                    .limit(i64::from(per_page))
                    .offset(i64::from(page.saturating_sub(1)) * i64::from(per_page))
                    .select(ITEM_COLUMNS)
                    .load(c)?;
                let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
                let mut medias = medias_of(c, &ids)?;
                let items = rows
                    .into_iter()
                    .map(|r| {
                        let id = r.0;
                        to_item(kind, r, medias.remove(&id).unwrap_or_default())
                    })
                    .collect::<QueryResult<Vec<_>>>()?;
                Ok((items, u64::try_from(total).unwrap_or(0)))
            })
            .await
    }

    async fn delete(&self, kind: ItemKind, org: &OrgId, id: i64) -> Result<ItemDeleted, RepoError> {
        // A variant created meanwhile makes the delete fail its foreign key: look again.
        for _ in 0..3 {
            if let Ok(done) = self.delete_once(kind, org, id).await? {
                return Ok(done);
            }
        }
        Err(RepoError::Other("variants kept being added to the product being deleted".into()))
    }
}

impl DieselCatalogRepository {
    async fn delete_once(&self, kind: ItemKind, org: &OrgId, id: i64) -> Result<Result<ItemDeleted, ()>, RepoError> {
        let org = org.as_str().to_owned();
        self.db
            .write(move |c| {
                if find_item(c, kind, &org, id)?.is_none() {
                    return Ok(ItemDeleted::NotFound);
                }
                let variants: Vec<i64> = catalog_items::table
                    .filter(catalog_items::product_id.eq(id))
                    .order(catalog_items::id.asc())
                    .select(catalog_items::id)
                    .load(c)?;
                if !variants.is_empty() {
                    return Ok(ItemDeleted::HasVariants(variants));
                }
                diesel::delete(catalog_item_media::table.filter(catalog_item_media::item_id.eq(id))).execute(c)?;
                match diesel::delete(catalog_items::table.filter(catalog_items::id.eq(id))).execute(c) {
                    Err(e) if is_fk_violation(&e) => Err(TxError::Rollback(())),
                    other => {
                        other?;
                        Ok(ItemDeleted::Deleted)
                    }
                }
            })
            .await
    }
}
