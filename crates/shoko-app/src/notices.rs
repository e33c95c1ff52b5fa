//! Notices to patrons: courtesy (due soon), overdue (first, second, third),
//! hold available, recall and fine. The notice job makes each notice once —
//! its subject key names the loan, hold or fine and the state it is about (a
//! renewed loan's new due date is a new subject) — rendered from a template
//! in the patron's language, then delivers every pending one: by e-mail over
//! SMTP, or into a printable file for patrons without an address. A failed
//! delivery stays pending and is tried again on the next run; a delivered
//! one is never sent again. A notice is marked `sending` (committed) before
//! it is handed to the server and `sent` when the server accepts it; if the
//! process dies in between, the server may or may not have it, so it is
//! marked `uncertain` and never sent again automatically (a duplicate notice
//! is worse than one staff resend by hand). Each message has a fixed
//! `Message-ID`, so a resend is recognisable.

use std::collections::HashMap;

use chrono::DateTime;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use minijinja::{Environment, context};
use shoko_store::{LoanRow, NewNotice, NoticeRow, PatronRow};

type Ctx = serde_json::Map<String, serde_json::Value>;

use crate::App;
use crate::jobs::{JobError, JobOutcome};

const DAY_MS: i64 = 86_400_000;

/// The built-in notice templates: `{kind}.{language}.txt`, whose first line
/// is `Subject: …`.
const NOTICE_TEMPLATES: [(&str, &str); 10] = [
    (
        "courtesy.ja.txt",
        include_str!("../templates/courtesy.ja.txt"),
    ),
    (
        "courtesy.en.txt",
        include_str!("../templates/courtesy.en.txt"),
    ),
    (
        "overdue.ja.txt",
        include_str!("../templates/overdue.ja.txt"),
    ),
    (
        "overdue.en.txt",
        include_str!("../templates/overdue.en.txt"),
    ),
    (
        "hold_available.ja.txt",
        include_str!("../templates/hold_available.ja.txt"),
    ),
    (
        "hold_available.en.txt",
        include_str!("../templates/hold_available.en.txt"),
    ),
    ("recall.ja.txt", include_str!("../templates/recall.ja.txt")),
    ("recall.en.txt", include_str!("../templates/recall.en.txt")),
    ("fine.ja.txt", include_str!("../templates/fine.ja.txt")),
    ("fine.en.txt", include_str!("../templates/fine.en.txt")),
];

/// The built-in print templates.
pub(crate) const PRINT_TEMPLATES: [(&str, &str); 3] = [
    (
        "pick_list.html",
        include_str!("../templates/pick_list.html"),
    ),
    (
        "transit_slips.html",
        include_str!("../templates/transit_slips.html"),
    ),
    (
        "print_notices.html",
        include_str!("../templates/print_notices.html"),
    ),
];

/// A subject and body rendered from a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Subject line.
    pub subject: String,
    /// Body.
    pub body: String,
}

impl App {
    /// The template environment: built-in templates, each replaced by a
    /// file of the same name in `jobs.templates_dir` if there is one.
    pub fn templates(&self) -> Result<Environment<'static>, JobError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in NOTICE_TEMPLATES.iter().chain(PRINT_TEMPLATES.iter()) {
            let text = match &self.jobs.templates_dir {
                Some(dir) if dir.join(name).is_file() => std::fs::read_to_string(dir.join(name))
                    .map_err(|e| {
                        JobError::Failed(format!(
                            "cannot read template {}: {e}",
                            dir.join(name).display()
                        ))
                    })?,
                _ => (*source).to_owned(),
            };
            env.add_template_owned(*name, text)
                .map_err(|e| JobError::Failed(format!("template {name}: {e}")))?;
        }
        Ok(env)
    }

    /// Renders one notice template.
    pub fn render_notice(
        &self,
        env: &Environment<'_>,
        kind: &str,
        language: &str,
        ctx: minijinja::Value,
    ) -> Result<Rendered, JobError> {
        let name = format!("{kind}.{language}.txt");
        let text = env
            .get_template(&name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| JobError::Failed(format!("template {name}: {e}")))?;
        let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
        let subject = first
            .strip_prefix("Subject:")
            .ok_or_else(|| {
                JobError::Failed(format!(
                    "template {name}: the first line must be `Subject: …`"
                ))
            })?
            .trim()
            .to_owned();
        Ok(Rendered {
            subject,
            body: rest.trim_start_matches('\n').to_owned(),
        })
    }

    fn date_text(&self, at: i64, language: &str) -> String {
        let d = DateTime::from_timestamp_millis(at)
            .unwrap_or_default()
            .with_timezone(&self.circulation.time_zone);
        if language == "ja" {
            d.format("%Y年%-m月%-d日").to_string()
        } else {
            d.format("%Y-%m-%d").to_string()
        }
    }

    fn campus_name(&self, code: &str, language: &str) -> String {
        self.settings
            .campuses
            .iter()
            .find(|c| c.code.as_str() == code)
            .map_or_else(
                || code.to_owned(),
                |c| {
                    if language == "ja" {
                        c.name_ja.clone()
                    } else {
                        c.name_en.clone()
                    }
                },
            )
    }

    fn library_name(&self, language: &str) -> &'static str {
        if language == "ja" {
            "図書館"
        } else {
            "The Library"
        }
    }

    /// Makes the notices that are due now and delivers every pending one.
    pub(crate) async fn notices_job(&self, run: i64) -> Result<JobOutcome, JobError> {
        let mut outcome = JobOutcome::default();
        let made = self.make_notices(run).await?;
        outcome.count("made", made);
        self.deliver_notices(&mut outcome).await?;
        Ok(outcome)
    }

    async fn item_ctx(
        &self,
        item_id: Option<i64>,
        record_id: i64,
    ) -> Result<serde_json::Value, JobError> {
        let title = self
            .store
            .record_summaries(&[record_id])
            .await?
            .pop()
            .map(|r| r.title)
            .unwrap_or_default();
        let barcode = match item_id {
            Some(id) => self
                .store
                .item(id)
                .await?
                .map(|i| i.barcode)
                .unwrap_or_default(),
            None => String::new(),
        };
        Ok(serde_json::json!({"title": title, "barcode": barcode}))
    }

    async fn loan_ctx(&self, l: &LoanRow) -> Result<Ctx, JobError> {
        let mut m = Ctx::new();
        m.insert(
            "item".into(),
            self.item_ctx(Some(l.item_id), l.record_id).await?,
        );
        m.insert("due_ms".into(), l.due_at.into());
        Ok(m)
    }

    async fn make_notices(&self, run: i64) -> Result<u64, JobError> {
        let env = self.templates()?;
        let now = self.clock.now_ms();
        let mut wanted: Vec<(i64, String, String, Ctx)> = Vec::new();
        // Courtesy: due within the next `courtesy_days` days.
        let soon = self
            .store
            .open_loans_due_between(now, now + i64::from(self.jobs.courtesy_days) * DAY_MS)
            .await?;
        for l in &soon {
            let key = format!("courtesy:loan:{}:due:{}", l.id, l.due_at);
            wanted.push((
                patron_of(l),
                "courtesy".into(),
                key,
                self.loan_ctx(l).await?,
            ));
        }
        // Overdue: the latest stage each overdue loan has reached.
        for l in &self.store.open_loans_due_between(0, now).await? {
            let days = (now - l.due_at) / DAY_MS;
            let stage = self
                .jobs
                .overdue_days
                .iter()
                .filter(|d| days >= i64::from(**d))
                .count();
            if stage == 0 {
                continue;
            }
            let key = format!("overdue{stage}:loan:{}:due:{}", l.id, l.due_at);
            let mut ctx = self.loan_ctx(l).await?;
            ctx.insert("stage".into(), (stage as u64).into());
            ctx.insert("days_overdue".into(), days.into());
            wanted.push((patron_of(l), format!("overdue{stage}"), key, ctx));
        }
        // Recalls.
        for l in self.store.open_recalled_loans().await? {
            let key = format!("recall:loan:{}:at:{}", l.id, l.recalled_at.unwrap_or(0));
            wanted.push((
                patron_of(&l),
                "recall".into(),
                key,
                self.loan_ctx(&l).await?,
            ));
        }
        // Holds on the shelf.
        for h in self.store.holds_on_shelf().await? {
            let key = format!(
                "hold_available:hold:{}:until:{}",
                h.id,
                h.shelf_expires_at.unwrap_or(0)
            );
            let mut ctx = Ctx::new();
            ctx.insert("item".into(), self.item_ctx(h.item_id, h.record_id).await?);
            ctx.insert("expires_ms".into(), h.shelf_expires_at.unwrap_or(0).into());
            ctx.insert("pickup_code".into(), h.pickup_campus.clone().into());
            wanted.push((h.patron_id, "hold_available".into(), key, ctx));
        }
        // Fines still owed.
        for f in self.store.unpaid_fines().await? {
            let key = format!("fine:{}", f.id);
            let mut ctx = Ctx::new();
            ctx.insert("fine".into(), serde_json::json!({"amount": f.amount}));
            let item = match f.item_id {
                Some(i) => match self.store.item(i).await? {
                    Some(item) => self.item_ctx(Some(i), item.record_id).await?,
                    None => serde_json::Value::Null,
                },
                None => serde_json::Value::Null,
            };
            ctx.insert("item".into(), item);
            ctx.insert("limit".into(), self.circulation.blocks.fines_over.into());
            wanted.push((f.patron_id, "fine".into(), key, ctx));
        }
        let mut patrons: HashMap<i64, Option<PatronRow>> = HashMap::new();
        let mut made = 0;
        for (patron_id, kind, key, mut ctx) in wanted {
            let patron = match patrons.get(&patron_id) {
                Some(p) => p.clone(),
                None => {
                    let p = self.store.patron(patron_id).await?;
                    patrons.insert(patron_id, p.clone());
                    p
                }
            };
            let Some(patron) = patron else { continue };
            let language = if patron.language == "en" { "en" } else { "ja" };
            ctx.insert(
                "patron".into(),
                serde_json::json!({"name": patron.name, "barcode": patron.barcode}),
            );
            ctx.insert("owed".into(), patron.fines_owed.into());
            ctx.insert("library".into(), self.library_name(language).into());
            self.localise_dates(&mut ctx, language);
            let template = if kind.starts_with("overdue") {
                "overdue"
            } else {
                kind.as_str()
            };
            let rendered = self.render_notice(
                &env,
                template,
                language,
                minijinja::Value::from(minijinja::value::Serde(&ctx)),
            )?;
            let notice = NewNotice {
                kind,
                subject_key: key,
                patron_id,
                channel: if patron.email.is_some() {
                    "email"
                } else {
                    "print"
                }
                .into(),
                to_address: patron.email.clone(),
                language: language.into(),
                subject: rendered.subject,
                body: rendered.body,
            };
            if self.store.insert_notice(&notice, run, now).await? {
                made += 1;
            }
        }
        Ok(made)
    }

    fn localise_dates(&self, ctx: &mut Ctx, language: &str) {
        if let Some(due) = ctx.get("due_ms").and_then(serde_json::Value::as_i64) {
            ctx.insert("due".into(), self.date_text(due, language).into());
        }
        if let Some(exp) = ctx.get("expires_ms").and_then(serde_json::Value::as_i64) {
            ctx.insert("expires".into(), self.date_text(exp, language).into());
        }
        if let Some(code) = ctx
            .get("pickup_code")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
        {
            ctx.insert("pickup".into(), self.campus_name(&code, language).into());
        }
    }

    async fn deliver_notices(&self, outcome: &mut JobOutcome) -> Result<(), JobError> {
        let pending = self.store.pending_notices("email").await?;
        if !pending.is_empty() {
            let mailer = self.mailer()?;
            let mut failures = 0u64;
            let mut last_error = String::new();
            for n in pending {
                self.store.notice_sending(n.id).await?;
                match self.send(&mailer, &n).await {
                    Ok(()) => {
                        self.store
                            .notice_delivered(n.id, "sent", self.clock.now_ms())
                            .await?;
                        outcome.count("sent", 1);
                    }
                    Err(e) => {
                        self.store.notice_failed(n.id, &e).await?;
                        failures += 1;
                        last_error = e;
                    }
                }
            }
            if failures > 0 {
                outcome.count("failed", failures);
                outcome.partial_failure = Some(format!(
                    "{failures} notices could not be sent and stay pending: {last_error}"
                ));
            }
        }
        let to_print = self.store.pending_notices("print").await?;
        if !to_print.is_empty() {
            let date = self.slot_date(self.clock.now_ms());
            let dir = self.output_dir(date)?;
            let env = self.templates()?;
            let html = env
                .get_template("print_notices.html")
                .and_then(|t| {
                    t.render(context! { date => date.to_string(), notices => to_print.iter().map(|n| context!{ subject => n.subject.clone(), body => n.body.clone() }).collect::<Vec<_>>() })
                })
                .map_err(|e| JobError::Failed(format!("template print_notices.html: {e}")))?;
            let file = dir.join(format!("notices-to-print-{}.html", self.clock.now_ms()));
            crate::printing::write_whole(&file, html.as_bytes())?;
            for n in &to_print {
                self.store
                    .notice_delivered(n.id, "printed", self.clock.now_ms())
                    .await?;
            }
            outcome.count("printed", to_print.len() as u64);
            outcome.outputs.push(file.display().to_string());
        }
        Ok(())
    }

    fn mailer(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, JobError> {
        let m = &self.mail;
        let builder = match m.security.as_str() {
            "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&m.host),
            "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&m.host)
                .map_err(|e| JobError::Failed(format!("mail.host {}: {e}", m.host)))?,
            "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&m.host)
                .map_err(|e| JobError::Failed(format!("mail.host {}: {e}", m.host)))?,
            other => {
                return Err(JobError::Failed(format!(
                    "mail.security {other:?} is not none, starttls or tls"
                )));
            }
        };
        let mut builder = builder
            .port(m.port)
            .timeout(Some(std::time::Duration::from_secs(
                m.timeout_seconds.max(1),
            )));
        if let (Some(u), Some(p)) = (&m.username, &m.password) {
            builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
        }
        Ok(builder.build())
    }

    async fn send(
        &self,
        mailer: &AsyncSmtpTransport<Tokio1Executor>,
        n: &NoticeRow,
    ) -> Result<(), String> {
        let to = n
            .to_address
            .as_deref()
            .ok_or("no e-mail address")?
            .parse()
            .map_err(|e| format!("address {:?}: {e}", n.to_address))?;
        let from = self
            .mail
            .from
            .parse()
            .map_err(|e| format!("mail.from {:?}: {e}", self.mail.from))?;
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(n.subject.clone())
            .message_id(Some(format!("<notice-{}-{}@shoko>", n.id, n.created_at)))
            .header(ContentType::TEXT_PLAIN)
            .body(n.body.clone())
            .map_err(|e| format!("notice {}: {e}", n.id))?;
        mailer
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP {}:{}: {e}", self.mail.host, self.mail.port))
    }
}

fn patron_of(l: &LoanRow) -> i64 {
    l.patron_id.unwrap_or(0)
}
