//! Writes with an actor, a time, an audit trail and an idempotency key.
//!
//! Every write that staff, patrons or commands make runs in one transaction
//! that also writes its audit entries (who, when, what, before and after)
//! and remembers its outcome under the request's idempotency key. A retry
//! with the same key finds that outcome and does not act again; a key sent
//! again with a different request is refused.

use sea_orm::sea_query::{Expr, ExprTrait, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DatabaseTransaction, QueryResult, Statement};
use serde::{Serialize, de::DeserializeOwned};

use crate::catalogue::{Txn, col};
use crate::{Engine, Store, StoreError};

/// What a write needs besides its data: who acts, when, and the client's
/// idempotency key.
#[derive(Debug, Clone)]
pub struct WriteCtx {
    /// The actor's name for the audit log (`staff:alice`, `patron:12`, `system`).
    pub actor: String,
    /// Now, Unix milliseconds.
    pub now: i64,
    /// The request's idempotency key, if it sent one.
    pub idempotency: Option<IdempotencyKey>,
}

/// An `Idempotency-Key` with a fingerprint of the request it came with, so
/// that a key reused for a different request is refused, not replayed.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// The client's key.
    pub key: String,
    /// A digest of the operation and its arguments.
    pub fingerprint: String,
}

/// An audit entry waiting for its transaction to commit.
pub(crate) struct AuditEntry {
    action: String,
    entity: String,
    entity_id: String,
    before: Option<String>,
    after: Option<String>,
}

impl AuditEntry {
    /// An entry with before and after serialised.
    pub(crate) fn new<B: Serialize, A: Serialize>(
        action: &str,
        entity: &str,
        entity_id: impl ToString,
        before: Option<&B>,
        after: Option<&A>,
    ) -> AuditEntry {
        AuditEntry {
            action: action.to_owned(),
            entity: entity.to_owned(),
            entity_id: entity_id.to_string(),
            before: before.map(json),
            after: after.map(json),
        }
    }
}

pub(crate) fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("stored rows always serialise")
}

/// A stable 64-bit digest of a string (FNV-1a), for advisory lock keys.
fn fnv64(s: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// Locks the idempotency key for the transaction (PostgreSQL), so that a
/// retry racing the first attempt waits for it and then finds its outcome;
/// SQLite's write lock, taken at `BEGIN IMMEDIATE`, does the same.
pub(crate) async fn lock_key(
    store: &Store,
    txn: &DatabaseTransaction,
    ctx: &WriteCtx,
) -> Result<(), StoreError> {
    if store.engine == Engine::Postgres
        && let Some(k) = &ctx.idempotency
    {
        txn.execute_raw(Statement::from_sql_and_values(
            store.backend(),
            "SELECT pg_advisory_xact_lock($1)",
            [fnv64(&format!("{}\u{0}{}", ctx.actor, k.key)).into()],
        ))
        .await?;
    }
    Ok(())
}

/// The outcome remembered under the request's idempotency key, if any.
pub(crate) async fn replay<T: DeserializeOwned>(
    txn: &DatabaseTransaction,
    ctx: &WriteCtx,
) -> Result<Option<T>, StoreError> {
    let Some(k) = &ctx.idempotency else {
        return Ok(None);
    };
    let row = txn
        .query_one(
            &Query::select()
                .columns(["fingerprint", "response"])
                .from("idempotency_keys")
                .and_where(Expr::col("actor").eq(ctx.actor.as_str()))
                .and_where(Expr::col("key").eq(k.key.as_str()))
                .to_owned(),
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let fingerprint: String = col(&row, 0)?;
    if fingerprint != k.fingerprint {
        return Err(StoreError::KeyReused(k.key.clone()));
    }
    let response: String = col(&row, 1)?;
    serde_json::from_str(&response)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("idempotency key {}: {e}", k.key)))
}

/// Writes the audit entries and remembers the outcome, in the caller's
/// transaction.
pub(crate) async fn record<T: Serialize>(
    txn: &DatabaseTransaction,
    ctx: &WriteCtx,
    audit: Vec<AuditEntry>,
    outcome: &T,
) -> Result<(), StoreError> {
    let now = ctx.now;
    if !audit.is_empty() {
        let mut insert = Query::insert();
        insert.into_table("audit_log").columns([
            "at",
            "actor",
            "action",
            "entity",
            "entity_id",
            "before",
            "after",
        ]);
        for e in audit {
            insert.values_panic([
                now.into(),
                ctx.actor.as_str().into(),
                e.action.into(),
                e.entity.into(),
                e.entity_id.into(),
                e.before.into(),
                e.after.into(),
            ]);
        }
        txn.execute(&insert).await?;
    }
    if let Some(k) = &ctx.idempotency {
        txn.execute(
            &Query::insert()
                .into_table("idempotency_keys")
                .columns(["actor", "key", "fingerprint", "response", "created_at"])
                .values_panic([
                    ctx.actor.as_str().into(),
                    k.key.as_str().into(),
                    k.fingerprint.as_str().into(),
                    json(outcome).into(),
                    now.into(),
                ])
                .to_owned(),
        )
        .await?;
    }
    Ok(())
}

impl Store {
    /// Forgets idempotency keys remembered before `keys_before` and sessions
    /// that have expired by `now`; returns how many of each.
    pub async fn prune(&self, keys_before: i64, now: i64) -> Result<(u64, u64), StoreError> {
        let keys = self
            .db
            .execute(
                &Query::delete()
                    .from_table("idempotency_keys")
                    .and_where(Expr::col("created_at").lt(keys_before))
                    .to_owned(),
            )
            .await?
            .rows_affected();
        let sessions = self
            .db
            .execute(
                &Query::delete()
                    .from_table("sessions")
                    .and_where(Expr::col("expires_at").lt(now))
                    .to_owned(),
            )
            .await?
            .rows_affected();
        Ok((keys, sessions))
    }
}

/// A write in progress: one transaction with its actor, time, idempotency
/// key and audit entries.
pub struct WriteTx {
    pub(crate) txn: Txn,
    pub(crate) ctx: WriteCtx,
    audit: Vec<AuditEntry>,
}

impl Store {
    /// Begins a write.
    pub async fn begin(&self, ctx: WriteCtx) -> Result<WriteTx, StoreError> {
        let txn = self.begin_write().await?;
        lock_key(self, &txn, &ctx).await?;
        Ok(WriteTx {
            txn,
            ctx,
            audit: Vec::new(),
        })
    }
}

impl WriteTx {
    /// Now, as this write sees it.
    pub fn now(&self) -> i64 {
        self.ctx.now
    }

    pub(crate) async fn all<T>(
        &self,
        select: &SelectStatement,
        map: fn(&QueryResult) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let rows = self.txn.query_all(select).await?;
        rows.iter().map(map).collect()
    }

    /// The outcome of an earlier request with the same idempotency key, or
    /// `None` when this is the first. A key reused with a different request
    /// is refused.
    pub async fn replay<T: DeserializeOwned>(&self) -> Result<Option<T>, StoreError> {
        replay(&self.txn, &self.ctx).await
    }

    /// Notes an audit entry, written when the transaction finishes.
    pub fn audit<B: Serialize, A: Serialize>(
        &mut self,
        action: &str,
        entity: &str,
        entity_id: impl ToString,
        before: Option<&B>,
        after: Option<&A>,
    ) {
        self.audit
            .push(AuditEntry::new(action, entity, entity_id, before, after));
    }

    /// Writes the audit entries, remembers `outcome` under the idempotency
    /// key, and commits.
    pub async fn finish<T: Serialize>(self, outcome: &T) -> Result<(), StoreError> {
        record(&self.txn, &self.ctx, self.audit, outcome).await?;
        self.txn.commit().await?;
        Ok(())
    }

    /// Gives up: nothing is written.
    pub async fn abandon(self) -> Result<(), StoreError> {
        self.txn.rollback().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advisory_lock_keys_are_stable() {
        assert_eq!(fnv64("a"), fnv64("a"));
        assert_ne!(fnv64("staff:a\u{0}k1"), fnv64("staff:a\u{0}k2"));
    }
}
