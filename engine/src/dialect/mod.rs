//! Dialects: the zoom tool as each released model was trained to call it.
//!
//! A dialect fixes three things: how a call is written (the tags and the
//! JSON inside them), which frame its box is in, and the prompt the model
//! expects. Every box is mapped to original-image pixels before it is
//! scored ([`read`]); a crop of a crop composes. The one tool-call scanner
//! ([`crate::score::text::scan_calls`]) reads every dialect.
//!
//! | dialect | call | box frame |
//! |---|---|---|
//! | `virl` | `<tool_call>` `image_zoom_in_tool` `bbox_2d` | pixels of the image as shown (`shown`, else original) |
//! | `deepeyes` | the same | pixels of the image as shown (`shown`, else original); DeepEyes' own prompt |
//! | `chain-of-focus` | the same | pixels of the smart-resized image (factor 28, Qwen2.5-VL's pixel bounds) |
//! | `mini-o3` | `<grounding>{"bbox_2d", "source"}</grounding>` | 0–1 of `original_image` or `observation_i` |
//! | `pixel-reasoner` | `<tool_call>` `crop_image_normalized` `bbox_2d`, `target_image` | 0–1 of image `k` (1 = the original; pixels accepted); answer in `\boxed{}` |
//! | `qwen3-vl` | `<tool_call>` `image_zoom_in_tool` `bbox_2d` | 0–1000 of the image |

pub mod prompts;
pub mod read;

pub use read::{DialectCall, DialectOutput, MappedZoom, map_calls, parse_output};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// A released model's tool-call dialect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    /// Ours: DeepEyes' call syntax, boxes in the shown frame (the default).
    #[default]
    Virl,
    /// DeepEyes-7B (`Visual-Agent/DeepEyes`).
    Deepeyes,
    /// Chain-of-Focus.
    ChainOfFocus,
    /// Mini-o3-7B (`Mini-o3/Mini-o3`).
    MiniO3,
    /// Pixel-Reasoner (`TIGER-AI-Lab/Pixel-Reasoner`).
    PixelReasoner,
    /// Qwen3-VL's native grounding (0–1000).
    Qwen3Vl,
}

/// The frame a dialect writes box coordinates in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoxFrame {
    /// Pixels of the image as the model was shown it (the `shown` size when
    /// known, else the original).
    Shown,
    /// Pixels of the image smart-resized with Qwen2.5-VL's processor
    /// defaults (the `shown` size when known).
    SmartResized,
    /// 0–1 of the image the call names.
    Unit,
    /// 0–1000 of the image.
    Norm1000,
}

impl Dialect {
    /// Every dialect, in the order `--help` lists them.
    pub const ALL: [Dialect; 6] = [
        Dialect::Virl,
        Dialect::Deepeyes,
        Dialect::ChainOfFocus,
        Dialect::MiniO3,
        Dialect::PixelReasoner,
        Dialect::Qwen3Vl,
    ];

    /// The name `--dialect` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Virl => "virl",
            Self::Deepeyes => "deepeyes",
            Self::ChainOfFocus => "chain-of-focus",
            Self::MiniO3 => "mini-o3",
            Self::PixelReasoner => "pixel-reasoner",
            Self::Qwen3Vl => "qwen3-vl",
        }
    }

    /// The frame boxes are written in.
    pub fn frame(self) -> BoxFrame {
        match self {
            Self::Virl | Self::Deepeyes => BoxFrame::Shown,
            Self::ChainOfFocus => BoxFrame::SmartResized,
            Self::MiniO3 | Self::PixelReasoner => BoxFrame::Unit,
            Self::Qwen3Vl => BoxFrame::Norm1000,
        }
    }

    /// The tags a call is written between.
    pub fn call_tags(self) -> (&'static str, &'static str) {
        match self {
            Self::MiniO3 => ("<grounding>", "</grounding>"),
            _ => ("<tool_call>", "</tool_call>"),
        }
    }

    /// The tool's name inside `<tool_call>` (none for `<grounding>`).
    pub fn tool_name(self) -> Option<&'static str> {
        match self {
            Self::MiniO3 => None,
            Self::PixelReasoner => Some("crop_image_normalized"),
            _ => Some(crate::score::ZOOM_TOOL),
        }
    }

    /// Whether the final answer is written in `\boxed{}` instead of
    /// `<answer>…</answer>`.
    pub fn boxed_answer(self) -> bool {
        self == Self::PixelReasoner
    }

    /// Whether a call may crop an earlier crop.
    pub fn crops_crops(self) -> bool {
        matches!(self, Self::MiniO3 | Self::PixelReasoner)
    }

    /// The dialect a checkpoint folder was most likely trained in, from its
    /// folder name or `config.json`'s `_name_or_path` (`DeepEyes-7B`,
    /// `Mini-o3-7B-v1`, `PixelReasoner-RL-v1`, `chain-of-focus`, any
    /// Qwen3-VL): `None` when nothing says.
    pub fn detect(dir: &Path) -> Option<Self> {
        let mut hay = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if let Ok(text) = std::fs::read_to_string(dir.join("config.json"))
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
        {
            for key in ["_name_or_path", "name_or_path"] {
                if let Some(s) = v.get(key).and_then(|x| x.as_str()) {
                    hay.push(' ');
                    hay.push_str(&s.to_lowercase());
                }
            }
            if v.get("model_type").and_then(|x| x.as_str()) == Some("qwen3_vl")
                && !hay.contains("virl")
            {
                return Some(Self::Qwen3Vl);
            }
        }
        let hay = hay.replace(['_', ' '], "-");
        [
            ("deepeyes", Self::Deepeyes),
            ("mini-o3", Self::MiniO3),
            ("minio3", Self::MiniO3),
            ("pixelreasoner", Self::PixelReasoner),
            ("pixel-reasoner", Self::PixelReasoner),
            ("chain-of-focus", Self::ChainOfFocus),
            ("virl", Self::Virl),
        ]
        .into_iter()
        .find(|(k, _)| hay.contains(k))
        .map(|(_, d)| d)
    }
}

impl FromStr for Dialect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let key = s.trim().to_ascii_lowercase().replace('_', "-");
        Self::ALL
            .into_iter()
            .find(|d| d.name() == key)
            .or(match key.as_str() {
                "cof" => Some(Self::ChainOfFocus),
                "minio3" => Some(Self::MiniO3),
                "pixelreasoner" => Some(Self::PixelReasoner),
                "qwen3" => Some(Self::Qwen3Vl),
                _ => None,
            })
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|d| d.name()).collect();
                format!("unknown dialect `{s}` (expected {})", names.join(", "))
            })
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
