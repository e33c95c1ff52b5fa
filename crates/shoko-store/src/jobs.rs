//! Batch job storage: the record of every job run, the notices the notice
//! job makes and delivers, and the reads the jobs need (loans coming due,
//! holds on the shelf, what to pull for holds, items in transit, the day's
//! circulation).

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, QueryResult, Statement};
use serde::Serialize;

use crate::catalogue::col;
use crate::circulation::{
    FINE_COLUMNS, HOLD_COLUMNS, LOAN_COLUMNS, row_to_fine, row_to_hold, row_to_loan,
};
use crate::{FineRow, HoldRow, LoanRow, Store, StoreError};

/// One run of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct JobRunRow {
    /// Shoko's id.
    pub id: i64,
    /// The job's name.
    pub job: String,
    /// The scheduled time the run is for, Unix ms.
    pub slot: i64,
    /// 1 for the first try of a slot, then 2, 3, … for retries.
    pub attempt: i64,
    /// `schedule` or `manual`.
    pub trigger: String,
    /// The process that runs it.
    pub owner: String,
    /// `running`, `succeeded`, `failed` or `interrupted` (the server stopped mid-run).
    pub status: String,
    /// Start.
    pub started_at: i64,
    /// End.
    pub finished_at: Option<i64>,
    /// What it did, by name.
    pub counts: serde_json::Value,
    /// Files it wrote.
    pub outputs: Vec<String>,
    /// Why it failed.
    pub error: Option<String>,
}

const RUN_COLUMNS: [&str; 12] = [
    "id",
    "job",
    "slot",
    "attempt",
    "trigger",
    "owner",
    "status",
    "started_at",
    "finished_at",
    "counts",
    "outputs",
    "error",
];

fn row_to_run(r: &QueryResult) -> Result<JobRunRow, StoreError> {
    let id: i64 = col(r, 0)?;
    let counts: String = col(r, 9)?;
    let outputs: String = col(r, 10)?;
    Ok(JobRunRow {
        id,
        job: col(r, 1)?,
        slot: col(r, 2)?,
        attempt: col(r, 3)?,
        trigger: col(r, 4)?,
        owner: col(r, 5)?,
        status: col(r, 6)?,
        started_at: col(r, 7)?,
        finished_at: col(r, 8)?,
        counts: serde_json::from_str(&counts)
            .map_err(|e| StoreError::Corrupt(format!("job run {id}: counts: {e}")))?,
        outputs: serde_json::from_str(&outputs)
            .map_err(|e| StoreError::Corrupt(format!("job run {id}: outputs: {e}")))?,
        error: col(r, 11)?,
    })
}

/// A notice to a patron.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NoticeRow {
    /// Shoko's id.
    pub id: i64,
    /// `courtesy`, `overdue1`…`overdue3`, `hold_available`, `recall`, `fine`.
    pub kind: String,
    /// What it is about, at which state; unique.
    pub subject_key: String,
    /// To whom.
    pub patron_id: i64,
    /// `email` or `print`.
    pub channel: String,
    /// E-mail address.
    pub to_address: Option<String>,
    /// `ja` or `en`.
    pub language: String,
    /// Subject line.
    pub subject: String,
    /// Body text.
    pub body: String,
    /// `pending`, `sending`, `sent`, `printed` or `uncertain`.
    pub status: String,
    /// Delivery attempts.
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was made.
    pub created_at: i64,
    /// When it was delivered.
    pub sent_at: Option<i64>,
}

const NOTICE_COLUMNS: [&str; 14] = [
    "id",
    "kind",
    "subject_key",
    "patron_id",
    "channel",
    "to_address",
    "language",
    "subject",
    "body",
    "status",
    "attempts",
    "last_error",
    "created_at",
    "sent_at",
];

fn row_to_notice(r: &QueryResult) -> Result<NoticeRow, StoreError> {
    Ok(NoticeRow {
        id: col(r, 0)?,
        kind: col(r, 1)?,
        subject_key: col(r, 2)?,
        patron_id: col(r, 3)?,
        channel: col(r, 4)?,
        to_address: col(r, 5)?,
        language: col(r, 6)?,
        subject: col(r, 7)?,
        body: col(r, 8)?,
        status: col(r, 9)?,
        attempts: col(r, 10)?,
        last_error: col(r, 11)?,
        created_at: col(r, 12)?,
        sent_at: col(r, 13)?,
    })
}

/// A notice to make.
#[derive(Debug, Clone)]
pub struct NewNotice {
    /// Kind.
    pub kind: String,
    /// What it is about, at which state.
    pub subject_key: String,
    /// To whom.
    pub patron_id: i64,
    /// `email` or `print`.
    pub channel: String,
    /// E-mail address.
    pub to_address: Option<String>,
    /// `ja` or `en`.
    pub language: String,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
}

/// A waiting hold with a copy on the shelf that could fill it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PickCandidate {
    /// The hold or request.
    pub hold_id: i64,
    /// `hold` or `request`.
    pub kind: String,
    /// Where the patron collects it.
    pub pickup_campus: String,
    /// The patron's barcode.
    pub patron_barcode: String,
    /// The copy.
    pub item_id: i64,
    /// Its barcode.
    pub barcode: String,
    /// Its campus.
    pub campus: String,
    /// Its location.
    pub location: Option<String>,
    /// Its call number.
    pub call_number: Option<String>,
    /// The title.
    pub title: String,
}

/// An item in transit, with what a slip shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransitSlip {
    /// The transit.
    pub transit_id: i64,
    /// Item barcode.
    pub barcode: String,
    /// Call number.
    pub call_number: Option<String>,
    /// Title.
    pub title: String,
    /// From.
    pub from_campus: String,
    /// To.
    pub to_campus: String,
    /// `home`, `hold` or `request`.
    pub reason: String,
    /// The patron it travels for.
    pub patron_barcode: Option<String>,
    /// Their name.
    pub patron_name: Option<String>,
    /// Sent.
    pub sent_at: i64,
}

impl Store {
    async fn select<T>(
        &self,
        select: &SelectStatement,
        map: fn(&QueryResult) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let rows = self.db.query_all(select).await?;
        rows.iter().map(map).collect()
    }

    /// Records the start of a run.
    pub async fn start_run(
        &self,
        job: &str,
        slot: i64,
        attempt: i64,
        trigger: &str,
        owner: &str,
        now: i64,
    ) -> Result<JobRunRow, StoreError> {
        let row = self
            .db
            .query_one(
                &Query::insert()
                    .into_table("job_runs")
                    .columns(RUN_COLUMNS.iter().skip(1).copied())
                    .values_panic([
                        job.into(),
                        slot.into(),
                        attempt.into(),
                        trigger.into(),
                        owner.into(),
                        "running".into(),
                        now.into(),
                        Option::<i64>::None.into(),
                        "{}".into(),
                        "[]".into(),
                        Option::<String>::None.into(),
                    ])
                    .returning(Query::returning().columns(RUN_COLUMNS))
                    .to_owned(),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING gave no row".into()))?;
        row_to_run(&row)
    }

    /// Records the end of a run.
    pub async fn finish_run(
        &self,
        id: i64,
        status: &str,
        counts: &serde_json::Value,
        outputs: &[String],
        error: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                &Query::update()
                    .table("job_runs")
                    .value("status", status)
                    .value("finished_at", now)
                    .value("counts", counts.to_string())
                    .value(
                        "outputs",
                        serde_json::to_string(outputs).expect("strings serialise"),
                    )
                    .value("error", error.map(str::to_owned))
                    .and_where(Expr::col("id").eq(id))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    /// Runs still marked `running`.
    pub async fn running_runs(&self) -> Result<Vec<JobRunRow>, StoreError> {
        self.select(
            &Query::select()
                .columns(RUN_COLUMNS)
                .from("job_runs")
                .and_where(Expr::col("status").eq("running"))
                .order_by("id", Order::Asc)
                .to_owned(),
            row_to_run,
        )
        .await
    }

    /// Marks a run whose process died `interrupted`.
    pub async fn interrupt_run(&self, id: i64, now: i64) -> Result<(), StoreError> {
        self.db
            .execute(
                &Query::update()
                    .table("job_runs")
                    .value("status", "interrupted")
                    .value("finished_at", now)
                    .value("error", "the process stopped during the run")
                    .and_where(Expr::col("id").eq(id))
                    .and_where(Expr::col("status").eq("running"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    /// Notices left `sending` by a process that died are `uncertain`: the
    /// SMTP server may or may not have taken them. Returns how many.
    pub async fn notices_sending_to_uncertain(&self) -> Result<u64, StoreError> {
        Ok(self
            .db
            .execute(
                &Query::update()
                    .table("notices")
                    .value("status", "uncertain")
                    .and_where(Expr::col("status").eq("sending"))
                    .to_owned(),
            )
            .await?
            .rows_affected())
    }

    /// Runs, newest first, of one job or all.
    pub async fn job_runs(
        &self,
        job: Option<&str>,
        limit: u64,
    ) -> Result<Vec<JobRunRow>, StoreError> {
        let mut select = Query::select();
        select.columns(RUN_COLUMNS).from("job_runs");
        if let Some(j) = job {
            select.and_where(Expr::col("job").eq(j));
        }
        select.order_by("id", Order::Desc).limit(limit);
        self.select(&select, row_to_run).await
    }

    /// The latest run of a job for its schedule (not runs by hand).
    pub async fn last_scheduled_run(&self, job: &str) -> Result<Option<JobRunRow>, StoreError> {
        Ok(self
            .select(
                &Query::select()
                    .columns(RUN_COLUMNS)
                    .from("job_runs")
                    .and_where(Expr::col("job").eq(job))
                    .and_where(Expr::col("trigger").eq("schedule"))
                    .order_by("slot", Order::Desc)
                    .order_by("id", Order::Desc)
                    .limit(1)
                    .to_owned(),
                row_to_run,
            )
            .await?
            .into_iter()
            .next())
    }

    /// Job runs counted by job and status.
    pub async fn job_run_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = self
            .db
            .query_all_raw(Statement::from_string(
                self.backend(),
                "SELECT job, status, COUNT(*) FROM job_runs GROUP BY job, status ORDER BY job, status",
            ))
            .await?;
        rows.iter()
            .map(|r| Ok((col(r, 0)?, col(r, 1)?, col(r, 2)?)))
            .collect()
    }

    /// Makes a notice unless one with its subject key exists; true when made.
    pub async fn insert_notice(
        &self,
        n: &NewNotice,
        run: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = self
            .db
            .execute(
                &Query::insert()
                    .into_table("notices")
                    .columns(NOTICE_COLUMNS.iter().skip(1).copied().chain(["run_id"]))
                    .values_panic([
                        n.kind.as_str().into(),
                        n.subject_key.as_str().into(),
                        n.patron_id.into(),
                        n.channel.as_str().into(),
                        n.to_address.clone().into(),
                        n.language.as_str().into(),
                        n.subject.as_str().into(),
                        n.body.as_str().into(),
                        "pending".into(),
                        0i64.into(),
                        Option::<String>::None.into(),
                        now.into(),
                        Option::<i64>::None.into(),
                        run.into(),
                    ])
                    .on_conflict(OnConflict::column("subject_key").do_nothing().to_owned())
                    .to_owned(),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Notices not yet delivered on a channel, oldest first.
    pub async fn pending_notices(&self, channel: &str) -> Result<Vec<NoticeRow>, StoreError> {
        self.select(
            &Query::select()
                .columns(NOTICE_COLUMNS)
                .from("notices")
                .and_where(Expr::col("status").eq("pending"))
                .and_where(Expr::col("channel").eq(channel))
                .order_by("id", Order::Asc)
                .to_owned(),
            row_to_notice,
        )
        .await
    }

    /// Every notice, newest first (for staff and tests).
    pub async fn notices(&self, limit: u64) -> Result<Vec<NoticeRow>, StoreError> {
        self.select(
            &Query::select()
                .columns(NOTICE_COLUMNS)
                .from("notices")
                .order_by("id", Order::Desc)
                .limit(limit)
                .to_owned(),
            row_to_notice,
        )
        .await
    }

    /// Notes that a notice is being handed to the SMTP server (committed
    /// before the first byte is sent).
    pub async fn notice_sending(&self, id: i64) -> Result<(), StoreError> {
        self.db
            .execute(
                &Query::update()
                    .table("notices")
                    .value("status", "sending")
                    .value("attempts", Expr::col("attempts").add(1))
                    .and_where(Expr::col("id").eq(id))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    /// Puts a notice whose delivery failed back to `pending`, with why.
    pub async fn notice_failed(&self, id: i64, error: &str) -> Result<(), StoreError> {
        self.db
            .execute(
                &Query::update()
                    .table("notices")
                    .value("status", "pending")
                    .value("last_error", error)
                    .and_where(Expr::col("id").eq(id))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    /// Marks a notice delivered (`sent` or `printed`).
    pub async fn notice_delivered(
        &self,
        id: i64,
        status: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                &Query::update()
                    .table("notices")
                    .value("status", status)
                    .value("sent_at", now)
                    .and_where(Expr::col("id").eq(id))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    /// Open loans due in `[from, to)`.
    pub async fn open_loans_due_between(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<LoanRow>, StoreError> {
        self.select(
            &Query::select()
                .columns(LOAN_COLUMNS)
                .from("loans")
                .and_where(Expr::col("open_item_id").is_not_null())
                .and_where(Expr::col("due_at").gte(from))
                .and_where(Expr::col("due_at").lt(to))
                .order_by("id", Order::Asc)
                .to_owned(),
            row_to_loan,
        )
        .await
    }

    /// Fines with something still owed.
    pub async fn unpaid_fines(&self) -> Result<Vec<FineRow>, StoreError> {
        self.select(
            &Query::select()
                .columns(FINE_COLUMNS)
                .from("fines")
                .and_where(
                    Expr::col("amount")
                        .sub(Expr::col("paid"))
                        .sub(Expr::col("waived"))
                        .gt(0),
                )
                .order_by("id", Order::Asc)
                .to_owned(),
            row_to_fine,
        )
        .await
    }

    /// One item by id.
    pub async fn item(&self, id: i64) -> Result<Option<crate::StoredItem>, StoreError> {
        Ok(self
            .select(
                &Query::select()
                    .columns(crate::catalogue::ITEM_COLUMNS)
                    .from("items")
                    .and_where(Expr::col("id").eq(id))
                    .to_owned(),
                crate::catalogue::row_to_item,
            )
            .await?
            .pop())
    }

    /// Open loans that were recalled.
    pub async fn open_recalled_loans(&self) -> Result<Vec<LoanRow>, StoreError> {
        self.select(
            &Query::select()
                .columns(LOAN_COLUMNS)
                .from("loans")
                .and_where(Expr::col("open_item_id").is_not_null())
                .and_where(Expr::col("recalled_at").is_not_null())
                .order_by("id", Order::Asc)
                .to_owned(),
            row_to_loan,
        )
        .await
    }

    /// Holds waiting on a hold shelf.
    pub async fn holds_on_shelf(&self) -> Result<Vec<HoldRow>, StoreError> {
        self.select(
            &Query::select()
                .columns(HOLD_COLUMNS)
                .from("holds")
                .and_where(Expr::col("status").eq("on_shelf"))
                .order_by("id", Order::Asc)
                .to_owned(),
            row_to_hold,
        )
        .await
    }

    /// Waiting holds with every copy on the shelf that could fill them, in
    /// queue order, copies at the pickup campus first.
    pub async fn pick_candidates(&self) -> Result<Vec<PickCandidate>, StoreError> {
        let sql = "SELECT h.id, h.kind, h.pickup_campus, p.barcode, i.id, i.barcode, \
                   i.campus_code, i.location_code, i.call_number, r.title \
                   FROM holds h \
                   JOIN patrons p ON p.id = h.patron_id \
                   JOIN items i ON i.record_id = h.record_id \
                     AND (h.item_id IS NULL OR h.item_id = i.id) \
                   JOIN records r ON r.id = h.record_id \
                   WHERE h.status = 'waiting' AND i.status = 'available' \
                   ORDER BY h.id, CASE WHEN i.campus_code = h.pickup_campus THEN 0 ELSE 1 END, i.id";
        let rows = self
            .db
            .query_all_raw(Statement::from_string(self.backend(), sql))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(PickCandidate {
                    hold_id: col(r, 0)?,
                    kind: col(r, 1)?,
                    pickup_campus: col(r, 2)?,
                    patron_barcode: col(r, 3)?,
                    item_id: col(r, 4)?,
                    barcode: col(r, 5)?,
                    campus: col(r, 6)?,
                    location: col(r, 7)?,
                    call_number: col(r, 8)?,
                    title: col(r, 9)?,
                })
            })
            .collect()
    }

    /// Items in transit, with what their slips show.
    pub async fn transit_slips(&self) -> Result<Vec<TransitSlip>, StoreError> {
        let sql = "SELECT t.id, i.barcode, i.call_number, r.title, t.from_campus, t.to_campus, \
                   t.reason, p.barcode, p.name, t.sent_at \
                   FROM transits t \
                   JOIN items i ON i.id = t.item_id \
                   JOIN records r ON r.id = i.record_id \
                   LEFT JOIN holds h ON h.id = t.hold_id \
                   LEFT JOIN patrons p ON p.id = h.patron_id \
                   WHERE t.open_item_id IS NOT NULL \
                   ORDER BY t.from_campus, t.to_campus, i.call_number, i.barcode";
        let rows = self
            .db
            .query_all_raw(Statement::from_string(self.backend(), sql))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TransitSlip {
                    transit_id: col(r, 0)?,
                    barcode: col(r, 1)?,
                    call_number: col(r, 2)?,
                    title: col(r, 3)?,
                    from_campus: col(r, 4)?,
                    to_campus: col(r, 5)?,
                    reason: col(r, 6)?,
                    patron_barcode: col(r, 7)?,
                    patron_name: col(r, 8)?,
                    sent_at: col(r, 9)?,
                })
            })
            .collect()
    }

    /// Checkouts (campus, time) and check-ins (campus, time) in `[from, to)`.
    pub async fn circulation_events(
        &self,
        from: i64,
        to: i64,
    ) -> Result<(Vec<(String, i64)>, Vec<(String, i64)>), StoreError> {
        let out = self
            .db
            .query_all(
                &Query::select()
                    .columns(["campus", "checked_out_at"])
                    .from("loans")
                    .and_where(Expr::col("checked_out_at").gte(from))
                    .and_where(Expr::col("checked_out_at").lt(to))
                    .to_owned(),
            )
            .await?;
        let back = self
            .db
            .query_all(
                &Query::select()
                    .columns(["returned_campus", "returned_at"])
                    .from("loans")
                    .and_where(Expr::col("returned_at").gte(from))
                    .and_where(Expr::col("returned_at").lt(to))
                    .to_owned(),
            )
            .await?;
        let pairs = |rows: Vec<QueryResult>| -> Result<Vec<(String, i64)>, StoreError> {
            rows.iter()
                .map(|r| {
                    Ok((
                        col::<Option<String>, _>(r, 0)?.unwrap_or_default(),
                        col(r, 1)?,
                    ))
                })
                .collect()
        };
        Ok((pairs(out)?, pairs(back)?))
    }
}

impl Store {
    /// How many notices have a status (`uncertain`, `pending`, …).
    pub async fn notices_with_status(&self, status: &str) -> Result<u64, StoreError> {
        let row = self
            .db
            .query_one(
                &Query::select()
                    .expr(Expr::col("id").count())
                    .from("notices")
                    .and_where(Expr::col("status").eq(status))
                    .to_owned(),
            )
            .await?;
        let n: i64 = match row {
            Some(r) => col(&r, 0)?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
