//! Latency histograms (microseconds) and the report shapes printed as a table or JSON.

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest latency recorded exactly: 60 s. Larger values are clamped to it.
const MAX_US: u64 = 60_000_000;

/// A latency histogram in microseconds, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("1 µs to 60 s at 3 digits is a valid range")
}

/// Records one latency, clamped into the histogram's range.
pub fn record(histogram: &mut Histogram<u64>, micros: u64) {
    let _ = histogram.record(micros.clamp(1, MAX_US));
}

/// Percentiles of a histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }

    /// "p50/p99/p99.9/max" for a table cell.
    pub fn cell(&self) -> String {
        if self.count == 0 {
            return "-".into();
        }
        format!(
            "{:.2}/{:.2}/{:.2}/{:.2}",
            self.p50_ms, self.p99_ms, self.p999_ms, self.max_ms
        )
    }
}

/// One second of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Second {
    pub t_s: u64,
    pub calls_started: u64,
    pub calls_completed: u64,
    pub active_calls: u64,
    pub events_delivered: u64,
    pub event_latency: Percentiles,
    pub lost: u64,
    pub reordered: u64,
    /// Server CPU over this second, in percent of one core.
    pub server_cpu_pct: Option<f64>,
    pub server_rss_mib: Option<f64>,
}

impl Second {
    pub const HEADER: &'static str = "   t  started completed  active     events  lat ms p50/p99/p99.9/max  lost reord  cpu%   rss MiB";

    pub fn row(&self) -> String {
        format!(
            "{:>4} {:>8} {:>9} {:>7} {:>10}  {:>28} {:>5} {:>5} {:>5} {:>9}",
            self.t_s,
            self.calls_started,
            self.calls_completed,
            self.active_calls,
            self.events_delivered,
            self.event_latency.cell(),
            self.lost,
            self.reordered,
            opt(self.server_cpu_pct, 0),
            opt(self.server_rss_mib, 1),
        )
    }
}

/// A number with `digits` decimals, or "-".
pub fn opt(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}
