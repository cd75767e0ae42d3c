//! Sweeps: a scenario run over a grid of overridden keys (`--set KEY=V1,V2,...`) × seeds.
//! This module turns the command line into cells (one scenario text per combination,
//! checked like any scenario file), names each run's folder, and writes the plan
//! (`sweep.json`, the cells' scenarios, one command per run). Running the cells is the
//! binary's; gathering their outputs into tables and a report is `cryptosphere-analysis`'s.
//! The layout is documented in `docs/scenario-format.md` §7.

// Host code: it reads and writes the sweep's folder on the user's behalf.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use crate::metrics::Metric;
use crate::scenario::{Scenario, ScenarioError};

/// Limits on a sweep, so that a typo cannot ask for a million runs.
pub const VALUES_PER_AXIS_MAX: usize = 1_000;
pub const CELLS_MAX: usize = 10_000;
pub const SEEDS_MAX: u64 = 10_000;

/// Why a sweep was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SweepError {
    #[error("--set {arg:?}: {problem}")]
    BadSet { arg: String, problem: String },
    #[error("--set {key}: {problem}")]
    BadKey { key: String, problem: String },
    /// The scenario refuses the value (its message names the rule broken).
    #[error("--set {key}={value}: {problem}")]
    BadValue {
        key: String,
        value: String,
        problem: String,
    },
    #[error("{0}")]
    Scenario(#[from] ScenarioError),
    #[error("--metric {metric:?}: {problem}")]
    BadMetric { metric: String, problem: String },
    #[error("{what}: {problem}")]
    Other { what: String, problem: String },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One `--set`: a key and the values it takes, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Axis {
    pub key: String,
    pub values: Vec<String>,
}

impl Axis {
    /// Parses `KEY=V1,V2,...`.
    pub fn parse(arg: &str) -> Result<Axis, SweepError> {
        let bad = |problem: &str| SweepError::BadSet {
            arg: arg.to_owned(),
            problem: problem.to_owned(),
        };
        let (key, values) = arg
            .split_once('=')
            .ok_or_else(|| bad("must be KEY=V1,V2,..."))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(bad("names no key"));
        }
        let values: Vec<String> = values.split(',').map(|v| v.trim().to_owned()).collect();
        if values.iter().any(String::is_empty) {
            return Err(bad("has an empty value"));
        }
        if values.len() > VALUES_PER_AXIS_MAX {
            return Err(bad(&format!("has more than {VALUES_PER_AXIS_MAX} values")));
        }
        let mut unique = values.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != values.len() {
            return Err(bad("repeats a value"));
        }
        Ok(Axis {
            key: key.to_owned(),
            values,
        })
    }
}

/// A segment of a key: `name` or `name[index]`.
fn segments(key: &str) -> Result<Vec<(String, Option<usize>)>, SweepError> {
    let bad = |problem: String| SweepError::BadKey {
        key: key.to_owned(),
        problem,
    };
    key.split('.')
        .map(|segment| match segment.split_once('[') {
            None if !segment.is_empty() && !segment.contains(']') => Ok((segment.to_owned(), None)),
            Some((name, rest)) if !name.is_empty() => {
                let index = rest
                    .strip_suffix(']')
                    .and_then(|i| i.parse::<usize>().ok())
                    .ok_or_else(|| bad(format!("{segment:?} must be NAME or NAME[INDEX]")))?;
                Ok((name.to_owned(), Some(index)))
            }
            _ => Err(bad(format!("{segment:?} must be NAME or NAME[INDEX]"))),
        })
        .collect()
}

/// A value as written on the command line: a TOML value if it reads as one (`0.5`, `true`,
/// `[1, 2]`, `"text"`), else a string.
fn value_of(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_owned()))
}

/// `text` (a scenario) with `key` set to `value`; tables on the way are created when
/// absent (a key left to its default), arrays are not grown.
pub fn set(text: &str, key: &str, value: &str) -> Result<String, SweepError> {
    let mut root: toml::Table = toml::from_str(text).map_err(|e| SweepError::Other {
        what: "the scenario".into(),
        problem: e.message().to_owned(),
    })?;
    let path = segments(key)?;
    let bad = |problem: String| SweepError::BadKey {
        key: key.to_owned(),
        problem,
    };
    let mut table = &mut root;
    let last = path.len() - 1;
    for (depth, (name, index)) in path.iter().enumerate() {
        if depth == last && index.is_none() {
            if let Some(toml::Value::Table(_)) = table.get(name) {
                return Err(bad("names a table, not a value".into()));
            }
            if let Some(toml::Value::Array(items)) = table.get(name) {
                if items.iter().any(toml::Value::is_table) {
                    return Err(bad("names an array of tables, not a value".into()));
                }
            }
            table.insert(name.clone(), value_of(value));
            break;
        }
        let entry = table
            .entry(name.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let next = match (index, entry) {
            (Some(i), toml::Value::Array(items)) => {
                let len = items.len();
                match items.get_mut(*i) {
                    Some(toml::Value::Table(t)) => t,
                    Some(_) => return Err(bad(format!("{name}[{i}] is not a table"))),
                    None => {
                        return Err(bad(format!(
                            "the scenario has {len} {name} entries (indexes 0 to {})",
                            len.saturating_sub(1)
                        )))
                    }
                }
            }
            (Some(_), _) => return Err(bad(format!("{name} is not an array of tables"))),
            (None, toml::Value::Table(t)) => t,
            (None, _) => return Err(bad(format!("{name} is not a table"))),
        };
        if depth == last {
            return Err(bad("names a table, not a value".into()));
        }
        table = next;
    }
    toml::to_string(&root).map_err(|e| SweepError::Other {
        what: format!("--set {key}"),
        problem: e.to_string(),
    })
}

/// The problem a scenario error states, without its file position (the text checked is
/// the generated one, whose lines mean nothing to the user).
pub(crate) fn problem_of(error: &ScenarioError) -> String {
    match error {
        ScenarioError::Syntax { key, message, .. } => match key {
            Some(key) => format!("{key}: {message}"),
            None => message.clone(),
        },
        ScenarioError::Invalid { key, problem, .. } => format!("{key}: {problem}"),
        other => other.to_string(),
    }
}

/// One combination of the axes' values.
#[derive(Debug, Clone)]
pub struct Cell {
    /// `cell-000`, `cell-001`, ... in row-major order of the axes.
    pub id: String,
    /// One value per axis, as written.
    pub values: Vec<String>,
    /// The scenario with the values set.
    pub text: String,
}

/// Every cell of the grid, each checked as a scenario; a value the scenario refuses is named.
pub fn cells(base: &str, axes: &[Axis]) -> Result<Vec<Cell>, SweepError> {
    let mut keys: Vec<&str> = axes.iter().map(|a| a.key.as_str()).collect();
    keys.sort_unstable();
    if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
        return Err(SweepError::BadKey {
            key: w[0].to_owned(),
            problem: "is set twice".into(),
        });
    }
    // Each value alone first, so that a refusal names the one value that caused it.
    for axis in axes {
        for value in &axis.values {
            let text = set(base, &axis.key, value)?;
            Scenario::parse(&text, "sweep").map_err(|e| SweepError::BadValue {
                key: axis.key.clone(),
                value: value.clone(),
                problem: problem_of(&e),
            })?;
        }
    }
    let total: usize = axes.iter().map(|a| a.values.len()).product();
    if total > CELLS_MAX {
        return Err(SweepError::Other {
            what: "the grid".into(),
            problem: format!("has {total} cells, more than {CELLS_MAX}"),
        });
    }
    let mut cells = Vec::with_capacity(total);
    for n in 0..total {
        // Row-major: the last axis varies fastest.
        let mut rest = n;
        let mut values = vec![String::new(); axes.len()];
        for (a, axis) in axes.iter().enumerate().rev() {
            values[a] = axis.values[rest % axis.values.len()].clone();
            rest /= axis.values.len();
        }
        let mut text = base.to_owned();
        for (axis, value) in axes.iter().zip(&values) {
            text = set(&text, &axis.key, value)?;
        }
        Scenario::parse(&text, "sweep").map_err(|e| SweepError::Other {
            what: format!(
                "the cell {}",
                axes.iter()
                    .zip(&values)
                    .map(|(a, v)| format!("{}={v}", a.key))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            problem: problem_of(&e),
        })?;
        cells.push(Cell {
            id: format!("cell-{n:03}"),
            values,
            text,
        });
    }
    Ok(cells)
}

/// `GROUP.METRIC`, checked against the scenario's groups and the metric names.
pub fn check_metric(metric: &str, scenario: &Scenario) -> Result<(), SweepError> {
    let bad = |problem: String| SweepError::BadMetric {
        metric: metric.to_owned(),
        problem,
    };
    let (group, name) = metric
        .split_once('.')
        .ok_or_else(|| bad("must be GROUP.METRIC, e.g. all.fetch_success_ratio".into()))?;
    if group != "all" && !scenario.groups.iter().any(|g| g.name == group) {
        let names: Vec<&str> = scenario.groups.iter().map(|g| g.name.as_str()).collect();
        return Err(bad(format!(
            "no group is named {group:?} (groups: all, {})",
            names.join(", ")
        )));
    }
    name.parse::<Metric>().map_err(|e| {
        let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        bad(format!("{e}; valid metrics: {}", names.join(", ")))
    })?;
    Ok(())
}

/// The seeds of a sweep: the scenario's seed and the `count - 1` after it.
pub fn seeds(first: u64, count: u64) -> Vec<u64> {
    (0..count).map(|i| first.wrapping_add(i)).collect()
}

/// The folder of one run of a sweep.
pub fn run_dir(out: &Path, cell: &str, seed: u64) -> PathBuf {
    out.join("runs").join(cell).join(format!("seed-{seed}"))
}

/// The scenario file of a cell.
pub fn cell_scenario(out: &Path, cell: &str) -> PathBuf {
    out.join("scenarios").join(format!("{cell}.toml"))
}

/// `sweep.json`: what the sweep is (for resuming, merging and the report).
pub fn plan_json(
    scenario: &Path,
    axes: &[Axis],
    cells: &[Cell],
    seeds: &[u64],
    metric: &str,
) -> String {
    let value = serde_json::json!({
        "scenario": scenario.display().to_string(),
        "metric": metric,
        "seeds": seeds,
        "axes": axes.iter().map(|a| serde_json::json!({"key": a.key, "values": a.values})).collect::<Vec<_>>(),
        "cells": cells.iter().map(|c| serde_json::json!({"id": c.id, "values": c.values})).collect::<Vec<_>>(),
    });
    serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
}

/// One command per run, for a scheduler (GNU parallel, a Slurm array).
pub fn plan_commands(program: &str, out: &Path, cells: &[Cell], seeds: &[u64]) -> Vec<String> {
    let mut commands = Vec::with_capacity(cells.len() * seeds.len());
    for cell in cells {
        for seed in seeds {
            commands.push(format!(
                "{program} run {} --seed {seed} --out {}",
                cell_scenario(out, &cell.id).display(),
                run_dir(out, &cell.id, *seed).display()
            ));
        }
    }
    commands
}

/// Writes `sweep.json` and the cells' scenarios into `out`, refusing a folder that holds
/// another sweep (resuming needs the same grid).
pub fn write_plan(
    out: &Path,
    scenario: &Path,
    axes: &[Axis],
    cells: &[Cell],
    seeds: &[u64],
    metric: &str,
) -> Result<(), SweepError> {
    let write = |path: &Path, text: &str| {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| SweepError::Write {
                path: parent.to_owned(),
                source,
            })?;
        }
        std::fs::write(path, text).map_err(|source| SweepError::Write {
            path: path.to_owned(),
            source,
        })
    };
    let plan = out.join("sweep.json");
    let json = plan_json(scenario, axes, cells, seeds, metric);
    if let Ok(existing) = std::fs::read_to_string(&plan) {
        let grid = |text: &str| {
            serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .map(|v| (v["axes"].clone(), v["cells"].clone()))
        };
        if grid(&existing) != grid(&json) {
            return Err(SweepError::Other {
                what: plan.display().to_string(),
                problem: "holds another sweep's grid: use another --out".into(),
            });
        }
    }
    write(&plan, &json)?;
    for cell in cells {
        let path = cell_scenario(out, &cell.id);
        write(&path, &cell.text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const BASE: &str =
        "seed = 1\n[workload]\nrate = 2.0\n[[group]]\nname = \"a\"\n[[group]]\nname = \"b\"\n";

    #[test]
    fn set_reaches_array_elements_and_creates_default_tables() {
        let text = set(BASE, "group[1].strategy.altruism", "0.25").unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(
            table["group"][1]["strategy"]["altruism"].as_float(),
            Some(0.25)
        );
        assert_eq!(table["group"][0].get("strategy"), None);
        let text = set(BASE, "workload.rate", "7").unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(table["workload"]["rate"].as_integer(), Some(7));
        let text = set(BASE, "group[0].name", "free").unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(table["group"][0]["name"].as_str(), Some("free"));
    }

    #[test]
    fn bad_keys_and_sets_are_named() {
        let cases = [
            (
                "group[2].name",
                "--set group[2].name: the scenario has 2 group entries (indexes 0 to 1)",
            ),
            (
                "workload[0].rate",
                "--set workload[0].rate: workload is not an array of tables",
            ),
            ("seed.x", "--set seed.x: seed is not a table"),
            (
                "group[x].name",
                "--set group[x].name: \"group[x]\" must be NAME or NAME[INDEX]",
            ),
            ("workload", "--set workload: names a table, not a value"),
        ];
        for (key, message) in cases {
            assert_eq!(set(BASE, key, "1").unwrap_err().to_string(), message);
        }
        assert_eq!(
            Axis::parse("workload.rate").unwrap_err().to_string(),
            "--set \"workload.rate\": must be KEY=V1,V2,..."
        );
        assert_eq!(
            Axis::parse("k=1,,2").unwrap_err().to_string(),
            "--set \"k=1,,2\": has an empty value"
        );
        assert_eq!(
            Axis::parse("k=1,2").unwrap(),
            Axis {
                key: "k".into(),
                values: vec!["1".into(), "2".into()]
            }
        );
    }
}
