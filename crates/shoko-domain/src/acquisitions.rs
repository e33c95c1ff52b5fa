//! Acquisitions arithmetic: money in integer minor units, exchange rates
//! fixed on an invoice, consumption tax per rate, fund balances
//! (allocated = available + encumbered + expended, always), the order line's
//! states, and what a fiscal year's close carries into the next. No IO.

use serde::{Deserialize, Serialize};

/// An amount in a currency's minor units (yen have none: 1 = ¥1; for US
/// dollars 1 = 1 cent). Never a float.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Money(pub i64);

impl Money {
    /// Zero.
    pub const ZERO: Money = Money(0);

    /// The sum, or `None` on overflow.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// The difference, or `None` on overflow.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }
}

/// A currency code (ISO 4217) and how many minor units its major unit has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Currency {
    /// `JPY`, `USD`, `EUR`, `GBP` …
    pub code: String,
    /// Decimal places of the minor unit: 0 for yen, 2 for dollars.
    pub decimals: u32,
}

impl Currency {
    /// The currencies Shoko knows the decimals of; others are refused at the
    /// edge rather than guessed.
    pub fn parse(code: &str) -> Option<Currency> {
        let decimals = match code {
            "JPY" | "KRW" => 0,
            "USD" | "EUR" | "GBP" | "CNY" | "TWD" | "AUD" | "CAD" | "CHF" | "HKD" | "SGD" => 2,
            _ => return None,
        };
        Some(Currency {
            code: code.to_owned(),
            decimals,
        })
    }
}

/// An exchange rate fixed on an invoice: how many of the library's minor
/// units (yen) one major unit of the invoice's currency is worth, in
/// millionths (150.25 yen per dollar = 150_250_000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// Library minor units per major foreign unit, × 1,000,000.
    pub micros: i64,
}

/// Why an amount cannot be converted or taxed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The result does not fit.
    #[error("the amount is too large")]
    Overflow,
    /// A rate of zero or below.
    #[error("an exchange rate must be above zero")]
    BadRate,
}

/// Rounds `n / d` half away from zero (d > 0).
fn div_round(n: i128, d: i128) -> i128 {
    if n >= 0 {
        (n + d / 2) / d
    } else {
        -((-n + d / 2) / d)
    }
}

impl Rate {
    /// Converts an amount in the invoice's currency into the library's
    /// minor units, rounded half away from zero once, on the total.
    pub fn convert(self, amount: Money, from: &Currency) -> Result<Money, MoneyError> {
        if self.micros <= 0 {
            return Err(MoneyError::BadRate);
        }
        let scale = 10i128.pow(from.decimals) * 1_000_000;
        let yen = div_round(i128::from(amount.0) * i128::from(self.micros), scale);
        i64::try_from(yen)
            .map(Money)
            .map_err(|_| MoneyError::Overflow)
    }
}

/// A consumption tax rate in basis points (1000 = 10 %, 800 = 8 % reduced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaxRate(pub u32);

impl TaxRate {
    /// Japan's standard rate, 10 %.
    pub const STANDARD: TaxRate = TaxRate(1000);
}

/// One line of an invoice as arithmetic sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvoiceLineAmount {
    /// Price × quantity before discount, in the invoice's currency.
    pub gross: Money,
    /// Discount on the line, in the invoice's currency.
    pub discount: Money,
    /// Its tax rate.
    pub tax: TaxRate,
}

/// What an invoice comes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvoiceTotals {
    /// Lines after discounts, before tax, in the invoice's currency.
    pub net: Money,
    /// Tax per rate: (rate, taxable net, tax).
    pub tax_by_rate: Vec<(TaxRate, Money, Money)>,
    /// All tax.
    pub tax: Money,
    /// Shipping, in the invoice's currency (taxed at the standard rate).
    pub shipping: Money,
    /// Net + tax + shipping, in the invoice's currency.
    pub total: Money,
}

/// Totals an invoice. Tax is computed once per rate on the invoice, on the
/// sum of the lines at that rate, rounded down (as a Japanese qualified
/// invoice does: one rounding per rate, never per line); shipping is taxed at
/// the standard rate with the lines at that rate.
pub fn invoice_totals(
    lines: &[InvoiceLineAmount],
    shipping: Money,
) -> Result<InvoiceTotals, MoneyError> {
    let mut by_rate: std::collections::BTreeMap<TaxRate, i128> = Default::default();
    let mut net: i128 = 0;
    for l in lines {
        let n = i128::from(l.gross.0) - i128::from(l.discount.0);
        net += n;
        *by_rate.entry(l.tax).or_default() += n;
    }
    if shipping.0 != 0 {
        *by_rate.entry(TaxRate::STANDARD).or_default() += i128::from(shipping.0);
    }
    let mut tax_by_rate = Vec::new();
    let mut tax: i128 = 0;
    for (rate, taxable) in by_rate {
        // Rounded down (toward zero for a credit).
        let t = taxable * i128::from(rate.0) / 10_000;
        tax += t;
        let fit = |v: i128| {
            i64::try_from(v)
                .map(Money)
                .map_err(|_| MoneyError::Overflow)
        };
        tax_by_rate.push((rate, fit(taxable)?, fit(t)?));
    }
    let fit = |v: i128| {
        i64::try_from(v)
            .map(Money)
            .map_err(|_| MoneyError::Overflow)
    };
    Ok(InvoiceTotals {
        net: fit(net)?,
        tax: fit(tax)?,
        shipping,
        total: fit(net + tax + i128::from(shipping.0))?,
        tax_by_rate,
    })
}

/// A fund's money in one fiscal year, in the library's minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FundBalance {
    /// Allocated to the fund (allocations and transfers in, less transfers out).
    pub allocated: Money,
    /// Promised to open orders.
    pub encumbered: Money,
    /// Paid out.
    pub expended: Money,
}

/// Why a fund cannot take a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FundError {
    /// It would leave less than nothing available.
    #[error("the fund would be overspent: {available} available, {needed} needed")]
    Overspent {
        /// Available before the change.
        available: i64,
        /// What the change needs.
        needed: i64,
    },
    /// Amounts are never negative.
    #[error("an amount must not be negative")]
    Negative,
    /// The numbers do not fit.
    #[error("the amount is too large")]
    Overflow,
}

impl FundBalance {
    /// What is left to spend: allocated − encumbered − expended.
    pub fn available(&self) -> Money {
        Money(self.allocated.0 - self.encumbered.0 - self.expended.0)
    }

    fn check(
        self,
        allow_overspend: bool,
        needed: Money,
        before: Money,
    ) -> Result<FundBalance, FundError> {
        if !allow_overspend && self.available().0 < 0 {
            return Err(FundError::Overspent {
                available: before.0,
                needed: needed.0,
            });
        }
        Ok(self)
    }

    /// Money allocated (a budget) or, negative, taken back; taking back
    /// more than is available is refused unless overspending is allowed.
    pub fn allocate(self, amount: Money, allow_overspend: bool) -> Result<FundBalance, FundError> {
        let allocated = self
            .allocated
            .checked_add(amount)
            .ok_or(FundError::Overflow)?;
        FundBalance { allocated, ..self }.check(allow_overspend, Money(-amount.0), self.available())
    }

    /// Money promised to an order.
    pub fn encumber(self, amount: Money, allow_overspend: bool) -> Result<FundBalance, FundError> {
        if amount.0 < 0 {
            return Err(FundError::Negative);
        }
        let encumbered = self
            .encumbered
            .checked_add(amount)
            .ok_or(FundError::Overflow)?;
        FundBalance { encumbered, ..self }.check(allow_overspend, amount, self.available())
    }

    /// A promise released (an order cancelled, or its payment made): at
    /// most what is encumbered.
    pub fn release(self, amount: Money) -> Result<FundBalance, FundError> {
        if amount.0 < 0 {
            return Err(FundError::Negative);
        }
        Ok(FundBalance {
            encumbered: Money(self.encumbered.0 - amount.0.min(self.encumbered.0)),
            ..self
        })
    }

    /// A payment: `amount` expended, and the encumbrance it settles
    /// (`releasing`) released. A payment above what was encumbered uses
    /// available money, and is refused if there is not enough (unless
    /// overspending is allowed).
    pub fn expend(
        self,
        amount: Money,
        releasing: Money,
        allow_overspend: bool,
    ) -> Result<FundBalance, FundError> {
        if amount.0 < 0 {
            return Err(FundError::Negative);
        }
        let released = self.release(releasing)?;
        let expended = released
            .expended
            .checked_add(amount)
            .ok_or(FundError::Overflow)?;
        let needed = Money(amount.0 - (self.encumbered.0 - released.encumbered.0));
        FundBalance {
            expended,
            ..released
        }
        .check(allow_overspend, needed, self.available())
    }
}

/// The state of an order line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Being prepared; nothing encumbered.
    Draft,
    /// Sent to the vendor; its price encumbered on the fund.
    Sent,
    /// Some copies received.
    PartlyReceived,
    /// Every copy received.
    Received,
    /// Invoiced and paid, or closed by hand.
    Closed,
    /// Cancelled; its encumbrance released.
    Cancelled,
}

impl OrderStatus {
    /// The code stored.
    pub fn code(self) -> &'static str {
        match self {
            OrderStatus::Draft => "draft",
            OrderStatus::Sent => "sent",
            OrderStatus::PartlyReceived => "partly_received",
            OrderStatus::Received => "received",
            OrderStatus::Closed => "closed",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// From the stored code.
    pub fn from_code(code: &str) -> Option<OrderStatus> {
        Some(match code {
            "draft" => OrderStatus::Draft,
            "sent" => OrderStatus::Sent,
            "partly_received" => OrderStatus::PartlyReceived,
            "received" => OrderStatus::Received,
            "closed" => OrderStatus::Closed,
            "cancelled" => OrderStatus::Cancelled,
            _ => return None,
        })
    }

    /// The state after receiving: partly or wholly.
    pub fn after_receiving(received: u32, quantity: u32) -> OrderStatus {
        if received >= quantity {
            OrderStatus::Received
        } else {
            OrderStatus::PartlyReceived
        }
    }

    /// Whether copies can be received in this state.
    pub fn receivable(self) -> bool {
        matches!(self, OrderStatus::Sent | OrderStatus::PartlyReceived)
    }

    /// Whether the line can be cancelled in this state (nothing received).
    pub fn cancellable(self) -> bool {
        matches!(self, OrderStatus::Draft | OrderStatus::Sent)
    }
}

/// What closing a fiscal year carries into the next for one fund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rollover {
    /// The closed year's fund after the close: its encumbrance moved out.
    pub closed: FundBalance,
    /// The new year's opening: the encumbrance carried, and the available
    /// balance if chosen, as allocation.
    pub opening: FundBalance,
}

/// Closes a fund's year: open encumbrances always move to the next year
/// (the orders are still open); the available balance moves too when
/// `carry_balance`, else it lapses. The closed year keeps what it expended.
pub fn roll_over(fund: FundBalance, carry_balance: bool) -> Rollover {
    let carried = if carry_balance {
        fund.available().0.max(0)
    } else {
        0
    };
    let closed = FundBalance {
        allocated: Money(fund.allocated.0 - fund.encumbered.0 - carried),
        encumbered: Money::ZERO,
        expended: fund.expended,
    };
    let opening = FundBalance {
        allocated: Money(fund.encumbered.0 + carried),
        encumbered: fund.encumbered,
        expended: Money::ZERO,
    };
    Rollover { closed, opening }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn usd() -> Currency {
        Currency::parse("USD").expect("known")
    }

    #[test]
    fn a_dollar_amount_converts_at_the_invoice_rate_rounded_once() {
        let rate = Rate {
            micros: 150_250_000,
        };
        // $12.34 at ¥150.25 = ¥1,854.085 → ¥1,854.
        assert_eq!(rate.convert(Money(1234), &usd()), Ok(Money(1854)));
        // $0.01 × 150.25 = ¥1.5025 → ¥2 (half away from zero).
        assert_eq!(rate.convert(Money(1), &usd()), Ok(Money(2)));
        assert_eq!(
            Rate { micros: 0 }.convert(Money(1), &usd()),
            Err(MoneyError::BadRate)
        );
    }

    #[test]
    fn tax_is_rounded_down_once_per_rate_on_the_invoice() {
        let line = |gross, discount, tax| InvoiceLineAmount {
            gross: Money(gross),
            discount: Money(discount),
            tax: TaxRate(tax),
        };
        // Three books at ¥1,999 (10 %) and one newspaper at ¥155 (8 %),
        // ¥500 shipping: 10 % of 6,497 = 649.7 → 649; 8 % of 155 = 12.4 → 12.
        let t = invoice_totals(
            &[
                line(1999, 0, 1000),
                line(1999, 0, 1000),
                line(1999, 0, 1000),
                line(155, 0, 800),
            ],
            Money(500),
        )
        .expect("fits");
        assert_eq!(t.net, Money(6152));
        assert_eq!(t.tax, Money(661));
        assert_eq!(t.total, Money(6152 + 661 + 500));
        // Per line it would have been 199 × 3 + 12 + 50 = 659: per rate is the rule.
        assert_eq!(t.tax_by_rate.len(), 2);
        let discounted = invoice_totals(&[line(10_000, 1_000, 1000)], Money::ZERO).expect("fits");
        assert_eq!((discounted.net, discounted.tax), (Money(9_000), Money(900)));
    }

    #[test]
    fn an_encumbrance_above_what_is_available_is_refused() {
        let f = FundBalance::default()
            .allocate(Money(1000), false)
            .expect("budget");
        let f = f.encumber(Money(700), false).expect("fits");
        assert_eq!(
            f.encumber(Money(400), false),
            Err(FundError::Overspent {
                available: 300,
                needed: 400
            })
        );
        assert!(f.encumber(Money(400), true).is_ok());
    }

    #[test]
    fn a_payment_releases_its_encumbrance_and_may_cost_more_than_it() {
        let f = FundBalance::default()
            .allocate(Money(1000), false)
            .and_then(|f| f.encumber(Money(600), false))
            .expect("fits");
        // Invoiced at 650 with tax: 600 released, 650 expended.
        let paid = f.expend(Money(650), Money(600), false).expect("fits");
        assert_eq!(paid.encumbered, Money(0));
        assert_eq!(paid.expended, Money(650));
        assert_eq!(paid.available(), Money(350));
        assert!(paid.expend(Money(351), Money(0), false).is_err());
    }

    #[test]
    fn a_year_end_carries_encumbrances_and_the_chosen_balance() {
        let f = FundBalance {
            allocated: Money(10_000),
            encumbered: Money(2_000),
            expended: Money(5_000),
        };
        let r = roll_over(f, true);
        assert_eq!(r.opening.allocated, Money(5_000));
        assert_eq!(r.opening.encumbered, Money(2_000));
        assert_eq!(r.opening.available(), Money(3_000));
        assert_eq!(r.closed.available(), Money(0));
        assert_eq!(r.closed.expended, Money(5_000));
        let lapse = roll_over(f, false);
        assert_eq!(lapse.opening.available(), Money(0));
        assert_eq!(lapse.closed.available(), Money(3_000));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Allocate(i64),
        Encumber(i64),
        Release(i64),
        Expend(i64, i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (-50_000i64..200_000).prop_map(Op::Allocate),
            (0i64..100_000).prop_map(Op::Encumber),
            (0i64..100_000).prop_map(Op::Release),
            (0i64..100_000, 0i64..100_000).prop_map(|(a, r)| Op::Expend(a, r)),
        ]
    }

    proptest! {
        #[test]
        fn any_sequence_keeps_the_fund_identity_and_never_overspends(
            ops in proptest::collection::vec(op(), 0..60),
            allow in any::<bool>(),
        ) {
            let mut f = FundBalance::default();
            for o in ops {
                let next = match o {
                    Op::Allocate(a) => f.allocate(Money(a), allow),
                    Op::Encumber(a) => f.encumber(Money(a), allow),
                    Op::Release(a) => f.release(Money(a)),
                    Op::Expend(a, r) => f.expend(Money(a), Money(r), allow),
                };
                if let Ok(n) = next {
                    f = n;
                }
                // allocated = available + encumbered + expended, always.
                prop_assert_eq!(f.allocated.0, f.available().0 + f.encumbered.0 + f.expended.0);
                prop_assert!(f.encumbered.0 >= 0);
                if !allow {
                    prop_assert!(f.available().0 >= 0, "overspent: {:?}", f);
                }
            }
            // A year end moves money, never makes or loses it.
            let r = roll_over(f, allow);
            prop_assert_eq!(r.closed.allocated.0 + r.opening.allocated.0, f.allocated.0);
            prop_assert_eq!(r.closed.encumbered.0 + r.opening.encumbered.0, f.encumbered.0);
        }
    }
}
