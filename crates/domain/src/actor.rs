//! Who is acting: a user in one organization with that organization's permissions.

use std::collections::BTreeSet;
use std::fmt;

use crate::error::Forbidden;
use crate::ids::{OrgId, UserId};

/// A permission a token grants within one organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    MediaRead,
    MediaWrite,
    MediaDelete,
    EventWrite,
    CatalogWrite,
}

impl Permission {
    pub const ALL: [Permission; 5] = [
        Permission::MediaRead,
        Permission::MediaWrite,
        Permission::MediaDelete,
        Permission::EventWrite,
        Permission::CatalogWrite,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::MediaRead => "media:read",
            Permission::MediaWrite => "media:write",
            Permission::MediaDelete => "media:delete",
            Permission::EventWrite => "event:write",
            Permission::CatalogWrite => "catalog:write",
        }
    }

    /// The permission a claim string names; `None` for strings this service does not know.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated caller, acting in one organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    user: UserId,
    org: OrgId,
    permissions: BTreeSet<Permission>,
}

impl Actor {
    #[must_use]
    pub fn new(user: UserId, org: OrgId, permissions: impl IntoIterator<Item = Permission>) -> Self {
        Self { user, org, permissions: permissions.into_iter().collect() }
    }
    #[must_use]
    pub fn user(&self) -> &UserId {
        &self.user
    }
    #[must_use]
    pub fn org(&self) -> &OrgId {
        &self.org
    }
    #[must_use]
    pub fn has(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }

    /// # Errors
    /// [`Forbidden`] listing every permission of `needed` the actor lacks.
    pub fn require(&self, needed: &[Permission]) -> Result<(), Forbidden> {
        let missing: Vec<Permission> = needed.iter().copied().filter(|p| !self.has(*p)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Forbidden::missing(missing))
        }
    }

    /// Passes when the actor holds at least one of `any`.
    ///
    /// # Errors
    /// [`Forbidden`] listing all of `any` when the actor holds none of them.
    pub fn require_any(&self, any: &[Permission]) -> Result<(), Forbidden> {
        if any.iter().any(|p| self.has(*p)) {
            Ok(())
        } else {
            let names: Vec<&str> = any.iter().map(|p| p.as_str()).collect();
            Err(Forbidden { missing: any.to_vec(), reason: format!("needs one of: {}", names.join(", ")) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_lists_every_missing_permission() -> Result<(), Box<dyn std::error::Error>> {
        let a = Actor::new(UserId::new("u")?, OrgId::new("o")?, [Permission::MediaRead]);
        assert!(a.require(&[Permission::MediaRead]).is_ok());
        let err = a.require(&[Permission::MediaRead, Permission::MediaWrite, Permission::EventWrite]);
        assert_eq!(err, Err(Forbidden::missing(vec![Permission::MediaWrite, Permission::EventWrite])));
        Ok(())
    }

    #[test]
    fn require_any_passes_with_one_and_lists_all_without() -> Result<(), Box<dyn std::error::Error>> {
        let either = [Permission::MediaRead, Permission::MediaWrite];
        let reader = Actor::new(UserId::new("u")?, OrgId::new("o")?, [Permission::MediaRead]);
        assert!(reader.require_any(&either).is_ok());
        let none = Actor::new(UserId::new("u")?, OrgId::new("o")?, [Permission::EventWrite]);
        let err = none.require_any(&either).err().ok_or("expected forbidden")?;
        assert_eq!(err.missing, either.to_vec());
        assert_eq!(err.reason, "needs one of: media:read, media:write");
        Ok(())
    }

    #[test]
    fn permissions_round_trip_through_their_names() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
        assert_eq!(Permission::parse("media:everything"), None);
    }
}
