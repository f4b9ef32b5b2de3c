//! What can go wrong reading or writing a dataset: every error names the
//! file, and the line and field where there is one.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in a file a problem is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// 1-based line number, if the problem is on one line.
    pub line: Option<usize>,
    /// The field, as a path such as `rationales[1].bbox[2]`.
    pub field: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.line, &self.field) {
            (Some(l), Some(fl)) => write!(f, "line {l}, field `{fl}`: "),
            (Some(l), None) => write!(f, "line {l}: "),
            (None, Some(fl)) => write!(f, "field `{fl}`: "),
            (None, None) => Ok(()),
        }
    }
}

/// Why a dataset could not be loaded or saved. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The file could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// "read", "write", "create".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file was read but its content is wrong.
    #[error("{location}{message}, in {}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Line and field.
        location: Location,
        /// What is wrong, in words.
        message: String,
    },
    /// Several lines are wrong: the first [`MAX_REPORTED`] problems, in file order.
    #[error("{total} problems{}:\n  {}\nin {}", if *total > errors.len() { format!(" (the first {} shown)", errors.len()) } else { String::new() }, errors.iter().map(DatasetError::brief).collect::<Vec<_>>().join("\n  "), path.display())]
    Several {
        /// The manifest.
        path: PathBuf,
        /// Number of problems found.
        total: usize,
        /// The first problems.
        errors: Vec<DatasetError>,
    },
    /// An image could not be decoded.
    #[error("cannot decode image: {message}, in {}", path.display())]
    Image {
        /// The image file.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
}

/// How many problems of one manifest are listed in [`DatasetError::Several`].
pub const MAX_REPORTED: usize = 20;

impl DatasetError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. }
            | Self::Invalid { path, .. }
            | Self::Image { path, .. }
            | Self::Several { path, .. } => path,
        }
    }

    /// The 1-based line, for errors inside a manifest line (the first one, for several).
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Invalid { location, .. } => location.line,
            Self::Several { errors, .. } => errors.first().and_then(Self::line),
            _ => None,
        }
    }

    /// The field path, for errors about one field (the first one, for several).
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { location, .. } => location.field.as_deref(),
            Self::Several { errors, .. } => errors.first().and_then(Self::field),
            _ => None,
        }
    }

    /// The message without the file path (for lists of problems in one file).
    pub(crate) fn brief(&self) -> String {
        match self {
            Self::Invalid {
                location, message, ..
            } => format!("{location}{message}"),
            Self::Image { path, message } => format!("{}: {message}", path.display()),
            other => other.to_string(),
        }
    }
}
