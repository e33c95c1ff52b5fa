//! Writes with an actor, a time, an audit trail and an idempotency key.
//!
//! Every write that staff, patrons or commands make runs in one transaction
//! that also writes its audit entries (who, when, what, before and after)
//! and remembers its outcome under the request's idempotency key. A retry
//! with the same key finds that outcome and does not act again; a key sent
//! again with a different request is refused.

use sea_orm::sea_query::{Asterisk, Expr, ExprTrait, JoinType, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, StatementBuilder};
use serde::{Serialize, de::DeserializeOwned};

use crate::catalogue::{Part, Txn, col};
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
pub(crate) async fn lock_key(store: &Store, txn: &Txn, ctx: &WriteCtx) -> Result<(), StoreError> {
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
    txn: &Txn,
    ctx: &WriteCtx,
) -> Result<Option<T>, StoreError> {
    let Some(select) = replay_select(ctx) else {
        return Ok(None);
    };
    replayed(txn.query_one(&select).await?.as_ref(), ctx)
}

/// The query for the outcome remembered under the request's key.
fn replay_select(ctx: &WriteCtx) -> Option<SelectStatement> {
    let k = ctx.idempotency.as_ref()?;
    Some(
        Query::select()
            .columns(["fingerprint", "response"])
            .from("idempotency_keys")
            .and_where(Expr::col("actor").eq(ctx.actor.as_str()))
            .and_where(Expr::col("key").eq(k.key.as_str()))
            .to_owned(),
    )
}

/// The remembered outcome in `row`; a key reused for another request is refused.
fn replayed<T: DeserializeOwned>(
    row: Option<&QueryResult>,
    ctx: &WriteCtx,
) -> Result<Option<T>, StoreError> {
    let (Some(k), Some(row)) = (&ctx.idempotency, row) else {
        return Ok(None);
    };
    let fingerprint: String = col(row, 0)?;
    if fingerprint != k.fingerprint {
        return Err(StoreError::KeyReused(k.key.clone()));
    }
    let response: String = col(row, 1)?;
    serde_json::from_str(&response)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("idempotency key {}: {e}", k.key)))
}

/// Writes the audit entries and remembers the outcome, in the caller's
/// transaction.
pub(crate) async fn record<T: Serialize>(
    txn: &Txn,
    ctx: &WriteCtx,
    audit: Vec<AuditEntry>,
    outcome: &T,
) -> Result<(), StoreError> {
    for statement in record_statements(txn.get_database_backend(), ctx, audit, outcome) {
        txn.execute_raw(statement).await?;
    }
    Ok(())
}

/// The statements that write the audit entries and remember the outcome.
fn record_statements<T: Serialize>(
    backend: DbBackend,
    ctx: &WriteCtx,
    audit: Vec<AuditEntry>,
    outcome: &T,
) -> Vec<Statement> {
    let mut statements = Vec::with_capacity(2);
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
        statements.push(backend.build(&insert));
    }
    if let Some(k) = &ctx.idempotency {
        statements.push(
            backend.build(
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
            ),
        );
    }
    statements
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
///
/// Writes whose outcome the operation does not look at (counters, status
/// changes, outbox and audit rows) can be queued with [`WriteTx::later`]
/// instead of run at once. The queue is sent before any other statement of
/// the transaction, through [`WriteTx::txn`], and before the commit, so
/// every read sees every earlier write and the order of writes is kept; it
/// only saves waits. SQLite gets the whole queue in one call to its
/// connection's worker thread (one round trip instead of one per statement,
/// inside the single writer's turn); PostgreSQL gets it as one simple query
/// with the values written inline (`inline.rs`), or, when a value cannot be
/// written there exactly, one statement after another.
pub struct WriteTx {
    txn: Txn,
    pub(crate) ctx: WriteCtx,
    audit: Vec<AuditEntry>,
    later: std::sync::Mutex<Vec<Statement>>,
    /// On SQLite, the idempotency key's row, read with the write's first
    /// read so that [`WriteTx::replay`] needs no call of its own.
    replay_row: std::sync::Mutex<ReplayRow>,
}

/// Where the read of the idempotency key's row stands.
enum ReplayRow {
    /// Not read yet.
    Unread,
    /// Read with another read, not yet looked at.
    Read(Option<QueryResult>),
    /// Looked at (or nothing to read).
    Done,
}

impl Store {
    /// Begins a write.
    pub async fn begin(&self, ctx: WriteCtx) -> Result<WriteTx, StoreError> {
        let (txn, savepoint) = self.begin_write_deferred().await?;
        lock_key(self, &txn, &ctx).await?;
        Ok(WriteTx {
            txn,
            ctx,
            audit: Vec::new(),
            // Sent with the first statement.
            later: std::sync::Mutex::new(savepoint.into_iter().collect()),
            replay_row: std::sync::Mutex::new(ReplayRow::Unread),
        })
    }
}

impl WriteTx {
    /// Now, as this write sees it.
    pub fn now(&self) -> i64 {
        self.ctx.now
    }

    /// The engine this write runs on.
    pub(crate) fn txn_backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }

    /// The transaction, once every queued write has been sent.
    pub(crate) async fn txn(&self) -> Result<&Txn, StoreError> {
        self.send_queued().await?;
        Ok(&self.txn)
    }

    /// Queues a write, sent before the next statement or the commit.
    pub(crate) fn later<S: StatementBuilder>(&self, statement: &S) {
        let statement = self.txn.get_database_backend().build(statement);
        self.queue().push(statement);
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Statement>> {
        // Only this transaction's own task touches the queue; a panic while
        // it was held cannot leave it half-written.
        self.later.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The rows of `select`, sent together with the queued writes (one
    /// call on SQLite).
    async fn rows_after_queued(
        &self,
        select: &SelectStatement,
    ) -> Result<Vec<QueryResult>, StoreError> {
        if self.txn.get_database_backend() != DbBackend::Sqlite {
            return Ok(self.txn().await?.query_all(select).await?);
        }
        let [rows] = self.read_tagged([select.clone()]).await?;
        Ok(rows)
    }

    /// SQLite: the queued writes, then the SELECTs, each one's rows tagged
    /// with its number in an extra last column (which the row mappers,
    /// reading by position from the first, never look at), in one call; the
    /// idempotency key's row too, the first time.
    async fn read_tagged<const N: usize>(
        &self,
        selects: [SelectStatement; N],
    ) -> Result<[Vec<QueryResult>; N], StoreError> {
        let mut statements = std::mem::take(&mut *self.queue());
        let tagged = |i: usize, mut select: SelectStatement| {
            DbBackend::Sqlite.build(select.expr(Expr::cust(i.to_string())))
        };
        statements.extend(selects.into_iter().enumerate().map(|(i, s)| tagged(i, s)));
        let with_replay = {
            let mut state = self.replay_state();
            match (&*state, replay_select(&self.ctx)) {
                (ReplayRow::Unread, Some(select)) => {
                    statements.push(tagged(N, select));
                    true
                }
                (ReplayRow::Unread, None) => {
                    *state = ReplayRow::Done;
                    false
                }
                _ => false,
            }
        };
        let mut rows: [Vec<QueryResult>; N] = std::array::from_fn(|_| Vec::new());
        let mut replay = None;
        for row in self.txn.query_all_raw(joined(statements)).await? {
            let part: i64 = col(&row, row.column_names().len() - 1)?;
            match usize::try_from(part) {
                Ok(i) if i < N => rows[i].push(row),
                Ok(i) if i == N && with_replay => replay = Some(row),
                _ => {
                    return Err(StoreError::Corrupt(format!(
                        "a row of statement {part} of {N}"
                    )));
                }
            }
        }
        if with_replay {
            *self.replay_state() = ReplayRow::Read(replay);
        }
        Ok(rows)
    }

    fn replay_state(&self) -> std::sync::MutexGuard<'_, ReplayRow> {
        // Only this transaction's own task touches it.
        self.replay_row.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn send_queued(&self) -> Result<(), StoreError> {
        let queued = std::mem::take(&mut *self.queue());
        match queued.len() {
            0 => {}
            1 => {
                let statement = queued.into_iter().next().expect("one statement");
                self.txn.execute_raw(statement).await?;
            }
            _ if self.txn.get_database_backend() == DbBackend::Sqlite => {
                self.txn.execute_raw(joined(queued)).await?;
            }
            _ => match crate::inline::batch(&queued) {
                Some(sql) => {
                    self.txn.execute_unprepared(&sql).await?;
                }
                None => {
                    for statement in queued {
                        self.txn.execute_raw(statement).await?;
                    }
                }
            },
        }
        Ok(())
    }

    /// Runs several SELECTs in this transaction, each of which gives at
    /// most one row, in one round trip, and returns each one's row.
    ///
    /// SQLite gets them in one call to its connection (see `read_tagged`).
    /// PostgreSQL gets them as one statement, each read a `LEFT JOIN
    /// LATERAL` of its own in the order given, followed by a column that
    /// marks where its columns end and whether it found a row. The joins
    /// have no join condition, so they can only run as nested loops, and
    /// PostgreSQL keeps them in the order written (EXPLAIN shows it for
    /// the checkout's and the check-in's reads): rows are locked in the
    /// order one statement after another locked them. A read that gives
    /// more than one row is an error, on both engines.
    pub(crate) async fn read_together<const N: usize>(
        &self,
        selects: [SelectStatement; N],
    ) -> Result<OneEach<N>, StoreError> {
        if self.txn.get_database_backend() == DbBackend::Sqlite {
            let mut rows = Vec::new();
            let mut parts = [None; N];
            for (i, read) in self.read_tagged(selects).await?.into_iter().enumerate() {
                if read.len() > 1 {
                    return Err(StoreError::Corrupt(format!(
                        "read {i} of {N} gave more than one row"
                    )));
                }
                if let Some(row) = read.into_iter().next() {
                    parts[i] = Some((rows.len(), 0));
                    rows.push(row);
                }
            }
            return Ok(OneEach { rows, parts });
        }
        let marker = |i: usize| format!("shoko_part_{i}");
        let mut joined = Query::select();
        joined.from_subquery(Query::select().expr(Expr::val(1)).to_owned(), "shoko_one");
        for (i, mut select) in selects.into_iter().enumerate() {
            select.expr_as(Expr::val(i as i64), marker(i));
            let alias = format!("shoko_read_{i}");
            joined.column((alias.clone(), Asterisk));
            joined.join_lateral(JoinType::LeftJoin, select, alias, Expr::cust("TRUE"));
        }
        let rows = self.txn().await?.query_all(&joined).await?;
        let Some(row) = rows.first() else {
            return Err(StoreError::Corrupt("joined reads gave no row".into()));
        };
        if rows.len() > 1 {
            return Err(StoreError::Corrupt(format!(
                "one of {N} reads gave more than one row"
            )));
        }
        let names = row.column_names();
        let mut parts = [None; N];
        let mut offset = 0;
        for (i, part) in parts.iter_mut().enumerate() {
            let end = names
                .iter()
                .skip(offset)
                .position(|n| *n == marker(i))
                .map(|p| offset + p)
                .ok_or_else(|| StoreError::Corrupt(format!("no end of read {i} of {N}")))?;
            let found: Option<i64> = col(row, end)?;
            if found.is_some() {
                *part = Some((0, offset));
            }
            offset = end + 1;
        }
        Ok(OneEach { rows, parts })
    }

    pub(crate) async fn all<T>(
        &self,
        select: &SelectStatement,
        map: fn(&QueryResult) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let rows = self.rows_after_queued(select).await?;
        rows.iter().map(map).collect()
    }

    /// The outcome of an earlier request with the same idempotency key, or
    /// `None` when this is the first. A key reused with a different request
    /// is refused.
    ///
    /// On SQLite a read made before it brought the row along (one call
    /// fewer inside the writer's turn): a write reads what it needs first,
    /// then asks this.
    pub async fn replay<T: DeserializeOwned>(&self) -> Result<Option<T>, StoreError> {
        let state = std::mem::replace(&mut *self.replay_state(), ReplayRow::Done);
        if let ReplayRow::Read(row) = state {
            return replayed(row.as_ref(), &self.ctx);
        }
        let Some(select) = replay_select(&self.ctx) else {
            return Ok(None);
        };
        let rows = self.rows_after_queued(&select).await?;
        replayed(rows.first(), &self.ctx)
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
    pub async fn finish<T: Serialize>(mut self, outcome: &T) -> Result<(), StoreError> {
        let audit = std::mem::take(&mut self.audit);
        let backend = self.txn.get_database_backend();
        let record = record_statements(backend, &self.ctx, audit, outcome);
        let release = self.txn.take_release();
        self.queue().extend(record.into_iter().chain(release));
        self.send_queued().await?;
        self.txn.commit().await?;
        Ok(())
    }

    /// Gives up: nothing is written (queued writes are dropped unsent).
    pub async fn abandon(self) -> Result<(), StoreError> {
        self.txn.rollback().await?;
        Ok(())
    }
}

/// What [`WriteTx::read_together`] read: for each read, its row or none.
pub(crate) struct OneEach<const N: usize> {
    rows: Vec<QueryResult>,
    /// For each read, the row its columns are in and where they start.
    parts: [Option<(usize, usize)>; N],
}

impl<const N: usize> OneEach<N> {
    /// Read `i`'s row mapped by `map`, or `None` when it found none.
    pub(crate) fn map<'s, T>(
        &'s self,
        i: usize,
        map: impl Fn(&Part<'s>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        self.parts[i]
            .map(|(row, offset)| {
                map(&Part {
                    row: &self.rows[row],
                    offset,
                })
            })
            .transpose()
    }
}

/// SQLite statements as one: their texts joined, their values in order
/// (SQLite's `?` parameters are numbered across the statements of one call,
/// and each statement keeps its own parameter limit).
fn joined(statements: Vec<Statement>) -> Statement {
    let mut sql = String::new();
    let mut values = Vec::new();
    for s in statements {
        if !sql.is_empty() {
            sql.push_str(";\n");
        }
        sql.push_str(&s.sql);
        if let Some(v) = s.values {
            values.extend(v.0);
        }
    }
    Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The store of this crate (the test kit's `store()` is of another
    /// build of it).
    async fn open(db: &shoko_testkit::TestDb) -> Store {
        Store::open(db.url(), &crate::StoreOptions::default())
            .await
            .expect("open")
    }

    fn ctx() -> WriteCtx {
        WriteCtx {
            actor: "system".into(),
            now: 1,
            idempotency: None,
        }
    }

    /// A row of the `counters` table (the store's tests write these).
    pub(crate) fn insert_counter(
        name: &str,
        value: Option<i64>,
    ) -> sea_orm::sea_query::InsertStatement {
        Query::insert()
            .into_table("counters")
            .columns(["name", "value"])
            .values_panic([name.into(), value.into()])
            .to_owned()
    }

    /// The value of a `counters` row, if there is one.
    pub(crate) async fn counter(c: &impl ConnectionTrait, name: &str) -> Option<i64> {
        c.query_one(
            &Query::select()
                .column("value")
                .from("counters")
                .and_where(Expr::col("name").eq(name))
                .to_owned(),
        )
        .await
        .expect("read")
        .map(|r| col(&r, 0).expect("a number"))
    }

    #[tokio::test]
    async fn queued_writes_are_seen_by_the_next_read_in_order_and_committed() {
        shoko_testkit::each_engine(|db| async move {
            let store = open(&db).await;
            let tx = store.begin(ctx()).await.expect("begin");
            // Two statements with their own parameters, sent as one on SQLite:
            // each value must reach its own statement.
            tx.later(&insert_counter("日本語の一", Some(11)));
            tx.later(&insert_counter("二", Some(22)));
            tx.later(
                &Query::update()
                    .table("counters")
                    .value("value", Expr::col("value").add(100))
                    .and_where(Expr::col("name").eq("二"))
                    .to_owned(),
            );
            let seen = tx.txn().await.expect("sent");
            assert_eq!(
                counter(seen, "日本語の一").await,
                Some(11),
                "{}",
                db.engine()
            );
            assert_eq!(counter(seen, "二").await, Some(122), "{}", db.engine());
            tx.finish(&()).await.expect("commit");
            let again = open(&db).await;
            assert_eq!(counter(&again.db, "二").await, Some(122), "{}", db.engine());
        })
        .await;
    }

    #[tokio::test]
    async fn a_queued_write_that_fails_fails_the_commit_and_nothing_of_it_is_stored() {
        shoko_testkit::each_engine(|db| async move {
            let store = open(&db).await;
            let tx = store.begin(ctx()).await.expect("begin");
            tx.later(&insert_counter("good", Some(1)));
            tx.later(&insert_counter("bad", None));
            let refused = tx.finish(&()).await;
            assert!(refused.is_err(), "{}: a NULL value was stored", db.engine());
            let after = open(&db).await;
            assert_eq!(counter(&after.db, "good").await, None, "{}", db.engine());
            assert_eq!(counter(&after.db, "bad").await, None, "{}", db.engine());
            // The writer is usable again at once.
            let tx = store.begin(ctx()).await.expect("begin");
            tx.later(&insert_counter("next", Some(3)));
            tx.finish(&()).await.expect("commit");
            assert_eq!(counter(&after.db, "next").await, Some(3), "{}", db.engine());
        })
        .await;
    }

    /// Reads of a counter: `columns` of the row named `name`.
    fn counter_read(columns: &[&'static str], name: &str) -> SelectStatement {
        let mut select = Query::select();
        for c in columns {
            select.expr(Expr::cust(*c));
        }
        select
            .from("counters")
            .and_where(Expr::col("name").eq(name))
            .to_owned()
    }

    #[tokio::test]
    async fn reads_made_together_each_get_their_own_row_and_columns() {
        shoko_testkit::each_engine(|db| async move {
            let store = open(&db).await;
            let tx = store.begin(ctx()).await.expect("begin");
            for (name, value) in [("一", 1), ("二", 2), ("三", 3)] {
                tx.later(&insert_counter(name, Some(value)));
            }
            // The queued writes are sent first, so the reads see them; the
            // reads differ in how many columns they give, and one finds
            // nothing, so each must be read from where its own start.
            let read = tx
                .read_together([
                    counter_read(&["name", "value"], "一"),
                    counter_read(&["value"], "四"),
                    counter_read(&["value", "name", "value * 10"], "三"),
                ])
                .await
                .expect("read");
            let first = read
                .map(0, |r| Ok((col::<String, _>(r, 0)?, col::<i64, _>(r, 1)?)))
                .expect("mapped");
            assert_eq!(first, Some(("一".to_owned(), 1)), "{}", db.engine());
            let none = read.map(1, |r| col::<i64, _>(r, 0)).expect("mapped");
            assert_eq!(none, None, "{}", db.engine());
            let third = read
                .map(2, |r| {
                    Ok((
                        col::<i64, _>(r, 0)?,
                        col::<String, _>(r, 1)?,
                        col::<i64, _>(r, 2)?,
                    ))
                })
                .expect("mapped");
            assert_eq!(third, Some((3, "三".to_owned(), 30)), "{}", db.engine());
            tx.abandon().await.expect("rollback");
        })
        .await;
    }

    #[tokio::test]
    async fn a_read_made_together_that_finds_two_rows_is_refused() {
        shoko_testkit::each_engine(|db| async move {
            let store = open(&db).await;
            let tx = store.begin(ctx()).await.expect("begin");
            for (name, value) in [("一", 1), ("二", 2)] {
                tx.later(&insert_counter(name, Some(value)));
            }
            let both = Query::select()
                .column("value")
                .from("counters")
                .and_where(Expr::col("name").is_in(["一", "二"]))
                .to_owned();
            let refused = tx
                .read_together([counter_read(&["value"], "一"), both])
                .await;
            assert!(
                matches!(&refused, Err(StoreError::Corrupt(m)) if m.contains("more than one row")),
                "{}: {:?}",
                db.engine(),
                refused.err()
            );
            tx.abandon().await.expect("rollback");
        })
        .await;
    }

    #[test]
    fn advisory_lock_keys_are_stable() {
        assert_eq!(fnv64("a"), fnv64("a"));
        assert_ne!(fnv64("staff:a\u{0}k1"), fnv64("staff:a\u{0}k2"));
    }
}
