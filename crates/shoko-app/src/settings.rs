//! Catalogue settings: campuses, locations, item types and where items are
//! found in imported records. Defaults here; the binary loads overrides from
//! the configuration file and environment.

use serde::{Deserialize, Serialize};
use shoko_domain::circulation::{
    BlockThresholds, Calendar, LoanPeriod, LoanPolicy, LoanTerms, PolicyRule, RecallRules,
};
use shoko_domain::{CampusCode, ItemFieldMapping, ItemTypeCode, LocationCode, PatronCategoryCode};
use shoko_store::ReferenceData;

/// A campus of the library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampusSetting {
    /// Code used in item data, e.g. `HONGO`.
    pub code: CampusCode,
    /// Name in Japanese.
    pub name_ja: String,
    /// Name in English.
    pub name_en: String,
    /// Shelving locations at this campus.
    #[serde(default)]
    pub locations: Vec<NamedCode<LocationCode>>,
}

/// A code with its names in both languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedCode<C> {
    /// The code.
    pub code: C,
    /// Name in Japanese.
    pub name_ja: String,
    /// Name in English.
    pub name_en: String,
}

/// Everything the catalogue needs to know about the library's set-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogueSettings {
    /// Campuses and their locations.
    pub campuses: Vec<CampusSetting>,
    /// Item types.
    pub item_types: Vec<NamedCode<ItemTypeCode>>,
    /// Item type given to an imported item whose field names none.
    pub default_item_type: ItemTypeCode,
    /// Holdings fields that become items on import.
    pub item_fields: Vec<ItemFieldMapping>,
    /// Records per import transaction (100–50,000). Larger batches import
    /// faster and lose more work to a crash (it is redone on re-import).
    pub import_batch_size: usize,
}

fn code<C>(parse: fn(&str) -> Result<C, shoko_domain::CodeError>, v: &str) -> C {
    parse(v).expect("built-in codes are valid")
}

impl Default for CatalogueSettings {
    /// A small library with one campus until configured; the demo and the
    /// tests configure four.
    fn default() -> CatalogueSettings {
        CatalogueSettings {
            campuses: vec![CampusSetting {
                code: code(CampusCode::parse, "MAIN"),
                name_ja: "本館".into(),
                name_en: "Main Library".into(),
                locations: vec![NamedCode {
                    code: code(LocationCode::parse, "STACKS"),
                    name_ja: "書庫".into(),
                    name_en: "Stacks".into(),
                }],
            }],
            item_types: vec![
                NamedCode {
                    code: code(ItemTypeCode::parse, "BOOK"),
                    name_ja: "図書".into(),
                    name_en: "Book".into(),
                },
                NamedCode {
                    code: code(ItemTypeCode::parse, "SERIAL"),
                    name_ja: "雑誌".into(),
                    name_en: "Serial".into(),
                },
                NamedCode {
                    code: code(ItemTypeCode::parse, "AV"),
                    name_ja: "視聴覚資料".into(),
                    name_en: "Audiovisual".into(),
                },
            ],
            default_item_type: code(ItemTypeCode::parse, "BOOK"),
            item_fields: ItemFieldMapping::defaults(),
            import_batch_size: 2000,
        }
    }
}

impl CatalogueSettings {
    /// The rows the store keeps for campuses, locations and item types.
    pub fn reference_data(&self) -> ReferenceData {
        ReferenceData {
            campuses: self
                .campuses
                .iter()
                .map(|c| (c.code.to_string(), c.name_ja.clone(), c.name_en.clone()))
                .collect(),
            locations: self
                .campuses
                .iter()
                .flat_map(|c| {
                    c.locations.iter().map(move |l| {
                        (
                            c.code.to_string(),
                            l.code.to_string(),
                            l.name_ja.clone(),
                            l.name_en.clone(),
                        )
                    })
                })
                .collect(),
            item_types: self
                .item_types
                .iter()
                .map(|t| (t.code.to_string(), t.name_ja.clone(), t.name_en.clone()))
                .collect(),
        }
    }

    /// Checks that an item refers only to configured codes.
    pub fn check_item(&self, item: &shoko_domain::ItemSpec) -> Result<(), String> {
        let campus = self
            .campuses
            .iter()
            .find(|c| c.code == item.campus)
            .ok_or_else(|| format!("item {}: unknown campus {}", item.barcode, item.campus))?;
        if let Some(loc) = &item.location
            && !campus.locations.iter().any(|l| &l.code == loc)
        {
            return Err(format!(
                "item {}: unknown location {} at campus {}",
                item.barcode, loc, item.campus
            ));
        }
        if !self.item_types.iter().any(|t| t.code == item.item_type) {
            return Err(format!(
                "item {}: unknown item type {}",
                item.barcode, item.item_type
            ));
        }
        Ok(())
    }
}

/// Everything circulation needs to know: patron categories, the loan policy,
/// campus calendars, holds, recalls, blocks and the library's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CirculationSettings {
    /// The library's time zone: due dates end at its midnight.
    pub time_zone: chrono_tz::Tz,
    /// Patron categories.
    pub patron_categories: Vec<NamedCode<PatronCategoryCode>>,
    /// The loan policy matrix.
    pub policy: LoanPolicy,
    /// Closed days per campus (a campus without a calendar is always open).
    pub calendars: std::collections::BTreeMap<CampusCode, Calendar>,
    /// Month the fiscal year starts (4 = April).
    pub fiscal_year_start_month: u32,
    /// Days an item waits on the hold shelf for its patron.
    pub hold_shelf_days: u32,
    /// Recalls.
    pub recall: RecallRules,
    /// Automatic blocks.
    pub blocks: BlockThresholds,
    /// Hours a login lasts.
    pub session_hours: u32,
}

fn category(code_: &str, ja: &str, en: &str) -> NamedCode<PatronCategoryCode> {
    NamedCode {
        code: code(PatronCategoryCode::parse, code_),
        name_ja: ja.into(),
        name_en: en.into(),
    }
}

impl Default for CirculationSettings {
    /// A university library's usual terms: two weeks for students, longer for
    /// graduates and faculty, a week for audiovisual items.
    fn default() -> CirculationSettings {
        let terms = |days, max_loans, fine_per_day| LoanTerms {
            period: LoanPeriod::Days(days),
            max_loans,
            renewals: 2,
            holdable: true,
            fine_per_day,
            max_fine: 2000,
        };
        let rule = |category: Option<&str>, item_type: Option<&str>, t| PolicyRule {
            patron_category: category.map(|c| code(PatronCategoryCode::parse, c)),
            item_type: item_type.map(|c| code(ItemTypeCode::parse, c)),
            campus: None,
            terms: t,
        };
        CirculationSettings {
            time_zone: chrono_tz::Asia::Tokyo,
            patron_categories: vec![
                category("UNDERGRAD", "学部学生", "Undergraduate"),
                category("GRAD", "大学院生", "Graduate student"),
                category("FACULTY", "教員", "Faculty"),
                category("STAFF", "職員", "Staff"),
                category("EXTERNAL", "学外利用者", "External user"),
            ],
            policy: LoanPolicy {
                default: terms(14, 10, 10),
                rules: vec![
                    rule(Some("GRAD"), None, terms(30, 30, 10)),
                    rule(Some("FACULTY"), None, terms(90, 100, 0)),
                    rule(Some("EXTERNAL"), None, terms(14, 5, 20)),
                    rule(None, Some("AV"), terms(7, 5, 50)),
                    rule(None, Some("SERIAL"), terms(7, 5, 50)),
                ],
            },
            calendars: std::collections::BTreeMap::new(),
            fiscal_year_start_month: 4,
            hold_shelf_days: 7,
            recall: RecallRules::default(),
            blocks: BlockThresholds::default(),
            session_hours: 12,
        }
    }
}

impl CirculationSettings {
    /// The calendar of a campus (always open when none is configured).
    pub fn calendar(&self, campus: &CampusCode) -> &Calendar {
        static OPEN: std::sync::OnceLock<Calendar> = std::sync::OnceLock::new();
        self.calendars
            .get(campus)
            .unwrap_or_else(|| OPEN.get_or_init(Calendar::default))
    }

    /// Whether a patron category is configured.
    pub fn has_category(&self, c: &PatronCategoryCode) -> bool {
        self.patron_categories.iter().any(|k| &k.code == c)
    }
}

/// When a job runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSchedule {
    /// Whether the scheduler runs it (`shoko jobs run` runs it either way).
    pub enabled: bool,
    /// A cron expression (minute hour day-of-month month day-of-week) in the
    /// library's time zone.
    pub cron: String,
}

fn schedule(cron: &str) -> JobSchedule {
    JobSchedule {
        enabled: true,
        cron: cron.into(),
    }
}

/// The batch jobs: schedules, retries, notices, and where output goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsSettings {
    /// E-mail notices (courtesy, overdue, hold available, recall, fine).
    pub notices: JobSchedule,
    /// Pick lists and transit slips per campus.
    pub pick_lists: JobSchedule,
    /// Holds left on the hold shelf past their date expire.
    pub hold_shelf: JobSchedule,
    /// Yesterday's circulation counts and the overdue list.
    pub reports: JobSchedule,
    /// Storage samples for the capacity forecast (database, tables, index,
    /// free disk), with the forecast and spike alerts.
    pub capacity: JobSchedule,
    /// An online backup into `operations.backup_dir`, verified, keeping the
    /// newest `operations.backup_keep`.
    pub backup: JobSchedule,
    /// The list of late orders to claim from the vendors.
    pub claims: JobSchedule,
    /// Days after an order line was made that it is late if not wholly received.
    pub claim_after_days: u32,
    /// Tries of one scheduled run before it is given up (and alerted).
    pub max_attempts: u32,
    /// Wait before the first retry; each further retry waits twice as long.
    pub retry_after_minutes: u32,
    /// Days before the due date the courtesy notice goes out.
    pub courtesy_days: u32,
    /// Days overdue at which the first, second and third overdue notices go out.
    pub overdue_days: Vec<u32>,
    /// Where jobs write their files; `None` for `DATA_DIR/outputs`.
    pub output_dir: Option<std::path::PathBuf>,
    /// A TrueType/OpenType font with Japanese glyphs for PDFs (Debian package
    /// `fonts-ipafont-gothic`).
    pub font: std::path::PathBuf,
    /// A folder of templates that replace the built-in ones by name
    /// (`courtesy.ja.txt`, `pick_list.html`, …).
    pub templates_dir: Option<std::path::PathBuf>,
}

impl Default for JobsSettings {
    fn default() -> JobsSettings {
        JobsSettings {
            notices: schedule("0 7 * * *"),
            pick_lists: schedule("30 7 * * 1-6"),
            hold_shelf: schedule("5 0 * * *"),
            reports: schedule("15 0 * * *"),
            capacity: schedule("0 * * * *"),
            backup: schedule("30 2 * * *"),
            claims: schedule("0 6 * * 1"),
            claim_after_days: 60,
            max_attempts: 4,
            retry_after_minutes: 5,
            courtesy_days: 3,
            overdue_days: vec![1, 8, 15],
            output_dir: None,
            font: "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf".into(),
            templates_dir: None,
        }
    }
}

/// The SMTP server notices go through.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailSettings {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// `none` (a local relay), `starttls` or `tls`.
    pub security: String,
    /// Login name, if the server wants one.
    pub username: Option<String>,
    /// Password; a secret, never logged.
    pub password: Option<String>,
    /// The sender, e.g. `図書館 <library@example.ac.jp>`.
    pub from: String,
    /// Seconds to wait for the server before a delivery counts as failed.
    pub timeout_seconds: u64,
}

impl std::fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("from", &self.from)
            .finish()
    }
}

impl Default for MailSettings {
    fn default() -> MailSettings {
        MailSettings {
            host: "localhost".into(),
            port: 25,
            security: "none".into(),
            username: None,
            password: None,
            from: "Library <library@localhost>".into(),
            timeout_seconds: 30,
        }
    }
}

/// What the readiness check holds Shoko to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OperationsSettings {
    /// The data dir whose filesystem is watched (set by the binary).
    #[serde(skip)]
    pub data_dir: Option<std::path::PathBuf>,
    /// Below this much free space on the data dir's filesystem Shoko is not
    /// ready (and an operator should act before writes start failing).
    pub min_free_disk_mb: u64,
    /// An index further behind than this is not ready.
    pub max_index_lag_seconds: u64,
    /// Days of storage samples the growth rate is measured over (7–90).
    pub forecast_window_days: u32,
    /// Alert when the forecast says fewer days than this until full.
    pub alert_days_left: u32,
    /// Alert when a day's growth of the database or index is more than this
    /// many times a normal day's (the median of the window).
    pub spike_factor: u32,
    /// …and more than this many MiB (a quiet database is not an alert).
    pub spike_min_mb: u64,
    /// PostgreSQL: the space the database may use (a quota, or its
    /// tablespace's disk), to forecast against; none on SQLite, whose
    /// limit is the data dir's free space.
    pub database_quota_mb: Option<u64>,
    /// Days of storage samples kept.
    pub samples_keep_days: u32,
    /// Where the daily backup job writes; `None` for `DATA_DIR/backups`.
    pub backup_dir: Option<std::path::PathBuf>,
    /// Backups the daily job keeps (the newest; older ones are removed).
    pub backup_keep: u32,
}

impl Default for OperationsSettings {
    fn default() -> OperationsSettings {
        OperationsSettings {
            data_dir: None,
            min_free_disk_mb: 1024,
            max_index_lag_seconds: 60,
            forecast_window_days: 28,
            alert_days_left: 30,
            spike_factor: 5,
            spike_min_mb: 256,
            database_quota_mb: None,
            samples_keep_days: 400,
            backup_dir: None,
            backup_keep: 7,
        }
    }
}

/// Every setting the application takes from the configuration.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Campuses, locations, item types, import.
    pub catalogue: CatalogueSettings,
    /// Circulation.
    pub circulation: CirculationSettings,
    /// Batch jobs.
    pub jobs: JobsSettings,
    /// The SMTP server.
    pub mail: MailSettings,
    /// Readiness thresholds.
    pub operations: OperationsSettings,
}
