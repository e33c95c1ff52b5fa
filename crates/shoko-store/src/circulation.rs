//! Circulation storage: patrons, loans, holds and requests, transits, fines,
//! staff accounts, sessions and the audit log.
//!
//! A circulation operation runs in one [`WriteTx`]: the application reads and
//! locks what it needs (item first, then patron, so two desks never deadlock),
//! decides by the domain's rules, writes, and finishes (see `write.rs`).

use sea_orm::sea_query::{
    Asterisk, Expr, ExprTrait, JoinType, LockType, Order, Query, SelectStatement,
};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement};
use serde::Serialize;

use crate::catalogue::{ITEM_COLUMNS, OUTBOX_STATUS, Row, col, outbox_inserts, row_to_item};
use crate::{Store, StoreError, StoredItem, WriteTx};

/// A patron as stored (the password hash is read on its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PatronRow {
    /// Shoko's id.
    pub id: i64,
    /// Card barcode.
    pub barcode: String,
    /// Name to show.
    pub name: String,
    /// Name by which to sort (kana for Japanese names).
    pub name_reading: String,
    /// Patron category code.
    pub category: String,
    /// Home campus code.
    pub home_campus: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Telephone.
    pub phone: Option<String>,
    /// `ja` or `en`.
    pub language: String,
    /// Last valid date, `YYYY-MM-DD`.
    pub expires_on: Option<String>,
    /// A manual block's note.
    pub manual_block: Option<String>,
    /// Whether returned loans stay linked to the patron.
    pub keep_history: bool,
    /// Open loans (counter).
    pub open_loans: i64,
    /// Fines owed, yen (counter).
    pub fines_owed: i64,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// Incremented by every change to the patron's own fields.
    pub version: i64,
}

const PATRON_COLUMNS: [&str; 17] = [
    "id",
    "barcode",
    "name",
    "name_reading",
    "category",
    "home_campus",
    "email",
    "phone",
    "language",
    "expires_on",
    "manual_block",
    "keep_history",
    "open_loans",
    "fines_owed",
    "created_at",
    "updated_at",
    "version",
];

fn row_to_patron<R: Row + ?Sized>(r: &R) -> Result<PatronRow, StoreError> {
    Ok(PatronRow {
        id: col(r, 0)?,
        barcode: col(r, 1)?,
        name: col(r, 2)?,
        name_reading: col(r, 3)?,
        category: col(r, 4)?,
        home_campus: col(r, 5)?,
        email: col(r, 6)?,
        phone: col(r, 7)?,
        language: col(r, 8)?,
        expires_on: col(r, 9)?,
        manual_block: col(r, 10)?,
        keep_history: col(r, 11)?,
        open_loans: col(r, 12)?,
        fines_owed: col(r, 13)?,
        created_at: col(r, 14)?,
        updated_at: col(r, 15)?,
        version: col(r, 16)?,
    })
}

/// The fields of a patron that staff (or a load) set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PatronFields {
    /// Card barcode.
    pub barcode: String,
    /// Name.
    pub name: String,
    /// Reading of the name.
    pub name_reading: String,
    /// Category code.
    pub category: String,
    /// Home campus code.
    pub home_campus: String,
    /// E-mail.
    pub email: Option<String>,
    /// Telephone.
    pub phone: Option<String>,
    /// `ja` or `en`.
    pub language: String,
    /// Last valid date.
    pub expires_on: Option<String>,
    /// Manual block note.
    pub manual_block: Option<String>,
    /// Loan history opt-in.
    pub keep_history: bool,
}

/// A loan as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LoanRow {
    /// Shoko's id.
    pub id: i64,
    /// The item lent.
    pub item_id: i64,
    /// The item's record.
    pub record_id: i64,
    /// The borrower; `None` once an anonymised loan was returned.
    pub patron_id: Option<i64>,
    /// Campus of checkout.
    pub campus: String,
    /// When it was checked out.
    pub checked_out_at: i64,
    /// When it is due.
    pub due_at: i64,
    /// Renewals so far.
    pub renewals: i64,
    /// Renewals allowed by the policy at checkout.
    pub renewals_allowed: i64,
    /// Fine per day agreed at checkout.
    pub fine_per_day: i64,
    /// Maximum fine agreed at checkout.
    pub max_fine: i64,
    /// When it was recalled.
    pub recalled_at: Option<i64>,
    /// When it was returned.
    pub returned_at: Option<i64>,
    /// Where it was returned.
    pub returned_campus: Option<String>,
}

pub(crate) const LOAN_COLUMNS: [&str; 14] = [
    "id",
    "item_id",
    "record_id",
    "patron_id",
    "campus",
    "checked_out_at",
    "due_at",
    "renewals",
    "renewals_allowed",
    "fine_per_day",
    "max_fine",
    "recalled_at",
    "returned_at",
    "returned_campus",
];

pub(crate) fn row_to_loan<R: Row + ?Sized>(r: &R) -> Result<LoanRow, StoreError> {
    Ok(LoanRow {
        id: col(r, 0)?,
        item_id: col(r, 1)?,
        record_id: col(r, 2)?,
        patron_id: col(r, 3)?,
        campus: col(r, 4)?,
        checked_out_at: col(r, 5)?,
        due_at: col(r, 6)?,
        renewals: col(r, 7)?,
        renewals_allowed: col(r, 8)?,
        fine_per_day: col(r, 9)?,
        max_fine: col(r, 10)?,
        recalled_at: col(r, 11)?,
        returned_at: col(r, 12)?,
        returned_campus: col(r, 13)?,
    })
}

/// A new loan's values.
#[derive(Debug, Clone)]
pub struct NewLoan {
    /// The item.
    pub item_id: i64,
    /// Its record.
    pub record_id: i64,
    /// The borrower.
    pub patron_id: i64,
    /// Campus of checkout.
    pub campus: String,
    /// Due date.
    pub due_at: i64,
    /// Renewals allowed.
    pub renewals_allowed: i64,
    /// Fine per day.
    pub fine_per_day: i64,
    /// Maximum fine.
    pub max_fine: i64,
}

/// A hold or a request as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct HoldRow {
    /// Shoko's id.
    pub id: i64,
    /// `hold` or `request`.
    pub kind: String,
    /// The title.
    pub record_id: i64,
    /// The copy asked for, or the copy trapped for the hold.
    pub item_id: Option<i64>,
    /// Who asked.
    pub patron_id: i64,
    /// Where the patron collects it.
    pub pickup_campus: String,
    /// `waiting`, `in_transit`, `on_shelf`, `fulfilled`, `cancelled`, `expired`.
    pub status: String,
    /// When it was placed (the queue order, with the id).
    pub placed_at: i64,
    /// Last day to collect it from the hold shelf.
    pub shelf_expires_at: Option<i64>,
    /// Last change.
    pub updated_at: i64,
}

pub(crate) const HOLD_COLUMNS: [&str; 10] = [
    "id",
    "kind",
    "record_id",
    "item_id",
    "patron_id",
    "pickup_campus",
    "status",
    "placed_at",
    "shelf_expires_at",
    "updated_at",
];

pub(crate) fn row_to_hold<R: Row + ?Sized>(r: &R) -> Result<HoldRow, StoreError> {
    Ok(HoldRow {
        id: col(r, 0)?,
        kind: col(r, 1)?,
        record_id: col(r, 2)?,
        item_id: col(r, 3)?,
        patron_id: col(r, 4)?,
        pickup_campus: col(r, 5)?,
        status: col(r, 6)?,
        placed_at: col(r, 7)?,
        shelf_expires_at: col(r, 8)?,
        updated_at: col(r, 9)?,
    })
}

/// An item moving between campuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TransitRow {
    /// Shoko's id.
    pub id: i64,
    /// The item.
    pub item_id: i64,
    /// Sent from.
    pub from_campus: String,
    /// Sent to.
    pub to_campus: String,
    /// `home`, `hold` or `request`.
    pub reason: String,
    /// The hold or request it travels for.
    pub hold_id: Option<i64>,
    /// When it was pulled and sent.
    pub sent_at: i64,
    /// When it arrived.
    pub arrived_at: Option<i64>,
}

const TRANSIT_COLUMNS: [&str; 8] = [
    "id",
    "item_id",
    "from_campus",
    "to_campus",
    "reason",
    "hold_id",
    "sent_at",
    "arrived_at",
];

fn row_to_transit<R: Row + ?Sized>(r: &R) -> Result<TransitRow, StoreError> {
    Ok(TransitRow {
        id: col(r, 0)?,
        item_id: col(r, 1)?,
        from_campus: col(r, 2)?,
        to_campus: col(r, 3)?,
        reason: col(r, 4)?,
        hold_id: col(r, 5)?,
        sent_at: col(r, 6)?,
        arrived_at: col(r, 7)?,
    })
}

/// A fine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FineRow {
    /// Shoko's id.
    pub id: i64,
    /// Who owes it.
    pub patron_id: i64,
    /// The item it is for.
    pub item_id: Option<i64>,
    /// `overdue`, `lost` or `manual`.
    pub kind: String,
    /// Amount charged, yen.
    pub amount: i64,
    /// Paid so far.
    pub paid: i64,
    /// Waived so far.
    pub waived: i64,
    /// Staff note.
    pub note: Option<String>,
    /// When it was charged.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

impl FineRow {
    /// What is still owed.
    pub fn outstanding(&self) -> i64 {
        self.amount - self.paid - self.waived
    }
}

pub(crate) const FINE_COLUMNS: [&str; 10] = [
    "id",
    "patron_id",
    "item_id",
    "kind",
    "amount",
    "paid",
    "waived",
    "note",
    "created_at",
    "updated_at",
];

pub(crate) fn row_to_fine(r: &QueryResult) -> Result<FineRow, StoreError> {
    Ok(FineRow {
        id: col(r, 0)?,
        patron_id: col(r, 1)?,
        item_id: col(r, 2)?,
        kind: col(r, 3)?,
        amount: col(r, 4)?,
        paid: col(r, 5)?,
        waived: col(r, 6)?,
        note: col(r, 7)?,
        created_at: col(r, 8)?,
        updated_at: col(r, 9)?,
    })
}

/// A staff account (without its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct StaffRow {
    /// Shoko's id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Name to show.
    pub display_name: String,
    /// Role code.
    pub role: String,
    /// Whether the account may log in.
    pub active: bool,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// Incremented by every change.
    pub version: i64,
}

const STAFF_COLUMNS: [&str; 8] = [
    "id",
    "username",
    "display_name",
    "role",
    "active",
    "created_at",
    "updated_at",
    "version",
];

fn row_to_staff(r: &QueryResult) -> Result<StaffRow, StoreError> {
    Ok(StaffRow {
        id: col(r, 0)?,
        username: col(r, 1)?,
        display_name: col(r, 2)?,
        role: col(r, 3)?,
        active: col(r, 4)?,
        created_at: col(r, 5)?,
        updated_at: col(r, 6)?,
        version: col(r, 7)?,
    })
}

/// What a checkout reads first.
#[derive(Debug)]
pub struct CheckoutContext {
    /// The item.
    pub item: Option<StoredItem>,
    /// The patron, with the earliest due date among its open loans.
    pub patron: Option<(PatronRow, Option<i64>)>,
    /// The id the loan will get ([`WriteTx::insert_loan`]).
    pub loan_id: i64,
}

/// A login session (cookie) or API token, found by the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// `staff` or `patron`.
    pub kind: String,
    /// The staff account or patron.
    pub subject_id: i64,
    /// The session's CSRF token.
    pub csrf: String,
    /// When it stops being valid.
    pub expires_at: i64,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditRow {
    /// Order.
    pub id: i64,
    /// When.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What was done (`checkout`, `patron.update`, …).
    pub action: String,
    /// The kind of thing changed.
    pub entity: String,
    /// Its id.
    pub entity_id: String,
    /// Before, as JSON.
    pub before: Option<serde_json::Value>,
    /// After, as JSON.
    pub after: Option<serde_json::Value>,
}

/// The earliest due date among a patron's open loans: one seek in the
/// `loans_open_patron_due` index.
async fn earliest_due_in<C: ConnectionTrait>(
    c: &C,
    patron_id: i64,
) -> Result<Option<i64>, StoreError> {
    let row = c
        .query_one(
            &Query::select()
                .column("due_at")
                .from("loans")
                .and_where(Expr::col("open_patron_id").eq(patron_id))
                .order_by("due_at", Order::Asc)
                .limit(1)
                .to_owned(),
        )
        .await?;
    row.map(|r| col(&r, 0)).transpose()
}

/// A problem found by [`Store::circulation_problems`].
pub type Problem = String;

fn one<T>(rows: Vec<T>) -> Option<T> {
    rows.into_iter().next()
}

/// What [`WriteTx::checkin_context`] reads.
#[derive(Debug, Clone)]
pub struct CheckinContext {
    /// The item's open transit.
    pub transit: Option<TransitRow>,
    /// The hold the item is trapped for.
    pub trapping: Option<HoldRow>,
    /// The first waiting hold the item can fill.
    pub waiting: Option<HoldRow>,
    /// The item's open loan.
    pub loan: Option<LoanRow>,
    /// The patron of that loan.
    pub patron: Option<PatronRow>,
}

// The locking reads of a write, as statements, so that several can be sent
// together (`WriteTx::read_together`).

fn item_by_barcode(barcode: &str) -> SelectStatement {
    Query::select()
        .columns(ITEM_COLUMNS)
        .from("items")
        .and_where(Expr::col("barcode").eq(barcode))
        .lock(LockType::Update)
        .to_owned()
}

fn patron_where(condition: sea_orm::sea_query::SimpleExpr) -> SelectStatement {
    Query::select()
        .columns(PATRON_COLUMNS)
        .from("patrons")
        .and_where(condition)
        .lock(LockType::Update)
        .to_owned()
}

fn patron_with_earliest_due(barcode: &str) -> SelectStatement {
    patron_where(Expr::col("barcode").eq(barcode))
        .expr(Expr::cust(
            "(SELECT due_at FROM loans WHERE open_patron_id = patrons.id \
             ORDER BY due_at LIMIT 1)",
        ))
        .to_owned()
}

fn row_to_patron_and_due<R: Row + ?Sized>(r: &R) -> Result<(PatronRow, Option<i64>), StoreError> {
    Ok((row_to_patron(r)?, col(r, PATRON_COLUMNS.len())?))
}

fn open_loan_of_item(item_id: impl Into<Expr>) -> SelectStatement {
    Query::select()
        .columns(LOAN_COLUMNS)
        .from("loans")
        .and_where(Expr::col("open_item_id").eq(item_id))
        .lock(LockType::Update)
        .to_owned()
}

fn first_waiting_hold(record_id: impl Into<Expr>, item_id: impl Into<Expr>) -> SelectStatement {
    let item_id = item_id.into();
    Query::select()
        .columns(HOLD_COLUMNS)
        .from("holds")
        .and_where(Expr::col("record_id").eq(record_id))
        .and_where(Expr::col("status").eq("waiting"))
        .and_where(
            Expr::col("item_id")
                .is_null()
                .or(Expr::col("item_id").eq(item_id)),
        )
        .order_by("id", Order::Asc)
        .limit(1)
        .to_owned()
}

fn hold_trapping(item_id: impl Into<Expr>) -> SelectStatement {
    Query::select()
        .columns(HOLD_COLUMNS)
        .from("holds")
        .and_where(Expr::col("item_id").eq(item_id))
        .and_where(Expr::col("status").is_in(["in_transit", "on_shelf"]))
        .lock(LockType::Update)
        .to_owned()
}

fn open_transit(item_id: impl Into<Expr>) -> SelectStatement {
    Query::select()
        .columns(TRANSIT_COLUMNS)
        .from("transits")
        .and_where(Expr::col("open_item_id").eq(item_id))
        .lock(LockType::Update)
        .to_owned()
}

impl WriteTx {
    // ---- items ----

    /// An item by barcode, locked for this transaction.
    pub async fn item_by_barcode(&self, barcode: &str) -> Result<Option<StoredItem>, StoreError> {
        Ok(one(self
            .all(&item_by_barcode(barcode), row_to_item)
            .await?))
    }

    /// An item by id, locked for this transaction.
    pub async fn item(&self, id: i64) -> Result<Option<StoredItem>, StoreError> {
        Ok(one(self
            .all(
                &Query::select()
                    .columns(ITEM_COLUMNS)
                    .from("items")
                    .and_where(Expr::col("id").eq(id))
                    .lock(LockType::Update)
                    .to_owned(),
                row_to_item,
            )
            .await?))
    }

    /// Sets an item's status and queues its record for the index (both
    /// sent with the transaction's next statement: see [`WriteTx::later`]).
    pub async fn set_item_status(&self, item: &StoredItem, status: &str) -> Result<(), StoreError> {
        self.later(
            &Query::update()
                .table("items")
                .value("status", status)
                .value("updated_at", self.ctx.now)
                .value("version", Expr::col("version").add(1))
                .and_where(Expr::col("id").eq(item.id))
                .to_owned(),
        );
        for insert in outbox_inserts(&[item.record_id], OUTBOX_STATUS, self.ctx.now) {
            self.later(&insert);
        }
        Ok(())
    }

    /// How many copies of a record are on the shelf now.
    pub async fn copies_on_shelf(&self, record_id: i64) -> Result<i64, StoreError> {
        self.count(
            Query::select()
                .expr(Expr::col(Asterisk).count())
                .from("items")
                .and_where(Expr::col("record_id").eq(record_id))
                .and_where(Expr::col("status").eq("available"))
                .to_owned(),
        )
        .await
    }

    async fn count(&self, select: SelectStatement) -> Result<i64, StoreError> {
        let row = self
            .txn()
            .await?
            .query_one(&select)
            .await?
            .ok_or_else(|| StoreError::Corrupt("COUNT(*) gave no row".into()))?;
        col(&row, 0)
    }

    // ---- patrons ----

    /// A patron by id, locked for this transaction.
    pub async fn patron(&self, id: i64) -> Result<Option<PatronRow>, StoreError> {
        self.patron_where(Expr::col("id").eq(id)).await
    }

    /// A patron by card barcode, locked for this transaction.
    pub async fn patron_by_barcode(&self, barcode: &str) -> Result<Option<PatronRow>, StoreError> {
        self.patron_where(Expr::col("barcode").eq(barcode)).await
    }

    /// The item, the patron (with the earliest due date among its open
    /// loans) and the id the loan will get: what a checkout reads, in one
    /// round trip on SQLite.
    pub async fn checkout_context(
        &self,
        item_barcode: &str,
        patron_barcode: &str,
    ) -> Result<CheckoutContext, StoreError> {
        let read = self
            .read_together([
                item_by_barcode(item_barcode),
                patron_with_earliest_due(patron_barcode),
                self.next_loan_id(),
            ])
            .await?;
        let loan_id = read
            .map(2, |r| col(r, 0))?
            .ok_or_else(|| StoreError::Corrupt("no next loan id".into()))?;
        Ok(CheckoutContext {
            item: read.map(0, row_to_item)?,
            patron: read.map(1, row_to_patron_and_due)?,
            loan_id,
        })
    }

    /// The id the next loan gets. On SQLite the table's AUTOINCREMENT
    /// counter, read under the write lock that the insert commits in (an id
    /// once used, even by a loan deleted since, is never given again); on
    /// PostgreSQL a value of its sequence, taken now (an unused one leaves
    /// a gap, as a rolled-back insert does).
    fn next_loan_id(&self) -> SelectStatement {
        let next = match self.txn_backend() {
            DbBackend::Postgres => "nextval(pg_get_serial_sequence('loans', 'id'))",
            _ => "COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'loans'), 0) + 1",
        };
        Query::select().expr(Expr::cust(next)).to_owned()
    }

    /// The item with the barcode and what a check-in needs to know about
    /// it, locked (the item first): one round trip on SQLite. `None` when no
    /// item has the barcode.
    pub async fn checkin_context(
        &self,
        barcode: &str,
    ) -> Result<Option<(StoredItem, CheckinContext)>, StoreError> {
        let item_field = |column: &'static str| {
            Expr::expr(
                Query::select()
                    .column(column)
                    .from("items")
                    .and_where(Expr::col("barcode").eq(barcode))
                    .to_owned(),
            )
        };
        let patron_of_loan = Query::select()
            .column("patron_id")
            .from("loans")
            .and_where(Expr::col("open_item_id").eq(item_field("id")))
            .to_owned();
        let read = self
            .read_together([
                item_by_barcode(barcode),
                open_transit(item_field("id")),
                hold_trapping(item_field("id")),
                first_waiting_hold(item_field("record_id"), item_field("id")),
                open_loan_of_item(item_field("id")),
                patron_where(Expr::col("id").in_subquery(patron_of_loan)),
            ])
            .await?;
        let Some(item) = read.map(0, row_to_item)? else {
            return Ok(None);
        };
        let context = CheckinContext {
            transit: read.map(1, row_to_transit)?,
            trapping: read.map(2, row_to_hold)?,
            waiting: read.map(3, row_to_hold)?,
            loan: read.map(4, row_to_loan)?,
            patron: read.map(5, row_to_patron)?,
        };
        Ok(Some((item, context)))
    }

    async fn patron_where(
        &self,
        condition: sea_orm::sea_query::SimpleExpr,
    ) -> Result<Option<PatronRow>, StoreError> {
        Ok(one(self
            .all(&patron_where(condition), row_to_patron)
            .await?))
    }

    /// Creates a patron; `None` when the barcode is taken.
    pub async fn insert_patron(
        &self,
        p: &PatronFields,
        password_hash: Option<&str>,
    ) -> Result<Option<PatronRow>, StoreError> {
        if self.patron_by_barcode(&p.barcode).await?.is_some() {
            return Ok(None);
        }
        let now = self.ctx.now;
        let row = self
            .txn()
            .await?
            .query_one(
                &Query::insert()
                    .into_table("patrons")
                    .columns(
                        PATRON_COLUMNS
                            .iter()
                            .skip(1)
                            .copied()
                            .chain(["password_hash"]),
                    )
                    .values_panic([
                        p.barcode.as_str().into(),
                        p.name.as_str().into(),
                        p.name_reading.as_str().into(),
                        p.category.as_str().into(),
                        p.home_campus.as_str().into(),
                        p.email.clone().into(),
                        p.phone.clone().into(),
                        p.language.as_str().into(),
                        p.expires_on.clone().into(),
                        p.manual_block.clone().into(),
                        p.keep_history.into(),
                        0i64.into(),
                        0i64.into(),
                        now.into(),
                        now.into(),
                        1i64.into(),
                        password_hash.map(str::to_owned).into(),
                    ])
                    .returning(Query::returning().columns(PATRON_COLUMNS))
                    .to_owned(),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING gave no row".into()))?;
        Ok(Some(row_to_patron(&row)?))
    }

    /// Overwrites a patron's fields (not its counters).
    pub async fn update_patron(&self, id: i64, p: &PatronFields) -> Result<(), StoreError> {
        self.txn()
            .await?
            .execute(
                &Query::update()
                    .table("patrons")
                    .value("barcode", p.barcode.as_str())
                    .value("name", p.name.as_str())
                    .value("name_reading", p.name_reading.as_str())
                    .value("category", p.category.as_str())
                    .value("home_campus", p.home_campus.as_str())
                    .value("email", p.email.clone())
                    .value("phone", p.phone.clone())
                    .value("language", p.language.as_str())
                    .value("expires_on", p.expires_on.clone())
                    .value("manual_block", p.manual_block.clone())
                    .value("keep_history", p.keep_history)
                    .value("updated_at", self.ctx.now)
                    .value("version", Expr::col("version").add(1))
                    .and_where(Expr::col("id").eq(id))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    /// Sets a patron's password hash.
    pub async fn set_patron_password(&self, id: i64, hash: &str) -> Result<(), StoreError> {
        self.txn()
            .await?
            .execute(
                &Query::update()
                    .table("patrons")
                    .value("password_hash", hash)
                    .value("updated_at", self.ctx.now)
                    .and_where(Expr::col("id").eq(id))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    /// Moves a patron's counters.
    pub async fn add_to_patron(
        &self,
        id: i64,
        open_loans: i64,
        fines_owed: i64,
    ) -> Result<(), StoreError> {
        self.later(
            &Query::update()
                .table("patrons")
                .value("open_loans", Expr::col("open_loans").add(open_loans))
                .value("fines_owed", Expr::col("fines_owed").add(fines_owed))
                .and_where(Expr::col("id").eq(id))
                .to_owned(),
        );
        Ok(())
    }

    /// The earliest due date among a patron's open loans (one index seek).
    pub async fn earliest_due(&self, patron_id: i64) -> Result<Option<i64>, StoreError> {
        earliest_due_in(self.txn().await?, patron_id).await
    }

    // ---- loans ----

    /// The open loan of an item.
    pub async fn open_loan_of_item(&self, item_id: i64) -> Result<Option<LoanRow>, StoreError> {
        Ok(one(self
            .all(&open_loan_of_item(item_id), row_to_loan)
            .await?))
    }

    /// A loan by id, locked.
    pub async fn loan(&self, id: i64) -> Result<Option<LoanRow>, StoreError> {
        Ok(one(self
            .all(
                &Query::select()
                    .columns(LOAN_COLUMNS)
                    .from("loans")
                    .and_where(Expr::col("id").eq(id))
                    .lock(LockType::Update)
                    .to_owned(),
                row_to_loan,
            )
            .await?))
    }

    /// Opens a loan and counts it on the patron.
    pub async fn insert_loan(&self, id: i64, l: &NewLoan) -> Result<LoanRow, StoreError> {
        self.later(
            &Query::insert()
                .into_table("loans")
                .columns([
                    "id",
                    "item_id",
                    "record_id",
                    "patron_id",
                    "open_item_id",
                    "open_patron_id",
                    "campus",
                    "checked_out_at",
                    "due_at",
                    "renewals",
                    "renewals_allowed",
                    "fine_per_day",
                    "max_fine",
                ])
                .values_panic([
                    id.into(),
                    l.item_id.into(),
                    l.record_id.into(),
                    l.patron_id.into(),
                    l.item_id.into(),
                    l.patron_id.into(),
                    l.campus.as_str().into(),
                    self.ctx.now.into(),
                    l.due_at.into(),
                    0i64.into(),
                    l.renewals_allowed.into(),
                    l.fine_per_day.into(),
                    l.max_fine.into(),
                ])
                .to_owned(),
        );
        self.add_to_patron(l.patron_id, 1, 0).await?;
        Ok(LoanRow {
            id,
            item_id: l.item_id,
            record_id: l.record_id,
            patron_id: Some(l.patron_id),
            campus: l.campus.clone(),
            checked_out_at: self.ctx.now,
            due_at: l.due_at,
            renewals: 0,
            renewals_allowed: l.renewals_allowed,
            fine_per_day: l.fine_per_day,
            max_fine: l.max_fine,
            recalled_at: None,
            returned_at: None,
            returned_campus: None,
        })
    }

    /// Closes a loan at `campus`, uncounting it from its patron; `anonymise`
    /// removes the patron from the returned loan.
    pub async fn close_loan(
        &self,
        loan: &LoanRow,
        campus: &str,
        anonymise: bool,
    ) -> Result<(), StoreError> {
        let mut update = Query::update();
        update
            .table("loans")
            .value("returned_at", self.ctx.now)
            .value("returned_campus", campus)
            .value("open_item_id", Option::<i64>::None)
            .value("open_patron_id", Option::<i64>::None)
            .and_where(Expr::col("id").eq(loan.id));
        if anonymise {
            update.value("patron_id", Option::<i64>::None);
        }
        self.later(&update);
        if let Some(p) = loan.patron_id {
            self.add_to_patron(p, -1, 0).await?;
        }
        Ok(())
    }

    /// Sets a loan's due date and renewal count, and marks it recalled.
    pub async fn set_loan_due(
        &self,
        loan_id: i64,
        due_at: i64,
        renewals: i64,
        recalled: bool,
    ) -> Result<(), StoreError> {
        let mut update = Query::update();
        update
            .table("loans")
            .value("due_at", due_at)
            .value("renewals", renewals)
            .and_where(Expr::col("id").eq(loan_id));
        if recalled {
            update.value("recalled_at", self.ctx.now);
        }
        self.txn().await?.execute(&update).await?;
        Ok(())
    }

    /// The open, not yet recalled loan of a record due last: the one a
    /// recall shortens.
    pub async fn loan_to_recall(&self, record_id: i64) -> Result<Option<LoanRow>, StoreError> {
        Ok(one(self
            .all(
                &Query::select()
                    .columns(LOAN_COLUMNS)
                    .from("loans")
                    .and_where(Expr::col("record_id").eq(record_id))
                    .and_where(Expr::col("open_item_id").is_not_null())
                    .and_where(Expr::col("recalled_at").is_null())
                    .order_by("due_at", Order::Desc)
                    .limit(1)
                    .to_owned(),
                row_to_loan,
            )
            .await?))
    }

    // ---- holds ----

    /// A hold by id, locked.
    pub async fn hold(&self, id: i64) -> Result<Option<HoldRow>, StoreError> {
        Ok(one(self
            .all(
                &Query::select()
                    .columns(HOLD_COLUMNS)
                    .from("holds")
                    .and_where(Expr::col("id").eq(id))
                    .lock(LockType::Update)
                    .to_owned(),
                row_to_hold,
            )
            .await?))
    }

    /// The first waiting hold this item can fill: the oldest waiting hold on
    /// its record that asks for any copy or for this one.
    pub async fn first_waiting_hold(
        &self,
        record_id: i64,
        item_id: i64,
    ) -> Result<Option<HoldRow>, StoreError> {
        Ok(one(self
            .all(&first_waiting_hold(record_id, item_id), row_to_hold)
            .await?))
    }

    /// The hold an item is trapped for (in transit to it or on its shelf).
    pub async fn hold_trapping(&self, item_id: i64) -> Result<Option<HoldRow>, StoreError> {
        Ok(one(self.all(&hold_trapping(item_id), row_to_hold).await?))
    }

    /// Whether someone waits for this record (any copy) or this item.
    pub async fn has_waiting_hold(&self, record_id: i64, item_id: i64) -> Result<bool, StoreError> {
        Ok(self.first_waiting_hold(record_id, item_id).await?.is_some())
    }

    /// Whether the patron already has an active hold on the record.
    pub async fn patron_holds_record(
        &self,
        patron_id: i64,
        record_id: i64,
    ) -> Result<bool, StoreError> {
        let n = self
            .count(
                Query::select()
                    .expr(Expr::col(Asterisk).count())
                    .from("holds")
                    .and_where(Expr::col("patron_id").eq(patron_id))
                    .and_where(Expr::col("record_id").eq(record_id))
                    .and_where(Expr::col("status").is_in(["waiting", "in_transit", "on_shelf"]))
                    .to_owned(),
            )
            .await?;
        Ok(n > 0)
    }

    /// Places a hold or request.
    pub async fn insert_hold(
        &self,
        kind: &str,
        record_id: i64,
        item_id: Option<i64>,
        patron_id: i64,
        pickup_campus: &str,
    ) -> Result<HoldRow, StoreError> {
        let now = self.ctx.now;
        let row = self
            .txn()
            .await?
            .query_one(
                &Query::insert()
                    .into_table("holds")
                    .columns(HOLD_COLUMNS.iter().skip(1).copied())
                    .values_panic([
                        kind.into(),
                        record_id.into(),
                        item_id.into(),
                        patron_id.into(),
                        pickup_campus.into(),
                        "waiting".into(),
                        now.into(),
                        Option::<i64>::None.into(),
                        now.into(),
                    ])
                    .returning(Query::returning().columns(HOLD_COLUMNS))
                    .to_owned(),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING gave no row".into()))?;
        row_to_hold(&row)
    }

    /// Moves a hold to `status`, with the item trapped for it and its shelf
    /// expiry. Only from `from`: returns false when another desk moved it
    /// first.
    pub async fn move_hold(
        &self,
        hold_id: i64,
        from: &[&str],
        status: &str,
        item_id: Option<i64>,
        shelf_expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let mut update = Query::update();
        update
            .table("holds")
            .value("status", status)
            .value("updated_at", self.ctx.now)
            .and_where(Expr::col("id").eq(hold_id))
            .and_where(Expr::col("status").is_in(from.iter().copied()));
        if let Some(i) = item_id {
            update.value("item_id", i);
        }
        if shelf_expires_at.is_some() {
            update.value("shelf_expires_at", shelf_expires_at);
        }
        Ok(self.txn().await?.execute(&update).await?.rows_affected() == 1)
    }

    // ---- transits ----

    /// The open transit of an item.
    pub async fn open_transit(&self, item_id: i64) -> Result<Option<TransitRow>, StoreError> {
        Ok(one(self
            .all(&open_transit(item_id), row_to_transit)
            .await?))
    }

    /// Sends an item from one campus to another.
    pub async fn insert_transit(
        &self,
        item_id: i64,
        from: &str,
        to: &str,
        reason: &str,
        hold_id: Option<i64>,
    ) -> Result<TransitRow, StoreError> {
        let row = self
            .txn()
            .await?
            .query_one(
                &Query::insert()
                    .into_table("transits")
                    .columns([
                        "item_id",
                        "open_item_id",
                        "from_campus",
                        "to_campus",
                        "reason",
                        "hold_id",
                        "sent_at",
                    ])
                    .values_panic([
                        item_id.into(),
                        item_id.into(),
                        from.into(),
                        to.into(),
                        reason.into(),
                        hold_id.into(),
                        self.ctx.now.into(),
                    ])
                    .returning(Query::returning().columns(TRANSIT_COLUMNS))
                    .to_owned(),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING gave no row".into()))?;
        row_to_transit(&row)
    }

    /// Marks a transit arrived (or ended elsewhere).
    pub async fn close_transit(&self, transit_id: i64) -> Result<(), StoreError> {
        self.txn()
            .await?
            .execute(
                &Query::update()
                    .table("transits")
                    .value("arrived_at", self.ctx.now)
                    .value("open_item_id", Option::<i64>::None)
                    .and_where(Expr::col("id").eq(transit_id))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    // ---- fines ----

    /// Charges a fine and counts it on the patron.
    pub async fn insert_fine(
        &self,
        patron_id: i64,
        item_id: Option<i64>,
        kind: &str,
        amount: i64,
        note: Option<&str>,
    ) -> Result<FineRow, StoreError> {
        let now = self.ctx.now;
        let row = self
            .txn()
            .await?
            .query_one(
                &Query::insert()
                    .into_table("fines")
                    .columns(FINE_COLUMNS.iter().skip(1).copied())
                    .values_panic([
                        patron_id.into(),
                        item_id.into(),
                        kind.into(),
                        amount.into(),
                        0i64.into(),
                        0i64.into(),
                        note.map(str::to_owned).into(),
                        now.into(),
                        now.into(),
                    ])
                    .returning(Query::returning().columns(FINE_COLUMNS))
                    .to_owned(),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING gave no row".into()))?;
        self.add_to_patron(patron_id, 0, amount).await?;
        row_to_fine(&row)
    }

    /// A fine by id, locked.
    pub async fn fine(&self, id: i64) -> Result<Option<FineRow>, StoreError> {
        Ok(one(self
            .all(
                &Query::select()
                    .columns(FINE_COLUMNS)
                    .from("fines")
                    .and_where(Expr::col("id").eq(id))
                    .lock(LockType::Update)
                    .to_owned(),
                row_to_fine,
            )
            .await?))
    }

    /// Records a payment or waiver (`kind`) against a fine and lowers what
    /// the patron owes.
    pub async fn settle_fine(
        &self,
        fine: &FineRow,
        kind: &str,
        amount: i64,
    ) -> Result<FineRow, StoreError> {
        let column = if kind == "waiver" { "waived" } else { "paid" };
        self.txn()
            .await?
            .execute(
                &Query::update()
                    .table("fines")
                    .value(column, Expr::col(column).add(amount))
                    .value("updated_at", self.ctx.now)
                    .and_where(Expr::col("id").eq(fine.id))
                    .to_owned(),
            )
            .await?;
        self.txn()
            .await?
            .execute(
                &Query::insert()
                    .into_table("fine_payments")
                    .columns(["fine_id", "kind", "amount", "actor", "at"])
                    .values_panic([
                        fine.id.into(),
                        kind.into(),
                        amount.into(),
                        self.ctx.actor.as_str().into(),
                        self.ctx.now.into(),
                    ])
                    .to_owned(),
            )
            .await?;
        self.add_to_patron(fine.patron_id, 0, -amount).await?;
        self.fine(fine.id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("fine {} vanished", fine.id)))
    }

    // ---- staff accounts ----

    /// Creates a staff account; `None` when the user name is taken.
    pub async fn insert_staff(
        &self,
        username: &str,
        display_name: &str,
        role: &str,
        password_hash: &str,
    ) -> Result<Option<StaffRow>, StoreError> {
        let taken = self
            .count(
                Query::select()
                    .expr(Expr::col(Asterisk).count())
                    .from("staff_users")
                    .and_where(Expr::col("username").eq(username))
                    .to_owned(),
            )
            .await?;
        if taken > 0 {
            return Ok(None);
        }
        let now = self.ctx.now;
        let row = self
            .txn()
            .await?
            .query_one(
                &Query::insert()
                    .into_table("staff_users")
                    .columns(
                        STAFF_COLUMNS
                            .iter()
                            .skip(1)
                            .copied()
                            .chain(["password_hash"]),
                    )
                    .values_panic([
                        username.into(),
                        display_name.into(),
                        role.into(),
                        true.into(),
                        now.into(),
                        now.into(),
                        1i64.into(),
                        password_hash.into(),
                    ])
                    .returning(Query::returning().columns(STAFF_COLUMNS))
                    .to_owned(),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING gave no row".into()))?;
        Ok(Some(row_to_staff(&row)?))
    }

    /// A staff account by user name, locked.
    pub async fn staff_by_username(&self, username: &str) -> Result<Option<StaffRow>, StoreError> {
        Ok(one(self
            .all(
                &Query::select()
                    .columns(STAFF_COLUMNS)
                    .from("staff_users")
                    .and_where(Expr::col("username").eq(username))
                    .lock(LockType::Update)
                    .to_owned(),
                row_to_staff,
            )
            .await?))
    }

    /// Changes a staff account's role, activity and (when given) password.
    pub async fn update_staff(
        &self,
        id: i64,
        display_name: &str,
        role: &str,
        active: bool,
        password_hash: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut update = Query::update();
        update
            .table("staff_users")
            .value("display_name", display_name)
            .value("role", role)
            .value("active", active)
            .value("updated_at", self.ctx.now)
            .value("version", Expr::col("version").add(1))
            .and_where(Expr::col("id").eq(id));
        if let Some(h) = password_hash {
            update.value("password_hash", h);
        }
        self.txn().await?.execute(&update).await?;
        if !active || password_hash.is_some() {
            self.txn()
                .await?
                .execute(
                    &Query::delete()
                        .from_table("sessions")
                        .and_where(Expr::col("kind").eq("staff"))
                        .and_where(Expr::col("subject_id").eq(id))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

/// Reads outside a write transaction: lists for pages and the API.
impl Store {
    async fn rows<T>(
        &self,
        select: &SelectStatement,
        map: fn(&QueryResult) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let rows = self.db.query_all(select).await?;
        rows.iter().map(map).collect()
    }

    /// A patron by id.
    pub async fn patron(&self, id: i64) -> Result<Option<PatronRow>, StoreError> {
        Ok(one(self
            .rows(
                &Query::select()
                    .columns(PATRON_COLUMNS)
                    .from("patrons")
                    .and_where(Expr::col("id").eq(id))
                    .to_owned(),
                row_to_patron,
            )
            .await?))
    }

    /// A patron by card barcode.
    pub async fn patron_by_barcode(&self, barcode: &str) -> Result<Option<PatronRow>, StoreError> {
        Ok(one(self
            .rows(
                &Query::select()
                    .columns(PATRON_COLUMNS)
                    .from("patrons")
                    .and_where(Expr::col("barcode").eq(barcode))
                    .to_owned(),
                row_to_patron,
            )
            .await?))
    }

    /// Patrons whose barcode, name or reading starts with `prefix`, by reading.
    pub async fn find_patrons(
        &self,
        prefix: &str,
        limit: u64,
    ) -> Result<Vec<PatronRow>, StoreError> {
        let like = format!("{}%", prefix.replace(['%', '_'], ""));
        self.rows(
            &Query::select()
                .columns(PATRON_COLUMNS)
                .from("patrons")
                .cond_where(
                    Expr::col("barcode")
                        .like(like.as_str())
                        .or(Expr::col("name").like(like.as_str()))
                        .or(Expr::col("name_reading").like(like.as_str())),
                )
                .order_by("name_reading", Order::Asc)
                .limit(limit)
                .to_owned(),
            row_to_patron,
        )
        .await
    }

    /// The earliest due date among a patron's open loans (one index seek).
    pub async fn earliest_due(&self, patron_id: i64) -> Result<Option<i64>, StoreError> {
        earliest_due_in(&self.db, patron_id).await
    }

    /// A patron's password hash (for login).
    pub async fn patron_password_hash(
        &self,
        barcode: &str,
    ) -> Result<Option<(i64, Option<String>)>, StoreError> {
        let row = self
            .db
            .query_one(
                &Query::select()
                    .columns(["id", "password_hash"])
                    .from("patrons")
                    .and_where(Expr::col("barcode").eq(barcode))
                    .to_owned(),
            )
            .await?;
        row.map(|r| Ok((col(&r, 0)?, col(&r, 1)?))).transpose()
    }

    /// A patron's open loans, soonest due first, a page at a time.
    pub async fn open_loans(
        &self,
        patron_id: i64,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<LoanRow>, StoreError> {
        self.rows(
            &Query::select()
                .columns(LOAN_COLUMNS)
                .from("loans")
                .and_where(Expr::col("open_patron_id").eq(patron_id))
                .order_by("due_at", Order::Asc)
                .order_by("id", Order::Asc)
                .offset(offset)
                .limit(limit)
                .to_owned(),
            row_to_loan,
        )
        .await
    }

    /// A patron's returned loans kept by their opt-in, newest first.
    pub async fn loan_history(
        &self,
        patron_id: i64,
        limit: u64,
    ) -> Result<Vec<LoanRow>, StoreError> {
        self.rows(
            &Query::select()
                .columns(LOAN_COLUMNS)
                .from("loans")
                .and_where(Expr::col("patron_id").eq(patron_id))
                .and_where(Expr::col("returned_at").is_not_null())
                .order_by("id", Order::Desc)
                .limit(limit)
                .to_owned(),
            row_to_loan,
        )
        .await
    }

    /// A loan by id.
    pub async fn loan(&self, id: i64) -> Result<Option<LoanRow>, StoreError> {
        Ok(one(self
            .rows(
                &Query::select()
                    .columns(LOAN_COLUMNS)
                    .from("loans")
                    .and_where(Expr::col("id").eq(id))
                    .to_owned(),
                row_to_loan,
            )
            .await?))
    }

    /// Every loan of an item, newest first (staff view; anonymised loans show no patron).
    pub async fn loans_of_item(
        &self,
        item_id: i64,
        limit: u64,
    ) -> Result<Vec<LoanRow>, StoreError> {
        self.rows(
            &Query::select()
                .columns(LOAN_COLUMNS)
                .from("loans")
                .and_where(Expr::col("item_id").eq(item_id))
                .order_by("id", Order::Desc)
                .limit(limit)
                .to_owned(),
            row_to_loan,
        )
        .await
    }

    /// A patron's holds and requests that are still active.
    pub async fn holds_of_patron(&self, patron_id: i64) -> Result<Vec<HoldRow>, StoreError> {
        self.rows(
            &Query::select()
                .columns(HOLD_COLUMNS)
                .from("holds")
                .and_where(Expr::col("patron_id").eq(patron_id))
                .and_where(Expr::col("status").is_in(["waiting", "in_transit", "on_shelf"]))
                .order_by("id", Order::Asc)
                .to_owned(),
            row_to_hold,
        )
        .await
    }

    /// A hold by id.
    pub async fn hold(&self, id: i64) -> Result<Option<HoldRow>, StoreError> {
        Ok(one(self
            .rows(
                &Query::select()
                    .columns(HOLD_COLUMNS)
                    .from("holds")
                    .and_where(Expr::col("id").eq(id))
                    .to_owned(),
                row_to_hold,
            )
            .await?))
    }

    /// Transits not yet arrived, to or from a campus (any when `None`).
    pub async fn open_transits(&self, campus: Option<&str>) -> Result<Vec<TransitRow>, StoreError> {
        let mut select = Query::select();
        select
            .columns(TRANSIT_COLUMNS)
            .from("transits")
            .and_where(Expr::col("open_item_id").is_not_null());
        if let Some(c) = campus {
            select.cond_where(
                Expr::col("to_campus")
                    .eq(c)
                    .or(Expr::col("from_campus").eq(c)),
            );
        }
        self.rows(
            &select.order_by("id", Order::Asc).to_owned(),
            row_to_transit,
        )
        .await
    }

    /// A patron's fines, newest first.
    pub async fn fines_of_patron(&self, patron_id: i64) -> Result<Vec<FineRow>, StoreError> {
        self.rows(
            &Query::select()
                .columns(FINE_COLUMNS)
                .from("fines")
                .and_where(Expr::col("patron_id").eq(patron_id))
                .order_by("id", Order::Desc)
                .to_owned(),
            row_to_fine,
        )
        .await
    }

    /// A fine by id.
    pub async fn fine(&self, id: i64) -> Result<Option<FineRow>, StoreError> {
        Ok(one(self
            .rows(
                &Query::select()
                    .columns(FINE_COLUMNS)
                    .from("fines")
                    .and_where(Expr::col("id").eq(id))
                    .to_owned(),
                row_to_fine,
            )
            .await?))
    }

    /// Every staff account, by user name.
    pub async fn staff_users(&self) -> Result<Vec<StaffRow>, StoreError> {
        self.rows(
            &Query::select()
                .columns(STAFF_COLUMNS)
                .from("staff_users")
                .order_by("username", Order::Asc)
                .to_owned(),
            row_to_staff,
        )
        .await
    }

    /// A staff account with its password hash, for login.
    pub async fn staff_password_hash(
        &self,
        username: &str,
    ) -> Result<Option<(StaffRow, String)>, StoreError> {
        let row = self
            .db
            .query_one(
                &Query::select()
                    .columns(STAFF_COLUMNS)
                    .column("password_hash")
                    .from("staff_users")
                    .and_where(Expr::col("username").eq(username))
                    .to_owned(),
            )
            .await?;
        row.map(|r| Ok((row_to_staff(&r)?, col(&r, 8)?)))
            .transpose()
    }

    /// Stores a session under the hash of its secret.
    pub async fn insert_session(
        &self,
        token_hash: &str,
        kind: &str,
        subject_id: i64,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let txn = self.begin_write().await?;
        txn.execute(
            &Query::delete()
                .from_table("sessions")
                .and_where(Expr::col("expires_at").lt(now))
                .to_owned(),
        )
        .await?;
        txn.execute(
            &Query::insert()
                .into_table("sessions")
                .columns([
                    "token_hash",
                    "kind",
                    "subject_id",
                    "csrf",
                    "created_at",
                    "expires_at",
                ])
                .values_panic([
                    token_hash.into(),
                    kind.into(),
                    subject_id.into(),
                    csrf.into(),
                    now.into(),
                    expires_at.into(),
                ])
                .to_owned(),
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// A session that has not expired, with its staff account for a staff
    /// session (one query: every request asks for both).
    pub async fn session(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(SessionRow, Option<StaffRow>)>, StoreError> {
        let row = self
            .db
            .query_one(
                &Query::select()
                    .columns(STAFF_COLUMNS.map(|c| ("u", c)))
                    .columns(["kind", "subject_id", "csrf", "expires_at"].map(|c| ("s", c)))
                    .from_as("sessions", "s")
                    .join_as(
                        JoinType::LeftJoin,
                        "staff_users",
                        "u",
                        Expr::col(("s", "kind"))
                            .eq("staff")
                            .and(Expr::col(("u", "id")).equals(("s", "subject_id"))),
                    )
                    .and_where(Expr::col(("s", "token_hash")).eq(token_hash))
                    .and_where(Expr::col(("s", "expires_at")).gt(now))
                    .to_owned(),
            )
            .await?;
        let Some(r) = row else { return Ok(None) };
        let n = STAFF_COLUMNS.len();
        let session = SessionRow {
            kind: col(&r, n)?,
            subject_id: col(&r, n + 1)?,
            csrf: col(&r, n + 2)?,
            expires_at: col(&r, n + 3)?,
        };
        let staff = match col::<Option<i64>, _>(&r, 0)? {
            Some(_) => Some(row_to_staff(&r)?),
            None => None,
        };
        Ok(Some((session, staff)))
    }

    /// Ends a session.
    pub async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.db
            .execute(
                &Query::delete()
                    .from_table("sessions")
                    .and_where(Expr::col("token_hash").eq(token_hash))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    /// Audit entries for one entity (or all when `entity` is `None`), newest first.
    pub async fn audit_entries(
        &self,
        entity: Option<(&str, &str)>,
        limit: u64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let mut select = Query::select();
        select
            .columns([
                "id",
                "at",
                "actor",
                "action",
                "entity",
                "entity_id",
                "before",
                "after",
            ])
            .from("audit_log");
        if let Some((e, id)) = entity {
            select
                .and_where(Expr::col("entity").eq(e))
                .and_where(Expr::col("entity_id").eq(id));
        }
        select.order_by("id", Order::Desc).limit(limit);
        self.rows(&select, |r| {
            let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
            Ok(AuditRow {
                id: col(r, 0)?,
                at: col(r, 1)?,
                actor: col(r, 2)?,
                action: col(r, 3)?,
                entity: col(r, 4)?,
                entity_id: col(r, 5)?,
                before: parse(col(r, 6)?),
                after: parse(col(r, 7)?),
            })
        })
        .await
    }

    /// Checks that item status, open loans, the patrons' counters, transits
    /// and holds agree; returns each disagreement in words.
    pub async fn circulation_problems(&self) -> Result<Vec<Problem>, StoreError> {
        let mut problems = Vec::new();
        for inv in INVARIANTS {
            let rows = self
                .db
                .query_all_raw(Statement::from_string(self.backend(), inv.check))
                .await?;
            for r in rows {
                let barcode: String = col(&r, 0)?;
                problems.push(format!("{}: {barcode}", inv.name));
            }
        }
        Ok(problems)
    }

    /// Repairs every disagreement that has one safe answer, in one
    /// transaction with an audit entry per kind: counters are recounted from
    /// the loans and fines; an item's status follows its open loan, transit
    /// or hold (with nothing to follow, it is back on the shelf). Returns how
    /// many rows each kind changed.
    pub async fn repair_circulation(
        &self,
        ctx: &crate::WriteCtx,
    ) -> Result<Vec<(&'static str, u64)>, StoreError> {
        let txn = self.begin_write().await?;
        let mut fixed = Vec::new();
        let mut audit = Vec::new();
        for inv in INVARIANTS {
            let mut n = 0;
            for sql in inv.repair {
                let sql = sql.replace("{now}", &ctx.now.to_string());
                let done = txn
                    .execute_raw(Statement::from_string(self.backend(), sql))
                    .await?;
                // The outbox rows come first and count the same rows.
                n = done.rows_affected();
            }
            if n > 0 {
                audit.push(crate::write::AuditEntry::new(
                    "check.repair",
                    "invariant",
                    inv.name,
                    None::<&()>,
                    Some(&n),
                ));
            }
            fixed.push((inv.name, n));
        }
        crate::write::record(&txn, ctx, audit, &()).await?;
        txn.commit().await?;
        Ok(fixed)
    }
}

/// One invariant of circulation: the SQL that lists what breaks it (one
/// barcode per row) and the statements that repair it.
struct Invariant {
    name: &'static str,
    check: &'static str,
    repair: &'static [&'static str],
}

const INVARIANTS: [Invariant; 7] = [
    Invariant {
        name: "item on loan without an open loan",
        check: "SELECT barcode FROM items WHERE status = 'on_loan' AND NOT EXISTS \
                (SELECT 1 FROM loans l WHERE l.open_item_id = items.id)",
        repair: &[
            "INSERT INTO catalogue_outbox (record_id, op, created_at) SELECT record_id, 'status', {now} \
             FROM items WHERE status = 'on_loan' AND NOT EXISTS \
             (SELECT 1 FROM loans l WHERE l.open_item_id = items.id)",
            "UPDATE items SET status = 'available', version = version + 1, updated_at = {now} \
             WHERE status = 'on_loan' AND NOT EXISTS \
             (SELECT 1 FROM loans l WHERE l.open_item_id = items.id)",
        ],
    },
    Invariant {
        name: "open loan on an item not marked on loan",
        check: "SELECT barcode FROM items WHERE status <> 'on_loan' AND EXISTS \
                (SELECT 1 FROM loans l WHERE l.open_item_id = items.id)",
        repair: &[
            "INSERT INTO catalogue_outbox (record_id, op, created_at) SELECT record_id, 'status', {now} \
             FROM items WHERE status <> 'on_loan' AND EXISTS \
             (SELECT 1 FROM loans l WHERE l.open_item_id = items.id)",
            "UPDATE items SET status = 'on_loan', version = version + 1, updated_at = {now} \
             WHERE status <> 'on_loan' AND EXISTS \
             (SELECT 1 FROM loans l WHERE l.open_item_id = items.id)",
        ],
    },
    Invariant {
        name: "patron's open-loan counter differs from the open loans",
        check: "SELECT barcode FROM patrons WHERE open_loans <> \
                (SELECT COUNT(*) FROM loans l WHERE l.open_patron_id = patrons.id)",
        repair: &["UPDATE patrons SET open_loans = \
                   (SELECT COUNT(*) FROM loans l WHERE l.open_patron_id = patrons.id) \
                   WHERE open_loans <> (SELECT COUNT(*) FROM loans l WHERE l.open_patron_id = patrons.id)"],
    },
    Invariant {
        name: "patron's fines counter differs from the fines",
        check: "SELECT barcode FROM patrons WHERE fines_owed <> \
                COALESCE((SELECT SUM(f.amount - f.paid - f.waived) FROM fines f \
                WHERE f.patron_id = patrons.id), 0)",
        repair: &[
            "UPDATE patrons SET fines_owed = COALESCE((SELECT SUM(f.amount - f.paid - f.waived) \
                   FROM fines f WHERE f.patron_id = patrons.id), 0) \
                   WHERE fines_owed <> COALESCE((SELECT SUM(f.amount - f.paid - f.waived) \
                   FROM fines f WHERE f.patron_id = patrons.id), 0)",
        ],
    },
    Invariant {
        name: "item in transit without an open transit",
        check: "SELECT barcode FROM items WHERE status = 'in_transit' AND NOT EXISTS \
                (SELECT 1 FROM transits t WHERE t.open_item_id = items.id)",
        repair: &[
            "INSERT INTO catalogue_outbox (record_id, op, created_at) SELECT record_id, 'status', {now} \
             FROM items WHERE status = 'in_transit' AND NOT EXISTS \
             (SELECT 1 FROM transits t WHERE t.open_item_id = items.id)",
            "UPDATE items SET status = 'available', version = version + 1, updated_at = {now} \
             WHERE status = 'in_transit' AND NOT EXISTS \
             (SELECT 1 FROM transits t WHERE t.open_item_id = items.id)",
        ],
    },
    Invariant {
        name: "item on the hold shelf without a hold",
        check: "SELECT barcode FROM items WHERE status = 'on_hold_shelf' AND NOT EXISTS \
                (SELECT 1 FROM holds h WHERE h.item_id = items.id AND h.status = 'on_shelf')",
        repair: &[
            "INSERT INTO catalogue_outbox (record_id, op, created_at) SELECT record_id, 'status', {now} \
             FROM items WHERE status = 'on_hold_shelf' AND NOT EXISTS \
             (SELECT 1 FROM holds h WHERE h.item_id = items.id AND h.status = 'on_shelf')",
            "UPDATE items SET status = 'available', version = version + 1, updated_at = {now} \
             WHERE status = 'on_hold_shelf' AND NOT EXISTS \
             (SELECT 1 FROM holds h WHERE h.item_id = items.id AND h.status = 'on_shelf')",
        ],
    },
    Invariant {
        name: "fund's encumbrance differs from its order lines'",
        check: "SELECT code FROM funds WHERE encumbered <> \
                (SELECT COALESCE(SUM(o.encumbered), 0) FROM order_lines o WHERE o.fund_id = funds.id)",
        // The order lines are the promises; the fund's total follows them,
        // with a ledger row saying so.
        repair: &[
            "INSERT INTO fund_ledger (fund_id, kind, amount, actor, at) SELECT id, 'repair', \
             (SELECT COALESCE(SUM(o.encumbered), 0) FROM order_lines o WHERE o.fund_id = funds.id) - encumbered, \
             'system', {now} FROM funds WHERE encumbered <> \
             (SELECT COALESCE(SUM(o.encumbered), 0) FROM order_lines o WHERE o.fund_id = funds.id)",
            "UPDATE funds SET encumbered = \
             (SELECT COALESCE(SUM(o.encumbered), 0) FROM order_lines o WHERE o.fund_id = funds.id), \
             updated_at = {now} WHERE encumbered <> \
             (SELECT COALESCE(SUM(o.encumbered), 0) FROM order_lines o WHERE o.fund_id = funds.id)",
        ],
    },
];

/// References that the foreign keys guard: (table, column, the table whose
/// `id` it names). A row breaking one can only come from outside Shoko (an
/// edit with foreign keys off, a damaged restore).
const REFERENCES: [(&str, &str, &str); 17] = [
    ("items", "record_id", "records"),
    ("loans", "item_id", "items"),
    ("loans", "patron_id", "patrons"),
    ("holds", "record_id", "records"),
    ("holds", "item_id", "items"),
    ("holds", "patron_id", "patrons"),
    ("transits", "item_id", "items"),
    ("fines", "patron_id", "patrons"),
    ("fine_payments", "fine_id", "fines"),
    ("notices", "patron_id", "patrons"),
    ("loans", "open_item_id", "items"),
    ("order_lines", "vendor_id", "vendors"),
    ("order_lines", "record_id", "records"),
    ("order_lines", "fund_id", "funds"),
    ("invoice_lines", "invoice_id", "invoices"),
    ("invoice_lines", "order_line_id", "order_lines"),
    ("fund_ledger", "fund_id", "funds"),
];

impl Store {
    /// Rows that name a row that does not exist (orphans), in words; at most
    /// 100 of each kind. They have no safe repair: `shoko check` reports them.
    pub async fn orphan_problems(&self) -> Result<Vec<Problem>, StoreError> {
        let mut problems = Vec::new();
        for (table, column, parent) in REFERENCES {
            let sql = format!(
                "SELECT c.id, c.{column} FROM {table} c WHERE c.{column} IS NOT NULL \
                 AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = c.{column}) \
                 ORDER BY c.id LIMIT 100"
            );
            let rows = self
                .db
                .query_all_raw(Statement::from_string(self.backend(), sql))
                .await?;
            for r in rows {
                let id: i64 = col(&r, 0)?;
                let missing: i64 = col(&r, 1)?;
                problems.push(format!(
                    "orphan: {table} {id} names {parent} {missing} ({column}), which does not exist"
                ));
            }
        }
        Ok(problems)
    }
}

/// Where copies are now, for a record page: due dates of open loans,
/// destinations of open transits, last days on the hold shelf.
#[derive(Debug, Clone, Default)]
pub struct CopyDetails {
    /// Item id → due (Unix ms).
    pub due: std::collections::HashMap<i64, i64>,
    /// Item id → campus it travels to.
    pub transit_to: std::collections::HashMap<i64, String>,
    /// Item id → last day on the hold shelf (Unix ms).
    pub shelf_until: std::collections::HashMap<i64, i64>,
}

impl Store {
    /// The details of some copies' states, in three index reads.
    pub async fn copy_details(&self, item_ids: &[i64]) -> Result<CopyDetails, StoreError> {
        let mut d = CopyDetails::default();
        if item_ids.is_empty() {
            return Ok(d);
        }
        let list = item_ids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let query = |sql: String| async move {
            self.db
                .query_all_raw(Statement::from_string(self.backend(), sql))
                .await
        };
        for r in query(format!(
            "SELECT open_item_id, due_at FROM loans WHERE open_item_id IN ({list})"
        ))
        .await?
        {
            d.due.insert(col(&r, 0)?, col(&r, 1)?);
        }
        for r in query(format!(
            "SELECT item_id, to_campus FROM transits WHERE arrived_at IS NULL AND item_id IN ({list})"
        ))
        .await?
        {
            d.transit_to.insert(col(&r, 0)?, col(&r, 1)?);
        }
        for r in query(format!(
            "SELECT item_id, shelf_expires_at FROM holds WHERE status = 'on_shelf' AND item_id IN ({list})"
        ))
        .await?
        {
            let until: Option<i64> = col(&r, 1)?;
            if let Some(u) = until {
                d.shelf_until.insert(col(&r, 0)?, u);
            }
        }
        Ok(d)
    }
}
