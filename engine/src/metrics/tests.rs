//! Tests of `metrics`.
use super::*;
use crate::geometry::BBox;
use crate::reward::Rewards;
use crate::trajectory::ZoomAction;

fn it(i: u64, zooms: f64, acc_ans: f64, acc_rat: Option<f64>, max_rounds: f64) -> IterationMetrics {
    IterationMetrics {
        iteration: i,
        trajectories: 64,
        acc_ans,
        acc_rat,
        zooms,
        max_rounds_frac: max_rounds,
        answered_frac: 1.0 - max_rounds,
        ..Default::default()
    }
}

/// Zooms steady near 1.5, Acc_rat rising from 0.35 to 0.9, Acc_ans rising.
fn healthy() -> Vec<IterationMetrics> {
    (0..40)
        .map(|i| {
            let t = i as f64 / 39.0;
            it(
                i,
                1.5 + 0.2 * (i as f64).sin(),
                0.3 + 0.6 * t,
                Some(0.35 + 0.55 * t),
                0.02,
            )
        })
        .collect()
}

#[test]
fn healthy_series_fires_nothing() {
    assert!(detect(&healthy(), &DetectorConfig::default()).is_empty());
}

#[test]
fn collapse_fires_once_with_its_start() {
    // zooms decay from 1.5 to 0 from iteration 10; answers keep coming.
    let s: Vec<_> = (0..30)
        .map(|i| {
            let z = if i < 10 {
                1.5
            } else {
                (1.5 - 0.3 * (i - 10) as f64).max(0.0)
            };
            it(i, z, 0.6, if z > 0.0 { Some(0.6) } else { None }, 0.0)
        })
        .collect();
    let f = detect(&s, &DetectorConfig::default());
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].kind, FailureKind::Collapse);
    // z < 0.1 first at i = 15 (1.5 − 1.5 = 0); confirmed 5 iterations later
    assert_eq!((f[0].began_at, f[0].detected_at), (15, 19));
}

#[test]
fn no_collapse_when_nothing_is_answered_either() {
    let s: Vec<_> = (0..10).map(|i| it(i, 0.0, 0.0, None, 1.0)).collect();
    assert!(
        detect(&s, &DetectorConfig::default())
            .iter()
            .all(|f| f.kind != FailureKind::Collapse)
    );
}

#[test]
fn explosion_fires_when_zooms_surge_and_accuracy_drops() {
    let mut s = healthy()[..20].to_vec();
    for (k, i) in (20..26).enumerate() {
        let k = k as f64;
        s.push(it(
            i,
            1.5 + 1.0 * (k + 1.0),
            0.6 - 0.08 * (k + 1.0),
            Some(0.5),
            (0.15 * (k + 1.0)).min(1.0),
        ));
    }
    let f = detect(&s, &DetectorConfig::default());
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].kind, FailureKind::Explosion);
    assert!(f[0].began_at >= 20 && f[0].began_at <= f[0].detected_at);
    // zooms surging with accuracy holding is not an explosion
    let mut s = healthy()[..20].to_vec();
    for i in 20..26 {
        s.push(it(i, 4.0, 0.9, Some(0.8), 0.0));
    }
    assert!(detect(&s, &DetectorConfig::default()).is_empty());
}

#[test]
fn superficial_fires_and_rearms() {
    let mut s: Vec<_> = (0..8).map(|i| it(i, 2.0, 0.5, Some(0.1), 0.0)).collect();
    s.extend((8..12).map(|i| it(i, 2.0, 0.5, Some(0.7), 0.0)));
    s.extend((12..20).map(|i| it(i, 2.0, 0.5, Some(0.1), 0.0)));
    let f = detect(&s, &DetectorConfig::default());
    assert_eq!(
        f.iter()
            .map(|x| (x.kind, x.began_at, x.detected_at))
            .collect::<Vec<_>>(),
        vec![
            (FailureKind::Superficial, 0, 4),
            (FailureKind::Superficial, 12, 16)
        ]
    );
}

fn traj(ans: f64, ious: &[f64], gt_best: &[f64], max_rounds: bool) -> Trajectory {
    let b = BBox::new(0.0, 0.0, 1.0, 1.0);
    Trajectory {
        sample: "s".into(),
        group: "s".into(),
        answer: (!max_rounds).then(|| "1".to_string()),
        truncated: max_rounds,
        rewards: Rewards {
            ans,
            rat: 0.0,
            fmt: 0.0,
            total: ans,
        },
        actions: ious
            .iter()
            .map(|&v| {
                let mut a = ZoomAction::new(b, b, None, None);
                a.score.iou = Some(v);
                a.score.gt = Some(0);
                a.score.sigma = Some(1);
                a.score.beta = Some(0.0);
                a
            })
            .collect(),
        gt_best_iou: gt_best.to_vec(),
        ..Default::default()
    }
}

#[test]
fn summarize_hand_values() {
    let ts = [
        traj(1.0, &[0.6, 0.2], &[0.6], false),
        traj(0.0, &[], &[0.0], false),
        traj(0.0, &[0.5, 0.1, 0.1, 0.9], &[0.9, 0.2], true),
    ];
    let m = summarize(3, &ts, RAT_IOU);
    assert_eq!(m.iteration, 3);
    assert!((m.acc_ans - 1.0 / 3.0).abs() < 1e-12);
    // IoU ≥ 0.5: 0.6, 0.5, 0.9 of 6 actions
    assert_eq!(m.acc_rat, Some(0.5));
    // ground-truth boxes hit: 0.6, 0.9 of 4
    assert_eq!(m.coverage, Some(0.5));
    assert_eq!(m.zooms, 2.0);
    assert!((m.max_rounds_frac - 1.0 / 3.0).abs() < 1e-12);
    assert!((m.answered_frac - 2.0 / 3.0).abs() < 1e-12);
    let empty = summarize(0, &[], RAT_IOU);
    assert_eq!(
        (empty.acc_rat, empty.coverage, empty.zooms),
        (None, None, 0.0)
    );
}

#[test]
fn warm_up_iterations_fire_nothing_and_rl_is_watched_from_its_start() {
    // Imitation iterations that would look superficial, then RL that does.
    let mut s: Vec<_> = (0..10)
        .map(|i| IterationMetrics {
            warmup: true,
            ..it(i, 2.0, 0.5, Some(0.1), 0.0)
        })
        .collect();
    s.extend((10..18).map(|i| it(i, 2.0, 0.5, Some(0.1), 0.0)));
    let f = detect(&s, &DetectorConfig::default());
    assert_eq!(
        f.iter()
            .map(|x| (x.kind, x.began_at, x.detected_at))
            .collect::<Vec<_>>(),
        vec![(FailureKind::Superficial, 10, 14)]
    );
}
