//! Circulation rules: the loan policy matrix, campus calendars and due dates,
//! fines, patron blocks, where a returned item goes, and recalls. Times are
//! Unix milliseconds; the library's time zone is an argument, never the
//! machine's.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::{CampusCode, ItemTypeCode, PatronCategoryCode};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// How long a loan runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoanPeriod {
    /// Whole days: due at the end of the last day.
    Days(u32),
    /// Hours from checkout (reserve collections).
    Hours(u32),
}

/// What one cell of the policy matrix allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoanTerms {
    /// The loan period.
    pub period: LoanPeriod,
    /// Loans a patron may have open at once; 0 means the item does not circulate.
    pub max_loans: u32,
    /// Renewals allowed per loan.
    pub renewals: u32,
    /// Whether patrons may place holds on such items.
    pub holdable: bool,
    /// Fine per day overdue, in yen (minor units).
    pub fine_per_day: i64,
    /// The most one overdue loan can cost.
    pub max_fine: i64,
}

/// One row of the matrix: a cell applies to the patron category, item type
/// and campus it names; an omitted axis matches any value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// Patron category, or any.
    #[serde(default)]
    pub patron_category: Option<PatronCategoryCode>,
    /// Item type, or any.
    #[serde(default)]
    pub item_type: Option<ItemTypeCode>,
    /// Campus that owns the item, or any.
    #[serde(default)]
    pub campus: Option<CampusCode>,
    /// The terms.
    #[serde(flatten)]
    pub terms: LoanTerms,
}

/// The loan policy matrix: the most specific rule wins (the one naming the
/// most axes; among equals, the first), else the default terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoanPolicy {
    /// Terms when no rule matches.
    pub default: LoanTerms,
    /// The matrix.
    #[serde(default)]
    pub rules: Vec<PolicyRule>,
}

impl LoanPolicy {
    /// The terms for one patron category, item type and owning campus.
    pub fn terms(
        &self,
        category: &PatronCategoryCode,
        item_type: &ItemTypeCode,
        campus: &CampusCode,
    ) -> &LoanTerms {
        fn axis<T: PartialEq>(rule: &Option<T>, value: &T) -> Option<u8> {
            match rule {
                None => Some(0),
                Some(r) if r == value => Some(1),
                Some(_) => None,
            }
        }
        let mut best: Option<(u8, &LoanTerms)> = None;
        for rule in &self.rules {
            let score = (|| {
                Some(
                    axis(&rule.patron_category, category)?
                        + axis(&rule.item_type, item_type)?
                        + axis(&rule.campus, campus)?,
                )
            })();
            if let Some(s) = score
                && best.is_none_or(|(b, _)| s > b)
            {
                best = Some((s, &rule.terms));
            }
        }
        best.map_or(&self.default, |(_, t)| t)
    }
}

/// When a campus is closed: weekly closed days and single dates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Calendar {
    /// Days of the week the campus library is closed (`Sun`, `Mon`, …).
    pub closed_weekdays: Vec<Weekday>,
    /// Holidays and other closed dates.
    pub closed_dates: BTreeSet<NaiveDate>,
}

impl Calendar {
    /// Whether the library is open on a date.
    pub fn is_open(&self, date: NaiveDate) -> bool {
        !self.closed_weekdays.contains(&date.weekday()) && !self.closed_dates.contains(&date)
    }

    /// The first open date on or after `date`. A calendar closed every day of
    /// the coming year (a configuration mistake) leaves the date as it is
    /// rather than looping.
    pub fn next_open(&self, date: NaiveDate) -> NaiveDate {
        let mut d = date;
        for _ in 0..=366 {
            if self.is_open(d) {
                return d;
            }
            match d.succ_opt() {
                Some(next) => d = next,
                None => break,
            }
        }
        date
    }
}

/// The local date of an instant in the library's time zone.
pub fn local_date(tz: Tz, at_ms: i64) -> NaiveDate {
    DateTime::from_timestamp_millis(at_ms)
        .unwrap_or_default()
        .with_timezone(&tz)
        .date_naive()
}

/// The last millisecond of a local date, as Unix milliseconds.
pub fn end_of_day(tz: Tz, date: NaiveDate) -> i64 {
    let next = date.succ_opt().unwrap_or(date);
    let midnight = next.and_time(NaiveTime::MIN);
    // Midnight exists in every zone Shoko serves; if a zone skipped it, the
    // earliest valid reading is the safe side for a patron.
    tz.from_local_datetime(&midnight).earliest().map_or(
        next.and_time(NaiveTime::MIN).and_utc().timestamp_millis(),
        |t| t.timestamp_millis(),
    ) - 1
}

/// When a loan made (or renewed) at `now` falls due: day loans at the end of
/// their last day, hour loans after their hours; a due date on a day the
/// campus is closed moves to the end of the next open day.
pub fn due_at(period: LoanPeriod, now: i64, tz: Tz, calendar: &Calendar) -> i64 {
    let due = match period {
        LoanPeriod::Days(days) => {
            let date = local_date(tz, now) + Duration::days(i64::from(days));
            end_of_day(tz, date)
        }
        LoanPeriod::Hours(hours) => now + i64::from(hours) * HOUR_MS,
    };
    let date = local_date(tz, due);
    if calendar.is_open(date) {
        due
    } else {
        end_of_day(tz, calendar.next_open(date))
    }
}

/// The fine for returning at `returned` a loan due at `due`: each started
/// day late costs `fine_per_day`, up to `max_fine`. Nothing when on time.
pub fn overdue_fine(due: i64, returned: i64, terms: &LoanTerms) -> i64 {
    if returned <= due {
        return 0;
    }
    let days = (returned - due + DAY_MS - 1) / DAY_MS;
    days.saturating_mul(terms.fine_per_day)
        .min(terms.max_fine)
        .max(0)
}

/// What decides whether a patron may borrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlockThresholds {
    /// Fines owed above this block the patron (yen).
    pub fines_over: i64,
    /// A loan overdue by more than this many days blocks the patron.
    pub overdue_days: u32,
}

impl Default for BlockThresholds {
    fn default() -> BlockThresholds {
        BlockThresholds {
            fines_over: 1000,
            overdue_days: 0,
        }
    }
}

/// Why a patron may not borrow, renew or place holds now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BlockReason {
    /// Staff blocked the patron, with this note.
    Manual {
        /// The note.
        note: String,
    },
    /// The patron's registration has expired.
    Expired {
        /// The last valid date.
        on: NaiveDate,
    },
    /// A loan is overdue.
    Overdue {
        /// When the oldest overdue loan was due.
        since: i64,
    },
    /// Too much is owed in fines.
    Fines {
        /// Owed now.
        owed: i64,
        /// The limit.
        limit: i64,
    },
}

/// The facts about a patron that decide a block, read from counters so the
/// cost does not grow with the patron's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatronStanding {
    /// A manual block's note.
    pub manual_block: Option<String>,
    /// Last valid date of the registration.
    pub expires_on: Option<NaiveDate>,
    /// The earliest due date among open loans.
    pub earliest_due: Option<i64>,
    /// Fines owed.
    pub fines_owed: i64,
}

impl PatronStanding {
    /// The first reason the patron is blocked at `now`, if any.
    pub fn block(&self, now: i64, tz: Tz, limits: &BlockThresholds) -> Option<BlockReason> {
        if let Some(note) = &self.manual_block {
            return Some(BlockReason::Manual { note: note.clone() });
        }
        if let Some(on) = self.expires_on
            && local_date(tz, now) > on
        {
            return Some(BlockReason::Expired { on });
        }
        if let Some(due) = self.earliest_due
            && now > due + i64::from(limits.overdue_days) * DAY_MS
        {
            return Some(BlockReason::Overdue { since: due });
        }
        if self.fines_owed > limits.fines_over {
            return Some(BlockReason::Fines {
                owed: self.fines_owed,
                limit: limits.fines_over,
            });
        }
        None
    }
}

/// Where an item goes when it is checked in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckinRoute {
    /// Back on the shelf here.
    Shelve,
    /// On this campus's hold shelf for a waiting hold.
    HoldShelf,
    /// Into transit to another campus.
    Transit {
        /// The destination.
        to: CampusCode,
        /// For a hold (true) or home (false).
        for_hold: bool,
    },
}

/// Routes an item checked in at `here`: to the first waiting hold's pickup
/// campus if there is one, else home.
pub fn route_checkin(
    here: &CampusCode,
    home: &CampusCode,
    hold_pickup: Option<&CampusCode>,
) -> CheckinRoute {
    match hold_pickup {
        Some(pickup) if pickup == here => CheckinRoute::HoldShelf,
        Some(pickup) => CheckinRoute::Transit {
            to: pickup.clone(),
            for_hold: true,
        },
        None if home == here => CheckinRoute::Shelve,
        None => CheckinRoute::Transit {
            to: home.clone(),
            for_hold: false,
        },
    }
}

/// How recalls shorten loans when a hold is placed on a title with no copy
/// on the shelf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecallRules {
    /// Whether a hold recalls a loan at all.
    pub enabled: bool,
    /// Days the borrower has to return a recalled item.
    pub return_within_days: u32,
    /// A borrower keeps the item at least this many days from checkout.
    pub minimum_loan_days: u32,
}

impl Default for RecallRules {
    fn default() -> RecallRules {
        RecallRules {
            enabled: true,
            return_within_days: 7,
            minimum_loan_days: 7,
        }
    }
}

impl RecallRules {
    /// The recalled due date of a loan checked out at `checked_out` and due at
    /// `due`, or `None` when recalling would not bring it earlier.
    pub fn recalled_due(
        &self,
        now: i64,
        checked_out: i64,
        due: i64,
        tz: Tz,
        calendar: &Calendar,
    ) -> Option<i64> {
        if !self.enabled {
            return None;
        }
        let by_notice = due_at(LoanPeriod::Days(self.return_within_days), now, tz, calendar);
        let by_minimum = due_at(
            LoanPeriod::Days(self.minimum_loan_days),
            checked_out,
            tz,
            calendar,
        );
        let recalled = by_notice.max(by_minimum);
        (recalled < due).then_some(recalled)
    }
}

/// The fiscal year that contains a date, named by the calendar year it
/// starts in (April 2026 – March 2027 is fiscal 2026 when it starts in April).
pub fn fiscal_year(date: NaiveDate, start_month: u32) -> i32 {
    if date.month() >= start_month {
        date.year()
    } else {
        date.year() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code<T>(parse: fn(&str) -> Result<T, crate::CodeError>, s: &str) -> T {
        parse(s).expect("test code")
    }

    fn terms(days: u32) -> LoanTerms {
        LoanTerms {
            period: LoanPeriod::Days(days),
            max_loans: 10,
            renewals: 2,
            holdable: true,
            fine_per_day: 10,
            max_fine: 500,
        }
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().expect("test date")
    }

    fn tokyo_ms(s: &str) -> i64 {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M")
            .expect("test time")
            .and_local_timezone(chrono_tz::Asia::Tokyo)
            .single()
            .expect("unambiguous")
            .timestamp_millis()
    }

    #[test]
    fn the_most_specific_policy_rule_wins() {
        let policy = LoanPolicy {
            default: terms(14),
            rules: vec![
                PolicyRule {
                    patron_category: Some(code(PatronCategoryCode::parse, "FACULTY")),
                    item_type: None,
                    campus: None,
                    terms: terms(90),
                },
                PolicyRule {
                    patron_category: Some(code(PatronCategoryCode::parse, "FACULTY")),
                    item_type: Some(code(ItemTypeCode::parse, "AV")),
                    campus: None,
                    terms: terms(7),
                },
            ],
        };
        let faculty = code(PatronCategoryCode::parse, "FACULTY");
        let student = code(PatronCategoryCode::parse, "UNDERGRAD");
        let book = code(ItemTypeCode::parse, "BOOK");
        let av = code(ItemTypeCode::parse, "AV");
        let hongo = code(CampusCode::parse, "HONGO");
        assert_eq!(
            policy.terms(&faculty, &book, &hongo).period,
            LoanPeriod::Days(90)
        );
        assert_eq!(
            policy.terms(&faculty, &av, &hongo).period,
            LoanPeriod::Days(7)
        );
        assert_eq!(
            policy.terms(&student, &av, &hongo).period,
            LoanPeriod::Days(14)
        );
    }

    #[test]
    fn a_day_loan_falls_due_at_the_end_of_its_last_local_day() {
        let cal = Calendar::default();
        let now = tokyo_ms("2026-11-25 23:30");
        let due = due_at(LoanPeriod::Days(14), now, chrono_tz::Asia::Tokyo, &cal);
        assert_eq!(due, tokyo_ms("2026-12-10 00:00") - 1);
    }

    #[test]
    fn a_due_date_on_a_closed_day_moves_to_the_next_open_day() {
        let cal = Calendar {
            closed_weekdays: vec![Weekday::Sun],
            closed_dates: [date("2026-12-07")].into(),
        };
        // 2026-11-22 + 14 days = Sunday 2026-12-06; Monday 12-07 is a holiday.
        let now = tokyo_ms("2026-11-22 10:00");
        let due = due_at(LoanPeriod::Days(14), now, chrono_tz::Asia::Tokyo, &cal);
        assert_eq!(due, tokyo_ms("2026-12-09 00:00") - 1);
    }

    #[test]
    fn a_calendar_closed_every_day_does_not_loop() {
        let cal = Calendar {
            closed_weekdays: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
                Weekday::Sat,
                Weekday::Sun,
            ],
            closed_dates: BTreeSet::new(),
        };
        assert_eq!(cal.next_open(date("2026-01-01")), date("2026-01-01"));
    }

    #[test]
    fn an_hour_loan_runs_for_its_hours() {
        let now = tokyo_ms("2026-11-25 10:00");
        let due = due_at(
            LoanPeriod::Hours(3),
            now,
            chrono_tz::Asia::Tokyo,
            &Calendar::default(),
        );
        assert_eq!(due, tokyo_ms("2026-11-25 13:00"));
    }

    #[test]
    fn fines_count_started_days_and_stop_at_the_maximum() {
        let t = terms(14);
        let due = tokyo_ms("2026-12-01 00:00") - 1;
        assert_eq!(overdue_fine(due, due, &t), 0);
        assert_eq!(overdue_fine(due, tokyo_ms("2026-12-01 10:00"), &t), 10);
        assert_eq!(overdue_fine(due, tokyo_ms("2026-12-03 10:00"), &t), 30);
        assert_eq!(overdue_fine(due, tokyo_ms("2027-12-03 10:00"), &t), 500);
    }

    #[test]
    fn a_patron_is_blocked_for_the_first_reason_that_applies() {
        let tz = chrono_tz::Asia::Tokyo;
        let now = tokyo_ms("2026-11-25 10:00");
        let limits = BlockThresholds::default();
        let mut p = PatronStanding {
            manual_block: None,
            expires_on: Some(date("2027-03-31")),
            earliest_due: Some(now + DAY_MS),
            fines_owed: 0,
        };
        assert_eq!(p.block(now, tz, &limits), None);
        p.fines_owed = 1500;
        assert!(matches!(
            p.block(now, tz, &limits),
            Some(BlockReason::Fines { .. })
        ));
        p.earliest_due = Some(now - DAY_MS);
        assert!(matches!(
            p.block(now, tz, &limits),
            Some(BlockReason::Overdue { .. })
        ));
        p.expires_on = Some(date("2026-11-24"));
        assert!(matches!(
            p.block(now, tz, &limits),
            Some(BlockReason::Expired { .. })
        ));
        p.manual_block = Some("lost card".into());
        assert!(matches!(
            p.block(now, tz, &limits),
            Some(BlockReason::Manual { .. })
        ));
    }

    #[test]
    fn a_returned_item_goes_to_a_waiting_hold_before_going_home() {
        let hongo = code(CampusCode::parse, "HONGO");
        let komaba = code(CampusCode::parse, "KOMABA");
        assert_eq!(route_checkin(&hongo, &hongo, None), CheckinRoute::Shelve);
        assert_eq!(
            route_checkin(&komaba, &hongo, None),
            CheckinRoute::Transit {
                to: hongo.clone(),
                for_hold: false
            }
        );
        assert_eq!(
            route_checkin(&komaba, &hongo, Some(&komaba)),
            CheckinRoute::HoldShelf
        );
        assert_eq!(
            route_checkin(&hongo, &hongo, Some(&komaba)),
            CheckinRoute::Transit {
                to: komaba,
                for_hold: true
            }
        );
    }

    #[test]
    fn a_recall_keeps_the_minimum_loan_and_never_lengthens_a_loan() {
        let tz = chrono_tz::Asia::Tokyo;
        let cal = Calendar::default();
        let rules = RecallRules::default();
        let out = tokyo_ms("2026-11-01 10:00");
        let due = tokyo_ms("2027-01-31 00:00");
        let now = tokyo_ms("2026-11-25 10:00");
        assert_eq!(
            rules.recalled_due(now, out, due, tz, &cal),
            Some(tokyo_ms("2026-12-03 00:00") - 1)
        );
        let quick = RecallRules {
            return_within_days: 1,
            ..rules
        };
        let fresh = tokyo_ms("2026-11-24 10:00");
        assert_eq!(
            quick.recalled_due(now, fresh, due, tz, &cal),
            Some(tokyo_ms("2026-12-02 00:00") - 1)
        );
        let soon = tokyo_ms("2026-11-27 00:00");
        assert_eq!(rules.recalled_due(now, out, soon, tz, &cal), None);
    }

    #[test]
    fn the_fiscal_year_starts_in_april() {
        assert_eq!(fiscal_year(date("2027-03-31"), 4), 2026);
        assert_eq!(fiscal_year(date("2027-04-01"), 4), 2027);
    }

    proptest::proptest! {
        #[test]
        fn a_due_date_is_never_on_a_closed_day_nor_before_the_loan(
            start in 1_700_000_000_000i64..1_900_000_000_000i64,
            days in 0u32..120,
            closed in proptest::collection::btree_set(0u32..400, 0..60),
            sunday in proptest::bool::ANY,
        ) {
            let tz = chrono_tz::Asia::Tokyo;
            let first = local_date(tz, start);
            let cal = Calendar {
                closed_weekdays: if sunday { vec![Weekday::Sun] } else { vec![] },
                closed_dates: closed.iter().map(|d| first + Duration::days(i64::from(*d))).collect(),
            };
            let due = due_at(LoanPeriod::Days(days), start, tz, &cal);
            proptest::prop_assert!(due >= start);
            proptest::prop_assert!(cal.is_open(local_date(tz, due)));
            proptest::prop_assert!(local_date(tz, due) >= first + Duration::days(i64::from(days)));
        }
    }
}
