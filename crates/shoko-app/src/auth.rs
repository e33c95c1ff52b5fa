//! Logging in and out: argon2 password hashes, sessions whose secret is
//! given to the client once and stored only as a SHA-256 digest, and the
//! actor a session stands for.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use shoko_domain::{Actor, Role};

use crate::App;
use crate::circulation::CircError;

/// Hashes a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, CircError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| CircError::Invalid {
            field: "password",
            message: e.to_string(),
        })
}

/// Whether a password matches a stored hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash checked against when the account does not exist, so that a wrong
/// user name costs as long as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password").unwrap_or_default())
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// The digest under which a session secret is stored.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Who logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginKind {
    /// Staff, by user name.
    Staff,
    /// A patron, by card barcode.
    Patron,
}

/// A new session: its secret (the cookie value or bearer token, shown once),
/// its CSRF token and who it is for.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    /// The secret.
    pub token: String,
    /// Sent back in `X-CSRF-Token` with cookie-authenticated writes.
    pub csrf: String,
    /// When it ends, Unix milliseconds.
    pub expires_at: i64,
    /// Who it stands for.
    pub actor: Actor,
}

/// What a session's secret stands for.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The actor.
    pub actor: Actor,
    /// The CSRF token to compare with.
    pub csrf: String,
}

impl App {
    /// Checks a name and password; a new session on success. The answer
    /// for a wrong name and a wrong password is the same.
    pub async fn login(
        &self,
        kind: LoginKind,
        name: &str,
        password: &str,
    ) -> Result<Option<Session>, CircError> {
        let actor = match kind {
            LoginKind::Staff => match self.store.staff_password_hash(name).await? {
                Some((staff, hash)) if staff.active => verify_password(password, &hash)
                    .then(|| Role::from_code(&staff.role))
                    .flatten()
                    .map(|role| Actor::Staff {
                        id: staff.id,
                        username: staff.username,
                        role,
                    }),
                _ => {
                    verify_password(password, decoy_hash());
                    None
                }
            },
            LoginKind::Patron => match self.store.patron_password_hash(name).await? {
                Some((id, Some(hash))) => {
                    verify_password(password, &hash).then_some(Actor::Patron { id })
                }
                _ => {
                    verify_password(password, decoy_hash());
                    None
                }
            },
        };
        let Some(actor) = actor else { return Ok(None) };
        let (kind, subject) = match &actor {
            Actor::Staff { id, .. } => ("staff", *id),
            Actor::Patron { id } => ("patron", *id),
            _ => return Ok(None),
        };
        let token = random_hex(32);
        let csrf = random_hex(16);
        let now = self.clock.now_ms();
        let expires_at = now + i64::from(self.circulation.session_hours) * 3_600_000;
        self.store
            .insert_session(&token_digest(&token), kind, subject, &csrf, now, expires_at)
            .await?;
        Ok(Some(Session {
            token,
            csrf,
            expires_at,
            actor,
        }))
    }

    /// The actor a session secret stands for, if it is valid; an account
    /// deactivated since is refused.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Authenticated>, CircError> {
        let Some((s, staff)) = self
            .store
            .session(&token_digest(token), self.clock.now_ms())
            .await?
        else {
            return Ok(None);
        };
        let actor = match s.kind.as_str() {
            "staff" => match staff {
                Some(u) if u.active => Role::from_code(&u.role).map(|role| Actor::Staff {
                    id: u.id,
                    username: u.username,
                    role,
                }),
                _ => None,
            },
            "patron" => Some(Actor::Patron { id: s.subject_id }),
            _ => None,
        };
        Ok(actor.map(|actor| Authenticated {
            actor,
            csrf: s.csrf,
        }))
    }

    /// Forgets idempotency keys older than a week (a client retries within
    /// minutes; a week covers a desk left offline over a long weekend) and
    /// expired sessions. Returns how many of each.
    pub async fn housekeeping(&self) -> Result<(u64, u64), CircError> {
        const WEEK_MS: i64 = 7 * 86_400_000;
        let now = self.clock.now_ms();
        Ok(self.store.prune(now - WEEK_MS, now).await?)
    }

    /// Ends a session.
    pub async fn logout(&self, token: &str) -> Result<(), CircError> {
        Ok(self.store.delete_session(&token_digest(token)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_hash_only() {
        let h = hash_password("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterz", &h));
        assert!(!verify_password("x", "not a hash"));
    }
}
