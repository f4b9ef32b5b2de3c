//! Every malformed manifest input is a clear error naming file, line and
//! field, and a failed load changes nothing on disk.

use image::{Rgb, RgbImage};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use virl_engine::dataset::{Dataset, DatasetError, MANIFEST};

const GOOD: &str = r#"{"id": "a", "image": "a.png", "width": 40, "height": 30, "question": "What digit?", "answer": "7", "rationales": [{"bbox": [1, 2, 11, 12], "label": "red placard"}], "meta": {"k": 1}, "source": "hand-written"}"#;
const GOOD_B: &str = r#"{"id": "b", "image": "b.png", "width": 40, "height": 30, "question": "Which colour?", "answer": "A", "options": ["red", "blue"], "rationales": []}"#;

/// A dataset folder with images a.png and b.png (40×30) and the given manifest bytes.
fn folder(manifest: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["a.png", "b.png"] {
        RgbImage::from_pixel(40, 30, Rgb([9, 9, 9]))
            .save(dir.path().join(name))
            .expect("png");
    }
    fs::write(dir.path().join(MANIFEST), manifest).expect("manifest");
    dir
}

/// Every file's bytes, by name.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .expect("ls")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).expect("read"),
            )
        })
        .collect()
}

/// Loads and expects an error on `line` (and `field`) whose message contains
/// `needle` and names the manifest; checks that nothing on disk changed.
fn expect_error(
    manifest: &[u8],
    line: Option<usize>,
    field: Option<&str>,
    needle: &str,
) -> DatasetError {
    let dir = folder(manifest);
    let before = snapshot(dir.path());
    let err = Dataset::load(dir.path()).expect_err("load should fail");
    let msg = err.to_string();
    assert_eq!(
        before,
        snapshot(dir.path()),
        "a failed load changed the folder"
    );
    assert!(msg.contains(needle), "{msg:?} does not contain {needle:?}");
    assert_eq!(err.line(), line, "{msg}");
    assert_eq!(err.field(), field, "{msg}");
    assert!(
        msg.contains(&dir.path().display().to_string()),
        "{msg:?} does not name the file"
    );
    err
}

fn lines(ls: &[&str]) -> Vec<u8> {
    let mut s = ls.join("\n");
    s.push('\n');
    s.into_bytes()
}

#[test]
fn good_manifest_loads_and_round_trips() {
    let dir = folder(&lines(&[GOOD, "", GOOD_B]));
    let ds = Dataset::load(dir.path()).expect("load");
    assert_eq!(ds.len(), 2);
    let a = ds.get("a").expect("a");
    assert_eq!(a.rationales[0].bbox.to_array(), [1.0, 2.0, 11.0, 12.0]);
    assert_eq!(a.extra["source"], "hand-written");
    assert_eq!(ds.get("b").expect("b").options, vec!["red", "blue"]);
    // save → load gives the same samples, unknown keys included
    ds.save().expect("save");
    let again = Dataset::load(dir.path()).expect("reload");
    assert_eq!(again.samples(), ds.samples());
    // and the manifest path itself is accepted too
    assert_eq!(
        Dataset::load(dir.path().join(MANIFEST))
            .expect("load file")
            .len(),
        2
    );
    // no temporary files are left behind
    assert!(snapshot(dir.path()).keys().all(|k| !k.contains(".tmp")));
}

#[test]
fn missing_image() {
    let l = GOOD.replace("a.png", "images/missing.png");
    expect_error(
        &lines(&[&l]),
        Some(1),
        Some("image"),
        "image file not found",
    );
}

#[test]
fn image_size_mismatch() {
    let l = GOOD.replace("\"width\": 40", "\"width\": 41");
    expect_error(
        &lines(&[&l]),
        Some(1),
        Some("width"),
        "the manifest says 41×30 but",
    );
}

#[test]
fn box_outside_the_image() {
    let l = GOOD.replace("[1, 2, 11, 12]", "[30, 2, 45, 12]");
    expect_error(
        &lines(&[GOOD_B, &l]),
        Some(2),
        Some("rationales[0].bbox"),
        "outside the 40×30 image",
    );
    let l = GOOD.replace("[1, 2, 11, 12]", "[-3, 2, 11, 12]");
    expect_error(
        &lines(&[&l]),
        Some(1),
        Some("rationales[0].bbox"),
        "outside",
    );
}

#[test]
fn degenerate_box() {
    let l = GOOD.replace("[1, 2, 11, 12]", "[11, 2, 1, 12]");
    expect_error(
        &lines(&[&l]),
        Some(1),
        Some("rationales[0].bbox"),
        "degenerate",
    );
    let l = GOOD.replace("[1, 2, 11, 12]", "[1, 2, 11, 2]");
    expect_error(
        &lines(&[&l]),
        Some(1),
        Some("rationales[0].bbox"),
        "degenerate",
    );
}

#[test]
fn nan_and_infinity() {
    // Python's json.dump writes these bare words.
    let l = GOOD.replace("[1, 2, 11, 12]", "[1, 2, NaN, 12]");
    expect_error(
        &lines(&[&l]),
        Some(1),
        Some("rationales[0].bbox[2]"),
        "not a finite number",
    );
    let l = GOOD.replace("[1, 2, 11, 12]", "[1, -Infinity, 11, 12]");
    expect_error(
        &lines(&[&l]),
        Some(1),
        Some("rationales[0].bbox[1]"),
        "not a finite number",
    );
    let l = GOOD.replace("[1, 2, 11, 12]", "[1, 2, 11, null]");
    expect_error(
        &lines(&[&l]),
        Some(1),
        Some("rationales[0].bbox[3]"),
        "null",
    );
    // a number too large for f64 is parsed as infinity by nobody: serde rejects it as JSON
    let l = GOOD.replace("[1, 2, 11, 12]", "[1, 2, 1e999, 12]");
    expect_error(&lines(&[&l]), Some(1), None, "not valid JSON");
    // "NaN" inside a string is left alone
    let l = GOOD.replace("What digit?", "NaN or Infinity?");
    let dir = folder(&lines(&[&l]));
    assert_eq!(
        Dataset::load(dir.path()).expect("load").samples()[0].question,
        "NaN or Infinity?"
    );
}

#[test]
fn truncated_final_line() {
    let mut m = lines(&[GOOD_B]);
    m.extend_from_slice(&GOOD.as_bytes()[..GOOD.len() / 2]);
    expect_error(&m, Some(2), None, "truncated");
}

#[test]
fn duplicate_id() {
    let l = GOOD_B.replace("\"id\": \"b\"", "\"id\": \"a\"");
    expect_error(
        &lines(&[GOOD, &l]),
        Some(2),
        Some("id"),
        "duplicate id \"a\" (first used on line 1)",
    );
}

#[test]
fn wrong_types() {
    let cases = [
        (
            GOOD.replace("\"width\": 40", "\"width\": \"40\""),
            "width",
            "expected a positive whole number",
        ),
        (
            GOOD.replace("\"width\": 40", "\"width\": 40.5"),
            "width",
            "expected a positive whole number",
        ),
        (
            GOOD.replace("\"answer\": \"7\"", "\"answer\": 7"),
            "answer",
            "expected a string, found number 7",
        ),
        (
            GOOD.replace("\"id\": \"a\"", "\"id\": [1]"),
            "id",
            "expected a string",
        ),
        (
            GOOD.replace("[{\"bbox\"", "{\"x\": [{\"bbox\"")
                .replace("}], \"meta\"", "}]}, \"meta\""),
            "rationales",
            "expected an array",
        ),
        (
            GOOD.replace("[1, 2, 11, 12]", "[1, 2, 11]"),
            "rationales[0].bbox",
            "expected 4 numbers",
        ),
        (
            GOOD.replace("[1, 2, 11, 12]", "[1, \"2\", 11, 12]"),
            "rationales[0].bbox[1]",
            "expected a number",
        ),
        (
            GOOD.replace("\"label\": \"red placard\"", "\"label\": 3"),
            "rationales[0].label",
            "expected a string",
        ),
        (
            GOOD_B.replace("[\"red\", \"blue\"]", "[\"red\", 2]"),
            "options[1]",
            "expected a string",
        ),
        (
            GOOD.replace("\"question\": \"What digit?\", ", ""),
            "question",
            "missing",
        ),
        (
            GOOD.replace("\"bbox\": [1, 2, 11, 12], ", ""),
            "rationales[0].bbox",
            "missing",
        ),
    ];
    for (l, field, needle) in cases {
        expect_error(&lines(&[&l]), Some(1), Some(field), needle);
    }
    expect_error(&lines(&["[1, 2]"]), Some(1), None, "expected a JSON object");
    expect_error(
        &lines(&[GOOD, "{\"id\": oops}"]),
        Some(2),
        None,
        "not valid JSON",
    );
}

#[test]
fn empty_file() {
    expect_error(b"", None, None, "holds no samples");
    expect_error(b"\n  \n\n", None, None, "holds no samples");
}

#[test]
fn non_utf8() {
    let mut m = lines(&[GOOD]);
    m.extend_from_slice(b"{\"id\": \"b\xff\"}\n");
    expect_error(&m, Some(2), None, "not valid UTF-8");
}

#[test]
fn missing_manifest_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Dataset::load(dir.path()).expect_err("no manifest");
    let msg = err.to_string();
    assert!(
        msg.starts_with("cannot read") && msg.contains(MANIFEST),
        "{msg}"
    );
}

#[test]
fn corrupt_image_is_named() {
    let dir = folder(&lines(&[GOOD]));
    fs::write(dir.path().join("a.png"), b"not a png at all").expect("write");
    let err = Dataset::load(dir.path()).expect_err("corrupt image");
    assert!(err.to_string().contains("a.png"), "{err}");
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn all_problems_are_reported_together() {
    let bad_box = GOOD.replace("[1, 2, 11, 12]", "[1, 2, 11, 99]");
    let bad_type = GOOD_B.replace("\"width\": 40", "\"width\": \"wide\"");
    let err = expect_error(
        &lines(&[&bad_box, GOOD_B, &bad_type, GOOD_B]),
        Some(1),
        Some("rationales[0].bbox"),
        "3 problems",
    );
    let msg = err.to_string();
    assert!(
        msg.contains("line 1, field `rationales[0].bbox`: box"),
        "{msg}"
    );
    assert!(
        msg.contains("line 3, field `width`: expected a positive whole number"),
        "{msg}"
    );
    assert!(
        msg.contains("line 4, field `id`: duplicate id \"b\" (first used on line 2)"),
        "{msg}"
    );
}

#[test]
fn a_byte_order_mark_and_crlf_line_ends_are_accepted() {
    // As Windows editors save it: a UTF-8 byte-order mark, then CRLF lines.
    let mut m = b"\xEF\xBB\xBF".to_vec();
    m.extend(format!("{GOOD}\r\n{GOOD_B}\r\n").into_bytes());
    let dir = folder(&m);
    let ds = Dataset::load(dir.path()).expect("a BOM is not an error");
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.samples()[0].id, "a");
    // A mark anywhere but at the start is still bad JSON, on its line.
    let mut m = lines(&[GOOD]);
    m.extend(b"\xEF\xBB\xBF");
    m.extend(lines(&[GOOD_B]));
    expect_error(&m, Some(2), None, "not valid JSON");
}
