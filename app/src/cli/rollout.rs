//! `virl rollout` and `virl eval --policy qwen-vl`: a Qwen3-VL checkpoint
//! as the policy, over a dataset folder or the built-in ZoomBench split.

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use virl_engine::config::SessionConfig;
use virl_engine::env::ImageStore;
use virl_engine::metrics::IterationMetrics;
use virl_engine::policy::qwen_vl::protocol::{CoordFrame, RolloutConfig};
use virl_engine::policy::qwen_vl::{Precision, QwenVl};
use virl_engine::policy::{DeviceKind, device};
use virl_engine::trajectory::Trajectory;
use virl_engine::vlm::{self, Throughput, VlmRunConfig};

/// Which policy a command runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyKind {
    /// The built-in ZoomNet of a session.
    #[default]
    Zoomnet,
    /// A local Qwen3-VL checkpoint (`--model DIR`).
    QwenVl,
}

/// The flags every Qwen3-VL command shares.
#[derive(Debug, clap::Args)]
pub struct VlmArgs {
    /// The Qwen3-VL checkpoint folder (config.json, *.safetensors, tokenizer.json).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// A dataset folder, or `zoombench` for the built-in evaluation split.
    #[arg(long, default_value = "zoombench")]
    pub dataset: String,
    /// Samples to run (default: all, or 16 for ZoomBench).
    #[arg(long)]
    pub n: Option<usize>,
    /// f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: Precision,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceKind,
    /// Most tool turns per rollout.
    #[arg(long, default_value_t = 6)]
    pub max_rounds: usize,
    /// Most tokens per assistant turn.
    #[arg(long, default_value_t = 512)]
    pub max_turn_tokens: usize,
    /// Pixel budget of the full image.
    #[arg(long, default_value_t = 512 * 512)]
    pub max_pixels: usize,
    /// Pixel budget of a zoom crop.
    #[arg(long, default_value_t = 512 * 512)]
    pub crop_max_pixels: usize,
    /// The frame of the model's boxes: `shown` (pixels of the image shown) or `norm1000`.
    #[arg(long, default_value = "shown")]
    pub coords: CoordFrame,
}

impl VlmArgs {
    fn rollout(&self, temperature: f64, top_p: f64) -> RolloutConfig {
        RolloutConfig {
            max_rounds: self.max_rounds,
            max_turn_tokens: self.max_turn_tokens,
            temperature,
            top_p,
            max_pixels: self.max_pixels,
            crop_max_pixels: self.crop_max_pixels,
            coords: self.coords,
            ..Default::default()
        }
    }

    fn load(&self) -> Result<QwenVl> {
        let dir = self
            .model
            .as_ref()
            .context("--policy qwen-vl needs --model DIR (a Qwen3-VL checkpoint folder; `virl vlm init --out DIR` writes a random one)")?;
        let dev = device(self.device).map_err(anyhow::Error::msg)?;
        Ok(QwenVl::load(dir, self.dtype, &dev)?)
    }

    fn data(&self) -> Result<(ImageStore, SessionConfig, usize)> {
        let (store, cfg, n) = vlm::open_dataset(&self.dataset).map_err(anyhow::Error::msg)?;
        let len = store.dataset().samples().len();
        Ok((store, cfg, self.n.map_or(n, |k| k.min(len))))
    }
}

/// `virl rollout`.
#[derive(Debug, clap::Args)]
pub struct RolloutArgs {
    /// The policy (only qwen-vl rolls out here; ZoomNet rollouts come from `virl train`).
    #[arg(long, value_enum, default_value = "qwen-vl")]
    policy: PolicyKind,
    #[command(flatten)]
    vlm: VlmArgs,
    /// Rollouts per sample (a GRPO group).
    #[arg(long, default_value_t = 4)]
    group: usize,
    /// Sampling temperature (0: greedy).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Nucleus sampling mass.
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// JSONL file to write: our rollout format (`virl score` reads it) plus the text of every turn.
    #[arg(long)]
    out: PathBuf,
    /// Also write a session folder the studio opens (its Rollouts tab shows the conversations).
    #[arg(long)]
    session: Option<PathBuf>,
}

fn print_summary(m: &IterationMetrics, speed: &Throughput, what: &str) {
    println!(
        "{what}: {} trajectories  Acc_ans {:.3}  Acc_rat {}  coverage {}  zooms {:.2}  max_rounds {:.2}  R_fmt {:.2}",
        m.trajectories,
        m.acc_ans,
        m.acc_rat.map_or("n/a".into(), |v| format!("{v:.3}")),
        m.coverage.map_or("n/a".into(), |v| format!("{v:.3}")),
        m.zooms,
        m.max_rounds_frac,
        m.reward_fmt
    );
    println!(
        "speed: prefill {} tokens at {:.0} tokens/s, decode {} tokens at {:.1} tokens/s",
        speed.prefill_tokens,
        speed.prefill_tps(),
        speed.decode_tokens,
        speed.decode_tps()
    );
}

fn run_vlm(v: &VlmArgs, cfg: VlmRunConfig) -> Result<(Vec<Trajectory>, Throughput, SessionConfig)> {
    let model = v.load()?;
    let (store, mut scfg, n) = v.data()?;
    scfg.reward = cfg.reward.clone();
    let pb = super::progress_bar(n as u64, "rollouts");
    let idx: Vec<usize> = (0..n).collect();
    let (recs, speed) = vlm::run(&model, &store, &idx, &cfg, 0, &mut |d, _| {
        pb.set_position(d as u64)
    })
    .map_err(anyhow::Error::msg)?;
    pb.finish_and_clear();
    Ok((recs, speed, scfg))
}

/// Runs `virl rollout`.
pub fn rollout(a: RolloutArgs) -> Result<()> {
    if a.policy != PolicyKind::QwenVl {
        bail!(
            "`virl rollout` runs a VLM (--policy qwen-vl); ZoomNet's rollouts are written by `virl train` into its session"
        );
    }
    // Refuse an existing session before minutes of rollouts, not after.
    if let Some(dir) = &a.session
        && dir.join("session.toml").exists()
    {
        bail!(
            "{}: a session already exists here; choose another --session",
            dir.join("session.toml").display()
        );
    }
    let cfg = VlmRunConfig {
        rollout: a.vlm.rollout(a.temperature, a.top_p),
        group: a.group,
        seed: a.seed,
        reward: Default::default(),
    };
    let (recs, speed, scfg) = run_vlm(&a.vlm, cfg)?;
    let mut text = String::new();
    for r in &recs {
        text.push_str(&serde_json::to_string(r).unwrap_or_default());
        text.push('\n');
    }
    let mut f = std::fs::File::create(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    if let Some(dir) = &a.session {
        vlm::write_session(
            dir,
            &scfg,
            &recs,
            a.vlm.model.as_deref().unwrap_or(Path::new("")),
        )
        .map_err(anyhow::Error::msg)?;
        println!(
            "session: {} (open it with `virl --open {}`)",
            dir.display(),
            dir.display()
        );
    }
    print_summary(
        &vlm::metrics(&recs, 0),
        &speed,
        &format!("wrote {}", a.out.display()),
    );
    Ok(())
}

/// Runs `virl eval --policy qwen-vl`: greedy, one rollout per sample.
pub fn eval(v: &VlmArgs) -> Result<()> {
    let cfg = VlmRunConfig {
        rollout: v.rollout(0.0, 1.0),
        group: 1,
        seed: 0,
        reward: Default::default(),
    };
    let (recs, speed, _) = run_vlm(v, cfg)?;
    let model = v
        .model
        .as_deref()
        .unwrap_or(Path::new(""))
        .display()
        .to_string();
    print_summary(
        &vlm::metrics(&recs, 0),
        &speed,
        &format!("eval of {model} on {} (greedy)", v.dataset),
    );
    Ok(())
}
