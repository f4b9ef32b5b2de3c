//! Tests of `zoomnet`.
use super::*;
use crate::dataset::Dataset;
use crate::dataset::zoombench::{ZoomBench, ZoomBenchConfig};
use crate::env::{EnvConfig, ImageSource, ImageStore, ZoomEnv};
use crate::policy::encode_question;
use std::sync::Arc;

fn setup(n: u64) -> (ZoomEnv, ZoomNet) {
    let zb = ZoomBench::new(ZoomBenchConfig::default()).expect("zb");
    let samples = (0..n).map(|i| zb.generate(4, i).0).collect();
    let ds = Arc::new(Dataset::new("/nowhere", samples));
    let store = Arc::new(ImageStore::new(ds, ImageSource::ZoomBench(zb), 64, 64));
    let env = ZoomEnv::new(EnvConfig::default(), store).expect("env");
    let answers = (0..10).map(|d| d.to_string()).collect();
    let net =
        ZoomNet::new(ZoomNetConfig::default(), 64, 6, answers, DeviceKind::Cpu, 1).expect("net");
    (env, net)
}

#[test]
fn sampled_logp_equals_evaluated_logp() {
    let (env, net) = setup(6);
    let idx: Vec<usize> = (0..6).collect();
    let mut batch = env.reset(&idx).expect("reset");
    let questions: Vec<Vec<f32>> = idx
        .iter()
        .map(|&i| encode_question(&env.store().dataset().samples()[i].question, 128))
        .collect();
    let sizes: Vec<(f64, f64)> = env
        .store()
        .dataset()
        .samples()
        .iter()
        .map(|s| (s.width as f64, s.height as f64))
        .collect();
    let keys = net.encode_globals(&batch.global, 6).expect("keys");
    let of_episode: Vec<usize> = (0..6).collect();
    let mut rng = SplitMix64::new(9);
    let mut records = Vec::new();
    for _ in 0..3 {
        let active = batch.active();
        let acts = net
            .act(
                &batch,
                &keys,
                &of_episode,
                &questions,
                &sizes,
                &active,
                Some(&mut rng),
            )
            .expect("act");
        let mut step_actions = Vec::new();
        for (&i, (a, c, lp)) in active.iter().zip(acts) {
            records.push((
                i,
                batch.episodes[i].actions.len(),
                batch.crop_of(i).to_vec(),
                batch.prev_crop_of(i).to_vec(),
                c,
                lp,
            ));
            step_actions.push((i, a));
        }
        env.step(&mut batch, &step_actions).expect("step");
    }
    assert!(records.len() >= 6);
    let steps: Vec<StepObs> = records
        .iter()
        .map(|(i, s, c, p, ch, _)| StepObs {
            episode: *i,
            step: *s,
            question: &questions[*i],
            crop: c,
            prev_crop: p,
            choice: *ch,
        })
        .collect();
    let (lp, ent) = net.evaluate(&batch.global, 6, &steps).expect("evaluate");
    let lp = lp.to_vec1::<f32>().expect("lp");
    for (r, l) in records.iter().zip(&lp) {
        assert!((r.5 - l).abs() < 1e-4, "sampled {} vs evaluated {}", r.5, l);
    }
    assert!(ent.to_vec1::<f32>().expect("ent").iter().all(|&h| h > 0.0));
}

#[test]
fn same_seed_same_weights_and_round_trip() {
    let (_, a) = setup(1);
    let (_, b) = setup(1);
    let (ta, tb) = (a.tensors().expect("a"), b.tensors().expect("b"));
    for (k, v) in &ta {
        assert_eq!(
            v.flatten_all().expect("f").to_vec1::<f32>().expect("v"),
            tb[k].flatten_all().expect("f").to_vec1::<f32>().expect("v"),
            "{k}"
        );
    }
    assert!(ta.contains_key("trunk.l1.weight") && ta.contains_key("global.pix1.weight"));
}

#[test]
fn box_encoding_reaches_placards() {
    let (env, net) = setup(20);
    for s in env.store().dataset().samples() {
        let g = s.rationales[0].bbox;
        let c = net.encode_box(&g, s.width as f64, s.height as f64);
        let b = net.zoom_box(&c, s.width as f64, s.height as f64);
        // The action space can express every placard at IoU ≥ 0.7.
        assert!(b.iou(&g) >= 0.7, "{:?} vs {:?}: {}", b, g, b.iou(&g));
    }
}
