//! Batch jobs on SQLite and PostgreSQL with a fake clock: notices through a
//! real SMTP server (aiosmtpd, `scripts/smtp-catcher.py`), the scheduler
//! across a day with retries, and pick lists and slips (CSV, HTML, and PDF
//! read back with `pdftotext`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone;
use shoko_app::circulation::Caller;
use shoko_app::import::{InputFormat, Silent};
use shoko_app::patrons::PatronInput;
use shoko_app::settings::{CampusSetting, NamedCode};
use shoko_app::{
    App, CatalogueSettings, Clock, IndexOptions, JobsSettings, MailSettings, ManualClock, Settings,
    StoreOptions,
};
use shoko_domain::{Barcode, CampusCode, ItemSpec, ItemStatus, ItemTypeCode, LocationCode};
use shoko_testkit::{TestDb, each_engine, fixtures};

const DAY: Duration = Duration::from_secs(86_400);

fn tokyo(y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
    chrono_tz::Asia::Tokyo
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .expect("valid time")
        .timestamp_millis()
}

/// The SMTP catcher: a real aiosmtpd server writing what it receives to a file.
struct Smtp {
    child: Child,
    port: u16,
    out: std::path::PathBuf,
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Smtp {
    fn start(port: u16, out: &std::path::Path) -> Smtp {
        let script = fixtures().join("../scripts/smtp-catcher.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the SMTP catcher (scripts/install-test-deps installs aiosmtpd)");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        stdout.read_line(&mut line).expect("ready line");
        let port = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the SMTP catcher did not start: {line:?}"));
        Smtp {
            child,
            port,
            out: out.to_owned(),
            _stdout: stdout,
        }
    }

    fn stop(mut self) {
        drop(self.child.stdin.take());
        self.child.wait().expect("catcher stops");
    }

    fn messages(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn campus(code: &str, ja: &str, en: &str) -> CampusSetting {
    CampusSetting {
        code: CampusCode::parse(code).expect("code"),
        name_ja: ja.into(),
        name_en: en.into(),
        locations: vec![
            NamedCode {
                code: LocationCode::parse("OPEN").expect("code"),
                name_ja: "開架".into(),
                name_en: "Open shelves".into(),
            },
            NamedCode {
                code: LocationCode::parse("STACKS").expect("code"),
                name_ja: "書庫".into(),
                name_en: "Stacks".into(),
            },
        ],
    }
}

struct Library {
    app: App,
    clock: Arc<ManualClock>,
    records: Vec<i64>,
    _out: tempfile::TempDir,
}

impl Library {
    async fn open(db: &TestDb, smtp_port: u16, start: i64, font: Option<&str>) -> Library {
        let out = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(start));
        // The capacity and backup jobs have a test of their own.
        let off = shoko_app::settings::JobSchedule {
            enabled: false,
            cron: "0 * * * *".into(),
        };
        let mut jobs = JobsSettings {
            output_dir: Some(out.path().to_owned()),
            capacity: off.clone(),
            backup: off.clone(),
            claims: off,
            ..Default::default()
        };
        if let Some(f) = font {
            jobs.font = f.into();
        }
        let app = App::open(
            db.url(),
            &StoreOptions::default(),
            &IndexOptions::default(),
            Settings {
                catalogue: CatalogueSettings {
                    campuses: vec![
                        campus("MAIN", "本館", "Main Library"),
                        campus("KOMABA", "駒場", "Komaba"),
                        campus("KASHIWA", "柏", "Kashiwa"),
                    ],
                    ..Default::default()
                },
                jobs,
                mail: MailSettings {
                    host: "127.0.0.1".into(),
                    port: smtp_port,
                    from: "図書館 <library@example.ac.jp>".into(),
                    timeout_seconds: 5,
                    ..Default::default()
                },
                ..Default::default()
            },
            clock.clone(),
        )
        .await
        .expect("app");
        let file = fixtures().join("marc/loc/loc_books2016_jpn300.mrc");
        app.import_files(&[file], InputFormat::Auto, Arc::new(Silent))
            .await
            .expect("import");
        let records = app.store.record_ids_after(0, 10).await.expect("ids");
        Library {
            app,
            clock,
            records,
            _out: out,
        }
    }

    async fn item(&self, record: usize, barcode: &str, campus: &str, location: &str, call: &str) {
        self.app
            .add_item(
                &App::system(),
                self.records[record],
                ItemSpec {
                    barcode: Barcode::parse(barcode).expect("barcode"),
                    campus: CampusCode::parse(campus).expect("campus"),
                    location: Some(LocationCode::parse(location).expect("location")),
                    call_number: Some(call.into()),
                    item_type: ItemTypeCode::parse("BOOK").expect("type"),
                    status: ItemStatus::Available,
                },
            )
            .await
            .expect("item");
    }

    async fn patron(&self, barcode: &str, name: &str, email: Option<&str>, language: &str) -> i64 {
        self.app
            .create_patron(
                &App::system(),
                PatronInput {
                    barcode: barcode.into(),
                    name: name.into(),
                    category: "UNDERGRAD".into(),
                    home_campus: "MAIN".into(),
                    email: email.map(str::to_owned),
                    language: Some(language.into()),
                    expires_on: Some("2030-03-31".into()),
                    ..Default::default()
                },
                None,
            )
            .await
            .expect("patron")
            .id
    }

    async fn lend(&self, patron: &str, item: &str, campus: &str) {
        self.app
            .checkout(
                &App::system(),
                patron,
                &Barcode::parse(item).expect("barcode"),
                &CampusCode::parse(campus).expect("campus"),
            )
            .await
            .expect("checkout");
    }
}

#[tokio::test]
async fn notices_go_out_once_in_the_patrons_language_and_wait_for_a_server_that_is_down() {
    each_engine(|db| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let smtp = Smtp::start(0, &dir.path().join("mail.jsonl"));
        let lib = Library::open(&db, smtp.port, tokyo(2026, 11, 2, 10, 0), None).await;
        for (n, b) in ["4001", "4002", "4003", "4004"].iter().enumerate() {
            lib.item(n, b, "MAIN", "OPEN", &format!("910.2 A{n}")).await;
        }
        lib.patron("P1", "山田 花子", Some("hanako@example.ac.jp"), "ja")
            .await;
        lib.patron("P2", "Emily Carter", Some("emily@example.ac.jp"), "en")
            .await;
        lib.patron("P3", "郵便 のみ", None, "ja").await;
        let p4 = lib
            .patron("P4", "予約 太郎", Some("taro@example.ac.jp"), "ja")
            .await;
        // Day 0: P2 borrows (due day 14, overdue by 8 days at day 23).
        lib.lend("P2", "4002", "MAIN").await;
        lib.clock.advance(7 * DAY);
        lib.lend("P3", "4003", "MAIN").await;
        lib.clock.advance(4 * DAY);
        lib.lend("P1", "4001", "MAIN").await;
        lib.clock.advance(12 * DAY);
        // Day 23: P4's hold on a title on the shelf is trapped by a scan.
        let placed = lib
            .app
            .place_hold(
                &App::system(),
                p4,
                lib.records[3],
                None,
                &CampusCode::parse("MAIN").expect("campus"),
            )
            .await
            .expect("hold");
        assert!(placed.recalled.is_none());
        lib.app
            .checkin(
                &App::system(),
                &Barcode::parse("4004").expect("barcode"),
                &CampusCode::parse("MAIN").expect("campus"),
            )
            .await
            .expect("trap");

        let run = lib.app.run_job_now("notices").await.expect("run");
        assert_eq!(run.status, "succeeded", "{run:?}");
        assert_eq!(run.counts["made"], 4);
        assert_eq!(run.counts["sent"], 3);
        assert_eq!(run.counts["printed"], 1);
        let mut mail = smtp.messages();
        mail.sort_by_key(|m| m["to"][0].as_str().unwrap_or("").to_owned());
        let to: Vec<&str> = mail
            .iter()
            .map(|m| m["to"][0].as_str().expect("to"))
            .collect();
        assert_eq!(
            to,
            [
                "emily@example.ac.jp",
                "hanako@example.ac.jp",
                "taro@example.ac.jp"
            ]
        );
        assert!(
            mail[0]["subject"]
                .as_str()
                .expect("subject")
                .starts_with("[Library] Reminder 2: Overdue: "),
            "{}",
            mail[0]["subject"]
        );
        assert!(
            mail[0]["body"]
                .as_str()
                .expect("body")
                .contains("overdue (8 days)"),
            "{}",
            mail[0]["body"]
        );
        assert_eq!(
            mail[1]["subject"],
            "【図書館】返却期限のお知らせ（2026年11月27日）"
        );
        assert!(
            mail[1]["body"]
                .as_str()
                .expect("body")
                .starts_with("山田 花子 様")
        );
        assert!(
            mail[1]["body"]
                .as_str()
                .expect("body")
                .contains("バーコード: 4001")
        );
        assert_eq!(
            mail[2]["subject"],
            "【図書館】予約資料をご用意しました（本館）"
        );
        assert!(
            mail[2]["body"]
                .as_str()
                .expect("body")
                .contains("2026年12月2日までに本館のカウンター"),
            "{}",
            mail[2]["body"]
        );
        // Japanese headers travel encoded (RFC 2047) and decode back.
        assert!(
            mail[1]["raw_subject"]
                .as_str()
                .expect("raw")
                .starts_with("=?utf-8?"),
            "{}",
            mail[1]["raw_subject"]
        );
        // The patron without e-mail gets a printable notice.
        let printed = &run.outputs[0];
        let html = std::fs::read_to_string(printed).expect("print file");
        assert!(html.contains("郵便 のみ 様"), "{html}");

        // A second run makes and sends nothing new.
        let again = lib.app.run_job_now("notices").await.expect("run");
        assert_eq!(
            (again.counts["made"].as_u64(), again.counts.get("sent")),
            (Some(0), None)
        );
        assert_eq!(smtp.messages().len(), 3);

        // The server goes down; P1's loan is now overdue: its notice waits.
        let port = smtp.port;
        let out = smtp.out.clone();
        smtp.stop();
        lib.clock.advance(4 * DAY);
        let failed = lib.app.run_job_now("notices").await.expect("run");
        assert_eq!(failed.status, "failed");
        assert!(
            failed
                .error
                .as_deref()
                .unwrap_or("")
                .contains("stay pending"),
            "{failed:?}"
        );
        let pending = lib
            .app
            .store
            .pending_notices("email")
            .await
            .expect("pending");
        assert!(!pending.is_empty());
        // Back up on the same port: the next run delivers them, once.
        let smtp = Smtp::start(port, &out);
        let resumed = lib.app.run_job_now("notices").await.expect("run");
        assert_eq!(resumed.status, "succeeded", "{resumed:?}");
        assert!(
            lib.app
                .store
                .pending_notices("email")
                .await
                .expect("pending")
                .is_empty()
        );
        let ids: Vec<String> = smtp
            .messages()
            .iter()
            .map(|m| m["message_id"].as_str().expect("id").to_owned())
            .collect();
        let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "a notice was sent twice: {ids:?}");
        assert!(smtp.messages().iter().any(|m| {
            m["to"][0] == "hanako@example.ac.jp"
                && m["subject"]
                    .as_str()
                    .is_some_and(|s| s.contains("返却期限を過ぎた"))
        }));
    })
    .await;
}

#[tokio::test]
async fn the_scheduler_runs_each_job_at_its_times_and_retries_a_failing_one() {
    each_engine(|db| async move {
        // Wednesday 2026-11-25 23:50 in Tokyo; the PDF font is missing, so
        // the pick lists fail and are retried.
        let lib = Library::open(
            &db,
            1,
            tokyo(2026, 11, 25, 23, 50),
            Some("/nonexistent/font.ttf"),
        )
        .await;
        lib.app.recover_interrupted_runs().await.expect("recover");
        // The first round catches up each job's latest slot.
        let first = lib.app.scheduler_tick().await.expect("tick");
        assert_eq!(first.len(), 4, "{first:?}");
        let start = lib.clock.now_ms();
        let mut runs = Vec::new();
        for _ in 0..(24 * 60) {
            lib.clock.advance(Duration::from_secs(60));
            for r in lib.app.scheduler_tick().await.expect("tick") {
                runs.push((
                    r.job.clone(),
                    r.slot,
                    r.attempt,
                    r.started_at,
                    r.status.clone(),
                ));
            }
        }
        let at = |h, m| tokyo(2026, 11, 26, h, m);
        let of = |job: &str| -> Vec<(i64, i64, i64, String)> {
            runs.iter()
                .filter(|r| r.0 == job && r.1 > start)
                .map(|r| (r.1, r.2, r.3, r.4.clone()))
                .collect()
        };
        assert_eq!(
            of("hold_shelf"),
            vec![(at(0, 5), 1, at(0, 5), "succeeded".into())]
        );
        assert_eq!(
            of("reports"),
            vec![(at(0, 15), 1, at(0, 15), "succeeded".into())]
        );
        assert_eq!(
            of("notices"),
            vec![(at(7, 0), 1, at(7, 0), "succeeded".into())]
        );
        // Pick lists at 07:30 fail; retries after 5, 10 and 20 minutes; then given up.
        let picks = of("pick_lists");
        let tries: Vec<(i64, i64)> = picks.iter().map(|p| (p.1, p.2)).collect();
        assert_eq!(
            tries,
            vec![
                (1, at(7, 30)),
                (2, at(7, 35)),
                (3, at(7, 45)),
                (4, at(8, 5))
            ],
            "{picks:?}"
        );
        assert!(picks.iter().all(|p| p.3 == "failed"));
        let history = lib
            .app
            .job_history(Some("pick_lists"), 1)
            .await
            .expect("history");
        assert!(
            history[0]
                .error
                .as_deref()
                .unwrap_or("")
                .contains("fonts-ipafont-gothic"),
            "{history:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn pick_lists_and_slips_list_what_to_pull_at_each_campus_with_japanese_text() {
    each_engine(|db| async move {
        let lib = Library::open(&db, 1, tokyo(2026, 11, 25, 8, 0), None).await;
        // Title 0: copies at KOMABA and KASHIWA; title 1: one at KASHIWA; title 2: one at MAIN (lent).
        lib.item(0, "5001", "KOMABA", "STACKS", "913.6 N").await;
        lib.item(0, "5002", "KASHIWA", "OPEN", "913.6 N").await;
        lib.item(1, "5003", "KASHIWA", "OPEN", "210.1 A").await;
        lib.item(2, "5004", "MAIN", "OPEN", "007 B").await;
        let p1 = lib.patron("P1", "一", None, "ja").await;
        let p2 = lib.patron("P2", "二", None, "ja").await;
        let p3 = lib.patron("P3", "三", None, "ja").await;
        let system = App::system();
        let main = CampusCode::parse("MAIN").expect("campus");
        let kashiwa = CampusCode::parse("KASHIWA").expect("campus");
        // Two holds on title 0 (pickup MAIN, then KASHIWA): each gets a copy,
        // the KASHIWA one its own campus's copy.
        lib.app
            .place_hold(&system, p1, lib.records[0], None, &main)
            .await
            .expect("hold");
        lib.app
            .place_hold(&system, p2, lib.records[0], None, &kashiwa)
            .await
            .expect("hold");
        // A request for the KASHIWA copy of title 1 to MAIN.
        lib.app
            .place_request(&system, p3, &Barcode::parse("5003").expect("b"), &main)
            .await
            .expect("request");
        // Title 2 is on loan: no copy to pull for its hold.
        lib.lend("P1", "5004", "MAIN").await;
        lib.app
            .place_hold(
                &Caller::new(shoko_domain::Actor::System),
                p2,
                lib.records[2],
                None,
                &main,
            )
            .await
            .expect("hold");
        let rows: Vec<(String, String, String, String)> = lib
            .app
            .pick_list()
            .await
            .expect("pick list")
            .into_iter()
            .map(|r| (r.campus, r.barcode, r.kind, r.pickup_campus))
            .collect();
        assert_eq!(
            rows,
            vec![
                (
                    "KASHIWA".into(),
                    "5003".into(),
                    "request".into(),
                    "MAIN".into()
                ),
                (
                    "KASHIWA".into(),
                    "5002".into(),
                    "hold".into(),
                    "KASHIWA".into()
                ),
                ("KOMABA".into(), "5001".into(), "hold".into(), "MAIN".into()),
            ]
        );
        // Pulling the request's copy puts it in transit: a slip at KASHIWA.
        lib.app
            .checkin(&system, &Barcode::parse("5003").expect("b"), &kashiwa)
            .await
            .expect("pull");
        let run = lib.app.run_job_now("pick_lists").await.expect("run");
        assert_eq!(run.status, "succeeded", "{run:?}");
        let file = |name: &str| {
            run.outputs
                .iter()
                .find(|o| o.ends_with(name))
                .unwrap_or_else(|| panic!("{name} in {:?}", run.outputs))
                .clone()
        };
        let csv = std::fs::read_to_string(file("pick-list-KASHIWA.csv")).expect("csv");
        assert_eq!(csv.lines().count(), 2, "{csv}");
        assert!(
            csv.lines()
                .nth(1)
                .expect("row")
                .starts_with("KASHIWA,OPEN,913.6 N,5002,"),
            "{csv}"
        );
        let html = std::fs::read_to_string(file("pick-list-KOMABA.html")).expect("html");
        assert!(html.contains("5001") && html.contains("駒場"), "{html}");
        let text = |pdf: String| {
            let o = Command::new("pdftotext")
                .arg(pdf)
                .arg("-")
                .output()
                .expect("pdftotext runs (poppler-utils)");
            assert!(o.status.success());
            String::from_utf8(o.stdout).expect("utf-8")
        };
        let pick = text(file("pick-list-KOMABA.pdf"));
        assert!(
            pick.contains("出納リスト") && pick.contains("駒場") && pick.contains("5001"),
            "{pick}"
        );
        let slips = text(file("transit-slips-KASHIWA.pdf"));
        assert!(
            slips.contains("本館") && slips.contains("取り寄せ") && slips.contains("5003"),
            "{slips}"
        );
        let slip_csv = std::fs::read_to_string(file("transit-slips-KASHIWA.csv")).expect("csv");
        assert!(slip_csv.lines().nth(1).is_some_and(|l| l.contains(",5003,") && l.contains(",KASHIWA,MAIN,request,P3,三,")), "{slip_csv}");
        let slip_html = std::fs::read_to_string(file("transit-slips-KASHIWA.html")).expect("html");
        assert!(
            slip_html.contains("<svg") && slip_html.contains("三"),
            "{slip_html}"
        );
        // Run again: the same files, rewritten whole.
        let again = lib.app.run_job_now("pick_lists").await.expect("run");
        assert_eq!(again.outputs, run.outputs);
    })
    .await;
}

#[tokio::test]
async fn every_template_renders() {
    let db = TestDb::sqlite();
    let lib = Library::open(&db, 1, tokyo(2026, 11, 25, 8, 0), None).await;
    let env = lib.app.templates().expect("templates");
    let ctx = minijinja::context! {
        patron => minijinja::context!{ name => "名前", barcode => "P1" },
        item => minijinja::context!{ title => "書名", barcode => "1" },
        fine => minijinja::context!{ amount => 100 },
        due => "2026年12月1日", expires => "2026年12月1日", pickup => "本館",
        stage => 2, days_overdue => 9, owed => 100, limit => 1000, library => "図書館",
    };
    for kind in ["courtesy", "overdue", "hold_available", "recall", "fine"] {
        for lang in ["ja", "en"] {
            let r = lib
                .app
                .render_notice(&env, kind, lang, ctx.clone())
                .expect("renders");
            assert!(
                !r.subject.is_empty() && r.body.contains("名前"),
                "{kind}.{lang}"
            );
        }
    }
}

#[tokio::test]
async fn the_daily_report_counts_each_campus_and_lists_what_is_overdue() {
    each_engine(|db| async move {
        let lib = Library::open(&db, 1, tokyo(2026, 11, 24, 9, 0), None).await;
        lib.item(0, "6001", "MAIN", "OPEN", "1").await;
        lib.item(1, "6002", "MAIN", "OPEN", "2").await;
        lib.item(2, "6003", "KOMABA", "OPEN", "3").await;
        lib.patron("P1", "集計 一", None, "ja").await;
        // The day before: two checkouts at MAIN, one at KOMABA, one return at KOMABA.
        lib.clock.set(tokyo(2026, 11, 25, 10, 0));
        lib.lend("P1", "6001", "MAIN").await;
        lib.lend("P1", "6002", "MAIN").await;
        lib.lend("P1", "6003", "KOMABA").await;
        lib.app
            .checkin(&App::system(), &Barcode::parse("6002").expect("b"), &CampusCode::parse("KOMABA").expect("c"))
            .await
            .expect("return");
        // Midnight passes: the report for the 25th, at 00:15 on the 26th.
        lib.clock.set(tokyo(2026, 11, 26, 0, 15));
        let run = lib.app.run_job_now("reports").await.expect("run");
        assert_eq!(run.status, "succeeded", "{run:?}");
        let circ = run.outputs.iter().find(|o| o.ends_with("circulation-2026-11-25.csv")).expect("report");
        let text = std::fs::read_to_string(circ).expect("csv");
        assert_eq!(
            text,
            "date,campus,checkouts,checkins\n2026-11-25,KASHIWA,0,0\n2026-11-25,KOMABA,1,1\n2026-11-25,MAIN,2,0\n"
        );
        // Weeks later one loan is overdue.
        lib.clock.set(tokyo(2026, 12, 12, 0, 15));
        let run = lib.app.run_job_now("reports").await.expect("run");
        let overdue = run.outputs.iter().find(|o| o.contains("overdue-")).expect("overdue list");
        let text = std::fs::read_to_string(overdue).expect("csv");
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(rows.len(), 2, "{text}");
        assert!(rows.iter().all(|r| r.contains(",P1,集計 一")), "{text}");
    })
    .await;
}

#[tokio::test]
async fn the_capacity_job_samples_storage_and_the_backup_job_keeps_the_newest_backups() {
    each_engine(|db| async move {
        let data = tempfile::tempdir().expect("data dir");
        let clock = Arc::new(ManualClock::new(tokyo(2026, 11, 20, 2, 30)));
        let app = App::open(
            db.url(),
            &StoreOptions::default(),
            &IndexOptions::default(),
            Settings {
                operations: shoko_app::OperationsSettings {
                    data_dir: Some(data.path().to_owned()),
                    backup_keep: 2,
                    ..Default::default()
                },
                ..Default::default()
            },
            clock.clone(),
        )
        .await
        .expect("app");
        let file = fixtures().join("marc/loc/loc_books2016_jpn300.mrc");
        app.import_files(&[file], InputFormat::Auto, Arc::new(Silent))
            .await
            .expect("import");

        // Three rounds of samples, an hour apart.
        for _ in 0..3 {
            let run = app.run_job_now("capacity").await.expect("run");
            assert_eq!(run.status, "succeeded", "{run:?}");
            clock.advance(std::time::Duration::from_secs(3600));
        }
        let report = app.capacity().await.expect("report");
        assert!(
            report.latest("database").is_some_and(|b| b > 0),
            "{report:?}"
        );
        assert!(
            report.latest("table:records").is_some_and(|b| b > 0),
            "{report:?}"
        );
        assert!(
            report.latest("disk_free").is_some_and(|b| b > 0),
            "{report:?}"
        );
        assert_eq!(
            app.store
                .samples("database", 0)
                .await
                .expect("series")
                .len(),
            3
        );
        let doctor = app.doctor().await;
        assert!(
            doctor
                .iter()
                .any(|f| f.area == "capacity" && f.en.contains("database")),
            "{doctor:?}"
        );

        // A backup on three nights; the oldest is removed, the rest verify.
        for day in [20, 21, 22] {
            clock.set(tokyo(2026, 11, day, 2, 30));
            let run = app
                .run_job("backup", clock.now_ms(), 1, "schedule")
                .await
                .expect("run");
            assert_eq!(run.status, "succeeded", "{run:?}");
            assert_eq!(run.counts["records"], 300, "{run:?}");
        }
        let dir = data.path().join("backups");
        let mut kept: Vec<String> = std::fs::read_dir(&dir)
            .expect("backups")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".manifest.json"))
            .collect();
        kept.sort();
        let ext = if db.engine() == "sqlite" {
            "db"
        } else {
            "dump"
        };
        assert_eq!(
            kept,
            [
                format!("shoko-20261121-0230.{ext}"),
                format!("shoko-20261122-0230.{ext}")
            ],
            "{}",
            db.engine()
        );
        for name in &kept {
            let counts = app.verify_backup(&dir.join(name)).await.expect("verify");
            assert_eq!(counts.tables["records"], 300);
        }
        assert!(
            !dir.join(format!("shoko-20261120-0230.{ext}.manifest.json"))
                .exists()
        );
    })
    .await;
}

#[tokio::test]
async fn the_claims_job_lists_orders_not_received_in_time_per_vendor() {
    use shoko_app::acquisitions::{FundInput, OrderInput, VendorInput};
    each_engine(|db| async move {
        let out = tempfile::tempdir().expect("outputs");
        let clock = Arc::new(ManualClock::new(tokyo(2026, 9, 1, 9, 0)));
        let app = App::open(
            db.url(),
            &StoreOptions::default(),
            &IndexOptions::default(),
            Settings {
                jobs: JobsSettings {
                    output_dir: Some(out.path().to_owned()),
                    ..Default::default()
                },
                ..Default::default()
            },
            clock.clone(),
        )
        .await
        .expect("app");
        let file = fixtures().join("marc/loc/loc_books2016_jpn300.mrc");
        app.import_files(&[file], InputFormat::Auto, Arc::new(Silent))
            .await
            .expect("import");
        let me = App::system();
        let vendor = app
            .create_vendor(&me, VendorInput { code: "NAUKA".into(), name: "ナウカ".into(), contact: None, email: Some("order@nauka.example".into()), currency: None, discount_bp: None })
            .await
            .expect("vendor");
        let fund = app
            .create_fund(&me, FundInput { fiscal_year: 2026, code: "RUS".into(), name: "露文".into(), parent_id: None, allow_overspend: false })
            .await
            .expect("fund");
        app.allocate(&me, fund.id, 50_000).await.expect("budget");
        let record = app.store.record_ids_after(0, 1).await.expect("ids")[0];
        let order = |quantity| OrderInput {
            vendor_id: vendor.id, record_id: record, fund_id: fund.id, quantity, unit_price: 2_000,
            campus: "MAIN".into(), location: None, item_type: Some("BOOK".into()), note: None,
        };
        let late = app.create_order(&me, order(2)).await.expect("order");
        app.send_order(&me, late.id, None).await.expect("send");
        app.receive(&me, late.id, &["NAUKA-1".to_owned()]).await.expect("one copy");
        clock.advance(Duration::from_secs(40 * 86_400));
        let recent = app.create_order(&me, order(1)).await.expect("order");
        app.send_order(&me, recent.id, None).await.expect("send");
        clock.advance(Duration::from_secs(25 * 86_400));
        let run = app.run_job_now("claims").await.expect("run");
        assert_eq!(run.status, "succeeded", "{run:?}");
        assert_eq!(run.counts["claims"], 1, "only the line 65 days old: {run:?}");
        let csv = std::fs::read_to_string(&run.outputs[0]).expect("claims file");
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("vendor,vendor_name,vendor_email,order_line,record_id,title,ordered,received,ordered_on,days"));
        let row = lines.next().expect("a claim");
        assert!(row.starts_with(&format!("NAUKA,ナウカ,order@nauka.example,{},{record},", late.id)), "{row}");
        assert!(row.ends_with(",2,1,2026-09-01,65"), "{row}");
        assert_eq!(lines.next(), None);
    })
    .await;
}
