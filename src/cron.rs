//! Scheduled prompts' schedules: Spice's cron syntax, evaluated in UTC, pure (no host).
//!
//! Spice parses a worker's `cron` with the `croner` crate, seconds optional
//! (spiceai.org/docs/reference/cron: "cron expressions with optional seconds, like
//! `*/10 * * * * *`"). This module takes the same expressions:
//!
//! - 5 fields `minute hour day-of-month month day-of-week`, or 6 with `second` first;
//! - in each field `*`, a value, a range `a-b`, a step `*/n`, `a-b/n` or `a/n` (from `a` to
//!   the field's maximum), and comma lists of these; `?` is `*` in the day fields;
//! - month names `JAN`–`DEC` and weekday names `SUN`–`SAT` (any case); weekday `7` is Sunday;
//! - the nicknames `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@hourly`;
//! - day-of-month and day-of-week as in Vixie cron (and croner's default): when both are
//!   restricted (neither starts with `*` or `?`), a day matches either; otherwise both.
//!
//! Not taken, each with an error saying so: croner's `L` (last), `W` (nearest weekday) and
//! `#` (nth weekday), a 7th (year) field, other `@` words. Times are UTC: Spice uses the
//! runtime's local time, but a proxy-wasm VM has no time zone (the README says so).

/// A scheduled prompt goes to `<model cluster><suffix>`: the same upstream without the
/// upstream filter (a call from the root into a cluster that runs this filter would re-enter
/// the VM). `model-workers envoy` writes one per model cluster when a worker has a schedule.
pub const CALLOUT_CLUSTER_SUFFIX: &str = ".callout";

use std::fmt;

/// A parsed schedule. Each field is a bit set of the values it matches.
#[derive(Clone, PartialEq, Eq)]
pub struct Schedule {
    seconds: u64,
    minutes: u64,
    hours: u32,
    /// Bits 1–31.
    days: u32,
    /// Bits 1–12.
    months: u16,
    /// Bits 0–6, Sunday = 0.
    weekdays: u8,
    /// Day-of-month / day-of-week written as `*` or `?` (Vixie's rule, see the module doc).
    days_star: bool,
    weekdays_star: bool,
    /// The expression had a seconds field.
    with_seconds: bool,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Schedule {{ s {:x}, m {:x}, h {:x}, dom {:x}, mon {:x}, dow {:x} }}",
            self.seconds, self.minutes, self.hours, self.days, self.months, self.weekdays
        )
    }
}

/// The fields of a 5- or 6-field expression, in order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Second,
    Minute,
    Hour,
    Day,
    Month,
    Weekday,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Second => "second",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::Day => "day-of-month",
            Field::Month => "month",
            Field::Weekday => "day-of-week",
        }
    }
    /// Lowest and highest value written (weekday 7 is Sunday again).
    fn bounds(self) -> (u32, u32) {
        match self {
            Field::Second | Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::Day => (1, 31),
            Field::Month => (1, 12),
            Field::Weekday => (0, 7),
        }
    }
}

const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// How far ahead a schedule is searched (and must fire at least once to be accepted): 30
/// years covers every Feb 29 pattern.
const HORIZON_S: i64 = 30 * 366 * 86_400;

impl Schedule {
    /// Parse a `cron` value. The error completes "cron `<expr>` …" and says what to write.
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let text = expr.trim();
        let aliased = match text.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => Some("0 0 1 1 *"),
            "@monthly" => Some("0 0 1 * *"),
            "@weekly" => Some("0 0 * * 0"),
            "@daily" => Some("0 0 * * *"),
            "@hourly" => Some("0 * * * *"),
            _ if text.starts_with('@') => {
                return Err(
                    "is not a cron nickname Spice knows (@yearly, @annually, @monthly, @weekly, @daily, @hourly)"
                        .into(),
                )
            }
            _ => None,
        };
        let text = aliased.unwrap_or(text);
        let parts: Vec<&str> = text.split_whitespace().collect();
        let (with_seconds, fields): (bool, &[Field]) = match parts.len() {
            5 => (false, &[Field::Minute, Field::Hour, Field::Day, Field::Month, Field::Weekday]),
            6 => (true, &[Field::Second, Field::Minute, Field::Hour, Field::Day, Field::Month, Field::Weekday]),
            n => {
                return Err(format!(
                    "has {n} fields; Spice takes 5 (minute hour day-of-month month day-of-week) or 6 (second first), e.g. \"*/5 * * * *\""
                ))
            }
        };
        let mut s = Schedule {
            seconds: 1,
            minutes: 0,
            hours: 0,
            days: 0,
            months: 0,
            weekdays: 0,
            days_star: false,
            weekdays_star: false,
            with_seconds,
        };
        for (field, part) in fields.iter().zip(&parts) {
            let bits = parse_field(*field, part).map_err(|e| format!("{} field `{part}`: {e}", field.name()))?;
            let star = part.starts_with('*') || part.starts_with('?');
            match field {
                Field::Second => s.seconds = bits,
                Field::Minute => s.minutes = bits,
                Field::Hour => s.hours = bits as u32,
                Field::Day => (s.days, s.days_star) = (bits as u32, star),
                Field::Month => s.months = bits as u16,
                // 7 is Sunday, as 0.
                Field::Weekday => (s.weekdays, s.weekdays_star) = (((bits | (bits >> 7)) & 0x7f) as u8, star),
            }
        }
        // 2000-01-01T00:00:00Z: a leap year, so Feb 29 patterns are found.
        if s.next_after_s(946_684_800 - 1).is_none() {
            return Err("never fires (no such date, e.g. day 31 in a 30-day month)".into());
        }
        Ok(s)
    }

    /// Whether the expression had a seconds field (it can fire more than once a minute).
    pub fn has_seconds(&self) -> bool {
        self.with_seconds
    }

    /// The first fire time strictly after `after_ms` (UTC ms since the epoch), in ms; None
    /// beyond the search horizon (30 years) or past year 9999.
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        let after_s = i64::try_from(after_ms / 1000).ok()?;
        let t = self.next_after_s(after_s)?;
        u64::try_from(t).ok()?.checked_mul(1000)
    }

    /// Whether the second `t_s` (UTC seconds since the epoch) is a fire time.
    pub fn matches(&self, t_s: i64) -> bool {
        let c = Civil::from_seconds(t_s);
        self.month_ok(c.month)
            && self.day_ok(&c)
            && bit(u64::from(self.hours), c.hour)
            && bit(self.minutes, c.minute)
            && bit(self.seconds, c.second)
    }

    fn month_ok(&self, month: u32) -> bool {
        bit(u64::from(self.months), month)
    }

    fn day_ok(&self, c: &Civil) -> bool {
        let dom = bit(u64::from(self.days), c.day);
        let dow = bit(u64::from(self.weekdays), c.weekday);
        if self.days_star || self.weekdays_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    fn next_after_s(&self, after_s: i64) -> Option<i64> {
        const MAX_S: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
        let limit = after_s.checked_add(HORIZON_S)?.min(MAX_S);
        let mut t = after_s.checked_add(1)?;
        // Each step moves to the next month, day, hour, minute or matching second: a bounded
        // number of steps per day, days bounded by the horizon.
        while t <= limit {
            let c = Civil::from_seconds(t);
            if !self.month_ok(c.month) {
                t = Civil::month_start(c.year, c.month + 1);
                continue;
            }
            if !self.day_ok(&c) {
                t = t - t.rem_euclid(86_400) + 86_400;
                continue;
            }
            if !bit(u64::from(self.hours), c.hour) {
                t = t - t.rem_euclid(3_600) + 3_600;
                continue;
            }
            if !bit(self.minutes, c.minute) {
                t = t - t.rem_euclid(60) + 60;
                continue;
            }
            match next_bit(self.seconds, c.second) {
                Some(s) if s == c.second => return Some(t),
                Some(s) => t += i64::from(s - c.second),
                None => t = t - t.rem_euclid(60) + 60,
            }
        }
        None
    }
}

fn bit(set: u64, v: u32) -> bool {
    v < 64 && set & (1u64 << v) != 0
}

/// The lowest value ≥ `from` in `set`.
fn next_bit(set: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let rest = set >> from;
    (rest != 0).then(|| from + rest.trailing_zeros())
}

fn parse_field(field: Field, text: &str) -> Result<u64, String> {
    let (lo, hi) = field.bounds();
    let mut bits = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err("an empty list item".into());
        }
        if let Some(c) = item.chars().find(|c| matches!(c.to_ascii_uppercase(), 'L' | 'W' | '#')) {
            let upper = item.to_ascii_uppercase();
            let is_name = match field {
                Field::Month => MONTHS.iter().any(|m| upper.contains(m)),
                Field::Weekday => WEEKDAYS.iter().any(|d| upper.contains(d)),
                _ => false,
            };
            // `JUL` / `WED` contain the letters; only the modifiers themselves are refused.
            if !is_name || c == '#' || upper.ends_with('L') && field == Field::Weekday {
                return Err(format!(
                    "`{c}` (croner's last / nearest-weekday / nth-weekday modifiers) is not supported by model-workers; list the days instead"
                ));
            }
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| format!("step `{s}` must be a whole number ≥ 1"))?;
                if step == 0 {
                    return Err("step 0 (a step must be ≥ 1)".into());
                }
                (r, Some(step))
            }
            None => (item, None),
        };
        let (from, to) = if range == "*" || (range == "?" && matches!(field, Field::Day | Field::Weekday)) {
            (lo, if field == Field::Weekday { 6 } else { hi })
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(field, a)?, value(field, b)?);
            if a > b {
                return Err(format!("range {a}-{b} runs backwards (write the smaller value first)"));
            }
            (a, b)
        } else {
            let v = value(field, range)?;
            // `a/n`: from a to the field's end.
            (
                v,
                if step.is_some() {
                    if field == Field::Weekday {
                        6
                    } else {
                        hi
                    }
                } else {
                    v
                },
            )
        };
        let step = step.unwrap_or(1);
        let mut v = from;
        while v <= to {
            bits |= 1u64 << v;
            v += step;
        }
    }
    Ok(bits)
}

fn value(field: Field, text: &str) -> Result<u32, String> {
    let (lo, hi) = field.bounds();
    let names: &[&str] = match field {
        Field::Month => &MONTHS,
        Field::Weekday => &WEEKDAYS,
        _ => &[],
    };
    let upper = text.to_ascii_uppercase();
    if let Some(i) = names.iter().position(|n| *n == upper) {
        let i = i as u32;
        return Ok(if field == Field::Month { i + 1 } else { i });
    }
    match text.parse::<u32>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        Ok(v) => Err(format!("{v} is out of range ({lo}–{hi})")),
        Err(_) if text == "?" => Err("`?` is taken in the day fields only".into()),
        Err(_) => Err(format!("`{text}` is not a number{}", if names.is_empty() { "" } else { " or a name" })),
    }
}

/// A UTC civil time.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// Sunday = 0.
    weekday: u32,
}

impl Civil {
    fn from_seconds(t: i64) -> Civil {
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400) as u32;
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: secs / 3_600,
            minute: secs / 60 % 60,
            second: secs % 60,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }

    /// Seconds since the epoch at 00:00:00 on the first of `month` (13 → January next year).
    fn month_start(year: i64, month: u32) -> i64 {
        let (y, m) = if month > 12 { (year + 1, 1) } else { (year, i64::from(month)) };
        // Hinnant's days_from_civil.
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        (era * 146_097 + doe - 719_468) * 86_400
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// UTC seconds for a civil time (test helper, via the month start).
    fn at(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        Civil::month_start(y, mo) + i64::from(d - 1) * 86_400 + i64::from(h * 3_600 + mi * 60 + s)
    }
    fn ms(t: i64) -> u64 {
        t as u64 * 1000
    }
    fn next(expr: &str, from: i64) -> i64 {
        (Schedule::parse(expr).unwrap().next_after(ms(from)).unwrap() / 1000) as i64
    }
    fn nexts(expr: &str, from: i64, n: usize) -> Vec<i64> {
        let s = Schedule::parse(expr).unwrap();
        let mut t = ms(from);
        (0..n)
            .map(|_| {
                t = s.next_after(t).unwrap();
                (t / 1000) as i64
            })
            .collect()
    }

    #[test]
    fn civil_round_trips_over_centuries() {
        // Every day from 1899 to 2101 (leap rules for 1900 and 2000), by its month starts.
        for y in 1899..=2101 {
            for m in 1..=12 {
                let c = Civil::from_seconds(Civil::month_start(y, m));
                assert_eq!((c.year, c.month, c.day, c.hour), (y, m, 1, 0));
            }
        }
        assert_eq!(Civil::from_seconds(0).weekday, 4); // Thursday
        let c = Civil::from_seconds(at(2024, 2, 29, 23, 59, 58));
        assert_eq!((c.year, c.month, c.day, c.hour, c.minute, c.second, c.weekday), (2024, 2, 29, 23, 59, 58, 4));
        let c = Civil::from_seconds(at(1900, 3, 1, 0, 0, 0) - 1);
        assert_eq!((c.month, c.day), (2, 28)); // 1900 is not a leap year
    }

    #[test]
    fn every_minute_and_every_second() {
        let t = at(2025, 1, 1, 12, 0, 30);
        assert_eq!(
            nexts("* * * * *", t, 3),
            [at(2025, 1, 1, 12, 1, 0), at(2025, 1, 1, 12, 2, 0), at(2025, 1, 1, 12, 3, 0)]
        );
        assert_eq!(nexts("* * * * * *", t, 2), [t + 1, t + 2]);
        // Strictly after: on a fire time, the next one.
        assert_eq!(next("* * * * *", at(2025, 1, 1, 12, 1, 0)), at(2025, 1, 1, 12, 2, 0));
        // Milliseconds inside the fire second count as after it.
        let s = Schedule::parse("* * * * *").unwrap();
        assert_eq!(s.next_after(ms(at(2025, 1, 1, 12, 1, 0)) + 999), Some(ms(at(2025, 1, 1, 12, 2, 0))));
    }

    #[test]
    fn steps_ranges_lists() {
        let t = at(2025, 3, 10, 9, 7, 0);
        assert_eq!(nexts("*/10 * * * * *", t, 3), [t + 10, t + 20, t + 30]);
        assert_eq!(
            nexts("*/15 * * * *", t, 3),
            [at(2025, 3, 10, 9, 15, 0), at(2025, 3, 10, 9, 30, 0), at(2025, 3, 10, 9, 45, 0)]
        );
        assert_eq!(
            nexts("5,20 * * * *", t, 3),
            [at(2025, 3, 10, 9, 20, 0), at(2025, 3, 10, 10, 5, 0), at(2025, 3, 10, 10, 20, 0)]
        );
        assert_eq!(
            nexts("0 9-11 * * *", t, 3),
            [at(2025, 3, 10, 10, 0, 0), at(2025, 3, 10, 11, 0, 0), at(2025, 3, 11, 9, 0, 0)]
        );
        assert_eq!(
            nexts("10-30/10 * * * *", t, 4),
            [
                at(2025, 3, 10, 9, 10, 0),
                at(2025, 3, 10, 9, 20, 0),
                at(2025, 3, 10, 9, 30, 0),
                at(2025, 3, 10, 10, 10, 0)
            ]
        );
        // `a/n`: from a to the end of the field.
        assert_eq!(
            nexts("50/5 * * * *", t, 3),
            [at(2025, 3, 10, 9, 50, 0), at(2025, 3, 10, 9, 55, 0), at(2025, 3, 10, 10, 50, 0)]
        );
        // Spice's documented examples.
        assert_eq!(next("30 */5 * * * *", t), at(2025, 3, 10, 9, 10, 30));
        assert_eq!(next("5 * * * *", t), at(2025, 3, 10, 10, 5, 0));
        assert_eq!(next("*/10 * * * *", t), at(2025, 3, 10, 9, 10, 0));
    }

    #[test]
    fn days_months_weekdays() {
        // 2025-03-10 is a Monday.
        let mon = at(2025, 3, 10, 12, 0, 0);
        assert_eq!(Civil::from_seconds(mon).weekday, 1);
        assert_eq!(next("0 1 * * 1", mon), at(2025, 3, 17, 1, 0, 0)); // Spice: 1am every Monday
                                                                      // Spice: midday weekdays (strictly after Monday noon: Tuesday first, no weekend).
        let noon = |d| at(2025, 3, d, 12, 0, 0);
        assert_eq!(nexts("0 12 * * 1-5", mon, 5), [noon(11), noon(12), noon(13), noon(14), noon(17)]);
        assert_eq!(next("0 0 * * SUN", mon), at(2025, 3, 16, 0, 0, 0));
        assert_eq!(next("0 0 * * 7", mon), at(2025, 3, 16, 0, 0, 0));
        assert_eq!(next("0 0 * * sat,sun", mon), at(2025, 3, 15, 0, 0, 0));
        assert_eq!(next("0 0 * * MON-WED", mon), at(2025, 3, 11, 0, 0, 0));
        assert_eq!(next("0 0 1 * *", mon), at(2025, 4, 1, 0, 0, 0));
        assert_eq!(next("0 0 1 jan *", mon), at(2026, 1, 1, 0, 0, 0));
        assert_eq!(next("0 0 31 * *", at(2025, 4, 1, 0, 0, 0)), at(2025, 5, 31, 0, 0, 0)); // skips April's 30 days
        assert_eq!(next("0 0 29 2 *", mon), at(2028, 2, 29, 0, 0, 0));
        assert_eq!(next("0 0 29 2 *", at(2096, 3, 1, 0, 0, 0)), at(2104, 2, 29, 0, 0, 0)); // 2100 is no leap year
        assert_eq!(next("0 0 * 12 *", mon), at(2025, 12, 1, 0, 0, 0));
        // Both day fields restricted: either matches (Vixie). 2025-03-13 is a Thursday.
        assert_eq!(nexts("0 0 13 * 5", mon, 2), [at(2025, 3, 13, 0, 0, 0), at(2025, 3, 14, 0, 0, 0)]);
        // One starred (even `*/2`): both must match.
        assert_eq!(next("0 0 */2 * 5", mon), at(2025, 3, 21, 0, 0, 0));
        assert_eq!(next("0 0 ? * 5", mon), at(2025, 3, 14, 0, 0, 0));
        // Year end.
        assert_eq!(next("59 23 31 12 *", at(2025, 12, 31, 23, 59, 0)), at(2026, 12, 31, 23, 59, 0));
        assert_eq!(next("0 0 * * *", at(2025, 12, 31, 23, 59, 59)), at(2026, 1, 1, 0, 0, 0));
    }

    #[test]
    fn nicknames() {
        let t = at(2025, 3, 10, 9, 7, 0);
        assert_eq!(next("@hourly", t), at(2025, 3, 10, 10, 0, 0));
        assert_eq!(next("@daily", t), at(2025, 3, 11, 0, 0, 0));
        assert_eq!(next("@weekly", t), at(2025, 3, 16, 0, 0, 0));
        assert_eq!(next("@monthly", t), at(2025, 4, 1, 0, 0, 0));
        assert_eq!(next("@yearly", t), at(2026, 1, 1, 0, 0, 0));
        assert_eq!(next("@ANNUALLY", t), at(2026, 1, 1, 0, 0, 0));
    }

    #[test]
    fn matches_agrees_with_next() {
        for expr in ["*/7 3-5 * * *", "0 0 13 * 5", "15 */3 1,15 * *", "*/20 * * * * *", "0 0 * * 1-5"] {
            let s = Schedule::parse(expr).unwrap();
            let mut t = at(2025, 1, 1, 0, 0, 0);
            let mut found = Vec::new();
            for sec in t..t + 40 * 86_400 {
                if s.matches(sec) {
                    found.push(sec);
                }
                if found.len() == 50 {
                    break;
                }
            }
            let walked: Vec<i64> = (0..found.len())
                .map(|_| {
                    t = (s.next_after(ms(t)).unwrap() / 1000) as i64;
                    t
                })
                .collect();
            // The brute-force scan starts at t itself, next_after strictly after it.
            let expected: Vec<i64> = found.into_iter().filter(|x| *x > at(2025, 1, 1, 0, 0, 0)).collect();
            assert_eq!(walked[..expected.len()], expected[..], "{expr}");
        }
    }

    #[test]
    fn rejects_what_spice_does_not_take_or_we_do_not() {
        let cases: &[(&str, &str)] = &[
            ("", "has 0 fields"),
            ("* * * *", "has 4 fields"),
            ("* * * * * * *", "has 7 fields"),
            ("@reboot", "nickname"),
            ("@every 5s", "nickname"),
            ("60 * * * *", "minute field `60`: 60 is out of range (0–59)"),
            ("* 24 * * *", "hour field"),
            ("* * 0 * *", "day-of-month field `0`: 0 is out of range (1–31)"),
            ("* * * 13 *", "month field"),
            ("* * * * 8", "day-of-week field `8`"),
            ("*/0 * * * *", "step 0"),
            ("*/x * * * *", "step `x`"),
            ("5-1 * * * *", "runs backwards"),
            ("1,,2 * * * *", "empty list item"),
            ("? * * * *", "`?` is taken in the day fields only"),
            ("a * * * *", "`a` is not a number"),
            ("* * * FOO *", "not a number or a name"),
            ("0 0 L * *", "`L`"),
            ("0 0 15W * *", "`W`"),
            ("0 0 * * 5#2", "`#`"),
            ("0 0 * * 5L", "`L`"),
            ("0 0 31 2 *", "never fires"),
            ("0 0 30 2 *", "never fires"),
        ];
        for (expr, want) in cases {
            let e = Schedule::parse(expr).unwrap_err();
            assert!(e.contains(want), "{expr:?}: {e}");
        }
        // Names containing the modifier letters are fine.
        assert!(Schedule::parse("0 0 * JUL WED").is_ok());
        assert!(Schedule::parse("0 0 * APR,JUN,AUG *").is_ok());
    }

    #[test]
    fn far_future_and_bounds() {
        let s = Schedule::parse("* * * * *").unwrap();
        assert_eq!(s.next_after(253_402_300_799_000), None); // after 9999-12-31T23:59:59
        assert!(s.next_after(0).is_some());
        assert!(!s.has_seconds());
        assert!(Schedule::parse("* * * * * *").unwrap().has_seconds());
    }
}
