//! Cron expressions as PocketBase reads them: five space-separated fields (minute, hour, day of
//! month, month, day of week) or one of its macros, matched against a moment at minute
//! resolution in UTC.
//!
//! A field is a comma-separated list of items; an item is `*`, a number, a range `a-b`, or
//! either of `*` and a range followed by a step `/n`. The error texts are PocketBase's, so a
//! tenant sees the same message from Warren as from PocketBase. This crate depends on nothing
//! but thiserror: the settings validator and the scheduler both use it.

use std::fmt;

/// Why an expression was refused. The text is PocketBase's wording (lower case, no full stop).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

impl Error {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

/// Longest expression accepted (the longest useful one, every minute listed, is ~170 bytes).
pub const MAX_EXPRESSION: usize = 1024;

/// PocketBase's macros and the expressions they stand for.
const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// A parsed expression: the set of matching values of each field, as bit masks.
#[derive(Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Bit `m` set: minute `m` (0-59) matches.
    minutes: u64,
    /// Bit `h`: hour `h` (0-23).
    hours: u32,
    /// Bit `d`: day of month `d` (1-31).
    days: u32,
    /// Bit `m`: month `m` (1-12).
    months: u16,
    /// Bit `w`: day of week `w` (0 = Sunday - 6).
    weekdays: u8,
    /// The expression with a macro replaced by what it stands for (what PocketBase lists).
    expression: String,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schedule").field(&self.expression).finish()
    }
}

/// One minute in UTC, split into the fields an expression matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Moment {
    /// Minutes since the Unix epoch (identifies the moment).
    pub minute_index: i64,
    /// 0-59.
    pub minute: u8,
    /// 0-23.
    pub hour: u8,
    /// 1-31.
    pub day: u8,
    /// 1-12.
    pub month: u8,
    /// 0 (Sunday) - 6.
    pub weekday: u8,
}

impl Moment {
    /// The minute holding `unix_seconds` (seconds since 1970-01-01T00:00:00Z).
    pub fn from_unix(unix_seconds: i64) -> Self {
        let minute_index = unix_seconds.div_euclid(60);
        let days = minute_index.div_euclid(1440);
        let in_day = minute_index.rem_euclid(1440);
        let (_, month, day) = civil_from_days(days);
        Self {
            minute_index,
            minute: (in_day % 60) as u8,
            hour: (in_day / 60) as u8,
            day,
            month,
            // 1970-01-01 was a Thursday (4).
            weekday: (days + 4).rem_euclid(7) as u8,
        }
    }

    /// The moment now, by the system clock.
    pub fn now() -> Self {
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Self::from_unix(seconds)
    }

    /// The moment `minutes` later.
    pub fn plus_minutes(self, minutes: i64) -> Self {
        Self::from_unix(self.minute_index.saturating_add(minutes).saturating_mul(60))
    }
}

/// Year, month (1-12) and day (1-31) of the day `days` after 1970-01-01 (proleptic Gregorian;
/// Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl Schedule {
    /// Parses `expression`: a macro, or exactly five fields separated by single spaces.
    pub fn parse(expression: &str) -> Result<Self, Error> {
        if expression.len() > MAX_EXPRESSION {
            return Err(Error::new(format!(
                "invalid cron expression - must be at most {MAX_EXPRESSION} characters"
            )));
        }
        let expression = MACROS
            .iter()
            .find(|(name, _)| *name == expression)
            .map_or(expression, |(_, expanded)| expanded);
        let fields: Vec<&str> = expression.split(' ').collect();
        let [minutes, hours, days, months, weekdays] = fields[..] else {
            return Err(Error::new(
                "invalid cron expression - must be a valid macro or to have exactly 5 space separated segments",
            ));
        };
        Ok(Self {
            minutes: field(minutes, 0, 59)?,
            hours: field(hours, 0, 23)? as u32,
            days: field(days, 1, 31)? as u32,
            months: field(months, 1, 12)? as u16,
            weekdays: field(weekdays, 0, 6)? as u8,
            expression: expression.to_string(),
        })
    }

    /// The expression (a macro replaced by the five fields it stands for).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Whether `moment` matches every field. As in PocketBase, day of month and day of week
    /// must both match (not either, as in Vixie cron).
    pub fn is_due(&self, moment: Moment) -> bool {
        self.minutes & (1 << moment.minute) != 0
            && self.hours & (1 << moment.hour) != 0
            && self.days & (1 << moment.day) != 0
            && self.months & (1 << moment.month) != 0
            && self.weekdays & (1 << moment.weekday) != 0
    }
}

/// The values one field matches, as a bit mask, each between `min` and `max` (at most 63).
fn field(text: &str, min: i64, max: i64) -> Result<u64, Error> {
    let mut slots = 0u64;
    for item in text.split(',') {
        let parts: Vec<&str> = item.split('/').collect();
        let step = match parts[..] {
            [_] => 1,
            [_, step] => {
                let step = number(step)?;
                if step < 1 || step > max {
                    return Err(Error::new(format!(
                        "invalid segment step boundary - the step must be between 1 and the {max}"
                    )));
                }
                step
            }
            _ => {
                return Err(Error::new(
                    "invalid segment step format - must be in the format */n or 1-30/n",
                ));
            }
        };
        let (from, to) = if parts[0] == "*" {
            (min, max)
        } else {
            match parts[0].split('-').collect::<Vec<_>>()[..] {
                [single] => {
                    if step != 1 {
                        return Err(Error::new(
                            "invalid segment step - step > 1 could be used only with the wildcard or range format",
                        ));
                    }
                    let value = number(single)?;
                    if value < min || value > max {
                        return Err(Error::new(
                            "invalid segment value - must be between the min and max of the segment",
                        ));
                    }
                    (value, value)
                }
                [low, high] => {
                    let low = number(low)?;
                    if low < min || low > max {
                        return Err(Error::new(format!(
                            "invalid segment range minimum - must be between {min} and {max}"
                        )));
                    }
                    let high = number(high)?;
                    if high < low || high > max {
                        return Err(Error::new(format!(
                            "invalid segment range maximum - must be between {low} and {max}"
                        )));
                    }
                    (low, high)
                }
                _ => {
                    return Err(Error::new(
                        "invalid segment range format - the range must have 1 or 2 parts",
                    ));
                }
            }
        };
        let mut value = from;
        while value <= to {
            slots |= 1 << value;
            value += step;
        }
    }
    Ok(slots)
}

/// A decimal integer with an optional sign, read the way Go's `strconv.Atoi` reads it (and
/// refused in its words, which PocketBase passes on).
fn number(text: &str) -> Result<i64, Error> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::new(format!(
            "strconv.Atoi: parsing {text:?}: invalid syntax"
        )));
    }
    text.parse::<i64>().map_err(|_| {
        Error::new(format!(
            "strconv.Atoi: parsing {text:?}: value out of range"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn error(expression: &str) -> String {
        Schedule::parse(expression).unwrap_err().to_string()
    }

    /// 2026-12-04 (a Friday) at `hh:mm` UTC.
    fn at(hour: i64, minute: i64) -> Moment {
        Moment::from_unix(1_796_342_400 + hour * 3600 + minute * 60)
    }

    #[test]
    fn moments_are_split_in_utc() {
        let m = at(13, 7);
        assert_eq!((m.month, m.day, m.hour, m.minute), (12, 4, 13, 7));
        assert_eq!(m.weekday, 5);
        let epoch = Moment::from_unix(0);
        assert_eq!((epoch.month, epoch.day, epoch.weekday), (1, 1, 4));
        // 2024-02-29, a Thursday: leap days are counted.
        let leap = Moment::from_unix(1_709_164_800);
        assert_eq!((leap.month, leap.day, leap.weekday), (2, 29, 4));
        assert_eq!(at(23, 59).plus_minutes(1), at(24, 0));
    }

    #[test]
    fn macros_expand_to_what_pocketbase_lists() {
        assert_eq!(Schedule::parse("@daily").unwrap().expression(), "0 0 * * *");
        assert_eq!(
            Schedule::parse("@hourly").unwrap().expression(),
            "0 * * * *"
        );
        assert_eq!(
            Schedule::parse("@weekly").unwrap().expression(),
            "0 0 * * 0"
        );
        assert_eq!(
            Schedule::parse("@annually").unwrap().expression(),
            "0 0 1 1 *"
        );
        assert!(Schedule::parse("@often").is_err());
        assert!(Schedule::parse("@DAILY").is_err());
    }

    #[test]
    fn steps_ranges_and_lists_match_the_right_minutes() {
        let s = Schedule::parse("*/15 9-17 * * 1-5").unwrap();
        assert!(s.is_due(at(9, 0)) && s.is_due(at(17, 45)));
        assert!(!s.is_due(at(9, 5)) && !s.is_due(at(18, 0)));
        // Saturday is not a weekday.
        assert!(!s.is_due(at(24 + 9, 0)));
        let s = Schedule::parse("1,10-20/5,59 * * * *").unwrap();
        let due: Vec<i64> = (0..60).filter(|m| s.is_due(at(0, *m))).collect();
        assert_eq!(due, [1, 10, 15, 20, 59]);
        // Day of month and day of week must both match.
        let s = Schedule::parse("0 0 4 * 1").unwrap();
        assert!(!s.is_due(at(0, 0)));
        assert!(Schedule::parse("0 0 4 * 5").unwrap().is_due(at(0, 0)));
        // A single value with step 1 is allowed, as are signs and leading zeros.
        assert!(Schedule::parse("+05/1 * * * *").unwrap().is_due(at(3, 5)));
    }

    #[test]
    fn bad_expressions_are_refused_in_pocketbases_words() {
        let segments = "invalid cron expression - must be a valid macro or to have exactly 5 space separated segments";
        assert_eq!(error(""), segments);
        assert_eq!(error("x y"), segments);
        assert_eq!(error("0  0 * * *"), segments);
        assert_eq!(error("* * * * * *"), segments);
        assert_eq!(
            error("*/99 * * * *"),
            "invalid segment step boundary - the step must be between 1 and the 59"
        );
        assert_eq!(
            error("* * * * */7"),
            "invalid segment step boundary - the step must be between 1 and the 6"
        );
        assert_eq!(
            error("5-1 * * * *"),
            "invalid segment range maximum - must be between 5 and 59"
        );
        assert_eq!(
            error("* * 0-3 * *"),
            "invalid segment range minimum - must be between 1 and 31"
        );
        assert_eq!(
            error("1/2 * * * *"),
            "invalid segment step - step > 1 could be used only with the wildcard or range format"
        );
        assert_eq!(
            error("1-2-3 * * * *"),
            "invalid segment range format - the range must have 1 or 2 parts"
        );
        assert_eq!(
            error("*/2/3 * * * *"),
            "invalid segment step format - must be in the format */n or 1-30/n"
        );
        assert_eq!(
            error("60 * * * *"),
            "invalid segment value - must be between the min and max of the segment"
        );
        assert_eq!(
            error("a * * * *"),
            "strconv.Atoi: parsing \"a\": invalid syntax"
        );
        assert_eq!(
            error("-5 * * * *"),
            "strconv.Atoi: parsing \"\": invalid syntax"
        );
        assert_eq!(
            error("99999999999999999999 * * * *"),
            "strconv.Atoi: parsing \"99999999999999999999\": value out of range"
        );
        assert!(error(&"1,".repeat(600)).contains("at most 1024"));
    }

    proptest! {
        /// Any text parses or is refused; it never panics.
        #[test]
        fn any_text_parses_or_is_refused(text in "[0-9*/,@a-z -]{0,40}") {
            let _ = Schedule::parse(&text);
        }

        /// A plain value in each field matches exactly that moment among its neighbours.
        #[test]
        fn a_plain_expression_matches_only_its_minute(minutes in 0i64..(60 * 24 * 366 * 4)) {
            let moment = Moment::from_unix(1_700_000_000 / 60 * 60 + minutes * 60);
            let expression = format!(
                "{} {} {} {} {}",
                moment.minute, moment.hour, moment.day, moment.month, moment.weekday
            );
            let schedule = Schedule::parse(&expression).unwrap();
            prop_assert!(schedule.is_due(moment));
            prop_assert!(!schedule.is_due(moment.plus_minutes(1)));
            prop_assert!(!schedule.is_due(moment.plus_minutes(-60)));
        }

        /// `*/n` matches exactly the multiples of n within the field.
        #[test]
        fn a_step_matches_multiples(step in 1i64..=59, minute in 0i64..60) {
            let schedule = Schedule::parse(&format!("*/{step} * * * *")).unwrap();
            prop_assert_eq!(schedule.is_due(at(5, minute)), minute % step == 0);
        }

        /// Weekdays follow the calendar: seven days on is the same weekday.
        #[test]
        fn weekdays_repeat_every_seven_days(days in -100_000i64..100_000) {
            let a = Moment::from_unix(days * 86_400);
            let b = Moment::from_unix((days + 7) * 86_400);
            prop_assert_eq!(a.weekday, b.weekday);
            prop_assert!(a.weekday < 7 && (1..=31).contains(&a.day) && (1..=12).contains(&a.month));
        }
    }
}
