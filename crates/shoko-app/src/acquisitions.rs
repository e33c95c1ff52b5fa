//! Acquisitions use cases: vendors; funds per fiscal year with allocations
//! and transfers; order lines from draft to sent (encumbered) to received
//! (which makes the items, searchable and lendable at once) and closed;
//! invoices with an exchange rate fixed on them and consumption tax per rate;
//! payment (expenditure recorded, encumbrance released, refused rather than
//! overspend); and the year end. Every step is one transaction with its
//! audit entries and idempotency key, and needs the acquisitions role.

use serde::{Deserialize, Serialize};
use shoko_domain::acquisitions::{
    Currency, FundBalance, FundError, InvoiceLineAmount, Money, OrderStatus, Rate, TaxRate,
    invoice_totals, roll_over,
};
use shoko_domain::{
    Barcode, CampusCode, ItemSpec, ItemStatus, ItemTypeCode, LocationCode, Permission,
};
use shoko_store::{
    FundRow, InvoiceRow, NewInvoiceLine, NewOrderLine, NewVendor, OrderLineRow, StoreError,
    StoredItem, VendorRow, WriteTx,
};

use crate::App;
use crate::circulation::{Caller, CircError};

/// Why an acquisitions step was refused.
#[derive(Debug, thiserror::Error)]
pub enum AcqError {
    /// Not logged in, or not allowed.
    #[error(transparent)]
    Denied(#[from] shoko_domain::Denied),
    /// A field is not valid.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Nothing with that id.
    #[error("{0} not found")]
    NotFound(String),
    /// A code or number in use.
    #[error("{0} is already in use")]
    Taken(String),
    /// The step does not fit the order line's state.
    #[error("order line {id} is {status}: {message}")]
    WrongState {
        /// The line.
        id: i64,
        /// Its state.
        status: String,
        /// What cannot be done.
        message: String,
    },
    /// The fund has not got the money.
    #[error("fund {code}: {source}")]
    Fund {
        /// The fund.
        code: String,
        /// Why.
        source: FundError,
    },
    /// The idempotency key came with a different request before.
    #[error("idempotency key {0:?} was used for a different request")]
    KeyReused(String),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(StoreError),
}

impl From<StoreError> for AcqError {
    fn from(e: StoreError) -> AcqError {
        match e {
            StoreError::KeyReused(k) => AcqError::KeyReused(k),
            e => AcqError::Unexpected(e),
        }
    }
}

/// `None` as "not found", naming what.
trait OrMissing<T> {
    fn or_missing(self, what: impl FnOnce() -> String) -> Result<T, AcqError>;
}

impl<T> OrMissing<T> for Option<T> {
    fn or_missing(self, what: impl FnOnce() -> String) -> Result<T, AcqError> {
        self.ok_or_else(|| AcqError::NotFound(what()))
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> AcqError {
    AcqError::Invalid {
        field,
        message: message.into(),
    }
}

fn fund_error(fund: &FundRow) -> impl Fn(FundError) -> AcqError + '_ {
    move |source| AcqError::Fund {
        code: fund.code.clone(),
        source,
    }
}

/// A vendor to add.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct VendorInput {
    /// Code (unique).
    pub code: String,
    /// Name.
    pub name: String,
    /// Contact person, address, telephone.
    #[serde(default)]
    pub contact: Option<String>,
    /// E-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// ISO 4217 currency; `JPY` when omitted.
    #[serde(default)]
    pub currency: Option<String>,
    /// Default discount, basis points.
    #[serde(default)]
    pub discount_bp: Option<i64>,
}

/// A fund to add.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct FundInput {
    /// The year the fiscal year starts in.
    pub fiscal_year: i64,
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// The parent fund (same year).
    #[serde(default)]
    pub parent_id: Option<i64>,
    /// Whether it may go below zero.
    #[serde(default)]
    pub allow_overspend: bool,
}

/// An order line to add (a draft).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct OrderInput {
    /// Vendor.
    pub vendor_id: i64,
    /// The record ordered.
    pub record_id: i64,
    /// The fund paying.
    pub fund_id: i64,
    /// Copies.
    pub quantity: i64,
    /// Price of one copy, vendor currency, minor units.
    pub unit_price: i64,
    /// Campus the copies go to.
    pub campus: String,
    /// Location there.
    #[serde(default)]
    pub location: Option<String>,
    /// Item type (the library's default when omitted).
    #[serde(default)]
    pub item_type: Option<String>,
    /// Note.
    #[serde(default)]
    pub note: Option<String>,
}

/// An invoice line.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct InvoiceLineInput {
    /// The order line billed.
    pub order_line_id: i64,
    /// Copies billed.
    pub quantity: i64,
    /// Price × quantity, invoice currency.
    pub gross: i64,
    /// Discount, invoice currency.
    #[serde(default)]
    pub discount: i64,
    /// Tax rate, basis points (1000 = 10 %, the default).
    #[serde(default)]
    pub tax_bp: Option<i64>,
}

/// An invoice to record.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct InvoiceInput {
    /// Vendor.
    pub vendor_id: i64,
    /// The vendor's number for it.
    pub number: String,
    /// The rate fixed on it: yen per major unit × 10⁶ (omit for yen).
    #[serde(default)]
    pub rate_micros: Option<i64>,
    /// Shipping, invoice currency.
    #[serde(default)]
    pub shipping: i64,
    /// Lines.
    pub lines: Vec<InvoiceLineInput>,
}

/// What receiving made.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Received {
    /// The order line after.
    pub line: OrderLineRow,
    /// The items made.
    pub items: Vec<StoredItem>,
}

/// What a year end did, fund by fund.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct YearClosed {
    /// The closed year's funds after the close.
    pub closed: Vec<FundRow>,
    /// The next year's funds after the carry.
    pub opened: Vec<FundRow>,
    /// Order lines moved to the next year's funds.
    pub lines_moved: u64,
}

/// What a quantity of a line costs in yen with the standard tax, at a rate.
fn estimate(
    quantity: i64,
    unit_price: i64,
    discount_bp: i64,
    currency: &Currency,
    rate: Rate,
) -> Result<Money, AcqError> {
    let gross = quantity
        .checked_mul(unit_price)
        .ok_or_else(|| invalid("unit_price", "too large"))?;
    let discount = gross * discount_bp / 10_000;
    let totals = invoice_totals(
        &[InvoiceLineAmount {
            gross: Money(gross),
            discount: Money(discount),
            tax: TaxRate::STANDARD,
        }],
        Money::ZERO,
    )
    .map_err(|e| invalid("unit_price", e.to_string()))?;
    rate.convert(totals.total, currency)
        .map_err(|e| invalid("estimated_rate_micros", e.to_string()))
}

fn rate_for(currency: &Currency, given: Option<i64>) -> Result<Rate, AcqError> {
    match (currency.code.as_str(), given) {
        ("JPY", None) => Ok(Rate { micros: 1_000_000 }),
        (_, Some(m)) if m > 0 => Ok(Rate { micros: m }),
        (_, Some(_)) => Err(invalid("rate_micros", "must be above zero")),
        (code, None) => Err(invalid(
            "rate_micros",
            format!("prices in {code} need the exchange rate (yen per unit × 1,000,000)"),
        )),
    }
}

impl App {
    async fn acq_tx(&self, caller: &Caller) -> Result<WriteTx, AcqError> {
        caller.actor.require(Permission::Acquisitions)?;
        Ok(self.begin(caller).await?)
    }

    /// One acquisitions write: the permission, the transaction, an earlier
    /// outcome under the same idempotency key returned as it was, else
    /// `work` with its audit entries, committed on success and rolled back
    /// on refusal.
    async fn acq_write<T: Serialize + serde::de::DeserializeOwned>(
        &self,
        caller: &Caller,
        work: impl AsyncFnOnce(&mut WriteTx) -> Result<T, AcqError>,
    ) -> Result<T, AcqError> {
        let mut tx = self.acq_tx(caller).await?;
        if let Some(done) = tx.replay::<T>().await? {
            tx.abandon().await?;
            return Ok(done);
        }
        let outcome = work(&mut tx).await;
        self.acq_end(tx, outcome).await
    }

    async fn acq_end<T: Serialize>(
        &self,
        tx: WriteTx,
        outcome: Result<T, AcqError>,
    ) -> Result<T, AcqError> {
        match outcome {
            Ok(v) => {
                tx.finish(&v).await?;
                Ok(v)
            }
            Err(e) => {
                tx.abandon().await?;
                Err(e)
            }
        }
    }

    /// Adds a vendor.
    pub async fn create_vendor(
        &self,
        caller: &Caller,
        v: VendorInput,
    ) -> Result<VendorRow, AcqError> {
        self.acq_write(caller, async |tx: &mut WriteTx| {
            let code = v.code.trim();
            if code.is_empty() || code.len() > 40 {
                return Err(invalid("code", "1 to 40 characters"));
            }
            if v.name.trim().is_empty() {
                return Err(invalid("name", "empty"));
            }
            let currency = v.currency.as_deref().unwrap_or("JPY");
            Currency::parse(currency).ok_or_else(|| {
                invalid(
                    "currency",
                    format!("{currency:?} is not a currency Shoko knows"),
                )
            })?;
            let discount_bp = v.discount_bp.unwrap_or(0);
            if !(0..=10_000).contains(&discount_bp) {
                return Err(invalid("discount_bp", "0 to 10000"));
            }
            let row = tx
                .insert_vendor(&NewVendor {
                    code: code.to_owned(),
                    name: v.name.trim().to_owned(),
                    contact: v.contact.clone(),
                    email: v.email.clone(),
                    currency: currency.to_owned(),
                    discount_bp,
                })
                .await?
                .ok_or_else(|| AcqError::Taken(format!("vendor code {code}")))?;
            tx.audit("vendor.create", "vendor", row.id, None::<&()>, Some(&row));
            Ok(row)
        })
        .await
    }

    /// Adds a fund to a fiscal year.
    pub async fn create_fund(&self, caller: &Caller, f: FundInput) -> Result<FundRow, AcqError> {
        self.acq_write(caller, async |tx: &mut WriteTx| {
            if !(2000..=2200).contains(&f.fiscal_year) {
                return Err(invalid("fiscal_year", "a year such as 2026"));
            }
            if f.code.trim().is_empty() {
                return Err(invalid("code", "empty"));
            }
            if let Some(p) = f.parent_id {
                let parent = tx.fund(p).await?.or_missing(|| format!("fund {p}"))?;
                if parent.fiscal_year != f.fiscal_year {
                    return Err(invalid("parent_id", "the parent fund is of another year"));
                }
            }
            let row = tx
                .insert_fund(
                    f.fiscal_year,
                    f.code.trim(),
                    f.name.trim(),
                    f.parent_id,
                    f.allow_overspend,
                )
                .await?
                .ok_or_else(|| AcqError::Taken(format!("fund {} in {}", f.code, f.fiscal_year)))?;
            tx.audit("fund.create", "fund", row.id, None::<&()>, Some(&row));
            Ok(row)
        })
        .await
    }

    /// Allocates money to a fund (negative: takes it back).
    pub async fn allocate(
        &self,
        caller: &Caller,
        fund_id: i64,
        amount: i64,
    ) -> Result<FundRow, AcqError> {
        self.acq_write(caller, async |tx: &mut WriteTx| {
            let fund = tx
                .fund(fund_id)
                .await?
                .or_missing(|| format!("fund {fund_id}"))?;
            if fund.closed {
                return Err(invalid("fund_id", "the fund's year is closed"));
            }
            let balance = fund
                .balance()
                .allocate(Money(amount), fund.allow_overspend)
                .map_err(fund_error(&fund))?;
            tx.set_fund_balance(fund.id, balance, "allocation", amount, None, None)
                .await?;
            let after = tx.fund(fund.id).await?.or_missing(|| "fund".into())?;
            tx.audit("fund.allocate", "fund", fund.id, Some(&fund), Some(&after));
            Ok(after)
        })
        .await
    }

    /// Moves money from one fund to another of the same year.
    pub async fn transfer(
        &self,
        caller: &Caller,
        from: i64,
        to: i64,
        amount: i64,
    ) -> Result<Vec<FundRow>, AcqError> {
        self.acq_write(caller, async |tx: &mut WriteTx| {
            if amount <= 0 {
                return Err(invalid("amount", "above zero"));
            }
            if from == to {
                return Err(invalid("to", "another fund"));
            }
            // Lock in id order, so two opposite transfers cannot deadlock.
            let (first, second) = (from.min(to), from.max(to));
            let a = tx
                .fund(first)
                .await?
                .or_missing(|| format!("fund {first}"))?;
            let b = tx
                .fund(second)
                .await?
                .or_missing(|| format!("fund {second}"))?;
            let (src, dst) = if a.id == from { (a, b) } else { (b, a) };
            if src.fiscal_year != dst.fiscal_year || src.closed || dst.closed {
                return Err(invalid("to", "both funds must be of the same open year"));
            }
            let out = src
                .balance()
                .allocate(Money(-amount), src.allow_overspend)
                .map_err(fund_error(&src))?;
            let inn = dst
                .balance()
                .allocate(Money(amount), true)
                .map_err(fund_error(&dst))?;
            tx.set_fund_balance(src.id, out, "transfer_out", -amount, None, None)
                .await?;
            tx.set_fund_balance(dst.id, inn, "transfer_in", amount, None, None)
                .await?;
            let after = vec![
                tx.fund(src.id).await?.or_missing(|| "fund".into())?,
                tx.fund(dst.id).await?.or_missing(|| "fund".into())?,
            ];
            tx.audit("fund.transfer", "fund", src.id, Some(&src), Some(&after));
            Ok(after)
        })
        .await
    }

    /// Adds an order line as a draft (nothing encumbered yet).
    pub async fn create_order(
        &self,
        caller: &Caller,
        o: OrderInput,
    ) -> Result<OrderLineRow, AcqError> {
        self.acq_write(caller, async |tx: &mut WriteTx| {
            if o.quantity <= 0 || o.quantity > 10_000 {
                return Err(invalid("quantity", "1 to 10000"));
            }
            if o.unit_price < 0 {
                return Err(invalid("unit_price", "not negative"));
            }
            let vendor = tx
                .vendor(o.vendor_id)
                .await?
                .or_missing(|| format!("vendor {}", o.vendor_id))?;
            let fund = tx
                .fund(o.fund_id)
                .await?
                .or_missing(|| format!("fund {}", o.fund_id))?;
            if fund.closed {
                return Err(invalid("fund_id", "the fund's year is closed"));
            }
            if self.store.record(o.record_id).await?.is_none() {
                return Err(AcqError::NotFound(format!("record {}", o.record_id)));
            }
            let item_type = o
                .item_type
                .clone()
                .unwrap_or_else(|| self.settings.default_item_type.as_str().to_owned());
            // The copies' campus, location and item type are checked now,
            // not when they arrive (with a stand-in barcode).
            self.receipt_spec(&o.campus, o.location.as_deref(), &item_type, "0")?;
            let line = tx
                .insert_order_line(&NewOrderLine {
                    vendor_id: vendor.id,
                    record_id: o.record_id,
                    fund_id: fund.id,
                    quantity: o.quantity,
                    unit_price: o.unit_price,
                    currency: vendor.currency.clone(),
                    campus: o.campus.clone(),
                    location: o.location.clone(),
                    item_type,
                    note: o.note.clone(),
                })
                .await?;
            tx.audit(
                "order.create",
                "order_line",
                line.id,
                None::<&()>,
                Some(&line),
            );
            Ok(line)
        })
        .await
    }

    fn receipt_spec(
        &self,
        campus: &str,
        location: Option<&str>,
        item_type: &str,
        barcode: &str,
    ) -> Result<ItemSpec, AcqError> {
        let spec = ItemSpec {
            barcode: Barcode::parse(barcode).map_err(|e| invalid("barcode", e.to_string()))?,
            campus: CampusCode::parse(campus).map_err(|e| invalid("campus", e.to_string()))?,
            location: location
                .map(LocationCode::parse)
                .transpose()
                .map_err(|e| invalid("location", e.to_string()))?,
            call_number: None,
            item_type: ItemTypeCode::parse(item_type)
                .map_err(|e| invalid("item_type", e.to_string()))?,
            status: ItemStatus::Available,
        };
        self.settings
            .check_item(&spec)
            .map_err(|m| invalid("campus", m))?;
        Ok(spec)
    }

    /// Sends a draft to the vendor: its estimated cost (with the standard
    /// tax, at the rate given, yen for a yen vendor) is encumbered on the
    /// fund, refused if the fund has not got it.
    pub async fn send_order(
        &self,
        caller: &Caller,
        id: i64,
        rate_micros: Option<i64>,
    ) -> Result<OrderLineRow, AcqError> {
        self.acq_write(caller, async |tx: &mut WriteTx| {
            let line = tx
                .order_line(id)
                .await?
                .or_missing(|| format!("order line {id}"))?;
            if line.status != OrderStatus::Draft.code() {
                return Err(AcqError::WrongState {
                    id,
                    status: line.status,
                    message: "only a draft is sent".into(),
                });
            }
            let vendor = tx
                .vendor(line.vendor_id)
                .await?
                .or_missing(|| "vendor".into())?;
            let currency =
                Currency::parse(&line.currency).ok_or_else(|| invalid("currency", "unknown"))?;
            let cost = estimate(
                line.quantity,
                line.unit_price,
                vendor.discount_bp,
                &currency,
                rate_for(&currency, rate_micros)?,
            )?;
            let fund = tx.fund(line.fund_id).await?.or_missing(|| "fund".into())?;
            let balance = fund
                .balance()
                .encumber(cost, fund.allow_overspend)
                .map_err(fund_error(&fund))?;
            tx.set_fund_balance(fund.id, balance, "encumbrance", cost.0, Some(line.id), None)
                .await?;
            let after = OrderLineRow {
                encumbered: cost.0,
                status: OrderStatus::Sent.code().into(),
                ..line.clone()
            };
            tx.update_order_line(&after).await?;
            tx.audit("order.send", "order_line", id, Some(&line), Some(&after));
            Ok(after)
        })
        .await
    }

    /// Receives copies of a sent line: one item per barcode at the line's
    /// campus, location and item type, in search and circulation as soon as
    /// this commits.
    pub async fn receive(
        &self,
        caller: &Caller,
        id: i64,
        barcodes: &[String],
    ) -> Result<Received, AcqError> {
        self.acq_write(caller, async |tx: &mut WriteTx| {
            let line = tx
                .order_line(id)
                .await?
                .or_missing(|| format!("order line {id}"))?;
            let status =
                OrderStatus::from_code(&line.status).ok_or_else(|| invalid("status", "unknown"))?;
            if !status.receivable() {
                return Err(AcqError::WrongState {
                    id,
                    status: line.status,
                    message: "only a sent line is received".into(),
                });
            }
            if barcodes.is_empty() || line.received + barcodes.len() as i64 > line.quantity {
                return Err(invalid(
                    "barcodes",
                    format!(
                        "{} copies ordered, {} received, {} more sent",
                        line.quantity,
                        line.received,
                        barcodes.len()
                    ),
                ));
            }
            let mut items = Vec::new();
            for b in barcodes {
                let spec = self.receipt_spec(
                    &line.campus,
                    line.location.as_deref(),
                    &line.item_type,
                    b.trim(),
                )?;
                let item = tx
                    .insert_item(line.record_id, &spec)
                    .await?
                    .ok_or_else(|| AcqError::Taken(format!("barcode {b}")))?;
                items.push(item);
            }
            let received = line.received + items.len() as i64;
            // Invoiced and paid before the last copy came: now it is done.
            let paid = line.invoiced >= line.quantity && line.encumbered == 0;
            let status = match OrderStatus::after_receiving(received as u32, line.quantity as u32) {
                OrderStatus::Received if paid => OrderStatus::Closed,
                s => s,
            };
            let after = OrderLineRow {
                received,
                status: status.code().into(),
                ..line.clone()
            };
            tx.update_order_line(&after).await?;
            tx.audit("order.receive", "order_line", id, Some(&line), Some(&after));
            Ok(Received { line: after, items })
        })
        .await
    }

    /// Cancels a draft or sent line; its encumbrance is released.
    pub async fn cancel_order(&self, caller: &Caller, id: i64) -> Result<OrderLineRow, AcqError> {
        self.acq_write(caller, async |tx: &mut WriteTx| {
            let line = tx
                .order_line(id)
                .await?
                .or_missing(|| format!("order line {id}"))?;
            let status =
                OrderStatus::from_code(&line.status).ok_or_else(|| invalid("status", "unknown"))?;
            if !status.cancellable() {
                return Err(AcqError::WrongState {
                    id,
                    status: line.status,
                    message: "copies were received".into(),
                });
            }
            if line.encumbered > 0 {
                let fund = tx.fund(line.fund_id).await?.or_missing(|| "fund".into())?;
                let balance = fund
                    .balance()
                    .release(Money(line.encumbered))
                    .map_err(fund_error(&fund))?;
                tx.set_fund_balance(
                    fund.id,
                    balance,
                    "release",
                    -line.encumbered,
                    Some(id),
                    None,
                )
                .await?;
            }
            let after = OrderLineRow {
                encumbered: 0,
                status: OrderStatus::Cancelled.code().into(),
                ..line.clone()
            };
            tx.update_order_line(&after).await?;
            tx.audit("order.cancel", "order_line", id, Some(&line), Some(&after));
            Ok(after)
        })
        .await
    }

    /// Records an invoice: totals with tax once per rate, converted to yen
    /// at its rate; each line's share in yen (tax and shipping included)
    /// adds up to the total exactly.
    pub async fn create_invoice(
        &self,
        caller: &Caller,
        inv: InvoiceInput,
    ) -> Result<InvoiceRow, AcqError> {
        self.acq_write(caller, async |tx: &mut WriteTx| {
            if inv.lines.is_empty() {
                return Err(invalid("lines", "an invoice has lines"));
            }
            let vendor = tx
                .vendor(inv.vendor_id)
                .await?
                .or_missing(|| format!("vendor {}", inv.vendor_id))?;
            let currency =
                Currency::parse(&vendor.currency).ok_or_else(|| invalid("currency", "unknown"))?;
            let rate = rate_for(&currency, inv.rate_micros)?;
            let mut amounts = Vec::new();
            for l in &inv.lines {
                let line = tx
                    .order_line(l.order_line_id)
                    .await?
                    .or_missing(|| format!("order line {}", l.order_line_id))?;
                if line.vendor_id != vendor.id {
                    return Err(invalid(
                        "order_line_id",
                        format!("order line {} is from another vendor", line.id),
                    ));
                }
                if l.quantity <= 0 || line.invoiced + l.quantity > line.quantity {
                    return Err(invalid(
                        "quantity",
                        format!(
                            "order line {}: {} ordered, {} invoiced",
                            line.id, line.quantity, line.invoiced
                        ),
                    ));
                }
                let tax = l.tax_bp.unwrap_or(1000);
                if !(0..=5000).contains(&tax)
                    || l.gross < 0
                    || l.discount < 0
                    || l.discount > l.gross
                {
                    return Err(invalid(
                        "lines",
                        "amounts are not negative and a discount is at most the gross",
                    ));
                }
                amounts.push(InvoiceLineAmount {
                    gross: Money(l.gross),
                    discount: Money(l.discount),
                    tax: TaxRate(tax as u32),
                });
            }
            let totals = invoice_totals(&amounts, Money(inv.shipping))
                .map_err(|e| invalid("lines", e.to_string()))?;
            let total_yen = rate
                .convert(totals.total, &currency)
                .map_err(|e| invalid("rate_micros", e.to_string()))?;
            // Each line: its net plus its share of its rate's tax, in yen; the
            // shipping and what rounding leaves go to the first line, so the
            // lines add up to the total exactly.
            let mut shares: Vec<i64> = Vec::new();
            for a in &amounts {
                let (_, taxable, tax) = totals
                    .tax_by_rate
                    .iter()
                    .find(|(r, _, _)| *r == a.tax)
                    .copied()
                    .unwrap_or((a.tax, Money(0), Money(0)));
                let net = a.gross.0 - a.discount.0;
                let tax_share = if taxable.0 == 0 {
                    0
                } else {
                    (i128::from(tax.0) * i128::from(net) / i128::from(taxable.0)) as i64
                };
                shares.push(
                    rate.convert(Money(net + tax_share), &currency)
                        .map_err(|e| invalid("rate_micros", e.to_string()))?
                        .0,
                );
            }
            let rest = total_yen.0 - shares.iter().sum::<i64>();
            shares[0] += rest;
            let lines: Vec<NewInvoiceLine> = inv
                .lines
                .iter()
                .zip(&shares)
                .map(|(l, yen)| NewInvoiceLine {
                    order_line_id: l.order_line_id,
                    quantity: l.quantity,
                    gross: l.gross,
                    discount: l.discount,
                    tax_bp: l.tax_bp.unwrap_or(1000),
                    amount_yen: *yen,
                })
                .collect();
            let row = tx
                .insert_invoice(
                    &InvoiceRow {
                        id: 0,
                        vendor_id: vendor.id,
                        number: inv.number.trim().to_owned(),
                        currency: currency.code.clone(),
                        rate_micros: rate.micros,
                        shipping: inv.shipping,
                        net: totals.net.0,
                        tax: totals.tax.0,
                        total: totals.total.0,
                        total_yen: total_yen.0,
                        status: "open".into(),
                        paid_at: None,
                    },
                    &lines,
                )
                .await?
                .ok_or_else(|| {
                    AcqError::Taken(format!("invoice {} of vendor {}", inv.number, vendor.code))
                })?;
            for l in &inv.lines {
                let line = tx
                    .order_line(l.order_line_id)
                    .await?
                    .or_missing(|| "order line".into())?;
                tx.update_order_line(&OrderLineRow {
                    invoiced: line.invoiced + l.quantity,
                    ..line
                })
                .await?;
            }
            tx.audit("invoice.create", "invoice", row.id, None::<&()>, Some(&row));
            Ok(row)
        })
        .await
    }

    /// Approves an invoice for payment (its lines checked against what
    /// was received by the person approving).
    pub async fn approve_invoice(&self, caller: &Caller, id: i64) -> Result<InvoiceRow, AcqError> {
        self.acq_write(caller, async |tx: &mut WriteTx| {
            let invoice = tx
                .invoice(id)
                .await?
                .or_missing(|| format!("invoice {id}"))?;
            if invoice.status != "open" {
                return Err(invalid(
                    "invoice",
                    format!("it is {}, not open", invoice.status),
                ));
            }
            tx.set_invoice_approved(id).await?;
            let after = tx.invoice(id).await?.or_missing(|| "invoice".into())?;
            tx.audit(
                "invoice.approve",
                "invoice",
                id,
                Some(&invoice),
                Some(&after),
            );
            Ok(after)
        })
        .await
    }

    /// Pays an approved invoice: each line's yen amount is expended on its line's
    /// fund and the line's encumbrance released in proportion to the copies
    /// billed. A fund without the money refuses the whole payment.
    pub async fn pay_invoice(&self, caller: &Caller, id: i64) -> Result<InvoiceRow, AcqError> {
        self.acq_write(caller, async |tx: &mut WriteTx| {
            let invoice = tx
                .invoice(id)
                .await?
                .or_missing(|| format!("invoice {id}"))?;
            if invoice.status != "approved" {
                return Err(invalid(
                    "invoice",
                    match invoice.status.as_str() {
                        "paid" => "already paid".to_owned(),
                        s => format!("it is {s}: approve it first"),
                    },
                ));
            }
            let lines = tx.invoice_lines(id).await?;
            // Lock the funds in id order first: two payments never deadlock.
            let mut fund_ids = Vec::new();
            for l in &lines {
                let line = tx
                    .order_line(l.order_line_id)
                    .await?
                    .or_missing(|| "order line".into())?;
                fund_ids.push(line.fund_id);
            }
            fund_ids.sort_unstable();
            fund_ids.dedup();
            for f in &fund_ids {
                tx.fund(*f).await?;
            }
            for l in &lines {
                let line = tx
                    .order_line(l.order_line_id)
                    .await?
                    .or_missing(|| "order line".into())?;
                let fund = tx.fund(line.fund_id).await?.or_missing(|| "fund".into())?;
                if fund.closed {
                    return Err(invalid(
                        "fund",
                        format!("fund {} of {} is closed", fund.code, fund.fiscal_year),
                    ));
                }
                let billed_before = line.invoiced - l.quantity;
                let still_open = (line.quantity - billed_before).max(1);
                let release = if l.quantity >= still_open {
                    line.encumbered
                } else {
                    line.encumbered * l.quantity / still_open
                };
                let balance: FundBalance = fund
                    .balance()
                    .expend(Money(l.amount_yen), Money(release), fund.allow_overspend)
                    .map_err(fund_error(&fund))?;
                tx.set_fund_balance(
                    fund.id,
                    balance,
                    "expenditure",
                    l.amount_yen,
                    Some(line.id),
                    Some(id),
                )
                .await?;
                let fully = line.invoiced >= line.quantity && line.received >= line.quantity;
                tx.update_order_line(&OrderLineRow {
                    encumbered: line.encumbered - release,
                    status: if fully {
                        OrderStatus::Closed.code().into()
                    } else {
                        line.status.clone()
                    },
                    ..line
                })
                .await?;
            }
            tx.set_invoice_paid(id).await?;
            let after = tx.invoice(id).await?.or_missing(|| "invoice".into())?;
            tx.audit("invoice.pay", "invoice", id, Some(&invoice), Some(&after));
            Ok(after)
        })
        .await
    }

    /// Closes a fiscal year: every fund's open encumbrance moves to the
    /// fund of the same code in the next year (made if missing), with the
    /// open order lines; the available balance moves too for the funds
    /// named in `carry_balance`, else it lapses.
    pub async fn close_year(
        &self,
        caller: &Caller,
        year: i64,
        carry_balance: &[String],
    ) -> Result<YearClosed, AcqError> {
        self.acq_write(caller, async |tx: &mut WriteTx| {
            let funds = tx.funds_of_year(year).await?;
            if funds.is_empty() {
                return Err(AcqError::NotFound(format!("funds of {year}")));
            }
            if funds.iter().any(|f| f.closed) {
                return Err(invalid("year", format!("{year} is closed already")));
            }
            let mut closed = Vec::new();
            let mut opened = Vec::new();
            let mut moved = 0u64;
            for fund in &funds {
                let r = roll_over(fund.balance(), carry_balance.contains(&fund.code));
                let next = match tx.fund_by_code(year + 1, &fund.code).await? {
                    Some(n) => n,
                    None => tx
                        .insert_fund(year + 1, &fund.code, &fund.name, None, fund.allow_overspend)
                        .await?
                        .ok_or_else(|| AcqError::Taken(format!("fund {}", fund.code)))?,
                };
                let moving = fund.allocated - r.closed.allocated.0;
                tx.set_fund_balance(fund.id, r.closed, "rollover_out", -moving, None, None)
                    .await?;
                let opening = FundBalance {
                    allocated: Money(next.allocated + r.opening.allocated.0),
                    encumbered: Money(next.encumbered + r.opening.encumbered.0),
                    expended: Money(next.expended),
                };
                tx.set_fund_balance(next.id, opening, "rollover_in", moving, None, None)
                    .await?;
                for line in tx.open_lines_of_fund(fund.id).await? {
                    tx.update_order_line(&OrderLineRow {
                        fund_id: next.id,
                        ..line
                    })
                    .await?;
                    moved += 1;
                }
                tx.close_fund(fund.id).await?;
                closed.push(tx.fund(fund.id).await?.or_missing(|| "fund".into())?);
                opened.push(tx.fund(next.id).await?.or_missing(|| "fund".into())?);
            }
            let done = YearClosed {
                closed,
                opened,
                lines_moved: moved,
            };
            tx.audit(
                "fiscal_year.close",
                "fiscal_year",
                year,
                None::<&()>,
                Some(&done),
            );
            Ok(done)
        })
        .await
    }

    /// Vendors (acquisitions staff).
    pub async fn vendors(&self, caller: &Caller) -> Result<Vec<VendorRow>, AcqError> {
        caller.actor.require(Permission::Acquisitions)?;
        Ok(self.store.vendors().await?)
    }

    /// The funds of a fiscal year (acquisitions staff).
    pub async fn funds(&self, caller: &Caller, year: i64) -> Result<Vec<FundRow>, AcqError> {
        caller.actor.require(Permission::Acquisitions)?;
        Ok(self.store.funds(year).await?)
    }

    /// Order lines, newest first (acquisitions staff).
    pub async fn order_lines(
        &self,
        caller: &Caller,
        status: Option<&str>,
    ) -> Result<Vec<OrderLineRow>, AcqError> {
        caller.actor.require(Permission::Acquisitions)?;
        Ok(self.store.order_lines(status, 500).await?)
    }

    /// Invoices, newest first (acquisitions staff).
    pub async fn invoices(&self, caller: &Caller) -> Result<Vec<InvoiceRow>, AcqError> {
        caller.actor.require(Permission::Acquisitions)?;
        Ok(self.store.invoices(500).await?)
    }
}

impl From<CircError> for AcqError {
    fn from(e: CircError) -> AcqError {
        match e {
            CircError::Denied(d) => AcqError::Denied(d),
            CircError::Unexpected(s) => AcqError::Unexpected(s),
            other => AcqError::Invalid {
                field: "request",
                message: other.to_string(),
            },
        }
    }
}

impl App {
    /// The `claims` job: order lines sent more than `jobs.claim_after_days`
    /// ago and not wholly received, per vendor, as `claims-DATE.csv` in the
    /// day's output folder — the list to chase the vendors with.
    pub(crate) async fn claims_job(
        &self,
        slot: i64,
    ) -> Result<crate::jobs::JobOutcome, crate::jobs::JobError> {
        #[derive(Serialize)]
        struct ClaimRow {
            vendor: String,
            vendor_name: String,
            vendor_email: String,
            order_line: i64,
            record_id: i64,
            title: String,
            ordered: i64,
            received: i64,
            ordered_on: String,
            days: i64,
        }
        let day_ms = 86_400_000;
        let before = slot - i64::from(self.jobs.claim_after_days) * day_ms;
        let lines = self.store.late_order_lines(before).await?;
        let vendors = self.store.vendors().await?;
        let ids: Vec<i64> = lines.iter().map(|l| l.record_id).collect();
        let titles: std::collections::HashMap<i64, String> = self
            .store
            .record_summaries(&ids)
            .await?
            .into_iter()
            .map(|r| (r.id, r.title))
            .collect();
        let tz = self.circulation.time_zone;
        let rows: Vec<ClaimRow> = lines
            .iter()
            .map(|l| {
                let v = vendors.iter().find(|v| v.id == l.vendor_id);
                ClaimRow {
                    vendor: v.map(|v| v.code.clone()).unwrap_or_default(),
                    vendor_name: v.map(|v| v.name.clone()).unwrap_or_default(),
                    vendor_email: v.and_then(|v| v.email.clone()).unwrap_or_default(),
                    order_line: l.id,
                    record_id: l.record_id,
                    title: titles.get(&l.record_id).cloned().unwrap_or_default(),
                    ordered: l.quantity,
                    received: l.received,
                    ordered_on: chrono::DateTime::from_timestamp_millis(l.created_at)
                        .map(|d| d.with_timezone(&tz).date_naive().to_string())
                        .unwrap_or_default(),
                    days: (slot - l.created_at) / day_ms,
                }
            })
            .collect();
        let today = self.slot_date(slot);
        let path = self.output_dir(today)?.join(format!("claims-{today}.csv"));
        crate::printing::write_whole(
            &path,
            &crate::printing::csv_bytes(
                &rows,
                &[
                    "vendor",
                    "vendor_name",
                    "vendor_email",
                    "order_line",
                    "record_id",
                    "title",
                    "ordered",
                    "received",
                    "ordered_on",
                    "days",
                ],
            )?,
        )?;
        if !rows.is_empty() {
            tracing::warn!(
                lines = rows.len(),
                "order lines to claim from their vendors"
            );
        }
        let mut outcome = crate::jobs::JobOutcome::default();
        outcome.count("claims", rows.len() as u64);
        outcome.outputs.push(path.display().to_string());
        Ok(outcome)
    }
}
