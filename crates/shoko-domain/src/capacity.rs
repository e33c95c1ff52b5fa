//! Capacity: from storage samples taken on a schedule, how fast space is being
//! used, how many days are left until it runs out, and whether a day's growth
//! was far above normal. The lesson behind it: a tablespace that filled up
//! unnoticed stopped the flow of data between subsystems for two days.
//!
//! Pure arithmetic on (time, bytes) points; the caller decides what a series
//! measures (free space on the data dir's filesystem, room left under a
//! PostgreSQL quota).

use serde::Serialize;

const DAY_MS: f64 = 86_400_000.0;

/// One sample of a series: when, and how many bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Point {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// Bytes measured.
    pub bytes: u64,
}

/// How fast free space shrinks and when it is gone.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Forecast {
    /// Bytes free at the latest sample.
    pub free_bytes: u64,
    /// Bytes used per day over the window (least-squares slope of free
    /// space, negated): positive while space is being used up.
    pub used_per_day: f64,
    /// Days from the latest sample until free space reaches zero at that
    /// rate; `None` while free space is not shrinking.
    pub days_until_full: Option<f64>,
    /// Samples the forecast rests on.
    pub samples: usize,
}

/// Forecasts from free-space samples within `window_ms` of the latest one.
/// The growth rate is the least-squares slope over the window, so one noisy
/// sample moves it little. Needs two samples at least an hour apart.
pub fn forecast(free: &[Point], window_ms: i64) -> Option<Forecast> {
    let latest = free.iter().max_by_key(|p| p.at_ms)?;
    let window: Vec<&Point> = free
        .iter()
        .filter(|p| p.at_ms >= latest.at_ms - window_ms)
        .collect();
    let first = window.iter().map(|p| p.at_ms).min()?;
    if latest.at_ms - first < 3_600_000 || window.len() < 2 {
        return None;
    }
    let n = window.len() as f64;
    // Days from the latest sample (negative), to keep the numbers small.
    let xs: Vec<f64> = window
        .iter()
        .map(|p| (p.at_ms - latest.at_ms) as f64 / DAY_MS)
        .collect();
    let ys: Vec<f64> = window.iter().map(|p| p.bytes as f64).collect();
    let mean_x = xs.iter().sum::<f64>() / n;
    let mean_y = ys.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, y) in xs.iter().zip(&ys) {
        sxy += (x - mean_x) * (y - mean_y);
        sxx += (x - mean_x) * (x - mean_x);
    }
    if sxx == 0.0 {
        return None;
    }
    let used_per_day = -(sxy / sxx);
    let days_until_full = (used_per_day > 0.0).then(|| latest.bytes as f64 / used_per_day);
    Some(Forecast {
        free_bytes: latest.bytes,
        used_per_day,
        days_until_full,
        samples: window.len(),
    })
}

/// A day whose growth was far above the days before it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spike {
    /// Bytes the series grew in the last day.
    pub last_day: i64,
    /// The median growth per day of the days before.
    pub normal_day: i64,
}

/// Growth of a series (bytes used: database, index) per whole day, oldest
/// first: each day is the last sample in it minus the last sample of the day
/// before. Days without samples are left out.
fn daily_growth(used: &[Point]) -> Vec<i64> {
    let mut sorted: Vec<&Point> = used.iter().collect();
    sorted.sort_by_key(|p| p.at_ms);
    let Some(latest) = sorted.last().map(|p| p.at_ms) else {
        return Vec::new();
    };
    // Day k ends at latest - k days: the last day is the 24 hours up to the
    // latest sample, whatever the time of day.
    let day_of = |at: i64| (latest - at) / 86_400_000;
    let mut ends: Vec<(i64, u64)> = Vec::new();
    for p in sorted.iter().rev() {
        let d = day_of(p.at_ms);
        if ends.last().is_none_or(|(last, _)| *last != d) {
            ends.push((d, p.bytes));
        }
    }
    ends.reverse();
    ends.windows(2)
        .filter(|w| w[0].0 == w[1].0 + 1)
        .map(|w| w[1].1 as i64 - w[0].1 as i64)
        .collect()
}

/// Whether the last day's growth of a used-bytes series is more than
/// `factor` times the median of the days before (and more than `min_bytes`,
/// so a quiet database that writes a few pages is not an alert). Needs three
/// days of history before the last one.
pub fn spike(used: &[Point], factor: f64, min_bytes: u64) -> Option<Spike> {
    let growth = daily_growth(used);
    let (last, before) = growth.split_last()?;
    if before.len() < 3 {
        return None;
    }
    let mut sorted = before.to_vec();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2].max(0);
    let threshold = (median as f64 * factor).max(min_bytes as f64);
    (*last as f64 > threshold).then_some(Spike {
        last_day: *last,
        normal_day: median,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: f64 = 1_073_741_824.0;

    /// A deterministic wobble in [-1, 1] (no random numbers in tests).
    fn wobble(i: i64) -> f64 {
        ((i * 7919) % 200) as f64 / 100.0 - 1.0
    }

    fn hourly(days: i64, start_free: f64, per_day: f64, noise: f64) -> Vec<Point> {
        (0..days * 24)
            .map(|h| {
                let day = h as f64 / 24.0;
                Point {
                    at_ms: 1_700_000_000_000 + h * 3_600_000,
                    bytes: (start_free - per_day * day + noise * wobble(h)) as u64,
                }
            })
            .collect()
    }

    fn within(actual: f64, expected: f64, share: f64) -> bool {
        (actual - expected).abs() <= expected * share
    }

    #[test]
    fn steady_growth_is_forecast_within_five_percent() {
        // 50 GiB free, 0.5 GiB used a day, sampled hourly for 30 days with
        // ±200 MiB noise: 35 GiB left at the end, 70 days to go.
        let free = hourly(30, 50.0 * GB, 0.5 * GB, 0.2 * GB);
        let f = forecast(&free, 30 * 86_400_000).expect("forecast");
        let left = free.last().expect("samples").bytes as f64;
        let expected = left / (0.5 * GB);
        let days = f.days_until_full.expect("shrinking");
        assert!(within(days, expected, 0.05), "{days} against {expected}");
        assert!(within(f.used_per_day, 0.5 * GB, 0.05));
    }

    #[test]
    fn weekday_peaks_still_forecast_within_five_percent() {
        // Weekdays use 1 GiB, weekends nothing: 5/7 GiB a day on average.
        let mut free = Vec::new();
        let mut bytes = 200.0 * GB;
        for h in 0..(28 * 24) {
            let weekday = (h / 24) % 7 < 5;
            if weekday {
                bytes -= GB / 24.0;
            }
            free.push(Point {
                at_ms: 1_700_000_000_000 + h * 3_600_000,
                bytes: bytes as u64,
            });
        }
        let f = forecast(&free, 28 * 86_400_000).expect("forecast");
        let expected = bytes / (5.0 / 7.0 * GB);
        let days = f.days_until_full.expect("shrinking");
        assert!(within(days, expected, 0.05), "{days} against {expected}");
    }

    #[test]
    fn only_the_window_counts() {
        // Fast growth long ago, slow growth in the last 7 days.
        let mut free = hourly(30, 100.0 * GB, 2.0 * GB, 0.0);
        let start = free.last().expect("samples").bytes as f64;
        let t0 = free.last().expect("samples").at_ms;
        for h in 1..=(7 * 24) {
            free.push(Point {
                at_ms: t0 + h * 3_600_000,
                bytes: (start - 0.1 * GB * h as f64 / 24.0) as u64,
            });
        }
        let f = forecast(&free, 7 * 86_400_000).expect("forecast");
        assert!(within(f.used_per_day, 0.1 * GB, 0.05), "{}", f.used_per_day);
    }

    #[test]
    fn space_that_is_not_shrinking_has_no_date() {
        let free = hourly(10, 50.0 * GB, -0.1 * GB, 0.0);
        let f = forecast(&free, 10 * 86_400_000).expect("forecast");
        assert_eq!(f.days_until_full, None);
    }

    #[test]
    fn too_few_samples_give_no_forecast() {
        assert_eq!(forecast(&[], 86_400_000), None);
        let one = [Point {
            at_ms: 0,
            bytes: 10,
        }];
        assert_eq!(forecast(&one, 86_400_000), None);
    }

    fn used_series(daily: &[f64]) -> Vec<Point> {
        let mut out = Vec::new();
        let mut bytes = 10.0 * GB;
        let mut at = 1_700_000_000_000i64;
        for per_day in daily {
            for _ in 0..24 {
                bytes += per_day / 24.0;
                at += 3_600_000;
                out.push(Point {
                    at_ms: at,
                    bytes: bytes as u64,
                });
            }
        }
        out
    }

    #[test]
    fn a_day_far_above_normal_raises_the_spike_alert() {
        let mut days = vec![0.05 * GB; 14];
        days.push(2.0 * GB);
        let s = spike(&used_series(&days), 5.0, 64 << 20).expect("spike");
        assert!(within(s.last_day as f64, 2.0 * GB, 0.05));
        assert!(within(s.normal_day as f64, 0.05 * GB, 0.05));
    }

    #[test]
    fn ordinary_days_raise_no_alert() {
        let days: Vec<f64> = (0..15)
            .map(|d| (0.05 + 0.01 * (d % 3) as f64) * GB)
            .collect();
        assert_eq!(spike(&used_series(&days), 5.0, 64 << 20), None);
    }

    #[test]
    fn small_growth_on_a_quiet_database_is_no_spike() {
        // Near-zero normal growth: 10 MiB is "far above" but below the floor.
        let mut days = vec![1024.0; 10];
        days.push(10.0 * 1024.0 * 1024.0);
        assert_eq!(spike(&used_series(&days), 5.0, 64 << 20), None);
    }

    #[test]
    fn a_spike_needs_some_history() {
        assert_eq!(spike(&used_series(&[0.0, 0.0, 5.0 * GB]), 5.0, 0), None);
    }
}
