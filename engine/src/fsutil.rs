//! Crash-safe file writing: write to a temporary file beside the target,
//! flush it to disk, then rename it over the target (DESIGN §8).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// `bytes` without a leading UTF-8 byte-order mark. Editors on Windows
/// (Notepad, Excel's "CSV UTF-8") start a text file with one; JSON forbids
/// it, so every reader of our JSON and JSON Lines files drops it first.
pub fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// Serialises items as JSON Lines: one compact JSON object per line, each
/// ending in `\n`. (Our record types always serialise; an item that could
/// not would be written as an empty line, which readers skip.)
pub fn to_jsonl<T: serde::Serialize>(items: impl IntoIterator<Item = T>) -> String {
    let mut out = String::new();
    for it in items {
        out.push_str(&serde_json::to_string(&it).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// The numbers `N` of the files `<prefix>N<suffix>` in `dir` (unsorted;
/// none when the folder cannot be read): `iter-000012.jsonl`,
/// `ckpt-000012.safetensors`.
pub fn numbered_files(dir: &Path, prefix: &str, suffix: &str) -> Vec<u64> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes `bytes` to `path` so that a crash at any moment leaves either the
/// old complete file or the new complete file, never a torn one: the bytes go
/// to `.<name>.tmp-<pid>` in the same folder, are synced, and the temporary
/// file is renamed over `path`; then the folder is synced. On error the
/// temporary file is removed and `path` is untouched.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // Persist the rename itself (best effort: not every platform can open a folder).
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.txt");
        atomic_write(&p, b"one").expect("write");
        atomic_write(&p, b"two").expect("write");
        assert_eq!(fs::read(&p).expect("read"), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn failure_keeps_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.txt");
        atomic_write(&p, b"old").expect("write");
        // Renaming a file over a non-empty directory fails.
        let d = dir.path().join("sub");
        fs::create_dir(&d).expect("mkdir");
        fs::write(d.join("x"), b"x").expect("write");
        assert!(atomic_write(&d, b"new").is_err());
        assert_eq!(fs::read(&p).expect("read"), b"old");
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 2);
    }
}
