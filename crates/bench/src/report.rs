//! Printing results: one line per scenario with each target's figures and the Warren/PocketBase
//! ratios, plus a JSON form for scripts and the smoke test.

use serde::Serialize;

use crate::load::Summary;
use crate::scenarios::Measured;

/// One target's result for one scenario, merged over rounds.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Target name.
    pub target: String,
    /// Figures, or why the target does not support the scenario.
    pub result: Result<Measured, String>,
    /// Highest server RSS seen at the end of a round, in KiB.
    pub rss_kib: Option<u64>,
}

impl Cell {
    /// Adds a round of `target` to `slot`: merged into the cell there, or its first cell.
    pub fn add_round(
        slot: &mut Option<Cell>,
        target: impl Into<String>,
        result: Result<Measured, String>,
        rss_kib: Option<u64>,
    ) {
        match slot {
            Some(cell) => cell.merge(result, rss_kib),
            None => {
                *slot = Some(Cell {
                    target: target.into(),
                    result,
                    rss_kib,
                })
            }
        }
    }

    /// Merges another round into this cell (an unsupported round makes the cell unsupported).
    pub fn merge(&mut self, result: Result<Measured, String>, rss_kib: Option<u64>) {
        self.rss_kib = match (self.rss_kib, rss_kib) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        match (&mut self.result, result) {
            (Ok(acc), Ok(new)) => {
                acc.stats.merge(&new.stats);
                acc.bytes_per_conn = new.bytes_per_conn.or(acc.bytes_per_conn);
            }
            (Ok(_), Err(reason)) => self.result = Err(reason),
            (Err(_), _) => {}
        }
    }
}

/// One scenario's line.
#[derive(Debug, Clone)]
pub struct Line {
    pub scenario: String,
    pub cells: Vec<Cell>,
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn cell_text(cell: &Cell) -> String {
    match &cell.result {
        Err(reason) => format!("unsupported by {} ({})", cell.target, shorten(reason, 90)),
        Ok(m) => {
            let s = &m.stats;
            let mut text = format!(
                "{}: {:.0} {} p50 {:.2} ms p99 {:.2} ms err {}",
                cell.target,
                s.throughput(),
                s.unit,
                s.quantile_ms(0.50),
                s.quantile_ms(0.99),
                s.errors
            );
            if s.throttled > 0 {
                text.push_str(&format!(" (429s {})", s.throttled));
            }
            if let Some(kib) = cell.rss_kib {
                text.push_str(&format!(" rss {}", mib(kib)));
            }
            if let Some(bytes) = m.bytes_per_conn {
                text.push_str(&format!(" mem/conn {:.1} KiB", bytes as f64 / 1024.0));
            }
            if s.errors > 0
                && let Some(first) = &s.first_error
            {
                text.push_str(&format!(" (first error: {})", shorten(first, 100)));
            }
            text
        }
    }
}

fn shorten(text: &str, max: usize) -> String {
    let one_line = text.replace('\n', " ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let cut: String = one_line.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// Ratios of the first target over the second: throughput, p50, p99.
pub fn ratios(line: &Line) -> Option<(f64, f64, f64)> {
    let [a, b] = line.cells.as_slice() else {
        return None;
    };
    let (Ok(a), Ok(b)) = (&a.result, &b.result) else {
        return None;
    };
    let (a, b) = (&a.stats, &b.stats);
    if b.throughput() <= 0.0 || b.quantile_ms(0.5) <= 0.0 || b.quantile_ms(0.99) <= 0.0 {
        return None;
    }
    Some((
        a.throughput() / b.throughput(),
        a.quantile_ms(0.5) / b.quantile_ms(0.5),
        a.quantile_ms(0.99) / b.quantile_ms(0.99),
    ))
}

/// Formats one scenario line.
pub fn format_line(line: &Line) -> String {
    let cells: Vec<String> = line.cells.iter().map(cell_text).collect();
    let mut text = format!("{:<16} {}", line.scenario, cells.join(" | "));
    if let (Some((thr, p50, p99)), [a, b]) = (ratios(line), line.cells.as_slice()) {
        text.push_str(&format!(
            " | {}/{}: throughput ×{thr:.2}, p50 ×{p50:.2}, p99 ×{p99:.2}",
            a.target, b.target
        ));
    }
    text
}

/// The JSON form of a cell.
#[derive(Debug, Serialize)]
pub struct CellJson {
    pub target: String,
    pub supported: bool,
    pub unsupported_reason: Option<String>,
    pub stats: Option<Summary>,
    pub rss_kib: Option<u64>,
    pub bytes_per_conn: Option<u64>,
}

/// The JSON form of a line.
#[derive(Debug, Serialize)]
pub struct LineJson {
    pub scenario: String,
    pub results: Vec<CellJson>,
    /// First target over second: throughput, p50, p99.
    pub ratio: Option<[f64; 3]>,
}

/// Converts lines to their JSON form.
pub fn to_json(lines: &[Line]) -> Vec<LineJson> {
    lines
        .iter()
        .map(|line| LineJson {
            scenario: line.scenario.clone(),
            ratio: ratios(line).map(|(a, b, c)| [a, b, c]),
            results: line
                .cells
                .iter()
                .map(|cell| CellJson {
                    target: cell.target.clone(),
                    supported: cell.result.is_ok(),
                    unsupported_reason: cell.result.as_ref().err().cloned(),
                    stats: cell.result.as_ref().ok().map(|m| m.stats.summary()),
                    rss_kib: cell.rss_kib,
                    bytes_per_conn: cell.result.as_ref().ok().and_then(|m| m.bytes_per_conn),
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::load::Stats;

    fn measured(ms: u64, n: u64) -> Measured {
        let mut stats = Stats::new("req/s");
        for _ in 0..n {
            stats.record(Duration::from_millis(ms));
        }
        stats.elapsed = Duration::from_secs(1);
        Measured {
            stats,
            bytes_per_conn: None,
        }
    }

    #[test]
    fn a_line_shows_both_targets_and_the_ratio() {
        let line = Line {
            scenario: "view".into(),
            cells: vec![
                Cell {
                    target: "warren".into(),
                    result: Ok(measured(1, 200)),
                    rss_kib: Some(10_240),
                },
                Cell {
                    target: "pocketbase".into(),
                    result: Ok(measured(2, 100)),
                    rss_kib: None,
                },
            ],
        };
        let text = format_line(&line);
        assert!(text.contains("warren: 200 req/s"), "{text}");
        assert!(text.contains("rss 10.0 MiB"), "{text}");
        assert!(text.contains("throughput ×2.00"), "{text}");
    }

    #[test]
    fn an_unsupported_target_is_named_on_the_line() {
        let line = Line {
            scenario: "list".into(),
            cells: vec![
                Cell {
                    target: "warren".into(),
                    result: Err("404 /api/collections".into()),
                    rss_kib: None,
                },
                Cell {
                    target: "pocketbase".into(),
                    result: Ok(measured(2, 100)),
                    rss_kib: None,
                },
            ],
        };
        let text = format_line(&line);
        assert!(text.contains("unsupported by warren (404"), "{text}");
        assert!(!text.contains("throughput ×"), "{text}");
    }
}
