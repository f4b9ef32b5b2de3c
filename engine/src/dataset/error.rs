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
    #[error("{}", several(*total, errors, path))]
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

/// The text of [`DatasetError::Several`]: the problems of one file end with
/// "in FILE"; problems in several files (an import's images, say) each name
/// their own.
fn several(total: usize, errors: &[DatasetError], path: &Path) -> String {
    let shown = if total > errors.len() {
        format!(" (the first {} shown)", errors.len())
    } else {
        String::new()
    };
    let one_file = errors.iter().all(|e| e.path() == path);
    let lines: Vec<String> = errors
        .iter()
        .map(|e| match e {
            _ if one_file => e.brief(),
            DatasetError::Invalid {
                path,
                location,
                message,
            } => format!("{}: {location}{message}", path.display()),
            DatasetError::Image { .. } => e.brief(),
            other => other.to_string(),
        })
        .collect();
    let tail = if one_file {
        format!("\nin {}", path.display())
    } else {
        String::new()
    };
    format!("{total} problems{shown}:\n  {}{tail}", lines.join("\n  "))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(path: &str, line: Option<usize>, message: &str) -> DatasetError {
        DatasetError::Invalid {
            path: path.into(),
            location: Location { line, field: None },
            message: message.into(),
        }
    }

    #[test]
    fn problems_of_several_files_each_name_their_own() {
        let e = DatasetError::Several {
            path: "imgs/a.png".into(),
            total: 3,
            errors: vec![
                bad("imgs/a.png", None, "truncated image"),
                bad("imgs/b.png", None, "not an image"),
                DatasetError::Image {
                    path: "imgs/c.jpg".into(),
                    message: "unexpected end of file".into(),
                },
            ],
        };
        let text = e.to_string();
        for (file, problem) in [
            ("imgs/a.png", "truncated image"),
            ("imgs/b.png", "not an image"),
            ("imgs/c.jpg", "unexpected end of file"),
        ] {
            assert!(
                text.lines()
                    .any(|l| l.contains(file) && l.contains(problem)),
                "no line names {file} with its problem:\n{text}"
            );
        }
        assert!(!text.contains("\nin "), "one file blamed for all:\n{text}");
    }

    #[test]
    fn problems_of_one_file_name_it_once() {
        let e = DatasetError::Several {
            path: "m.jsonl".into(),
            total: 2,
            errors: vec![bad("m.jsonl", Some(1), "x"), bad("m.jsonl", Some(4), "y")],
        };
        let text = e.to_string();
        assert!(text.ends_with("\nin m.jsonl"), "{text}");
        assert_eq!(text.matches("m.jsonl").count(), 1, "{text}");
    }
}
