//! `metrics.csv` read by column name into one time series per group, so that columns added
//! by later versions of the simulator are kept (and plotted when a plot knows them) and a
//! missing one is named rather than misread.

use std::path::Path;

use crate::error::ReportError;

/// Columns every `metrics.csv` has; the others are numbers.
pub const KEY_COLUMNS: [&str; 2] = ["hour", "group"];

/// One group's rows, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// The `hour` of each row: the row covers the hour that ends then.
    pub hours: Vec<f64>,
    /// Every numeric column, in header order, with one value per row.
    columns: Vec<(String, Vec<f64>)>,
}

impl Series {
    /// The values of `name`, one per row, if the file has that column.
    pub fn column(&self, name: &str) -> Option<&[f64]> {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    pub fn len(&self) -> usize {
        self.hours.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hours.is_empty()
    }
}

/// A whole `metrics.csv`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// The numeric columns, in header order.
    pub columns: Vec<String>,
    /// Each group's series, in order of first appearance (the simulator writes the
    /// scenario's groups, then `all`).
    pub groups: Vec<(String, Series)>,
}

impl Metrics {
    pub fn load(path: &Path) -> Result<Metrics, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
            path: path.to_owned(),
            source,
        })?;
        Metrics::parse(&text, path)
    }

    /// Parses `text`; `path` only labels errors.
    pub fn parse(text: &str, path: &Path) -> Result<Metrics, ReportError> {
        let malformed = |line: usize, problem: String| ReportError::Malformed {
            path: path.to_owned(),
            line,
            problem,
        };
        let mut lines = text.lines().enumerate();
        let Some((_, header)) = lines.next() else {
            return Err(malformed(1, "the file is empty (no header)".into()));
        };
        let names: Vec<&str> = header.split(',').map(str::trim).collect();
        let position = |wanted: &str| {
            names
                .iter()
                .position(|n| *n == wanted)
                .ok_or_else(|| malformed(1, format!("the header has no {wanted:?} column")))
        };
        let hour_at = position("hour")?;
        let group_at = position("group")?;
        let numeric: Vec<(usize, String)> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != hour_at && *i != group_at)
            .map(|(i, n)| (i, (*n).to_owned()))
            .collect();
        let mut metrics = Metrics {
            columns: numeric.iter().map(|(_, n)| n.clone()).collect(),
            groups: Vec::new(),
        };
        for (index, line) in lines {
            let number = index + 1;
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(',').collect();
            if fields.len() != names.len() {
                return Err(malformed(
                    number,
                    format!(
                        "has {} fields, the header names {}",
                        fields.len(),
                        names.len()
                    ),
                ));
            }
            let value = |at: usize, column: &str| {
                let field = fields[at].trim();
                match field.parse::<f64>() {
                    Ok(v) if v.is_finite() => Ok(v),
                    _ => Err(malformed(
                        number,
                        format!("{column}: {field:?} is not a finite number"),
                    )),
                }
            };
            let hour = value(hour_at, "hour")?;
            let group = fields[group_at].trim();
            let at = match metrics.groups.iter().position(|(g, _)| g == group) {
                Some(at) => at,
                None => {
                    let series = Series {
                        hours: Vec::new(),
                        columns: numeric
                            .iter()
                            .map(|(_, n)| (n.clone(), Vec::new()))
                            .collect(),
                    };
                    metrics.groups.push((group.to_owned(), series));
                    metrics.groups.len() - 1
                }
            };
            let series = &mut metrics.groups[at].1;
            if series.hours.last().is_some_and(|last| *last >= hour) {
                return Err(malformed(
                    number,
                    format!("hour {hour} of group {group:?} does not come after the one before"),
                ));
            }
            series.hours.push(hour);
            for ((i, name), (_, values)) in numeric.iter().zip(series.columns.iter_mut()) {
                values.push(value(*i, name)?);
            }
        }
        Ok(metrics)
    }

    /// The groups to draw: the scenario's own, or `all` when it is the only one (or when a
    /// scenario has a single group, whose series `all` repeats).
    pub fn plotted_groups(&self) -> Vec<(&str, &Series)> {
        let own: Vec<(&str, &Series)> = self
            .groups
            .iter()
            .filter(|(g, _)| g != "all")
            .map(|(g, s)| (g.as_str(), s))
            .collect();
        if own.is_empty() {
            self.groups.iter().map(|(g, s)| (g.as_str(), s)).collect()
        } else {
            own
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_columns_by_name_per_group() {
        let text = "group,hour,fetches_ok,availability\n\
                    a,1,3,1.0\nall,1,5,0.5\na,2,4,0.75\nall,2,6,0.25\n";
        let metrics = Metrics::parse(text, Path::new("m.csv")).unwrap();
        assert_eq!(metrics.columns, ["fetches_ok", "availability"]);
        let names: Vec<&str> = metrics.groups.iter().map(|(g, _)| g.as_str()).collect();
        assert_eq!(names, ["a", "all"]);
        let a = &metrics.groups[0].1;
        assert_eq!(a.hours, [1.0, 2.0]);
        assert_eq!(a.column("fetches_ok"), Some(&[3.0, 4.0][..]));
        assert_eq!(a.column("availability"), Some(&[1.0, 0.75][..]));
        assert_eq!(a.column("creds_balance"), None);
        let plotted: Vec<&str> = metrics.plotted_groups().iter().map(|(g, _)| *g).collect();
        assert_eq!(plotted, ["a"]);
    }

    #[test]
    fn bad_lines_are_named() {
        let cases = [
            ("", "m.csv:1: the file is empty (no header)"),
            (
                "hour,x\n1,2\n",
                "m.csv:1: the header has no \"group\" column",
            ),
            (
                "hour,group,x\n1,a,2\n2,a\n",
                "m.csv:3: has 2 fields, the header names 3",
            ),
            (
                "hour,group,x\n1,a,2\n2,a,lots\n",
                "m.csv:3: x: \"lots\" is not a finite number",
            ),
            (
                "hour,group,x\n1,a,2\n2,a,NaN\n",
                "m.csv:3: x: \"NaN\" is not a finite number",
            ),
            (
                "hour,group,x\n2,a,2\n1,a,3\n",
                "m.csv:3: hour 1 of group \"a\" does not come after the one before",
            ),
        ];
        for (text, message) in cases {
            let error = Metrics::parse(text, Path::new("m.csv")).unwrap_err();
            assert_eq!(error.to_string(), message);
        }
    }
}
