//! Qwen3-VL rollouts in the studio: a session of VLM rollouts shows each
//! turn's text next to its zoom, and Train > Run VLM rollouts runs a
//! checkpoint off the UI thread and opens the result.
//!
//! The scripted session is the real pipeline (tiny random Qwen3-VL,
//! prompt, KV cache, crops, scoring, session writing) with the tokens chosen
//! by a script that zooms on the ground truth and answers, so that the
//! screen has something readable to show. `VIRL_DOCS_SESSION=DIR` keeps a
//! copy of it (docs/studio-vlm.png is a screenshot of that session).

mod common;
use common::{harness, step_until};

use egui_kittest::kittest::Queryable;
use std::collections::VecDeque;
use std::path::Path;
use virl_engine::policy::qwen_vl::image::prepare;
use virl_engine::policy::qwen_vl::sampling::{TokenChooser, log_softmax};
use virl_engine::policy::qwen_vl::tiny::{TinySpec, write_tiny_model};
use virl_engine::policy::qwen_vl::{Precision, QwenVl};
use virl_engine::vlm::{self, VlmRunConfig};
use virl_studio::studio::{StudioOptions, Tab};

struct Scripted(VecDeque<u32>);

impl TokenChooser for Scripted {
    fn choose(&mut self, logits: &[f32]) -> (u32, f32) {
        let id = self.0.pop_front().expect("script ran out");
        (id, log_softmax(logits, 1.0)[id as usize] as f32)
    }
}

const THINK: &str = "the placard the question names is too small to read here, so zoom in on it";

/// Writes a session of scripted VLM rollouts on ZoomBench; returns the
/// number of trajectories.
fn scripted_session(model_dir: &Path, out: &Path) -> usize {
    let m = QwenVl::load(model_dir, Precision::F32, &candle_core::Device::Cpu).expect("model");
    let (store, cfg, _) = vlm::open_dataset("zoombench").expect("zoombench");
    let run = VlmRunConfig {
        rollout: virl_engine::policy::qwen_vl::protocol::RolloutConfig {
            max_pixels: 256 * 256,
            crop_max_pixels: 64 * 64,
            ..Default::default()
        },
        group: 2,
        seed: 0,
        reward: Default::default(),
    };
    let idx = [0usize, 1];
    let ds = store.dataset().clone();
    let (recs, _) = vlm::run_with(
        &m,
        &store,
        &idx,
        &run,
        0,
        &mut |k, i| {
            let s = &ds.samples()[idx[k]];
            let img = store.image(idx[k]).expect("image");
            let shown = prepare(&img, &m.image_config, Some(run.rollout.max_pixels))
                .expect("prepare")
                .shown;
            let (sx, sy) = (
                shown.0 as f64 / img.width() as f64,
                shown.1 as f64 / img.height() as f64,
            );
            let g = s.rationales[0].bbox;
            // Rollout 1 zooms on the ground truth; rollout 2 on the corner.
            let b = if i == 0 {
                [g.x1 * sx, g.y1 * sy, g.x2 * sx, g.y2 * sy]
            } else {
                [0.0, 0.0, 20.0, 20.0]
            };
            let turns = [
                format!(
                    "<think>{THINK}</think>\n<tool_call>{{\"name\": \"image_zoom_in_tool\", \"arguments\": {{\"bbox_2d\": [{:.0}, {:.0}, {:.0}, {:.0}]}}}}</tool_call>",
                    b[0], b[1], b[2], b[3]
                ),
                format!("<think>now I can read it</think><answer>{}</answer>", s.answer),
            ];
            let mut q = VecDeque::new();
            for t in turns {
                q.extend(m.tokenizer.encode(&t).expect("encode"));
                q.push_back(m.tokenizer.im_end);
            }
            Box::new(Scripted(q))
        },
        &mut |_, _| {},
    )
    .expect("rollouts");
    vlm::write_session(out, &cfg, &recs, model_dir).expect("session");
    recs.len()
}

#[test]
fn vlm_turns_show_next_to_their_zooms() {
    let tmp = tempfile::tempdir().expect("tmp");
    let model = tmp.path().join("model");
    write_tiny_model(&model, &TinySpec::tiny(), 5).expect("model");
    let session = tmp.path().join("vlm-session");
    assert_eq!(scripted_session(&model, &session), 4);
    if let Some(keep) = std::env::var_os("VIRL_DOCS_SESSION") {
        let keep = Path::new(&keep);
        if !keep.exists() {
            let m = keep.with_extension("model");
            write_tiny_model(&m, &TinySpec::tiny(), 5).expect("model");
            scripted_session(&m, keep);
        }
    }
    let mut h = harness(StudioOptions {
        open: Some(session.clone()),
        sessions_root: Some(tmp.path().to_path_buf()),
        tab: Some(Tab::Rollouts),
        ..Default::default()
    });
    step_until(&mut h, "the rollouts and the sample index", |s| {
        s.run
            .as_ref()
            .is_some_and(|r| r.index.is_some() && s.browser.record(r).is_some())
    });
    h.run_steps(3);
    let t = {
        let s = h.state();
        s.browser
            .record(s.run.as_ref().expect("run"))
            .expect("selected")
            .clone()
    };
    assert_eq!(
        t.transcript.len(),
        5,
        "system, user, zoom, crop, answer: {:?}",
        t.transcript
    );
    assert_eq!(t.actions.len(), 1);
    // The zoom's turn is shown beside it, with its box.
    assert!(
        h.query_by_label("the model's turn for this action")
            .is_some()
    );
    assert!(
        h.query_all_by_label_contains(THINK).count() >= 1,
        "the turn's text is not shown"
    );
    assert!(
        h.query_all_by_label_contains("zoom, original pixels")
            .count()
            >= 1
    );
    // Stepping to the answer action shows the answer turn.
    h.key_press(egui::Key::ArrowRight);
    h.run_steps(3);
    assert!(h.query_all_by_label_contains("now I can read it").count() >= 1);
    // The conversation is collapsed by default, so the zoom turn's text is
    // gone with its action.
    assert_eq!(h.query_all_by_label_contains(THINK).count(), 0);
}

#[test]
fn run_vlm_rollouts_from_the_menu() {
    let tmp = tempfile::tempdir().expect("tmp");
    let model = tmp.path().join("model");
    write_tiny_model(&model, &TinySpec::tiny(), 5).expect("model");
    let mut h = harness(StudioOptions {
        sessions_root: Some(tmp.path().to_path_buf()),
        ..Default::default()
    });
    h.run_steps(3);
    h.get_by_label("Train").click();
    h.run_steps(2);
    h.get_by_label("Run VLM rollouts…").click();
    h.run_steps(2);
    {
        let w = h.state_mut().vlm.as_mut().expect("the window opened");
        w.model = "/no/such/model".into();
        w.n = 2;
        w.group = 2;
        w.max_turn_tokens = 6;
        w.max_rounds = 1;
    }
    h.run_steps(2);
    h.get_by_label("Run").click();
    step_until(&mut h, "the missing model to be reported", |s| {
        s.vlm.as_ref().is_some_and(|w| w.error.is_some())
    });
    let e = h
        .state()
        .vlm
        .as_ref()
        .and_then(|w| w.error.clone())
        .expect("error");
    assert!(e.contains("/no/such/model"), "{e}");
    h.state_mut().vlm.as_mut().expect("window").model = model.display().to_string();
    h.run_steps(2);
    h.get_by_label("Run").click();
    step_until(&mut h, "the VLM session to open", |s| {
        s.vlm.is_none()
            && s.run
                .as_ref()
                .is_some_and(|r| r.rollouts.get(&0).is_some_and(|v| v.len() == 4))
    });
    assert_eq!(h.state().tab, Tab::Rollouts);
    let r = h.state().run.as_ref().expect("run");
    assert!(r.dir.join("policy.json").is_file());
    assert!(r.rollouts[&0].iter().all(|t| t.transcript.len() >= 3));
}
