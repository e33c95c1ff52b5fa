//! Who may do what: staff roles, the permissions each grants, and the actor
//! behind every request. Checked by the application layer before any use
//! case acts, never by HTTP handlers.

use serde::{Deserialize, Serialize};

/// A staff role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including staff accounts.
    Admin,
    /// Records and items.
    Cataloguer,
    /// The desk: patrons, loans, holds, requests, fines.
    Circulation,
    /// Orders, receiving, invoices, funds.
    Acquisitions,
    /// Reads everything staff may read; changes nothing.
    ReadOnly,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Cataloguer,
        Role::Circulation,
        Role::Acquisitions,
        Role::ReadOnly,
    ];

    /// The stable code stored and shown.
    pub fn code(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Cataloguer => "cataloguer",
            Role::Circulation => "circulation",
            Role::Acquisitions => "acquisitions",
            Role::ReadOnly => "read_only",
        }
    }

    /// Parses a stored or typed code.
    pub fn from_code(code: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.code() == code.trim())
    }

    /// Whether this role grants a permission.
    pub fn grants(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::ReadOnly => matches!(p, StaffRead),
            Role::Cataloguer => matches!(p, StaffRead | CatalogueWrite),
            Role::Circulation => matches!(p, StaffRead | PatronWrite | Circulate | FinesWrite),
            Role::Acquisitions => matches!(p, StaffRead | Acquisitions | CatalogueWrite),
        }
    }
}

/// One thing a use case may require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Read staff-only data: any patron, loans, holds, the audit log.
    StaffRead,
    /// Change records and items.
    CatalogueWrite,
    /// Create and change patrons.
    PatronWrite,
    /// Check out, check in, renew, holds, requests and transits for any patron.
    Circulate,
    /// Charge, take payments for and waive fines.
    FinesWrite,
    /// Acquisitions.
    Acquisitions,
    /// Manage staff accounts.
    StaffAdmin,
}

/// Who is acting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// Nobody logged in.
    Anonymous,
    /// A staff member.
    Staff {
        /// Account id.
        id: i64,
        /// User name, for the audit log.
        username: String,
        /// Role.
        role: Role,
    },
    /// A patron acting for themselves.
    Patron {
        /// Patron id.
        id: i64,
    },
    /// A command run by the systems team on the server (`shoko …`).
    System,
}

/// Why an actor may not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// Nobody is logged in.
    #[error("log in first")]
    NotLoggedIn,
    /// Logged in without the permission.
    #[error("this account may not do that ({0:?})")]
    Forbidden(Permission),
}

impl Actor {
    /// Whether the actor holds a permission (the server's own commands hold all).
    pub fn may(&self, p: Permission) -> bool {
        match self {
            Actor::Staff { role, .. } => role.grants(p),
            Actor::System => true,
            Actor::Anonymous | Actor::Patron { .. } => false,
        }
    }

    /// Requires a permission.
    pub fn require(&self, p: Permission) -> Result<(), Denied> {
        match self {
            Actor::Anonymous => Err(Denied::NotLoggedIn),
            _ if self.may(p) => Ok(()),
            _ => Err(Denied::Forbidden(p)),
        }
    }

    /// Requires that the actor is this patron, or staff who may do `p` for
    /// any patron.
    pub fn require_self_or(&self, patron_id: i64, p: Permission) -> Result<(), Denied> {
        match self {
            Actor::Patron { id } if *id == patron_id => Ok(()),
            _ => self.require(p),
        }
    }

    /// The name written in the audit log.
    pub fn audit_name(&self) -> String {
        match self {
            Actor::Anonymous => "anonymous".into(),
            Actor::Staff { username, .. } => format!("staff:{username}"),
            Actor::Patron { id } => format!("patron:{id}"),
            Actor::System => "system".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staff(role: Role) -> Actor {
        Actor::Staff {
            id: 1,
            username: "u".into(),
            role,
        }
    }

    #[test]
    fn circulation_staff_cannot_edit_records() {
        assert_eq!(
            staff(Role::Circulation).require(Permission::CatalogueWrite),
            Err(Denied::Forbidden(Permission::CatalogueWrite))
        );
        assert!(staff(Role::Circulation).may(Permission::Circulate));
    }

    #[test]
    fn read_only_staff_change_nothing() {
        for p in [
            Permission::CatalogueWrite,
            Permission::PatronWrite,
            Permission::Circulate,
            Permission::FinesWrite,
            Permission::Acquisitions,
            Permission::StaffAdmin,
        ] {
            assert!(!staff(Role::ReadOnly).may(p), "{p:?}");
        }
    }

    #[test]
    fn a_patron_acts_only_for_themselves() {
        let p = Actor::Patron { id: 7 };
        assert_eq!(p.require_self_or(7, Permission::Circulate), Ok(()));
        assert_eq!(
            p.require_self_or(8, Permission::Circulate),
            Err(Denied::Forbidden(Permission::Circulate))
        );
        assert_eq!(
            Actor::Anonymous.require_self_or(7, Permission::Circulate),
            Err(Denied::NotLoggedIn)
        );
    }

    #[test]
    fn only_admins_manage_staff_accounts() {
        for role in Role::ALL {
            assert_eq!(role.grants(Permission::StaffAdmin), role == Role::Admin);
        }
    }
}
