//! The errors of the session store (sessions and their checkpoints), each
//! naming the file.

use std::path::{Path, PathBuf};

/// An error of the session store, naming the file.
#[derive(Debug, thiserror::Error)]
pub struct SessionError {
    /// The file or folder.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for SessionError {
    /// `message: path`, the path last (STYLE.md) — unless the message (a
    /// config error, say) already names it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.path.display().to_string();
        if self.message.contains(&p) {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {p}", self.message)
        }
    }
}

/// An error about `path`.
pub(crate) fn err(path: &Path, message: impl Into<String>) -> SessionError {
    SessionError {
        path: path.to_path_buf(),
        message: message.into(),
    }
}
