//! Each dialect: a transcript written the way that project's code writes
//! it, parsed, mapped to original pixels and checked against boxes worked
//! out by hand. The image is 2000 × 1000 pixels throughout.

use virl_engine::dialect::{Dialect, map_calls, parse_output};
use virl_engine::geometry::BBox;

const SIZE: (f64, f64) = (2000.0, 1000.0);

fn close(a: BBox, b: BBox) {
    let d = a
        .to_array()
        .iter()
        .zip(b.to_array())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(d < 1e-9, "{a:?} != {b:?}");
}

fn mapped(d: Dialect, text: &str, shown: Option<(f64, f64)>) -> Vec<(BBox, BBox)> {
    let p = parse_output(d, text);
    assert!(p.errors.is_empty(), "{d}: {:?}", p.errors);
    let (z, problems) = map_calls(d, &p.calls, SIZE, shown).expect("frame");
    assert!(problems.is_empty(), "{d}: {problems:?}");
    z.into_iter().map(|z| (z.proposed, z.executed)).collect()
}

#[test]
fn deepeyes_boxes_are_pixels_of_the_shown_image() {
    // DeepEyes' assistant turns (verl/workers/agent/envs/mm_process_engine:
    // USER_PROMPT_V2's format), the tool response between them as its env
    // writes it, and the final answer.
    let text = "<think>The sign is small; zoom in.</think>  <tool_call>\n{\"name\": \"image_zoom_in_tool\", \"arguments\": {\"bbox_2d\": [100, 50, 300, 150], \"label\": \"the sign\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response><|vision_start|><|image_pad|><|vision_end|></tool_response><|im_end|>\n<|im_start|>assistant\n<think>It reads STOP.</think>  <answer>STOP</answer>";
    let p = parse_output(Dialect::Deepeyes, text);
    assert_eq!(p.answer.as_deref(), Some("STOP"));
    // Shown at 1000 x 500: every coordinate doubles.
    let z = mapped(Dialect::Deepeyes, text, Some((1000.0, 500.0)));
    close(z[0].0, BBox::new(200.0, 100.0, 600.0, 300.0));
    // No shown size: the box is in original pixels.
    let z = mapped(Dialect::Deepeyes, text, None);
    close(z[0].0, BBox::new(100.0, 50.0, 300.0, 150.0));
}

#[test]
fn chain_of_focus_boxes_are_pixels_of_the_smart_resized_image() {
    // DeepEyes' tool and <answer> (Chain-of-Focus eval/vstar/vllm_inference.py).
    let text = "<tool_call>{\"name\": \"image_zoom_in_tool\", \"arguments\": {\"bbox_2d\": [14, 14, 28, 28]}}</tool_call><answer>B</answer>";
    // smart_resize(1000, 2000, 28, 3136, 12845056) = (1008, 1988): x scales
    // by 2000/1988, y by 1000/1008.
    let z = mapped(Dialect::ChainOfFocus, text, None);
    let (sx, sy) = (2000.0 / 1988.0, 1000.0 / 1008.0);
    close(
        z[0].0,
        BBox::new(14.0 * sx, 14.0 * sy, 28.0 * sx, 28.0 * sy),
    );
}

#[test]
fn mini_o3_boxes_are_fractions_of_the_image_they_name_and_crops_compose() {
    // Mini-o3's grounding (verl/trainer/constants.py: TOOL_CROP_SYSTEM_PROMPT
    // and TOOL_CALL_CROP_MULTI_TRUN_PROMPT between the turns).
    let text = "<think>Left half first.</think><grounding>{\"bbox_2d\": [0.0, 0.0, 0.5, 0.5], \"source\": \"original_image\"}</grounding><|im_end|>\n<|im_start|>user\nAfter the above Action 1, here is the the zoom-in image (Observation 1):\n<|vision_start|><|image_pad|><|vision_end|>.\nContinue your reasoning process inside <think> and </think>.<|im_end|>\n<|im_start|>assistant\n<think>Closer, in the crop.</think><grounding>{\"bbox_2d\": [0.5, 0.5, 1.0, 1.0], \"source\": \"observation_1\"}</grounding><|im_end|>\n<|im_start|>user\nAfter the above Action 2, here is the the zoom-in image (Observation 2):\n<|vision_start|><|image_pad|><|vision_end|>.<|im_end|>\n<|im_start|>assistant\n<answer>red</answer>";
    let z = mapped(Dialect::MiniO3, text, None);
    // Observation 1 = [0, 0, 1000, 500]; its lower-right quarter:
    close(z[0].0, BBox::new(0.0, 0.0, 1000.0, 500.0));
    close(z[1].0, BBox::new(500.0, 250.0, 1000.0, 500.0));
    // A grounding that names an observation not made yet is a format error.
    let p = parse_output(
        Dialect::MiniO3,
        "<grounding>{\"bbox_2d\": [0, 0, 1, 1], \"source\": \"observation_3\"}</grounding><answer>x</answer>",
    );
    let (z, problems) = map_calls(Dialect::MiniO3, &p.calls, SIZE, None).expect("frame");
    assert!(z.is_empty());
    assert!(problems[0].contains("names image 3"), "{problems:?}");
    // Pixels are not Mini-o3's frame.
    let p = parse_output(
        Dialect::MiniO3,
        "<grounding>{\"bbox_2d\": [10, 10, 50, 50]}</grounding><answer>x</answer>",
    );
    assert!(p.errors[0].contains("not within 0–1"), "{:?}", p.errors);
}

#[test]
fn pixel_reasoner_targets_an_image_pads_its_crops_and_answers_boxed() {
    // Pixel-Reasoner's tool call (crop_image_normalized with target_image,
    // image 1 the original) and \boxed{} answer.
    let text = "<tool_call>\n{\"name\": \"crop_image_normalized\", \"arguments\": {\"bbox_2d\": [0.5, 0.5, 0.75, 1.0], \"target_image\": 1}}\n</tool_call><|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": \"crop_image_normalized\", \"arguments\": {\"bbox_2d\": [0.0, 0.0, 0.5, 0.5], \"target_image\": 2}}\n</tool_call><|im_end|>\n<|im_start|>assistant\nThe answer is \\boxed{42}.";
    let p = parse_output(Dialect::PixelReasoner, text);
    assert_eq!(p.answer.as_deref(), Some("42"));
    let z = mapped(Dialect::PixelReasoner, text, None);
    // Proposed [1000, 500, 1500, 1000]; executed with 0.1 of the image
    // (200 x 100 px) on each side, clipped: [800, 400, 1700, 1000].
    close(z[0].0, BBox::new(1000.0, 500.0, 1500.0, 1000.0));
    close(z[0].1, BBox::new(800.0, 400.0, 1700.0, 1000.0));
    // Image 2 is that executed crop (900 x 600): its upper-left quarter.
    close(z[1].0, BBox::new(800.0, 400.0, 1250.0, 700.0));
    // Pixels of the target image are accepted too.
    let px = "<tool_call>{\"name\": \"crop_image_normalized\", \"arguments\": {\"bbox_2d\": [100, 100, 300, 200], \"target_image\": 1}}</tool_call>\\boxed{1}";
    let z = mapped(Dialect::PixelReasoner, px, None);
    close(z[0].0, BBox::new(100.0, 100.0, 300.0, 200.0));
}

#[test]
fn qwen3_vl_boxes_are_thousandths() {
    let text = "<tool_call>{\"name\": \"image_zoom_in_tool\", \"arguments\": {\"bbox_2d\": [250, 500, 500, 1000]}}</tool_call><answer>cat</answer>";
    let z = mapped(Dialect::Qwen3Vl, text, Some((640.0, 320.0)));
    close(z[0].0, BBox::new(500.0, 500.0, 1000.0, 1000.0));
}

#[test]
fn a_call_in_another_dialects_syntax_is_a_format_error_not_a_zoom() {
    let deepeyes_call = "<tool_call>{\"name\": \"image_zoom_in_tool\", \"arguments\": {\"bbox_2d\": [1, 1, 5, 5]}}</tool_call>\\boxed{1}";
    let p = parse_output(Dialect::PixelReasoner, deepeyes_call);
    assert!(p.calls.is_empty());
    assert!(p.errors[0].contains("unknown tool"), "{:?}", p.errors);
    // Mini-o3 ignores <tool_call>: no zoom, and the answer is still read.
    let p = parse_output(
        Dialect::MiniO3,
        "<tool_call>{}</tool_call><answer>a</answer>",
    );
    assert!(p.calls.is_empty() && p.errors.is_empty());
}

#[test]
fn every_dialect_reads_a_megabyte_of_one_tag() {
    for d in Dialect::ALL {
        let (open, _) = d.call_tags();
        let junk = open.repeat(1_000_000 / open.len());
        let p = parse_output(d, &junk);
        assert!(p.errors.len() <= 22, "{d}: {} errors", p.errors.len());
    }
}

#[test]
fn names_parse_and_checkpoints_are_recognised() {
    for d in Dialect::ALL {
        assert_eq!(d.name().parse::<Dialect>(), Ok(d));
    }
    assert!("o3".parse::<Dialect>().is_err());
    let dir = std::env::temp_dir().join(format!("virl-dialect-{}", std::process::id()));
    for (name, want) in [
        ("DeepEyes-7B", Some(Dialect::Deepeyes)),
        ("Mini-o3-7B-v1", Some(Dialect::MiniO3)),
        ("PixelReasoner-RL-v1", Some(Dialect::PixelReasoner)),
        ("Qwen2.5-VL-7B-Instruct", None),
    ] {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).expect("dir");
        assert_eq!(Dialect::detect(&d), want, "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
