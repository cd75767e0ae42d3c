//! Golden files: CSV tables pinned in the repository (`tests/golden/`), compared cell by cell
//! with what a run wrote, and rewritten on purpose with `--bless`. Rows are paired by their
//! leading key columns, so a failure names each cell that changed by its row and column.

// Host code: it reads and writes the golden files on the user's behalf.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

/// One difference between a golden table and the table now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub file: String,
    /// The row's key columns, as written (`COLUMN=VALUE, ...`).
    pub row: String,
    /// The fields of the row's key (to find what replays it).
    pub key: Vec<String>,
    /// The column that changed; `None` for a row only one side has.
    pub column: Option<String>,
    /// `None`: the golden file has no such row (or no file at all).
    pub golden: Option<String>,
    /// `None`: the table now has no such row.
    pub now: Option<String>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| match v.as_deref() {
            None => "(no row)".to_owned(),
            Some("") => "(empty)".to_owned(),
            Some(v) => v.to_owned(),
        };
        match &self.column {
            Some(column) => write!(
                f,
                "{}: {} {column}: golden {}, now {}",
                self.file,
                self.row,
                show(&self.golden),
                show(&self.now)
            ),
            None if self.golden.is_none() && self.key.is_empty() => {
                write!(f, "{}: a new file", self.file)
            }
            None if self.golden.is_none() => write!(f, "{}: {}: new row", self.file, self.row),
            None if self.now.is_none() && self.key.is_empty() => {
                write!(f, "{}: in the golden folder, not written now", self.file)
            }
            None => write!(f, "{}: {}: row gone", self.file, self.row),
        }
    }
}

/// The cells of `now` that differ from `golden` (both CSV texts with a header line); rows
/// are paired by their first `key_columns` fields.
pub fn compare_csv(file: &str, golden: &str, now: &str, key_columns: usize) -> Vec<Change> {
    let parse = |text: &str| -> (Vec<String>, Vec<Vec<String>>) {
        let mut lines = text.lines().filter(|l| !l.is_empty());
        let header = lines
            .next()
            .map(|h| h.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        let rows = lines
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect();
        (header, rows)
    };
    if golden.trim().is_empty() {
        return vec![Change {
            file: file.to_owned(),
            row: "(the whole file)".into(),
            key: Vec::new(),
            column: None,
            golden: None,
            now: Some(now.to_owned()),
        }];
    }
    let (golden_header, golden_rows) = parse(golden);
    let (header, rows) = parse(now);
    let mut changes = Vec::new();
    if golden_header != header {
        changes.push(Change {
            file: file.to_owned(),
            row: "header".into(),
            key: Vec::new(),
            column: Some("(columns)".into()),
            golden: Some(golden_header.join(",")),
            now: Some(header.join(",")),
        });
        return changes;
    }
    // A row's key: its key columns, and which of the rows with those it is (a key that
    // repeats, as two bounds on one metric of one group, pairs its rows in order).
    let keyed = |rows: &[Vec<String>]| -> Vec<Vec<String>> {
        let mut seen: Vec<Vec<String>> = Vec::new();
        rows.iter()
            .map(|row| {
                let mut key: Vec<String> = row.iter().take(key_columns).cloned().collect();
                let nth = seen.iter().filter(|k| **k == key).count();
                seen.push(key.clone());
                if nth > 0 {
                    key.push(format!("#{}", nth + 1));
                }
                key
            })
            .collect()
    };
    let (golden_keys, keys) = (keyed(&golden_rows), keyed(&rows));
    let label = |row: &[String]| {
        header
            .iter()
            .zip(row)
            .take(key_columns)
            .map(|(h, v)| format!("{h}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (row, row_key) in rows.iter().zip(&keys) {
        match golden_keys.iter().position(|k| k == row_key) {
            None => changes.push(Change {
                file: file.to_owned(),
                row: label(row),
                key: row_key.clone(),
                column: None,
                golden: None,
                now: Some(row.join(",")),
            }),
            Some(g) => {
                let golden_row = &golden_rows[g];
                for (c, column) in header.iter().enumerate().skip(key_columns) {
                    let (g, n) = (golden_row.get(c), row.get(c));
                    if g != n {
                        changes.push(Change {
                            file: file.to_owned(),
                            row: label(row),
                            key: row_key.clone(),
                            column: Some(column.clone()),
                            golden: g.cloned(),
                            now: n.cloned(),
                        });
                    }
                }
            }
        }
    }
    for (golden_row, golden_key) in golden_rows.iter().zip(&golden_keys) {
        if !keys.contains(golden_key) {
            changes.push(Change {
                file: file.to_owned(),
                row: label(golden_row),
                key: golden_key.clone(),
                column: None,
                golden: Some(golden_row.join(",")),
                now: None,
            });
        }
    }
    changes
}

/// Why a golden file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum GoldenError {
    #[error("cannot read the golden file {}: {source} (write it with --bless)", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the golden file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `now` against the golden file at `path`; with `bless`, `path` is rewritten instead (and
/// the changes it makes are returned).
pub fn check_or_bless(
    path: &Path,
    now: &str,
    key_columns: usize,
    bless: bool,
) -> Result<Vec<Change>, GoldenError> {
    let file = path
        .file_name()
        .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
    let golden = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(_) if bless => String::new(),
        Err(source) => {
            return Err(GoldenError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    let changes = compare_csv(&file, &golden, now, key_columns);
    if bless && !changes.is_empty() {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| GoldenError::Write {
                path: parent.to_owned(),
                source,
            })?;
        }
        std::fs::write(path, now).map_err(|source| GoldenError::Write {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_cells_new_rows_and_gone_rows_are_named() {
        let golden = "match,seed,payoff\na,1,2.5\nb,1,3\nc,1,4\n";
        let now = "match,seed,payoff\na,1,2.5\nb,1,3.25\nd,1,1\n";
        let changes = compare_csv("m.csv", golden, now, 2);
        let shown: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "m.csv: match=b, seed=1 payoff: golden 3, now 3.25",
                "m.csv: match=d, seed=1: new row",
                "m.csv: match=c, seed=1: row gone",
            ]
        );
        assert_eq!(changes[0].key, ["b", "1"]);
        assert!(compare_csv("m.csv", golden, golden, 2).is_empty());
        let other = compare_csv("m.csv", golden, "match,payoff\n", 1);
        assert_eq!(other.len(), 1);
        assert_eq!(other[0].row, "header");
        let new = compare_csv("m.csv", "", now, 2);
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].to_string(), "m.csv: a new file");
        // A key that repeats pairs its rows in order: only the second one changed.
        let golden = "metric,op,measured\nm,<=,1\nm,<=,2\n";
        let now = "metric,op,measured\nm,<=,1\nm,<=,3\n";
        let changes = compare_csv("e.csv", golden, now, 2);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].golden.as_deref(), Some("2"));
        assert_eq!(changes[0].now.as_deref(), Some("3"));
    }
}
