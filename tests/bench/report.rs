//! Plain text tables and latency percentiles.

use std::time::Duration;

/// A table printed with aligned columns: the first left-aligned, the rest right-aligned.
pub struct Table {
    title: String,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    notes: Vec<String>,
}

impl Table {
    /// An empty table.
    pub fn new(title: impl Into<String>, headers: &[&str]) -> Self {
        Self {
            title: title.into(),
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a row (one cell per header).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Adds a line printed under the table.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Prints the table to stdout.
    pub fn print(&self) {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let line = |cells: &[String]| {
            let text: Vec<String> = cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (cell, w))| {
                    if i == 0 {
                        format!("{cell:<w$}")
                    } else {
                        format!("{cell:>w$}")
                    }
                })
                .collect();
            println!("{}", text.join("  ").trim_end());
        };
        println!("\n{}", self.title);
        println!("{}", "=".repeat(self.title.chars().count()));
        line(&self.headers);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&rule);
        for row in &self.rows {
            line(row);
        }
        for note in &self.notes {
            println!("{note}");
        }
    }
}

/// Latencies of repeated runs.
#[derive(Debug, Clone, Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    /// Records one run.
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    /// Adds the runs of `other`.
    pub fn extend(&mut self, other: &Latencies) {
        self.0.extend_from_slice(&other.0);
    }

    /// How many runs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The `p`th percentile (nearest rank), `None` without runs.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let mut sorted = self.0.clone();
        sorted.sort();
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
    }

    /// `p`th percentile in milliseconds, or "-".
    pub fn ms(&self, p: f64) -> String {
        self.percentile(p).map_or_else(|| "-".to_owned(), ms)
    }
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// A per-request average: an integer when it is one, else one decimal.
pub fn per(total: f64, n: usize) -> String {
    if n == 0 {
        return "-".to_owned();
    }
    let v = total / n as f64;
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}
