//! A run's folder as the simulator writes it: `summary.json` and `metrics.csv` (required),
//! `checks.csv` and `scenario.toml` (written since reports exist; older runs lack them).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::ReportError;
use crate::metrics::Metrics;

/// What `summary.json` says.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub scenario: String,
    pub seed: u64,
    pub duration_hours: f64,
    pub fidelity: String,
    pub events: u64,
    pub trace_digest: String,
    /// Group (and `all`) → metric name → value, in the file's order.
    pub groups: Vec<(String, Vec<(String, f64)>)>,
    /// Probe name → success ratio.
    pub probes: Vec<(String, f64)>,
}

impl Summary {
    pub fn load(path: &Path) -> Result<Summary, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
            path: path.to_owned(),
            source,
        })?;
        Summary::parse(&text, path)
    }

    /// Parses `text`; `path` only labels errors.
    pub fn parse(text: &str, path: &Path) -> Result<Summary, ReportError> {
        let field_error = |field: &str, problem: String| ReportError::Field {
            path: path.to_owned(),
            field: field.to_owned(),
            problem,
        };
        let root: Value = serde_json::from_str(text).map_err(|e| ReportError::Malformed {
            path: path.to_owned(),
            line: e.line(),
            problem: format!("not JSON: {e}"),
        })?;
        let get = |field: &str| {
            root.get(field)
                .ok_or_else(|| field_error(field, "is missing".into()))
        };
        let string = |field: &str| {
            get(field)?
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| field_error(field, "must be a string".into()))
        };
        let unsigned = |field: &str| {
            get(field)?
                .as_u64()
                .ok_or_else(|| field_error(field, "must be a whole number, 0 or more".into()))
        };
        let numbers = |field: &str, value: &Value| -> Result<Vec<(String, f64)>, ReportError> {
            let object = value
                .as_object()
                .ok_or_else(|| field_error(field, "must be an object of numbers".into()))?;
            object
                .iter()
                .map(|(name, v)| {
                    v.as_f64().map(|v| (name.clone(), v)).ok_or_else(|| {
                        field_error(&format!("{field}.{name}"), "must be a number".into())
                    })
                })
                .collect()
        };
        let groups_value = get("groups")?;
        let groups = groups_value
            .as_object()
            .ok_or_else(|| field_error("groups", "must be an object of groups".into()))?
            .iter()
            .map(|(name, metrics)| Ok((name.clone(), numbers(&format!("groups.{name}"), metrics)?)))
            .collect::<Result<Vec<_>, ReportError>>()?;
        let probes = match root.get("probes") {
            Some(value) => numbers("probes", value)?,
            None => Vec::new(),
        };
        Ok(Summary {
            scenario: string("scenario")?,
            seed: unsigned("seed")?,
            duration_hours: get("duration_hours")?
                .as_f64()
                .ok_or_else(|| field_error("duration_hours", "must be a number".into()))?,
            fidelity: string("fidelity")?,
            events: unsigned("events")?,
            trace_digest: string("trace_digest")?,
            groups,
            probes,
        })
    }
}

/// One line of `checks.csv`: an expectation and what the run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRow {
    pub group: String,
    pub metric: String,
    pub op: String,
    pub bound: f64,
    /// `None` when the run has no such measure.
    pub measured: Option<f64>,
    pub pass: bool,
}

/// The header of `checks.csv`.
pub const CHECKS_HEADER: &str = "group,metric,op,bound,measured,pass";

/// Parses `checks.csv`; `path` only labels errors.
pub fn parse_checks(text: &str, path: &Path) -> Result<Vec<CheckRow>, ReportError> {
    let malformed = |line: usize, problem: String| ReportError::Malformed {
        path: path.to_owned(),
        line,
        problem,
    };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.trim() == CHECKS_HEADER => {}
        _ => {
            return Err(malformed(
                1,
                format!("the header must be {CHECKS_HEADER:?}"),
            ))
        }
    }
    let mut rows = Vec::new();
    for (index, line) in lines {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [group, metric, op, bound, measured, pass] = fields[..] else {
            return Err(malformed(
                number,
                format!("has {} fields, not 6", fields.len()),
            ));
        };
        let number_of = |name: &str, field: &str| {
            field
                .parse::<f64>()
                .map_err(|_| malformed(number, format!("{name}: {field:?} is not a number")))
        };
        rows.push(CheckRow {
            group: group.to_owned(),
            metric: metric.to_owned(),
            op: op.to_owned(),
            bound: number_of("bound", bound)?,
            measured: if measured.is_empty() {
                None
            } else {
                Some(number_of("measured", measured)?)
            },
            pass: match pass {
                "true" => true,
                "false" => false,
                other => {
                    return Err(malformed(
                        number,
                        format!("pass: {other:?} is neither true nor false"),
                    ))
                }
            },
        });
    }
    Ok(rows)
}

/// Everything a report shows, read from a run's folder.
#[derive(Debug, Clone)]
pub struct Run {
    pub dir: PathBuf,
    pub summary: Summary,
    pub metrics: Metrics,
    /// `None` when the run wrote no `checks.csv`.
    pub checks: Option<Vec<CheckRow>>,
    /// The scenario file as run, if the run kept a copy.
    pub scenario_text: Option<String>,
}

impl Run {
    pub fn load(dir: &Path) -> Result<Run, ReportError> {
        let optional = |name: &str| -> Result<Option<(PathBuf, String)>, ReportError> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(Some((path, text))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(ReportError::Read { path, source }),
            }
        };
        let checks = match optional("checks.csv")? {
            Some((path, text)) => Some(parse_checks(&text, &path)?),
            None => None,
        };
        Ok(Run {
            dir: dir.to_owned(),
            summary: Summary::load(&dir.join("summary.json"))?,
            metrics: Metrics::load(&dir.join("metrics.csv"))?,
            checks,
            scenario_text: optional("scenario.toml")?.map(|(_, text)| text),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn summary_fields_are_checked_by_name() {
        let good = r#"{"scenario":"s","seed":7,"duration_hours":48.0,"fidelity":"synthetic",
            "events":10,"trace_digest":"ab","groups":{"g":{"peers":60.0}},"probes":{}}"#;
        let summary = Summary::parse(good, Path::new("summary.json")).unwrap();
        assert_eq!(summary.seed, 7);
        assert_eq!(
            summary.groups,
            [("g".to_owned(), vec![("peers".to_owned(), 60.0)])]
        );
        let bad = good.replace("\"seed\":7", "\"seed\":-1");
        assert_eq!(
            Summary::parse(&bad, Path::new("summary.json"))
                .unwrap_err()
                .to_string(),
            "summary.json: seed: must be a whole number, 0 or more"
        );
        let bad = good.replace("60.0", "\"many\"");
        assert_eq!(
            Summary::parse(&bad, Path::new("summary.json"))
                .unwrap_err()
                .to_string(),
            "summary.json: groups.g.peers: must be a number"
        );
    }

    #[test]
    fn checks_are_read_and_bad_lines_named() {
        let text = format!(
            "{CHECKS_HEADER}\nall,fetch_success_ratio,>=,0.9,0.95,true\nall,x,<,1,,false\n"
        );
        let rows = parse_checks(&text, Path::new("checks.csv")).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].measured, Some(0.95));
        assert!(rows[0].pass);
        assert_eq!(rows[1].measured, None);
        let bad = format!("{CHECKS_HEADER}\nall,x,<,1,,maybe\n");
        assert_eq!(
            parse_checks(&bad, Path::new("checks.csv"))
                .unwrap_err()
                .to_string(),
            "checks.csv:2: pass: \"maybe\" is neither true nor false"
        );
    }
}
