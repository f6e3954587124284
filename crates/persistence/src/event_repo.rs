//! The event repository: events, managers and galleries. Every change that must hold a
//! rule (last manager, gallery count) first touches the event's row, which makes
//! concurrent changes of one event take turns on PostgreSQL as on SQLite.

use std::collections::HashMap;

use async_trait::async_trait;
use diesel::prelude::*;
use mediabox_domain::event::{Event, EventPatch, NewEvent, RemoveManagerOutcome};
use mediabox_domain::media::Media;
use mediabox_domain::page::{Cursor, Page, PageRequest};
use mediabox_domain::ports::EventRepository;
use mediabox_domain::{EventId, MediaId, OrgId, RepoError, UserId};

use crate::connection::{is_fk_violation, AnyConnection, Db, TxError};
use crate::rows::{EventChanges, EventRow, MediaRow, NewEventRow};
use crate::schema::{event_managers, events, gallery_items, media};

/// Events through diesel.
#[derive(Debug, Clone)]
pub struct DieselEventRepository {
    db: Db,
}

impl DieselEventRepository {
    #[must_use]
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

fn managers_of(conn: &mut AnyConnection, ids: &[i64]) -> QueryResult<HashMap<i64, Vec<String>>> {
    let rows: Vec<(i64, String)> = event_managers::table
        .filter(event_managers::event_id.eq_any(ids))
        .order((event_managers::event_id, event_managers::user_id))
        .select((event_managers::event_id, event_managers::user_id))
        .load(conn)?;
    let mut map: HashMap<i64, Vec<String>> = HashMap::new();
    for (e, u) in rows {
        map.entry(e).or_default().push(u);
    }
    Ok(map)
}

fn find_event(conn: &mut AnyConnection, org: &str, id: i64) -> QueryResult<Option<Event>> {
    let row: Option<EventRow> =
        events::table.filter(events::id.eq(id)).filter(events::org.eq(org)).first(conn).optional()?;
    let Some(row) = row else { return Ok(None) };
    let managers = managers_of(conn, &[id])?.remove(&id).unwrap_or_default();
    Ok(Some(row.into_domain(managers)?))
}

/// Takes the event's row lock for the rest of the transaction (a no-op update).
fn lock_event(conn: &mut AnyConnection, id: i64) -> QueryResult<bool> {
    let n =
        diesel::update(events::table.find(id)).set(events::gallery_count.eq(events::gallery_count)).execute(conn)?;
    Ok(n == 1)
}

/// Turns `size + 1` rows fetched in cursor direction into a page in ascending order.
/// `other_side` tells whether anything lies beyond the cursor, behind the page.
fn assemble<T>(
    mut rows: Vec<(i64, T)>,
    page: PageRequest,
    count: u64,
    other_side: impl FnOnce(&Cursor) -> QueryResult<bool>,
) -> QueryResult<Page<T>> {
    let size = page.size as usize;
    let more = rows.len() > size;
    rows.truncate(size);
    let (has_next, has_previous) = match page.cursor {
        None => (more, false),
        Some(c @ Cursor::After(_)) => (more, other_side(&c)?),
        Some(c @ Cursor::Before(_)) => {
            rows.reverse();
            (other_side(&c)?, more)
        }
    };
    Ok(Page { items: rows, count, has_next, has_previous })
}

#[async_trait]
impl EventRepository for DieselEventRepository {
    async fn create(&self, event: &NewEvent, manager: &UserId) -> Result<Event, RepoError> {
        let row = NewEventRow {
            org: event.org.as_str().to_owned(),
            title: event.title.clone(),
            description: event.description.clone(),
            starts_at: event.starts_at.map(|t| t.naive_utc()),
            ends_at: event.ends_at.map(|t| t.naive_utc()),
            gallery_count: 0,
            created_at: event.created_at.naive_utc(),
        };
        let (org, manager) = (event.org.as_str().to_owned(), manager.as_str().to_owned());
        self.db
            .tx(move |c| {
                let id: i64 = diesel::insert_into(events::table).values(&row).returning(events::id).get_result(c)?;
                diesel::insert_into(event_managers::table)
                    .values((event_managers::event_id.eq(id), event_managers::user_id.eq(&manager)))
                    .execute(c)?;
                find_event(c, &org, id)?.ok_or(diesel::result::Error::NotFound)
            })
            .await
    }

    async fn find(&self, org: &OrgId, id: EventId) -> Result<Option<Event>, RepoError> {
        let org = org.as_str().to_owned();
        self.db.run(move |c| find_event(c, &org, id.get())).await
    }

    async fn list(&self, org: &OrgId, page: PageRequest) -> Result<Page<Event>, RepoError> {
        let org = org.as_str().to_owned();
        self.db
            .run(move |c| {
                let limit = i64::from(page.size) + 1;
                let base = events::table.filter(events::org.eq(&org)).into_boxed();
                let rows: Vec<EventRow> = match page.cursor {
                    None => base.order(events::id.asc()).limit(limit).load(c)?,
                    Some(Cursor::After(p)) => {
                        base.filter(events::id.gt(p)).order(events::id.asc()).limit(limit).load(c)?
                    }
                    Some(Cursor::Before(p)) => {
                        base.filter(events::id.lt(p)).order(events::id.desc()).limit(limit).load(c)?
                    }
                };
                let count: i64 = events::table.filter(events::org.eq(&org)).count().get_result(c)?;
                let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                let mut managers = managers_of(c, &ids)?;
                let items = rows
                    .into_iter()
                    .map(|r| {
                        let id = r.id;
                        r.into_domain(managers.remove(&id).unwrap_or_default()).map(|e| (id, e))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let other_side = |cur: &Cursor| {
                    let q = events::table.filter(events::org.eq(&org)).select(events::id).into_boxed();
                    let q = match *cur {
                        Cursor::After(p) => q.filter(events::id.le(p)),
                        Cursor::Before(p) => q.filter(events::id.ge(p)),
                    };
                    Ok(q.first::<i64>(c).optional()?.is_some())
                };
                assemble(items, page, u64::try_from(count).unwrap_or(0), other_side)
            })
            .await
    }

    async fn update(&self, org: &OrgId, id: EventId, patch: &EventPatch) -> Result<Option<Event>, RepoError> {
        let org = org.as_str().to_owned();
        let changes = EventChanges {
            title: patch.title.clone(),
            description: patch.description.clone(),
            starts_at: patch.starts_at.map(|o| o.map(|t| t.naive_utc())),
            ends_at: patch.ends_at.map(|o| o.map(|t| t.naive_utc())),
        };
        let empty = patch == &EventPatch::default();
        self.db
            .tx(move |c| {
                if !empty {
                    diesel::update(events::table.filter(events::id.eq(id.get())).filter(events::org.eq(&org)))
                        .set(&changes)
                        .execute(c)?;
                }
                find_event(c, &org, id.get())
            })
            .await
    }

    async fn delete(&self, org: &OrgId, id: EventId) -> Result<bool, RepoError> {
        let org = org.as_str().to_owned();
        self.db
            .tx(move |c| {
                // Children first: SQLite's cascade needs foreign_keys on, which a pool
                // connection always has, but an explicit delete does not depend on it.
                let owned = events::table
                    .filter(events::id.eq(id.get()))
                    .filter(events::org.eq(&org))
                    .select(events::id)
                    .first::<i64>(c)
                    .optional()?;
                if owned.is_none() {
                    return Ok(false);
                }
                diesel::delete(gallery_items::table.filter(gallery_items::event_id.eq(id.get()))).execute(c)?;
                diesel::delete(event_managers::table.filter(event_managers::event_id.eq(id.get()))).execute(c)?;
                Ok(diesel::delete(events::table.find(id.get())).execute(c)? == 1)
            })
            .await
    }

    async fn add_manager(&self, id: EventId, user: &UserId) -> Result<(), RepoError> {
        let user = user.as_str().to_owned();
        self.db
            .tx(move |c| {
                if !lock_event(c, id.get())? {
                    return Err(diesel::result::Error::NotFound);
                }
                let there = event_managers::table
                    .find((id.get(), &user))
                    .select(event_managers::user_id)
                    .first::<String>(c)
                    .optional()?;
                if there.is_none() {
                    diesel::insert_into(event_managers::table)
                        .values((event_managers::event_id.eq(id.get()), event_managers::user_id.eq(&user)))
                        .execute(c)?;
                }
                Ok(())
            })
            .await
    }

    async fn remove_manager(&self, id: EventId, user: &UserId) -> Result<RemoveManagerOutcome, RepoError> {
        let user = user.as_str().to_owned();
        self.db
            .tx(move |c| {
                if !lock_event(c, id.get())? {
                    return Err(diesel::result::Error::NotFound);
                }
                let managers: Vec<String> = event_managers::table
                    .filter(event_managers::event_id.eq(id.get()))
                    .select(event_managers::user_id)
                    .load(c)?;
                if !managers.contains(&user) {
                    return Ok(RemoveManagerOutcome::NotAManager);
                }
                if managers.len() == 1 {
                    return Ok(RemoveManagerOutcome::LastManager);
                }
                diesel::delete(event_managers::table.find((id.get(), &user))).execute(c)?;
                Ok(RemoveManagerOutcome::Removed)
            })
            .await
    }

    async fn add_to_gallery(&self, id: EventId, media_id: MediaId) -> Result<bool, RepoError> {
        let added = self
            .db
            .write(move |c| {
                if !lock_event(c, id.get())? {
                    return Err(TxError::Db(diesel::result::Error::NotFound));
                }
                let there = gallery_items::table
                    .filter(gallery_items::event_id.eq(id.get()))
                    .filter(gallery_items::media_id.eq(media_id.get()))
                    .select(gallery_items::id)
                    .first::<i64>(c)
                    .optional()?;
                if there.is_none() {
                    let inserted = diesel::insert_into(gallery_items::table)
                        .values((gallery_items::event_id.eq(id.get()), gallery_items::media_id.eq(media_id.get())))
                        .execute(c);
                    match inserted {
                        // The media was deleted meanwhile (its foreign key says so).
                        Err(e) if is_fk_violation(&e) => return Err(TxError::Rollback(())),
                        other => {
                            other?;
                        }
                    }
                    diesel::update(events::table.find(id.get()))
                        .set(events::gallery_count.eq(events::gallery_count + 1))
                        .execute(c)?;
                }
                Ok(())
            })
            .await?;
        Ok(added.is_ok())
    }

    async fn remove_from_gallery(&self, id: EventId, media_ids: &[MediaId]) -> Result<(), RepoError> {
        let ids: Vec<i64> = media_ids.iter().map(|m| m.get()).collect();
        self.db
            .tx(move |c| {
                if !lock_event(c, id.get())? {
                    return Err(diesel::result::Error::NotFound);
                }
                let removed = diesel::delete(
                    gallery_items::table
                        .filter(gallery_items::event_id.eq(id.get()))
                        .filter(gallery_items::media_id.eq_any(&ids)),
                )
                .execute(c)?;
                let removed = i64::try_from(removed).unwrap_or(i64::MAX);
                diesel::update(events::table.find(id.get()))
                    .set(events::gallery_count.eq(events::gallery_count - removed))
                    .execute(c)?;
                Ok(())
            })
            .await
    }

    async fn gallery(&self, id: EventId, page: PageRequest) -> Result<Page<Media>, RepoError> {
        self.db
            .run(move |c| {
                let limit = i64::from(page.size) + 1;
                let base = gallery_items::table
                    .inner_join(media::table)
                    .filter(gallery_items::event_id.eq(id.get()))
                    .select((gallery_items::id, media::all_columns))
                    .into_boxed();
                let rows: Vec<(i64, MediaRow)> = match page.cursor {
                    None => base.order(gallery_items::id.asc()).limit(limit).load(c)?,
                    Some(Cursor::After(p)) => {
                        base.filter(gallery_items::id.gt(p)).order(gallery_items::id.asc()).limit(limit).load(c)?
                    }
                    Some(Cursor::Before(p)) => {
                        base.filter(gallery_items::id.lt(p)).order(gallery_items::id.desc()).limit(limit).load(c)?
                    }
                };
                let items = rows
                    .into_iter()
                    .map(|(pos, r)| Media::try_from(r).map(|m| (pos, m)))
                    .collect::<Result<Vec<_>, _>>()?;
                // The count and, for a page after or before a cursor, whether entries lie
                // on the cursor's other side: one statement, so that a page deep in a
                // gallery costs what the first one does.
                let event = events::table.find(id.get());
                let (count, other): (i64, bool) = match page.cursor {
                    None => (event.select(events::gallery_count).first(c)?, false),
                    Some(cur) => {
                        let entries =
                            gallery_items::table.filter(gallery_items::event_id.eq(id.get())).select(gallery_items::id);
                        let count = events::gallery_count;
                        match cur {
                            Cursor::After(p) => {
                                let before = diesel::dsl::exists(entries.filter(gallery_items::id.le(p)));
                                event.select((count, before)).first(c)?
                            }
                            Cursor::Before(p) => {
                                let after = diesel::dsl::exists(entries.filter(gallery_items::id.ge(p)));
                                event.select((count, after)).first(c)?
                            }
                        }
                    }
                };
                assemble(items, page, u64::try_from(count).unwrap_or(0), |_| Ok(other))
            })
            .await
    }
}
