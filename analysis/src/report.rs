//! `report.html` for one run: the replay line, the tables and every plot, with each plot
//! also written to `plots/<id>.svg` and `plots/<id>.png`.

use std::path::{Path, PathBuf};

use crate::error::ReportError;
use crate::html::{escape, inline_svg, number, Page};
use crate::plot::{self, plots_for, prepare};
use crate::run::Run;

/// What a report wrote.
#[derive(Debug, Clone)]
pub struct Report {
    pub html: PathBuf,
    /// The separate plot files, SVG and PNG.
    pub plot_files: Vec<PathBuf>,
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    std::fs::write(path, bytes).map_err(|source| ReportError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Reads the run in `run_dir` and writes its report there.
pub fn write_report(run_dir: &Path) -> Result<Report, ReportError> {
    let run = Run::load(run_dir)?;
    let plots_dir = run_dir.join("plots");
    std::fs::create_dir_all(&plots_dir).map_err(|source| ReportError::Write {
        path: plots_dir.clone(),
        source,
    })?;
    let mut page = Page::default();
    let s = &run.summary;
    // The run's folder keeps the scenario as run; older runs name only the scenario.
    let replay = if run.scenario_text.is_some() {
        format!(
            "cryptosphere-sim run scenario.toml --seed {} (in this folder)",
            s.seed
        )
    } else {
        format!("cryptosphere-sim run {}.toml --seed {}", s.scenario, s.seed)
    };
    page.heading(1, &format!("Cryptosphere simulation: {}", s.scenario));
    page.raw(&format!(
        "<table id=\"run\"><tbody>\
         <tr><td>scenario</td><td>{}</td></tr>\
         <tr><td>seed</td><td>{}</td></tr>\
         <tr><td>simulated time</td><td>{} hours ({} days)</td></tr>\
         <tr><td>fidelity</td><td>{}</td></tr>\
         <tr><td>events delivered</td><td>{}</td></tr>\
         <tr><td>trace digest</td><td><code id=\"digest\">{}</code></td></tr>\
         <tr><td>replay</td><td><code>{}</code></td></tr>\
         </tbody></table>",
        escape(&s.scenario),
        s.seed,
        number(s.duration_hours),
        number(s.duration_hours / 24.0),
        escape(&s.fidelity),
        number(s.events as f64),
        escape(&s.trace_digest),
        escape(&replay),
    ));

    page.heading(2, "Expectations");
    match &run.checks {
        Some(checks) if !checks.is_empty() => {
            let header = ["group", "metric", "bound", "measured", "verdict"].map(String::from);
            let rows: Vec<Vec<(String, &str)>> = checks
                .iter()
                .map(|c| {
                    vec![
                        (c.group.clone(), ""),
                        (c.metric.clone(), ""),
                        (format!("{} {}", c.op, number(c.bound)), ""),
                        (c.measured.map_or_else(|| "(none)".to_owned(), number), ""),
                        if c.pass {
                            ("pass".to_owned(), "pass")
                        } else {
                            ("FAIL".to_owned(), "fail")
                        },
                    ]
                })
                .collect();
            page.table("expectations", &header, &rows);
        }
        Some(_) => page.paragraph("The scenario states no expectations."),
        None => page.paragraph("This run wrote no checks.csv (an older cryptosphere-sim)."),
    }

    page.heading(2, "Over time");
    page.paragraph("One row of metrics.csv per simulated hour and group; each plot is also in plots/ as SVG and PNG.");
    page.raw("<div class=\"plots\">");
    let mut plot_files = Vec::new();
    for spec in plots_for(&run.metrics) {
        let prepared = prepare(&spec, &run.metrics);
        let svg = plot::svg(&prepared)?;
        let svg_path = plots_dir.join(format!("{}.svg", spec.id));
        let png_path = plots_dir.join(format!("{}.png", spec.id));
        write(&svg_path, svg.as_bytes())?;
        plot::png(&prepared, &png_path)?;
        page.raw(&format!(
            "<figure id=\"plot-{id}\">{}<figcaption>{} (<a href=\"plots/{id}.svg\">SVG</a>, \
             <a href=\"plots/{id}.png\">PNG</a>)</figcaption></figure>",
            inline_svg(&svg),
            escape(&spec.title),
            id = escape(&spec.id),
        ));
        plot_files.push(svg_path);
        plot_files.push(png_path);
    }
    page.raw("</div>");

    page.heading(2, "Summary per group");
    let groups: Vec<&str> = s.groups.iter().map(|(g, _)| g.as_str()).collect();
    let mut header = vec!["metric".to_owned()];
    header.extend(groups.iter().map(|g| (*g).to_owned()));
    let mut names: Vec<&str> = Vec::new();
    for (_, metrics) in &s.groups {
        for (name, _) in metrics {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    let rows: Vec<Vec<(String, &str)>> = names
        .iter()
        .map(|name| {
            let mut row = vec![((*name).to_owned(), "")];
            for (_, metrics) in &s.groups {
                let value = metrics.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
                row.push((value.map_or_else(String::new, number), ""));
            }
            row
        })
        .collect();
    page.table("summary", &header, &rows);
    if !s.probes.is_empty() {
        let header = ["probe", "success ratio"].map(String::from);
        let rows: Vec<Vec<(String, &str)>> = s
            .probes
            .iter()
            .map(|(name, ratio)| vec![(name.clone(), ""), (number(*ratio), "")])
            .collect();
        page.table("probes", &header, &rows);
    }

    if let Some(text) = &run.scenario_text {
        page.heading(2, "Scenario file");
        page.raw(&format!(
            "<details><summary>scenario.toml as run</summary><pre>{}</pre></details>",
            escape(text)
        ));
    }
    let html = run_dir.join("report.html");
    write(
        &html,
        page.finish(&format!("{} (seed {})", s.scenario, s.seed))
            .as_bytes(),
    )?;
    Ok(Report { html, plot_files })
}
