//! Tests of `env`.
use super::*;
use crate::dataset::zoombench::ZoomBenchConfig;
use crate::geometry::crop_resize;

fn env(n: u64, max_rounds: usize) -> ZoomEnv {
    let zb = ZoomBench::new(ZoomBenchConfig::default()).expect("zb");
    let samples = (0..n).map(|i| zb.generate(1, i).0).collect();
    let ds = Arc::new(Dataset::new("/nowhere", samples));
    let store = Arc::new(ImageStore::new(ds, ImageSource::ZoomBench(zb), 64, 2));
    ZoomEnv::new(
        EnvConfig {
            max_rounds,
            ..Default::default()
        },
        store,
    )
    .expect("env")
}

#[test]
fn crops_are_the_executed_region_and_blank_before() {
    let env = env(3, 6);
    let mut b = env.reset(&[0, 1, 2]).expect("reset");
    assert!(b.crop.iter().all(|&v| v == 0));
    let g = env.sample(&b, 1).rationales[0].bbox;
    env.step(&mut b, &[(1, Action::Zoom(g))]).expect("step");
    let img = env.store().image(1).expect("image");
    assert_eq!(b.crop_of(1), crop_resize(&img, &g, 64).as_raw().as_slice());
    assert!(b.crop_of(0).iter().all(|&v| v == 0));
    // the global view is the area-averaged whole image
    assert_eq!(
        b.global_of(2),
        crate::geometry::global_view(&env.store().image(2).expect("img"), 64)
            .as_raw()
            .as_slice()
    );
    assert!(b.prev_crop_of(1).iter().all(|&v| v == 0));
    let first = b.crop_of(1).to_vec();
    env.step(
        &mut b,
        &[(1, Action::Zoom(BBox::new(0.0, 0.0, 64.0, 64.0)))],
    )
    .expect("step");
    assert_eq!(b.prev_crop_of(1), first.as_slice());
    assert_eq!(b.episodes[1].actions[0].proposed, g);
    assert_eq!(b.episodes[1].actions[0].executed, g);
}

#[test]
fn boxes_are_clipped_and_grown() {
    let env = env(1, 6);
    let mut b = env.reset(&[0]).expect("reset");
    let tiny = BBox::new(100.0, 100.0, 101.0, 102.0);
    let outside = BBox::new(-50.0, 760.0, -10.0, 900.0);
    env.step(&mut b, &[(0, Action::Zoom(tiny))]).expect("step");
    env.step(&mut b, &[(0, Action::Zoom(outside))])
        .expect("step");
    let e = &b.episodes[0];
    assert_eq!(e.proposed().collect::<Vec<_>>(), vec![tiny, outside]);
    assert_eq!(e.actions[0].executed, BBox::new(96.5, 97.0, 104.5, 105.0));
    assert_eq!(e.actions[1].executed, BBox::new(0.0, 760.0, 8.0, 768.0));
}

#[test]
fn episodes_end_at_answer_or_max_rounds() {
    let env = env(2, 2);
    let mut b = env.reset(&[0, 1]).expect("reset");
    let z = Action::Zoom(BBox::new(0.0, 0.0, 50.0, 50.0));
    env.step(&mut b, &[(0, z.clone()), (1, Action::Answer("3".into()))])
        .expect("step");
    assert_eq!(b.active(), vec![0]);
    env.step(&mut b, &[(0, z.clone()), (1, z.clone())])
        .expect("step");
    assert!(b.episodes[0].truncated && b.episodes[0].answer.is_none());
    assert_eq!(
        b.episodes[1].actions.len(),
        0,
        "a finished episode ignores actions"
    );
    assert!(b.active().is_empty());
}

#[test]
fn deterministic_and_cache_bounded() {
    let (a, b) = (env(4, 6), env(4, 6));
    let z = [
        (0, Action::Zoom(BBox::new(10.0, 20.0, 90.0, 70.0))),
        (3, Action::Zoom(BBox::new(300.0, 300.0, 340.0, 330.0))),
    ];
    let mut ba = a.reset(&[0, 1, 2, 3]).expect("reset");
    let mut bb = b.reset(&[0, 1, 2, 3]).expect("reset");
    a.step(&mut ba, &z).expect("step");
    b.step(&mut bb, &z).expect("step");
    assert_eq!(ba.crop, bb.crop);
    assert_eq!(ba.global, bb.global);
    assert!(a.store().cache.lock().expect("lock").0.len() <= 2);
}

#[test]
fn bad_rules_are_refused() {
    assert!(
        EnvConfig {
            max_rounds: 0,
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .contains("max_rounds")
    );
    assert!(
        EnvConfig {
            view: 2,
            ..Default::default()
        }
        .validate()
        .is_err()
    );
}

#[test]
fn a_global_start_crop_shows_the_global_view_before_the_first_zoom() {
    let blank = env(2, 6);
    let env = ZoomEnv::new(
        EnvConfig {
            start_crop: StartCrop::Global,
            ..Default::default()
        },
        blank.store().clone(),
    )
    .expect("env");
    let mut b = env.reset(&[0, 1]).expect("reset");
    for i in 0..2 {
        assert_eq!(b.crop_of(i), b.global_of(i));
        assert!(b.prev_crop_of(i).iter().all(|&v| v == 0));
    }
    // After a zoom the global view is the previous crop, as a blank one was.
    let g = env.sample(&b, 0).rationales[0].bbox;
    env.step(&mut b, &[(0, Action::Zoom(g))]).expect("step");
    assert_eq!(b.prev_crop_of(0), b.global_of(0));
    assert_ne!(b.crop_of(0), b.global_of(0));
    // The knob reads and writes as TOML, blank by default.
    let cfg: EnvConfig = toml::from_str("start_crop = \"global\"").expect("toml");
    assert_eq!(cfg.start_crop, StartCrop::Global);
    assert_eq!(EnvConfig::default().start_crop, StartCrop::Blank);
    assert!(toml::from_str::<EnvConfig>("start_crop = \"crop\"").is_err());
}

#[test]
fn a_global_view_finer_than_the_crop_keeps_both_sizes() {
    let zb = ZoomBench::new(ZoomBenchConfig::default()).expect("zb");
    let samples = (0..2).map(|i| zb.generate(1, i).0).collect();
    let ds = Arc::new(Dataset::new("/nowhere", samples));
    let store = Arc::new(ImageStore::new(ds, ImageSource::ZoomBench(zb), 128, 2));
    let cfg = EnvConfig {
        global_view: 128,
        start_crop: StartCrop::Global,
        ..Default::default()
    };
    // A store of another global size is refused by name.
    let small = env(2, 6);
    let err = ZoomEnv::new(cfg.clone(), small.store().clone())
        .err()
        .expect("a 64 px store for a 128 px global view");
    assert!(err.contains("global_view 128"), "{err}");
    let env = ZoomEnv::new(cfg, store).expect("env");
    let mut b = env.reset(&[0, 1]).expect("reset");
    let img = env.store().image(1).expect("image");
    assert_eq!(
        b.global_of(1),
        crate::geometry::global_view(&img, 128).as_raw().as_slice()
    );
    // The start crop is the whole image at the crop's side.
    assert_eq!(
        b.crop_of(1),
        crate::geometry::global_view(&img, 64).as_raw().as_slice()
    );
    let g = env.sample(&b, 1).rationales[0].bbox;
    env.step(&mut b, &[(1, Action::Zoom(g))]).expect("step");
    assert_eq!(b.crop_of(1), crop_resize(&img, &g, 64).as_raw().as_slice());
    assert_eq!(b.global_of(1).len(), 128 * 128 * 3);
    assert!(
        EnvConfig {
            global_view: 4,
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .contains("global_view")
    );
}

#[test]
fn the_image_cache_is_bounded_in_bytes_as_well_as_in_images() {
    let zb = ZoomBench::new(ZoomBenchConfig::default()).expect("zb");
    let samples = (0..6).map(|i| zb.generate(1, i).0).collect();
    let ds = Arc::new(Dataset::new("/nowhere", samples));
    // 768 × 768 RGB = 1.77 MB an image: a 4 MB bound keeps two of them.
    let store = ImageStore::new(ds, ImageSource::ZoomBench(zb), 64, 100).with_byte_limit(4 << 20);
    for i in 0..6 {
        store.image(i).expect("image");
        assert!(
            store.cached() <= 2,
            "{} images held after {}",
            store.cached(),
            i + 1
        );
    }
    assert_eq!(store.cached(), 2);
    // The newest image is kept even when it alone is over the bound.
    let zb = ZoomBench::new(ZoomBenchConfig::default()).expect("zb");
    let ds = Arc::new(Dataset::new("/nowhere", vec![zb.generate(1, 0).0]));
    let tiny = ImageStore::new(ds, ImageSource::ZoomBench(zb), 64, 100).with_byte_limit(1);
    tiny.image(0).expect("image");
    assert_eq!(tiny.cached(), 1);
}
