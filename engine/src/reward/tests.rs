//! Tests of `reward`.
use super::*;
use proptest::prelude::*;

const W: f64 = 100.0;
const H: f64 = 100.0;

fn cfg() -> RewardConfig {
    RewardConfig::default()
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} != {b}");
}

#[test]
fn defaults_match_design() {
    let c = cfg();
    assert_eq!(
        (
            c.h0,
            c.eps_ref,
            c.tau_dup,
            c.w_s,
            c.w_b,
            c.rho,
            c.w_c,
            c.r_none,
            c.lambda_rat,
            c.lambda_fmt
        ),
        (0.3, 0.05, 0.7, 0.5, 0.5, 0.2, 0.5, -1.0, 0.5, 0.2)
    );
    assert_eq!((c.h_good, c.h_bad, c.alpha), (0.5, 0.1, 0.5));
    assert_eq!(c.mode, RewardMode::Virl);
    // r_none = −(w_s + w_c): the worst zooming trajectory.
    close(c.r_none, -(c.w_s + c.w_c));
    assert!(c.validate().is_ok());
}

#[test]
fn single_exact_hit() {
    // K = 1, M = 1, IoU 1: σ = +1, β = 1, not redundant, f = 0.5 + 0.5 = 1, C = 1, R_rat = 1.
    let g = [BBox::new(10.0, 10.0, 20.0, 20.0)];
    let s = score_rationale(&[g[0]], &g, W, H, &cfg());
    let a = &s.actions[0];
    assert_eq!(
        (a.iou, a.gt, a.sigma, a.beta, a.redundant),
        (Some(1.0), Some(0), Some(1), Some(1.0), false)
    );
    close(a.fidelity, 1.0);
    assert_eq!(s.coverage, Some(1.0));
    close(s.r_rat, 1.0);
}

#[test]
fn sigma_threshold_is_inclusive() {
    assert_eq!(sigma(0.3, 0.3), 1);
    assert_eq!(sigma(0.2999, 0.3), -1);
}

#[test]
fn miss_then_partial_then_refine() {
    let g = [BBox::new(0.0, 0.0, 10.0, 10.0)];
    let zooms = [
        BBox::new(50.0, 50.0, 60.0, 60.0), // IoU 0
        BBox::new(0.0, 0.0, 10.0, 5.0),    // IoU 0.5
        BBox::new(0.0, 0.0, 10.0, 8.0),    // IoU 0.8
    ];
    let s = score_rationale(&zooms, &g, W, H, &cfg());
    // k=1: σ=-1, β=0, redundant no → f = -0.5
    close(s.actions[0].fidelity, -0.5);
    // k=2: σ=+1, β=0.5 → f = 0.5 + 0.25 = 0.75
    close(s.actions[1].beta.unwrap(), 0.5);
    close(s.actions[1].fidelity, 0.75);
    // k=3: IoU(b3, b2) = 50/80 = 0.625 < 0.7, β = 0.3 → f = 0.5 + 0.15 = 0.65
    close(s.actions[2].beta.unwrap(), 0.8 - 0.5);
    assert!(!s.actions[2].redundant);
    close(s.actions[2].fidelity, 0.65);
    // C = 1 → R_rat = mean(-0.5, 0.75, 0.65) = 0.3
    close(s.r_rat, (-0.5 + 0.75 + 0.65) / 3.0);
}

#[test]
fn redundant_by_refinement_rule() {
    // Same correct box looked at twice, but the second slightly shifted so
    // that IoU between zooms < τ_dup... use two disjoint-ish boxes each hitting g at IoU 0.5.
    let g = [BBox::new(0.0, 0.0, 10.0, 10.0)];
    let zooms = [
        BBox::new(0.0, 0.0, 10.0, 5.0),
        BBox::new(0.0, 5.0, 10.0, 10.0),
    ];
    let s = score_rationale(&zooms, &g, W, H, &cfg());
    // zoom-zoom IoU = 0 (touching), β_2 = max(0, 0.5 − 0.5) = 0 < ε_ref and σ = +1 → redundant
    assert_eq!(s.actions[1].beta, Some(0.0));
    assert!(s.actions[1].redundant);
    close(s.actions[1].fidelity, 0.5 - 0.2);
    // a missed action with β = 0 is *not* redundant by this rule
    let s2 = score_rationale(
        &[
            BBox::new(50.0, 50.0, 60.0, 60.0),
            BBox::new(70.0, 70.0, 80.0, 80.0),
        ],
        &g,
        W,
        H,
        &cfg(),
    );
    assert!(!s2.actions[1].redundant);
}

#[test]
fn redundant_by_duplicate_rule() {
    // Two near-identical misses: σ = −1 (so the refinement rule does not
    // apply), but IoU between them ≥ τ_dup.
    let g = [BBox::new(0.0, 0.0, 10.0, 10.0)];
    let zooms = [
        BBox::new(50.0, 50.0, 60.0, 60.0),
        BBox::new(50.0, 50.0, 60.0, 61.0),
    ];
    let s = score_rationale(&zooms, &g, W, H, &cfg());
    assert!(!s.actions[0].redundant);
    assert!(s.actions[1].redundant);
    close(s.actions[1].fidelity, -0.5 - 0.2);
    // C = 0 → R_rat = mean(-0.5, -0.7) − 0.5
    close(s.r_rat, (-0.5 - 0.7) / 2.0 - 0.5);
}

#[test]
fn beta_tracks_each_rationale_separately() {
    let g = [
        BBox::new(0.0, 0.0, 10.0, 10.0),
        BBox::new(50.0, 50.0, 60.0, 60.0),
    ];
    let zooms = [
        BBox::new(0.0, 0.0, 10.0, 10.0),
        BBox::new(50.0, 50.0, 60.0, 60.0),
    ];
    let s = score_rationale(&zooms, &g, W, H, &cfg());
    // The second zoom's best rationale is g_2, never seen before: β = 1.
    assert_eq!(s.actions[1].gt, Some(1));
    assert_eq!(s.actions[1].beta, Some(1.0));
    assert!(!s.actions[1].redundant);
    assert_eq!(s.coverage, Some(1.0));
}

#[test]
fn ties_go_to_lowest_index() {
    let g = [
        BBox::new(0.0, 0.0, 10.0, 10.0),
        BBox::new(0.0, 0.0, 10.0, 10.0),
    ];
    let s = score_rationale(&[BBox::new(0.0, 0.0, 10.0, 10.0)], &g, W, H, &cfg());
    assert_eq!(s.actions[0].gt, Some(0));
    // a box with no area: IoU 0 for every j → j = 0
    let s = score_rationale(&[BBox::new(200.0, 200.0, 300.0, 300.0)], &g, W, H, &cfg());
    assert_eq!(
        (s.actions[0].gt, s.actions[0].iou, s.actions[0].bbox),
        (Some(0), Some(0.0), None)
    );
}

#[test]
fn coverage_partial() {
    let g = [
        BBox::new(0.0, 0.0, 10.0, 10.0),
        BBox::new(50.0, 50.0, 60.0, 60.0),
    ];
    let s = score_rationale(&[BBox::new(0.0, 0.0, 10.0, 10.0)], &g, W, H, &cfg());
    assert_eq!(s.coverage, Some(0.5));
    close(s.r_rat, 1.0 - 0.5 * 0.5);
}

#[test]
fn no_zoom_gets_r_none() {
    let g = [BBox::new(0.0, 0.0, 10.0, 10.0)];
    let s = score_rationale(&[], &g, W, H, &cfg());
    assert!(s.actions.is_empty());
    assert_eq!(s.coverage, Some(0.0));
    close(s.r_rat, -1.0);
    // Looking is never worse than not looking: the worst zooming trajectory equals r_none.
    let worst = score_rationale(&[BBox::new(50.0, 50.0, 60.0, 60.0)], &g, W, H, &cfg());
    close(worst.r_rat, -1.0);
}

#[test]
fn no_ground_truth_scores_nothing() {
    let s = score_rationale(
        &[
            BBox::new(0.0, 0.0, 10.0, 10.0),
            BBox::new(0.0, 0.0, 10.0, 10.0),
        ],
        &[],
        W,
        H,
        &cfg(),
    );
    assert_eq!(s.r_rat, 0.0);
    assert_eq!(s.coverage, None);
    for a in &s.actions {
        assert_eq!(
            (a.iou, a.gt, a.sigma, a.beta, a.redundant, a.fidelity),
            (None, None, None, None, false, 0.0)
        );
    }
    assert_eq!(score_rationale(&[], &[], W, H, &cfg()).r_rat, 0.0);
}

#[test]
fn zooms_are_clipped_before_scoring() {
    let g = [BBox::new(0.0, 0.0, 10.0, 10.0)];
    // [-10, -10, 10, 10] clips to exactly g.
    let s = score_rationale(&[BBox::new(-10.0, -10.0, 10.0, 10.0)], &g, W, H, &cfg());
    assert_eq!(s.actions[0].bbox, Some(g[0]));
    assert_eq!(s.actions[0].iou, Some(1.0));
}

#[test]
fn total_by_mode() {
    let c = cfg();
    close(
        total_reward(1.0, 0.4, -1.0, &c).total,
        1.0 + 0.5 * 0.4 - 0.2,
    );
    let o = RewardConfig::with_mode(RewardMode::Outcome);
    close(total_reward(1.0, 0.4, -1.0, &o).total, 1.0 - 0.2);
    let f = RewardConfig::with_mode(RewardMode::Fidelity);
    close(total_reward(0.0, -1.0, 0.0, &f).total, -0.5);
}

#[test]
fn answers() {
    assert!(answer_correct(" 7 ", "7", &[]));
    assert!(answer_correct("7.0", "7", &[]));
    assert!(!answer_correct("17", "7", &[]));
    assert!(answer_correct("Yes.", "yes", &[]));
    assert!(!answer_correct("", "", &[]));
    let opts = vec!["red".to_string(), "blue".to_string()];
    assert!(answer_correct("(A)", "red", &opts));
    assert!(answer_correct("a.", "red", &opts));
    assert!(answer_correct("Red", "red", &opts));
    assert!(!answer_correct("B", "red", &opts));
    assert!(answer_correct("blue", "B", &opts));
    assert!(!answer_correct("Z", "red", &opts));
}

#[test]
fn validate_rejects_bad_constants() {
    let bad = RewardConfig {
        h_good: 0.1,
        h_bad: 0.5,
        ..cfg()
    };
    assert!(bad.validate().unwrap_err().contains("h_good"));
    let nan = RewardConfig {
        rho: f64::NAN,
        ..cfg()
    };
    assert!(nan.validate().unwrap_err().contains("rho"));
}

fn arb_box() -> impl Strategy<Value = BBox> {
    (0.0..90.0f64, 0.0..90.0f64, 1.0..40.0f64, 1.0..40.0f64)
        .prop_map(|(x, y, w, h)| BBox::from_xywh(x, y, w, h))
}

proptest! {
    /// Moving every box (zooms and ground truth) and the image frame together changes nothing.
    #[test]
    fn rewards_invariant_to_translation(
        zooms in proptest::collection::vec(arb_box(), 0..6),
        gts in proptest::collection::vec(arb_box(), 1..3),
        dx in 0.0..50.0f64, dy in 0.0..50.0f64,
    ) {
        // The image is large enough that nothing is clipped before or after the move.
        let (w, h) = (200.0, 200.0);
        let a = score_rationale(&zooms, &gts, w, h, &cfg());
        let zt: Vec<_> = zooms.iter().map(|b| b.translate(dx, dy)).collect();
        let gt: Vec<_> = gts.iter().map(|b| b.translate(dx, dy)).collect();
        let b = score_rationale(&zt, &gt, w, h, &cfg());
        prop_assert!((a.r_rat - b.r_rat).abs() < 1e-9);
        prop_assert_eq!(a.coverage, b.coverage);
        for (x, y) in a.actions.iter().zip(&b.actions) {
            prop_assert!((x.fidelity - y.fidelity).abs() < 1e-9);
            prop_assert_eq!(x.redundant, y.redundant);
            prop_assert_eq!(x.sigma, y.sigma);
        }
    }

    #[test]
    fn r_rat_is_bounded(zooms in proptest::collection::vec(arb_box(), 0..6), gts in proptest::collection::vec(arb_box(), 1..3)) {
        let c = cfg();
        let s = score_rationale(&zooms, &gts, 100.0, 100.0, &c);
        // f_k ∈ [−w_s − ρ, w_s + w_b], coverage term ∈ [−w_c, 0]
        prop_assert!(s.r_rat >= -(c.w_s + c.rho + c.w_c) - 1e-12);
        prop_assert!(s.r_rat <= c.w_s + c.w_b + 1e-12);
    }
}
