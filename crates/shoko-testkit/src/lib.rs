//! Test support shared by every crate's tests: a fresh database per test on
//! each engine, and the paths of the fixtures.
//!
//! Storage tests run on SQLite and on PostgreSQL. PostgreSQL comes from
//! `SHOKO_TEST_POSTGRES_URL` (the test script starts a throwaway server and
//! sets it); each test gets a database of its own, created and dropped here.
//! Without that variable the PostgreSQL half fails with a message saying how
//! to run it, unless `SHOKO_TEST_ENGINES=sqlite` says on purpose that this run
//! is SQLite-only (for a quick local loop; CI never sets it).

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use sea_orm::{ConnectionTrait, Database};
use shoko_store::{ReferenceData, Store, StoreOptions};

/// The repository's `fixtures/` folder.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// A database made for one test, removed when dropped (SQLite) or by the
/// next run's cleanup (PostgreSQL databases are named `shoko_t_<pid>_<n>`).
pub struct TestDb {
    url: String,
    engine: &'static str,
    // Private fields read through methods: an `async move` block that only
    // touched public fields would capture those alone and drop the directory.
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// The URL to open it with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Which engine, for assertion messages.
    pub fn engine(&self) -> &'static str {
        self.engine
    }

    /// A fresh SQLite database in a temporary directory.
    pub fn sqlite() -> TestDb {
        log_to_test_output();
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("shoko.db").display()
        );
        TestDb {
            url,
            engine: "sqlite",
            _dir: Some(dir),
        }
    }

    /// A fresh SQLite database in `dir` (a small filesystem, for the
    /// full-disk test); the directory is the caller's.
    pub fn sqlite_in(dir: &std::path::Path) -> TestDb {
        log_to_test_output();
        TestDb {
            url: format!("sqlite://{}?mode=rwc", dir.join("shoko.db").display()),
            engine: "sqlite",
            _dir: None,
        }
    }

    /// A fresh PostgreSQL database on the test server.
    pub async fn postgres() -> TestDb {
        TestDb::postgres_in(None).await
    }

    /// A fresh PostgreSQL database whose default tablespace is at
    /// `location` (a directory the server's user owns, on a small
    /// filesystem for the full-disk test), created here.
    pub async fn postgres_in_tablespace(location: &std::path::Path) -> TestDb {
        TestDb::postgres_in(Some(location)).await
    }

    async fn postgres_in(tablespace: Option<&std::path::Path>) -> TestDb {
        log_to_test_output();
        static N: AtomicU64 = AtomicU64::new(0);
        let base = std::env::var("SHOKO_TEST_POSTGRES_URL").unwrap_or_else(|_| {
            panic!(
                "SHOKO_TEST_POSTGRES_URL is not set: storage tests run on PostgreSQL too. \
                 Run the suite with scripts/test (it starts a throwaway PostgreSQL), or set \
                 SHOKO_TEST_ENGINES=sqlite for a SQLite-only local run."
            )
        });
        let name = format!(
            "shoko_t_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let admin = Database::connect(base.clone())
            .await
            .expect("connect to the test PostgreSQL server");
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
            .await
            .expect("drop old test database");
        let mut create = format!("CREATE DATABASE {name}");
        if let Some(location) = tablespace {
            let space = format!("{name}_space");
            admin
                .execute_unprepared(&format!(
                    "CREATE TABLESPACE {space} LOCATION '{}'",
                    location.display()
                ))
                .await
                .expect("create test tablespace");
            create = format!("{create} TABLESPACE {space}");
        }
        admin
            .execute_unprepared(&create)
            .await
            .expect("create test database");
        admin.close().await.expect("close admin connection");
        let url = match base.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("SHOKO_TEST_POSTGRES_URL has no database part: {base}"),
        };
        TestDb {
            url,
            engine: "postgres",
            _dir: None,
        }
    }

    /// Runs SQL behind Shoko's back: how a test damages stored data the way
    /// a manual edit or a bad disk would.
    pub async fn execute_sql(&self, sql: &str) {
        let db = Database::connect(self.url.clone())
            .await
            .expect("connect to the test database");
        db.execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{}: {sql}: {e}", self.engine));
        db.close().await.expect("close");
    }

    /// Drops a PostgreSQL test database and the tablespace made for it by
    /// [`TestDb::postgres_in_tablespace`] (before its filesystem goes away).
    pub async fn drop_postgres(&self) {
        drop_postgres_database(&self.url).await;
    }

    /// Opens the store (running migrations) with the demo reference data.
    pub async fn store(&self) -> Store {
        let store = Store::open(&self.url, &StoreOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{}: open store: {e}", self.engine));
        store
            .sync_reference_data(&reference_data())
            .await
            .expect("reference data");
        store
    }
}

/// Drops the PostgreSQL test database at `url` and the tablespace made for
/// it by [`TestDb::postgres_in_tablespace`], if they are there.
pub async fn drop_postgres_database(url: &str) {
    let base = std::env::var("SHOKO_TEST_POSTGRES_URL").expect("PostgreSQL test server");
    let name = url.rsplit('/').next().expect("database name");
    let admin = Database::connect(base).await.expect("connect");
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .expect("drop test database");
    admin
        .execute_unprepared(&format!("DROP TABLESPACE IF EXISTS {name}_space"))
        .await
        .expect("drop test tablespace");
    admin.close().await.expect("close");
}

/// Sends the code's log to the test's captured output, so that a failing
/// test shows what the server logged (an "unexpected error" answer says only
/// that it was logged). Warnings and errors unless `SHOKO_TEST_LOG` gives a
/// filter; called by every test database's constructor, once per process.
pub fn log_to_test_output() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env("SHOKO_TEST_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        // Another subscriber set by the test itself wins.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// Whether this run includes PostgreSQL.
pub fn postgres_wanted() -> bool {
    std::env::var("SHOKO_TEST_ENGINES").map_or(true, |v| v.split(',').any(|e| e == "postgres"))
}

/// Runs a storage test on SQLite, then on PostgreSQL, each on a database of its own.
pub async fn each_engine<F, Fut>(test: F)
where
    F: Fn(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    test(TestDb::sqlite()).await;
    if postgres_wanted() {
        test(TestDb::postgres().await).await;
    }
}

/// Campuses, locations and item types used by tests: four campuses as in the demo.
pub fn reference_data() -> ReferenceData {
    let s = |v: &str| v.to_owned();
    ReferenceData {
        campuses: vec![
            (s("HONGO"), s("本郷"), s("Hongo")),
            (s("KOMABA"), s("駒場"), s("Komaba")),
            (s("KASHIWA"), s("柏"), s("Kashiwa")),
            (s("NAKANO"), s("中野"), s("Nakano")),
        ],
        locations: vec![
            (s("HONGO"), s("STACKS"), s("書庫"), s("Stacks")),
            (s("HONGO"), s("REF"), s("参考図書"), s("Reference")),
            (s("KOMABA"), s("OPEN"), s("開架"), s("Open shelves")),
            (s("KASHIWA"), s("OPEN"), s("開架"), s("Open shelves")),
            (s("NAKANO"), s("OPEN"), s("開架"), s("Open shelves")),
        ],
        item_types: vec![
            (s("BOOK"), s("図書"), s("Book")),
            (s("SERIAL"), s("雑誌"), s("Serial")),
            (s("AV"), s("視聴覚資料"), s("Audiovisual")),
        ],
    }
}

/// Each of this process's threads: its name and nice value, from
/// `/proc/self/task/*/stat` (proc(5)). Threads that end meanwhile are left out.
#[cfg(target_os = "linux")]
pub fn thread_nice_values() -> Vec<(String, i32)> {
    threads_of("self")
}

/// The same for the process `pid` (a server the test started).
#[cfg(target_os = "linux")]
pub fn thread_nice_values_of(pid: u32) -> Vec<(String, i32)> {
    threads_of(&pid.to_string())
}

/// Whether the process `pid` may get transparent huge pages (the kernel's
/// `THP_enabled` in its status; false after `PR_SET_THP_DISABLE`).
#[cfg(target_os = "linux")]
pub fn transparent_huge_pages_enabled_of(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .unwrap_or_else(|| panic!("no THP_enabled in /proc/{pid}/status"));
    line.trim() != "0"
}

/// The nice value of the main thread of the process `pid`.
#[cfg(target_os = "linux")]
pub fn main_thread_nice_of(pid: u32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/stat"))
        .unwrap_or_else(|e| panic!("/proc/{pid}: {e}"));
    name_and_nice(&stat).1
}

#[cfg(target_os = "linux")]
fn threads_of(process: &str) -> Vec<(String, i32)> {
    std::fs::read_dir(format!("/proc/{process}/task"))
        .unwrap_or_else(|e| panic!("/proc/{process}/task: {e}"))
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .map(|stat| name_and_nice(&stat))
        .collect()
}

/// The calling thread's nice value.
#[cfg(target_os = "linux")]
pub fn my_nice() -> i32 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
    name_and_nice(&stat).1
}

/// A thread's name and nice value from its `stat` line.
#[cfg(target_os = "linux")]
fn name_and_nice(stat: &str) -> (String, i32) {
    let (head, tail) = stat.rsplit_once(')').expect("(comm)");
    let name = head.split_once('(').expect("(comm)").1.to_owned();
    // After the name: state is field 3, nice field 19.
    let nice = tail.split_whitespace().nth(16).expect("nice");
    (name, nice.parse().expect("a number"))
}
