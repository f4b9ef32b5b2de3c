//! Tests of `zoombench`.
use super::*;
use crate::geometry::{crop_resize, global_view};

fn bench(cfg: ZoomBenchConfig) -> ZoomBench {
    ZoomBench::new(cfg).expect("valid config")
}

#[test]
fn same_seed_same_bytes() {
    let zb = bench(ZoomBenchConfig::default());
    let (s1, i1) = zb.generate(7, 3);
    let (s2, i2) = zb.generate(7, 3);
    assert_eq!(s1, s2);
    assert_eq!(i1.as_raw(), i2.as_raw());
    let (s3, i3) = zb.generate(7, 4);
    assert_ne!(s1.id, s3.id);
    assert_ne!(i1.as_raw(), i3.as_raw());
    let (_, i4) = zb.generate(8, 3);
    assert_ne!(i1.as_raw(), i4.as_raw());
}

/// Every result in RESULTS.md was measured on these canvases: a change to
/// the renderer that changes a byte must be deliberate.
#[test]
fn the_default_canvases_are_the_ones_results_were_measured_on() {
    let zb = bench(ZoomBenchConfig::default());
    let hashes: Vec<u64> = (0..4)
        .map(|i| crate::rng::fnv1a(crate::rng::FNV_OFFSET, zb.generate(11, i).1.as_raw()))
        .collect();
    assert_eq!(
        hashes,
        [
            3_857_070_284_607_984_033,
            12_132_310_525_709_356_865,
            5_565_237_140_325_689_614,
            2_459_037_970_880_690_827
        ]
    );
}

#[test]
fn samples_are_well_formed() {
    let cfg = ZoomBenchConfig {
        question_mix: "digit,compare,sum".parse().expect("mix"),
        ..Default::default()
    };
    let zb = bench(cfg);
    let mut kinds = std::collections::HashSet::new();
    for i in 0..60 {
        let (s, img) = zb.generate(1, i);
        assert_eq!((img.width(), img.height()), (768, 768));
        let meta = s.meta.as_ref().expect("meta");
        let kind = meta["kind"].as_str().expect("kind").to_string();
        let placards = meta["placards"].as_array().expect("placards");
        assert!((3..=7).contains(&placards.len()));
        match kind.as_str() {
            "digit" => {
                assert_eq!(s.rationales.len(), 1);
                assert!(s.answer.parse::<u8>().expect("digit") < 10);
            }
            "compare" => {
                assert_eq!(s.rationales.len(), 2);
                assert!(s.answer == "yes" || s.answer == "no");
            }
            "sum" => {
                assert_eq!(s.rationales.len(), 2);
                assert!(s.answer.parse::<u8>().expect("sum") <= 18);
            }
            k => panic!("unexpected kind {k}"),
        }
        for r in &s.rationales {
            assert!(r.bbox.is_well_formed() && r.bbox.is_inside(768.0, 768.0));
            let side = r.bbox.width();
            assert!((14.0..=28.0).contains(&side), "side {side}");
            // The named colour is really there: the border pixel has the colour.
            let colour = r.label.trim_end_matches(" placard");
            let rgb = COLOURS.iter().find(|c| c.0 == colour).expect("colour").1;
            assert_eq!(img.get_pixel(r.bbox.x1 as u32, r.bbox.y1 as u32).0, rgb);
            assert!(s.question.contains(colour));
        }
        kinds.insert(kind);
    }
    assert_eq!(kinds.len(), 3);
}

#[test]
fn shortcut_bias_ties_digit_to_colour() {
    let zb = bench(ZoomBenchConfig {
        shortcut_bias: 1.0,
        ..Default::default()
    });
    for i in 0..20 {
        for p in zb.layout(3, i).placards {
            assert_eq!(p.digit, SHORTCUT_DIGITS[p.colour]);
        }
    }
    // With bias 0 the shortcut digit appears about 1 time in 10.
    let zb = bench(ZoomBenchConfig::default());
    let (mut hit, mut all) = (0, 0);
    for i in 0..200 {
        for p in zb.layout(3, i).placards {
            all += 1;
            hit += usize::from(p.digit == SHORTCUT_DIGITS[p.colour]);
        }
    }
    let rate = hit as f64 / all as f64;
    assert!((0.05..0.16).contains(&rate), "rate {rate}");
}

#[test]
fn label_noise_moves_boxes_and_keeps_truth() {
    let zb = bench(ZoomBenchConfig {
        label_noise: 0.5,
        ..Default::default()
    });
    let mut noisy = 0;
    for i in 0..100 {
        let (s, _) = zb.generate(5, i);
        let meta = s.meta.expect("meta");
        if meta["label_noise"].as_bool().expect("flag") {
            noisy += 1;
            let t = &meta["true_rationales"][0]["bbox"];
            let truth = BBox::new(
                t[0].as_f64().expect("x1"),
                t[1].as_f64().expect("y1"),
                t[2].as_f64().expect("x2"),
                t[3].as_f64().expect("y2"),
            );
            assert!(s.rationales[0].bbox.iou(&truth) <= 0.05);
            assert!(s.rationales[0].bbox.is_inside(768.0, 768.0));
        }
    }
    assert!((35..=65).contains(&noisy), "noisy {noisy}");
}

/// Counts pixels whose largest channel difference exceeds `thr`.
fn differing(a: &RgbImage, b: &RgbImage, thr: u8) -> usize {
    a.pixels()
        .zip(b.pixels())
        .filter(|(p, q)| {
            p.0.iter()
                .zip(q.0.iter())
                .any(|(x, y)| x.abs_diff(*y) > thr)
        })
        .count()
}

fn max_diff(a: &RgbImage, b: &RgbImage) -> u8 {
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

/// The claim ZoomBench rests on, checked numerically for every pair of
/// digits and both extreme placard sizes: two images that differ only in
/// one placard's digit differ in many pixels of a zoomed crop (the glyph is
/// resolved) but in at most a 2×2 patch of the global view (the 5×7 glyph
/// collapses into fewer pixels than it has strokes), by a small amount.
#[test]
fn digits_readable_in_crop_not_in_global_view() {
    for side in [14u32, 28] {
        let zb = bench(ZoomBenchConfig {
            placard_min: side,
            placard_max: side,
            ..Default::default()
        });
        let base = zb.layout(11, 0);
        let target = base.placards[0].bbox();
        let (cx, cy) = target.center();
        let crop_box = BBox::new(
            cx - 1.5 * side as f64,
            cy - 1.5 * side as f64,
            cx + 1.5 * side as f64,
            cy + 1.5 * side as f64,
        );
        let mut worst_global = 0usize;
        let mut worst_global_level = 0u8;
        let mut least_crop = usize::MAX;
        for a in 0..10u8 {
            for b in (a + 1)..10 {
                let mut la = base.clone();
                la.placards[0].digit = a;
                let mut lb = base.clone();
                lb.placards[0].digit = b;
                let (ia, ib) = (zb.render(&la), zb.render(&lb));
                let (ga, gb) = (global_view(&ia, 64), global_view(&ib, 64));
                worst_global = worst_global.max(differing(&ga, &gb, 2));
                worst_global_level = worst_global_level.max(max_diff(&ga, &gb));
                let (ca, cb) = (
                    crop_resize(&ia, &crop_box, 64),
                    crop_resize(&ib, &crop_box, 64),
                );
                least_crop = least_crop.min(differing(&ca, &cb, 64));
            }
        }
        // At 12 canvas pixels per global-view pixel, a 28 px placard's glyph
        // (15×21 px) straddles at most a 3×3 patch: fewer pixels than the
        // glyph's 5×7 cells, so its shape is gone.
        assert!(
            worst_global <= 9,
            "side {side}: digits differ in {worst_global} global-view pixels"
        );
        assert!(
            worst_global_level <= 64,
            "side {side}: global-view difference up to {worst_global_level}/255"
        );
        // Every pair differs in at least 3 font pixels; a crop of three placard
        // widths shows each font pixel as at least one full-contrast pixel.
        assert!(
            least_crop >= 10,
            "side {side}: digits differ in only {least_crop} crop pixels"
        );
        assert!(
            least_crop >= 2 * worst_global,
            "side {side}: crop {least_crop} vs global {worst_global}"
        );
    }
}

#[test]
fn large_placards_are_readable_in_global_view() {
    let zb = bench(ZoomBenchConfig {
        large_fraction: 1.0,
        placards_min: 1,
        placards_max: 1,
        ..Default::default()
    });
    let base = zb.layout(2, 0);
    assert!(base.placards[0].large);
    let mut least = usize::MAX;
    for a in 0..10u8 {
        for b in (a + 1)..10 {
            let mut la = base.clone();
            la.placards[0].digit = a;
            let mut lb = base.clone();
            lb.placards[0].digit = b;
            least = least.min(differing(
                &global_view(&zb.render(&la), 64),
                &global_view(&zb.render(&lb), 64),
                64,
            ));
        }
    }
    assert!(
        least >= 2,
        "large digits differ in only {least} global-view pixels"
    );
}

#[test]
fn bad_knobs_are_rejected() {
    assert!(
        ZoomBench::new(ZoomBenchConfig {
            shortcut_bias: 1.5,
            ..Default::default()
        })
        .is_err()
    );
    assert!(
        ZoomBench::new(ZoomBenchConfig {
            placards_max: 11,
            ..Default::default()
        })
        .is_err()
    );
    assert!(
        ZoomBench::new(ZoomBenchConfig {
            placard_min: 30,
            placard_max: 20,
            ..Default::default()
        })
        .is_err()
    );
    assert!(
        ZoomBench::new(ZoomBenchConfig {
            canvas: 64,
            ..Default::default()
        })
        .is_err()
    );
    let mix: QuestionMix = "sum".parse().expect("mix");
    assert!(
        ZoomBench::new(ZoomBenchConfig {
            question_mix: mix,
            placards_min: 1,
            ..Default::default()
        })
        .is_err()
    );
    assert!("digit=x".parse::<QuestionMix>().is_err());
    assert!("colour".parse::<QuestionMix>().is_err());
}

#[test]
fn large_side_makes_placards_the_filter_s_stage_1_removes() {
    let zb = bench(ZoomBenchConfig {
        canvas: 256,
        placards_min: 1,
        placards_max: 3,
        distractors: 12,
        global_view: 32,
        large_fraction: 0.3,
        large_side: 0.35,
        ..Default::default()
    });
    let (mut large, mut dropped) = (0, 0);
    for i in 0..200 {
        let l = zb.layout(7, i);
        for p in l.placards.iter().filter(|p| p.large) {
            assert_eq!(p.side, 89, "0.35 × 256");
            large += 1;
        }
    }
    for i in 0..200 {
        if crate::filter::area_ratio(&zb.sample(7, i))
            > crate::filter::FilterConfig::default().max_area_ratio
        {
            dropped += 1;
        }
    }
    assert!(large > 100, "only {large} large placards in 200 layouts");
    assert!(dropped > 10, "stage 1 would drop {dropped} of 200 samples");
    // Without large placards, the same data has nothing for stage 1 to drop.
    let zb0 = bench(ZoomBenchConfig {
        large_fraction: 0.0,
        ..zb.config().clone()
    });
    let none = (0..200)
        .filter(|&i| crate::filter::area_ratio(&zb0.sample(7, i)) > 0.1)
        .count();
    assert_eq!(none, 0);
    for bad in [-0.1, 0.6, f64::NAN] {
        let r = ZoomBench::new(ZoomBenchConfig {
            large_side: bad,
            ..Default::default()
        });
        assert!(r.is_err(), "large_side {bad} accepted");
    }
}
