//! The Qwen3-VL policy end to end on a tiny random checkpoint written with
//! the real tensor names (`tiny::write_tiny_model`): loading and its
//! errors, the multi-turn zoom protocol driven by a scripted token stream,
//! the crop mapping, sampling, and re-evaluated log-probabilities.

use candle_core::Device;
use image::RgbImage;
use std::collections::VecDeque;
use std::path::Path;
use virl_engine::dataset::{Rationale, Sample};
use virl_engine::geometry::BBox;
use virl_engine::policy::qwen_vl::protocol::{CoordFrame, RolloutConfig, TurnOutcome, read_turn};
use virl_engine::policy::qwen_vl::rollout::rollout_group;
use virl_engine::policy::qwen_vl::sampling::{Sampler, TokenChooser, log_softmax};
use virl_engine::policy::qwen_vl::tiny::{TinySpec, write_tiny_model};
use virl_engine::policy::qwen_vl::{Precision, QwenError, QwenVl};
use virl_engine::rng::SplitMix64;

fn tiny_model(dir: &Path) -> QwenVl {
    write_tiny_model(dir, &TinySpec::tiny(), 7).expect("write");
    QwenVl::load(dir, Precision::F32, &Device::Cpu).expect("load")
}

fn sample(w: u32, h: u32) -> (Sample, RgbImage) {
    let s = Sample {
        id: "s1".into(),
        image: "s1.png".into(),
        width: w,
        height: h,
        question: "What digit is on the red sign?".into(),
        answer: "7".into(),
        options: Vec::new(),
        rationales: vec![Rationale {
            bbox: BBox::new(100.0, 60.0, 160.0, 120.0),
            label: String::new(),
        }],
        meta: None,
        extra: Default::default(),
    };
    let img = RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    (s, img)
}

/// Plays fixed turns; the log-probability reported is the model's own
/// (temperature 1) so that re-evaluation can be checked.
struct Scripted {
    tokens: VecDeque<u32>,
}

impl TokenChooser for Scripted {
    fn choose(&mut self, logits: &[f32]) -> (u32, f32) {
        let id = self.tokens.pop_front().expect("script ran out");
        (id, log_softmax(logits, 1.0)[id as usize] as f32)
    }
}

fn script(m: &QwenVl, turns: &[&str]) -> Scripted {
    let mut tokens = VecDeque::new();
    for t in turns {
        tokens.extend(m.tokenizer.encode(t).expect("encode"));
        tokens.push_back(m.tokenizer.im_end);
    }
    Scripted { tokens }
}

fn cfg() -> RolloutConfig {
    RolloutConfig {
        max_pixels: 320 * 256,
        crop_max_pixels: 64 * 64,
        ..Default::default()
    }
}

#[test]
fn multi_turn_protocol_with_a_scripted_stream() {
    let dir = tempfile::tempdir().expect("tmp");
    let m = tiny_model(dir.path());
    let (s, img) = sample(640, 512);
    let turns = [
        r#"<think>the sign is on the left</think><tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [50, 30, 80, 60]}}</tool_call>"#,
        "I am not sure.",
        "<think>it reads 7</think><answer>7</answer>",
    ];
    let mut sc = Some(script(&m, &turns));
    let out = rollout_group(&m, &s, &img, &cfg(), 1, &mut |_| {
        Box::new(sc.take().expect("once"))
    })
    .expect("rollout");
    let t = &out[0];
    // The image was shown at 320x256 (the pixel budget), so the box maps x2.
    assert_eq!(t.images[0].shown, (320, 256));
    assert_eq!(
        t.record.proposed().collect::<Vec<_>>(),
        vec![BBox::new(100.0, 60.0, 160.0, 120.0)]
    );
    assert_eq!(
        t.record.executed().collect::<Vec<_>>(),
        t.record.proposed().collect::<Vec<_>>()
    );
    // The crop (60x60 original pixels) was appended as the second image.
    assert_eq!(t.images.len(), 2);
    assert_eq!(t.images[1].original, (60, 60));
    assert_eq!(t.record.answer.as_deref(), Some("7"));
    assert!(!t.record.truncated);
    assert_eq!(
        t.record.format_errors.len(),
        1,
        "{:?}",
        t.record.format_errors
    );
    assert!(t.record.format_errors[0].contains("neither a tool call nor an <answer>"));
    let roles: Vec<&str> = t
        .record
        .transcript
        .iter()
        .map(|x| x.role.as_str())
        .collect();
    assert_eq!(
        roles,
        [
            "system",
            "user",
            "assistant",
            "tool",
            "assistant",
            "tool",
            "assistant"
        ]
    );
    assert_eq!(t.record.transcript[2].text, turns[0]);
    assert_eq!(
        t.record.transcript[2].zoom,
        Some(t.record.actions[0].proposed)
    );
    assert!(t.record.transcript[4].error.is_some());
    assert!(
        t.record.transcript[5]
            .text
            .starts_with("Error: neither a tool call")
    );
    // Every generated token, with its position, is in the sequence.
    let (ids, mask) = t.token_mask(m.tokenizer.image_pad);
    let generated: Vec<u32> = ids
        .iter()
        .zip(&mask)
        .filter(|(_, g)| **g)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(
        generated,
        t.generated.iter().map(|g| g.0).collect::<Vec<_>>()
    );
    assert_eq!(
        ids.iter().filter(|&&i| i == m.tokenizer.image_pad).count(),
        t.images.iter().map(|i| i.tokens()).sum::<usize>()
    );
    // Log-probabilities taken token by token on the KV cache equal the ones
    // of one teacher-forced pass over the whole conversation.
    let re = m.sequence_logprobs(t, 1.0).expect("re-evaluate");
    assert_eq!(re.len(), t.generated.len());
    for (a, (_, b)) in re.iter().zip(&t.generated) {
        assert!((a - b).abs() < 1e-3, "{a} vs {b}");
    }
}

#[test]
fn boxes_in_the_0_1000_frame_and_outside_the_image() {
    let dir = tempfile::tempdir().expect("tmp");
    let m = tiny_model(dir.path());
    let (s, img) = sample(400, 300);
    let c = RolloutConfig {
        coords: CoordFrame::Norm1000,
        max_rounds: 2,
        ..cfg()
    };
    let turns = [
        r#"<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [250, 500, 500, 1000]}}</tool_call>"#,
        r#"<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [990, 990, 1200, 1100]}}</tool_call>"#,
    ];
    let mut sc = Some(script(&m, &turns));
    let t = &rollout_group(&m, &s, &img, &c, 1, &mut |_| {
        Box::new(sc.take().expect("once"))
    })
    .expect("rollout")[0];
    assert_eq!(
        t.record.actions[0].proposed,
        BBox::new(100.0, 150.0, 200.0, 300.0)
    );
    assert_eq!(t.record.actions[0].executed, t.record.actions[0].proposed);
    // The second box leaves the image: proposed as written (the rewards
    // score it), executed clipped and grown to the 8 px minimum side.
    assert_eq!(
        t.record.actions[1].proposed,
        BBox::new(396.0, 297.0, 480.0, 330.0)
    );
    let e = t.record.actions[1].executed;
    assert!(
        e.x2 <= 400.0 && e.y2 <= 300.0 && e.width() >= 8.0 && e.height() >= 8.0,
        "{e:?}"
    );
    assert!(t.record.truncated, "two tool turns at max_rounds 2");
    assert_eq!(t.record.answer, None);
}

#[test]
fn sampling_is_seeded_and_turns_are_cut_at_max_turn_tokens() {
    let dir = tempfile::tempdir().expect("tmp");
    let m = tiny_model(dir.path());
    let (s, img) = sample(128, 96);
    let c = RolloutConfig {
        max_turn_tokens: 12,
        max_rounds: 2,
        temperature: 1.0,
        top_p: 0.9,
        ..cfg()
    };
    let run = |seed: u64| {
        rollout_group(&m, &s, &img, &c, 2, &mut |i| {
            Box::new(Sampler {
                temperature: 1.0,
                top_p: 0.9,
                rng: SplitMix64::for_item(seed, i as u64),
            })
        })
        .expect("rollout")
    };
    let a = run(1);
    let b = run(1);
    let c2 = run(2);
    let toks = |v: &[virl_engine::policy::qwen_vl::transcript::VlmTrajectory]| {
        v.iter()
            .map(|t| t.generated.iter().map(|g| g.0).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    assert_eq!(toks(&a), toks(&b), "same seed, same rollouts");
    assert_ne!(toks(&a), toks(&c2), "another seed, other rollouts");
    assert_ne!(toks(&a)[0], toks(&a)[1], "the group's rollouts differ");
    // A random model never closes a turn in 12 tokens: each turn is cut
    // off, recorded as a format error, and the episode ends at max_rounds.
    for t in &a {
        assert!(t.generated.len() <= 24);
        assert!(!t.record.format_errors.is_empty());
        // The forked caches did not disturb each other: re-evaluation agrees.
        let re = m.sequence_logprobs(t, 1.0).expect("re-evaluate");
        for (x, (_, y)) in re.iter().zip(&t.generated) {
            assert!((x - y).abs() < 1e-3);
        }
    }
    // Decoding the group one rollout at a time gives the same rollouts as
    // the batched decode steps.
    let one = RolloutConfig {
        max_batch: 1,
        ..c.clone()
    };
    let serial = rollout_group(&m, &s, &img, &one, 2, &mut |i| {
        Box::new(Sampler {
            temperature: 1.0,
            top_p: 0.9,
            rng: SplitMix64::for_item(1, i as u64),
        })
    })
    .expect("rollout");
    assert_eq!(toks(&serial), toks(&a));
    // Greedy picks the arg-max.
    let mut g = Sampler {
        temperature: 0.0,
        top_p: 1.0,
        rng: SplitMix64::new(0),
    };
    assert_eq!(g.choose(&[0.1, 2.0, -1.0]).0, 1);
}

#[test]
fn turn_reader() {
    let ok = r#"<think>x</think><tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2, 3, 4]}}</tool_call>"#;
    assert_eq!(
        read_turn(ok),
        (TurnOutcome::Zoom(BBox::new(1.0, 2.0, 3.0, 4.0)), None)
    );
    assert_eq!(
        read_turn("<answer> B </answer>").0,
        TurnOutcome::Answer("B".into())
    );
    let (o, e) = read_turn(&format!("{ok}<answer>3</answer>"));
    assert_eq!(o, TurnOutcome::Answer("3".into()));
    assert!(e.is_some_and(|e| e.contains("same turn")));
    for bad in [
        r#"<tool_call>{"name": "crop", "arguments": {"bbox_2d": [1, 2, 3, 4]}}</tool_call>"#,
        r#"<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [5, 2, 3, 4]}}</tool_call>"#,
        r#"<tool_call>{"name": "image_zoom_in_tool""#,
        "<answer>7",
        "just text",
    ] {
        assert!(
            matches!(read_turn(bad).0, TurnOutcome::Malformed(_)),
            "{bad}"
        );
    }
}

#[test]
fn loading_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    write_tiny_model(d, &TinySpec::tiny(), 1).expect("write");
    let err = |d: &Path| match QwenVl::load(d, Precision::F32, &Device::Cpu) {
        Ok(_) => panic!("loaded"),
        Err(e) => e,
    };
    // Missing tokenizer.
    std::fs::rename(d.join("tokenizer.json"), d.join("t.bak")).expect("mv");
    let e = err(d);
    assert!(
        matches!(e, QwenError::Missing { .. }) && e.to_string().contains("tokenizer.json"),
        "{e}"
    );
    std::fs::rename(d.join("t.bak"), d.join("tokenizer.json")).expect("mv");
    // A config whose image token is not the tokenizer's.
    let cfg = std::fs::read_to_string(d.join("config.json")).expect("read");
    std::fs::write(
        d.join("config.json"),
        cfg.replace("\"image_token_id\": 261", "\"image_token_id\": 7"),
    )
    .expect("write");
    let e = err(d);
    assert!(
        e.to_string().contains("tokenizer.json") && e.to_string().contains("<|image_pad|>"),
        "{e}"
    );
    // Weights of another shape.
    std::fs::write(
        d.join("config.json"),
        cfg.replace("\"intermediate_size\": 128", "\"intermediate_size\": 96"),
    )
    .expect("write");
    let e = err(d);
    assert!(
        e.to_string().contains("model.safetensors") && e.to_string().contains("mlp"),
        "{e}"
    );
    // A truncated weights file.
    std::fs::write(d.join("config.json"), &cfg).expect("write");
    let w = std::fs::read(d.join("model.safetensors")).expect("read");
    std::fs::write(d.join("model.safetensors"), &w[..w.len() / 2]).expect("write");
    let e = err(d);
    assert!(e.to_string().contains("model.safetensors"), "{e}");
    // Not a Qwen3-VL config.
    std::fs::write(d.join("config.json"), r#"{"model_type": "llama"}"#).expect("write");
    let e = err(d);
    assert!(
        e.to_string().contains("config.json") && e.to_string().contains("qwen3_vl"),
        "{e}"
    );
    // No folder.
    let e = err(&d.join("nope"));
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn sharded_weights_load_through_the_index() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    write_tiny_model(d, &TinySpec::tiny(), 3).expect("write");
    let one = QwenVl::load(d, Precision::F32, &Device::Cpu).expect("load");
    // Split into two shards with an index, as large checkpoints ship.
    let all =
        candle_core::safetensors::load(d.join("model.safetensors"), &Device::Cpu).expect("st");
    let (mut a, mut b) = (
        std::collections::HashMap::new(),
        std::collections::HashMap::new(),
    );
    let mut map = serde_json::Map::new();
    for (k, v) in all {
        let shard = if k.contains("visual") {
            "model-00001-of-00002.safetensors"
        } else {
            "model-00002-of-00002.safetensors"
        };
        map.insert(k.clone(), serde_json::json!(shard));
        if k.contains("visual") {
            a.insert(k, v);
        } else {
            b.insert(k, v);
        }
    }
    candle_core::safetensors::save(&a, d.join("model-00001-of-00002.safetensors")).expect("save");
    candle_core::safetensors::save(&b, d.join("model-00002-of-00002.safetensors")).expect("save");
    std::fs::remove_file(d.join("model.safetensors")).expect("rm");
    std::fs::write(
        d.join("model.safetensors.index.json"),
        serde_json::json!({"metadata": {}, "weight_map": map}).to_string(),
    )
    .expect("index");
    let two = QwenVl::load(d, Precision::F32, &Device::Cpu).expect("sharded load");
    let (s, img) = sample(64, 64);
    let greedy = |m: &QwenVl| {
        let c = RolloutConfig {
            max_turn_tokens: 5,
            max_rounds: 1,
            temperature: 0.0,
            ..cfg()
        };
        rollout_group(m, &s, &img, &c, 1, &mut |_| {
            Box::new(Sampler {
                temperature: 0.0,
                top_p: 1.0,
                rng: SplitMix64::new(0),
            })
        })
        .expect("rollout")[0]
            .generated
            .clone()
    };
    assert_eq!(greedy(&one), greedy(&two));
    // A shard the index names but that is gone.
    std::fs::remove_file(d.join("model-00002-of-00002.safetensors")).expect("rm");
    let e = QwenVl::load(d, Precision::F32, &Device::Cpu)
        .err()
        .expect("error");
    assert!(
        e.to_string().contains("model-00002-of-00002.safetensors"),
        "{e}"
    );
}

#[test]
fn filter_probes_force_the_ground_truth_zoom_or_forbid_zooming() {
    use virl_engine::policy::qwen_vl::protocol::Forced;
    use virl_engine::policy::qwen_vl::rollout::rollout_group_forced;
    let dir = tempfile::tempdir().expect("tmp");
    let m = tiny_model(dir.path());
    let (s, img) = sample(640, 512);
    // Stage 3: the zoom onto the ground truth is made for the model; its
    // first own turn comes after the crop.
    let mut sc = Some(script(&m, &["<answer>7</answer>"]));
    let t = &rollout_group_forced(
        &m,
        &s,
        &img,
        &cfg(),
        1,
        &Forced::Zooms(s.gt_boxes()),
        &mut |_| Box::new(sc.take().expect("once")),
    )
    .expect("rollout")[0];
    assert_eq!(t.record.proposed().collect::<Vec<_>>(), s.gt_boxes());
    assert_eq!(t.images.len(), 2, "the ground-truth crop was shown");
    assert_eq!(t.record.answer.as_deref(), Some("7"));
    assert!(
        t.record.format_errors.is_empty(),
        "{:?}",
        t.record.format_errors
    );
    assert!(
        t.record.transcript[2].text.contains("[50, 30, 80, 60]"),
        "{}",
        t.record.transcript[2].text
    );
    // The forced turn is not the model's: only the answer turn is generated.
    let (_, mask) = t.token_mask(m.tokenizer.image_pad);
    assert_eq!(mask.iter().filter(|g| **g).count(), t.generated.len());
    let re = m.sequence_logprobs(t, 1.0).expect("re-evaluate");
    for (a, (_, b)) in re.iter().zip(&t.generated) {
        assert!((a - b).abs() < 1e-3);
    }
    // Stage 2: no tool is offered, and a call is refused.
    let call = r#"<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 1, 9, 9]}}</tool_call>"#;
    let mut sc = Some(script(&m, &[call, "<answer>3</answer>"]));
    let t = &rollout_group_forced(&m, &s, &img, &cfg(), 1, &Forced::NoZoom, &mut |_| {
        Box::new(sc.take().expect("once"))
    })
    .expect("rollout")[0];
    assert!(
        !t.record.transcript[0].text.contains("image_zoom_in_tool"),
        "no tool in the system prompt"
    );
    assert!(t.record.actions.is_empty() && t.images.len() == 1);
    assert!(
        t.record.format_errors[0].contains("zooming is not available"),
        "{:?}",
        t.record.format_errors
    );
    assert_eq!(t.record.answer.as_deref(), Some("3"));
}

/// A malformed turn before a zoom: the zoom's log-probability is that of the
/// turn that made it (the record says which), not the malformed turn's.
#[test]
fn a_zoom_after_a_malformed_turn_keeps_its_own_turn_and_logp() {
    let dir = tempfile::tempdir().expect("tmp");
    let m = tiny_model(dir.path());
    let (s, img) = sample(640, 512);
    let turns = [
        "I am not sure.",
        r#"<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [50, 30, 80, 60]}}</tool_call>"#,
        "<answer>7</answer>",
    ];
    let mut sc = Some(script(&m, &turns));
    let out = rollout_group(&m, &s, &img, &cfg(), 1, &mut |_| {
        Box::new(sc.take().expect("once"))
    })
    .expect("rollout");
    let r = &out[0].record;
    assert_eq!(r.actions.len(), 1);
    let a = &r.actions[0];
    let turn = a.turn.expect("the zoom's turn");
    assert_eq!(r.transcript[turn].zoom, Some(a.proposed));
    assert_eq!(a.logp, r.transcript[turn].logp);
    // The malformed turn (transcript 2) has a log-probability of its own.
    assert!(r.transcript[2].error.is_some());
    assert_ne!(r.transcript[2].logp, a.logp);
    // The turn logps are the sums of their tokens' sampled log-probabilities.
    let total: f32 = out[0].generated.iter().map(|g| g.1).sum();
    let turns_sum: f32 = r.transcript.iter().filter_map(|t| t.logp).sum();
    assert!((total - turns_sum).abs() < 1e-3, "{total} vs {turns_sum}");
    assert_eq!(r.answer_logp, r.transcript.last().and_then(|t| t.logp));
}
