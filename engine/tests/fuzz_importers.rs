//! Fuzz targets for everything that reads files a user hands us: the V*,
//! COCO, Visual-CoT, HR-Bench and verl-row importers, the manifest and the correction journal. They must return
//! an error (naming the file), never panic, on any bytes. proptest generates
//! arbitrary bytes and, to get past the JSON parser, arbitrary JSON built
//! from the keys these formats use. `PROPTEST_CASES=100000 cargo test -p
//! virl-engine --test fuzz_importers --release` runs a longer campaign.

use proptest::prelude::*;
use serde_json::{Map, Value};
use std::path::Path;
use virl_engine::dataset::{Dataset, interchange};

const KEYS: &[&str] = &[
    "images",
    "annotations",
    "categories",
    "id",
    "image_id",
    "category_id",
    "file_name",
    "width",
    "height",
    "bbox",
    "name",
    "question",
    "answer",
    "options",
    "target_object",
    "virl_id",
    "sample",
    "op",
    "before",
    "after",
    "label",
    "rationales",
    "image",
    "time",
    "conversations",
    "value",
    "from",
    "question_id",
    "dataset",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        prop_oneof![Just(0i64), Just(1), Just(4), Just(10), Just(-1)].prop_map(Value::from),
        "[a-z./]{0,8}".prop_map(Value::String),
        Just(Value::String("x.png".into())),
        Just(Value::String("x.png###[0.1, 0.2, 0.5, 0.6]".into())),
        Just(Value::String("[0.1, 0.2, 0.5, 0.6]".into())),
        Just(Value::String("[0.1, NaN, 1e309, -4]".into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn fixture() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tmp");
    image::RgbImage::new(10, 10)
        .save(d.path().join("x.png"))
        .expect("png");
    d
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn coco_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let d = fixture();
        if let Err(e) = interchange::parse_coco(&bytes, Path::new("f.json"), d.path()) {
            prop_assert!(e.to_string().contains("f.json"));
        }
    }

    #[test]
    fn coco_never_panics_on_json(v in json_value()) {
        let d = fixture();
        let bytes = serde_json::to_vec(&v).expect("json");
        match interchange::parse_coco(&bytes, Path::new("f.json"), d.path()) {
            Ok(rep) => for s in rep.samples {
                for r in &s.sample.rationales {
                    prop_assert!(r.bbox.is_inside(s.sample.width as f64, s.sample.height as f64));
                    prop_assert!(r.bbox.x2 > r.bbox.x1 && r.bbox.y2 > r.bbox.y1);
                }
            },
            Err(e) => prop_assert!(e.to_string().contains("f.json")),
        }
    }

    #[test]
    fn vstar_never_panics(v in json_value(), bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let json = serde_json::to_vec(&v).expect("json");
        for b in [&json, &bytes] {
            match interchange::parse_vstar(b, "id", "images/id.jpg", 10, 10, Path::new("v.json")) {
                Ok(s) => for r in &s.rationales {
                    prop_assert!(r.bbox.is_inside(10.0, 10.0) && r.bbox.area() > 0.0);
                },
                Err(e) => prop_assert!(e.to_string().contains("v.json")),
            }
        }
    }

    #[test]
    fn viscot_never_panics(v in json_value(), bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let d = fixture();
        let array = serde_json::to_vec(&Value::Array(vec![v.clone()])).expect("json");
        let line = serde_json::to_vec(&v).expect("json");
        for b in [&array, &line, &bytes] {
            match interchange::parse_viscot(b, Path::new("vc.json"), d.path()) {
                Ok(rep) => {
                    for s in rep.samples {
                        for r in &s.sample.rationales {
                            prop_assert!(r.bbox.is_inside(s.sample.width as f64, s.sample.height as f64));
                            prop_assert!(r.bbox.area() > 0.0);
                        }
                    }
                    for e in rep.problems {
                        // Each problem names the file, or the image it is about.
                        let t = e.to_string();
                        prop_assert!(t.contains("vc.json") || t.contains(&*d.path().to_string_lossy()), "{}", t);
                    }
                }
                Err(e) => prop_assert!(e.to_string().contains("vc.json"), "{}", e),
            }
        }
    }

    #[test]
    fn hrbench_never_panics(cells in prop::collection::vec("[A-Za-z0-9+/=\"\t\n ]{0,12}", 0..40), bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let d = fixture();
        let staging = d.path().join("staging");
        // A header HR-Bench has, then arbitrary cells; and arbitrary bytes.
        let tsv = format!("index\tquestion\tA\tB\tanswer\timage\n{}", cells.join("\t"));
        for b in [tsv.as_bytes(), &bytes] {
            match interchange::parse_hrbench(b, Path::new("h.tsv"), &staging) {
                Ok(rep) => for e in rep.problems {
                    prop_assert!(e.to_string().contains("h.tsv"), "{}", e);
                },
                Err(e) => prop_assert!(e.to_string().contains("h.tsv"), "{}", e),
            }
        }
    }

    #[test]
    fn verl_rows_never_panic(v in json_value(), w in json_value(), bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        // What the Python importer writes, with arbitrary samples in it.
        let line = serde_json::json!({"row": 0, "sample": v, "source_image": "x.png"}).to_string();
        let other = serde_json::to_string(&w).expect("json");
        for b in [line.as_bytes(), other.as_bytes(), &bytes] {
            let rep = interchange::from_verl_rows(b, Path::new("r.parquet"));
            for e in rep.problems {
                let t = e.to_string();
                prop_assert!(t.contains("r.parquet") || t.contains("x.png"), "{}", t);
            }
        }
    }

    #[test]
    fn manifest_and_journal_never_panic(v in json_value(), w in json_value(), bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let d = fixture();
        // A manifest of arbitrary content.
        let mut text = serde_json::to_string(&v).expect("json");
        text.push('\n');
        std::fs::write(d.path().join("manifest.jsonl"), &text).expect("write");
        let _ = Dataset::load(d.path());
        std::fs::write(d.path().join("manifest.jsonl"), &bytes).expect("write");
        let _ = Dataset::load(d.path());
        // A valid manifest with an arbitrary journal.
        std::fs::write(
            d.path().join("manifest.jsonl"),
            "{\"id\":\"a\",\"image\":\"x.png\",\"width\":10,\"height\":10,\"question\":\"q\",\"answer\":\"1\"}\n",
        ).expect("write");
        let journal = format!("{}\n{}", serde_json::to_string(&w).expect("json"), String::from_utf8_lossy(&bytes));
        std::fs::write(d.path().join("annotations.jsonl"), journal).expect("write");
        if let Err(e) = Dataset::load(d.path()) {
            prop_assert!(e.to_string().contains("annotations.jsonl"), "{}", e);
        }
    }
}
