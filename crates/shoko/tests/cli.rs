//! The `shoko` binary end to end, as an operator runs it: import, export,
//! serve, demo and config, against real files, real yaz-marcdump and pymarc,
//! on SQLite and on PostgreSQL.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use shoko_testkit::{TestDb, each_engine, fixtures};

/// A data dir and a database for one test.
struct Shoko {
    dir: tempfile::TempDir,
    db: TestDb,
}

impl Shoko {
    fn new(db: TestDb) -> Shoko {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("shoko.toml"),
            include_str!("../src/demo.toml"),
        )
        .expect("config");
        Shoko { dir, db }
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_shoko"));
        c.arg("--data-dir")
            .arg(self.dir.path())
            .arg("--database")
            .arg(self.db.url())
            .env("SHOKO_LOG__LEVEL", "warn");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("shoko runs")
    }

    /// Runs a command with `input` on its standard input.
    fn run_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("shoko runs");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), input.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("shoko ends")
    }

    /// Where a browser test writes its screenshots: `docs/screenshots` for
    /// the default engine (SQLite), the test's own dir for the other.
    fn screenshot_dir(&self) -> std::path::PathBuf {
        if self.db.engine() == "sqlite" {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
        } else {
            self.dir.path().join("screenshots")
        }
    }

    /// Runs `tests/browser/SCRIPT` with Node: the base URL, the screenshot
    /// dir, then `args`.
    fn browser(&self, script: &str, base: &str, args: &[&str]) -> Output {
        let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/browser")
            .join(script);
        Command::new("node")
            .arg(&script)
            .arg(base)
            .arg(self.screenshot_dir())
            .args(args)
            .output()
            .expect("node runs (scripts/install-test-deps installs the browser tests' packages)")
    }

    /// The JSON report a browser script prints last; the test fails with
    /// the script's output when the script failed.
    fn browser_report(&self, out: &Output) -> serde_json::Value {
        assert!(
            out.status.success(),
            "{}: {}{}",
            self.db.engine(),
            stdout(out),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout(out).trim()).expect("the script's report")
    }

    /// Adds a staff account with `shoko user add`.
    fn add_staff(&self, name: &str, role: &str) {
        let o = self.run_with_input(
            &["user", "add", name, "--role", role],
            &format!("{STAFF_PASSWORD}\n"),
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

const STAFF_PASSWORD: &str = "test staff password";

/// Logs a staff account in over HTTP and returns its bearer token.
async fn staff_token(http: &reqwest::Client, base: &str, name: &str) -> String {
    let body: serde_json::Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"kind": "staff", "name": name, "password": STAFF_PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    body["token"]
        .as_str()
        .unwrap_or_else(|| panic!("login failed: {body}"))
        .to_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn marc(path: &str) -> String {
    fixtures().join("marc").join(path).display().to_string()
}

#[tokio::test]
async fn an_import_lists_each_rejected_record_and_exits_3() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let bad = marc("pymarc/bad_records.mrc");
        let o = s.run(&["import", &marc("loc/loc_books2016_jpn300.mrc"), &bad]);
        let out = stdout(&o);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(o.status.code(), Some(3), "{}: {out}", s.db.engine());
        assert_eq!(lines[0], "imported 303, updated 0, rejected 5");
        assert_eq!(lines.len(), 6, "{out}");
        assert!(
            lines[1].starts_with(&format!("rejected: {bad}: record 2 at byte 127: ")),
            "{}",
            lines[1]
        );

        let again = s.run(&["import", &marc("loc/loc_books2016_jpn300.mrc")]);
        assert_eq!(again.status.code(), Some(0));
        assert_eq!(stdout(&again).trim(), "imported 0, updated 300, rejected 0");
    })
    .await;
}

#[tokio::test]
async fn marcxml_and_marc8_files_import_as_the_same_records() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let o = s.run(&[
            "import",
            "--format",
            "marcxml",
            &marc("loc/loc_books2016_jpn300.xml"),
        ]);
        assert_eq!(
            stdout(&o).trim(),
            "imported 300, updated 0, rejected 0",
            "{}",
            s.db.engine()
        );
        // The same 300 records in MARC-8 match by 001+003 and update.
        let o = s.run(&["import", &marc("loc/loc_books2016_jpn300.marc8.mrc")]);
        assert_eq!(stdout(&o).trim(), "imported 0, updated 300, rejected 0");
    })
    .await;
}

#[test]
fn validate_reports_bad_records_like_import_without_storing_anything() {
    let s = Shoko::new(TestDb::sqlite());
    let bad = marc("pymarc/bad_records.mrc");
    let o = s.run(&["validate", &marc("loc/loc_books2016_kor100.mrc"), &bad]);
    assert_eq!(o.status.code(), Some(3));
    let out = stdout(&o);
    assert_eq!(out.lines().next(), Some("valid 103, rejected 5"), "{out}");
    assert!(
        out.contains(&format!("rejected: {bad}: record 2 at byte 127: ")),
        "{out}"
    );
    let db_file =
        s.db.url()
            .trim_start_matches("sqlite://")
            .trim_end_matches("?mode=rwc");
    assert!(
        !Path::new(db_file).exists(),
        "validate must not create a database"
    );
}

#[test]
fn a_missing_file_is_a_fatal_error_with_exit_1() {
    let s = Shoko::new(TestDb::sqlite());
    let o = s.run(&["import", "/nonexistent/file.mrc"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/file.mrc"));
}

#[test]
fn an_unknown_configuration_key_is_named_and_nothing_runs() {
    let s = Shoko::new(TestDb::sqlite());
    std::fs::write(s.dir.path().join("shoko.toml"), "[server]\nlisen = \"x\"\n").expect("write");
    let o = s.run(&["config"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("lisen"));
}

#[test]
fn config_prints_the_effective_configuration_without_the_password() {
    let s = Shoko::new(TestDb::sqlite());
    let o = Command::new(env!("CARGO_BIN_EXE_shoko"))
        .arg("--data-dir")
        .arg(s.dir.path())
        .args([
            "--database",
            "postgres://shoko:s3cret@db.example/shoko",
            "config",
        ])
        .env("SHOKO_SERVER__LISTEN", "0.0.0.0:9000")
        .output()
        .expect("runs");
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    assert!(!out.contains("s3cret"), "{out}");
    assert!(
        out.contains("postgres://shoko:***@db.example/shoko"),
        "{out}"
    );
    assert!(out.contains("listen = \"0.0.0.0:9000\""), "{out}");
    assert!(out.contains("name_ja = \"本郷\""), "{out}");
}

fn count_with_yaz(path: &Path, xml: bool) -> usize {
    // Convert to ISO 2709 and count record terminators; any warning fails.
    let mut c = Command::new("yaz-marcdump");
    if xml {
        c.args(["-i", "marcxml"]);
    }
    let o = c
        .args(["-o", "marc"])
        .arg(path)
        .output()
        .expect("yaz-marcdump is installed (scripts/install-test-deps)");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && stderr.trim().is_empty(),
        "yaz-marcdump: {stderr}"
    );
    o.stdout.iter().filter(|&&b| b == 0x1D).count()
}

fn count_with_pymarc(path: &Path, xml: bool) -> usize {
    let script = if xml {
        "import sys, pymarc\nrecs = pymarc.parse_xml_to_array(sys.argv[1])\nassert all(r is not None for r in recs)\nprint(len(recs))"
    } else {
        "import sys, pymarc\nn = 0\nwith open(sys.argv[1], 'rb') as fh:\n    for r in pymarc.MARCReader(fh, to_unicode=True, permissive=False):\n        assert r is not None\n        n += 1\nprint(n)"
    };
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        o.status.success(),
        "pymarc failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(&o).trim().parse().expect("a count")
}

#[tokio::test]
async fn exported_files_read_back_cleanly_in_yaz_marcdump_and_pymarc() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let o = s.run(&[
            "import",
            &marc("loc/loc_books2016_jpn300.marc8.mrc"),
            &marc("loc/loc_books2016_kor100.mrc"),
            &marc("loc/loc_books2016_largest20.mrc"),
            &marc("marc-perl/marc-charset/cjk1.marc"),
        ]);
        assert_eq!(
            stdout(&o).lines().next(),
            Some("imported 421, updated 0, rejected 0"),
            "{}",
            s.db.engine()
        );
        for (format, xml) in [("iso2709", false), ("marcxml", true)] {
            let out: PathBuf = s.dir.path().join(format!("export.{format}"));
            let o = s.run(&[
                "export",
                "--format",
                format,
                "--output",
                &out.display().to_string(),
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert_eq!(count_with_yaz(&out, xml), 421, "{format}");
            assert_eq!(count_with_pymarc(&out, xml), 421, "{format}");
        }
    })
    .await;
}

/// A running `shoko serve` or `shoko demo`, stopped when dropped.
struct Server {
    child: Running,
    base: String,
}

/// A child process that is killed and reaped when dropped, so that a test
/// that fails before it stops the process (a plain `Child` is left running)
/// leaves no server behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Starts the server and waits for the line that says where it serves.
fn start(mut cmd: Command) -> Server {
    let mut child = Running(
        cmd.stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("starts"),
    );
    let stderr = child.stderr.take().expect("piped");
    let mut lines = BufReader::new(stderr).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("the server says where it serves before exiting")
            .expect("stderr line");
        if let Some(rest) = line.strip_prefix("Shoko is serving on ") {
            break rest.trim_end_matches('/').to_owned();
        }
    };
    // Keep draining so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Server { child, base }
}

#[tokio::test]
async fn the_server_answers_health_and_records_by_id_and_control_number() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let o = s.run(&["import", &marc("loc/loc_books2016_jpn300.mrc")]);
        assert!(o.status.success());
        s.add_staff("cataloguer", "cataloguer");
        let mut cmd = s.command();
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        let server = start(cmd);
        let http = reqwest::Client::new();
        let health = http.get(format!("{}/health", server.base)).send().await.expect("health");
        assert_eq!(health.status(), 200);

        let found: serde_json::Value = http
            .get(format!("{}/api/v1/records?control_number=00271342", server.base))
            .send()
            .await
            .expect("find")
            .json()
            .await
            .expect("json");
        let id = found["records"][0]["id"].as_i64().expect("an id");
        let record: serde_json::Value = http
            .get(format!("{}/api/v1/records/{id}", server.base))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(record["title"], "伝統話芸・講談のすべて", "{}", s.db.engine());
        assert_eq!(record["title_reading"], "Dentō wagei kōdan no subete");
        assert_eq!(record["marc"]["fields"][0]["001"], "   00271342 ");

        let token = staff_token(&http, &server.base, "cataloguer").await;
        let added = http
            .post(format!("{}/api/v1/records/{id}/items", server.base))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "barcode": "KMB0000001", "campus": "komaba", "location": "OPEN",
                "call_number": "GR340 .A25", "item_type": "BOOK"
            }))
            .send()
            .await
            .expect("post");
        assert_eq!(added.status(), 201);
        let again = http
            .post(format!("{}/api/v1/records/{id}/items", server.base))
            .bearer_auth(&token)
            .json(&serde_json::json!({"barcode": "KMB0000001", "campus": "KOMABA", "item_type": "BOOK"}))
            .send()
            .await
            .expect("post");
        assert_eq!(again.status(), 409);
        let body: serde_json::Value = again.json().await.expect("json");
        assert_eq!(body["error"]["code"], "barcode_taken");

        let missing = http.get(format!("{}/api/v1/records/999999", server.base)).send().await.expect("get");
        assert_eq!(missing.status(), 404);
    })
    .await;
}

#[tokio::test]
async fn the_demo_serves_japanese_chinese_korean_and_english_records_with_items() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("shoko-data");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoko"));
    cmd.arg("--data-dir")
        .arg(&data)
        .args(["demo", "--listen", "127.0.0.1:0"]);
    let server = start(cmd);
    let http = reqwest::Client::new();
    let mut scripts = (false, false, false);
    let mut campuses = std::collections::BTreeSet::new();
    for id in 1..=100 {
        let r: serde_json::Value = http
            .get(format!("{}/api/v1/records/{id}", server.base))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        let title = r["title"].as_str().expect("title");
        scripts.0 |= title
            .chars()
            .any(|c| ('\u{3040}'..='\u{30FF}').contains(&c));
        scripts.1 |= r["language"] == "chi"
            && title
                .chars()
                .any(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c));
        scripts.2 |= title
            .chars()
            .any(|c| ('\u{AC00}'..='\u{D7AF}').contains(&c));
        for item in r["items"].as_array().expect("items") {
            campuses.insert(item["campus"].as_str().expect("campus").to_owned());
        }
    }
    assert_eq!(scripts, (true, true, true));
    assert_eq!(campuses.len(), 4, "{campuses:?}");
    // The demo's desk account lends to a demo patron; the expired one is refused.
    let login: serde_json::Value = http
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(&serde_json::json!({"kind": "staff", "name": "desk", "password": "shoko-demo-desk"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["token"].as_str().expect("demo desk logs in");
    let first: serde_json::Value = http
        .get(format!("{}/api/v1/records/1", server.base))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let item = &first["items"][0];
    let lend = |patron: &'static str| {
        http.post(format!("{}/api/v1/loans", server.base))
            .bearer_auth(token)
            .header("accept-language", "ja")
            .json(&serde_json::json!({
                "patron_barcode": patron,
                "item_barcode": item["barcode"],
                "campus": item["campus"],
            }))
            .send()
    };
    let refused = lend("D0010").await.expect("checkout");
    assert_eq!(refused.status(), 409);
    let body: serde_json::Value = refused.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("有効期限")),
        "{body}"
    );
    assert_eq!(lend("D0001").await.expect("checkout").status(), 201);
    drop(server);
    // Reused: a second start does not import the demo records again.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoko"));
    cmd.arg("--data-dir")
        .arg(&data)
        .args(["demo", "--listen", "127.0.0.1:0"]);
    let server = start(cmd);
    let r = http
        .get(format!("{}/api/v1/records/101", server.base))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
}

/// Writes `n` distinct records (real LoC records with fresh 001s) to a file.
fn large_file(dir: &Path, n: usize) -> PathBuf {
    let source = std::fs::File::open(fixtures().join("marc/loc/loc_books2016_first1000.mrc"))
        .expect("fixture");
    let records: Vec<shoko_marc::Record> = shoko_marc::iso2709::Reader::new(BufReader::new(source))
        .map(|r| r.expect("io").expect("valid").record)
        .collect();
    let path = dir.join("large.mrc");
    let mut w = shoko_marc::iso2709::Writer::new(std::io::BufWriter::new(
        std::fs::File::create(&path).expect("create"),
    ));
    for i in 0..n {
        let mut r = records[i % records.len()].clone();
        // Copies of one record share its 035, which would match them as one.
        r.fields.retain(|f| f.tag().as_str() != "035");
        for f in &mut r.fields {
            if let shoko_marc::Field::Control { tag, value } = f
                && tag.as_str() == "001"
            {
                *value = format!("kill{i:07}");
            }
        }
        w.write(&r).expect("write");
    }
    w.finish().expect("flush");
    path
}

#[tokio::test]
async fn kill_9_during_an_import_keeps_every_committed_batch_and_a_rerun_completes_without_duplicates()
 {
    each_engine(|db| async move {
        const TOTAL: usize = 20_000;
        let s = Shoko::new(db);
        let file = large_file(s.dir.path(), TOTAL);
        let file_arg = file.display().to_string();
        let mut child = Running(
            s.command()
                .args(["import", &file_arg])
                .env("SHOKO_CATALOGUE__IMPORT_BATCH_SIZE", "500")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("starts"),
        );
        let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        let mut reported = 0u64;
        let mut seen = 0;
        while seen < 3 {
            let line = lines
                .next()
                .expect("progress before the end")
                .expect("line");
            if let Some(n) = line
                .strip_prefix("committed ")
                .and_then(|l| l.strip_suffix(" records"))
            {
                reported = n.parse().expect("a count");
                seen += 1;
            }
        }
        child.kill().expect("kill -9");
        child.wait().expect("reaped");
        assert!(
            reported < TOTAL as u64,
            "{}: killed too late to prove anything",
            s.db.engine()
        );

        let store = shoko_store::Store::open(s.db.url(), &shoko_store::StoreOptions::default())
            .await
            .expect("the database opens after kill -9");
        let (status, committed) = store
            .import_run_committed(1)
            .await
            .expect("run")
            .expect("run 1");
        let records = store.counts().await.expect("counts").records;
        assert_eq!(status, "running", "{}", s.db.engine());
        assert!(committed >= reported as i64, "{committed} < {reported}");
        assert_eq!(committed % 500, 0, "whole batches only");
        assert_eq!(records, committed, "{}: no half batch", s.db.engine());
        store.close().await.expect("close");

        let o = s.run(&["import", &file_arg]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            stdout(&o).trim(),
            format!(
                "imported {}, updated {committed}, rejected 0",
                TOTAL as i64 - committed
            )
        );
        let store = shoko_store::Store::open(s.db.url(), &shoko_store::StoreOptions::default())
            .await
            .expect("opens");
        assert_eq!(store.counts().await.expect("counts").records, TOTAL as i64);
    })
    .await;
}

#[tokio::test]
async fn an_item_with_an_unknown_campus_is_skipped_with_a_warning_and_its_record_imported() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let mut r = shoko_marc::Record::new();
        let field = |tag: &str, subs: &[(char, &str)]| shoko_marc::Field::Data {
            tag: tag.parse().expect("tag"),
            ind1: ' ',
            ind2: ' ',
            subfields: subs
                .iter()
                .map(|(c, v)| shoko_marc::Subfield {
                    code: *c,
                    value: (*v).into(),
                })
                .collect(),
        };
        r.fields = vec![
            shoko_marc::Field::Control {
                tag: "001".parse().expect("tag"),
                value: "w1".into(),
            },
            field("245", &[('a', "図書館情報学概論")]),
            field(
                "949",
                &[
                    ('a', "HONGO"),
                    ('b', "STACKS"),
                    ('c', "010 T12"),
                    ('p', "W0001"),
                ],
            ),
            field("949", &[('a', "OSAKA"), ('c', "010 T12"), ('p', "W0002")]),
        ];
        let path = s.dir.path().join("w.mrc");
        let mut w = shoko_marc::iso2709::Writer::new(std::fs::File::create(&path).expect("create"));
        w.write(&r).expect("write");
        w.finish().expect("flush");
        let o = s.run(&["import", &path.display().to_string()]);
        assert_eq!(o.status.code(), Some(0), "{}", s.db.engine());
        assert_eq!(stdout(&o).trim(), "imported 1, updated 0, rejected 0");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.contains("record 1: item W0002: unknown campus OSAKA; item skipped"),
            "{stderr}"
        );
        let store = shoko_store::Store::open(s.db.url(), &shoko_store::StoreOptions::default())
            .await
            .expect("opens");
        assert_eq!(store.counts().await.expect("counts").items, 1);
        assert!(
            store
                .item_by_barcode("W0002")
                .await
                .expect("query")
                .is_none()
        );
    })
    .await;
}

async fn search_json(http: &reqwest::Client, base: &str, query: &str) -> serde_json::Value {
    http.get(format!("{base}/api/v1/search"))
        .query(&[("q", query), ("facet", "campus"), ("facet", "language")])
        .send()
        .await
        .expect("search")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn the_server_indexes_on_start_searches_japanese_and_rebuilds_a_deleted_index() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let o = s.run(&["import", &marc("loc/loc_books2016_jpn300.mrc")]);
        assert!(o.status.success());
        let serve = || {
            let mut cmd = s.command();
            cmd.args(["serve", "--listen", "127.0.0.1:0"]);
            start(cmd)
        };
        let http = reqwest::Client::new();
        let server = serve();
        // The server says it serves only after the index has caught up.
        let health = health(&http, &server.base).await;
        assert_eq!(
            health["index"]["lag_rows"],
            0,
            "{}: {health}",
            s.db.engine()
        );
        assert_eq!(health["index"]["documents"], 300);
        let first = search_json(&http, &server.base, "title:講談").await;
        assert_eq!(first["total"], 1, "{first}");
        assert_eq!(first["hits"][0]["title"], "伝統話芸・講談のすべて");
        assert_eq!(
            first["hits"][0]["highlights"]["title"],
            "伝統話芸・<mark>講談</mark>のすべて"
        );
        assert_eq!(first["facets"]["language"][0]["value"], "jpn");
        // Half-width katakana and old kanji forms find the same as their standard forms.
        let by_year: serde_json::Value = http
            .get(format!("{}/api/v1/search", server.base))
            .query(&[("q", "日本"), ("sort", "year_asc"), ("limit", "50")])
            .send()
            .await
            .expect("search")
            .json()
            .await
            .expect("json");
        let years: Vec<i64> = by_year["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .filter_map(|h| h["year"].as_i64())
            .collect();
        assert!(
            years.len() > 5 && years.windows(2).all(|w| w[0] <= w[1]),
            "{years:?}"
        );
        // The command-line search reads the index beside the running server.
        let o = s.run(&["search", "title:講談"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = stdout(&o);
        assert!(out.starts_with("1 records\n"), "{out}");
        assert!(out.contains("\t1999\t伝統話芸・講談のすべて\t"), "{out}");
        let modern = search_json(&http, &server.base, "図書館").await;
        let old = search_json(&http, &server.base, "圖書館").await;
        assert_eq!(modern["total"], old["total"]);
        drop(server);

        let o = s.run(&["reindex"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(stdout(&o).trim(), "indexed 300 records");
        let server = serve();
        let reindexed = search_json(&http, &server.base, "title:講談").await;
        assert_eq!(reindexed["hits"], first["hits"]);
        drop(server);

        std::fs::remove_dir_all(s.dir.path().join("index")).expect("delete the index");
        let server = serve();
        let again = search_json(&http, &server.base, "title:講談").await;
        assert_eq!(
            again["hits"],
            first["hits"],
            "{}: rebuilt index answers the same",
            s.db.engine()
        );
    })
    .await;
}

/// The search indexer of `shoko serve` runs on its own thread below the
/// threads that answer requests, which run below the process's main thread
/// (and the accepting thread it starts).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_served_indexer_runs_below_the_threads_that_answer_requests() {
    use shoko_web::listener::{INDEXER_NICE, REQUEST_NICE};
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let o = s.run(&["import", &marc("loc/loc_books2016_jpn300.mrc")]);
        assert!(o.status.success());
        let mut cmd = s.command();
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        let server = start(cmd);
        let pid = server.child.id();
        let threads = shoko_testkit::thread_nice_values_of(pid);
        let main = shoko_testkit::main_thread_nice_of(pid);
        let nice_of = |name: &str| -> Vec<i32> {
            threads
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, nice)| *nice)
                .collect()
        };
        let (request, indexer) = ((main + REQUEST_NICE).min(19), (main + INDEXER_NICE).min(19));
        // Its thread, and any unnamed thread it starts, which takes its name.
        let indexers = nice_of("shoko-indexer");
        assert!(
            !indexers.is_empty() && indexers.iter().all(|&n| n == indexer),
            "{}: {threads:?}",
            s.db.engine()
        );
        // The requests' runtime's workers are five below; the threads the
        // indexer starts (its runtime's blocking threads, on SQLite its
        // connections') share its priority, as do the blocking threads the
        // workers start (lowered once more).
        let workers = nice_of("tokio-rt-worker");
        assert!(workers.contains(&request), "{threads:?}");
        assert!(
            workers.iter().all(|w| [request, indexer].contains(w)),
            "{threads:?}"
        );
        if s.db.engine() == "sqlite" {
            assert!(nice_of("sqlx-sqlite-wor").contains(&indexer), "{threads:?}");
        }
        // And it indexes: the server answers searches from what it indexed.
        let http = reqwest::Client::new();
        let found = search_json(&http, &server.base, "title:講談").await;
        assert_eq!(found["total"], 1, "{}: {found}", s.db.engine());
    })
    .await;
}

/// `shoko serve` runs without transparent huge pages (a fault on a fresh one
/// zeroes 2 MiB, and stalls while the kernel compacts memory to find one),
/// while this test process, started without the call, may still have them.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_server_runs_without_transparent_huge_pages() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let mut cmd = s.command();
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        let server = start(cmd);
        let pid = server.child.id();
        assert!(
            !shoko_testkit::transparent_huge_pages_enabled_of(pid),
            "{}: the server may get transparent huge pages",
            s.db.engine()
        );
        // Not inherited: the tests' own process has them.
        assert!(shoko_testkit::transparent_huge_pages_enabled_of(
            std::process::id()
        ));
    })
    .await;
}

async fn health(http: &reqwest::Client, base: &str) -> serde_json::Value {
    http.get(format!("{base}/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn kill_9_while_the_index_catches_up_loses_no_change_and_a_corrupt_index_is_rebuilt() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let serve = || {
            let mut cmd = s.command();
            cmd.args(["serve", "--listen", "127.0.0.1:0"]);
            start(cmd)
        };
        let http = reqwest::Client::new();
        assert!(
            s.run(&["import", &marc("loc/loc_books2016_jpn300.mrc")])
                .status
                .success()
        );
        drop(serve());
        let o = s.run(&["import", &marc("loc/loc_books2016_first1000.mrc")]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let records = s.db.store().await.counts().await.expect("counts").records;
        assert!(records > 1000, "{records}");

        // Start with 1,000 changes to apply, 50 per commit, and kill -9 after the first.
        let mut cmd = s.command();
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env("SHOKO_LOG__LEVEL", "info")
            .env("SHOKO_SEARCH__INDEX_BATCH", "50");
        let mut child = Running(
            cmd.stderr(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .expect("starts"),
        );
        let stderr = child.stderr.take().expect("piped");
        let mut lines = BufReader::new(stderr).lines();
        loop {
            let line = lines
                .next()
                .expect("the server logs its first index commit")
                .expect("line");
            assert!(
                !line.contains("Shoko is serving"),
                "caught up before the kill: {line}"
            );
            if line.contains("search index: changes applied") {
                break;
            }
        }
        child.kill().expect("kill -9");
        child.wait().expect("reaped");

        let server = serve();
        let h = health(&http, &server.base).await;
        assert_eq!(
            (
                h["index"]["lag_rows"].as_i64(),
                h["index"]["documents"].as_i64()
            ),
            (Some(0), Some(records)),
            "{}: {h}",
            s.db.engine()
        );
        let first = search_json(&http, &server.base, "title:講談").await;
        assert_eq!(first["total"], 1, "{first}");
        drop(server);

        // An index that cannot be opened is moved aside and rebuilt on start.
        let index = s.dir.path().join("index");
        std::fs::write(index.join("meta.json"), b"{ not json").expect("damage the index");
        let server = serve();
        let h = health(&http, &server.base).await;
        assert_eq!(
            (
                h["index"]["lag_rows"].as_i64(),
                h["index"]["documents"].as_i64()
            ),
            (Some(0), Some(records)),
            "{}: {h}",
            s.db.engine()
        );
        assert_eq!(
            search_json(&http, &server.base, "title:講談").await["hits"],
            first["hits"]
        );
        let aside = std::fs::read_dir(s.dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("index.corrupt-")
            });
        assert!(aside, "the damaged index is kept aside for inspection");
    })
    .await;
}

#[tokio::test]
async fn a_client_over_its_search_rate_gets_429_with_retry_after_and_health_counts_it() {
    let s = Shoko::new(TestDb::sqlite());
    assert!(
        s.run(&["import", &marc("loc/loc_books2016_jpn300.mrc")])
            .status
            .success()
    );
    let mut cmd = s.command();
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("SHOKO_SEARCH__PER_CLIENT_PER_SECOND", "1")
        .env("SHOKO_SEARCH__PER_CLIENT_BURST", "2");
    let server = start(cmd);
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let r = http
            .get(format!("{}/api/v1/search", server.base))
            .query(&[("q", "日本")])
            .send()
            .await
            .expect("search");
        if r.status() == 429 {
            retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let body: serde_json::Value = r.json().await.expect("json");
            assert_eq!(body["error"]["code"], "rate_limited");
            statuses.push(429);
        } else {
            statuses.push(r.status().as_u16());
        }
    }
    assert_eq!(&statuses[..2], &[200, 200], "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        retry_after.is_some_and(|s| (1..=2).contains(&s)),
        "{retry_after:?}"
    );
    // Health is never rate-limited, and counts the refusals.
    let h = health(&http, &server.base).await;
    assert!(
        h["search_admission"]["refused_rate"].as_u64() >= Some(1),
        "{h}"
    );
    assert!(
        h["search_admission"]["max_concurrent"].as_u64() >= Some(1),
        "{h}"
    );
}

#[tokio::test]
async fn reindex_beside_a_running_server_is_swapped_in_while_searches_go_on() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        assert!(
            s.run(&["import", &marc("loc/loc_books2016_jpn300.mrc")])
                .status
                .success()
        );
        let mut cmd = s.command();
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env("SHOKO_SEARCH__REFRESH_INTERVAL_MS", "50")
            .env("SHOKO_SEARCH__PER_CLIENT_PER_SECOND", "0");
        let server = start(cmd);
        let http = reqwest::Client::new();
        let before = search_json(&http, &server.base, "title:講談").await;
        assert_eq!(before["total"], 1, "{before}");
        // Searches keep being answered while the new index is built and swapped in.
        let searching = tokio::spawn({
            let http = http.clone();
            let base = server.base.clone();
            async move {
                let mut answered = 0u32;
                for _ in 0..200 {
                    let page = search_json(&http, &base, "title:講談").await;
                    assert_eq!(page["total"], 1, "{page}");
                    answered += 1;
                }
                answered
            }
        });
        let reindex = s.command().arg("reindex").output().expect("reindex runs");
        assert!(
            reindex.status.success(),
            "{}: {}",
            s.db.engine(),
            String::from_utf8_lossy(&reindex.stderr)
        );
        assert_eq!(stdout(&reindex).trim(), "indexed 300 records");
        assert!(
            String::from_utf8_lossy(&reindex.stderr).contains("the running server swapped in"),
            "{}",
            String::from_utf8_lossy(&reindex.stderr)
        );
        assert_eq!(searching.await.expect("searches"), 200);
        let h = health(&http, &server.base).await;
        assert_eq!(
            (
                h["index"]["documents"].as_i64(),
                h["index"]["lag_rows"].as_i64()
            ),
            (Some(300), Some(0)),
            "{h}"
        );
        assert_eq!(
            search_json(&http, &server.base, "title:講談").await["hits"],
            before["hits"]
        );
        assert!(!s.dir.path().join("index.next").exists());
        assert!(!s.dir.path().join("index.old").exists());
    })
    .await;
}

/// Imports the demo catalogue and its patrons, adds a circulation account,
/// and starts the server: a library ready for the desk, with the barcodes of
/// the items on the shelf at HONGO.
async fn desk_ready(s: &Shoko) -> (Server, String, Vec<String>) {
    let demo = fixtures().join("demo/demo.mrc").display().to_string();
    assert!(s.run(&["import", &demo]).status.success());
    let patrons = fixtures().join("demo/patrons.csv").display().to_string();
    let o = s.run(&["patron", "import", &patrons]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    s.add_staff("desk", "circulation");
    let store = shoko_store::Store::open(s.db.url(), &shoko_store::StoreOptions::default())
        .await
        .expect("store");
    let ids = store.record_ids_after(0, 100_000).await.expect("ids");
    let items: Vec<String> = store
        .items_of_records(&ids)
        .await
        .expect("items")
        .into_iter()
        .filter(|i| i.status == "available" && i.campus == "HONGO")
        .map(|i| i.barcode)
        .collect();
    store.close().await.expect("close");
    let mut cmd = s.command();
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    let server = start(cmd);
    let token = staff_token(&reqwest::Client::new(), &server.base, "desk").await;
    (server, token, items)
}

#[tokio::test]
async fn staff_accounts_and_patron_loads_are_managed_from_the_command_line() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        s.add_staff("tanaka", "cataloguer");
        let short = s.run_with_input(&["user", "add", "suzuki", "--role", "admin"], "short\n");
        assert_eq!(short.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&short.stderr).contains("at least 10 characters"));
        let bad_role = s.run_with_input(
            &["user", "add", "sato", "--role", "boss"],
            "long enough pw\n",
        );
        assert!(String::from_utf8_lossy(&bad_role.stderr).contains("boss"));
        let list = s.run(&["user", "list"]);
        assert_eq!(stdout(&list), "tanaka\tcataloguer\tactive\ttanaka\n");
        let o = s.run_with_input(&["user", "passwd", "tanaka"], "a new password here\n");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

        let csv = s.dir.path().join("patrons.csv");
        std::fs::write(
            &csv,
            "barcode,name,name_reading,category,home_campus,email,phone,language,expires_on\n\
             P1,東京 太郎,トウキョウ タロウ,UNDERGRAD,HONGO,taro@example.ac.jp,,ja,2028-03-31\n\
             P2,名前 なし,,UNDERGRAD,NOWHERE,,,ja,\n\
             P3,Jane Smith,,FACULTY,KOMABA,jane@example.ac.jp,,en,\n",
        )
        .expect("csv");
        let o = s.run(&["patron", "import", &csv.display().to_string()]);
        assert_eq!(o.status.code(), Some(3));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!(
                "{}:3: home_campus: unknown campus NOWHERE",
                csv.display()
            )),
            "{err}"
        );
        assert!(
            err.contains("2 patrons created, 0 updated, 1 rows rejected"),
            "{err}"
        );
    })
    .await;
}

#[tokio::test]
async fn the_served_openapi_document_validates() {
    let s = Shoko::new(TestDb::sqlite());
    let mut cmd = s.command();
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    let server = start(cmd);
    let doc = reqwest::get(format!("{}/api/v1/openapi.json", server.base))
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    let file = s.dir.path().join("openapi.json");
    std::fs::write(&file, doc).expect("write");
    let o = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("openapi-spec-validator runs (scripts/install-test-deps installs it)");
    assert!(
        o.status.success(),
        "{}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    let viewer = reqwest::get(format!("{}/api/v1/docs/", server.base))
        .await
        .expect("get");
    assert_eq!(viewer.status(), 200);
}

/// Sends a checkout over a raw connection and closes it without reading
/// the answer, as a desk whose network dropped.
async fn send_and_drop(base: &str, token: &str, key: &str, body: &str) {
    use tokio::io::AsyncWriteExt;
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "POST /api/v1/loans HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Idempotency-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    stream.shutdown().await.expect("drop");
}

#[tokio::test]
async fn a_checkout_sent_dropped_and_sent_again_with_its_key_lends_once() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let (server, token, items) = desk_ready(&s).await;
        let http = reqwest::Client::new();
        for (n, item) in items.iter().take(5).enumerate() {
            let key = format!("desk-7-{n}");
            let body = serde_json::json!({"patron_barcode": "D0001", "item_barcode": item, "campus": "HONGO"})
                .to_string();
            send_and_drop(&server.base, &token, &key, &body).await;
            let retry = http
                .post(format!("{}/api/v1/loans", server.base))
                .bearer_auth(&token)
                .header("idempotency-key", &key)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .expect("retry");
            assert_eq!(retry.status(), 201, "{}", s.db.engine());
            let first: serde_json::Value = retry.json().await.expect("json");
            let again: serde_json::Value = http
                .post(format!("{}/api/v1/loans", server.base))
                .bearer_auth(&token)
                .header("idempotency-key", &key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("again")
                .json()
                .await
                .expect("json");
            assert_eq!(first["loan"]["id"], again["loan"]["id"]);
        }
        drop(server);
        let store = shoko_store::Store::open(s.db.url(), &shoko_store::StoreOptions::default())
            .await
            .expect("store");
        let patron = store.patron_by_barcode("D0001").await.expect("read").expect("patron");
        assert_eq!(patron.open_loans, 5);
        assert_eq!(store.open_loans(patron.id, 0, 100).await.expect("loans").len(), 5);
        assert_eq!(store.circulation_problems().await.expect("check"), Vec::<String>::new());
    })
    .await;
}

/// What a desk worker last heard back about its item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Acked {
    Nothing,
    Lent,
    Returned,
}

type DeskOutcome = (String, Acked, u32, Option<bool>);

/// Eight desks lending and taking back their own items until the server
/// stops answering; each ends with what it last heard back per item. Every
/// acknowledgement is also sent on the returned channel.
fn desks_at_work(
    base: &str,
    token: &str,
    items: &[String],
) -> (
    Vec<tokio::task::JoinHandle<Vec<DeskOutcome>>>,
    tokio::sync::mpsc::UnboundedReceiver<()>,
) {
    let desks = 8;
    assert!(items.len() >= desks * 3, "{} items", items.len());
    let (acks, heard) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut workers = Vec::new();
    for d in 0..desks {
        let mine: Vec<String> = items
            .iter()
            .skip(d)
            .step_by(desks)
            .take(3)
            .cloned()
            .collect();
        let (base, token, acks) = (base.to_owned(), token.to_owned(), acks.clone());
        let patron = format!("D000{}", d % 5 + 1);
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut state: Vec<(String, Acked, u32, Option<bool>)> =
                mine.into_iter().map(|b| (b, Acked::Nothing, 0, None)).collect();
            'desk: for round in 0.. {
                for slot in state.iter_mut() {
                    let lend = slot.1 != Acked::Lent;
                    slot.3 = Some(lend);
                    let (path, body) = if lend {
                        ("loans", serde_json::json!({"patron_barcode": patron, "item_barcode": slot.0, "campus": "HONGO"}))
                    } else {
                        ("checkins", serde_json::json!({"item_barcode": slot.0, "campus": "HONGO"}))
                    };
                    let sent = http
                        .post(format!("{base}/api/v1/{path}"))
                        .bearer_auth(&token)
                        .header("idempotency-key", format!("{}-{round}", slot.0))
                        .json(&body)
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().is_success() => {
                            slot.1 = if lend { Acked::Lent } else { Acked::Returned };
                            if lend {
                                slot.2 += 1;
                            }
                            slot.3 = None;
                            let _ = acks.send(());
                        }
                        Ok(r) => panic!("{path} {}: {}", slot.0, r.text().await.unwrap_or_default()),
                        Err(_) => break 'desk,
                    }
                }
            }
            state
        }));
    }
    drop(acks);
    (workers, heard)
}

/// Every acknowledged operation is in the database (or the one in flight
/// went through after it), and item status, loans and counters agree.
async fn assert_acknowledged_state(url: &str, engine: &str, outcomes: &[DeskOutcome]) {
    let store = shoko_store::Store::open(url, &shoko_store::StoreOptions::default())
        .await
        .expect("store after kill -9");
    for (barcode, acked, lent, in_flight) in outcomes {
        let item = store
            .item_by_barcode(barcode)
            .await
            .expect("read")
            .expect("item");
        let loans = store
            .loans_of_item(item.id, 10_000)
            .await
            .expect("loans")
            .len() as u32;
        // The acknowledged state holds, or the one operation in flight
        // when the server died committed after it.
        let (status_ok, loans_ok) = match (acked, in_flight) {
            (Acked::Lent, None) => (item.status == "on_loan", loans == *lent),
            (Acked::Lent, Some(false)) => (item.status != "in_transit", loans == *lent),
            (_, Some(true)) => (
                item.status != "in_transit",
                loans == *lent || loans == lent + 1,
            ),
            (_, _) => (item.status == "available", loans == *lent),
        };
        assert!(
            status_ok && loans_ok,
            "{}: {barcode} acked {acked:?} (in flight {in_flight:?}) with {lent} loans; now {} with {loans}",
            engine,
            item.status
        );
    }
    assert_eq!(
        store.circulation_problems().await.expect("check"),
        Vec::<String>::new(),
        "{}",
        engine
    );
    store.close().await.expect("close");
}

#[tokio::test]
async fn kill_9_during_checkouts_and_checkins_loses_no_acknowledged_operation() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let (mut server, token, items) = desk_ready(&s).await;
        let (workers, mut heard) = desks_at_work(&server.base, &token, &items);
        for _ in 0..300 {
            heard.recv().await.expect("the desks keep working");
        }
        server.child.kill().expect("kill -9");
        server.child.wait().expect("reaped");
        let mut outcomes = Vec::new();
        for w in workers {
            outcomes.extend(w.await.expect("worker"));
        }
        assert_acknowledged_state(s.db.url(), s.db.engine(), &outcomes).await;
        // And the restarted server serves the desk again.
        let mut cmd = s.command();
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        let again = start(cmd);
        let token = staff_token(&reqwest::Client::new(), &again.base, "desk").await;
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/checkins", again.base))
            .bearer_auth(token)
            .json(&serde_json::json!({"item_barcode": outcomes[0].0, "campus": "HONGO"}))
            .send()
            .await
            .expect("checkin");
        assert_eq!(r.status(), 200);
    })
    .await;
}

#[tokio::test]
async fn kill_9_during_the_notice_job_marks_the_run_interrupted_and_the_rerun_sends_nothing_twice()
{
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let (server, token, items) = desk_ready(&s).await;
        let http = reqwest::Client::new();
        let patrons = ["D0001", "D0002", "D0003", "D0004", "D0006"];
        for (patron, item) in patrons.iter().zip(&items) {
            let r = http
                .post(format!("{}/api/v1/loans", server.base))
                .bearer_auth(&token)
                .json(&serde_json::json!({"patron_barcode": patron, "item_barcode": item, "campus": "HONGO"}))
                .send()
                .await
                .expect("checkout");
            assert_eq!(r.status(), 201);
        }
        drop(server);
        // A real SMTP server that takes a second per message.
        let mail = s.dir.path().join("mail.jsonl");
        let mut catcher = Command::new("python3")
            .arg(fixtures().join("../scripts/smtp-catcher.py"))
            .arg("0")
            .arg(&mail)
            .args(["--delay", "1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the SMTP catcher runs");
        let mut said = BufReader::new(catcher.stdout.take().expect("stdout")).lines();
        let ready = said.next().expect("ready").expect("line");
        let port = ready.trim_start_matches("ready ").to_owned();
        let jobs = |args: &[&str]| {
            let mut c = s.command();
            c.args(args)
                .env("SHOKO_MAIL__HOST", "127.0.0.1")
                .env("SHOKO_MAIL__PORT", &port)
                .env("SHOKO_JOBS__COURTESY_DAYS", "100");
            c
        };
        let mut run = Running(
            jobs(&["jobs", "run", "notices"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("jobs run"),
        );
        let first = said.next().expect("a message arrives").expect("line");
        assert!(first.starts_with("received"), "{first}");
        run.kill().expect("kill -9");
        run.wait().expect("reaped");
        let history = jobs(&["jobs", "history", "notices"]).output().expect("history");
        let text = stdout(&history);
        assert!(text.lines().next().is_some_and(|l| l.contains("\tinterrupted\t")), "{text}");
        let again = jobs(&["jobs", "run", "notices"]).output().expect("run again");
        assert!(again.status.success(), "{}{}", stdout(&again), String::from_utf8_lossy(&again.stderr));
        assert!(stdout(&again).contains("\tsucceeded\t"), "{}", stdout(&again));
        drop(catcher.stdin.take());
        catcher.wait().expect("catcher stops");
        // Nothing twice: each sent notice arrived once; the one being sent at
        // the kill arrived at most once and is marked uncertain.
        let received: Vec<serde_json::Value> = std::fs::read_to_string(&mail)
            .expect("mail")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        let ids: Vec<&str> = received.iter().map(|m| m["message_id"].as_str().expect("id")).collect();
        let unique: std::collections::BTreeSet<&&str> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{}: a notice was sent twice: {ids:?}", s.db.engine());
        let store = shoko_store::Store::open(s.db.url(), &shoko_store::StoreOptions::default())
            .await
            .expect("store");
        let notices = store.notices(100).await.expect("notices");
        assert_eq!(notices.len(), 5, "{notices:#?}");
        let sent = notices.iter().filter(|n| n.status == "sent").count();
        let uncertain = notices.iter().filter(|n| n.status == "uncertain").count();
        assert_eq!(sent + uncertain, 5, "{notices:?}");
        assert!(uncertain <= 1);
        assert!(received.len() >= sent && received.len() <= 5, "{} received, {sent} sent", received.len());
        for n in notices.iter().filter(|n| n.status == "sent") {
            let id = format!("<notice-{}-{}@shoko>", n.id, n.created_at);
            assert_eq!(ids.iter().filter(|i| **i == id).count(), 1, "{id}");
        }
    })
    .await;
}

#[tokio::test]
async fn sigterm_under_load_finishes_requests_in_flight_and_exits_0() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let (mut server, token, items) = desk_ready(&s).await;
        let (workers, mut heard) = desks_at_work(&server.base, &token, &items);
        for _ in 0..200 {
            heard.recv().await.expect("the desks keep working");
        }
        let term = Command::new("kill")
            .args(["-TERM", &server.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(term.success());
        let exit = server.child.wait().expect("the server exits");
        assert_eq!(
            exit.code(),
            Some(0),
            "{}: exit after SIGTERM",
            s.db.engine()
        );
        // No desk saw a 5xx (a worker panics on any answer but success), and
        // every acknowledged operation is stored.
        let mut outcomes = Vec::new();
        for w in workers {
            outcomes.extend(w.await.expect("no desk got an error answer"));
        }
        assert_acknowledged_state(s.db.url(), s.db.engine(), &outcomes).await;
    })
    .await;
}

#[tokio::test]
async fn check_finds_each_kind_of_inconsistency_and_repair_fixes_it() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let (server, token, items) = desk_ready(&s).await;
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/loans", server.base))
            .bearer_auth(&token)
            .json(&serde_json::json!({"patron_barcode": "D0001", "item_barcode": items[1], "campus": "HONGO"}))
            .send()
            .await
            .expect("checkout");
        assert_eq!(r.status(), 201);
        drop(server);
        assert!(s.run(&["check"]).status.success());
        // Damage behind Shoko's back, one of each kind.
        for sql in [
            format!("UPDATE items SET status = 'on_loan' WHERE barcode = '{}'", items[0]),
            format!("UPDATE items SET status = 'available' WHERE barcode = '{}'", items[1]),
            "UPDATE patrons SET open_loans = 7 WHERE barcode = 'D0002'".to_owned(),
            "UPDATE patrons SET fines_owed = 999 WHERE barcode = 'D0003'".to_owned(),
            format!("UPDATE items SET status = 'in_transit' WHERE barcode = '{}'", items[2]),
            format!("UPDATE items SET status = 'on_hold_shelf' WHERE barcode = '{}'", items[3]),
        ] {
            s.db.execute_sql(&sql).await;
        }
        let found = s.run(&["check"]);
        assert_eq!(found.status.code(), Some(1));
        let text = stdout(&found);
        for expected in [
            format!("✖ item on loan without an open loan: {}", items[0]),
            format!("✖ open loan on an item not marked on loan: {}", items[1]),
            "✖ patron's open-loan counter differs from the open loans: D0002".to_owned(),
            "✖ patron's fines counter differs from the fines: D0003".to_owned(),
            format!("✖ item in transit without an open transit: {}", items[2]),
            format!("✖ item on the hold shelf without a hold: {}", items[3]),
        ] {
            assert!(text.contains(&expected), "{}: {expected} in\n{text}", s.db.engine());
        }
        let repaired = s.run(&["check", "--repair"]);
        assert!(repaired.status.success(), "{}", stdout(&repaired));
        assert_eq!(stdout(&repaired).matches("→ repaired 1:").count(), 6, "{}", stdout(&repaired));
        let again = s.run(&["check"]);
        assert!(again.status.success(), "{}", stdout(&again));
        let store = shoko_store::Store::open(s.db.url(), &shoko_store::StoreOptions::default())
            .await
            .expect("store");
        let status = |i: usize| {
            let store = store.clone();
            let barcode = items[i].clone();
            async move { store.item_by_barcode(&barcode).await.expect("read").expect("item").status }
        };
        assert_eq!(status(0).await, "available");
        assert_eq!(status(1).await, "on_loan");
        assert_eq!(status(2).await, "available");
        assert_eq!(status(3).await, "available");
        let d2 = store.patron_by_barcode("D0002").await.expect("read").expect("patron");
        assert_eq!(d2.open_loans, 0);
    })
    .await;
}

#[tokio::test]
async fn a_backup_taken_during_writes_verifies_and_restores_to_a_state_check_passes() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let (mut server, token, items) = desk_ready(&s).await;
        let (workers, mut heard) = desks_at_work(&server.base, &token, &items);
        for _ in 0..100 {
            heard.recv().await.expect("the desks keep working");
        }
        // Taken while the desks keep lending and returning.
        let file = s.dir.path().join("shoko.backup");
        let o = s.run(&["backup", &file.display().to_string()]);
        assert!(
            o.status.success(),
            "{}: {}",
            s.db.engine(),
            String::from_utf8_lossy(&o.stderr)
        );
        for _ in 0..50 {
            heard
                .recv()
                .await
                .expect("the desks kept working during the backup");
        }
        server.child.kill().expect("stop");
        server.child.wait().expect("reaped");
        for w in workers {
            w.await.expect("desk");
        }
        let verified = s.run(&["backup", "--verify", &file.display().to_string()]);
        assert!(
            verified.status.success(),
            "{}{}",
            stdout(&verified),
            String::from_utf8_lossy(&verified.stderr)
        );
        assert!(stdout(&verified).starts_with('✔'), "{}", stdout(&verified));
        // Restore into a new place and check it.
        let target = match s.db.engine() {
            "sqlite" => TestDb::sqlite(),
            _ => TestDb::postgres().await,
        };
        let restored = Shoko::new(target);
        let o = restored.run(&["restore", &file.display().to_string()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let checked = restored.run(&["check"]);
        assert!(
            checked.status.success(),
            "{}: {}",
            s.db.engine(),
            stdout(&checked)
        );
        let original: serde_json::Value = serde_json::from_slice(
            &std::fs::read(s.dir.path().join("shoko.backup.manifest.json")).expect("manifest"),
        )
        .expect("json");
        assert!(
            original["counts"]["tables"]["loans"]
                .as_i64()
                .is_some_and(|n| n > 0),
            "{original}"
        );
        // A damaged backup does not verify.
        if s.db.engine() == "sqlite" {
            let bytes = std::fs::read(&file).expect("read");
            std::fs::write(&file, &bytes[..bytes.len() / 2]).expect("truncate");
            let bad = s.run(&["backup", "--verify", &file.display().to_string()]);
            assert!(!bad.status.success());
        }
    })
    .await;
}

#[tokio::test]
async fn start_status_and_stop_run_the_server_in_the_background() {
    let s = Shoko::new(TestDb::sqlite());
    let status = s.run(&["status"]);
    assert_eq!(status.status.code(), Some(3), "{}", stdout(&status));
    let started = s.run(&["start", "--listen", "127.0.0.1:0"]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let said = stdout(&started);
    let base = said
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("where it serves")
        .trim_end_matches('/')
        .to_owned();
    assert!(s.dir.path().join("shoko.pid").exists());
    let live = reqwest::get(format!("{base}/health/live"))
        .await
        .expect("live");
    assert_eq!(live.status(), 200);
    let again = s.run(&["start"]);
    assert!(!again.status.success(), "a second start is refused");
    let status = s.run(&["status"]);
    assert_eq!(status.status.code(), Some(0));
    assert!(
        stdout(&status).contains("/health/ready: HTTP/1.1 200"),
        "{}",
        stdout(&status)
    );
    let stopped = s.run(&["stop"]);
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    assert!(!s.dir.path().join("shoko.pid").exists());
    assert!(
        !s.dir.path().join("shoko.running").exists(),
        "a clean stop leaves no marker"
    );
    assert_eq!(s.run(&["status"]).status.code(), Some(3));
    let log = std::fs::read_to_string(s.dir.path().join("shoko.log")).expect("log");
    assert!(log.contains("Shoko stopped cleanly"), "{log}");
    assert!(reqwest::get(format!("{base}/health/live")).await.is_err());
}

#[tokio::test]
async fn after_an_unclean_stop_the_server_checks_and_repairs_circulation_before_serving() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let (mut server, _token, _items) = desk_ready(&s).await;
        server.child.kill().expect("kill -9");
        server.child.wait().expect("reaped");
        assert!(s.dir.path().join("shoko.running").exists());
        s.db.execute_sql("UPDATE patrons SET open_loans = 7 WHERE barcode = 'D0002'")
            .await;
        let mut cmd = s.command();
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        let again = start(cmd);
        let store = shoko_store::Store::open(s.db.url(), &shoko_store::StoreOptions::default())
            .await
            .expect("store");
        let d2 = store
            .patron_by_barcode("D0002")
            .await
            .expect("read")
            .expect("patron");
        assert_eq!(
            d2.open_loans,
            0,
            "{}: repaired before serving",
            s.db.engine()
        );
        assert!(
            store
                .circulation_problems()
                .await
                .expect("check")
                .is_empty()
        );
        drop(again);
    })
    .await;
}

#[tokio::test]
async fn an_older_schema_is_refused_tried_on_a_copy_and_upgraded_after_a_backup() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let demo = fixtures().join("demo/demo.mrc").display().to_string();
        assert!(s.run(&["import", &demo]).status.success());
        let patrons = fixtures().join("demo/patrons.csv").display().to_string();
        assert!(s.run(&["patron", "import", &patrons]).status.success());
        let store = shoko_store::Store::open(s.db.url(), &shoko_store::StoreOptions::default())
            .await
            .expect("store");
        let records = store.counts().await.expect("counts").records;
        assert!(records > 0);
        store.close().await.expect("close");
        // The database as the previous release (schema m0003_jobs) left it:
        // migrations are append-only, so that is this one without m0004 and
        // m0005.
        for table in ["fund_ledger", "invoice_lines", "invoices", "order_lines", "funds", "vendors", "storage_samples"] {
            s.db.execute_sql(&format!("DROP TABLE {table}")).await;
        }
        s.db.execute_sql("DELETE FROM seaql_migrations WHERE version IN ('m0004_storage_samples', 'm0005_acquisitions')")
            .await;

        let refused = s.run(&["check"]);
        assert_eq!(refused.status.code(), Some(1));
        let err = String::from_utf8_lossy(&refused.stderr).into_owned();
        assert!(err.contains("schema is older"), "{err}");
        assert!(err.contains("shoko upgrade --dry-run"), "{err}");
        assert!(err.contains("m0004_storage_samples"), "{err}");

        let dry = s.run(&["upgrade", "--dry-run"]);
        let text = stdout(&dry);
        assert!(dry.status.success(), "{text}{}", String::from_utf8_lossy(&dry.stderr));
        assert!(text.contains("on a copy: applied 2 in"), "{text}");
        assert!(text.contains("m0004_storage_samples, m0005_acquisitions"), "{text}");
        assert!(text.contains("no rows lost; circulation consistent"), "{text}");
        // The database itself is untouched by the dry run.
        assert_eq!(s.run(&["check"]).status.code(), Some(1));

        let up = s.run(&["upgrade"]);
        let text = stdout(&up);
        assert!(up.status.success(), "{text}{}", String::from_utf8_lossy(&up.stderr));
        assert!(text.contains("backup taken and verified:"), "{text}");
        let backups: Vec<_> = std::fs::read_dir(s.dir.path().join("backups"))
            .expect("backups")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            backups.iter().any(|n| n.starts_with("pre-upgrade-") && !n.ends_with(".json")),
            "{backups:?}"
        );
        let checked = s.run(&["check"]);
        assert!(checked.status.success(), "{}", stdout(&checked));
        assert!(stdout(&s.run(&["upgrade"])).contains("the schema is current"));
        let store = shoko_store::Store::open(s.db.url(), &shoko_store::StoreOptions::default())
            .await
            .expect("the upgraded database opens");
        assert_eq!(store.counts().await.expect("counts").records, records);
        assert!(store.patron_by_barcode("D0007").await.expect("read").is_some());
        store.close().await.expect("close");

        // A schema from a newer Shoko: refused, with what to do.
        s.db.execute_sql(
            "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m9999_from_the_future', 0)",
        )
        .await;
        let newer = s.run(&["serve", "--listen", "127.0.0.1:0"]);
        assert_eq!(newer.status.code(), Some(1));
        let err = String::from_utf8_lossy(&newer.stderr).into_owned();
        assert!(err.contains("schema is newer than this Shoko"), "{err}");
        assert!(err.contains("m9999_from_the_future"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn doctor_and_the_support_bundle_tell_what_an_operator_must_know() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let demo = fixtures().join("demo/demo.mrc").display().to_string();
        assert!(s.run(&["import", &demo]).status.success());
        let sampled = s.run(&["jobs", "run", "capacity"]);
        assert!(sampled.status.success(), "{}", stdout(&sampled));
        let backed = s.run(&["jobs", "run", "backup"]);
        assert!(backed.status.success(), "{}{}", stdout(&backed), String::from_utf8_lossy(&backed.stderr));
        let doctor = s.run(&["doctor"]);
        let text = stdout(&doctor);
        for area in ["schema", "database", "disk", "capacity", "consistency", "jobs", "backup"] {
            assert!(
                text.lines().any(|l| l.split_whitespace().nth(1) == Some(area)),
                "{area} missing from\n{text}"
            );
        }
        let latest = shoko_store::known_migrations().pop().expect("migrations");
        assert!(text.contains(&latest), "{text}");
        assert!(!text.contains("✖"), "{text}");
        assert!(doctor.status.success());
        let ja = stdout(&s.run(&["doctor", "--ja"]));
        assert!(ja.contains("データベース"), "{ja}");

        // An orphan behind Shoko's back: doctor and check both name it.
        let orphan = if s.db.engine() == "sqlite" {
            "PRAGMA foreign_keys = OFF; UPDATE items SET record_id = 999999 WHERE id = (SELECT MIN(id) FROM items)"
        } else {
            "SET session_replication_role = replica; UPDATE items SET record_id = 999999 WHERE id = (SELECT MIN(id) FROM items)"
        };
        s.db.execute_sql(orphan).await;
        let sick = s.run(&["doctor"]);
        assert_eq!(sick.status.code(), Some(1));
        assert!(stdout(&sick).contains("✖ consistency"), "{}", stdout(&sick));
        let check = s.run(&["check"]);
        assert_eq!(check.status.code(), Some(1));
        assert!(
            stdout(&check).contains("orphan: items") && stdout(&check).contains("records 999999"),
            "{}",
            stdout(&check)
        );

        let bundle = s.dir.path().join("bundle.tar.gz");
        let out = s
            .command()
            .env("SHOKO_MAIL__PASSWORD", "secret-xyz-123")
            .args(["support-bundle", "--output", bundle.to_str().expect("path")])
            .output()
            .expect("shoko runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let listing = Command::new("tar").arg("tzf").arg(&bundle).output().expect("tar");
        let names = stdout(&listing);
        for name in [
            "version.txt", "config.toml", "schema.json", "health.json", "doctor.txt",
            "capacity.json", "jobs.json", "metrics.txt", "shoko.log",
        ] {
            assert!(names.contains(&format!("shoko-support/{name}")), "{name} in {names}");
        }
        let config = Command::new("tar")
            .arg("xzOf")
            .arg(&bundle)
            .arg("shoko-support/config.toml")
            .output()
            .expect("tar");
        let config = stdout(&config);
        assert!(config.contains("[operations]"), "{config}");
        assert!(!config.contains("secret-xyz-123"), "{config}");
        assert!(config.contains("password = \"***\""), "{config}");
    })
    .await;
}

#[tokio::test]
async fn the_operations_page_shows_storage_and_findings_in_a_browser_in_japanese_and_english() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let mut cmd = s.command();
        // The samples come from the two runs below, not from the server's
        // own schedule (a run by hand while it runs the job is refused).
        cmd.args(["demo", "--listen", "127.0.0.1:0"])
            .env("SHOKO_JOBS__CAPACITY__ENABLED", "false");
        let server = start(cmd);
        // Two rounds of samples beside the running server: a line each.
        for _ in 0..2 {
            let run = s.run(&["jobs", "run", "capacity"]);
            assert!(run.status.success(), "{}", stdout(&run));
        }
        let shots = s.screenshot_dir();
        let out = s.browser(
            "operations.mjs",
            &server.base,
            &["admin", "shoko-demo-admin"],
        );
        let report = s.browser_report(&out);
        assert_eq!(report["ja"]["charts"], 3, "{report}");
        for name in [
            "operations-ja.png",
            "operations-en.png",
            "staff-login-ja.png",
        ] {
            let png = std::fs::read(shots.join(name)).expect("screenshot");
            assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{name}");
        }
        drop(server);
    })
    .await;
}

#[tokio::test]
async fn check_compares_the_index_with_the_outbox_and_the_database() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let demo = fixtures().join("demo/demo.mrc").display().to_string();
        assert!(s.run(&["import", &demo]).status.success());
        assert!(s.run(&["reindex"]).status.success());
        let fine = s.run(&["check"]);
        assert!(fine.status.success(), "{}", stdout(&fine));

        // A record gone behind Shoko's back (no outbox row): the index still has it.
        s.db.execute_sql("DELETE FROM items WHERE record_id = (SELECT MAX(id) FROM records)")
            .await;
        s.db.execute_sql("DELETE FROM records WHERE id = (SELECT MAX(id) FROM records)")
            .await;
        let found = s.run(&["check", "--repair"]);
        assert_eq!(found.status.code(), Some(1), "{}", stdout(&found));
        let text = stdout(&found);
        assert!(
            text.contains("✖ index:") && text.contains("run `shoko reindex`"),
            "{text}"
        );

        // The outbox emptied (a database restored under a newer index).
        s.db.execute_sql("DELETE FROM catalogue_outbox").await;
        let text = stdout(&s.run(&["check"]));
        assert!(
            text.contains("✖ outbox: the index has applied change"),
            "{text}"
        );

        assert!(s.run(&["reindex"]).status.success());
        let again = s.run(&["check"]);
        assert!(again.status.success(), "{}", stdout(&again));
    })
    .await;
}

#[tokio::test]
async fn the_catalogue_and_the_desk_work_in_a_browser_and_the_desk_loses_no_scan() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("address")
            .port();
        let listen = format!("127.0.0.1:{port}");
        // The demo sets up records, accounts and patrons, then stops.
        let mut demo = s.command();
        demo.args(["demo", "--listen", &listen]);
        let server = start(demo);
        let pid = server.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .expect("kill")
                .success()
        );
        let mut server = server;
        assert!(server.child.wait().expect("demo stops").success());
        drop(server);
        // The server in the background, as `shoko start` runs it: the
        // browser test stops and starts it in the middle of a desk session.
        let started = s.run(&["start", "--listen", &listen]);
        assert!(
            started.status.success(),
            "{}",
            String::from_utf8_lossy(&started.stderr)
        );
        let bin = env!("CARGO_BIN_EXE_shoko");
        let data = s.dir.path().display().to_string();
        let out = s.browser(
            "catalogue-and-desk.mjs",
            &format!("http://{listen}"),
            &[bin, &data, s.db.url(), &port.to_string()],
        );
        // Stopped before the verdict, so a failure leaves no server behind.
        let stopped = s.run(&["stop"]);
        let report = s.browser_report(&out);
        assert!(stopped.status.success());
        assert_eq!(report["exactly_once"], true, "{report}");
        assert_eq!(
            report["steps"].as_array().map(Vec::len),
            Some(12),
            "{report}"
        );
        // Circulation agrees after the stop in the middle.
        let check = s.run(&["check"]);
        assert!(check.status.success(), "{}", stdout(&check));
    })
    .await;
}

#[tokio::test]
async fn the_acquisitions_pages_take_an_order_from_budget_to_payment_in_a_browser() {
    each_engine(|db| async move {
        let s = Shoko::new(db);
        let mut cmd = s.command();
        cmd.args(["demo", "--listen", "127.0.0.1:0"]);
        let server = start(cmd);
        let out = s.browser("acquisitions.mjs", &server.base, &[]);
        let report = s.browser_report(&out);
        assert_eq!(report["balance"]["available"], "93,070円", "{report}");
        drop(server);
        let check = s.run(&["check"]);
        assert!(check.status.success(), "{}", stdout(&check));
    })
    .await;
}

#[tokio::test]
async fn connections_above_the_bound_get_a_503_at_once_and_the_server_serves_when_they_go() {
    use std::io::{Read, Write};
    let s = Shoko::new(TestDb::sqlite());
    let mut cmd = s.command();
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("SHOKO_SERVER__MAX_CONNECTIONS", "16");
    let server = start(cmd);
    let addr = server.base.trim_start_matches("http://").to_owned();
    let get = |stream: &mut std::net::TcpStream| {
        write!(stream, "GET /health/live HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("send");
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).expect("answer");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    // Sixteen connections held open, each answered.
    let mut held: Vec<std::net::TcpStream> = (0..16)
        .map(|_| {
            let mut c = std::net::TcpStream::connect(&addr).expect("connect");
            assert!(get(&mut c).starts_with("HTTP/1.1 200"));
            c
        })
        .collect();
    // The seventeenth is refused before any request is read.
    let mut extra = std::net::TcpStream::connect(&addr).expect("connect");
    let mut answer = String::new();
    extra
        .read_to_string(&mut answer)
        .expect("the refusal, then the close");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("retry-after: 1") && answer.contains("\"overloaded\""),
        "{answer}"
    );
    // Once some go, new connections are served again.
    held.truncate(8);
    // (Until the server has seen them go, a new connection may still be
    // refused, even before its request is written: that try is repeated.)
    let mut served = None;
    for _ in 0..2000 {
        let mut c = std::net::TcpStream::connect(&addr).expect("connect");
        if write!(c, "GET /health/live HTTP/1.1\r\nHost: {addr}\r\n\r\n").is_err() {
            continue;
        }
        let mut buf = [0u8; 512];
        let Ok(n) = c.read(&mut buf) else { continue };
        let a = String::from_utf8_lossy(&buf[..n]).into_owned();
        if a.starts_with("HTTP/1.1 200") {
            served = Some(a);
            break;
        }
    }
    assert!(served.is_some(), "the server never served again");
    drop(held);
    drop(server);
}
