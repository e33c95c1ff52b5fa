//! Write transactions, and SQLite's one writer with its group transaction.
//!
//! On PostgreSQL a write is a transaction of its own on a pooled connection;
//! the server runs many at once and commits them together by itself.
//!
//! SQLite allows one writer at a time. Writes wait for their turn in order
//! (first come, first served) and run on the writer's own connection. They
//! are also committed in groups: the first write of a group begins a
//! transaction (`BEGIN IMMEDIATE`); each later one runs inside a savepoint
//! of it, so that a write that fails is undone alone. A write that is done
//! gives the turn to the next in line and waits; the group is committed once
//! every write that was queued when the first finished has had its turn, and
//! each is acknowledged only after that commit and a flush of the log that
//! holds it ([`crate::wal`]). Sixteen desks thus share one `BEGIN`, one
//! `COMMIT` and one flush, and the pages every write touches (the last leaf
//! of the loan, audit and outbox tables, the item and patron pages) are
//! written to the log once per group instead of once per write.
//!
//! If SQLite undoes the whole transaction by itself (it does on a full
//! disk), or a commit fails, every write of the group gets the error: none
//! of them was acknowledged, and a client retries with its idempotency key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use crate::{Store, StoreError, wal::WalSync};

/// The savepoint of a write that joined a group.
const SAVEPOINT: &str = "SAVEPOINT shoko_write";
const RELEASE: &str = "RELEASE shoko_write";
const UNDO: &str = "ROLLBACK TO shoko_write; RELEASE shoko_write";

/// How a group ended: `Ok` once committed and flushed, else the error's text
/// (read again by [`StoreError`]'s conversion, which tells a full disk).
type Outcome = Option<Result<(), String>>;

/// SQLite's one writer (SQLite allows one at a time).
pub(crate) struct SqliteWriter {
    /// The turn, first come first served, with the group it is in.
    turn: Arc<Mutex<Group>>,
    /// One connection with `synchronous=NORMAL`.
    pub(crate) db: DatabaseConnection,
    /// The shared flush.
    pub(crate) wal: WalSync,
    /// Checkpoints the log, on a pool connection.
    checkpoints: Checkpoints,
}

/// Checkpoints of the writer's log, on a pool connection. SQLite's own
/// (every 4,096 pages, inside the commit that crossed the line) copied
/// pages to the database and flushed it while the writer's turn was held,
/// stalling every desk for milliseconds.
///
/// A `PASSIVE` checkpoint never blocks the writer: one runs at most every
/// [`CHECKPOINT_EVERY`], beside it. SQLite reuses the log from its start
/// only when a write begins after a checkpoint that copied all of it, which
/// one running beside a busy writer never does (the log grew by gigabytes).
/// So at most every [`RESTART_EVERY`] the rest is copied between two
/// groups, holding the turn for a few milliseconds; the log then holds at
/// most that long's writes.
///
/// SQLite flushes the database file only after a checkpoint that copied
/// the whole log: the one in the turn. Left to that one, the flush would
/// write every page the passive ones copied since (five seconds' worth:
/// 40–50 ms on the test machine, with every desk waiting). So each passive
/// checkpoint is followed by a flush of the database file beside the
/// writer, and the one in the turn flushes only what it copied.
struct Checkpoints {
    readers: DatabaseConnection,
    state: std::sync::Mutex<CheckpointState>,
}

struct CheckpointState {
    running: bool,
    /// When the last checkpoint began.
    last: Instant,
    /// When the last one that let the log start afresh began.
    restart: Instant,
}

const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
const RESTART_EVERY: Duration = Duration::from_secs(5);

/// The transaction writes are joining, and what its writes wait for.
struct Group {
    /// Open while the group has writes, done or in progress.
    txn: Option<DatabaseTransaction>,
    /// The write holding the turn (or left behind by a write that was
    /// dropped before it finished).
    open: Option<Joined>,
    /// A task is on its way to commit the group.
    commit_queued: bool,
    /// Told how the group ended.
    outcome: watch::Sender<Outcome>,
}

/// How a write joined its group.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Joined {
    /// It began the group: undoing it is rolling the group back.
    First,
    /// Inside a savepoint of a group that has finished writes before it.
    Savepoint,
}

impl SqliteWriter {
    /// A writer on `db`, flushing through `wal`, checkpointing on `readers`.
    pub(crate) fn new(
        db: DatabaseConnection,
        wal: WalSync,
        readers: DatabaseConnection,
    ) -> SqliteWriter {
        SqliteWriter {
            turn: Arc::new(Mutex::new(Group {
                txn: None,
                open: None,
                commit_queued: false,
                outcome: watch::channel(None).0,
            })),
            db,
            wal,
            checkpoints: Checkpoints {
                readers,
                state: std::sync::Mutex::new(CheckpointState {
                    running: false,
                    last: Instant::now(),
                    restart: Instant::now(),
                }),
            },
        }
    }

    /// Starts a checkpoint when the last began a second ago or more.
    fn checkpoint_if_due(self: &Arc<SqliteWriter>) {
        if !self.wal.has_log() {
            return;
        }
        let restart = {
            let mut state = self.checkpoints.lock();
            if state.running || state.last.elapsed() < CHECKPOINT_EVERY {
                return;
            }
            state.running = true;
            state.last = Instant::now();
            let restart = state.restart.elapsed() >= RESTART_EVERY;
            if restart {
                state.restart = state.last;
            }
            restart
        };
        let writer = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = checkpoint(&writer, restart).await {
                tracing::warn!(error = %e, "checkpoint of the write-ahead log failed");
            }
            writer.checkpoints.lock().running = false;
        });
    }
}

impl Checkpoints {
    fn lock(&self) -> std::sync::MutexGuard<'_, CheckpointState> {
        // Holds times and a flag: a panic while held cannot leave it half-written.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Group {
    fn txn(&self) -> &DatabaseTransaction {
        self.txn
            .as_ref()
            .expect("a write holding the turn has its group open")
    }

    /// Ends the group with an error for every write in it.
    async fn fail(&mut self, error: &str) {
        if let Some(txn) = self.txn.take() {
            // SQLite may have rolled back already; the connection is then
            // replaced on release (see `sqlite_connection_in_step`).
            let _ = txn.rollback().await;
        }
        self.open = None;
        let ended = std::mem::replace(&mut self.outcome, watch::channel(None).0);
        ended.send_replace(Some(Err(error.to_owned())));
    }

    /// Undoes the write holding the turn, keeping the group's earlier
    /// writes; `cause` is the error that write met, if known.
    async fn undo_open(&mut self, cause: Option<String>) {
        match self.open.take() {
            None => {}
            Some(Joined::First) => {
                // Nothing else is in the group yet.
                if let Some(txn) = self.txn.take() {
                    let _ = txn.rollback().await;
                }
            }
            Some(Joined::Savepoint) => {
                let undone = self
                    .txn()
                    .execute_unprepared(UNDO)
                    .await
                    .map_err(|e| e.to_string());
                if let Err(e) = undone {
                    // SQLite rolled the whole transaction back by itself
                    // (it does on a full disk or an I/O error).
                    let cause =
                        cause.unwrap_or_else(|| format!("the write could not be undone: {e}"));
                    self.fail(&format!(
                        "a write in the same group failed and SQLite rolled the group back: {cause}"
                    ))
                    .await;
                }
            }
        }
    }
}

/// A write transaction. On SQLite it holds the writer's turn until it
/// commits, rolls back or is dropped (a dropped write is undone before the
/// turn passes on).
pub(crate) struct Txn {
    /// `None` once ended.
    inner: Option<Inner>,
    /// The first error a statement of this write met: the cause given to
    /// the group's other writes if it has to fail them all.
    error: std::sync::Mutex<Option<String>>,
}

enum Inner {
    /// PostgreSQL: a transaction of its own.
    Own(DatabaseTransaction),
    /// SQLite: a part of the writer's group.
    Shared {
        group: Option<OwnedMutexGuard<Group>>,
        writer: Arc<SqliteWriter>,
        /// Its savepoint is still to be released.
        release: bool,
    },
}

impl Txn {
    fn new(inner: Inner) -> Txn {
        Txn {
            inner: Some(inner),
            error: std::sync::Mutex::new(None),
        }
    }

    fn txn(&self) -> &DatabaseTransaction {
        match self.inner.as_ref().expect("not ended") {
            Inner::Own(txn) => txn,
            Inner::Shared { group, .. } => group.as_ref().expect("held until the end").txn(),
        }
    }

    /// Remembers the first error a statement met.
    fn noted<T>(&self, result: Result<T, DbErr>) -> Result<T, DbErr> {
        if let Err(e) = &result {
            let mut first = self.error.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert_with(|| e.to_string());
        }
        result
    }

    fn cause(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Txn {
    fn get_database_backend(&self) -> DbBackend {
        self.txn().get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.noted(self.txn().execute_raw(stmt).await)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.noted(self.txn().execute_unprepared(sql).await)
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.noted(self.txn().query_one_raw(stmt).await)
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.noted(self.txn().query_all_raw(stmt).await)
    }

    fn support_returning(&self) -> bool {
        self.txn().support_returning()
    }
}

impl Store {
    /// Begins a write transaction (see the module's documentation).
    /// SQLite's is a write lock taken at once (`BEGIN IMMEDIATE`), so a
    /// transaction that reads before it writes never fails half-way for
    /// want of the lock, and writers wait in order instead of polling
    /// SQLite's busy handler (which sleeps up to 100 ms between tries).
    pub(crate) async fn begin_write(&self) -> Result<Txn, StoreError> {
        let (txn, savepoint) = self.begin_write_deferred().await?;
        if let Some(s) = savepoint {
            txn.execute_raw(s).await?;
        }
        Ok(txn)
    }

    /// Begins a write transaction and returns, on SQLite, the savepoint
    /// statement the caller must send before any other.
    pub(crate) async fn begin_write_deferred(
        &self,
    ) -> Result<(Txn, Option<Statement>), StoreError> {
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        let Some(writer) = &self.writers else {
            let txn = self.db.begin_with_options(options).await?;
            return Ok((Txn::new(Inner::Own(txn)), None));
        };
        let mut group = Arc::clone(&writer.turn).lock_owned().await;
        // A write dropped half-way is undone by a task of its own; should
        // that task not have run, undo it here.
        group.undo_open(None).await;
        let joined = if group.txn.is_some() {
            Joined::Savepoint
        } else {
            group.txn = Some(writer.db.begin_with_options(options).await?);
            Joined::First
        };
        group.open = Some(joined);
        let savepoint = (joined == Joined::Savepoint)
            .then(|| Statement::from_string(DbBackend::Sqlite, SAVEPOINT));
        let inner = Inner::Shared {
            group: Some(group),
            writer: Arc::clone(writer),
            release: joined == Joined::Savepoint,
        };
        Ok((Txn::new(inner), savepoint))
    }
}

impl Txn {
    /// The statement that ends this write's savepoint, for a caller that
    /// sends it with its last statements; [`Txn::commit`] then sends none.
    pub(crate) fn take_release(&mut self) -> Option<Statement> {
        match &mut self.inner {
            Some(Inner::Shared { release, .. }) if *release => {
                *release = false;
                Some(Statement::from_string(DbBackend::Sqlite, RELEASE))
            }
            _ => None,
        }
    }

    /// Commits, gives up the turn, and returns once the commit is on disk
    /// (on SQLite, once the group is committed and its log flushed).
    pub(crate) async fn commit(mut self) -> Result<(), StoreError> {
        if let Some(release) = self.take_release()
            && let Err(e) = self.execute_raw(release).await
        {
            self.rollback().await?;
            return Err(e.into());
        }
        let (mut group, writer) = match self.inner.take().expect("not ended") {
            Inner::Own(txn) => {
                txn.commit().await?;
                return Ok(());
            }
            Inner::Shared { group, writer, .. } => (group.expect("held until the end"), writer),
        };
        group.open = None;
        let mut ended = group.outcome.subscribe();
        if !group.commit_queued {
            group.commit_queued = true;
            tokio::spawn(commit_group(Arc::clone(&writer)));
        }
        drop(group);
        let outcome = ended
            .wait_for(Option::is_some)
            .await
            .map(|o| o.clone())
            .unwrap_or_else(|_| Some(Err("the write's group was never committed".into())));
        match outcome {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(sea_orm::DbErr::Custom(e).into()),
            None => unreachable!("waited for an outcome"),
        }
    }

    /// Rolls back and gives up the turn.
    pub(crate) async fn rollback(mut self) -> Result<(), StoreError> {
        match self.inner.take().expect("not ended") {
            Inner::Own(txn) => txn.rollback().await?,
            Inner::Shared { group, writer, .. } => {
                let mut group = group.expect("held until the end");
                group.undo_open(self.cause()).await;
                queue_commit(&mut group, &writer);
            }
        }
        Ok(())
    }
}

/// Makes sure a group with finished writes in it gets committed.
fn queue_commit(group: &mut Group, writer: &Arc<SqliteWriter>) {
    if group.txn.is_some() && !group.commit_queued {
        group.commit_queued = true;
        tokio::spawn(commit_group(Arc::clone(writer)));
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        if let Some(Inner::Shared { group, writer, .. }) = &mut self.inner
            && let Some(mut group) = group.take()
            && group.open.is_some()
        {
            // Dropped half-way (a failed statement, a cancelled request):
            // undo it before anyone else writes.
            let writer = Arc::clone(writer);
            let cause = self.error.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    group.undo_open(cause).await;
                    queue_commit(&mut group, &writer);
                });
            }
        }
    }
}

/// Commits the writer's group once every write queued before it had its
/// turn, then flushes the log and tells the group's writes.
async fn commit_group(writer: Arc<SqliteWriter>) {
    let group = Arc::clone(&writer.turn).lock_owned().await;
    let (group, ended, outcome) = commit_held(group, &writer).await;
    drop(group);
    if let Some(ended) = ended {
        ended.send_replace(Some(outcome.await));
    }
    writer.checkpoint_if_due();
}

/// Commits the group (if one is open) while holding the turn; returns the
/// group's sender and the flush still to wait for.
async fn commit_held<'w>(
    mut group: OwnedMutexGuard<Group>,
    writer: &'w SqliteWriter,
) -> (
    OwnedMutexGuard<Group>,
    Option<watch::Sender<Outcome>>,
    impl Future<Output = Result<(), String>> + 'w,
) {
    group.undo_open(None).await;
    group.commit_queued = false;
    let (ended, committed) = match group.txn.take() {
        Some(txn) => (
            Some(std::mem::replace(
                &mut group.outcome,
                watch::channel(None).0,
            )),
            txn.commit().await.map_err(|e| e.to_string()),
        ),
        None => (None, Ok(())),
    };
    let flushed = async move {
        committed?;
        writer
            .wal
            .committed()
            .await
            .map_err(|e| format!("the write-ahead log could not be flushed: {e}"))
    };
    (group, ended, flushed)
}

/// A passive checkpoint, then a flush of the database file; the frames of
/// the log it left uncopied.
async fn passive(writer: &SqliteWriter) -> Result<i64, sea_orm::DbErr> {
    let row = writer
        .checkpoints
        .readers
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA wal_checkpoint(PASSIVE)",
        ))
        .await?;
    // (busy, frames in the log, frames copied); -1s when not in WAL mode.
    let left = row.map(|r| {
        let log: i64 = r.try_get_by_index(1).unwrap_or(0);
        let copied: i64 = r.try_get_by_index(2).unwrap_or(0);
        (log - copied).max(0)
    });
    writer.wal.database_flushed().await.map_err(|e| {
        sea_orm::DbErr::Custom(format!("the database file could not be flushed: {e}"))
    })?;
    Ok(left.unwrap_or(0))
}

/// Checkpoints the log beside the writer; with `restart`, then copies the
/// rest between two groups, so that the next write starts the log afresh.
async fn checkpoint(writer: &SqliteWriter, restart: bool) -> Result<(), sea_orm::DbErr> {
    const PASSIVE: &str = "PRAGMA wal_checkpoint(PASSIVE)";
    /// Frames (4 KiB each) left to copy that are few enough for the turn.
    const FEW: i64 = 256;
    let mut left = passive(writer).await?;
    if !restart {
        return Ok(());
    }
    // Again beside the writer, each time for what came during the last,
    // until little is left for the turn.
    for _ in 0..4 {
        if left <= FEW {
            break;
        }
        left = passive(writer).await?;
    }
    let group = Arc::clone(&writer.turn).lock_owned().await;
    let (group, ended, flushed) = commit_held(group, writer).await;
    // The group's flush and acknowledgement need not wait for the rest.
    let acknowledged = async move {
        let outcome = flushed.await;
        if let Some(ended) = ended {
            ended.send_replace(Some(outcome));
        }
    };
    let rest = async move {
        let done = writer.checkpoints.readers.execute_unprepared(PASSIVE).await;
        drop(group);
        done
    };
    let ((), done) = tokio::join!(acknowledged, rest);
    done.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreOptions;
    use crate::write::tests::{counter, insert_counter};

    async fn open(db: &shoko_testkit::TestDb) -> Store {
        Store::open(db.url(), &StoreOptions::default())
            .await
            .expect("open")
    }

    async fn insert(txn: &Txn, name: &str, value: Option<i64>) -> Result<(), StoreError> {
        txn.execute(&insert_counter(name, value)).await?;
        Ok(())
    }

    async fn stored(store: &Store, name: &str) -> bool {
        counter(&store.db, name).await.is_some()
    }

    /// Flushes of SQLite's log so far (none on PostgreSQL).
    fn flushes(store: &Store) -> u64 {
        store.writers.as_ref().map_or(0, |w| w.wal.flushes())
    }

    /// Lets the spawned writes run until each waits for its turn (the test
    /// runtime has one thread).
    async fn let_them_queue() {
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn writes_queued_behind_one_share_its_commit_and_one_that_fails_is_undone_alone() {
        shoko_testkit::each_engine(|db| async move {
            let store = open(&db).await;
            let before = flushes(&store);
            let first = store.begin_write().await.expect("begin");
            insert(&first, "一つ目", Some(1)).await.expect("insert");
            let failing = tokio::spawn({
                let store = store.clone();
                async move {
                    let txn = store.begin_write().await.expect("begin");
                    insert(&txn, "取り消す", Some(2)).await.expect("insert");
                    let refused = insert(&txn, "空", None).await;
                    assert!(refused.is_err(), "a NULL value was stored");
                    txn.rollback().await.expect("rolled back");
                }
            });
            let third = tokio::spawn({
                let store = store.clone();
                async move {
                    let txn = store.begin_write().await.expect("begin");
                    insert(&txn, "三つ目", Some(3)).await.expect("insert");
                    txn.commit().await
                }
            });
            let_them_queue().await;
            first.commit().await.expect("the first committed");
            failing.await.expect("task");
            third.await.expect("task").expect("the third committed");
            let engine = db.engine();
            assert!(stored(&store, "一つ目").await, "{engine}");
            assert!(stored(&store, "三つ目").await, "{engine}");
            assert!(!stored(&store, "取り消す").await, "{engine}: undone");
            if engine == "sqlite" {
                assert_eq!(flushes(&store) - before, 1, "one commit for the group");
            }
        })
        .await;
    }

    #[tokio::test]
    async fn a_write_dropped_half_way_is_undone_and_the_next_one_is_committed() {
        shoko_testkit::each_engine(|db| async move {
            let store = open(&db).await;
            let dropped = store.begin_write().await.expect("begin");
            insert(&dropped, "落とした", Some(1)).await.expect("insert");
            drop(dropped);
            let next = store.begin_write().await.expect("begin");
            insert(&next, "次", Some(2)).await.expect("insert");
            next.commit().await.expect("commit");
            let engine = db.engine();
            assert!(!stored(&store, "落とした").await, "{engine}");
            assert!(stored(&store, "次").await, "{engine}");
        })
        .await;
    }

    /// Frames in SQLite's log now (a passive checkpoint reports them).
    async fn log_frames(store: &Store) -> i64 {
        store
            .db
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "PRAGMA wal_checkpoint(PASSIVE)",
            ))
            .await
            .expect("checkpoint")
            .expect("a row")
            .try_get_by_index(1)
            .expect("a number")
    }

    // SQLite alone: PostgreSQL has no log of this kind to restart.
    #[tokio::test]
    async fn a_restarting_checkpoint_lets_the_next_write_start_the_log_afresh() {
        let db = shoko_testkit::TestDb::sqlite();
        let store = open(&db).await;
        let writer = Arc::clone(store.writers.as_ref().expect("SQLite's writer"));
        for i in 0..200 {
            let txn = store.begin_write().await.expect("begin");
            insert(&txn, &format!("行{i}"), Some(i))
                .await
                .expect("insert");
            txn.commit().await.expect("commit");
        }
        let grown = log_frames(&store).await;
        assert!(grown >= 200, "each commit wrote frames: {grown}");
        // A write that is in progress while the checkpoint waits for the
        // turn is committed by it and acknowledged.
        let open = store.begin_write().await.expect("begin");
        insert(&open, "途中", Some(0)).await.expect("insert");
        let checkpoint = tokio::spawn({
            let writer = Arc::clone(&writer);
            async move { checkpoint(&writer, true).await }
        });
        // What passive checkpoints copied is flushed before the turn.
        tokio::time::timeout(Duration::from_secs(30), async {
            while writer.wal.database_flushes() == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the database file was flushed while a write held the turn");
        assert!(
            !checkpoint.is_finished(),
            "the checkpoint waits for the turn"
        );
        open.commit()
            .await
            .expect("committed by the checkpoint's turn");
        checkpoint.await.expect("task").expect("checkpoint");
        let txn = store.begin_write().await.expect("begin");
        insert(&txn, "新しい", Some(1)).await.expect("insert");
        txn.commit().await.expect("commit");
        let after = log_frames(&store).await;
        assert!(
            after < 10,
            "the log started afresh: {after} frames against {grown}"
        );
        assert!(stored(&store, "途中").await && stored(&store, "新しい").await);
        assert!(stored(&store, "行199").await);
    }

    // SQLite alone: it rolls a whole transaction back by itself on a full
    // disk, which PostgreSQL never does behind its client's back.
    #[tokio::test]
    async fn a_full_disk_in_one_write_fails_every_write_of_its_group_and_none_is_stored() {
        let db = shoko_testkit::TestDb::sqlite();
        let store = open(&db).await;
        store
            .db
            .execute_unprepared("CREATE TABLE big (x BLOB NOT NULL)")
            .await
            .expect("table");
        let first = store.begin_write().await.expect("begin");
        let pages: i64 = first
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "PRAGMA page_count",
            ))
            .await
            .expect("pages")
            .expect("a row")
            .try_get_by_index(0)
            .expect("a number");
        // The writer's connection may not grow the file: a full disk.
        first
            .execute_unprepared(&format!("PRAGMA max_page_count = {pages}"))
            .await
            .expect("limit");
        insert(&first, "先に済んだ", Some(1)).await.expect("insert");
        let full = tokio::spawn({
            let store = store.clone();
            async move {
                let txn = store.begin_write().await.expect("begin");
                let refused = txn
                    .execute_unprepared("INSERT INTO big VALUES (randomblob(1000000))")
                    .await;
                assert!(refused.is_err(), "the disk is full");
                drop(txn);
            }
        });
        let_them_queue().await;
        let first = first.commit().await;
        assert!(
            matches!(first, Err(StoreError::StorageFull(_))),
            "the group was rolled back, so the first write is not acknowledged: {first:?}"
        );
        full.await.expect("task");
        assert!(!stored(&store, "先に済んだ").await);
        // The connection that was rolled back under the driver is replaced,
        // without the limit.
        let next = store.begin_write().await.expect("begin");
        insert(&next, "空きができた", Some(2))
            .await
            .expect("insert");
        next.execute_unprepared("INSERT INTO big VALUES (randomblob(1000000))")
            .await
            .expect("room again");
        next.commit().await.expect("commit");
        assert!(stored(&store, "空きができた").await);
    }
}
