//! Tests of the importers and exporters.

use super::*;
use crate::dataset::Rationale;
use serde_json::{Map, json};

fn img(path: &Path, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    image::RgbImage::from_pixel(w, h, image::Rgb([9, 80, 200]))
        .save(path)
        .expect("save");
}

#[test]
fn vstar_folder_imports_with_xywh_boxes_and_first_option_correct() {
    let d = tempfile::tempdir().expect("tmp");
    let src = d.path().join("vstar/direct_attributes");
    img(&src.join("sa_1.jpg"), 200, 100);
    std::fs::write(
        src.join("sa_1.json"),
        r#"{"target_object": ["glove"], "bbox": [[10, 20, 30, 40]], "question": "What colour is the glove?", "options": ["white", "black"]}"#,
    )
    .expect("write");
    let rep = read_vstar(&d.path().join("vstar")).expect("read");
    assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    let out = d.path().join("ds");
    let ds = write_dataset(rep, &out, false, Images::Copy).expect("write");
    let s = &ds.samples()[0];
    assert_eq!(s.id, "direct_attributes/sa_1");
    assert_eq!(s.answer, "white");
    assert_eq!(s.rationales[0].bbox, BBox::new(10.0, 20.0, 40.0, 60.0));
    assert_eq!(s.rationales[0].label, "glove");
    let back = Dataset::load(&out).expect("load");
    assert_eq!(back.samples(), ds.samples());
}

#[test]
fn vstar_bad_inputs_name_the_file() {
    let d = tempfile::tempdir().expect("tmp");
    let src = d.path().join("v");
    img(&src.join("a.jpg"), 50, 50);
    img(&src.join("b.jpg"), 50, 50);
    img(&src.join("c.jpg"), 50, 50);
    std::fs::write(
        src.join("a.json"),
        r#"{"target_object": "x", "bbox": [40, 40, 30, 30], "question": "q", "options": ["y"]}"#,
    )
    .expect("w");
    std::fs::write(
        src.join("b.json"),
        r#"{"target_object": "x", "bbox": [1, 2, 3], "question": "q", "options": ["y"]}"#,
    )
    .expect("w");
    std::fs::write(
        src.join("c.json"),
        r#"{"target_object": "x", "bbox": [1, 2, 3, 4], "options": ["y"]}"#,
    )
    .expect("w");
    std::fs::write(
        src.join("d.json"),
        r#"{"target_object": "x", "bbox": [1, 2, 3, 4], "question": "q", "options": ["y"]}"#,
    )
    .expect("w");
    let rep = read_vstar(&src).expect("read");
    let msgs: Vec<String> = rep.problems.iter().map(ToString::to_string).collect();
    assert_eq!(msgs.len(), 4, "{msgs:?}");
    assert!(
        msgs[0].contains("outside the 50×50 image") && msgs[0].contains("a.json"),
        "{}",
        msgs[0]
    );
    assert!(
        msgs[1].contains("4 numbers") && msgs[1].contains("b.json"),
        "{}",
        msgs[1]
    );
    assert!(
        msgs[2].contains("`question`") && msgs[2].contains("missing") && msgs[2].contains("c.json"),
        "{}",
        msgs[2]
    );
    assert!(
        msgs[3].contains("no image beside it") && msgs[3].contains("d.json"),
        "{}",
        msgs[3]
    );
    let out = d.path().join("out");
    let err =
        write_dataset(rep, &out, false, Images::Copy).expect_err("bad samples fail the import");
    assert!(err.to_string().contains("4 problems"), "{err}");
    assert!(!out.exists(), "a failed import writes nothing");
}

#[test]
fn coco_round_trip_keeps_every_sample() {
    let d = tempfile::tempdir().expect("tmp");
    let root = d.path().join("ds");
    img(&root.join("images/p.png"), 64, 48);
    let s = |id: &str, boxes: Vec<(&str, [f64; 4])>| Sample {
        id: id.into(),
        image: "images/p.png".into(),
        width: 64,
        height: 48,
        question: format!("question {id}"),
        answer: "3".into(),
        options: vec![],
        rationales: boxes
            .into_iter()
            .map(|(l, b)| Rationale {
                bbox: BBox::from(b),
                label: l.into(),
            })
            .collect(),
        meta: Some(json!({"k": 1})),
        extra: Map::new(),
    };
    let ds = Dataset::new(
        &root,
        vec![
            s(
                "a",
                vec![
                    ("red placard", [1.5, 2.0, 10.25, 12.0]),
                    ("", [0.0, 0.0, 64.0, 48.0]),
                ],
            ),
            s("b", vec![]),
        ],
    );
    ds.save().expect("save");
    let coco = d.path().join("coco.json");
    export(&ds, ExportFormat::Coco, &coco).expect("export");
    let rep = read_coco(&coco, &root).expect("read");
    assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    let back = write_dataset(rep, &d.path().join("again"), false, Images::Copy).expect("write");
    assert_eq!(back.len(), 2);
    for (x, y) in ds.samples().iter().zip(back.samples()) {
        assert_eq!(
            (&x.id, &x.question, &x.answer, &x.meta),
            (&y.id, &y.question, &y.answer, &y.meta)
        );
        assert_eq!(x.rationales.len(), y.rationales.len());
        for (p, q) in x.rationales.iter().zip(&y.rationales) {
            let want = if p.label.is_empty() {
                "rationale"
            } else {
                &p.label
            };
            assert_eq!(q.label, want);
            for (u, v) in p.bbox.to_array().iter().zip(q.bbox.to_array()) {
                assert!((u - v).abs() < 1e-9, "{:?} vs {:?}", p.bbox, q.bbox);
            }
        }
    }
    // JSONL export is the manifest itself.
    let j = d.path().join("out.jsonl");
    export(&ds, ExportFormat::Jsonl, &j).expect("export");
    let back = Dataset::load(&j).expect("load exported manifest");
    for (x, y) in ds.samples().iter().zip(back.samples()) {
        assert_eq!(
            Sample {
                image: x.image.clone(),
                ..y.clone()
            },
            *x
        );
        assert!(Path::new(&y.image).is_absolute(), "{}", y.image);
    }
}

#[test]
fn plain_coco_becomes_counting_questions() {
    let d = tempfile::tempdir().expect("tmp");
    img(&d.path().join("imgs/x.jpg"), 100, 100);
    let coco = br#"{"images": [{"id": 7, "file_name": "x.jpg", "width": 100, "height": 100}],
        "annotations": [{"image_id": 7, "category_id": 1, "bbox": [0, 0, 10, 10]},
                        {"image_id": 7, "category_id": 1, "bbox": [20, 20, 10, 10]},
                        {"image_id": 7, "category_id": 2, "bbox": [50, 50, 5, 5]}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}"#;
    let rep = parse_coco(coco, Path::new("c.json"), &d.path().join("imgs")).expect("parse");
    assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    // The same file as a Windows editor saves it, with a byte-order mark.
    let bom = [b"\xEF\xBB\xBF".as_slice(), coco.as_slice()].concat();
    let with_bom = parse_coco(&bom, Path::new("c.json"), &d.path().join("imgs")).expect("BOM");
    assert_eq!(with_bom.samples.len(), rep.samples.len());
    let q: Vec<(&str, &str)> = rep
        .samples
        .iter()
        .map(|s| (s.sample.question.as_str(), s.sample.answer.as_str()))
        .collect();
    assert_eq!(
        q,
        [
            ("How many cat are in the image?", "2"),
            ("How many dog are in the image?", "1")
        ]
    );
}

#[test]
fn coco_bad_inputs_name_file_and_field() {
    let d = tempfile::tempdir().expect("tmp");
    img(&d.path().join("x.png"), 10, 10);
    let p = Path::new("/data/ann.json");
    let case = |s: &str| parse_coco(s.as_bytes(), p, d.path());
    let e = case(r#"{"images": []}"#)
        .expect_err("missing keys")
        .to_string();
    assert!(e.contains("`annotations`") && e.contains("ann.json"), "{e}");
    let r = case(r#"{"images": [{"id": 1, "file_name": "x.png", "width": 10, "height": 10}, {"id": 2, "file_name": "gone.png", "width": 10, "height": 10}],
        "annotations": [{"image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 2]}, {"image_id": 1, "category_id": 1, "bbox": [1, 1]}],
        "categories": [{"id": 1, "name": "a"}]}"#)
    .expect("parse");
    let msgs: Vec<String> = r.problems.iter().map(ToString::to_string).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("annotations[0].bbox") && m.contains("outside")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("annotations[1].bbox") && m.contains("4 numbers")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("images[1].file_name") && m.contains("not found")),
        "{msgs:?}"
    );
}

#[test]
fn images_are_verified_in_full_within_the_decoder_limits() {
    // A header declaring 60 000 × 60 000 pixels: refused, not allocated.
    let huge = include_bytes!("../../../tests/fixtures/declares-60000x60000.png");
    let e = super::decoded_size(huge).expect_err("a 10 GB image was decoded");
    assert!(e.to_lowercase().contains("limit"), "{e}");
    // A whole JPEG decodes; the same cut after its header does not.
    let img = image::RgbImage::from_fn(32, 32, |x, y| {
        image::Rgb([
            ((x * 7919 + y * 104_729) % 251) as u8,
            (x * y % 253) as u8,
            9,
        ])
    });
    let mut jpg = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut jpg),
        image::ImageFormat::Jpeg,
    )
    .expect("encode");
    assert_eq!(super::decoded_size(&jpg), Ok((32, 32)));
    let cut = &jpg[..jpg.len() - 40];
    let e = super::decoded_size(cut).expect_err("a truncated JPEG decoded");
    assert!(e.contains("truncated"), "{e}");
}

#[test]
fn viscot_boxes_undo_the_centred_square_padding() {
    use super::viscot_box;
    let b = |c: [f64; 4], w, h| viscot_box(c, w, h).expect("box").to_array();
    // Landscape 200 × 100: padded to 200 × 200 with 50 rows above.
    // [0.25, 0.3, 0.5, 0.6] × 200 = [50, 60, 100, 120]; y − 50.
    assert_eq!(
        b([0.25, 0.3, 0.5, 0.6], 200, 100),
        [50.0, 10.0, 100.0, 70.0]
    );
    // Portrait 100 × 200: 50 columns to the left.
    // [0.3, 0.25, 0.6, 0.5] × 200 = [60, 50, 120, 100]; x − 50.
    assert_eq!(
        b([0.3, 0.25, 0.6, 0.5], 100, 200),
        [10.0, 50.0, 70.0, 100.0]
    );
    // Square 120 × 120: no padding.
    assert_eq!(b([0.1, 0.2, 0.5, 0.75], 120, 120), [12.0, 24.0, 60.0, 90.0]);
    // Odd difference, 201 × 100: the padding is (201 − 100) // 2 = 50.
    let odd = b([0.5, 0.5, 0.6, 0.6], 201, 100);
    let want = [100.5, 50.5, 120.6, 70.6];
    assert!(
        odd.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-9),
        "{odd:?}"
    );
    // Pixels of the padded square (sum ≥ 5) are only shifted.
    assert_eq!(
        b([50.0, 60.0, 100.0, 120.0], 200, 100),
        [50.0, 10.0, 100.0, 70.0]
    );
    // Clipped to the image; a box wholly in the padding is no box.
    assert_eq!(b([0.0, 0.2, 0.5, 0.4], 200, 100), [0.0, 0.0, 100.0, 30.0]);
    assert!(viscot_box([0.0, 0.0, 0.5, 0.2], 200, 100).is_none());
}

/// A Visual-CoT record for `image` with box text `bbox` and answer `answer`.
fn viscot_record(id: u32, image: &str, bbox: &str, answer: &str) -> String {
    format!(
        r#"{{"question_id": {id}, "dataset": "gqa", "image": ["{image}", "{image}###{bbox}"], "conversations": [{{"from": "human", "value": "<image>\nWhat is on the table? Please provide the bounding box coordinate of the region that can help you answer the question better."}}, {{"from": "gpt", "value": "{bbox}"}}, {{"from": "human", "value": "<image>"}}, {{"from": "gpt", "value": "{answer}"}}]}}"#
    )
}

#[test]
fn viscot_file_imports_portrait_landscape_and_square_and_names_bad_records() {
    let d = tempfile::tempdir().expect("tmp");
    img(&d.path().join("gqa/wide.jpg"), 200, 100);
    img(&d.path().join("gqa/tall.jpg"), 100, 200);
    img(&d.path().join("gqa/square.jpg"), 120, 120);
    let recs = [
        viscot_record(1, "gqa/wide.jpg", "[0.25, 0.3, 0.5, 0.6]", "a cup"),
        viscot_record(2, "gqa/tall.jpg", "[0.3, 0.25, 0.6, 0.5]", "two"),
        viscot_record(3, "gqa/square.jpg", "[0.1, 0.2, 0.5, 0.75]", "red"),
        viscot_record(4, "../secret.jpg", "[0.1, 0.2, 0.5, 0.75]", "x"),
        viscot_record(5, "gqa/square.jpg", "[0.1, 0.2, NaN]", "x"),
        viscot_record(6, "gqa/missing.jpg", "[0.1, 0.2, 0.5, 0.75]", "x"),
    ];
    let file = format!("[{}]", recs.join(",\n"));
    let rep = parse_viscot(file.as_bytes(), Path::new("viscot.json"), d.path()).expect("parse");
    let got: Vec<(&str, &str, &str, [f64; 4])> = rep
        .samples
        .iter()
        .map(|s| {
            (
                s.sample.id.as_str(),
                s.sample.question.as_str(),
                s.sample.answer.as_str(),
                s.sample.rationales[0].bbox.to_array(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "1",
                "What is on the table?",
                "a cup",
                [50.0, 10.0, 100.0, 70.0]
            ),
            (
                "2",
                "What is on the table?",
                "two",
                [10.0, 50.0, 70.0, 100.0]
            ),
            (
                "3",
                "What is on the table?",
                "red",
                [12.0, 24.0, 60.0, 90.0]
            ),
        ]
    );
    assert_eq!(rep.samples[0].sample.image, "gqa/wide.jpg");
    assert_eq!(rep.samples[0].sample.width, 200);
    let msgs: Vec<String> = rep.problems.iter().map(ToString::to_string).collect();
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    assert!(
        msgs[0].contains("[3].image") && msgs[0].contains("leaves the images folder"),
        "{msgs:?}"
    );
    assert!(msgs[1].contains("[4].conversations[1].value"), "{msgs:?}");
    assert!(
        msgs[2].contains("missing.jpg") && msgs[2].contains("not found"),
        "{msgs:?}"
    );
    // The same records as JSON Lines; a bad line is named by its number.
    let jsonl = format!("{}\n{{oops\n", recs[0]);
    let e = parse_viscot(jsonl.as_bytes(), Path::new("v.jsonl"), d.path()).expect_err("bad line");
    assert_eq!(e.line(), Some(2), "{e}");
    let one = parse_viscot(recs[2].as_bytes(), Path::new("v.jsonl"), d.path()).expect("jsonl");
    assert_eq!(one.samples.len(), 1);
}

#[test]
fn images_are_referenced_where_they_lie_unless_copied_and_coco_round_trips_them() {
    let d = tempfile::tempdir().expect("tmp");
    let src = d.path().join("pool/vstar/direct_attributes");
    img(&src.join("sa_1.jpg"), 200, 100);
    std::fs::write(
        src.join("sa_1.json"),
        r#"{"target_object": ["glove"], "bbox": [[10.5, 20, 30, 40]], "question": "What colour is the glove?", "options": ["white", "black"]}"#,
    )
    .expect("write");
    let read = || read_vstar(&d.path().join("pool/vstar")).expect("read");
    // By default nothing is copied: the manifest names the image in place.
    let out = d.path().join("elsewhere/ds");
    let ds = write_dataset(read(), &out, false, Images::default()).expect("write");
    let s = &ds.samples()[0];
    let abs = std::fs::canonicalize(src.join("sa_1.jpg")).expect("canon");
    assert_eq!(Path::new(&s.image), abs);
    assert!(!out.join("images").exists(), "no image was copied");
    let back = Dataset::load(&out).expect("a manifest naming images elsewhere loads");
    assert_eq!(back.image_path(&back.samples()[0]), abs);
    assert_eq!(
        back.load_image(&back.samples()[0]).expect("decode").width(),
        200
    );
    // COCO export: file_names relative to the folder holding the images,
    // recorded in info.images_root, so a re-import needs no --images.
    let coco = d.path().join("out.json");
    export(&ds, ExportFormat::Coco, &coco).expect("export");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&coco).expect("read")).expect("json");
    assert_eq!(v["images"][0]["file_name"], "sa_1.jpg");
    let root = coco_images_root(&coco).expect("images_root");
    assert_eq!(root, abs.parent().expect("parent"));
    let again = write_dataset(
        read_coco(&coco, &root).expect("read coco"),
        &d.path().join("again"),
        false,
        Images::default(),
    )
    .expect("write");
    assert_eq!(again.samples()[0].image, s.image);
    assert_eq!(again.samples()[0].rationales, s.rationales);
    // --copy-images: the dataset stands alone.
    let copied =
        write_dataset(read(), &d.path().join("copied"), false, Images::Copy).expect("write");
    assert!(!Path::new(&copied.samples()[0].image).is_absolute());
    assert!(
        d.path()
            .join("copied")
            .join(&copied.samples()[0].image)
            .exists()
    );
}

#[test]
fn extracted_images_are_written_into_the_dataset_even_when_referencing() {
    let d = tempfile::tempdir().expect("tmp");
    let staging = d.path().join("staging");
    img(&staging.join("x.png"), 40, 30);
    let mk = |extracted| ImportReport {
        samples: vec![Imported {
            sample: Sample {
                id: "x".into(),
                image: "images/x.png".into(),
                width: 40,
                height: 30,
                question: "q".into(),
                answer: "a".into(),
                options: Vec::new(),
                rationales: Vec::new(),
                meta: None,
                extra: Map::new(),
            },
            source_image: staging.join("x.png"),
            extracted,
        }],
        problems: Vec::new(),
    };
    let ds = write_dataset(mk(true), &d.path().join("a"), false, Images::Reference).expect("write");
    assert_eq!(ds.samples()[0].image, "images/x.png");
    assert!(d.path().join("a/images/x.png").exists());
    let ds =
        write_dataset(mk(false), &d.path().join("b"), false, Images::Reference).expect("write");
    assert!(Path::new(&ds.samples()[0].image).is_absolute());
}
