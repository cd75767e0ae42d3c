//! A run's folder: `summary.json`, `metrics.csv`, `profile.csv` (where the events went),
//! `checks.csv` (each expectation and what was measured) and `scenario.toml` (the file as
//! run), as documented in
//! `docs/scenario-format.md` §5 and read by `cryptosphere-analysis`.

// Host code: it writes the run's files on the user's behalf.
#![allow(clippy::disallowed_methods)]

use std::path::Path;

use crate::expect::Check;
use crate::metrics::CSV_HEADER;
use crate::world::{ProfileRow, RunOutput};

/// The header of `checks.csv`.
pub const CHECKS_HEADER: &str = "group,metric,op,bound,measured,pass";

/// `checks.csv`: one line per expectation; `measured` is empty when the run had no such
/// measure.
pub fn checks_csv(checks: &[Check]) -> String {
    let mut csv = String::from(CHECKS_HEADER);
    csv.push('\n');
    for c in checks {
        let measured = c.measured.map_or_else(String::new, |m| format!("{m}"));
        csv.push_str(&format!(
            "{},{},{},{},{measured},{}\n",
            c.group, c.metric, c.op, c.bound, c.pass
        ));
    }
    csv
}

/// Writes the run's files into `dir` (created if needed); `scenario_text` is the scenario
/// file as it was read.
pub fn write_run(
    dir: &Path,
    output: &RunOutput,
    checks: &[Check],
    scenario_text: &str,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut csv = String::with_capacity(output.rows.len() * 96);
    csv.push_str(CSV_HEADER);
    csv.push('\n');
    for row in &output.rows {
        csv.push_str(&row.csv());
        csv.push('\n');
    }
    std::fs::write(dir.join("metrics.csv"), csv)?;
    let mut profile = String::from(ProfileRow::CSV_HEADER);
    profile.push('\n');
    for row in &output.profile {
        profile.push_str(&row.csv());
        profile.push('\n');
    }
    std::fs::write(dir.join("profile.csv"), profile)?;
    std::fs::write(dir.join("checks.csv"), checks_csv(checks))?;
    std::fs::write(dir.join("scenario.toml"), scenario_text)?;
    // Last: a folder with a summary is a finished run (sweeps resume and merge by it).
    let json = serde_json::to_string_pretty(&output.summary).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("summary.json"), json + "\n")
}
