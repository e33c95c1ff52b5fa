//! What staff print each morning: per campus, the pick list (items to pull
//! from the shelves for holds and for delivery requests, by location and call
//! number) and the transit slips (from, to, why, and the barcode as a Code 128
//! symbol a scanner reads); and the reports (circulation per campus and day,
//! the overdue list). Each as CSV, an HTML print view and a PDF set in a
//! Japanese font. Files are written whole and renamed into place, so a re-run
//! replaces them and a crash never leaves half a file.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use chrono::DateTime;
use minijinja::context;
use serde::Serialize;
use shoko_store::PickCandidate;

use crate::App;
use crate::jobs::{JobError, JobOutcome};

/// One row of a pick list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PickRow {
    /// Campus whose shelves hold the item.
    pub campus: String,
    /// Location there.
    pub location: Option<String>,
    /// Call number.
    pub call_number: Option<String>,
    /// Item barcode.
    pub barcode: String,
    /// Title.
    pub title: String,
    /// `hold` or `request`.
    pub kind: String,
    /// Where it goes.
    pub pickup_campus: String,
    /// For whom.
    pub patron_barcode: String,
    /// The hold.
    pub hold_id: i64,
}

/// Writes a file whole: to a temporary name beside it, then renamed.
pub(crate) fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), JobError> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| JobError::Failed(format!("cannot write {}: {e}", path.display())))
}

/// The pick list: each waiting hold gets one copy on the shelf — at its
/// pickup campus if there is one there, else the first other — and no copy
/// serves two holds. Sorted by campus, location, call number.
pub fn pick_rows(candidates: &[PickCandidate]) -> Vec<PickRow> {
    let mut used_items = HashSet::new();
    let mut served_holds = HashSet::new();
    let mut rows = Vec::new();
    for c in candidates {
        if served_holds.contains(&c.hold_id) || used_items.contains(&c.item_id) {
            continue;
        }
        served_holds.insert(c.hold_id);
        used_items.insert(c.item_id);
        rows.push(PickRow {
            campus: c.campus.clone(),
            location: c.location.clone(),
            call_number: c.call_number.clone(),
            barcode: c.barcode.clone(),
            title: c.title.clone(),
            kind: c.kind.clone(),
            pickup_campus: c.pickup_campus.clone(),
            patron_barcode: c.patron_barcode.clone(),
            hold_id: c.hold_id,
        });
    }
    rows.sort_by(|a, b| {
        (&a.campus, &a.location, &a.call_number, &a.barcode).cmp(&(
            &b.campus,
            &b.location,
            &b.call_number,
            &b.barcode,
        ))
    });
    rows
}

/// Code 128 (set B) modules of a barcode: `true` is a bar.
pub fn code128(text: &str) -> Result<Vec<bool>, JobError> {
    let encoded = barcoders::sym::code128::Code128::new(format!("\u{0181}{text}"))
        .map_err(|e| JobError::Failed(format!("barcode {text:?}: {e}")))?
        .encode();
    Ok(encoded.into_iter().map(|m| m == 1).collect())
}

/// A barcode as inline SVG.
fn barcode_svg(text: &str) -> Result<String, JobError> {
    let modules = code128(text)?;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} 40\" width=\"{}\" height=\"48\" role=\"img\" aria-label=\"{text}\">",
        modules.len() + 20,
        (modules.len() + 20) * 2
    );
    for (i, bar) in modules.iter().enumerate() {
        if *bar {
            svg.push_str(&format!(
                "<rect x=\"{}\" y=\"0\" width=\"1\" height=\"40\"/>",
                i + 10
            ));
        }
    }
    svg.push_str("</svg>");
    Ok(svg)
}

pub(crate) fn csv_bytes<T: Serialize>(
    rows: &[T],
    header_only: &[&str],
) -> Result<Vec<u8>, JobError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    if rows.is_empty() {
        w.write_record(header_only)
            .map_err(|e| JobError::Failed(e.to_string()))?;
    }
    for r in rows {
        w.serialize(r)
            .map_err(|e| JobError::Failed(e.to_string()))?;
    }
    w.into_inner().map_err(|e| JobError::Failed(e.to_string()))
}

impl App {
    fn campus_label(&self, code: &str) -> String {
        self.settings
            .campuses
            .iter()
            .find(|c| c.code.as_str() == code)
            .map_or_else(
                || code.to_owned(),
                |c| format!("{} {}", c.name_ja, c.name_en),
            )
    }

    /// The pick list of every campus now.
    pub async fn pick_list(&self) -> Result<Vec<PickRow>, JobError> {
        Ok(pick_rows(&self.store.pick_candidates().await?))
    }

    /// Writes each campus's pick list (CSV, HTML, PDF) and transit slips
    /// (HTML, PDF) for the slot's date.
    pub(crate) async fn pick_lists_job(&self, slot: i64) -> Result<JobOutcome, JobError> {
        let date = self.slot_date(slot);
        let dir = self.output_dir(date)?;
        let rows = self.pick_list().await?;
        let slips = self.store.transit_slips().await?;
        let env = self.templates()?;
        let mut outcome = JobOutcome::default();
        for campus in self.settings.campuses.iter().map(|c| c.code.to_string()) {
            let mine: Vec<&PickRow> = rows.iter().filter(|r| r.campus == campus).collect();
            let base = dir.join(format!("pick-list-{campus}"));
            write_whole(
                &base.with_extension("csv"),
                &csv_bytes(
                    &mine,
                    &[
                        "campus",
                        "location",
                        "call_number",
                        "barcode",
                        "title",
                        "kind",
                        "pickup_campus",
                        "patron_barcode",
                        "hold_id",
                    ],
                )?,
            )?;
            let html = env
                .get_template("pick_list.html")
                .and_then(|t| {
                    t.render(context! {
                        campus => campus.clone(), campus_name => self.campus_label(&campus),
                        date => date.to_string(), rows => minijinja::Value::from(minijinja::value::Serde(&mine)),
                    })
                })
                .map_err(|e| JobError::Failed(format!("template pick_list.html: {e}")))?;
            write_whole(&base.with_extension("html"), html.as_bytes())?;
            let mut lines = vec![
                format!(
                    "取り置き・取り寄せ出納リスト / Pick list — {} {date}",
                    self.campus_label(&campus)
                ),
                String::new(),
            ];
            for r in &mine {
                lines.push(format!(
                    "{}  {}  {}  {}  [{} → {}]  {}",
                    r.location.as_deref().unwrap_or("-"),
                    r.call_number.as_deref().unwrap_or("-"),
                    r.barcode,
                    r.title,
                    if r.kind == "request" {
                        "取り寄せ"
                    } else {
                        "予約"
                    },
                    r.pickup_campus,
                    r.patron_barcode
                ));
            }
            write_whole(&base.with_extension("pdf"), &self.pdf(&lines, &[])?)?;
            for ext in ["csv", "html", "pdf"] {
                outcome
                    .outputs
                    .push(base.with_extension(ext).display().to_string());
            }
            outcome.count("pick_rows", mine.len() as u64);

            let from_here: Vec<_> = slips.iter().filter(|s| s.from_campus == campus).collect();
            if from_here.is_empty() {
                continue;
            }
            let mut views = Vec::new();
            let mut pdf_slips = Vec::new();
            for s in &from_here {
                let reason = match s.reason.as_str() {
                    "hold" => "予約 hold",
                    "request" => "取り寄せ request",
                    _ => "返送 return home",
                };
                views.push(context! {
                    to_campus => s.to_campus.clone(), to_name => self.campus_label(&s.to_campus),
                    from_campus => s.from_campus.clone(), from_name => self.campus_label(&s.from_campus),
                    reason_label => reason, patron_barcode => s.patron_barcode.clone(),
                    patron_name => s.patron_name.clone(), title => s.title.clone(),
                    call_number => s.call_number.clone(), barcode => s.barcode.clone(),
                    barcode_svg => barcode_svg(&s.barcode)?,
                });
                pdf_slips.push((
                    vec![
                        format!("→ {}", self.campus_label(&s.to_campus)),
                        format!(
                            "発送元 From: {} · {reason}",
                            self.campus_label(&s.from_campus)
                        ),
                        format!(
                            "{}{}",
                            s.title,
                            s.patron_name
                                .as_ref()
                                .map(|n| format!(" · {n}"))
                                .unwrap_or_default()
                        ),
                    ],
                    s.barcode.clone(),
                ));
            }
            let html = env
                .get_template("transit_slips.html")
                .and_then(|t| {
                    t.render(context! {
                        campus_name => self.campus_label(&campus), date => date.to_string(), slips => views,
                    })
                })
                .map_err(|e| JobError::Failed(format!("template transit_slips.html: {e}")))?;
            let slip_base = dir.join(format!("transit-slips-{campus}"));
            write_whole(
                &slip_base.with_extension("csv"),
                &csv_bytes(
                    &from_here,
                    &[
                        "transit_id",
                        "barcode",
                        "call_number",
                        "title",
                        "from_campus",
                        "to_campus",
                        "reason",
                        "patron_barcode",
                        "patron_name",
                        "sent_at",
                    ],
                )?,
            )?;
            outcome
                .outputs
                .push(slip_base.with_extension("csv").display().to_string());
            write_whole(&slip_base.with_extension("html"), html.as_bytes())?;
            write_whole(
                &slip_base.with_extension("pdf"),
                &self.pdf(&[], &pdf_slips)?,
            )?;
            outcome
                .outputs
                .push(slip_base.with_extension("html").display().to_string());
            outcome
                .outputs
                .push(slip_base.with_extension("pdf").display().to_string());
            outcome.count("slips", from_here.len() as u64);
        }
        Ok(outcome)
    }

    /// A PDF on A4: lines of text, then slips (text lines and a barcode
    /// each), in the configured Japanese font.
    pub fn pdf(
        &self,
        lines: &[String],
        slips: &[(Vec<String>, String)],
    ) -> Result<Vec<u8>, JobError> {
        use krilla::Document;
        use krilla::geom::{PathBuilder, Point, Rect};
        use krilla::page::PageSettings;
        use krilla::text::{Font, TextDirection};

        let data = std::fs::read(&self.jobs.font).map_err(|e| {
            JobError::Failed(format!(
                "jobs.font {}: {e} (install the Debian package fonts-ipafont-gothic, or set jobs.font to a font with Japanese glyphs)",
                self.jobs.font.display()
            ))
        })?;
        let font = Font::new(data.into(), 0).ok_or_else(|| {
            JobError::Failed(format!(
                "jobs.font {} is not a font",
                self.jobs.font.display()
            ))
        })?;
        let (width, height, margin, size, leading) =
            (595.0f32, 842.0f32, 40.0f32, 10.0f32, 15.0f32);
        let mut document = Document::new();
        let page_settings =
            || PageSettings::from_wh(width, height).expect("A4 is a valid page size");
        let mut page = document.start_page_with(page_settings());
        let mut surface = page.surface();
        let mut y = margin;
        for line in lines {
            if y > height - margin {
                surface.finish();
                page.finish();
                page = document.start_page_with(page_settings());
                surface = page.surface();
                y = margin;
            }
            surface.draw_text(
                Point::from_xy(margin, y + size),
                font.clone(),
                size,
                line,
                false,
                TextDirection::Auto,
            );
            y += leading;
        }
        for (text, barcode) in slips {
            let slip_height = leading * (text.len() as f32 + 1.0) + 60.0;
            if y + slip_height > height - margin {
                surface.finish();
                page.finish();
                page = document.start_page_with(page_settings());
                surface = page.surface();
                y = margin;
            }
            for (i, t) in text.iter().enumerate() {
                let s = if i == 0 { 16.0 } else { size };
                surface.draw_text(
                    Point::from_xy(margin, y + s),
                    font.clone(),
                    s,
                    t,
                    false,
                    TextDirection::Auto,
                );
                y += if i == 0 { 22.0 } else { leading };
            }
            let modules = code128(barcode)?;
            let module = 1.2f32;
            let mut path = PathBuilder::new();
            for (i, bar) in modules.iter().enumerate() {
                if *bar
                    && let Some(r) =
                        Rect::from_xywh(margin + i as f32 * module, y + 4.0, module, 36.0)
                {
                    path.push_rect(r);
                }
            }
            if let Some(p) = path.finish() {
                surface.set_fill(Some(krilla::paint::Fill::default()));
                surface.draw_path(&p);
            }
            y += 44.0;
            surface.draw_text(
                Point::from_xy(margin, y + size),
                font.clone(),
                size,
                barcode,
                false,
                TextDirection::Auto,
            );
            y += leading + 12.0;
        }
        surface.finish();
        page.finish();
        document
            .finish()
            .map_err(|e| JobError::Failed(format!("cannot make the PDF: {e:?}")))
    }

    /// Expires holds left on the hold shelf past their date; each item goes
    /// back to the shelf (or home in transit).
    pub(crate) async fn hold_shelf_job(&self) -> Result<JobOutcome, JobError> {
        let mut outcome = JobOutcome::default();
        let now = self.clock.now_ms();
        for h in self.store.holds_on_shelf().await? {
            if h.shelf_expires_at.is_some_and(|e| e < now) {
                self.expire_hold(h.id).await?;
                outcome.count("expired", 1);
            }
        }
        Ok(outcome)
    }

    /// Yesterday's (the slot's previous day's) circulation counts per campus
    /// and the overdue list, as CSV.
    pub(crate) async fn reports_job(&self, slot: i64) -> Result<JobOutcome, JobError> {
        let today = self.slot_date(slot);
        let day = today.pred_opt().unwrap_or(today);
        let tz = self.circulation.time_zone;
        let start = shoko_domain::circulation::end_of_day(tz, day.pred_opt().unwrap_or(day)) + 1;
        let end = shoko_domain::circulation::end_of_day(tz, day) + 1;
        let (out, back) = self.store.circulation_events(start, end).await?;
        let mut counts: BTreeMap<String, (u64, u64)> = self
            .settings
            .campuses
            .iter()
            .map(|c| (c.code.to_string(), (0, 0)))
            .collect();
        for (campus, _) in out {
            counts.entry(campus).or_default().0 += 1;
        }
        for (campus, _) in back {
            counts.entry(campus).or_default().1 += 1;
        }
        #[derive(Serialize)]
        struct CountRow {
            date: String,
            campus: String,
            checkouts: u64,
            checkins: u64,
        }
        let rows: Vec<CountRow> = counts
            .into_iter()
            .map(|(campus, (checkouts, checkins))| CountRow {
                date: day.to_string(),
                campus,
                checkouts,
                checkins,
            })
            .collect();
        let dir = self.output_dir(today)?;
        let mut outcome = JobOutcome::default();
        let circ = dir.join(format!("circulation-{day}.csv"));
        write_whole(
            &circ,
            &csv_bytes(&rows, &["date", "campus", "checkouts", "checkins"])?,
        )?;
        outcome.outputs.push(circ.display().to_string());
        #[derive(Serialize)]
        struct OverdueRow {
            due: String,
            days_overdue: i64,
            campus: String,
            barcode: String,
            title: String,
            patron_barcode: String,
            patron_name: String,
        }
        let now = self.clock.now_ms();
        let mut overdue = Vec::new();
        for l in self.store.open_loans_due_between(0, now).await? {
            let item = self.store.item(l.item_id).await?;
            let patron = match l.patron_id {
                Some(p) => self.store.patron(p).await?,
                None => None,
            };
            let title = self
                .store
                .record_summaries(&[l.record_id])
                .await?
                .pop()
                .map(|r| r.title)
                .unwrap_or_default();
            overdue.push(OverdueRow {
                due: DateTime::from_timestamp_millis(l.due_at)
                    .unwrap_or_default()
                    .with_timezone(&tz)
                    .format("%Y-%m-%d")
                    .to_string(),
                days_overdue: (now - l.due_at) / 86_400_000,
                campus: item.as_ref().map(|i| i.campus.clone()).unwrap_or_default(),
                barcode: item.map(|i| i.barcode).unwrap_or_default(),
                title,
                patron_barcode: patron
                    .as_ref()
                    .map(|p| p.barcode.clone())
                    .unwrap_or_default(),
                patron_name: patron.map(|p| p.name).unwrap_or_default(),
            });
        }
        overdue
            .sort_by(|a, b| (&a.campus, &a.due, &a.barcode).cmp(&(&b.campus, &b.due, &b.barcode)));
        let list = dir.join(format!("overdue-{today}.csv"));
        write_whole(
            &list,
            &csv_bytes(
                &overdue,
                &[
                    "due",
                    "days_overdue",
                    "campus",
                    "barcode",
                    "title",
                    "patron_barcode",
                    "patron_name",
                ],
            )?,
        )?;
        outcome.outputs.push(list.display().to_string());
        outcome.count("campuses", rows.len() as u64);
        outcome.count("overdue", overdue.len() as u64);
        Ok(outcome)
    }
}
