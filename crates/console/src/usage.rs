//! The project page's usage charts: requests, data out, storage and realtime connections per
//! hour (last 48 hours) and per day (last 31 days), as bars the template draws in inline SVG
//! (no script), each chart titled for screen readers, and every number also in a table.

use time::OffsetDateTime;
use warren_control_plane::metering::Usage;
use warren_control_plane::usage_series::{Step, series};

use crate::projects::bytes;

/// Hours in the hourly charts.
pub const HOURS: usize = 48;
/// Days in the daily charts.
pub const DAYS: usize = 31;
/// Width of one bar's slot in the SVG's coordinates (the SVG stretches to its box).
const SLOT: f64 = 10.0;
/// Height of the SVG's coordinates.
const HEIGHT: f64 = 100.0;

/// One bar of a chart.
pub struct Bar {
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
    /// What the bar shows, as text (its tooltip).
    pub label: String,
}

/// One chart: a measure over hours or days.
pub struct Chart {
    /// The SVG's accessible name: what, over which period, and its largest value.
    pub title: String,
    /// The SVG's coordinates' width.
    pub width: String,
    pub bars: Vec<Bar>,
    /// The largest value, formatted (the chart's scale).
    pub peak: String,
    /// The first and last slot, for the axis.
    pub first: String,
    pub last: String,
}

/// A measure with its two charts.
pub struct Measure {
    /// Stable id for tests and links (`requests`, `bytes-out`, `storage`, `realtime`).
    pub id: &'static str,
    pub name: &'static str,
    /// "Total 1.2 MiB over 31 days" or "Largest 3" over 31 days.
    pub summary: String,
    pub hourly: Chart,
    pub daily: Chart,
}

/// One slot's numbers, for the tables.
pub struct Row {
    pub when: String,
    pub requests: u64,
    pub bytes_out: String,
    pub storage: String,
    pub realtime: u64,
}

/// Everything the usage section draws.
pub struct UsageCharts {
    pub measures: Vec<Measure>,
    pub hours: Vec<Row>,
    pub days: Vec<Row>,
}

/// How a measure reads a slot, writes a value and sums a period.
struct Kind {
    id: &'static str,
    name: &'static str,
    value: fn(&Usage) -> u64,
    format: fn(u64) -> String,
    /// Whether the period's figure is a sum (else its largest value).
    sums: bool,
}

const KINDS: [Kind; 4] = [
    Kind {
        id: "requests",
        name: "Requests",
        value: |u| u.requests,
        format: |n| n.to_string(),
        sums: true,
    },
    Kind {
        id: "bytes-out",
        name: "Data out",
        value: |u| u.bytes_out,
        format: bytes,
        sums: true,
    },
    Kind {
        id: "storage",
        name: "Storage",
        value: |u| u.storage_bytes,
        format: bytes,
        sums: false,
    },
    Kind {
        id: "realtime",
        name: "Realtime connections (peak)",
        value: |u| u.realtime_peak,
        format: |n| n.to_string(),
        sums: false,
    },
];

/// The charts of `rows` (the project's hourly usage of the last 31 days) as of `now`.
pub fn charts(rows: &[Usage], now: OffsetDateTime) -> UsageCharts {
    let hours = series(rows, now, Step::Hour, HOURS);
    let days = series(rows, now, Step::Day, DAYS);
    let measures = KINDS
        .iter()
        .map(|kind| {
            let values: Vec<u64> = days.iter().map(kind.value).collect();
            let figure = if kind.sums {
                format!("Total {}", (kind.format)(values.iter().sum()))
            } else {
                format!(
                    "Largest {}",
                    (kind.format)(values.iter().copied().max().unwrap_or(0))
                )
            };
            Measure {
                id: kind.id,
                name: kind.name,
                summary: format!("{figure} in the last {DAYS} days"),
                hourly: chart(kind, &hours, "per hour, last 48 hours", |h| {
                    h.get(5..16).unwrap_or(h).to_string()
                }),
                daily: chart(kind, &days, "per day, last 31 days", str::to_string),
            }
        })
        .collect();
    let row = |u: &Usage, when: String| Row {
        when,
        requests: u.requests,
        bytes_out: bytes(u.bytes_out),
        storage: bytes(u.storage_bytes),
        realtime: u.realtime_peak,
    };
    UsageCharts {
        measures,
        hours: hours
            .iter()
            .rev()
            .map(|u| row(u, format!("{} UTC", u.hour.get(..16).unwrap_or(&u.hour))))
            .collect(),
        days: days.iter().rev().map(|u| row(u, u.hour.clone())).collect(),
    }
}

/// One measure over `slots`; `when` names a slot briefly.
fn chart(kind: &Kind, slots: &[Usage], period: &str, when: fn(&str) -> String) -> Chart {
    let values: Vec<u64> = slots.iter().map(kind.value).collect();
    let peak = values.iter().copied().max().unwrap_or(0);
    let bars = values
        .iter()
        .zip(slots)
        .enumerate()
        .map(|(i, (&value, slot))| {
            let height = if peak == 0 || value == 0 {
                0.0
            } else {
                (value as f64 / peak as f64 * (HEIGHT - 4.0)).max(1.0)
            };
            Bar {
                x: format!("{:.1}", i as f64 * SLOT + 1.0),
                y: format!("{:.1}", HEIGHT - height),
                width: format!("{:.1}", SLOT - 2.0),
                height: format!("{height:.1}"),
                label: format!("{}: {}", when(&slot.hour), (kind.format)(value)),
            }
        })
        .collect();
    let name = |i: usize| slots.get(i).map(|s| when(&s.hour)).unwrap_or_default();
    Chart {
        title: format!("{} {period}; largest {}", kind.name, (kind.format)(peak)),
        width: format!("{:.0}", slots.len() as f64 * SLOT),
        bars,
        peak: (kind.format)(peak),
        first: name(0),
        last: name(slots.len().saturating_sub(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_value_and_say_their_numbers() {
        let now = OffsetDateTime::now_utc();
        let hour = |back: i64| {
            let t = now - time::Duration::hours(back);
            format!(
                "{:04}-{:02}-{:02} {:02}:00:00Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour()
            )
        };
        let rows = [
            Usage {
                hour: hour(1),
                requests: 10,
                ..Usage::default()
            },
            Usage {
                hour: hour(0),
                requests: 5,
                bytes_out: 2048,
                ..Usage::default()
            },
        ];
        let charts = charts(&rows, now);
        let requests = &charts.measures[0];
        assert_eq!(requests.id, "requests");
        assert_eq!(requests.hourly.bars.len(), HOURS);
        assert_eq!(requests.daily.bars.len(), DAYS);
        assert_eq!(requests.hourly.peak, "10");
        let last = requests.hourly.bars.last().unwrap();
        assert_eq!(last.height, "48.0");
        assert!(last.label.ends_with(": 5"), "{}", last.label);
        assert_eq!(requests.hourly.bars[HOURS - 2].height, "96.0");
        assert_eq!(requests.hourly.bars[0].height, "0.0");
        assert_eq!(requests.summary, "Total 15 in the last 31 days");
        assert_eq!(charts.measures[1].hourly.peak, "2.0 KiB");
        assert_eq!(charts.hours.len(), HOURS);
        assert_eq!(charts.hours[0].requests, 5, "newest first");
    }
}
