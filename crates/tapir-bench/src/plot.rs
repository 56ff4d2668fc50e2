//! `plot`: p50 and p99 event latency against call rate and against line count, drawn from
//! the JSON reports of several `run`s into one SVG with two panels.
//!
//! The input is one JSON document after another (what `run --json-out FILE` appends), or
//! arrays of them. Runs are grouped into series: in the rate panel by (clients, lines), in
//! the line-count panel by (clients, rate). Both latency axes are logarithmic.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use plotters::prelude::*;
use serde_json::Value;

/// One run, as the plot needs it.
#[derive(Debug, Clone, Copy)]
struct Point {
    rate: f64,
    lines: f64,
    clients: u64,
    p50_ms: f64,
    p99_ms: f64,
}

/// The palette of the series, in turn.
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

/// Reads the reports in `input` and writes the SVG `output`.
pub fn draw(input: &Path, output: &Path) -> Result<()> {
    let text = std::fs::read_to_string(input)
        .with_context(|| format!("cannot read {}", input.display()))?;
    let points = parse(&text)?;
    if points.is_empty() {
        bail!(
            "{} holds no run report with event latencies",
            input.display()
        );
    }
    render(&points, output)
}

fn parse(text: &str) -> Result<Vec<Point>> {
    let mut points = Vec::new();
    for (n, document) in serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .enumerate()
    {
        let document =
            document.with_context(|| format!("JSON document {} is unreadable", n + 1))?;
        let runs = match document {
            Value::Array(runs) => runs,
            one => vec![one],
        };
        points.extend(runs.iter().filter_map(point));
    }
    Ok(points)
}

fn point(run: &Value) -> Option<Point> {
    let plan = run.get("plan")?;
    let latency = run.get("totals")?.get("event_latency")?;
    let p = Point {
        rate: plan.get("rate")?.as_f64()?,
        lines: plan.get("lines")?.as_f64()?,
        clients: plan.get("clients")?.as_u64()?,
        p50_ms: latency.get("p50_ms")?.as_f64()?,
        p99_ms: latency.get("p99_ms")?.as_f64()?,
    };
    (latency.get("count")?.as_u64()? > 0).then_some(p)
}

/// Series keyed by a label, each sorted by its x.
fn series(
    points: &[Point],
    key: impl Fn(&Point) -> String,
    x: impl Fn(&Point) -> f64,
) -> BTreeMap<String, Vec<(f64, f64, f64)>> {
    let mut out: BTreeMap<String, Vec<(f64, f64, f64)>> = BTreeMap::new();
    for p in points {
        out.entry(key(p))
            .or_default()
            .push((x(p), p.p50_ms.max(0.01), p.p99_ms.max(0.01)));
    }
    for s in out.values_mut() {
        s.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

fn render(points: &[Point], output: &Path) -> Result<()> {
    let root = SVGBackend::new(output, (1200, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (left, right) = root.split_horizontally(600);
    let by_rate = series(
        points,
        |p| format!("{} clients, {} lines", p.clients, p.lines),
        |p| p.rate,
    );
    let by_lines = series(
        points,
        |p| format!("{} clients, {} calls/s", p.clients, p.rate),
        |p| p.lines,
    );
    let y_max = points
        .iter()
        .map(|p| p.p99_ms.max(p.p50_ms))
        .fold(1.0_f64, f64::max)
        * 2.0;
    let y_min = points
        .iter()
        .map(|p| p.p50_ms.min(p.p99_ms))
        .fold(f64::INFINITY, f64::min)
        .clamp(0.01, 1.0)
        / 2.0;
    panel(
        &left,
        "event latency vs call rate",
        "call attempts per second",
        &by_rate,
        (y_min, y_max),
        false,
    )?;
    panel(
        &right,
        "event latency vs line count",
        "lines",
        &by_lines,
        (y_min, y_max),
        true,
    )?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Draws the mesh, the series and the legend of a chart, whatever its x axis.
macro_rules! draw_series {
    ($chart:ident, $x_label:expr, $series:expr) => {{
        let mut chart = $chart;
        chart
            .configure_mesh()
            .x_labels(12)
            .y_labels(12)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v}"))
            .x_desc($x_label)
            .y_desc("event latency, ms (solid p50, dashed p99)")
            .draw()
            .map_err(plot_error)?;
        for (i, (label, points)) in $series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|p| (p.0, p.1)),
                    colour.stroke_width(2),
                ))
                .map_err(plot_error)?
                .label(format!("{label} p50"))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(DashedLineSeries::new(
                    points.iter().map(|p| (p.0, p.2)),
                    6,
                    4,
                    colour.stroke_width(1),
                ))
                .map_err(plot_error)?
                .label(format!("{label} p99"))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(1))
                });
            chart
                .draw_series(
                    points
                        .iter()
                        .flat_map(|p| [(p.0, p.1), (p.0, p.2)])
                        .map(|c| Circle::new(c, 3, colour.filled())),
                )
                .map_err(plot_error)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
    }};
}

/// One panel; `log_x` for a logarithmic x axis (line counts), else linear from 0 (rates).
fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    series: &BTreeMap<String, Vec<(f64, f64, f64)>>,
    (y_min, y_max): (f64, f64),
    log_x: bool,
) -> Result<()> {
    let xs = series.values().flatten().map(|p| p.0);
    let x_lo = xs.clone().fold(f64::INFINITY, f64::min);
    let x_hi = xs.fold(0.0_f64, f64::max);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60);
    if log_x {
        let (x_lo, x_hi) = (x_lo.max(1.0) / 1.5, x_hi.max(2.0) * 1.5);
        let chart = builder
            .build_cartesian_2d((x_lo..x_hi).log_scale(), (y_min..y_max).log_scale())
            .map_err(plot_error)?;
        draw_series!(chart, x_label, series);
    } else {
        let chart = builder
            .build_cartesian_2d(0.0..x_hi.max(1.0) * 1.1, (y_min..y_max).log_scale())
            .map_err(plot_error)?;
        draw_series!(chart, x_label, series);
    }
    Ok(())
}

fn plot_error<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("cannot draw the plot: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = r#"{"plan":{"rate":500.0,"lines":10000,"clients":10},
        "totals":{"event_latency":{"count":5,"p50_ms":1.1,"p99_ms":20.0}}}"#;

    #[test]
    fn reports_in_a_row_and_in_arrays_are_read() {
        let text = format!("{RUN}\n[{RUN},{RUN}]\n{{\"other\":1}}");
        let points = parse(&text).expect("parse");
        assert_eq!(points.len(), 3);
        assert_eq!(points[0].clients, 10);
        assert!(parse("{oops").is_err());
    }

    #[test]
    fn an_svg_is_drawn() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("p.svg");
        let points = parse(&format!("{RUN}\n{}", RUN.replace("500.0", "1000.0"))).expect("parse");
        render(&points, &out).expect("render");
        let svg = std::fs::read_to_string(&out).expect("svg");
        assert!(svg.starts_with("<svg"), "{}", &svg[..50.min(svg.len())]);
    }
}
