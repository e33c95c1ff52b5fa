//! SQLite's writer: one connection that commits without waiting for the
//! disk, and one flush of the write-ahead log shared by every commit made
//! while the previous flush ran (group commit).
//!
//! With `synchronous=FULL` each commit flushed the log while it still held
//! SQLite's one write lock, so sixteen desks queued behind sixteen flushes.
//! The writer connection commits with `synchronous=NORMAL` (the log is
//! written, not flushed) and gives the lock up at once; the write is then
//! acknowledged only after a flush of the log file that began after its
//! commit. A `kill -9` loses nothing either way (the operating system has
//! the log); on power loss, what was acknowledged was flushed. The other
//! connections keep `synchronous=FULL`, so a write made outside the writer
//! (an administrative statement, a migration) is flushed when it returns.
//!
//! It also flushes the database file after the writer's passive
//! checkpoints (see `writer.rs`), which SQLite does not.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

/// Flushes a write-ahead log for every commit that asks, one flush for all
/// the commits made before it began.
pub(crate) struct WalSync {
    /// The database file, and its log beside it.
    database: Option<PathBuf>,
    wal: Option<PathBuf>,
    /// Commits numbered so far (each after it returned).
    committed: AtomicU64,
    /// The highest commit number known to be on disk; held while flushing.
    flushed: Mutex<u64>,
    /// Flushes done (the tests count them).
    flushes: AtomicU64,
    /// Flushes of the database file done.
    database_flushes: AtomicU64,
}

impl WalSync {
    /// A log beside the database file `db` (`None` for a database in memory,
    /// which has nothing to flush).
    pub(crate) fn new(db: Option<&Path>) -> WalSync {
        WalSync {
            database: db.map(Path::to_path_buf),
            wal: db.map(|p| {
                let mut name = p.as_os_str().to_owned();
                name.push("-wal");
                PathBuf::from(name)
            }),
            committed: AtomicU64::new(0),
            flushed: Mutex::new(0),
            flushes: AtomicU64::new(0),
            database_flushes: AtomicU64::new(0),
        }
    }

    /// Returns once the commit that just returned is on disk: at once if a
    /// flush that began after it has ended, else after the next flush.
    pub(crate) async fn committed(&self) -> std::io::Result<()> {
        let mine = self.committed.fetch_add(1, Ordering::AcqRel) + 1;
        let mut flushed = self.flushed.lock().await;
        if *flushed >= mine {
            return Ok(());
        }
        // Every commit numbered by now has written its part of the log.
        let upto = self.committed.load(Ordering::Acquire);
        if let Some(wal) = self.wal.clone() {
            tokio::task::spawn_blocking(move || flush(&wal))
                .await
                .map_err(std::io::Error::other)??;
        }
        self.flushes.fetch_add(1, Ordering::Relaxed);
        *flushed = upto;
        Ok(())
    }

    /// Flushes the database file (what checkpoints copied into it), on a
    /// blocking thread.
    pub(crate) async fn database_flushed(&self) -> std::io::Result<()> {
        let Some(database) = self.database.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || std::fs::File::open(database)?.sync_data())
            .await
            .map_err(std::io::Error::other)??;
        self.database_flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Whether there is a log file (not a database in memory).
    pub(crate) fn has_log(&self) -> bool {
        self.wal.is_some()
    }

    /// Flushes of the database file done since start.
    #[cfg(test)]
    pub(crate) fn database_flushes(&self) -> u64 {
        self.database_flushes.load(Ordering::Relaxed)
    }

    /// Flushes done since start.
    #[cfg(test)]
    pub(crate) fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }
}

/// Flushes the log file to disk. A log that is gone was checkpointed into
/// the database and removed, and SQLite flushed the database first.
fn flush(wal: &Path) -> std::io::Result<()> {
    match std::fs::File::open(wal) {
        Ok(f) => f.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn one_commit_alone_gets_a_flush_of_its_own() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("db-wal"), b"frames").expect("log");
        let sync = WalSync::new(Some(&dir.path().join("db")));
        sync.committed().await.expect("flushed");
        sync.committed().await.expect("flushed");
        assert_eq!(
            sync.flushes(),
            2,
            "each commit after the last flush needs one"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commits_made_during_a_flush_share_the_next_and_none_returns_before_one_covers_it() {
        let sync = Arc::new(WalSync::new(None));
        // Hold the flush, as a slow disk would, while 16 commits arrive.
        let held = sync.flushed.lock().await;
        let waiting: Vec<_> = (0..16)
            .map(|_| {
                let sync = Arc::clone(&sync);
                tokio::spawn(async move { sync.committed().await })
            })
            .collect();
        while sync.committed.load(Ordering::Acquire) < 16 {
            tokio::task::yield_now().await;
        }
        assert!(
            waiting.iter().all(|w| !w.is_finished()),
            "none is on disk yet"
        );
        drop(held);
        for w in waiting {
            w.await.expect("task").expect("flushed");
        }
        assert_eq!(sync.flushes(), 1, "one flush covered all sixteen");
        assert_eq!(*sync.flushed.lock().await, 16);
    }

    #[test]
    fn a_log_that_was_checkpointed_away_needs_no_flush() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(flush(&dir.path().join("gone-wal")).is_ok());
    }
}
