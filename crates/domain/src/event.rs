//! Events, their managers and their photo gallery.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::actor::{Actor, Permission};
use crate::error::{Forbidden, RepoError};
use crate::ids::{EventId, MediaId, OrgId, UserId};
use crate::media::Media;
use crate::page::{Page, PageRequest};
use crate::ports::{Clock, EventRepository, MediaRepository};

/// At most this many media leave a gallery in one request.
pub const MAX_GALLERY_REMOVE: usize = 1000;
/// An event's title: 1 to this many characters, not blank.
pub const TITLE_MAX_CHARS: usize = 200;
/// An event's description: at most this many characters.
pub const DESCRIPTION_MAX_CHARS: usize = 10_000;

/// An event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: EventId,
    pub org: OrgId,
    pub title: String,
    pub description: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub managers: Vec<UserId>,
    pub gallery_count: u64,
    pub created_at: DateTime<Utc>,
}

impl Event {
    #[must_use]
    pub fn is_manager(&self, user: &UserId) -> bool {
        self.managers.contains(user)
    }
}

/// An event about to be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub org: OrgId,
    pub title: String,
    pub description: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The fields a PATCH changes; `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventPatch {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub starts_at: Option<Option<DateTime<Utc>>>,
    pub ends_at: Option<Option<DateTime<Utc>>>,
}

/// What removing a manager did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveManagerOutcome {
    Removed,
    NotAManager,
    LastManager,
}

/// The fields of an event as a client sends them, before the rules are checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventInput {
    pub title: String,
    pub description: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

/// Errors of the event use cases.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error("event not found")]
    NotFound,
    #[error("media not found")]
    MediaNotFound,
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("an event keeps at least one manager")]
    LastManager,
    #[error(transparent)]
    Repository(#[from] RepoError),
}

fn check_title(title: &str) -> Result<(), EventError> {
    if title.trim().is_empty() {
        return Err(EventError::Invalid { field: "title", reason: "must not be empty".into() });
    }
    if title.chars().count() > TITLE_MAX_CHARS {
        return Err(EventError::Invalid {
            field: "title",
            reason: format!("must be at most {TITLE_MAX_CHARS} characters"),
        });
    }
    Ok(())
}

fn check_dates(starts: Option<DateTime<Utc>>, ends: Option<DateTime<Utc>>) -> Result<(), EventError> {
    if let (Some(s), Some(e)) = (starts, ends) {
        if e < s {
            return Err(EventError::Invalid { field: "ends_at", reason: "must not be before starts_at".into() });
        }
    }
    Ok(())
}

/// The event and gallery use cases.
pub struct EventService {
    events: Arc<dyn EventRepository>,
    media: Arc<dyn MediaRepository>,
    clock: Arc<dyn Clock>,
}

impl EventService {
    #[must_use]
    pub fn new(events: Arc<dyn EventRepository>, media: Arc<dyn MediaRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { events, media, clock }
    }

    /// Creates an event; its creator is its first manager.
    ///
    /// # Errors
    /// `Forbidden` without `event:write`; `Invalid` for an empty title or ends before starts.
    pub async fn create(&self, actor: &Actor, input: EventInput) -> Result<Event, EventError> {
        actor.require(&[Permission::EventWrite])?;
        check_title(&input.title)?;
        check_dates(input.starts_at, input.ends_at)?;
        let new = NewEvent {
            org: actor.org().clone(),
            title: input.title.trim().to_owned(),
            description: input.description,
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            created_at: self.clock.now(),
        };
        Ok(self.events.create(&new, actor.user()).await?)
    }

    /// # Errors
    /// `Forbidden` without `media:read`; `NotFound` outside the actor's organization.
    pub async fn get(&self, actor: &Actor, id: EventId) -> Result<Event, EventError> {
        actor.require(&[Permission::MediaRead])?;
        self.events.find(actor.org(), id).await?.ok_or(EventError::NotFound)
    }

    /// # Errors
    /// `Forbidden` without `media:read`.
    pub async fn list(&self, actor: &Actor, page: PageRequest) -> Result<Page<Event>, EventError> {
        actor.require(&[Permission::MediaRead])?;
        Ok(self.events.list(actor.org(), page).await?)
    }

    async fn managed(&self, actor: &Actor, id: EventId) -> Result<Event, EventError> {
        let event = self.events.find(actor.org(), id).await?.ok_or(EventError::NotFound)?;
        if !event.is_manager(actor.user()) {
            return Err(Forbidden::rule("only a manager of the event may do this").into());
        }
        Ok(event)
    }

    /// Changes an event's fields.
    ///
    /// # Errors
    /// `NotFound`; `Forbidden` for a caller who is not a manager; `Invalid`.
    pub async fn update(&self, actor: &Actor, id: EventId, patch: EventPatch) -> Result<Event, EventError> {
        let event = self.managed(actor, id).await?;
        if let Some(t) = &patch.title {
            check_title(t)?;
        }
        let starts = patch.starts_at.unwrap_or(event.starts_at);
        let ends = patch.ends_at.unwrap_or(event.ends_at);
        check_dates(starts, ends)?;
        let patch = EventPatch { title: patch.title.map(|t| t.trim().to_owned()), ..patch };
        self.events.update(actor.org(), id, &patch).await?.ok_or(EventError::NotFound)
    }

    /// Deletes an event and empties its gallery; the media stay.
    ///
    /// # Errors
    /// `NotFound`; `Forbidden` for a caller who is not a manager.
    pub async fn delete(&self, actor: &Actor, id: EventId) -> Result<(), EventError> {
        self.managed(actor, id).await?;
        if self.events.delete(actor.org(), id).await? {
            Ok(())
        } else {
            Err(EventError::NotFound)
        }
    }

    /// Adds a manager.
    ///
    /// # Errors
    /// `NotFound`; `Forbidden` for a caller who is not a manager.
    pub async fn add_manager(&self, actor: &Actor, id: EventId, user: UserId) -> Result<Event, EventError> {
        self.managed(actor, id).await?;
        self.events.add_manager(id, &user).await?;
        self.events.find(actor.org(), id).await?.ok_or(EventError::NotFound)
    }

    /// Removes a manager; removing one who is not a manager changes nothing.
    ///
    /// # Errors
    /// `NotFound`; `Forbidden` for a caller who is not a manager; `LastManager` (409).
    pub async fn remove_manager(&self, actor: &Actor, id: EventId, user: UserId) -> Result<(), EventError> {
        self.managed(actor, id).await?;
        match self.events.remove_manager(id, &user).await? {
            RemoveManagerOutcome::Removed | RemoveManagerOutcome::NotAManager => Ok(()),
            RemoveManagerOutcome::LastManager => Err(EventError::LastManager),
        }
    }

    /// Adds a media to the event's gallery (seed 001). Adding one already there is a no-op.
    ///
    /// # Errors
    /// `NotFound` for an event outside the organization; `Forbidden` for a caller who is
    /// not a manager; `MediaNotFound` for a media outside the organization; `Forbidden`
    /// for a media the caller did not upload.
    pub async fn add_to_gallery(&self, actor: &Actor, id: EventId, media: MediaId) -> Result<Media, EventError> {
        self.managed(actor, id).await?;
        let media = self.media.find(actor.org(), media).await?.ok_or(EventError::MediaNotFound)?;
        if media.uploaded_by != *actor.user() {
            return Err(Forbidden::rule("only the user who uploaded a media may add it to a gallery").into());
        }
        if !self.events.add_to_gallery(id, media.id).await? {
            // Deleted between the lookup and the write.
            return Err(EventError::MediaNotFound);
        }
        Ok(media)
    }

    /// Removes media from the gallery (seed 000): all or nothing; ids not in it are ignored.
    ///
    /// # Errors
    /// `Invalid` for more than [`MAX_GALLERY_REMOVE`] ids; `NotFound`; `Forbidden` for a
    /// caller who is not a manager.
    pub async fn remove_from_gallery(&self, actor: &Actor, id: EventId, media: &[MediaId]) -> Result<(), EventError> {
        if media.len() > MAX_GALLERY_REMOVE {
            return Err(EventError::Invalid {
                field: "medias",
                reason: format!("at most {MAX_GALLERY_REMOVE} ids per request"),
            });
        }
        self.managed(actor, id).await?;
        if media.is_empty() {
            return Ok(());
        }
        Ok(self.events.remove_from_gallery(id, media).await?)
    }

    /// A page of the gallery in the order added.
    ///
    /// # Errors
    /// `Forbidden` without `media:read`; `NotFound`.
    pub async fn gallery(&self, actor: &Actor, id: EventId, page: PageRequest) -> Result<Page<Media>, EventError> {
        actor.require(&[Permission::MediaRead])?;
        self.events.find(actor.org(), id).await?.ok_or(EventError::NotFound)?;
        Ok(self.events.gallery(id, page).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::MediaKind;
    use crate::ports::{MockClock, MockEventRepository, MockMediaRepository};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn event(managers: &[&str]) -> Result<Event, crate::ids::InvalidId> {
        Ok(Event {
            id: EventId::new(1)?,
            org: OrgId::new("acme")?,
            title: "Party".into(),
            description: None,
            starts_at: None,
            ends_at: None,
            managers: managers.iter().map(|m| UserId::new(*m)).collect::<Result<_, _>>()?,
            gallery_count: 0,
            created_at: Utc::now(),
        })
    }

    fn media(uploader: &str) -> Result<Media, crate::ids::InvalidId> {
        Ok(Media {
            id: MediaId::new(42)?,
            uuid: uuid::Uuid::new_v4(),
            org: OrgId::new("acme")?,
            uploaded_by: UserId::new(uploader)?,
            filename: "a.png".into(),
            content_type: "image/png".into(),
            size: 1,
            sha256: String::new(),
            md5: String::new(),
            kind: MediaKind::Image,
            width: Some(1),
            height: Some(1),
            duration_ms: None,
            created_at: Utc::now(),
            blob_key: String::new(),
        })
    }

    fn actor(user: &str) -> Result<Actor, crate::ids::InvalidId> {
        Ok(Actor::new(UserId::new(user)?, OrgId::new("acme")?, [Permission::MediaRead]))
    }

    fn service(events: MockEventRepository, media: MockMediaRepository) -> EventService {
        let mut clock = MockClock::new();
        clock.expect_now().returning(Utc::now);
        EventService::new(Arc::new(events), Arc::new(media), Arc::new(clock))
    }

    #[tokio::test]
    async fn a_manager_adds_media_they_uploaded() -> TestResult {
        let (e, m) = (event(&["u-1"])?, media("u-1")?);
        let mut events = MockEventRepository::new();
        events.expect_find().returning(move |_, _| Ok(Some(e.clone())));
        events.expect_add_to_gallery().times(1).returning(|_, _| Ok(true));
        let mut repo = MockMediaRepository::new();
        repo.expect_find().returning(move |_, _| Ok(Some(m.clone())));
        let got = service(events, repo).add_to_gallery(&actor("u-1")?, EventId::new(1)?, MediaId::new(42)?).await?;
        assert_eq!(got.id.get(), 42);
        Ok(())
    }

    #[tokio::test]
    async fn adding_media_uploaded_by_someone_else_is_forbidden() -> TestResult {
        let (e, m) = (event(&["u-1", "u-2"])?, media("u-2")?);
        let mut events = MockEventRepository::new();
        events.expect_find().returning(move |_, _| Ok(Some(e.clone())));
        events.expect_add_to_gallery().never();
        let mut repo = MockMediaRepository::new();
        repo.expect_find().returning(move |_, _| Ok(Some(m.clone())));
        let err = service(events, repo).add_to_gallery(&actor("u-1")?, EventId::new(1)?, MediaId::new(42)?).await;
        assert!(matches!(err, Err(EventError::Forbidden(_))));
        Ok(())
    }

    #[tokio::test]
    async fn a_caller_who_is_not_a_manager_cannot_add() -> TestResult {
        let e = event(&["u-2"])?;
        let mut events = MockEventRepository::new();
        events.expect_find().returning(move |_, _| Ok(Some(e.clone())));
        events.expect_add_to_gallery().never();
        let err = service(events, MockMediaRepository::new())
            .add_to_gallery(&actor("u-1")?, EventId::new(1)?, MediaId::new(42)?)
            .await;
        assert!(matches!(err, Err(EventError::Forbidden(_))));
        Ok(())
    }

    #[tokio::test]
    async fn a_media_of_another_organization_is_not_found() -> TestResult {
        let e = event(&["u-1"])?;
        let mut events = MockEventRepository::new();
        events.expect_find().returning(move |_, _| Ok(Some(e.clone())));
        let mut repo = MockMediaRepository::new();
        repo.expect_find().returning(|_, _| Ok(None));
        let err = service(events, repo).add_to_gallery(&actor("u-1")?, EventId::new(1)?, MediaId::new(42)?).await;
        assert!(matches!(err, Err(EventError::MediaNotFound)));
        Ok(())
    }

    #[tokio::test]
    async fn removing_more_than_a_thousand_ids_is_refused_before_any_lookup() -> TestResult {
        let ids: Vec<MediaId> = (1..=1001).map(MediaId::new).collect::<Result<_, _>>()?;
        let err = service(MockEventRepository::new(), MockMediaRepository::new())
            .remove_from_gallery(&actor("u-1")?, EventId::new(1)?, &ids)
            .await;
        assert!(matches!(err, Err(EventError::Invalid { field: "medias", .. })));
        Ok(())
    }

    #[tokio::test]
    async fn the_last_manager_stays() -> TestResult {
        let e = event(&["u-1"])?;
        let mut events = MockEventRepository::new();
        events.expect_find().returning(move |_, _| Ok(Some(e.clone())));
        events.expect_remove_manager().returning(|_, _| Ok(RemoveManagerOutcome::LastManager));
        let err = service(events, MockMediaRepository::new())
            .remove_manager(&actor("u-1")?, EventId::new(1)?, UserId::new("u-1")?)
            .await;
        assert!(matches!(err, Err(EventError::LastManager)));
        Ok(())
    }

    #[tokio::test]
    async fn creating_an_event_needs_event_write_and_a_title() -> TestResult {
        let svc = service(MockEventRepository::new(), MockMediaRepository::new());
        let err = svc.create(&actor("u-1")?, EventInput { title: "x".into(), ..EventInput::default() }).await;
        assert!(matches!(err, Err(EventError::Forbidden(f)) if f.missing == vec![Permission::EventWrite]));
        let writer = Actor::new(UserId::new("u-1")?, OrgId::new("acme")?, [Permission::EventWrite]);
        let err = svc.create(&writer, EventInput { title: "  ".into(), ..EventInput::default() }).await;
        assert!(matches!(err, Err(EventError::Invalid { field: "title", .. })));
        Ok(())
    }
}
