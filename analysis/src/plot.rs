//! The plots of a report: which quantities of `metrics.csv` each one draws, with what unit,
//! and their drawing (SVG text for the page and separate files, PNG files for papers).

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::ReportError;
use crate::metrics::{Metrics, Series};

/// The font every plot's text is measured and (in PNGs) drawn with, shipped with the crate
/// so that a report needs no system font (DejaVu Sans, licence beside it).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
pub(crate) const FONT_FAMILY: &str = "sans-serif";

/// Width and height of every plot, pixels.
pub const PLOT_SIZE: (u32, u32) = (900, 460);

/// The horizontal axis of every time plot.
pub const TIME_AXIS: &str = "time (days)";

/// How the values of a plot are shown, which picks the unit on its axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A share from 0 to 1.
    Share,
    Milliseconds,
    /// Bytes, shown in the binary multiple that suits the largest value.
    Bytes,
    /// Creds (byte-days), shown like bytes.
    ByteDays,
    Count,
}

/// One line of a plot for each group.
#[derive(Debug, Clone, Copy)]
pub struct LineSpec {
    /// Added to the group's name in the legend when a plot has more than one line per group.
    pub label: &'static str,
    pub dashed: bool,
    /// The value at row `i`, or `None` where it is undefined (no fetch in that hour).
    pub value: fn(&Series, usize) -> Option<f64>,
}

/// A plot over time.
#[derive(Debug, Clone)]
pub struct PlotSpec {
    /// File stem and HTML id (`plot-<id>`).
    pub id: String,
    pub title: String,
    /// What the vertical axis shows, without its unit.
    pub quantity: String,
    pub unit: Unit,
    /// Columns of `metrics.csv` it needs; a plot whose columns are absent is left out.
    pub columns: Vec<String>,
    pub lines: Vec<LineSpec>,
}

fn at(series: &Series, column: &str, i: usize) -> Option<f64> {
    series.column(column).and_then(|v| v.get(i)).copied()
}

fn spec(
    id: &str,
    title: &str,
    quantity: &str,
    unit: Unit,
    columns: &[&str],
    lines: Vec<LineSpec>,
) -> PlotSpec {
    PlotSpec {
        id: id.to_owned(),
        title: title.to_owned(),
        quantity: quantity.to_owned(),
        unit,
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        lines,
    }
}

fn line(label: &'static str, dashed: bool, value: fn(&Series, usize) -> Option<f64>) -> LineSpec {
    LineSpec {
        label,
        dashed,
        value,
    }
}

/// The plots a report draws from `metrics`: the standard ones whose columns it has, then
/// one for each column whose name starts with `audit` or `reputation` (added by later
/// versions of the simulator).
pub fn plots_for(metrics: &Metrics) -> Vec<PlotSpec> {
    let standard = vec![
        spec(
            "fetch-success",
            "Fetch success per hour",
            "fetches that succeeded",
            Unit::Share,
            &["fetches_ok", "fetches_failed"],
            vec![line("", false, |s, i| {
                let ok = at(s, "fetches_ok", i)?;
                let total = ok + at(s, "fetches_failed", i)?;
                (total > 0.0).then(|| ok / total)
            })],
        ),
        spec(
            "fetch-latency",
            "Fetch latency (solid: median, dashed: 95th percentile)",
            "latency of successful fetches",
            Unit::Milliseconds,
            &["fetch_latency_p50_ms", "fetch_latency_p95_ms", "fetches_ok"],
            vec![
                line("p50", false, |s, i| {
                    (at(s, "fetches_ok", i)? > 0.0).then(|| at(s, "fetch_latency_p50_ms", i))?
                }),
                line("p95", true, |s, i| {
                    (at(s, "fetches_ok", i)? > 0.0).then(|| at(s, "fetch_latency_p95_ms", i))?
                }),
            ],
        ),
        spec(
            "availability",
            "Availability",
            "objects fully held by online peers",
            Unit::Share,
            &["availability"],
            vec![line("", false, |s, i| at(s, "availability", i))],
        ),
        spec(
            "storage",
            "Storage obtained (solid) against storage given (dashed)",
            "storage, group total",
            Unit::Bytes,
            &["storage_obtained_bytes", "bytes_for_others"],
            vec![
                line("obtained", false, |s, i| at(s, "storage_obtained_bytes", i)),
                line("given", true, |s, i| at(s, "bytes_for_others", i)),
            ],
        ),
        spec(
            "bandwidth",
            "Bandwidth given (solid) against received (dashed), since the start",
            "bytes served, group total",
            Unit::Bytes,
            &["bandwidth_given_bytes", "bandwidth_received_bytes"],
            vec![
                line("given", false, |s, i| at(s, "bandwidth_given_bytes", i)),
                line("received", true, |s, i| {
                    at(s, "bandwidth_received_bytes", i)
                }),
            ],
        ),
        spec(
            "creds",
            "Creds balance (received minus given)",
            "creds balance, group total",
            Unit::ByteDays,
            &["creds_balance"],
            vec![line("", false, |s, i| at(s, "creds_balance", i))],
        ),
        spec(
            "replicas",
            "Replicas alive",
            "alive holders per chunk, mean",
            Unit::Count,
            &["replicas_alive_mean"],
            vec![line("", false, |s, i| at(s, "replicas_alive_mean", i))],
        ),
        spec(
            "online",
            "Peers online",
            "peers online",
            Unit::Count,
            &["online_peers"],
            vec![line("", false, |s, i| at(s, "online_peers", i))],
        ),
    ];
    let mut plots: Vec<PlotSpec> = standard
        .into_iter()
        .filter(|p| p.columns.iter().all(|c| metrics.columns.contains(c)))
        .collect();
    for column in &metrics.columns {
        if !(column.starts_with("audit") || column.starts_with("reputation")) {
            continue;
        }
        // Reputation columns (mean score, AUC) are shares in [0, 1].
        let unit = if column.ends_with("_ratio")
            || column.ends_with("_score")
            || column.starts_with("reputation_")
        {
            Unit::Share
        } else if column.ends_with("_bytes") {
            Unit::Bytes
        } else {
            Unit::Count
        };
        let quantity = column.replace('_', " ");
        plots.push(PlotSpec {
            id: column.replace('_', "-"),
            title: quantity.clone(),
            quantity,
            unit,
            columns: vec![column.clone()],
            // A column known only at run time: the value is found by the spec's column.
            lines: Vec::new(),
        });
    }
    plots
}

/// A plot's data, scaled to its unit and ready to draw.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub id: String,
    pub title: String,
    /// The horizontal axis's text ([`TIME_AXIS`] for plots over time).
    pub x_axis: String,
    /// The vertical axis's text, unit included, e.g. `storage, group total (GiB)`.
    pub y_axis: String,
    pub y_range: (f64, f64),
    pub x_range: (f64, f64),
    pub lines: Vec<PreparedLine>,
}

#[derive(Debug, Clone)]
pub struct PreparedLine {
    pub label: String,
    /// Index into the palette (one colour per group).
    pub colour: usize,
    pub dashed: bool,
    /// (days, value in the axis's unit).
    pub points: Vec<(f64, f64)>,
}

/// The binary multiple that shows `max` with at most four digits before the point.
fn binary_multiple(max: f64) -> (f64, &'static str) {
    let units = ["", "Ki", "Mi", "Gi", "Ti", "Pi"];
    let mut divisor = 1.0;
    let mut index = 0;
    while max / divisor >= 1024.0 && index + 1 < units.len() {
        divisor *= 1024.0;
        index += 1;
    }
    (divisor, units[index])
}

/// Computes the lines of `spec` for each plotted group, scales them and picks the axes.
pub fn prepare(spec: &PlotSpec, metrics: &Metrics) -> Prepared {
    let mut lines = Vec::new();
    for (colour, (group, series)) in metrics.plotted_groups().into_iter().enumerate() {
        let mut push = |label: &str, dashed: bool, values: Vec<Option<f64>>| {
            let points: Vec<(f64, f64)> = series
                .hours
                .iter()
                .zip(values)
                .filter_map(|(hour, v)| v.map(|v| (hour / 24.0, v)))
                .collect();
            let label = if label.is_empty() {
                group.to_owned()
            } else {
                format!("{group} {label}")
            };
            lines.push(PreparedLine {
                label,
                colour,
                dashed,
                points,
            });
        };
        if spec.lines.is_empty() {
            let values = series
                .column(&spec.columns[0])
                .map_or_else(Vec::new, |v| v.iter().map(|x| Some(*x)).collect());
            push("", false, values);
        }
        for line in &spec.lines {
            let values = (0..series.len()).map(|i| (line.value)(series, i)).collect();
            push(line.label, line.dashed, values);
        }
    }
    fn values(lines: &[PreparedLine]) -> impl Iterator<Item = f64> + '_ {
        lines.iter().flat_map(|l| l.points.iter().map(|p| p.1))
    }
    let largest = values(&lines).fold(0.0_f64, |m, v| m.max(v.abs()));
    let (divisor, unit) = match spec.unit {
        Unit::Share => (1.0, "share, 0 to 1".to_owned()),
        Unit::Milliseconds => (1.0, "ms".to_owned()),
        Unit::Count => (1.0, "count".to_owned()),
        Unit::Bytes => {
            let (d, prefix) = binary_multiple(largest);
            (d, format!("{prefix}B"))
        }
        Unit::ByteDays => {
            let (d, prefix) = binary_multiple(largest);
            (d, format!("{prefix}B-days"))
        }
    };
    for line in &mut lines {
        for point in &mut line.points {
            point.1 /= divisor;
        }
    }
    let (mut low, mut high) = values(&lines)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !low.is_finite() {
        (low, high) = (0.0, 1.0);
    }
    if spec.unit == Unit::Share {
        (low, high) = (0.0, 1.0);
    } else if low >= 0.0 {
        low = 0.0;
    }
    if high - low < 1e-12 {
        high = low + 1.0;
    }
    let pad = (high - low) * 0.05;
    let y_range = (if low < 0.0 { low - pad } else { low }, high + pad);
    let x_high = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(0.0_f64, f64::max);
    Prepared {
        id: spec.id.clone(),
        title: spec.title.clone(),
        x_axis: TIME_AXIS.to_owned(),
        y_axis: format!("{} ({unit})", spec.quantity),
        y_range,
        x_range: (0.0, if x_high > 0.0 { x_high } else { 1.0 }),
        lines,
    }
}

/// Tableau's ten colours: distinct, and readable on white.
pub(crate) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub(crate) fn register_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT)
                .map_err(|_| "the bundled font cannot be read".to_owned())
        })
        .clone()
}

/// Width of the legend column to the right of every plot, pixels: the legend is drawn
/// beside the chart, so it never covers a line.
const LEGEND_WIDTH: u32 = 190;

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plot: &Prepared,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let (area, legend) = root.split_horizontally(PLOT_SIZE.0 - LEGEND_WIDTH);
    let mut chart = ChartBuilder::on(&area)
        .caption(&plot.title, (FONT_FAMILY, 20))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(
            plot.x_range.0..plot.x_range.1,
            plot.y_range.0..plot.y_range.1,
        )?;
    chart
        .configure_mesh()
        .x_desc(&plot.x_axis)
        .y_desc(&plot.y_axis)
        .label_style((FONT_FAMILY, 14))
        .axis_desc_style((FONT_FAMILY, 15))
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()?;
    for (n, line) in plot.lines.iter().enumerate() {
        let colour = PALETTE[line.colour % PALETTE.len()];
        let style = colour.stroke_width(2);
        let points = line.points.iter().copied();
        if line.dashed {
            chart.draw_series(DashedLineSeries::new(points, 6, 4, style))?;
        } else {
            chart.draw_series(LineSeries::new(points, style))?;
        }
        // The legend's sample is dashed like the line: two strokes with a gap, or one.
        let y = 48 + 22 * i32::try_from(n).unwrap_or(i32::MAX / 32);
        let gap = if line.dashed { 4 } else { 0 };
        legend.draw(&PathElement::new(vec![(4, y), (14 - gap, y)], style))?;
        legend.draw(&PathElement::new(vec![(14 + gap, y), (24, y)], style))?;
        legend.draw(&Text::new(
            line.label.clone(),
            (30, y - 7),
            (FONT_FAMILY, 13).into_font().color(&BLACK),
        ))?;
    }
    root.present()
}

/// A tick label: no decimals on whole numbers, else up to three significant decimals.
pub(crate) fn tick(value: f64) -> String {
    if value.fract().abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn plot_error(plot: &Prepared, message: impl ToString) -> ReportError {
    ReportError::Plot {
        plot: plot.id.clone(),
        message: message.to_string(),
    }
}

/// The plot as an SVG document.
pub fn svg(plot: &Prepared) -> Result<String, ReportError> {
    register_font().map_err(|m| plot_error(plot, m))?;
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, PLOT_SIZE).into_drawing_area();
        draw(&root, plot).map_err(|e| plot_error(plot, e))?;
    }
    Ok(text)
}

/// The plot as a PNG file at `path`.
pub fn png(plot: &Prepared, path: &Path) -> Result<(), ReportError> {
    register_font().map_err(|m| plot_error(plot, m))?;
    let root = BitMapBackend::new(path, PLOT_SIZE).into_drawing_area();
    draw(&root, plot).map_err(|e| plot_error(plot, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tick_labels_drop_needless_decimals() {
        assert_eq!(tick(5.0), "5");
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(2.5), "2.5");
        assert_eq!(tick(-3.0), "-3");
        // 0.1 added ten times is not quite 1.
        assert_eq!(tick((0..10).map(|_| 0.1).sum()), "1");
    }

    #[test]
    fn byte_axes_take_the_multiple_of_their_largest_value() {
        assert_eq!(binary_multiple(512.0), (1.0, ""));
        assert_eq!(
            binary_multiple(3.0 * 1024.0 * 1024.0),
            (1024.0 * 1024.0, "Mi")
        );
        assert_eq!(binary_multiple(5e11), (1024f64.powi(3), "Gi"));
        assert_eq!(binary_multiple(5e12), (1024f64.powi(4), "Ti"));
    }

    #[test]
    fn lines_skip_hours_without_fetches_and_bytes_are_scaled() {
        let text = "hour,group,fetches_ok,fetches_failed,storage_obtained_bytes,bytes_for_others\n\
                    1,g,0,0,0,0\n2,g,3,1,2097152,1048576\n";
        let metrics = Metrics::parse(text, Path::new("m.csv")).unwrap();
        let plots = plots_for(&metrics);
        let ids: Vec<&str> = plots.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["fetch-success", "storage"]);
        let success = prepare(&plots[0], &metrics);
        assert_eq!(success.lines[0].points, [(2.0 / 24.0, 0.75)]);
        assert_eq!(success.y_axis, "fetches that succeeded (share, 0 to 1)");
        let storage = prepare(&plots[1], &metrics);
        assert_eq!(storage.y_axis, "storage, group total (MiB)");
        assert_eq!(storage.lines[0].label, "g obtained");
        assert_eq!(storage.lines[0].points[1], (2.0 / 24.0, 2.0));
        assert_eq!(storage.lines[1].points[1], (2.0 / 24.0, 1.0));
        let svg = svg(&storage).unwrap();
        assert!(svg.contains("storage, group total (MiB)"), "{svg}");
        assert!(svg.contains(TIME_AXIS), "{svg}");
    }
}
