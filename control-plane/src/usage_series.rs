//! Usage as chart series: the stored hourly rows laid on a fixed run of hours or days ending
//! now, with the slots that saw no usage filled with zeros, and hours summed into days (counts
//! add up; storage and realtime peaks take the largest value).

use time::{Duration, OffsetDateTime};

use crate::metering::Usage;

/// The width of one slot of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// One hour; a slot's `hour` is `YYYY-MM-DD HH:00:00Z`.
    Hour,
    /// One UTC day; a slot's `hour` is `YYYY-MM-DD`.
    Day,
}

impl Step {
    fn key(self, t: OffsetDateTime) -> String {
        let day = format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day());
        match self {
            Step::Hour => format!("{day} {:02}:00:00Z", t.hour()),
            Step::Day => day,
        }
    }

    fn of_row(self, hour: &str) -> &str {
        match self {
            Step::Hour => hour,
            Step::Day => hour.get(..10).unwrap_or(hour),
        }
    }

    fn length(self) -> Duration {
        match self {
            Step::Hour => Duration::HOUR,
            Step::Day => Duration::DAY,
        }
    }
}

/// `rows` (hourly usage) as `count` slots of `step`, oldest first, the last one holding `now`.
/// Rows outside the run are left out.
pub fn series(rows: &[Usage], now: OffsetDateTime, step: Step, count: usize) -> Vec<Usage> {
    let mut slots: Vec<Usage> = (0..count)
        .rev()
        .map(|back| Usage {
            hour: step.key(now - step.length() * back as i32),
            ..Usage::default()
        })
        .collect();
    for row in rows {
        let key = step.of_row(&row.hour);
        if let Ok(i) = slots.binary_search_by(|slot| slot.hour.as_str().cmp(key)) {
            let slot = &mut slots[i];
            slot.requests += row.requests;
            slot.bytes_in += row.bytes_in;
            slot.bytes_out += row.bytes_out;
            slot.storage_bytes = slot.storage_bytes.max(row.storage_bytes);
            slot.realtime_seconds += row.realtime_seconds;
            slot.realtime_peak = slot.realtime_peak.max(row.realtime_peak);
            slot.records_written += row.records_written;
            slot.hook_cpu_ms += row.hook_cpu_ms;
        }
    }
    carry_storage(&mut slots);
    slots
}

/// Storage is measured only in slots that saw writes: a slot with none keeps the size measured
/// before it (from the first measured slot on), as the data is still there.
fn carry_storage(slots: &mut [Usage]) {
    let mut last = 0;
    for slot in slots {
        if slot.storage_bytes == 0 {
            slot.storage_bytes = last;
        } else {
            last = slot.storage_bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(year: i32, month: u8, day: u8, hour: u8, minute: u8) -> OffsetDateTime {
        let date = time::Date::from_calendar_date(year, month.try_into().unwrap(), day).unwrap();
        date.with_hms(hour, minute, 0).unwrap().assume_utc()
    }

    fn row(hour: &str, requests: u64, storage: u64) -> Usage {
        Usage {
            hour: hour.into(),
            requests,
            storage_bytes: storage,
            ..Usage::default()
        }
    }

    #[test]
    fn hours_are_filled_with_zeros_and_end_now() {
        let now = at(2026, 12, 4, 3, 25);
        let rows = [
            row("2026-12-03 01:00:00Z", 9, 0),
            row("2026-12-04 02:00:00Z", 4, 100),
            row("2026-12-04 03:00:00Z", 2, 90),
        ];
        let hours = series(&rows, now, Step::Hour, 3);
        let shape: Vec<(&str, u64)> = hours
            .iter()
            .map(|u| (u.hour.as_str(), u.requests))
            .collect();
        assert_eq!(
            shape,
            [
                ("2026-12-04 01:00:00Z", 0),
                ("2026-12-04 02:00:00Z", 4),
                ("2026-12-04 03:00:00Z", 2)
            ]
        );
    }

    #[test]
    fn days_add_counts_and_keep_the_largest_storage() {
        let now = at(2026, 12, 4, 0, 5);
        let rows = [
            row("2026-11-30 23:00:00Z", 1, 0),
            row("2026-12-03 01:00:00Z", 9, 300),
            row("2026-12-03 17:00:00Z", 1, 200),
        ];
        let days = series(&rows, now, Step::Day, 3);
        let shape: Vec<(&str, u64, u64)> = days
            .iter()
            .map(|u| (u.hour.as_str(), u.requests, u.storage_bytes))
            .collect();
        assert_eq!(
            shape,
            [
                ("2026-12-02", 0, 0),
                ("2026-12-03", 10, 300),
                ("2026-12-04", 0, 300)
            ]
        );
    }
}
