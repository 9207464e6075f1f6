//! PocketBase's datetime text format, `YYYY-MM-DD HH:MM:SS.mmmZ` in UTC, without a date library.

use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC instant with millisecond precision, as PocketBase stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateTime {
    /// Milliseconds since the Unix epoch.
    pub unix_millis: i64,
}

impl DateTime {
    /// The current time.
    pub fn now() -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        DateTime {
            unix_millis: millis,
        }
    }

    /// Parses the formats PocketBase accepts for date fields: `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS`
    /// with optional fraction and `Z`, and RFC 3339 with `T` and a numeric offset (converted to
    /// UTC). Anything else is `None`.
    pub fn parse(input: &str) -> Option<Self> {
        let s = input.trim();
        let b = s.as_bytes();
        if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let year = digits(&b[0..4])?;
        let month = digits(&b[5..7])?;
        let day = digits(&b[8..10])?;
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return None;
        }
        let mut rest = &b[10..];
        let (mut hour, mut minute, mut second, mut millis) = (0, 0, 0, 0i64);
        let mut offset_secs = 0i64;
        if !rest.is_empty() {
            if rest[0] != b' ' && rest[0] != b'T' && rest[0] != b't' {
                return None;
            }
            rest = &rest[1..];
            if rest.len() < 5 || rest[2] != b':' {
                return None;
            }
            hour = digits(&rest[0..2])?;
            minute = digits(&rest[3..5])?;
            rest = &rest[5..];
            if rest.first() == Some(&b':') {
                second = digits(rest.get(1..3)?)?;
                rest = &rest[3..];
            }
            if rest.first() == Some(&b'.') {
                let frac_len = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                if frac_len == 0 {
                    return None;
                }
                let frac = &rest[1..=frac_len];
                let mut ms = 0i64;
                for i in 0..3 {
                    ms = ms * 10 + frac.get(i).map_or(0, |c| i64::from(c - b'0'));
                }
                millis = ms;
                rest = &rest[1 + frac_len..];
            }
            match rest {
                [] | [b'Z'] | [b'z'] => {}
                [b' ', b'U', b'T', b'C'] => {}
                [sign @ (b'+' | b'-'), tail @ ..] => {
                    let tail: Vec<u8> = tail.iter().copied().filter(|c| *c != b':').collect();
                    if tail.len() != 4 {
                        return None;
                    }
                    let oh = digits(&tail[0..2])?;
                    let om = digits(&tail[2..4])?;
                    offset_secs = oh * 3600 + om * 60;
                    if *sign == b'-' {
                        offset_secs = -offset_secs;
                    }
                }
                _ => return None,
            }
            if hour > 23 || minute > 59 || second > 59 {
                return None;
            }
        }
        let days = days_from_civil(year, month, day);
        let secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_secs;
        Some(DateTime {
            unix_millis: secs * 1000 + millis,
        })
    }

    /// `YYYY-MM-DD HH:MM:SS.mmmZ`.
    pub fn format(&self) -> String {
        let (y, mo, d, h, mi, s, ms) = self.parts();
        if !(0..=9999).contains(&y) {
            return format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{ms:03}Z");
        }
        // Every request stamps a date or two (records, log entries): each part's digits are
        // written into their places of the pattern, without the formatting machinery.
        let mut out = *b"0000-00-00 00:00:00.000Z";
        for (value, end, width) in [
            (y, 4, 4),
            (mo, 7, 2),
            (d, 10, 2),
            (h, 13, 2),
            (mi, 16, 2),
            (s, 19, 2),
            (ms, 23, 3),
        ] {
            let mut rest = value;
            for place in out[end - width..end].iter_mut().rev() {
                *place = b'0' + (rest % 10) as u8;
                rest /= 10;
            }
        }
        // Every byte is an ASCII digit or the pattern's own.
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Go's `time.Time.String()` for a UTC time, used in date min/max messages.
    pub fn format_go(&self) -> String {
        let (y, mo, d, h, mi, s, ms) = self.parts();
        if ms == 0 {
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} +0000 UTC")
        } else {
            let frac = format!("{ms:03}");
            let frac = frac.trim_end_matches('0');
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{frac} +0000 UTC")
        }
    }

    /// RFC 3339 (`2024-01-01T00:00:00Z`), as Go marshals a `time.Time` param.
    pub fn format_rfc3339(&self) -> String {
        let (y, mo, d, h, mi, s, ms) = self.parts();
        if ms == 0 {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
        } else {
            let frac = format!("{ms:03}");
            let frac = frac.trim_end_matches('0');
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac}Z")
        }
    }

    fn parts(&self) -> (i64, i64, i64, i64, i64, i64, i64) {
        let ms = self.unix_millis.rem_euclid(1000);
        let secs = self.unix_millis.div_euclid(1000);
        let days = secs.div_euclid(86400);
        let sod = secs.rem_euclid(86400);
        let (y, mo, d) = civil_from_days(days);
        (y, mo, d, sod / 3600, (sod % 3600) / 60, sod % 60, ms)
    }
}

/// Normalises any accepted date input to PocketBase's format; unparsable input becomes `""`.
pub fn normalize(input: &str) -> String {
    // Stored dates are nearly always in the format already (every date of every record read
    // comes through here): a valid one formats back to itself, so it is checked in place and
    // copied, without parsing it into an instant and formatting that.
    if is_formatted(input) {
        return if formatted_is_valid(input.as_bytes()) {
            input.to_string()
        } else {
            String::new()
        };
    }
    match DateTime::parse(input) {
        Some(d) => d.format(),
        None => String::new(),
    }
}

/// Whether a text of [`is_formatted`]'s shape names a real instant, as [`DateTime::parse`]
/// would accept it: a month of the year, a day of that month, and a time of day.
fn formatted_is_valid(b: &[u8]) -> bool {
    let number = |range: std::ops::Range<usize>| {
        b[range]
            .iter()
            .fold(0i64, |acc, c| acc * 10 + i64::from(c - b'0'))
    };
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && number(11..13) <= 23
        && number(14..16) <= 59
        && number(17..19) <= 59
}

/// Whether `s` has exactly the shape of [`DateTime::format`]'s output.
fn is_formatted(s: &str) -> bool {
    /// The shape, every digit a `0`: a byte of `s` less the shape's is 0 at a separator and 0
    /// to 9 at a digit. Checked for all 24 bytes without stopping early, which the compiler
    /// turns into a few wide comparisons.
    const SHAPE: &[u8; 24] = b"0000-00-00 00:00:00.000Z";
    let Ok(b) = <&[u8; 24]>::try_from(s.as_bytes()) else {
        return false;
    };
    b.iter().zip(SHAPE).fold(true, |ok, (c, shape)| {
        let d = c.wrapping_sub(*shape);
        ok & if *shape == b'0' { d <= 9 } else { d == 0 }
    })
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |acc, c| acc * 10 + i64::from(c - b'0')))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

// Howard Hinnant's days-from-civil algorithms.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_formatted_date_is_kept_exactly_when_the_parser_accepts_it() {
        // Every month, each day around its months' ends, and times of day at and past their
        // limits, in leap and common years: the in-place check agrees with a full parse.
        for year in ["0000", "1900", "2000", "2023", "2024", "9999"] {
            for month in 0..=13 {
                for day in [0, 1, 28, 29, 30, 31, 32] {
                    for (h, m, sec) in [(0, 0, 0), (23, 59, 59), (24, 0, 0), (0, 60, 0), (0, 0, 60)]
                    {
                        let input =
                            format!("{year}-{month:02}-{day:02} {h:02}:{m:02}:{sec:02}.123Z");
                        let parsed = DateTime::parse(&input).map(|d| d.format());
                        assert_eq!(normalize(&input), parsed.unwrap_or_default(), "{input}");
                    }
                }
            }
        }
    }

    #[test]
    fn formatted_dates_are_copied_and_everything_else_still_goes_through_the_formatter() {
        for input in [
            "2025-01-31 12:00:00.000Z",
            "0001-01-01 00:00:00.000Z",
            "2024-02-29 23:59:59.999Z",
            "2025-12-31 08:05:09.120Z",
        ] {
            let formatted = DateTime::parse(input).unwrap().format();
            assert_eq!(normalize(input), formatted);
            assert_eq!(normalize(input), input);
        }
        // The right shape but out of range, or another shape: as before.
        for input in [
            "2025-02-30 12:00:00.000Z",
            "2025-01-31 24:00:00.000Z",
            "2025-01-31 12:00:00.000z",
            "2025-01-31T12:00:00.000Z",
            "2025-01-31 12:00:00Z",
            " 2025-01-31 12:00:00.000Z",
            "2025-01-3a 12:00:00.000Z",
            "2025-01-31 12:0/:00.000Z",
            "2025-01-31 12:00:00:000Z",
            "2025/01-31 12:00:00.000Z",
            "2025-01-31 12:00:00.00:Z",
        ] {
            let expected = DateTime::parse(input)
                .map(|d| d.format())
                .unwrap_or_default();
            assert_eq!(normalize(input), expected, "{input}");
        }
    }

    #[test]
    fn accepted_formats_normalise_to_utc_millis() {
        assert_eq!(normalize("2024-01-02"), "2024-01-02 00:00:00.000Z");
        assert_eq!(normalize("2024-01-02 03:04:05"), "2024-01-02 03:04:05.000Z");
        assert_eq!(
            normalize("2024-01-02 03:04:05.123Z"),
            "2024-01-02 03:04:05.123Z"
        );
        assert_eq!(
            normalize("2024-02-03T04:05:06+02:00"),
            "2024-02-03 02:05:06.000Z"
        );
        assert_eq!(
            normalize("2024-02-29T23:59:59.99999-01:30"),
            "2024-03-01 01:29:59.999Z"
        );
        assert_eq!(
            normalize("1969-12-31 23:59:59.5Z"),
            "1969-12-31 23:59:59.500Z"
        );
    }

    #[test]
    fn garbage_becomes_empty() {
        for bad in [
            "",
            "yesterday",
            "2024-13-01",
            "2023-02-29",
            "2024-01-01X",
            "1700000000",
        ] {
            assert_eq!(normalize(bad), "", "{bad}");
        }
    }

    #[test]
    fn go_formats_for_messages() {
        let d = DateTime::parse("2024-01-01").unwrap();
        assert_eq!(d.format_go(), "2024-01-01 00:00:00 +0000 UTC");
        assert_eq!(d.format_rfc3339(), "2024-01-01T00:00:00Z");
    }

    #[test]
    fn the_digit_writer_matches_the_formatter() {
        let slow = |d: DateTime| {
            let (y, mo, d, h, mi, s, ms) = d.parts();
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{ms:03}Z")
        };
        let mut millis = -62_167_219_200_000; // 0000-01-01
        while millis < 253_402_300_800_000 {
            // 9999-12-31
            let date = DateTime {
                unix_millis: millis,
            };
            assert_eq!(date.format(), slow(date), "{millis}");
            millis += 7_777_777_777;
        }
        for millis in [
            0,
            999,
            1_000,
            86_399_999,
            1_733_000_000_123,
            253_402_300_799_999,
        ] {
            let date = DateTime {
                unix_millis: millis,
            };
            assert_eq!(date.format(), slow(date));
        }
        let far = DateTime {
            unix_millis: 253_402_300_800_000,
        };
        assert_eq!(far.format(), "10000-01-01 00:00:00.000Z");
    }
}
