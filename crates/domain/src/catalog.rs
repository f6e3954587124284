//! The catalog: products and variants that point at media (SPEC 6). A small JSON-LD
//! resource in the API; here, what makes a reference to a media valid.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::actor::{Actor, Permission};
use crate::error::{Forbidden, RepoError};
use crate::ids::{MediaId, OrgId};
use crate::ports::{CatalogRepository, Clock, MediaRepository};

/// A product's or variant's name: at most this many characters, not blank.
pub const NAME_MAX_CHARS: usize = 200;

/// Products and variants share one shape; a variant also names its product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemKind {
    Product,
    Variant,
}

impl ItemKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Product => "product",
            ItemKind::Variant => "variant",
        }
    }
}

/// A product or a variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogItem {
    pub id: i64,
    pub kind: ItemKind,
    pub org: OrgId,
    pub name: String,
    /// The product of a variant.
    pub product: Option<i64>,
    /// The media it lists, in order, by uuid.
    pub medias: Vec<uuid::Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Fields as a client sends them; `None` leaves a field alone (PATCH) or is missing (POST).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemInput {
    pub name: Option<String>,
    pub product: Option<i64>,
    /// Media by uuid; `Err(i)` marks an entry that is not a media IRI at all.
    pub medias: Option<Vec<Result<uuid::Uuid, String>>>,
}

/// A rule a field breaks: where (`medias[1]`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: String,
    pub message: String,
}

/// Why the database refused a write that the checks before it allowed: something it
/// points at was deleted meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteRejected {
    MediaGone,
    ProductGone,
}

/// What deleting an item did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemDeleted {
    Deleted,
    NotFound,
    /// A product that variants still name.
    HasVariants(Vec<i64>),
}

/// A validated write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemWrite {
    pub name: Option<String>,
    pub product: Option<i64>,
    pub medias: Option<Vec<MediaId>>,
}

/// Errors of the catalog use cases.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error("not found")]
    NotFound,
    #[error("invalid")]
    Invalid(Vec<Violation>),
    #[error("still referenced")]
    Referenced(Vec<i64>),
    #[error(transparent)]
    Repository(#[from] RepoError),
}

const MEDIA_MISSING: &str = "This value must be the IRI of a media of this organization.";
const PRODUCT_MISSING: &str = "This value must be the IRI of a product of this organization.";

/// The catalog use cases.
pub struct CatalogService {
    items: Arc<dyn CatalogRepository>,
    media: Arc<dyn MediaRepository>,
    clock: Arc<dyn Clock>,
}

impl CatalogService {
    #[must_use]
    pub fn new(items: Arc<dyn CatalogRepository>, media: Arc<dyn MediaRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { items, media, clock }
    }

    /// Checks the fields and resolves media uuids in the actor's organization.
    async fn validate(
        &self,
        actor: &Actor,
        kind: ItemKind,
        input: ItemInput,
        create: bool,
    ) -> Result<ItemWrite, CatalogError> {
        let mut violations = Vec::new();
        match &input.name {
            Some(n) if n.trim().is_empty() => {
                violations.push(Violation { path: "name".into(), message: "This value should not be blank.".into() })
            }
            Some(n) if n.chars().any(char::is_control) => violations.push(Violation {
                path: "name".into(),
                message: "This value should not contain control characters.".into(),
            }),
            Some(n) if n.chars().count() > NAME_MAX_CHARS => violations.push(Violation {
                path: "name".into(),
                message: "This value is too long (at most 200 characters).".into(),
            }),
            None if create => {
                violations.push(Violation { path: "name".into(), message: "This value should not be blank.".into() })
            }
            _ => {}
        }
        if kind == ItemKind::Variant {
            let problem = match input.product {
                Some(p) => {
                    self.items.find(ItemKind::Product, actor.org(), p).await?.is_none().then_some(PRODUCT_MISSING)
                }
                None => create.then_some("This value should not be blank."),
            };
            if let Some(message) = problem {
                violations.push(Violation { path: "product".into(), message: message.into() });
            }
        }
        let medias = match input.medias {
            None => None,
            Some(entries) => {
                let wanted: Vec<uuid::Uuid> = entries.iter().filter_map(|e| e.as_ref().ok().copied()).collect();
                let found = self.media.resolve(actor.org(), &wanted).await?;
                let mut ids = Vec::with_capacity(entries.len());
                for (i, e) in entries.iter().enumerate() {
                    match e.as_ref().ok().and_then(|u| found.iter().find(|(f, _)| f == u)) {
                        Some((_, id)) => ids.push(*id),
                        None => {
                            violations.push(Violation { path: format!("medias[{i}]"), message: MEDIA_MISSING.into() })
                        }
                    }
                }
                Some(ids)
            }
        };
        if !violations.is_empty() {
            return Err(CatalogError::Invalid(violations));
        }
        Ok(ItemWrite { name: input.name.map(|n| n.trim().to_owned()), product: input.product, medias })
    }

    fn rejected(r: WriteRejected) -> CatalogError {
        let v = match r {
            WriteRejected::MediaGone => Violation { path: "medias".into(), message: MEDIA_MISSING.into() },
            WriteRejected::ProductGone => Violation { path: "product".into(), message: PRODUCT_MISSING.into() },
        };
        CatalogError::Invalid(vec![v])
    }

    /// Creates a product or variant. Needs `catalog:write`.
    ///
    /// # Errors
    /// `Forbidden`; `Invalid` when a field breaks a rule or an IRI does not resolve in the
    /// organization (also when the media is deleted while this is written).
    pub async fn create(&self, actor: &Actor, kind: ItemKind, input: ItemInput) -> Result<CatalogItem, CatalogError> {
        actor.require(&[Permission::CatalogWrite])?;
        let w = self.validate(actor, kind, input, true).await?;
        self.items.create(kind, actor.org(), &w, self.clock.now()).await?.map_err(Self::rejected)
    }

    /// Changes some fields (merge patch). Needs `catalog:write`.
    ///
    /// # Errors
    /// As [`Self::create`], and `NotFound`.
    pub async fn update(
        &self,
        actor: &Actor,
        kind: ItemKind,
        id: i64,
        input: ItemInput,
    ) -> Result<CatalogItem, CatalogError> {
        actor.require(&[Permission::CatalogWrite])?;
        self.items.find(kind, actor.org(), id).await?.ok_or(CatalogError::NotFound)?;
        let w = self.validate(actor, kind, input, false).await?;
        self.items
            .update(kind, actor.org(), id, &w, self.clock.now())
            .await?
            .map_err(Self::rejected)?
            .ok_or(CatalogError::NotFound)
    }

    /// # Errors
    /// `Forbidden` without `media:read`; `NotFound`.
    pub async fn get(&self, actor: &Actor, kind: ItemKind, id: i64) -> Result<CatalogItem, CatalogError> {
        actor.require(&[Permission::MediaRead])?;
        self.items.find(kind, actor.org(), id).await?.ok_or(CatalogError::NotFound)
    }

    /// A page (from 1) of the organization's items, and their total.
    ///
    /// # Errors
    /// `Forbidden` without `media:read`.
    pub async fn list(
        &self,
        actor: &Actor,
        kind: ItemKind,
        page: u32,
        per_page: u32,
    ) -> Result<(Vec<CatalogItem>, u64), CatalogError> {
        actor.require(&[Permission::MediaRead])?;
        Ok(self.items.list(kind, actor.org(), page.max(1), per_page).await?)
    }

    /// Deletes an item; its media stay. Needs `catalog:write`.
    ///
    /// # Errors
    /// `Forbidden`; `NotFound`; `Referenced` for a product that variants still name.
    pub async fn delete(&self, actor: &Actor, kind: ItemKind, id: i64) -> Result<(), CatalogError> {
        actor.require(&[Permission::CatalogWrite])?;
        match self.items.delete(kind, actor.org(), id).await? {
            ItemDeleted::Deleted => Ok(()),
            ItemDeleted::NotFound => Err(CatalogError::NotFound),
            ItemDeleted::HasVariants(v) => Err(CatalogError::Referenced(v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;
    use crate::ports::{MockCatalogRepository, MockClock, MockMediaRepository};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn service(items: MockCatalogRepository, media: MockMediaRepository) -> CatalogService {
        let mut clock = MockClock::new();
        clock.expect_now().returning(Utc::now);
        CatalogService::new(Arc::new(items), Arc::new(media), Arc::new(clock))
    }

    fn writer() -> Result<Actor, crate::ids::InvalidId> {
        Ok(Actor::new(UserId::new("u-1")?, OrgId::new("acme")?, [Permission::CatalogWrite, Permission::MediaRead]))
    }

    #[tokio::test]
    async fn a_media_iri_that_does_not_resolve_is_a_violation_at_its_index() -> TestResult {
        let (known, unknown) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let mut media = MockMediaRepository::new();
        media
            .expect_resolve()
            .returning(move |_, _| Ok(vec![(known, MediaId::new(5).unwrap_or_else(|_| unreachable!()))]));
        let mut items = MockCatalogRepository::new();
        items.expect_create().never();
        let input = ItemInput {
            name: Some("Shoe".into()),
            product: None,
            medias: Some(vec![Ok(known), Ok(unknown), Err("/elsewhere/1".into())]),
        };
        let err = service(items, media).create(&writer()?, ItemKind::Product, input).await;
        let Err(CatalogError::Invalid(v)) = err else { return Err("expected violations".into()) };
        assert_eq!(v.iter().map(|x| x.path.as_str()).collect::<Vec<_>>(), vec!["medias[1]", "medias[2]"]);
        Ok(())
    }

    #[tokio::test]
    async fn changing_the_catalog_needs_catalog_write() -> TestResult {
        let reader = Actor::new(UserId::new("u-1")?, OrgId::new("acme")?, [Permission::MediaRead]);
        let svc = service(MockCatalogRepository::new(), MockMediaRepository::new());
        let err = svc.create(&reader, ItemKind::Product, ItemInput::default()).await;
        assert!(matches!(err, Err(CatalogError::Forbidden(f)) if f.missing == vec![Permission::CatalogWrite]));
        Ok(())
    }

    #[tokio::test]
    async fn a_variant_needs_a_product_of_the_organization() -> TestResult {
        let mut items = MockCatalogRepository::new();
        items.expect_find().returning(|_, _, _| Ok(None));
        let svc = service(items, MockMediaRepository::new());
        let input = ItemInput { name: Some("Red".into()), product: Some(7), medias: None };
        let Err(CatalogError::Invalid(v)) = svc.create(&writer()?, ItemKind::Variant, input).await else {
            return Err("expected violations".into());
        };
        assert_eq!(v[0].path, "product");
        Ok(())
    }
}
