//! Acquisitions storage: vendors, funds per fiscal year with their ledger,
//! order lines, invoices and their lines. Writes go through a `WriteTx` (one
//! transaction with its audit entries and idempotency key); a fund is locked
//! (`FOR UPDATE` on PostgreSQL; SQLite serialises writers) before its
//! balance is read, so two payments can never both spend the same money.

use sea_orm::sea_query::{Expr, ExprTrait, LockType, Order, Query, SimpleExpr};
use sea_orm::{ConnectionTrait, QueryResult};
use serde::{Deserialize, Serialize};
use shoko_domain::ItemSpec;
use shoko_domain::acquisitions::{FundBalance, Money};

use crate::catalogue::{OUTBOX_RECORD, StoredItem, col, item_in, item_values, write_outbox};
use crate::{Store, StoreError, WriteTx};

/// A vendor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VendorRow {
    /// Shoko's id.
    pub id: i64,
    /// The library's code for it.
    pub code: String,
    /// Name.
    pub name: String,
    /// Contact person, address, telephone.
    pub contact: Option<String>,
    /// E-mail for orders and claims.
    pub email: Option<String>,
    /// ISO 4217 currency its prices are in.
    pub currency: String,
    /// Default discount, basis points (1000 = 10 %).
    pub discount_bp: i64,
}

const VENDOR_COLUMNS: [&str; 7] = [
    "id",
    "code",
    "name",
    "contact",
    "email",
    "currency",
    "discount_bp",
];

fn row_to_vendor(r: &QueryResult) -> Result<VendorRow, StoreError> {
    Ok(VendorRow {
        id: col(r, 0)?,
        code: col(r, 1)?,
        name: col(r, 2)?,
        contact: col(r, 3)?,
        email: col(r, 4)?,
        currency: col(r, 5)?,
        discount_bp: col(r, 6)?,
    })
}

/// A fund in one fiscal year, with its balance in yen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FundRow {
    /// Shoko's id.
    pub id: i64,
    /// The year the fiscal year starts in.
    pub fiscal_year: i64,
    /// Code, the same from year to year.
    pub code: String,
    /// Name.
    pub name: String,
    /// The fund it is part of.
    pub parent_id: Option<i64>,
    /// Whether it may go below zero.
    pub allow_overspend: bool,
    /// Closed by a year end.
    pub closed: bool,
    /// Allocated, yen.
    pub allocated: i64,
    /// Promised to open orders, yen.
    pub encumbered: i64,
    /// Paid, yen.
    pub expended: i64,
    /// allocated − encumbered − expended.
    pub available: i64,
}

impl FundRow {
    /// The balance as arithmetic sees it.
    pub fn balance(&self) -> FundBalance {
        FundBalance {
            allocated: Money(self.allocated),
            encumbered: Money(self.encumbered),
            expended: Money(self.expended),
        }
    }
}

const FUND_COLUMNS: [&str; 10] = [
    "id",
    "fiscal_year",
    "code",
    "name",
    "parent_id",
    "allow_overspend",
    "closed",
    "allocated",
    "encumbered",
    "expended",
];

fn row_to_fund(r: &QueryResult) -> Result<FundRow, StoreError> {
    let allocated: i64 = col(r, 7)?;
    let encumbered: i64 = col(r, 8)?;
    let expended: i64 = col(r, 9)?;
    Ok(FundRow {
        id: col(r, 0)?,
        fiscal_year: col(r, 1)?,
        code: col(r, 2)?,
        name: col(r, 3)?,
        parent_id: col(r, 4)?,
        allow_overspend: col(r, 5)?,
        closed: col(r, 6)?,
        allocated,
        encumbered,
        expended,
        available: allocated - encumbered - expended,
    })
}

/// A line of an order: copies of one record from one vendor on one fund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderLineRow {
    /// Shoko's id.
    pub id: i64,
    /// The vendor.
    pub vendor_id: i64,
    /// The bibliographic record ordered.
    pub record_id: i64,
    /// The fund paying.
    pub fund_id: i64,
    /// Copies ordered.
    pub quantity: i64,
    /// Copies received.
    pub received: i64,
    /// Copies invoiced.
    pub invoiced: i64,
    /// Price of one copy in the vendor's currency, minor units.
    pub unit_price: i64,
    /// The vendor's currency.
    pub currency: String,
    /// Yen still promised on the fund.
    pub encumbered: i64,
    /// Campus the copies go to.
    pub campus: String,
    /// Location there.
    pub location: Option<String>,
    /// Item type of the copies.
    pub item_type: String,
    /// `draft`, `sent`, `partly_received`, `received`, `closed`, `cancelled`.
    pub status: String,
    /// Note.
    pub note: Option<String>,
    /// When it was made, Unix ms.
    pub created_at: i64,
}

const ORDER_COLUMNS: [&str; 16] = [
    "id",
    "vendor_id",
    "record_id",
    "fund_id",
    "quantity",
    "received",
    "invoiced",
    "unit_price",
    "currency",
    "encumbered",
    "campus",
    "location",
    "item_type",
    "status",
    "note",
    "created_at",
];

fn row_to_order(r: &QueryResult) -> Result<OrderLineRow, StoreError> {
    Ok(OrderLineRow {
        id: col(r, 0)?,
        vendor_id: col(r, 1)?,
        record_id: col(r, 2)?,
        fund_id: col(r, 3)?,
        quantity: col(r, 4)?,
        received: col(r, 5)?,
        invoiced: col(r, 6)?,
        unit_price: col(r, 7)?,
        currency: col(r, 8)?,
        encumbered: col(r, 9)?,
        campus: col(r, 10)?,
        location: col(r, 11)?,
        item_type: col(r, 12)?,
        status: col(r, 13)?,
        note: col(r, 14)?,
        created_at: col(r, 15)?,
    })
}

/// An invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InvoiceRow {
    /// Shoko's id.
    pub id: i64,
    /// The vendor.
    pub vendor_id: i64,
    /// The vendor's invoice number.
    pub number: String,
    /// Its currency.
    pub currency: String,
    /// Yen per major unit × 10⁶, fixed on the invoice.
    pub rate_micros: i64,
    /// Shipping, invoice currency.
    pub shipping: i64,
    /// Lines after discounts, invoice currency.
    pub net: i64,
    /// Consumption tax, invoice currency.
    pub tax: i64,
    /// Net + tax + shipping, invoice currency.
    pub total: i64,
    /// The total in yen: what the funds pay.
    pub total_yen: i64,
    /// `open`, `approved` or `paid`.
    pub status: String,
    /// When it was paid, Unix ms.
    pub paid_at: Option<i64>,
}

const INVOICE_COLUMNS: [&str; 12] = [
    "id",
    "vendor_id",
    "number",
    "currency",
    "rate_micros",
    "shipping",
    "net",
    "tax",
    "total",
    "total_yen",
    "status",
    "paid_at",
];

fn row_to_invoice(r: &QueryResult) -> Result<InvoiceRow, StoreError> {
    Ok(InvoiceRow {
        id: col(r, 0)?,
        vendor_id: col(r, 1)?,
        number: col(r, 2)?,
        currency: col(r, 3)?,
        rate_micros: col(r, 4)?,
        shipping: col(r, 5)?,
        net: col(r, 6)?,
        tax: col(r, 7)?,
        total: col(r, 8)?,
        total_yen: col(r, 9)?,
        status: col(r, 10)?,
        paid_at: col(r, 11)?,
    })
}

/// A line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InvoiceLineRow {
    /// Shoko's id.
    pub id: i64,
    /// The invoice.
    pub invoice_id: i64,
    /// The order line it bills.
    pub order_line_id: i64,
    /// Copies billed.
    pub quantity: i64,
    /// Price × quantity, invoice currency.
    pub gross: i64,
    /// Discount, invoice currency.
    pub discount: i64,
    /// Tax rate, basis points.
    pub tax_bp: i64,
    /// What it costs its fund, yen (tax and shipping share included).
    pub amount_yen: i64,
}

const INVOICE_LINE_COLUMNS: [&str; 8] = [
    "id",
    "invoice_id",
    "order_line_id",
    "quantity",
    "gross",
    "discount",
    "tax_bp",
    "amount_yen",
];

fn row_to_invoice_line(r: &QueryResult) -> Result<InvoiceLineRow, StoreError> {
    Ok(InvoiceLineRow {
        id: col(r, 0)?,
        invoice_id: col(r, 1)?,
        order_line_id: col(r, 2)?,
        quantity: col(r, 3)?,
        gross: col(r, 4)?,
        discount: col(r, 5)?,
        tax_bp: col(r, 6)?,
        amount_yen: col(r, 7)?,
    })
}

/// A new vendor.
#[derive(Debug, Clone)]
pub struct NewVendor {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Contact.
    pub contact: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Currency.
    pub currency: String,
    /// Discount, basis points.
    pub discount_bp: i64,
}

/// A new order line.
#[derive(Debug, Clone)]
pub struct NewOrderLine {
    /// Vendor.
    pub vendor_id: i64,
    /// Record.
    pub record_id: i64,
    /// Fund.
    pub fund_id: i64,
    /// Copies.
    pub quantity: i64,
    /// Price of one, vendor currency.
    pub unit_price: i64,
    /// The vendor's currency.
    pub currency: String,
    /// Campus.
    pub campus: String,
    /// Location.
    pub location: Option<String>,
    /// Item type.
    pub item_type: String,
    /// Note.
    pub note: Option<String>,
}

/// A new invoice line, its yen amount already worked out.
#[derive(Debug, Clone)]
pub struct NewInvoiceLine {
    /// The order line.
    pub order_line_id: i64,
    /// Copies.
    pub quantity: i64,
    /// Gross.
    pub gross: i64,
    /// Discount.
    pub discount: i64,
    /// Tax rate.
    pub tax_bp: i64,
    /// Its cost in yen.
    pub amount_yen: i64,
}

impl WriteTx {
    async fn one_locked<T>(
        &self,
        table: &str,
        columns: &[&'static str],
        condition: SimpleExpr,
        map: fn(&QueryResult) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut rows = self
            .all(
                &Query::select()
                    .columns(columns.iter().copied())
                    .from(table.to_owned())
                    .and_where(condition)
                    .lock(LockType::Update)
                    .to_owned(),
                map,
            )
            .await?;
        Ok(rows.pop())
    }

    async fn inserted_id(
        &self,
        insert: &mut sea_orm::sea_query::InsertStatement,
    ) -> Result<i64, StoreError> {
        insert.returning_col("id");
        let row = self
            .txn()
            .await?
            .query_one(&*insert)
            .await?
            .ok_or_else(|| StoreError::Corrupt("an insert returned no id".into()))?;
        col(&row, 0)
    }

    /// Adds a vendor; `None` when the code is taken.
    pub async fn insert_vendor(&self, v: &NewVendor) -> Result<Option<VendorRow>, StoreError> {
        if self
            .one_locked(
                "vendors",
                &VENDOR_COLUMNS,
                Expr::col("code").eq(v.code.as_str()),
                row_to_vendor,
            )
            .await?
            .is_some()
        {
            return Ok(None);
        }
        let id = self
            .inserted_id(
                Query::insert()
                    .into_table("vendors")
                    .columns(VENDOR_COLUMNS.iter().skip(1).copied().chain(["created_at"]))
                    .values_panic([
                        v.code.as_str().into(),
                        v.name.as_str().into(),
                        v.contact.clone().into(),
                        v.email.clone().into(),
                        v.currency.as_str().into(),
                        v.discount_bp.into(),
                        self.ctx.now.into(),
                    ]),
            )
            .await?;
        self.vendor(id).await
    }

    /// A vendor.
    pub async fn vendor(&self, id: i64) -> Result<Option<VendorRow>, StoreError> {
        self.one_locked(
            "vendors",
            &VENDOR_COLUMNS,
            Expr::col("id").eq(id),
            row_to_vendor,
        )
        .await
    }

    /// Adds a fund for a year; `None` when the year has one with that code.
    pub async fn insert_fund(
        &self,
        fiscal_year: i64,
        code: &str,
        name: &str,
        parent_id: Option<i64>,
        allow_overspend: bool,
    ) -> Result<Option<FundRow>, StoreError> {
        if self.fund_by_code(fiscal_year, code).await?.is_some() {
            return Ok(None);
        }
        let id = self
            .inserted_id(
                Query::insert()
                    .into_table("funds")
                    .columns(
                        FUND_COLUMNS
                            .iter()
                            .skip(1)
                            .copied()
                            .chain(["created_at", "updated_at"]),
                    )
                    .values_panic([
                        fiscal_year.into(),
                        code.into(),
                        name.into(),
                        parent_id.into(),
                        allow_overspend.into(),
                        false.into(),
                        0i64.into(),
                        0i64.into(),
                        0i64.into(),
                        self.ctx.now.into(),
                        self.ctx.now.into(),
                    ]),
            )
            .await?;
        self.fund(id).await
    }

    /// A fund, locked for this transaction.
    pub async fn fund(&self, id: i64) -> Result<Option<FundRow>, StoreError> {
        self.one_locked("funds", &FUND_COLUMNS, Expr::col("id").eq(id), row_to_fund)
            .await
    }

    /// A fund by year and code, locked.
    pub async fn fund_by_code(
        &self,
        fiscal_year: i64,
        code: &str,
    ) -> Result<Option<FundRow>, StoreError> {
        self.one_locked(
            "funds",
            &FUND_COLUMNS,
            Expr::col("fiscal_year")
                .eq(fiscal_year)
                .and(Expr::col("code").eq(code)),
            row_to_fund,
        )
        .await
    }

    /// Every fund of a year, locked.
    pub async fn funds_of_year(&self, fiscal_year: i64) -> Result<Vec<FundRow>, StoreError> {
        self.all(
            &Query::select()
                .columns(FUND_COLUMNS)
                .from("funds")
                .and_where(Expr::col("fiscal_year").eq(fiscal_year))
                .order_by("id", Order::Asc)
                .lock(LockType::Update)
                .to_owned(),
            row_to_fund,
        )
        .await
    }

    /// Sets a fund's balance and writes the ledger entry that moved it.
    pub async fn set_fund_balance(
        &self,
        fund_id: i64,
        balance: FundBalance,
        kind: &str,
        amount: i64,
        order_line_id: Option<i64>,
        invoice_id: Option<i64>,
    ) -> Result<(), StoreError> {
        self.txn()
            .await?
            .execute(
                &Query::update()
                    .table("funds")
                    .value("allocated", balance.allocated.0)
                    .value("encumbered", balance.encumbered.0)
                    .value("expended", balance.expended.0)
                    .value("updated_at", self.ctx.now)
                    .and_where(Expr::col("id").eq(fund_id))
                    .to_owned(),
            )
            .await?;
        self.txn()
            .await?
            .execute(
                &Query::insert()
                    .into_table("fund_ledger")
                    .columns([
                        "fund_id",
                        "kind",
                        "amount",
                        "order_line_id",
                        "invoice_id",
                        "actor",
                        "at",
                    ])
                    .values_panic([
                        fund_id.into(),
                        kind.into(),
                        amount.into(),
                        order_line_id.into(),
                        invoice_id.into(),
                        self.ctx.actor.as_str().into(),
                        self.ctx.now.into(),
                    ])
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    /// Marks a fund closed (a year end).
    pub async fn close_fund(&self, fund_id: i64) -> Result<(), StoreError> {
        self.txn()
            .await?
            .execute(
                &Query::update()
                    .table("funds")
                    .value("closed", true)
                    .value("updated_at", self.ctx.now)
                    .and_where(Expr::col("id").eq(fund_id))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    /// Adds an order line as a draft.
    pub async fn insert_order_line(&self, o: &NewOrderLine) -> Result<OrderLineRow, StoreError> {
        let id = self
            .inserted_id(
                Query::insert()
                    .into_table("order_lines")
                    .columns(ORDER_COLUMNS.iter().skip(1).copied().chain(["updated_at"]))
                    .values_panic([
                        o.vendor_id.into(),
                        o.record_id.into(),
                        o.fund_id.into(),
                        o.quantity.into(),
                        0i64.into(),
                        0i64.into(),
                        o.unit_price.into(),
                        o.currency.as_str().into(),
                        0i64.into(),
                        o.campus.as_str().into(),
                        o.location.clone().into(),
                        o.item_type.as_str().into(),
                        "draft".into(),
                        o.note.clone().into(),
                        self.ctx.now.into(),
                        self.ctx.now.into(),
                    ]),
            )
            .await?;
        self.order_line(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("inserted order line not found".into()))
    }

    /// An order line, locked.
    pub async fn order_line(&self, id: i64) -> Result<Option<OrderLineRow>, StoreError> {
        self.one_locked(
            "order_lines",
            &ORDER_COLUMNS,
            Expr::col("id").eq(id),
            row_to_order,
        )
        .await
    }

    /// Open order lines of a fund (not closed or cancelled), locked.
    pub async fn open_lines_of_fund(&self, fund_id: i64) -> Result<Vec<OrderLineRow>, StoreError> {
        self.all(
            &Query::select()
                .columns(ORDER_COLUMNS)
                .from("order_lines")
                .and_where(Expr::col("fund_id").eq(fund_id))
                .and_where(Expr::col("status").is_not_in(["closed", "cancelled"]))
                .lock(LockType::Update)
                .to_owned(),
            row_to_order,
        )
        .await
    }

    /// Changes an order line's state.
    pub async fn update_order_line(&self, line: &OrderLineRow) -> Result<(), StoreError> {
        self.txn()
            .await?
            .execute(
                &Query::update()
                    .table("order_lines")
                    .value("fund_id", line.fund_id)
                    .value("received", line.received)
                    .value("invoiced", line.invoiced)
                    .value("encumbered", line.encumbered)
                    .value("status", line.status.as_str())
                    .value("updated_at", self.ctx.now)
                    .and_where(Expr::col("id").eq(line.id))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    /// Adds an item (a received copy) with its outbox row, so that it is in
    /// search and circulation as soon as this transaction commits; `None`
    /// when the barcode is taken.
    pub async fn insert_item(
        &self,
        record_id: i64,
        item: &ItemSpec,
    ) -> Result<Option<StoredItem>, StoreError> {
        let txn = self.txn().await?;
        let barcode = || Expr::col("barcode").eq(item.barcode.as_str());
        if item_in(txn, barcode()).await?.is_some() {
            return Ok(None);
        }
        let mut insert = Query::insert();
        insert.into_table("items").columns(
            crate::catalogue::ITEM_COLUMNS
                .iter()
                .skip(1)
                .copied()
                .chain(["created_at", "updated_at"]),
        );
        insert.values_panic(item_values(record_id, item, self.ctx.now));
        txn.execute(&insert).await?;
        write_outbox(txn, &[record_id], OUTBOX_RECORD, self.ctx.now).await?;
        item_in(txn, barcode()).await
    }

    /// Adds an invoice with its lines; `None` when the vendor's invoice
    /// number is there already.
    pub async fn insert_invoice(
        &self,
        invoice: &InvoiceRow,
        lines: &[NewInvoiceLine],
    ) -> Result<Option<InvoiceRow>, StoreError> {
        if self
            .one_locked(
                "invoices",
                &INVOICE_COLUMNS,
                Expr::col("vendor_id")
                    .eq(invoice.vendor_id)
                    .and(Expr::col("number").eq(invoice.number.as_str())),
                row_to_invoice,
            )
            .await?
            .is_some()
        {
            return Ok(None);
        }
        let id = self
            .inserted_id(
                Query::insert()
                    .into_table("invoices")
                    .columns(
                        INVOICE_COLUMNS
                            .iter()
                            .skip(1)
                            .copied()
                            .chain(["created_at"]),
                    )
                    .values_panic([
                        invoice.vendor_id.into(),
                        invoice.number.as_str().into(),
                        invoice.currency.as_str().into(),
                        invoice.rate_micros.into(),
                        invoice.shipping.into(),
                        invoice.net.into(),
                        invoice.tax.into(),
                        invoice.total.into(),
                        invoice.total_yen.into(),
                        "open".into(),
                        None::<i64>.into(),
                        self.ctx.now.into(),
                    ]),
            )
            .await?;
        for l in lines {
            self.txn()
                .await?
                .execute(
                    &Query::insert()
                        .into_table("invoice_lines")
                        .columns(INVOICE_LINE_COLUMNS.iter().skip(1).copied())
                        .values_panic([
                            id.into(),
                            l.order_line_id.into(),
                            l.quantity.into(),
                            l.gross.into(),
                            l.discount.into(),
                            l.tax_bp.into(),
                            l.amount_yen.into(),
                        ])
                        .to_owned(),
                )
                .await?;
        }
        self.invoice(id).await
    }

    /// An invoice, locked.
    pub async fn invoice(&self, id: i64) -> Result<Option<InvoiceRow>, StoreError> {
        self.one_locked(
            "invoices",
            &INVOICE_COLUMNS,
            Expr::col("id").eq(id),
            row_to_invoice,
        )
        .await
    }

    /// An invoice's lines.
    pub async fn invoice_lines(&self, invoice_id: i64) -> Result<Vec<InvoiceLineRow>, StoreError> {
        self.all(
            &Query::select()
                .columns(INVOICE_LINE_COLUMNS)
                .from("invoice_lines")
                .and_where(Expr::col("invoice_id").eq(invoice_id))
                .order_by("id", Order::Asc)
                .to_owned(),
            row_to_invoice_line,
        )
        .await
    }

    /// Marks an invoice approved for payment.
    pub async fn set_invoice_approved(&self, id: i64) -> Result<(), StoreError> {
        self.txn()
            .await?
            .execute(
                &Query::update()
                    .table("invoices")
                    .value("status", "approved")
                    .and_where(Expr::col("id").eq(id))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    /// Marks an invoice paid.
    pub async fn set_invoice_paid(&self, id: i64) -> Result<(), StoreError> {
        self.txn()
            .await?
            .execute(
                &Query::update()
                    .table("invoices")
                    .value("status", "paid")
                    .value("paid_at", self.ctx.now)
                    .and_where(Expr::col("id").eq(id))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}

impl Store {
    async fn acq_rows<T>(
        &self,
        select: &sea_orm::sea_query::SelectStatement,
        map: fn(&QueryResult) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let rows = self.db.query_all(select).await?;
        rows.iter().map(map).collect()
    }

    /// Every vendor, by code.
    pub async fn vendors(&self) -> Result<Vec<VendorRow>, StoreError> {
        self.acq_rows(
            &Query::select()
                .columns(VENDOR_COLUMNS)
                .from("vendors")
                .order_by("code", Order::Asc)
                .to_owned(),
            row_to_vendor,
        )
        .await
    }

    /// The funds of a fiscal year, by code.
    pub async fn funds(&self, fiscal_year: i64) -> Result<Vec<FundRow>, StoreError> {
        self.acq_rows(
            &Query::select()
                .columns(FUND_COLUMNS)
                .from("funds")
                .and_where(Expr::col("fiscal_year").eq(fiscal_year))
                .order_by("code", Order::Asc)
                .to_owned(),
            row_to_fund,
        )
        .await
    }

    /// One fund.
    pub async fn fund_row(&self, id: i64) -> Result<Option<FundRow>, StoreError> {
        Ok(self
            .acq_rows(
                &Query::select()
                    .columns(FUND_COLUMNS)
                    .from("funds")
                    .and_where(Expr::col("id").eq(id))
                    .to_owned(),
                row_to_fund,
            )
            .await?
            .pop())
    }

    /// Order lines, newest first, optionally of one status.
    pub async fn order_lines(
        &self,
        status: Option<&str>,
        limit: u64,
    ) -> Result<Vec<OrderLineRow>, StoreError> {
        let mut select = Query::select();
        select.columns(ORDER_COLUMNS).from("order_lines");
        if let Some(s) = status {
            select.and_where(Expr::col("status").eq(s));
        }
        select.order_by("id", Order::Desc).limit(limit);
        self.acq_rows(&select, row_to_order).await
    }

    /// Order lines sent before `before` and not wholly received: what to
    /// claim from the vendors.
    pub async fn late_order_lines(&self, before: i64) -> Result<Vec<OrderLineRow>, StoreError> {
        self.acq_rows(
            &Query::select()
                .columns(ORDER_COLUMNS)
                .from("order_lines")
                .and_where(Expr::col("status").is_in(["sent", "partly_received"]))
                .and_where(Expr::col("created_at").lt(before))
                .order_by("vendor_id", Order::Asc)
                .order_by("id", Order::Asc)
                .to_owned(),
            row_to_order,
        )
        .await
    }

    /// Invoices, newest first.
    pub async fn invoices(&self, limit: u64) -> Result<Vec<InvoiceRow>, StoreError> {
        self.acq_rows(
            &Query::select()
                .columns(INVOICE_COLUMNS)
                .from("invoices")
                .order_by("id", Order::Desc)
                .limit(limit)
                .to_owned(),
            row_to_invoice,
        )
        .await
    }
}
