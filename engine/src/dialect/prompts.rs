//! One prompt per dialect: the system prompt and the user turn a model of
//! that dialect was trained with. The studio's rollouts and `virl export
//! --format verl` both take them from here, so a model sees the same prompt
//! in both.
//!
//! In verl the chat template renders the tool's schema into the system turn
//! (Qwen2.5-VL's template appends the `# Tools` block); the studio renders
//! the same block itself ([`tools_block`]). A prompt is therefore kept as
//! its `instruction` and its tool schema, and joined by [`Prompt::system`].
//!
//! Sources: DeepEyes' `SYSTEM_PROMPT_V2` and `USER_PROMPT_V2`
//! (`verl/workers/agent/envs/mm_process_engine/prompt.py`, which carries
//! its own tools block); Mini-o3's `TOOL_CROP_SYSTEM_PROMPT`
//! (`verl/trainer/constants.py`). Chain-of-Focus, Pixel-Reasoner and
//! Qwen3-VL are given our instruction in their call syntax: their own
//! prompt texts were not at hand when this was written.

use super::Dialect;

/// The zoom tool's schema as our verl tool declares it
/// (`python/virl/verl/tool.py` reads it from here).
pub const VIRL_TOOL_SCHEMA: &str = r#"{"type": "function", "function": {"name": "image_zoom_in_tool", "description": "Zoom in on a region of the image: returns that region at full resolution. bbox_2d is [x1, y1, x2, y2] in pixels of the image as you see it.", "parameters": {"type": "object", "properties": {"bbox_2d": {"type": "array", "items": {"type": "number"}, "description": "[x1, y1, x2, y2]: left, top, right, bottom, in pixels"}, "label": {"type": "string", "description": "what you are looking for (optional)"}}, "required": ["bbox_2d"]}}}"#;

const QWEN3_TOOL_SCHEMA: &str = r#"{"type": "function", "function": {"name": "image_zoom_in_tool", "description": "Zoom in on a region of the image: returns that region at full resolution. bbox_2d is [x1, y1, x2, y2] in relative coordinates from 0 to 1000.", "parameters": {"type": "object", "properties": {"bbox_2d": {"type": "array", "items": {"type": "number"}, "description": "[x1, y1, x2, y2]: left, top, right, bottom, 0 to 1000"}, "label": {"type": "string", "description": "what you are looking for (optional)"}}, "required": ["bbox_2d"]}}}"#;

const PIXEL_REASONER_TOOL_SCHEMA: &str = r#"{"type": "function", "function": {"name": "crop_image_normalized", "description": "Zoom in on a region of an image in the conversation: returns that region. bbox_2d is [x1, y1, x2, y2] with coordinates from 0 to 1 of the target image; target_image is the image's number (1 is the original, 2 the first crop, …).", "parameters": {"type": "object", "properties": {"bbox_2d": {"type": "array", "items": {"type": "number"}, "description": "[x1, y1, x2, y2], 0 to 1"}, "target_image": {"type": "integer", "description": "which image to crop, from 1"}}, "required": ["bbox_2d", "target_image"]}}}"#;

/// Our instruction (the system turn before the tools block).
pub const VIRL_INSTRUCTION: &str = "You answer questions about an image. You can look closer: call image_zoom_in_tool with bbox_2d = [x1, y1, x2, y2], a region in pixels of the image as you see it, and you get that region at full resolution. Zoom as often as you need, one call per turn, inside <tool_call></tool_call>. When you know, give the final answer inside <answer></answer>.";

const DEEPEYES_SYSTEM: &str = r#"You are a helpful assistant.

# Tools
You may call one or more functions to assist with the user query.
You are provided with function signatures within <tools></tools> XML tags:
<tools>
{"type":"function","function":{"name":"image_zoom_in_tool","description":"Zoom in on a specific region of an image by cropping it based on a bounding box (bbox) and an optional object label.","parameters":{"type":"object","properties":{"bbox_2d":{"type":"array","items":{"type":"number"},"minItems":4,"maxItems":4,"description":"The bounding box of the region to zoom in, as [x1, y1, x2, y2], where (x1, y1) is the top-left corner and (x2, y2) is the bottom-right corner."},"label":{"type":"string","description":"The name or label of the object in the specified bounding box (optional)."}},"required":["bbox"]}}}
</tools>

# How to call a tool
Return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>

**Example**:  
<tool_call>  
{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [10, 20, 100, 200], "label": "the apple on the desk"}}  
</tool_call>"#;

const DEEPEYES_USER: &str = "\nThink first, call **image_zoom_in_tool** if needed, then answer. Format strictly as:  <think>...</think>  <tool_call>...</tool_call> (if tools needed)  <answer>...</answer> ";

const MINI_O3_SYSTEM: &str = "You are a helpful assistant. Answer the user's question based on the image provided. Output your thinking process within the <think> and </think> tags. Whenever you find anything unclear, you can zoom in a specific region in the given image to see more clearly by outputing <grounding>{\"bbox_2d\": [x0, y0, x1, y1], \"source\": \"original_image\"}</grounding>, where (x0, y0) and (x1, y1) are the top-left and bottom-right coordinates of the region that you want to zoom in, respectively (suppose the width and height of the image are 1.0), and 'source' refers to the image that you zoom in and could be either 'original_image' or 'observation_i'. Once the final answer is confirmed, put it within <answer> and </answer>.";

const COF_INSTRUCTION: &str = "You answer questions about an image. If a detail is too small to see, call image_zoom_in_tool with bbox_2d = [x1, y1, x2, y2] in pixels of the image as you see it, inside <tool_call></tool_call>; the region comes back enlarged. When you know, give the final answer inside <answer></answer>.";

const PIXEL_REASONER_INSTRUCTION: &str = "You answer questions about an image. You can look closer: call crop_image_normalized with bbox_2d = [x1, y1, x2, y2] from 0 to 1 of the image numbered target_image (1 is the original, 2 the first crop, and so on), inside <tool_call></tool_call>. Put the final answer in \\boxed{}.";

const QWEN3_INSTRUCTION: &str = "You answer questions about an image. You can look closer: call image_zoom_in_tool with bbox_2d = [x1, y1, x2, y2] in relative coordinates from 0 to 1000, inside <tool_call></tool_call>, and you get that region at full resolution. When you know, give the final answer inside <answer></answer>.";

/// A dialect's prompt for one question.
#[derive(Clone, Debug, PartialEq)]
pub struct Prompt {
    /// The system turn's text before any tools block.
    pub instruction: String,
    /// The tool schema (JSON) a chat template renders after it; `None` when
    /// the instruction declares the tool itself (DeepEyes, Mini-o3).
    pub tool_schema: Option<String>,
    /// The user turn's text after the image.
    pub user: String,
}

impl Prompt {
    /// The whole system turn as Qwen's chat template writes it: the
    /// instruction and the tools block.
    pub fn system(&self) -> String {
        match &self.tool_schema {
            Some(s) => format!("{}\n\n{}", self.instruction, tools_block(&[s.as_str()])),
            None => self.instruction.clone(),
        }
    }
}

/// The `# Tools` block Qwen2.5-VL's and Qwen3-VL's chat templates append to
/// the system turn for these tool schemas (each one JSON line).
pub fn tools_block(schemas: &[&str]) -> String {
    let mut s = String::from(
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>",
    );
    for t in schemas {
        s.push('\n');
        s.push_str(t);
    }
    s.push_str("\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>");
    s
}

/// A question with its options, as every dialect's user turn writes it.
pub fn question_text(question: &str, options: &[String]) -> String {
    let mut q = question.to_string();
    if !options.is_empty() {
        q.push_str("\nOptions:");
        for (i, o) in options.iter().enumerate() {
            let letter = char::from(b'A' + (i % 26) as u8);
            q.push_str(&format!("\n({letter}) {o}"));
        }
    }
    q
}

/// The prompt of `dialect` for a question (with its options) about an
/// image.
pub fn prompt(dialect: Dialect, question: &str, options: &[String]) -> Prompt {
    let q = question_text(question, options);
    let (instruction, schema, user) = match dialect {
        Dialect::Virl => (VIRL_INSTRUCTION, Some(VIRL_TOOL_SCHEMA), q),
        Dialect::Deepeyes => (DEEPEYES_SYSTEM, None, format!("{q}{DEEPEYES_USER}")),
        Dialect::ChainOfFocus => (COF_INSTRUCTION, Some(VIRL_TOOL_SCHEMA), q),
        Dialect::MiniO3 => (MINI_O3_SYSTEM, None, q),
        Dialect::PixelReasoner => (
            PIXEL_REASONER_INSTRUCTION,
            Some(PIXEL_REASONER_TOOL_SCHEMA),
            q,
        ),
        Dialect::Qwen3Vl => (QWEN3_INSTRUCTION, Some(QWEN3_TOOL_SCHEMA), q),
    };
    Prompt {
        instruction: instruction.to_string(),
        tool_schema: schema.map(str::to_string),
        user,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_is_json_naming_the_dialects_tool() {
        for d in Dialect::ALL {
            let p = prompt(d, "What?", &["a".into(), "b".into()]);
            assert!(p.user.starts_with("What?\nOptions:\n(A) a\n(B) b"), "{d}");
            if let Some(s) = &p.tool_schema {
                let v: serde_json::Value = serde_json::from_str(s).expect("schema is JSON");
                assert_eq!(
                    v["function"]["name"].as_str(),
                    d.tool_name(),
                    "{d}: schema and scanner name the same tool"
                );
                assert!(p.system().contains("<tools>\n{"), "{d}");
            }
            let (open, _) = d.call_tags();
            assert!(
                p.system().contains(open),
                "{d}: the prompt shows the call tag"
            );
        }
    }
}
