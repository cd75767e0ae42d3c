//! A sweep's outputs: `runs.csv` (one row per run), `cells.csv` and `cells/<cell>.csv` (the
//! mean and 95 % confidence interval of every summary metric per cell) and `sweep.html` (the
//! chosen metric against each axis), gathered from one or more sweep folders (`--merge`).
//! It reads `sweep.json` and each run's `summary.json`, nothing else.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::Value;

use crate::error::ReportError;
use crate::html::{escape, inline_svg, number, Page};
use crate::plot::{register_font, tick, FONT_FAMILY, PALETTE, PLOT_SIZE};
use crate::run::Summary;
use crate::stats::{clipped, domain, estimate, Estimate};

/// Sweeps of at most this many cells show each cell's whole table on the page.
pub const CELL_TABLES_MAX: usize = 64;

/// What `sweep.json` says.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub scenario: String,
    /// `GROUP.METRIC` plotted against each axis.
    pub metric: String,
    pub seeds: Vec<u64>,
    /// (key, values as written).
    pub axes: Vec<(String, Vec<String>)>,
    /// (cell id, one value per axis).
    pub cells: Vec<(String, Vec<String>)>,
}

impl Plan {
    pub fn load(dir: &Path) -> Result<Plan, ReportError> {
        let path = dir.join("sweep.json");
        let root = json_file(&path)?;
        let field = |name: &str, problem: &str| ReportError::Field {
            path: path.clone(),
            field: name.to_owned(),
            problem: problem.to_owned(),
        };
        let strings = |value: &Value, name: &str| -> Result<Vec<String>, ReportError> {
            value
                .as_array()
                .ok_or_else(|| field(name, "must be an array of strings"))?
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| field(name, "must be an array of strings"))
                })
                .collect()
        };
        let list = |name: &str| {
            root[name]
                .as_array()
                .ok_or_else(|| field(name, "must be an array"))
        };
        let axes = list("axes")?
            .iter()
            .map(|a| {
                let key = a["key"]
                    .as_str()
                    .ok_or_else(|| field("axes.key", "must be a string"))?;
                Ok((key.to_owned(), strings(&a["values"], "axes.values")?))
            })
            .collect::<Result<Vec<_>, ReportError>>()?;
        let cells = list("cells")?
            .iter()
            .map(|c| {
                let id = c["id"]
                    .as_str()
                    .ok_or_else(|| field("cells.id", "must be a string"))?;
                let values = strings(&c["values"], "cells.values")?;
                if values.len() != axes.len() {
                    return Err(field("cells.values", "must have one value per axis"));
                }
                Ok((id.to_owned(), values))
            })
            .collect::<Result<Vec<_>, ReportError>>()?;
        let seeds = list("seeds")?
            .iter()
            .map(|s| {
                s.as_u64()
                    .ok_or_else(|| field("seeds", "must be whole numbers"))
            })
            .collect::<Result<Vec<_>, ReportError>>()?;
        Ok(Plan {
            scenario: root["scenario"]
                .as_str()
                .ok_or_else(|| field("scenario", "must be a string"))?
                .to_owned(),
            metric: root["metric"]
                .as_str()
                .ok_or_else(|| field("metric", "must be a string"))?
                .to_owned(),
            seeds,
            axes,
            cells,
        })
    }
}

/// The JSON document in the file at `path`.
pub(crate) fn json_file(path: &Path) -> Result<Value, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ReportError::Malformed {
        path: path.to_owned(),
        line: e.line(),
        problem: format!("not JSON: {e}"),
    })
}

/// One finished run of a sweep.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub cell: String,
    pub seed: u64,
    pub summary: Summary,
}

/// The folder of one run (the layout `cryptosphere-sim sweep` writes).
pub fn run_dir(dir: &Path, cell: &str, seed: u64) -> PathBuf {
    dir.join("runs").join(cell).join(format!("seed-{seed}"))
}

/// What [`gather`] found.
#[derive(Debug, Clone)]
pub struct Gathered {
    pub plan: Plan,
    pub runs: Vec<RunResult>,
    /// (cell, seed) of the runs no folder holds.
    pub missing: Vec<(String, u64)>,
}

/// The plan of the first folder and every finished run in all of them (the first copy of a
/// run found twice), plus the runs that are missing. Every folder must hold the same grid.
pub fn gather(dirs: &[PathBuf]) -> Result<Gathered, ReportError> {
    let Some(first) = dirs.first() else {
        return Err(ReportError::Field {
            path: PathBuf::from("."),
            field: "--merge".into(),
            problem: "names no folder".into(),
        });
    };
    let plan = Plan::load(first)?;
    for dir in &dirs[1..] {
        let other = Plan::load(dir)?;
        if other.axes != plan.axes || other.cells != plan.cells {
            return Err(ReportError::Field {
                path: dir.join("sweep.json"),
                field: "axes".into(),
                problem: format!(
                    "is another grid than {}'s",
                    first.join("sweep.json").display()
                ),
            });
        }
    }
    let mut runs = Vec::new();
    let mut missing = Vec::new();
    let mut seeds: Vec<u64> = plan.seeds.clone();
    for dir in &dirs[1..] {
        for seed in Plan::load(dir)?.seeds {
            if !seeds.contains(&seed) {
                seeds.push(seed);
            }
        }
    }
    for (cell, _) in &plan.cells {
        for seed in &seeds {
            let found = dirs
                .iter()
                .map(|d| run_dir(d, cell, *seed).join("summary.json"))
                .find(|p| p.is_file());
            match found {
                Some(path) => runs.push(RunResult {
                    cell: cell.clone(),
                    seed: *seed,
                    summary: Summary::load(&path)?,
                }),
                None => missing.push((cell.clone(), *seed)),
            }
        }
    }
    let plan = Plan { seeds, ..plan };
    Ok(Gathered {
        plan,
        runs,
        missing,
    })
}

/// Every `GROUP.METRIC` of the runs, in the order of the first run that has it.
fn measures(runs: &[RunResult]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for run in runs {
        for (group, metrics) in &run.summary.groups {
            for (metric, _) in metrics {
                let name = format!("{group}.{metric}");
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    names
}

fn measured(summary: &Summary, measure: &str) -> Option<f64> {
    let (group, metric) = measure.split_once('.')?;
    summary
        .groups
        .iter()
        .find(|(g, _)| g == group)?
        .1
        .iter()
        .find(|(m, _)| m == metric)
        .map(|(_, v)| *v)
}

/// Each cell's estimate of each measure.
pub fn estimates(plan: &Plan, runs: &[RunResult]) -> BTreeMap<(String, String), Estimate> {
    let mut out = BTreeMap::new();
    for measure in measures(runs) {
        for (cell, _) in &plan.cells {
            let values: Vec<f64> = runs
                .iter()
                .filter(|r| &r.cell == cell)
                .filter_map(|r| measured(&r.summary, &measure))
                .collect();
            if let Some(e) = estimate(&values) {
                let metric = measure.split_once('.').map_or(measure.as_str(), |(_, m)| m);
                out.insert((cell.clone(), measure.clone()), clipped(e, domain(metric)));
            }
        }
    }
    out
}

pub(crate) fn csv_number(value: f64) -> String {
    format!("{value}")
}

fn ci_fields(e: &Estimate) -> String {
    match e.ci95 {
        Some((low, high)) => format!("{},{}", csv_number(low), csv_number(high)),
        None => ",".to_owned(),
    }
}

/// What a sweep's tables and report are, and where they were written.
#[derive(Debug, Clone)]
pub struct SweepReport {
    pub html: PathBuf,
    pub runs: usize,
    pub missing: Vec<(String, u64)>,
}

pub(crate) fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| ReportError::Write {
            path: parent.to_owned(),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| ReportError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Gathers the sweeps in `dirs` and writes the tables and the report into `out`.
pub fn write_sweep_report(dirs: &[PathBuf], out: &Path) -> Result<SweepReport, ReportError> {
    let Gathered {
        plan,
        runs,
        missing,
    } = gather(dirs)?;
    let measures = measures(&runs);
    let estimates = estimates(&plan, &runs);
    let keys: Vec<&str> = plan.axes.iter().map(|(k, _)| k.as_str()).collect();
    // `cell` and one column per axis (none for a sweep of seeds alone).
    let key_columns: String = std::iter::once("cell")
        .chain(keys.iter().copied())
        .collect::<Vec<_>>()
        .join(",");
    let cell_columns = |cell: &str| {
        let mut fields = vec![cell.to_owned()];
        if let Some((_, values)) = plan.cells.iter().find(|(c, _)| c == cell) {
            fields.extend(values.iter().cloned());
        }
        fields.join(",")
    };

    let mut runs_csv = format!("{key_columns},seed,trace_digest,{}\n", measures.join(","));
    for run in &runs {
        let values: Vec<String> = measures
            .iter()
            .map(|m| measured(&run.summary, m).map_or_else(String::new, csv_number))
            .collect();
        let _ = writeln!(
            runs_csv,
            "{},{},{},{}",
            cell_columns(&run.cell),
            run.seed,
            run.summary.trace_digest,
            values.join(",")
        );
    }
    write(&out.join("runs.csv"), &runs_csv)?;

    let header = "measure,runs,mean,ci95_low,ci95_high";
    let mut cells_csv = format!("{key_columns},{header}\n");
    for (cell, _) in &plan.cells {
        let mut one = format!("{header}\n");
        for measure in &measures {
            if let Some(e) = estimates.get(&(cell.clone(), measure.clone())) {
                let line = format!("{measure},{},{},{}", e.n, csv_number(e.mean), ci_fields(e));
                let _ = writeln!(cells_csv, "{},{line}", cell_columns(cell));
                let _ = writeln!(one, "{line}");
            }
        }
        write(&out.join("cells").join(format!("{cell}.csv")), &one)?;
    }
    write(&out.join("cells.csv"), &cells_csv)?;

    // The page.
    let mut page = Page::default();
    page.heading(1, &format!("Cryptosphere sweep: {}", plan.scenario));
    page.paragraph(&format!(
        "{} cells × {} seeds ({}): {} runs found, {} missing. Plotted: {} (mean over seeds, \
         bars: 95 % confidence interval).",
        plan.cells.len(),
        plan.seeds.len(),
        plan.seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        runs.len(),
        missing.len(),
        plan.metric
    ));
    let rows: Vec<Vec<(String, &str)>> = plan
        .axes
        .iter()
        .map(|(k, v)| vec![(k.clone(), ""), (v.join(", "), "")])
        .collect();
    page.table("axes", &["axis".to_owned(), "values".to_owned()], &rows);
    page.raw("<div class=\"plots\">");
    let plots_dir = out.join("plots");
    for (a, (key, _)) in plan.axes.iter().enumerate() {
        let svg = axis_plot(&plan, &estimates, a)?;
        let id = format!("metric-by-{}", key.replace(['[', ']', '.'], "-"));
        write(&plots_dir.join(format!("{id}.svg")), &svg)?;
        page.raw(&format!(
            "<figure id=\"plot-{}\">{}<figcaption>{} against {} (<a href=\"plots/{}.svg\">SVG</a>)</figcaption></figure>",
            escape(&id),
            inline_svg(&svg),
            escape(&plan.metric),
            escape(key),
            escape(&id)
        ));
    }
    page.raw("</div>");
    page.heading(2, &format!("{} per cell", plan.metric));
    let mut header = vec!["cell".to_owned()];
    header.extend(keys.iter().map(|k| (*k).to_owned()));
    header.extend(["runs", "mean", "95 % CI"].map(String::from));
    let rows: Vec<Vec<(String, &str)>> = plan
        .cells
        .iter()
        .map(|(cell, values)| {
            let mut row = vec![(cell.clone(), "")];
            row.extend(values.iter().map(|v| (v.clone(), "")));
            match estimates.get(&(cell.clone(), plan.metric.clone())) {
                Some(e) => {
                    row.push((e.n.to_string(), ""));
                    row.push((number(e.mean), ""));
                    row.push((
                        e.ci95.map_or_else(String::new, |(l, h)| {
                            format!("{} to {}", number(l), number(h))
                        }),
                        "",
                    ));
                }
                None => row.extend([
                    (String::from("0"), ""),
                    (String::new(), ""),
                    (String::new(), ""),
                ]),
            }
            row
        })
        .collect();
    page.table("cells", &header, &rows);
    page.paragraph(
        "Every summary metric of every cell: cells.csv (and cells/CELL.csv); every run: runs.csv.",
    );
    // Each cell's whole table, folded, while the page stays of a readable size.
    if plan.cells.len() <= CELL_TABLES_MAX {
        for (cell, values) in &plan.cells {
            let rows: Vec<Vec<(String, &str)>> = measures
                .iter()
                .filter_map(|m| {
                    let e = estimates.get(&(cell.clone(), m.clone()))?;
                    Some(vec![
                        (m.clone(), ""),
                        (e.n.to_string(), ""),
                        (number(e.mean), ""),
                        (
                            e.ci95.map_or_else(String::new, |(l, h)| {
                                format!("{} to {}", number(l), number(h))
                            }),
                            "",
                        ),
                    ])
                })
                .collect();
            let assignments: Vec<String> = keys
                .iter()
                .zip(values)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            page.raw(&format!(
                "<details><summary>{} ({})</summary>",
                escape(cell),
                escape(&assignments.join(", "))
            ));
            page.table(
                &format!("cell-table-{cell}"),
                &["measure", "runs", "mean", "95 % CI"].map(String::from),
                &rows,
            );
            page.raw("</details>");
        }
    }
    if !missing.is_empty() {
        page.heading(2, "Missing runs");
        page.paragraph(
            &missing
                .iter()
                .map(|(c, s)| format!("{c} seed {s}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    let html = out.join("sweep.html");
    write(&html, &page.finish(&format!("sweep of {}", plan.scenario)))?;
    Ok(SweepReport {
        html,
        runs: runs.len(),
        missing,
    })
}

/// The chosen metric against axis `a`: one line per combination of the other axes' values.
fn axis_plot(
    plan: &Plan,
    estimates: &BTreeMap<(String, String), Estimate>,
    a: usize,
) -> Result<String, ReportError> {
    let (key, values) = &plan.axes[a];
    let plot_error = |message: String| ReportError::Plot {
        plot: format!("{} against {key}", plan.metric),
        message,
    };
    register_font().map_err(plot_error)?;
    let numeric: Option<Vec<f64>> = values.iter().map(|v| v.parse::<f64>().ok()).collect();
    let x_of = |value: &str| -> f64 {
        match &numeric {
            Some(xs) => xs[values.iter().position(|v| v == value).unwrap_or(0)],
            None => values.iter().position(|v| v == value).unwrap_or(0) as f64,
        }
    };
    // Lines keyed by the other axes' values.
    let mut lines: BTreeMap<String, Vec<(f64, Estimate)>> = BTreeMap::new();
    for (cell, cell_values) in &plan.cells {
        let Some(e) = estimates.get(&(cell.clone(), plan.metric.clone())) else {
            continue;
        };
        let label: Vec<String> = plan
            .axes
            .iter()
            .zip(cell_values)
            .enumerate()
            .filter(|(i, _)| *i != a)
            .map(|(_, ((k, _), v))| format!("{k}={v}"))
            .collect();
        lines
            .entry(label.join(", "))
            .or_default()
            .push((x_of(&cell_values[a]), *e));
    }
    for points in lines.values_mut() {
        points.sort_by(|p, q| p.0.total_cmp(&q.0));
    }
    let all = || lines.values().flatten();
    let (mut low, mut high) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, e)| {
        let (l, h) = e.ci95.unwrap_or((e.mean, e.mean));
        (lo.min(l), hi.max(h))
    });
    if !low.is_finite() {
        (low, high) = (0.0, 1.0);
    }
    if high - low < 1e-12 {
        (low, high) = (low - 0.5, high + 0.5);
    }
    let pad = (high - low) * 0.08;
    let (x_low, x_high) = match &numeric {
        Some(xs) => {
            let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let span = if hi > lo { hi - lo } else { 1.0 };
            (lo - span * 0.05, hi + span * 0.05)
        }
        None => (-0.5, values.len() as f64 - 0.5),
    };
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, PLOT_SIZE).into_drawing_area();
        let result = (|| -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(format!("{} against {key}", plan.metric), (FONT_FAMILY, 20))
                .margin(12)
                .x_label_area_size(48)
                .y_label_area_size(80)
                .build_cartesian_2d(x_low..x_high, (low - pad)..(high + pad))?;
            let categorical = numeric.is_none();
            let labels = values.clone();
            chart
                .configure_mesh()
                .x_desc(format!("{key} (as set)"))
                .y_desc(format!("{} (mean over seeds)", plan.metric))
                .x_labels(if categorical { values.len() } else { 10 })
                .x_label_formatter(&|x| {
                    if categorical {
                        let i = x.round();
                        if (x - i).abs() < 1e-6 && i >= 0.0 {
                            labels.get(i as usize).cloned().unwrap_or_default()
                        } else {
                            String::new()
                        }
                    } else {
                        tick(*x)
                    }
                })
                .y_label_formatter(&|y| tick(*y))
                .label_style((FONT_FAMILY, 14))
                .axis_desc_style((FONT_FAMILY, 15))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()?;
            for (n, (label, points)) in lines.iter().enumerate() {
                let colour = PALETTE[n % PALETTE.len()];
                let drawn = chart.draw_series(LineSeries::new(
                    points.iter().map(|(x, e)| (*x, e.mean)),
                    colour.stroke_width(2),
                ))?;
                if !label.is_empty() {
                    drawn.label(label.clone()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                    });
                }
                chart.draw_series(
                    points
                        .iter()
                        .map(|(x, e)| Circle::new((*x, e.mean), 4, colour.filled())),
                )?;
                chart.draw_series(points.iter().filter_map(|(x, e)| {
                    let (l, h) = e.ci95?;
                    Some(PathElement::new(
                        vec![(*x, l), (*x, h)],
                        colour.stroke_width(1),
                    ))
                }))?;
            }
            if lines.keys().any(|l| !l.is_empty()) {
                chart
                    .configure_series_labels()
                    .label_font((FONT_FAMILY, 13))
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(180, 180, 180))
                    .draw()?;
            }
            root.present()
        })();
        result.map_err(|e| plot_error(e.to_string()))?;
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn summary_json(seed: u64, fetches: f64) -> String {
        format!(
            r#"{{"scenario":"s","seed":{seed},"duration_hours":1.0,"fidelity":"synthetic",
               "events":1,"trace_digest":"d{seed}","groups":{{"all":{{"fetches":{fetches}}}}},
               "probes":{{}}}}"#
        )
    }

    #[test]
    fn a_sweep_of_seeds_alone_has_no_empty_columns() {
        let dir = tempfile::tempdir().unwrap();
        let plan = r#"{"scenario":"s.toml","metric":"all.fetches","seeds":[1,2],
                       "axes":[],"cells":[{"id":"cell-000","values":[]}]}"#;
        std::fs::write(dir.path().join("sweep.json"), plan).unwrap();
        for (seed, fetches) in [(1, 10.0), (2, 14.0)] {
            let run = run_dir(dir.path(), "cell-000", seed);
            std::fs::create_dir_all(&run).unwrap();
            std::fs::write(run.join("summary.json"), summary_json(seed, fetches)).unwrap();
        }
        let report = write_sweep_report(&[dir.path().to_owned()], dir.path()).unwrap();
        assert_eq!(report.runs, 2);
        let runs = std::fs::read_to_string(dir.path().join("runs.csv")).unwrap();
        assert_eq!(
            runs,
            "cell,seed,trace_digest,all.fetches\ncell-000,1,d1,10\ncell-000,2,d2,14\n"
        );
        let cells = std::fs::read_to_string(dir.path().join("cells.csv")).unwrap();
        // Mean 12; s = 2.828, half-width 12.706 * 2.828 / sqrt(2) = 25.412; a count is
        // never below 0, so the interval is cut there.
        let line = cells.lines().nth(1).unwrap();
        assert!(line.starts_with("cell-000,all.fetches,2,12,"), "{cells}");
        let fields: Vec<f64> = line
            .split(',')
            .skip(4)
            .map(|f| f.parse().unwrap())
            .collect();
        assert_eq!(fields[0], 0.0, "{line}");
        assert!((fields[1] - (12.0 + 25.412)).abs() < 1e-3, "{line}");
    }
}
