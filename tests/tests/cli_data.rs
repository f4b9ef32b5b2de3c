//! The data commands as a user runs them, in a real child process: `virl
//! synth` (and scoring its output), `virl import` and `virl export`.

mod common;
use common::{close, f, p, stderr, virl, write};

use image::{Rgb, RgbImage};
use serde_json::Value;
use std::fs;
use virl_engine::dataset::Dataset;

#[test]
fn synth_writes_a_loadable_deterministic_dataset() {
    let root = tempfile::tempdir().expect("tempdir");
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    let knobs = [
        "--n",
        "6",
        "--seed",
        "42",
        "--mix",
        "digit=1,compare=1,sum=1",
        "--label-noise",
        "0.5",
        "--canvas",
        "512",
        "--distractors",
        "10",
    ];
    for dir in [&a, &b] {
        let mut args = vec!["synth", "--out", p(dir)];
        args.extend_from_slice(&knobs);
        let o = virl(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).contains("wrote 6 samples"), "{}", stderr(&o));
    }
    // byte-identical files
    let ds = Dataset::load(&a).expect("synth output loads");
    assert_eq!(ds.len(), 6);
    assert_eq!(
        fs::read(a.join("manifest.jsonl")).expect("a"),
        fs::read(b.join("manifest.jsonl")).expect("b")
    );
    for s in ds.samples() {
        assert_eq!((s.width, s.height), (512, 512));
        assert_eq!(
            fs::read(a.join(&s.image)).expect("a"),
            fs::read(b.join(&s.image)).expect("b"),
            "{}",
            s.image
        );
    }
    // an existing dataset is never overwritten
    let before = fs::read(a.join("manifest.jsonl")).expect("read");
    let o = virl(&["synth", "--out", p(&a), "--n", "2", "--seed", "1"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("a dataset already exists here"),
        "{}",
        stderr(&o)
    );
    assert_eq!(before, fs::read(a.join("manifest.jsonl")).expect("read"));
    // bad knobs
    let o = virl(&[
        "synth",
        "--out",
        p(&root.path().join("c")),
        "--label-noise",
        "1.5",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("label_noise is a probability"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn synth_then_score_round_trip() {
    // A ZoomBench split scored with the ground truth as the zooms: every
    // zoom is exact, every answer right.
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("zb");
    let o = virl(&[
        "synth",
        "--out",
        p(&dir),
        "--n",
        "4",
        "--seed",
        "7",
        "--mix",
        "digit,sum",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ds = Dataset::load(&dir).expect("load");
    let lines: Vec<String> = ds
        .samples()
        .iter()
        .map(|s| {
            serde_json::json!({"sample": s.id, "zooms": s.gt_boxes(), "answer": s.answer})
                .to_string()
        })
        .collect();
    let rollouts = write(
        root.path(),
        "oracle.jsonl",
        &lines.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let o = virl(&[
        "score",
        "--dataset",
        p(&dir),
        "--rollouts",
        p(&rollouts),
        "--out",
        "-",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8(o.stdout.clone()).expect("utf-8");
    for line in stdout.lines() {
        let v: Value = serde_json::from_str(line).expect("json");
        close(f(&v["rewards"]["ans"]), 1.0);
        close(f(&v["coverage"]), 1.0);
    }
    assert!(
        stderr(&o).contains("Acc_ans 1.000  Acc_rat 1.000  coverage 1.000"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn import_vstar_export_coco_import_back_and_bad_inputs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("vstar/relative_position");
    fs::create_dir_all(&src).expect("mkdir");
    RgbImage::from_pixel(120, 80, Rgb([10, 120, 200]))
        .save(src.join("sa_1.jpg"))
        .expect("jpg");
    fs::write(
        src.join("sa_1.json"),
        r#"{"target_object": ["cup", "lamp"], "bbox": [[10, 10, 20, 15], [60, 30, 40, 40]], "question": "Is the cup left of the lamp?", "options": ["Yes", "No"]}"#,
    )
    .expect("json");
    let ds = tmp.path().join("ds");
    let o = virl(&[
        "import",
        "--format",
        "vstar",
        p(&tmp.path().join("vstar")),
        "--out",
        p(&ds),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let d = Dataset::load(&ds).expect("imported dataset loads");
    let s = d.get("relative_position/sa_1").expect("sample");
    assert_eq!(s.answer, "Yes");
    assert_eq!(s.rationales.len(), 2);
    assert_eq!(s.rationales[1].bbox.to_array(), [60.0, 30.0, 100.0, 70.0]);
    assert_eq!(s.rationales[1].label, "lamp");
    // COCO out and back in.
    let back = through_coco(&ds, tmp.path(), "again");
    assert_eq!(back.samples()[0].rationales, d.samples()[0].rationales);
    assert_eq!(back.samples()[0].options, d.samples()[0].options);
    // A V* annotation with a 3-number box: exit 1, the file and field named, nothing written.
    fs::write(
        src.join("sa_2.json"),
        r#"{"target_object": "cup", "bbox": [1, 2, 3], "question": "q", "options": ["a"]}"#,
    )
    .expect("json");
    RgbImage::new(10, 10)
        .save(src.join("sa_2.jpg"))
        .expect("jpg");
    let bad = tmp.path().join("bad");
    let o = virl(&[
        "import",
        "--format",
        "vstar",
        p(&tmp.path().join("vstar")),
        "--out",
        p(&bad),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("sa_2.json") && e.contains("`bbox`") && e.contains("4 numbers"),
        "{e}"
    );
    assert!(!bad.exists());
    // --skip-bad imports the good one and lists the bad one.
    let o = virl(&[
        "import",
        "--format",
        "vstar",
        p(&tmp.path().join("vstar")),
        "--out",
        p(&bad),
        "--skip-bad",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("skipped") && stderr(&o).contains("sa_2.json"));
    assert_eq!(Dataset::load(&bad).expect("loads").len(), 1);
}

/// A COCO file naming `names` (each a 20 × 20 image), imported from `imgs`
/// into `out`: the finished `virl import`.
fn import_coco(root: &std::path::Path, names: &[&str], out: &str) -> std::process::Output {
    import_coco_with(root, names, out, &[])
}

/// [`import_coco`] with more flags.
fn import_coco_with(
    root: &std::path::Path,
    names: &[&str],
    out: &str,
    extra: &[&str],
) -> std::process::Output {
    let images: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!(r#"{{"id": {i}, "file_name": {n:?}, "width": 20, "height": 20}}"#))
        .collect();
    let anns: Vec<String> = (0..names.len())
        .map(|i| format!(r#"{{"image_id": {i}, "category_id": 1, "bbox": [1, 1, 5, 5]}}"#))
        .collect();
    let ann = root.join("ann.json");
    fs::write(
        &ann,
        format!(
            r#"{{"images": [{}], "annotations": [{}], "categories": [{{"id": 1, "name": "cup"}}]}}"#,
            images.join(", "),
            anns.join(", ")
        ),
    )
    .expect("ann");
    let out = root.join(out);
    let imgs = root.join("imgs");
    let mut args = vec![
        "import",
        "--format",
        "coco",
        p(&ann),
        "--images",
        p(&imgs),
        "--out",
        p(&out),
    ];
    args.extend_from_slice(extra);
    virl(&args)
}

#[test]
fn a_coco_file_name_cannot_reach_outside_the_images_folder_or_collide() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    fs::create_dir_all(root.join("imgs/images")).expect("mkdir");
    for f in ["secret.png", "imgs/a.png", "imgs/images/a.png"] {
        RgbImage::from_pixel(20, 20, Rgb([200, 10, 10]))
            .save(root.join(f))
            .expect("png");
    }
    // `..` and an absolute path: refused, named, and nothing is written.
    let abs = root.join("secret.png");
    for name in ["../secret.png", abs.to_str().expect("utf-8")] {
        let o = import_coco(root, &[name], "out");
        assert!(!o.status.success(), "{name} was imported");
        let e = stderr(&o);
        assert!(
            e.contains("leaves the images folder") && e.contains("file_name"),
            "{e}"
        );
        assert!(!root.join("out/images/secret.png").exists());
        assert!(!root.join("out/manifest.jsonl").exists());
    }
    // Two different images that would be copied to one path: refused, both named.
    let o = import_coco_with(root, &["a.png", "images/a.png"], "out2", &["--copy-images"]);
    assert!(!o.status.success(), "a collision was imported");
    let e = stderr(&o);
    assert!(e.contains("would both be written as"), "{e}");
    assert!(
        e.contains("imgs/a.png") && e.contains("imgs/images/a.png"),
        "{e}"
    );
    assert!(!root.join("out2/manifest.jsonl").exists());
    // Referenced where they lie (the default), the two stay two.
    let o = import_coco(root, &["a.png", "images/a.png"], "out4");
    assert!(o.status.success(), "{}", stderr(&o));
    let ds = Dataset::load(root.join("out4")).expect("loads");
    assert_ne!(ds.samples()[0].image, ds.samples()[1].image);
    // The same image named twice is fine (one file, two samples' image).
    let o = import_coco(root, &["a.png"], "out3");
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_truncated_jpeg_is_named_at_import_and_skipped_with_skip_bad() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    fs::create_dir_all(root.join("imgs")).expect("mkdir");
    let img = RgbImage::from_fn(20, 20, |x, y| Rgb([(x * 12) as u8, (y * 12) as u8, 90]));
    img.save(root.join("imgs/a.png")).expect("png");
    // Busy pixels, so that most of the file is the scan, after the header.
    let busy = RgbImage::from_fn(20, 20, |x, y| {
        Rgb([
            ((x * 7919 + y * 104_729) % 251) as u8,
            ((x * y * 31) % 253) as u8,
            90,
        ])
    });
    busy.save(root.join("imgs/cut.jpg")).expect("jpg");
    // Cut the JPEG after its header: the header alone still reads as 20 × 20.
    let bytes = fs::read(root.join("imgs/cut.jpg")).expect("read");
    fs::write(root.join("imgs/cut.jpg"), &bytes[..bytes.len() * 2 / 3]).expect("cut");
    assert_eq!(
        image::image_dimensions(root.join("imgs/cut.jpg")).expect("header"),
        (20, 20)
    );
    let o = import_coco(root, &["a.png", "cut.jpg"], "out");
    assert!(!o.status.success(), "a truncated JPEG was imported");
    let e = stderr(&o);
    assert!(e.contains("cut.jpg"), "{e}");
    assert!(!root.join("out/manifest.jsonl").exists());
    // With --skip-bad the good image is imported and the bad one is named.
    let ann = root.join("ann.json");
    let o = virl(&[
        "import",
        "--format",
        "coco",
        p(&ann),
        "--images",
        p(&root.join("imgs")),
        "--out",
        p(&root.join("kept")),
        "--skip-bad",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("skipped") && stderr(&o).contains("cut.jpg"));
    let ds = Dataset::load(root.join("kept")).expect("kept loads");
    assert_eq!(ds.len(), 1);
    // Referenced where it lies (no --copy-images).
    let a = fs::canonicalize(root.join("imgs/a.png")).expect("canon");
    assert_eq!(std::path::Path::new(&ds.samples()[0].image), a);
}

#[test]
fn training_refuses_a_dataset_with_an_image_over_the_decoder_limit_and_names_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ds = tmp.path().join("ds");
    fs::create_dir_all(&ds).expect("mkdir");
    RgbImage::from_pixel(64, 64, Rgb([20, 30, 40]))
        .save(ds.join("ok.png"))
        .expect("png");
    // Its header declares 60 000 × 60 000 pixels: 10 GB decoded.
    fs::write(
        ds.join("big.png"),
        include_bytes!("../../engine/tests/fixtures/declares-60000x60000.png"),
    )
    .expect("big");
    write(
        &ds,
        "manifest.jsonl",
        &[
            r#"{"id": "ok", "image": "ok.png", "width": 64, "height": 64, "question": "q", "answer": "1", "rationales": [{"bbox": [1, 1, 9, 9]}]}"#,
            r#"{"id": "big", "image": "big.png", "width": 60000, "height": 60000, "question": "q", "answer": "2", "rationales": [{"bbox": [1, 1, 900, 900]}]}"#,
        ],
    );
    // The dataset loads (the studio shows the error on that sample) ...
    assert_eq!(Dataset::load(&ds).expect("loads").len(), 2);
    // ... but training refuses it before it starts, naming the sample.
    let cfg = tmp.path().join("c.toml");
    fs::write(
        &cfg,
        format!(
            "[data]\ndataset = {:?}\n[env]\nview = 32\n[trainer]\niterations = 1\nsamples_per_iter = 1\ngroup = 2\n",
            p(&ds)
        ),
    )
    .expect("cfg");
    let o = virl(&[
        "train",
        "--config",
        p(&cfg),
        "--session",
        p(&tmp.path().join("s")),
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("big.png") && e.contains("60000×60000") && e.contains("decoder"),
        "{e}"
    );
    assert!(!e.contains("ok.png"), "{e}");
}

#[test]
fn visual_cot_imports_and_round_trips_through_coco_to_a_thousandth_of_a_pixel() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    fs::create_dir_all(root.join("imgs/gqa")).expect("mkdir");
    for (name, w, h) in [
        ("wide.jpg", 200, 100),
        ("tall.jpg", 100, 200),
        ("sq.png", 120, 120),
    ] {
        RgbImage::from_pixel(w, h, Rgb([90, 40, 10]))
            .save(root.join("imgs/gqa").join(name))
            .expect("img");
    }
    let rec = |id: u32, image: &str, b: &str, answer: &str| {
        format!(
            r#"{{"question_id": {id}, "image": ["{image}", "{image}###{b}"], "conversations": [{{"from": "human", "value": "<image>\nWhat colour is the sign? Please provide the bounding box coordinate of the region that can help you answer the question better."}}, {{"from": "gpt", "value": "{b}"}}, {{"from": "human", "value": "<image>"}}, {{"from": "gpt", "value": "{answer}"}}]}}"#
        )
    };
    let file = root.join("viscot.json");
    fs::write(
        &file,
        format!(
            "[{}, {}, {}]",
            rec(1, "gqa/wide.jpg", "[0.25, 0.3, 0.5, 0.6]", "red"),
            rec(2, "gqa/tall.jpg", "[0.3, 0.25, 0.6, 0.5]", "blue"),
            rec(3, "gqa/sq.png", "[0.123, 0.2, 0.5, 0.75]", "green"),
        ),
    )
    .expect("viscot");
    let ds = root.join("ds");
    let o = virl(&[
        "import",
        "--format",
        "viscot",
        p(&file),
        "--images",
        p(&root.join("imgs")),
        "--out",
        p(&ds),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let d = Dataset::load(&ds).expect("loads");
    let boxes: Vec<[f64; 4]> = d
        .samples()
        .iter()
        .map(|s| s.rationales[0].bbox.to_array())
        .collect();
    assert_eq!(boxes[0], [50.0, 10.0, 100.0, 70.0]);
    assert_eq!(boxes[1], [10.0, 50.0, 70.0, 100.0]);
    assert!((boxes[2][0] - 14.76).abs() < 1e-9, "{:?}", boxes[2]);
    assert_eq!(d.samples()[1].answer, "blue");
    // Out to COCO and back in: the same boxes to 1e-3 px.
    let b = through_coco(&ds, root, "back");
    for (s, t) in d.samples().iter().zip(b.samples()) {
        let (x, y) = (
            s.rationales[0].bbox.to_array(),
            t.rationales[0].bbox.to_array(),
        );
        assert!(
            x.iter().zip(y).all(|(u, v)| (u - v).abs() < 1e-3),
            "{x:?} → {y:?}"
        );
        assert_eq!((&s.question, &s.answer), (&t.question, &t.answer));
    }
}

#[test]
fn hr_bench_imports_as_an_evaluation_set_without_rationales_and_names_bad_rows() {
    // Four rows as pandas writes HR-Bench: two good (PNG, base64), one whose
    // image is not base64 (file line 4), one whose answer letter is no
    // option (file line 5).
    let tsv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../engine/tests/fixtures/hr-bench-mini.tsv"
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("hr");
    let o = virl(&["import", "--format", "hrbench", tsv, "--out", p(&out)]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("line 4, field `image`: not base64"), "{e}");
    assert!(
        e.contains("line 5, field `answer`: \"E\" is not the letter of an option"),
        "{e}"
    );
    assert!(!out.join("manifest.jsonl").exists());
    let o = virl(&[
        "import",
        "--format",
        "hrbench",
        tsv,
        "--out",
        p(&out),
        "--skip-bad",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ds = Dataset::load(&out).expect("loads");
    assert_eq!(ds.len(), 2);
    let s = ds.get("hrbench-1").expect("row 1");
    assert_eq!((s.answer.as_str(), s.options.len()), ("3", 4));
    assert_eq!(s.question, "How many \"people\" are there?");
    assert!(s.rationales.is_empty());
    assert_eq!((s.width, s.height), (80, 60));
    assert_eq!(s.meta.as_ref().expect("meta")["answer_letter"], "C");
    // No staging folder is left beside the dataset.
    let left: Vec<String> = fs::read_dir(tmp.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["hr"], "{left:?}");
}

#[test]
fn zoomnet_eval_runs_on_a_dataset_folder_and_refuses_answers_it_cannot_give() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = tmp.path().join("tiny.toml");
    fs::write(
        &cfg,
        common::TINY.replace("eval_every = 0", "eval_every = 0\niterations = 1"),
    )
    .expect("cfg");
    let s = tmp.path().join("s");
    let o = virl(&["train", "--config", p(&cfg), "--session", p(&s)]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A ZoomBench folder (digit answers, which ZoomNet knows): evaluated on it.
    let zb = tmp.path().join("zb");
    let o = common::synth_tiny(&zb, 5, 9);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = virl(&["eval", "--session", p(&s), "--dataset", p(&zb)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("on 5 samples"), "{out}");
    // HR-Bench's answers are words ZoomNet was never trained to give.
    let hr = tmp.path().join("hr");
    let tsv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../engine/tests/fixtures/hr-bench-mini.tsv"
    );
    let o = virl(&[
        "import",
        "--format",
        "hrbench",
        tsv,
        "--out",
        p(&hr),
        "--skip-bad",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = virl(&["eval", "--session", p(&s), "--dataset", p(&hr)]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("\"blue\"") && e.contains("--policy qwen-vl"),
        "{e}"
    );
}

/// `ds` exported to COCO (`dir/ds.coco.json`) and imported back into
/// `dir/<name>`: the dataset that comes back.
fn through_coco(ds: &std::path::Path, dir: &std::path::Path, name: &str) -> Dataset {
    let coco = dir.join(format!("{name}.coco.json"));
    let o = virl(&[
        "export",
        "--format",
        "coco",
        "--dataset",
        p(ds),
        "--out",
        p(&coco),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let back = dir.join(name);
    let o = virl(&[
        "import",
        "--format",
        "coco",
        p(&coco),
        // No --images: the export records the folder its file_names are
        // relative to (the dataset folder, or where referenced images lie).
        "--out",
        p(&back),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    Dataset::load(&back).expect("the re-imported dataset loads")
}
