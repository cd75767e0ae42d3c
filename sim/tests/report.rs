//! The report of a real run: `run --report` on the smoke scenario writes a page with every
//! plot the research workflow asks for (inline SVG, axes with units, a line per group with a
//! point per hour), the tables, and each plot as separate SVG and PNG files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_cryptosphere-sim");

/// The HTML of the element that starts at `start` (a unique opening tag) up to `end`.
fn section<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in the report"));
    let rest = &html[from..];
    &rest[..rest.find(end).map_or(rest.len(), |e| e + end.len())]
}

/// Points of the longest `<polyline>` in `svg`.
fn longest_polyline(svg: &str) -> usize {
    svg.split("<polyline")
        .skip(1)
        .filter_map(|p| {
            let points = p.split("points=\"").nth(1)?;
            Some(points[..points.find('"')?].split_whitespace().count())
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn a_small_run_reports_every_plot_with_units_and_every_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("smoke");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/smoke.toml");
    let run = Command::new(BIN)
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .arg("--report")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8(run.stdout).unwrap();
    assert!(
        stdout.contains(&format!("wrote {}", out.join("report.html").display())),
        "{stdout}"
    );

    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    // Self-contained: nothing to fetch, nothing to run.
    for needle in ["<script", "<link", "src=", "<img", "url("] {
        assert!(!html.contains(needle), "the page has {needle}");
    }

    // Every plot: inline SVG, the time axis, a vertical axis with its unit, and for the
    // 48-hour smoke run a line of at least one point per hour after the warm-up.
    let byte_units = ["(B)", "(KiB)", "(MiB)", "(GiB)", "(TiB)"];
    let plots: [(&str, &[&str]); 10] = [
        ("fetch-success", &["(share, 0 to 1)"]),
        ("fetch-latency", &["(ms)"]),
        ("availability", &["(share, 0 to 1)"]),
        ("storage", &byte_units),
        ("bandwidth", &byte_units),
        ("creds", &["B-days)"]),
        ("replicas", &["(count)"]),
        ("audit-score", &["(share, 0 to 1)"]),
        ("reputation-mean", &["(share, 0 to 1)"]),
        ("reputation-auc", &["(share, 0 to 1)"]),
    ];
    for (id, units) in plots {
        let figure = section(&html, &format!("<figure id=\"plot-{id}\">"), "</figure>");
        assert!(figure.contains("<svg"), "{id}: no inline SVG");
        assert!(figure.contains("time (days)"), "{id}: no time axis");
        assert!(
            units.iter().any(|u| figure.contains(u)),
            "{id}: no axis in {units:?}"
        );
        assert!(
            longest_polyline(figure) >= 40,
            "{id}: its longest line has {} points",
            longest_polyline(figure)
        );
        let svg = std::fs::read_to_string(out.join("plots").join(format!("{id}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{id}.svg");
        assert!(svg.contains("time (days)"), "{id}.svg");
        let png = std::fs::read(out.join("plots").join(format!("{id}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{id}.png");
        assert!(png.len() > 10_000, "{id}.png has {} bytes", png.len());
    }

    // The tables: the replay line (seed, digest), the expectations, the summary per group.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let digest = summary["trace_digest"].as_str().unwrap();
    assert!(html.contains(&format!("<code id=\"digest\">{digest}</code>")));
    assert!(html.contains("cryptosphere-sim run scenario.toml --seed 7"));
    let expectations = section(&html, "<table id=\"expectations\">", "</table>");
    for metric in ["fetch_success_ratio", "availability_mean"] {
        let row = section(expectations, &format!("<td>{metric}</td>"), "</tr>");
        assert!(row.contains("<td class=\"pass\">pass</td>"), "{row}");
    }
    let table = section(&html, "<table id=\"summary\">", "</table>");
    assert!(table.contains("<th>all</th><th>peers</th>"), "{table}");
    for name in summary["groups"]["peers"].as_object().unwrap().keys() {
        assert!(table.contains(&format!("<td>{name}</td>")), "{name}");
    }
    assert!(html.contains("<pre>"), "the scenario file is shown");
}

#[test]
fn report_names_what_is_missing_or_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let report = |dir: &Path| Command::new(BIN).arg("report").arg(dir).output().unwrap();
    let missing = report(dir.path());
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("summary.json"), "{stderr}");

    std::fs::write(
        dir.path().join("summary.json"),
        r#"{"scenario":"s","seed":1,"duration_hours":2.0,"fidelity":"synthetic","events":1,
           "trace_digest":"00","groups":{},"probes":{}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("metrics.csv"),
        "hour,group,availability\n1,g,high\n",
    )
    .unwrap();
    let bad = report(dir.path());
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("metrics.csv:2: availability: \"high\" is not a finite number"),
        "{stderr}"
    );
}
