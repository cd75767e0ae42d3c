//! The one error type of the crate: what could not be read, parsed, drawn or written.

use std::path::PathBuf;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A line of a CSV file that does not follow its schema.
    #[error("{}:{line}: {problem}", path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    /// A field of a JSON file that is missing or of the wrong type.
    #[error("{}: {field}: {problem}", path.display())]
    Field {
        path: PathBuf,
        field: String,
        problem: String,
    },
    #[error("cannot draw the plot {plot}: {message}")]
    Plot { plot: String, message: String },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}
