//! Tests of `zoomnet`.
use super::*;
use crate::dataset::Dataset;
use crate::dataset::zoombench::{ZoomBench, ZoomBenchConfig};
use crate::env::{EnvConfig, ImageSource, ImageStore, ZoomEnv};
use crate::policy::encode_question;
use std::sync::Arc;

fn setup(n: u64) -> (ZoomEnv, ZoomNet) {
    setup_with(n, 64)
}

/// `n` samples, 64 px crops, a global view of `global` px.
fn setup_with(n: u64, global: u32) -> (ZoomEnv, ZoomNet) {
    let zb = ZoomBench::new(ZoomBenchConfig::default()).expect("zb");
    let samples = (0..n).map(|i| zb.generate(4, i).0).collect();
    let ds = Arc::new(Dataset::new("/nowhere", samples));
    let store = Arc::new(ImageStore::new(ds, ImageSource::ZoomBench(zb), global, 64));
    let cfg = EnvConfig {
        global_view: global,
        ..Default::default()
    };
    let env = ZoomEnv::new(cfg, store).expect("env");
    let answers = (0..10).map(|d| d.to_string()).collect();
    let net = ZoomNet::new(
        ZoomNetConfig::default(),
        64,
        global as usize,
        6,
        answers,
        DeviceKind::Cpu,
        1,
    )
    .expect("net");
    (env, net)
}

#[test]
fn sampled_logp_equals_evaluated_logp() {
    // A global view of the crops' side, and a finer one (the default
    // schedule's): `act` reads the concatenated context, the update
    // recomputes the chosen cells' keys and leaves pix2's bias out of the
    // cell softmax; both must give the same log-probabilities.
    for global in [64, 96] {
        sampled_logp_equals_evaluated_logp_at(global);
    }
}

fn sampled_logp_equals_evaluated_logp_at(global: u32) {
    let (env, net) = setup_with(6, global);
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
        assert!(
            (r.5 - l).abs() < 1e-4,
            "global {global}: sampled {} vs evaluated {}",
            r.5,
            l
        );
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
    let mut mean = Vec::new();
    for global in [64, 96] {
        let (env, net) = setup_with(40, global);
        let mut sum = 0.0;
        for s in env.store().dataset().samples() {
            let g = s.rationales[0].bbox;
            let c = net.encode_box(&g, s.width as f64, s.height as f64);
            assert!((c.cell as usize) < (global * global) as usize);
            let b = net.zoom_box(&c, s.width as f64, s.height as f64);
            // The action space can express every placard at IoU > 0.5 (at
            // 64 px the worst case is about 0.58: a third-of-a-cell step
            // is 4 px of a 14 px placard; RESULTS §1j).
            assert!(
                b.iou(&g) >= 0.55,
                "global {global}: {:?} vs {:?}: {}",
                b,
                g,
                b.iou(&g)
            );
            sum += b.iou(&g);
        }
        mean.push(sum / 40.0);
    }
    // A finer global view aims the same placards more closely.
    assert!(mean[1] > mean[0], "mean IoU at 64 and 96 px: {mean:?}");
}

/// Bytes that cover the range, with a structure the patch order must keep.
fn bytes(n: usize, v: usize, seed: u64) -> Vec<u8> {
    let mut r = SplitMix64::new(seed);
    (0..n * v * v * 3)
        .map(|_| (r.next_u64() % 256) as u8)
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn host_features_equal_the_tensor_ops_they_replace() -> Result<()> {
    let (n, v, ps) = (3, 16, 4);
    let dev = Device::Cpu;
    let raw = bytes(n, v, 5);
    let x = Tensor::from_vec(
        raw.iter().map(|&b| inputs::unit(b)).collect::<Vec<_>>(),
        (n, v, v, 3),
        &dev,
    )?;
    // The 3×3 unfold as pads, narrows and a concatenation.
    let padded = x.pad_with_zeros(1, 1, 1)?.pad_with_zeros(2, 1, 1)?;
    let mut parts = Vec::new();
    for dy in 0..3 {
        for dx in 0..3 {
            parts.push(padded.narrow(1, dy, v)?.narrow(2, dx, v)?);
        }
    }
    let want = Tensor::cat(&parts, 3)?.flatten_all()?.to_vec1::<f32>()?;
    assert_eq!(max_abs_diff(&inputs::unfold3x3(&raw, n, v, 27), &want), 0.0);
    // Contrast normalisation and patches as a mean, a concatenation and a permute.
    let g = v / ps;
    let mean = x
        .reshape((n, v * v, 3))?
        .mean_keepdim(1)?
        .reshape((n, 1, 1, 3))?;
    let centred = x.broadcast_sub(&mean)?;
    let six = Tensor::cat(&[&centred, &centred.abs()?.affine(2.0, 0.0)?], 3)?;
    let want = six
        .reshape((n, g, ps, g, ps, 6))?
        .permute((0, 1, 3, 2, 4, 5))?
        .flatten_all()?
        .to_vec1::<f32>()?;
    assert!(max_abs_diff(&inputs::crop_patches(&raw, n, v, ps), &want) < 1e-6);
    Ok(())
}

#[test]
fn dense_equals_candle_linear_and_so_do_its_gradients() -> Result<()> {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let d = dense::dense(5, 4, vb.pp("l"))?;
    let vars = varmap.data().lock().expect("vars").clone();
    let (w, b) = (&vars["l.weight"], &vars["l.bias"]);
    b.set(&Tensor::new(&[0.5f32, -1.0, 2.0, 0.25], &dev)?)?;
    let lin = candle_nn::Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
    let x = Tensor::from_vec(
        (0..2 * 3 * 5).map(|i| (i as f32 * 0.37).sin()).collect(),
        (2, 3, 5),
        &dev,
    )?;
    let (ours, theirs) = (d.forward(&x)?, lin.forward(&x)?);
    assert_eq!(ours.dims(), theirs.dims());
    let diff = (&ours - &theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(diff < 1e-6, "forward differs by {diff}");
    let weights = Tensor::from_vec((0..24).map(|i| i as f32 - 7.0).collect(), (2, 3, 4), &dev)?;
    let go = (ours * &weights)?.sum_all()?.backward()?;
    let gt = (theirs * &weights)?.sum_all()?.backward()?;
    for v in [w, b] {
        let (a, b) = (go.get(v).expect("grad"), gt.get(v).expect("grad"));
        let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-4, "gradient differs by {diff}");
    }
    Ok(())
}

#[test]
fn gathered_windows_equal_narrowed_and_concatenated_ones_and_so_do_their_gradients() -> Result<()> {
    let dev = Device::Cpu;
    let (n, g, r) = (3, 5, 4);
    let w = g - 1;
    let p = Var::from_tensor(&Tensor::from_vec(
        (0..n * g * g * r)
            .map(|i| (i as f32 * 0.71).sin())
            .collect(),
        (n, g, g, r),
        &dev,
    )?)?;
    let t = p.as_tensor();
    let narrowed = Tensor::cat(
        &[
            &t.narrow(1, 0, w)?.narrow(2, 0, w)?,
            &t.narrow(1, 0, w)?.narrow(2, 1, w)?,
            &t.narrow(1, 1, w)?.narrow(2, 0, w)?,
            &t.narrow(1, 1, w)?.narrow(2, 1, w)?,
        ],
        3,
    )?
    .contiguous()?
    .reshape((n, w * w, 4 * r))?;
    let gathered = t
        .reshape((n * g * g, r))?
        .index_select(&window_index(n, g, &dev)?, 0)?
        .reshape((n, w * w, 4 * r))?;
    assert_eq!(gathered.to_vec3::<f32>()?, narrowed.to_vec3::<f32>()?);
    let weights = Tensor::from_vec(
        (0..n * w * w * 4 * r)
            .map(|i| (i as f32 * 0.13).cos())
            .collect(),
        (n, w * w, 4 * r),
        &dev,
    )?;
    let ga = (gathered * &weights)?.sum_all()?.backward()?;
    let gb = (narrowed * &weights)?.sum_all()?.backward()?;
    let (a, b) = (ga.get(&p).expect("grad"), gb.get(&p).expect("grad"));
    let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(diff < 1e-5, "gradient differs by {diff}");
    Ok(())
}

/// The gradient of the reader's patch embedding weights when every patch
/// embedding unit's input is below zero (its bias pushed to −3), as after
/// the early imitation steps that killed the ReLU reader (RESULTS §1i).
fn reader_grad_with_units_below_zero(act: Activation) -> Result<f32> {
    let cfg = ZoomNetConfig {
        reader_activation: act,
        ..ZoomNetConfig::default()
    };
    let answers = (0..10).map(|d| d.to_string()).collect();
    let net = ZoomNet::new(cfg, 64, 64, 6, answers, DeviceKind::Cpu, 3).expect("net");
    let vars: HashMap<String, Var> = net.named_vars().into_iter().collect();
    let bias = &vars["reader.patch.bias"];
    bias.set(&Tensor::full(-3f32, bias.dims(), &Device::Cpu)?)?;
    // Pixel features of magnitude ≤ 0.1: every unit's input stays below −1.
    let (n, g, d) = (2, 8, 8 * 8 * 6);
    let p = Tensor::from_vec(
        (0..n * g * g * d)
            .map(|i| 0.1 * (i as f32 * 0.37).sin())
            .collect(),
        (n, g, g, d),
        &Device::Cpu,
    )?;
    let grads = net.read_crops(&p)?.sum_all()?.backward()?;
    let gw = grads
        .get(vars["reader.patch.weight"].as_tensor())
        .map(|g| g.abs()?.sum_all()?.to_scalar::<f32>())
        .transpose()?;
    Ok(gw.unwrap_or(0.0))
}

#[test]
fn a_gelu_reader_keeps_learning_where_a_relu_reader_has_died() -> Result<()> {
    assert_eq!(reader_grad_with_units_below_zero(Activation::Relu)?, 0.0);
    assert!(reader_grad_with_units_below_zero(Activation::Gelu)? > 0.0);
    Ok(())
}
