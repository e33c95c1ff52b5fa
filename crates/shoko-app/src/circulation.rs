//! Circulation use cases: checkout, check-in with routing, renewal, holds,
//! requests for delivery from another campus, recalls, fines. Each is one
//! transaction that locks the item before the patron, checks permissions
//! first, decides by the domain's rules and keeps the counters, so its cost
//! does not grow with a patron's loans or an item's history.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use shoko_domain::circulation::{
    BlockReason, CheckinRoute, LoanTerms, PatronStanding, due_at, end_of_day, local_date,
    overdue_fine, route_checkin,
};
use shoko_domain::{
    Actor, Barcode, CampusCode, Denied, ItemTypeCode, PatronCategoryCode, Permission,
};
use shoko_store::{
    CheckinContext, CheckoutContext, FineRow, HoldRow, IdempotencyKey, LoanRow, NewLoan, PatronRow,
    StoreError, StoredItem, WriteTx,
};

use crate::App;

/// Who asks, and the idempotency key their request carried.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The actor.
    pub actor: Actor,
    /// `Idempotency-Key` with the request's fingerprint.
    pub idempotency: Option<IdempotencyKey>,
}

impl Caller {
    /// A caller without an idempotency key.
    pub fn new(actor: Actor) -> Caller {
        Caller {
            actor,
            idempotency: None,
        }
    }
}

/// Why a circulation operation did not happen. Each variant is a business
/// outcome with a stable code (see `shoko-web`'s error mapping).
#[derive(Debug, thiserror::Error)]
pub enum CircError {
    /// Not logged in, or not allowed.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// No patron with that barcode or id.
    #[error("no patron {0}")]
    NoPatron(String),
    /// No item with that barcode or id.
    #[error("no item {0}")]
    NoItem(String),
    /// No record with that id.
    #[error("no record {0}")]
    NoRecord(i64),
    /// No loan with that id.
    #[error("no loan {0}")]
    NoLoan(i64),
    /// No hold with that id.
    #[error("no hold {0}")]
    NoHold(i64),
    /// No fine with that id.
    #[error("no fine {0}")]
    NoFine(i64),
    /// The patron may not borrow now.
    #[error("patron is blocked: {0:?}")]
    PatronBlocked(BlockReason),
    /// The item's status does not allow it.
    #[error("item {barcode} is {status}")]
    ItemUnavailable {
        /// The item.
        barcode: String,
        /// Its status.
        status: String,
    },
    /// The item waits on the hold shelf for someone else.
    #[error("item {0} is on the hold shelf for another patron")]
    HeldForAnother(String),
    /// Items of this type do not circulate to this patron category.
    #[error("item {0} does not circulate to this patron")]
    NotForLoan(String),
    /// The patron has the most loans allowed.
    #[error("loan limit of {max} reached")]
    LoanLimit {
        /// The limit.
        max: u32,
    },
    /// The loan was renewed as often as allowed.
    #[error("renewal limit of {allowed} reached")]
    RenewalLimit {
        /// Renewals allowed.
        allowed: i64,
    },
    /// Another patron waits for the item.
    #[error("another patron has a hold on this item")]
    RenewalHasHolds,
    /// The loan was recalled.
    #[error("the loan was recalled")]
    RenewalRecalled,
    /// The loan was returned already.
    #[error("loan {0} is not open")]
    LoanClosed(i64),
    /// Holds are not allowed on this title for this patron.
    #[error("holds are not allowed on this item")]
    NotHoldable,
    /// The patron already has a hold on the title.
    #[error("the patron already has a hold on this title")]
    AlreadyHeld,
    /// The hold cannot be changed in its state.
    #[error("hold {id} is {status}")]
    HoldClosed {
        /// The hold.
        id: i64,
        /// Its status.
        status: String,
    },
    /// A request for an item that is at the pickup campus already.
    #[error("item {0} is already at the pickup campus")]
    AlreadyThere(String),
    /// A payment or waiver of more than is owed, or of nothing.
    #[error("amount {amount} is not between 1 and the {outstanding} outstanding")]
    BadAmount {
        /// Asked.
        amount: i64,
        /// Owed.
        outstanding: i64,
    },
    /// Input that does not make sense (field named).
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A barcode or user name already in use.
    #[error("{0} is already in use")]
    Taken(String),
    /// The idempotency key came with a different request before.
    #[error("idempotency key {0:?} was used for a different request")]
    KeyReused(String),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(StoreError),
}

impl From<StoreError> for CircError {
    fn from(e: StoreError) -> CircError {
        match e {
            StoreError::KeyReused(k) => CircError::KeyReused(k),
            e => CircError::Unexpected(e),
        }
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> CircError {
    CircError::Invalid {
        field,
        message: message.into(),
    }
}

/// A finished checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Checkout {
    /// The new loan.
    pub loan: LoanRow,
    /// The item's barcode.
    pub item_barcode: String,
    /// The patron's barcode.
    pub patron_barcode: String,
    /// The hold this checkout fulfilled (collecting from the hold shelf).
    pub fulfilled_hold: Option<i64>,
}

/// Where a checked-in item must go, for the desk to say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Routing {
    /// Back on the shelf.
    Shelve,
    /// On this campus's hold shelf.
    HoldShelf {
        /// The hold.
        hold_id: i64,
        /// Who it is for.
        patron_barcode: String,
        /// Their name.
        patron_name: String,
        /// Last day to collect it.
        expires_at: i64,
    },
    /// Into transit.
    Transit {
        /// Destination campus.
        to: String,
        /// `home`, `hold` or `request`.
        reason: String,
        /// The hold it travels for.
        hold_id: Option<i64>,
    },
}

/// A finished check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Checkin {
    /// The item's barcode.
    pub item_barcode: String,
    /// The loan it closed, if the item was on loan.
    pub loan: Option<LoanRow>,
    /// The fine charged for a late return.
    pub fine: Option<FineRow>,
    /// Whether the item arrived from a transit here.
    pub arrived: bool,
    /// Where it goes now.
    pub routing: Routing,
}

/// A placed hold, and the loan it recalled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HoldPlaced {
    /// The hold or request.
    pub hold: HoldRow,
    /// The loan shortened by a recall, with its new due date.
    pub recalled: Option<LoanRow>,
}

/// A patron's data for staff or for themselves.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PatronView {
    /// The patron.
    #[serde(flatten)]
    pub patron: PatronRow,
    /// Why they may not borrow now.
    pub block: Option<BlockReason>,
}

fn parse_date(field: &'static str, s: &str) -> Result<NaiveDate, CircError> {
    s.parse()
        .map_err(|_| invalid(field, format!("{s:?} is not a date (YYYY-MM-DD)")))
}

fn corrupt(what: String) -> CircError {
    CircError::Unexpected(StoreError::Corrupt(what))
}

impl App {
    pub(crate) async fn begin(&self, caller: &Caller) -> Result<WriteTx, StoreError> {
        self.store.begin(self.write_ctx(caller)).await
    }

    fn campus(&self, field: &'static str, code: &CampusCode) -> Result<(), CircError> {
        if self.settings.campuses.iter().any(|c| &c.code == code) {
            Ok(())
        } else {
            Err(invalid(field, format!("unknown campus {code}")))
        }
    }

    fn terms(&self, patron: &PatronRow, item: &StoredItem) -> Result<&LoanTerms, CircError> {
        let category = PatronCategoryCode::parse(&patron.category)
            .map_err(|e| corrupt(format!("patron {}: {e}", patron.id)))?;
        let item_type = ItemTypeCode::parse(&item.item_type)
            .map_err(|e| corrupt(format!("item {}: {e}", item.id)))?;
        let campus = CampusCode::parse(&item.campus)
            .map_err(|e| corrupt(format!("item {}: {e}", item.id)))?;
        Ok(self
            .circulation
            .policy
            .terms(&category, &item_type, &campus))
    }

    async fn block(
        &self,
        tx: &WriteTx,
        patron: &PatronRow,
    ) -> Result<Option<BlockReason>, CircError> {
        let earliest_due = tx.earliest_due(patron.id).await?;
        self.standing(patron, earliest_due, tx.now())
    }

    fn standing(
        &self,
        patron: &PatronRow,
        earliest_due: Option<i64>,
        now: i64,
    ) -> Result<Option<BlockReason>, CircError> {
        let standing = PatronStanding {
            manual_block: patron.manual_block.clone(),
            expires_on: patron
                .expires_on
                .as_deref()
                .map(|d| parse_date("expires_on", d))
                .transpose()?,
            earliest_due,
            fines_owed: patron.fines_owed,
        };
        Ok(standing.block(now, self.circulation.time_zone, &self.circulation.blocks))
    }

    /// The last moment to collect an item put on `campus`'s hold shelf now.
    fn shelf_expiry(&self, now: i64, campus: &CampusCode) -> i64 {
        let tz = self.circulation.time_zone;
        let last = local_date(tz, now)
            + chrono::Duration::days(i64::from(self.circulation.hold_shelf_days));
        end_of_day(tz, self.circulation.calendar(campus).next_open(last))
    }

    /// Lends an item to a patron at a campus.
    pub async fn checkout(
        &self,
        caller: &Caller,
        patron_barcode: &str,
        item_barcode: &Barcode,
        campus: &CampusCode,
    ) -> Result<Checkout, CircError> {
        caller.actor.require(Permission::Circulate)?;
        self.campus("campus", campus)?;
        let mut tx = self.begin(caller).await?;
        // Read first: on SQLite the idempotency key's row comes along.
        let context = match tx
            .checkout_context(item_barcode.as_str(), patron_barcode)
            .await
        {
            Ok(context) => context,
            Err(e) => return self.end(tx, Err(e.into())).await,
        };
        if let Some(done) = tx.replay::<Checkout>().await? {
            tx.abandon().await?;
            return Ok(done);
        }
        let outcome = self
            .checkout_in(&mut tx, context, patron_barcode, item_barcode, campus)
            .await;
        self.end(tx, outcome).await
    }

    async fn checkout_in(
        &self,
        tx: &mut WriteTx,
        CheckoutContext {
            item,
            patron,
            loan_id,
        }: CheckoutContext,
        patron_barcode: &str,
        item_barcode: &Barcode,
        campus: &CampusCode,
    ) -> Result<Checkout, CircError> {
        let item = item.ok_or_else(|| CircError::NoItem(item_barcode.to_string()))?;
        let (patron, earliest_due) =
            patron.ok_or_else(|| CircError::NoPatron(patron_barcode.to_owned()))?;
        let mut fulfilled_hold = None;
        match item.status.as_str() {
            "available" => {}
            "on_hold_shelf" => {
                let hold = tx.hold_trapping(item.id).await?;
                match hold {
                    Some(h) if h.patron_id == patron.id => fulfilled_hold = Some(h.id),
                    _ => return Err(CircError::HeldForAnother(item.barcode.clone())),
                }
            }
            status => {
                return Err(CircError::ItemUnavailable {
                    barcode: item.barcode.clone(),
                    status: status.to_owned(),
                });
            }
        }
        if let Some(reason) = self.standing(&patron, earliest_due, tx.now())? {
            return Err(CircError::PatronBlocked(reason));
        }
        let terms = self.terms(&patron, &item)?.clone();
        if terms.max_loans == 0 {
            return Err(CircError::NotForLoan(item.barcode.clone()));
        }
        if patron.open_loans >= i64::from(terms.max_loans) {
            return Err(CircError::LoanLimit {
                max: terms.max_loans,
            });
        }
        let due = due_at(
            terms.period,
            tx.now(),
            self.circulation.time_zone,
            self.circulation.calendar(campus),
        );
        let loan = tx
            .insert_loan(
                loan_id,
                &NewLoan {
                    item_id: item.id,
                    record_id: item.record_id,
                    patron_id: patron.id,
                    campus: campus.to_string(),
                    due_at: due,
                    renewals_allowed: i64::from(terms.renewals),
                    fine_per_day: terms.fine_per_day,
                    max_fine: terms.max_fine,
                },
            )
            .await?;
        tx.set_item_status(&item, "on_loan").await?;
        if let Some(h) = fulfilled_hold {
            tx.move_hold(h, &["on_shelf"], "fulfilled", None, None)
                .await?;
            tx.audit("hold.fulfil", "hold", h, None::<&()>, None::<&()>);
        }
        tx.audit("checkout", "loan", loan.id, None::<&()>, Some(&loan));
        Ok(Checkout {
            loan,
            item_barcode: item.barcode,
            patron_barcode: patron.barcode,
            fulfilled_hold,
        })
    }

    /// Takes an item back at a campus: closes its loan (charging a fine when
    /// late, anonymising it unless the patron keeps history), ends a transit
    /// that arrived, and routes the item to a waiting hold or home.
    pub async fn checkin(
        &self,
        caller: &Caller,
        item_barcode: &Barcode,
        campus: &CampusCode,
    ) -> Result<Checkin, CircError> {
        caller.actor.require(Permission::Circulate)?;
        self.campus("campus", campus)?;
        let mut tx = self.begin(caller).await?;
        // Read first: on SQLite the idempotency key's row comes along.
        let found = match tx.checkin_context(item_barcode.as_str()).await {
            Ok(found) => found,
            Err(e) => return self.end(tx, Err(e.into())).await,
        };
        if let Some(done) = tx.replay::<Checkin>().await? {
            tx.abandon().await?;
            return Ok(done);
        }
        let outcome = self.checkin_in(&mut tx, found, item_barcode, campus).await;
        self.end(tx, outcome).await
    }

    async fn checkin_in(
        &self,
        tx: &mut WriteTx,
        found: Option<(StoredItem, CheckinContext)>,
        item_barcode: &Barcode,
        campus: &CampusCode,
    ) -> Result<Checkin, CircError> {
        let (item, context) = found.ok_or_else(|| CircError::NoItem(item_barcode.to_string()))?;
        let here = campus.to_string();
        // Everything was read together before anything is written: the
        // writes then go in one batch too (see `WriteTx::later`). Closing the
        // loan changes neither the item's transit nor its holds.
        let CheckinContext {
            transit,
            trapping,
            waiting,
            loan,
            patron,
        } = context;
        let mut loan_closed = None;
        let mut fine = None;
        if let Some(loan) = loan {
            let amount = overdue_fine(
                loan.due_at,
                tx.now(),
                &LoanTerms {
                    period: shoko_domain::circulation::LoanPeriod::Days(0),
                    max_loans: 0,
                    renewals: 0,
                    holdable: false,
                    fine_per_day: loan.fine_per_day,
                    max_fine: loan.max_fine,
                },
            );
            let anonymise = patron.as_ref().is_none_or(|p| !p.keep_history);
            tx.close_loan(&loan, &here, anonymise).await?;
            if let Some(p) = &patron
                && amount > 0
            {
                let f = tx
                    .insert_fine(p.id, Some(item.id), "overdue", amount, None)
                    .await?;
                tx.audit("fine.charge", "fine", f.id, None::<&()>, Some(&f));
                fine = Some(f);
            }
            let mut closed = loan.clone();
            closed.returned_at = Some(tx.now());
            closed.returned_campus = Some(here.clone());
            if anonymise {
                closed.patron_id = None;
            }
            tx.audit("checkin", "loan", loan.id, Some(&loan), Some(&closed));
            loan_closed = Some(closed);
        }
        let mut arrived = false;
        if let Some(t) = transit {
            arrived = t.to_campus == here;
            tx.close_transit(t.id).await?;
        }
        let home = CampusCode::parse(&item.campus)
            .map_err(|e| corrupt(format!("item {}: {e}", item.id)))?;
        let (routing, status) = match trapping {
            Some(h) => {
                self.route_to_hold(tx, &item, &h, campus, &["in_transit", "on_shelf"])
                    .await?
            }
            None => match waiting {
                Some(h) => {
                    self.route_to_hold(tx, &item, &h, campus, &["waiting"])
                        .await?
                }
                None => match route_checkin(campus, &home, None) {
                    CheckinRoute::Transit { to, .. } => {
                        let t = tx
                            .insert_transit(item.id, &here, to.as_str(), "home", None)
                            .await?;
                        tx.audit("transit.send", "transit", t.id, None::<&()>, Some(&t));
                        (
                            Routing::Transit {
                                to: to.to_string(),
                                reason: "home".into(),
                                hold_id: None,
                            },
                            "in_transit",
                        )
                    }
                    _ => (Routing::Shelve, "available"),
                },
            },
        };
        if item.status != status {
            tx.set_item_status(&item, status).await?;
        }
        Ok(Checkin {
            item_barcode: item.barcode,
            loan: loan_closed,
            fine,
            arrived,
            routing,
        })
    }

    /// Sends an item to a hold: onto this campus's hold shelf when it is the
    /// pickup campus, else into transit there.
    async fn route_to_hold(
        &self,
        tx: &mut WriteTx,
        item: &StoredItem,
        hold: &HoldRow,
        campus: &CampusCode,
        from: &[&str],
    ) -> Result<(Routing, &'static str), CircError> {
        let pickup = CampusCode::parse(&hold.pickup_campus)
            .map_err(|e| corrupt(format!("hold {}: {e}", hold.id)))?;
        let here = campus.to_string();
        match route_checkin(campus, campus, Some(&pickup)) {
            CheckinRoute::HoldShelf => {
                let expires = self.shelf_expiry(tx.now(), campus);
                tx.move_hold(hold.id, from, "on_shelf", Some(item.id), Some(expires))
                    .await?;
                tx.audit("hold.shelve", "hold", hold.id, Some(hold), None::<&()>);
                let patron = tx
                    .patron(hold.patron_id)
                    .await?
                    .ok_or_else(|| corrupt(format!("hold {}: no patron", hold.id)))?;
                Ok((
                    Routing::HoldShelf {
                        hold_id: hold.id,
                        patron_barcode: patron.barcode,
                        patron_name: patron.name,
                        expires_at: expires,
                    },
                    "on_hold_shelf",
                ))
            }
            _ => {
                tx.move_hold(hold.id, from, "in_transit", Some(item.id), None)
                    .await?;
                let t = tx
                    .insert_transit(item.id, &here, pickup.as_str(), &hold.kind, Some(hold.id))
                    .await?;
                tx.audit("transit.send", "transit", t.id, None::<&()>, Some(&t));
                Ok((
                    Routing::Transit {
                        to: pickup.to_string(),
                        reason: hold.kind.clone(),
                        hold_id: Some(hold.id),
                    },
                    "in_transit",
                ))
            }
        }
    }

    /// Renews a loan from now, unless the patron is blocked, the renewals
    /// are used up, the loan was recalled, or someone waits for the item.
    pub async fn renew(&self, caller: &Caller, loan_id: i64) -> Result<LoanRow, CircError> {
        let seen = self
            .store
            .loan(loan_id)
            .await?
            .ok_or(CircError::NoLoan(loan_id))?;
        let patron_id = seen.patron_id.ok_or(CircError::LoanClosed(loan_id))?;
        caller
            .actor
            .require_self_or(patron_id, Permission::Circulate)?;
        let mut tx = self.begin(caller).await?;
        if let Some(done) = tx.replay::<LoanRow>().await? {
            tx.abandon().await?;
            return Ok(done);
        }
        let outcome = self.renew_in(&mut tx, &seen, patron_id).await;
        self.end(tx, outcome).await
    }

    async fn renew_in(
        &self,
        tx: &mut WriteTx,
        seen: &LoanRow,
        patron_id: i64,
    ) -> Result<LoanRow, CircError> {
        let item = tx
            .item(seen.item_id)
            .await?
            .ok_or_else(|| CircError::NoItem(seen.item_id.to_string()))?;
        let loan = match tx.open_loan_of_item(item.id).await? {
            Some(l) if l.id == seen.id => l,
            _ => return Err(CircError::LoanClosed(seen.id)),
        };
        let patron = tx
            .patron(patron_id)
            .await?
            .ok_or_else(|| CircError::NoPatron(patron_id.to_string()))?;
        if let Some(reason) = self.block(tx, &patron).await? {
            return Err(CircError::PatronBlocked(reason));
        }
        if loan.recalled_at.is_some() {
            return Err(CircError::RenewalRecalled);
        }
        if loan.renewals >= loan.renewals_allowed {
            return Err(CircError::RenewalLimit {
                allowed: loan.renewals_allowed,
            });
        }
        if tx.has_waiting_hold(item.record_id, item.id).await? {
            return Err(CircError::RenewalHasHolds);
        }
        let terms = self.terms(&patron, &item)?;
        let campus = CampusCode::parse(&loan.campus)
            .map_err(|e| corrupt(format!("loan {}: {e}", loan.id)))?;
        let due = due_at(
            terms.period,
            tx.now(),
            self.circulation.time_zone,
            self.circulation.calendar(&campus),
        )
        .max(loan.due_at);
        tx.set_loan_due(loan.id, due, loan.renewals + 1, false)
            .await?;
        let mut renewed = loan.clone();
        renewed.due_at = due;
        renewed.renewals += 1;
        tx.audit("renew", "loan", loan.id, Some(&loan), Some(&renewed));
        Ok(renewed)
    }

    /// Places a hold on a title (any copy) or on one copy, with a pickup
    /// campus. When no copy is on the shelf, the loan due last is recalled.
    pub async fn place_hold(
        &self,
        caller: &Caller,
        patron_id: i64,
        record_id: i64,
        item_id: Option<i64>,
        pickup: &CampusCode,
    ) -> Result<HoldPlaced, CircError> {
        caller
            .actor
            .require_self_or(patron_id, Permission::Circulate)?;
        self.campus("pickup_campus", pickup)?;
        let items = self.store.items_of(record_id).await?;
        if self.store.record_summaries(&[record_id]).await?.is_empty() {
            return Err(CircError::NoRecord(record_id));
        }
        let mut tx = self.begin(caller).await?;
        if let Some(done) = tx.replay::<HoldPlaced>().await? {
            tx.abandon().await?;
            return Ok(done);
        }
        let outcome = self
            .place_hold_in(&mut tx, patron_id, record_id, item_id, &items, pickup)
            .await;
        self.end(tx, outcome).await
    }

    async fn place_hold_in(
        &self,
        tx: &mut WriteTx,
        patron_id: i64,
        record_id: i64,
        item_id: Option<i64>,
        items: &[StoredItem],
        pickup: &CampusCode,
    ) -> Result<HoldPlaced, CircError> {
        let target = match item_id {
            Some(id) => Some(
                items
                    .iter()
                    .find(|i| i.id == id)
                    .ok_or_else(|| CircError::NoItem(id.to_string()))?,
            ),
            None => None,
        };
        let patron = tx
            .patron(patron_id)
            .await?
            .ok_or_else(|| CircError::NoPatron(patron_id.to_string()))?;
        if let Some(reason) = self.block(tx, &patron).await? {
            return Err(CircError::PatronBlocked(reason));
        }
        let holdable = match target {
            Some(i) => self.terms(&patron, i)?.holdable,
            None => {
                let mut any = false;
                for i in items {
                    any |= self.terms(&patron, i)?.holdable;
                }
                any
            }
        };
        if !holdable {
            return Err(CircError::NotHoldable);
        }
        if tx.patron_holds_record(patron.id, record_id).await? {
            return Err(CircError::AlreadyHeld);
        }
        let hold = tx
            .insert_hold("hold", record_id, item_id, patron.id, pickup.as_str())
            .await?;
        tx.audit("hold.place", "hold", hold.id, None::<&()>, Some(&hold));
        let mut recalled = None;
        if self.circulation.recall.enabled
            && item_id.is_none()
            && tx.copies_on_shelf(record_id).await? == 0
            && let Some(loan) = tx.loan_to_recall(record_id).await?
            && loan.patron_id != Some(patron.id)
        {
            let campus = CampusCode::parse(&loan.campus)
                .map_err(|e| corrupt(format!("loan {}: {e}", loan.id)))?;
            if let Some(due) = self.circulation.recall.recalled_due(
                tx.now(),
                loan.checked_out_at,
                loan.due_at,
                self.circulation.time_zone,
                self.circulation.calendar(&campus),
            ) {
                tx.set_loan_due(loan.id, due, loan.renewals, true).await?;
                let mut shortened = loan.clone();
                shortened.due_at = due;
                shortened.recalled_at = Some(tx.now());
                tx.audit("recall", "loan", loan.id, Some(&loan), Some(&shortened));
                recalled = Some(shortened);
            }
        }
        Ok(HoldPlaced { hold, recalled })
    }

    /// Asks for a copy on the shelf at another campus to be delivered to the
    /// pickup campus: a request, which the item's campus pulls (by checking
    /// it in) and sends in transit.
    pub async fn place_request(
        &self,
        caller: &Caller,
        patron_id: i64,
        item_barcode: &Barcode,
        pickup: &CampusCode,
    ) -> Result<HoldPlaced, CircError> {
        caller
            .actor
            .require_self_or(patron_id, Permission::Circulate)?;
        self.campus("pickup_campus", pickup)?;
        let mut tx = self.begin(caller).await?;
        if let Some(done) = tx.replay::<HoldPlaced>().await? {
            tx.abandon().await?;
            return Ok(done);
        }
        let outcome = async {
            let item = tx
                .item_by_barcode(item_barcode.as_str())
                .await?
                .ok_or_else(|| CircError::NoItem(item_barcode.to_string()))?;
            if item.status != "available" {
                return Err(CircError::ItemUnavailable {
                    barcode: item.barcode.clone(),
                    status: item.status.clone(),
                });
            }
            if item.campus == pickup.as_str() {
                return Err(CircError::AlreadyThere(item.barcode.clone()));
            }
            let patron = tx
                .patron(patron_id)
                .await?
                .ok_or_else(|| CircError::NoPatron(patron_id.to_string()))?;
            if let Some(reason) = self.block(&tx, &patron).await? {
                return Err(CircError::PatronBlocked(reason));
            }
            if !self.terms(&patron, &item)?.holdable {
                return Err(CircError::NotHoldable);
            }
            if tx.patron_holds_record(patron.id, item.record_id).await? {
                return Err(CircError::AlreadyHeld);
            }
            let hold = tx
                .insert_hold(
                    "request",
                    item.record_id,
                    Some(item.id),
                    patron.id,
                    pickup.as_str(),
                )
                .await?;
            tx.audit("request.place", "hold", hold.id, None::<&()>, Some(&hold));
            Ok(HoldPlaced {
                hold,
                recalled: None,
            })
        }
        .await;
        self.end(tx, outcome).await
    }

    /// Cancels a hold or request. An item already on the hold shelf for it
    /// goes back to the shelf (or home in transit).
    pub async fn cancel_hold(&self, caller: &Caller, hold_id: i64) -> Result<HoldRow, CircError> {
        self.end_hold(caller, hold_id, "cancelled").await
    }

    /// Expires a hold left on the hold shelf past its date (the hold-shelf
    /// job); its item goes back to the shelf or home.
    pub async fn expire_hold(&self, hold_id: i64) -> Result<HoldRow, CircError> {
        self.end_hold(&Caller::new(Actor::System), hold_id, "expired")
            .await
    }

    async fn end_hold(
        &self,
        caller: &Caller,
        hold_id: i64,
        end: &str,
    ) -> Result<HoldRow, CircError> {
        let seen = self
            .store
            .hold(hold_id)
            .await?
            .ok_or(CircError::NoHold(hold_id))?;
        caller
            .actor
            .require_self_or(seen.patron_id, Permission::Circulate)?;
        let mut tx = self.begin(caller).await?;
        if let Some(done) = tx.replay::<HoldRow>().await? {
            tx.abandon().await?;
            return Ok(done);
        }
        let outcome = async {
            let item = match seen.item_id {
                Some(i) => tx.item(i).await?,
                None => None,
            };
            let hold = tx.hold(hold_id).await?.ok_or(CircError::NoHold(hold_id))?;
            if !matches!(hold.status.as_str(), "waiting" | "in_transit" | "on_shelf") {
                return Err(CircError::HoldClosed {
                    id: hold.id,
                    status: hold.status.clone(),
                });
            }
            tx.move_hold(hold.id, &[hold.status.as_str()], end, None, None)
                .await?;
            if hold.status == "on_shelf"
                && let Some(item) = item
            {
                if item.campus == hold.pickup_campus {
                    tx.set_item_status(&item, "available").await?;
                } else {
                    let t = tx
                        .insert_transit(item.id, &hold.pickup_campus, &item.campus, "home", None)
                        .await?;
                    tx.audit("transit.send", "transit", t.id, None::<&()>, Some(&t));
                    tx.set_item_status(&item, "in_transit").await?;
                }
            }
            let mut cancelled = hold.clone();
            cancelled.status = "cancelled".into();
            cancelled.updated_at = tx.now();
            tx.audit(
                "hold.cancel",
                "hold",
                hold.id,
                Some(&hold),
                Some(&cancelled),
            );
            Ok(cancelled)
        }
        .await;
        self.end(tx, outcome).await
    }

    /// Charges a fine by hand (damage, a replacement card).
    pub async fn charge_fine(
        &self,
        caller: &Caller,
        patron_id: i64,
        amount: i64,
        note: &str,
    ) -> Result<FineRow, CircError> {
        caller.actor.require(Permission::FinesWrite)?;
        if amount <= 0 {
            return Err(invalid("amount", "must be more than 0 yen"));
        }
        let mut tx = self.begin(caller).await?;
        if let Some(done) = tx.replay::<FineRow>().await? {
            tx.abandon().await?;
            return Ok(done);
        }
        let outcome = async {
            tx.patron(patron_id)
                .await?
                .ok_or_else(|| CircError::NoPatron(patron_id.to_string()))?;
            let fine = tx
                .insert_fine(patron_id, None, "manual", amount, Some(note))
                .await?;
            tx.audit("fine.charge", "fine", fine.id, None::<&()>, Some(&fine));
            Ok(fine)
        }
        .await;
        self.end(tx, outcome).await
    }

    /// Takes a payment (`waive` false) or waives part of a fine.
    pub async fn settle_fine(
        &self,
        caller: &Caller,
        fine_id: i64,
        amount: i64,
        waive: bool,
    ) -> Result<FineRow, CircError> {
        caller.actor.require(Permission::FinesWrite)?;
        let mut tx = self.begin(caller).await?;
        if let Some(done) = tx.replay::<FineRow>().await? {
            tx.abandon().await?;
            return Ok(done);
        }
        let outcome = async {
            let seen = self
                .store
                .fine(fine_id)
                .await?
                .ok_or(CircError::NoFine(fine_id))?;
            tx.patron(seen.patron_id).await?;
            let fine = tx.fine(fine_id).await?.ok_or(CircError::NoFine(fine_id))?;
            let outstanding = fine.outstanding();
            if amount <= 0 || amount > outstanding {
                return Err(CircError::BadAmount {
                    amount,
                    outstanding,
                });
            }
            let kind = if waive { "waiver" } else { "payment" };
            let after = tx.settle_fine(&fine, kind, amount).await?;
            tx.audit(
                if waive { "fine.waive" } else { "fine.pay" },
                "fine",
                fine.id,
                Some(&fine),
                Some(&after),
            );
            Ok(after)
        }
        .await;
        self.end(tx, outcome).await
    }

    /// Finishes a write with its outcome, or abandons it on a refusal.
    pub(crate) async fn end<T: Serialize>(
        &self,
        tx: WriteTx,
        outcome: Result<T, CircError>,
    ) -> Result<T, CircError> {
        match outcome {
            Ok(done) => {
                tx.finish(&done).await?;
                Ok(done)
            }
            Err(e) => {
                tx.abandon().await?;
                Err(e)
            }
        }
    }

    /// A patron with their block, for staff or themselves.
    pub async fn patron_view(&self, caller: &Caller, id: i64) -> Result<PatronView, CircError> {
        caller.actor.require_self_or(id, Permission::StaffRead)?;
        let patron = self
            .store
            .patron(id)
            .await?
            .ok_or_else(|| CircError::NoPatron(id.to_string()))?;
        let earliest_due = self.store.earliest_due(id).await?;
        let block = self.standing(&patron, earliest_due, self.clock.now_ms())?;
        Ok(PatronView { patron, block })
    }

    /// A patron's open loans, soonest due first.
    pub async fn patron_loans(
        &self,
        caller: &Caller,
        id: i64,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<LoanRow>, CircError> {
        caller.actor.require_self_or(id, Permission::StaffRead)?;
        Ok(self.store.open_loans(id, offset, limit.min(500)).await?)
    }

    /// A patron's kept loan history (empty unless they opted in).
    pub async fn patron_history(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<Vec<LoanRow>, CircError> {
        caller.actor.require_self_or(id, Permission::StaffRead)?;
        Ok(self.store.loan_history(id, 500).await?)
    }

    /// A patron's active holds and requests.
    pub async fn patron_holds(&self, caller: &Caller, id: i64) -> Result<Vec<HoldRow>, CircError> {
        caller.actor.require_self_or(id, Permission::StaffRead)?;
        Ok(self.store.holds_of_patron(id).await?)
    }

    /// A patron's fines.
    pub async fn patron_fines(&self, caller: &Caller, id: i64) -> Result<Vec<FineRow>, CircError> {
        caller.actor.require_self_or(id, Permission::StaffRead)?;
        Ok(self.store.fines_of_patron(id).await?)
    }

    /// One loan, for its patron or staff.
    pub async fn loan(&self, caller: &Caller, id: i64) -> Result<LoanRow, CircError> {
        let loan = self.store.loan(id).await?.ok_or(CircError::NoLoan(id))?;
        match loan.patron_id {
            Some(p) => caller.actor.require_self_or(p, Permission::StaffRead)?,
            None => caller.actor.require(Permission::StaffRead)?,
        }
        Ok(loan)
    }

    /// One hold or request, for its patron or staff.
    pub async fn hold(&self, caller: &Caller, id: i64) -> Result<HoldRow, CircError> {
        let hold = self.store.hold(id).await?.ok_or(CircError::NoHold(id))?;
        caller
            .actor
            .require_self_or(hold.patron_id, Permission::StaffRead)?;
        Ok(hold)
    }

    /// One fine, for its patron or staff.
    pub async fn fine(&self, caller: &Caller, id: i64) -> Result<FineRow, CircError> {
        let fine = self.store.fine(id).await?.ok_or(CircError::NoFine(id))?;
        caller
            .actor
            .require_self_or(fine.patron_id, Permission::StaffRead)?;
        Ok(fine)
    }

    /// Items in transit to or from a campus.
    pub async fn transits(
        &self,
        caller: &Caller,
        campus: Option<&CampusCode>,
    ) -> Result<Vec<shoko_store::TransitRow>, CircError> {
        caller.actor.require(Permission::StaffRead)?;
        Ok(self
            .store
            .open_transits(campus.map(CampusCode::as_str))
            .await?)
    }

    /// The audit log of one thing, or all of it.
    pub async fn audit_log(
        &self,
        caller: &Caller,
        entity: Option<(&str, &str)>,
        limit: u64,
    ) -> Result<Vec<shoko_store::AuditRow>, CircError> {
        caller.actor.require(Permission::StaffRead)?;
        Ok(self.store.audit_entries(entity, limit.min(1000)).await?)
    }
}
