//! `virl audit`: are a model's zooms faithful? Runs a checkpoint in the
//! engine, or scores rollouts made elsewhere (vLLM) in the model's dialect,
//! and writes `audit.json`, `audit.md`, `categories.svg` and a session
//! folder the studio opens (`OUT/session`).

use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use virl_engine::audit::{AuditReport, CATEGORIES, Share, audit, blank, mask_rationale};
use virl_engine::config::SessionConfig;
use virl_engine::dataset::Dataset;
use virl_engine::dialect::Dialect;
use virl_engine::fsutil::atomic_write;
use virl_engine::policy::qwen_vl::protocol::{CoordFrame, RolloutConfig};
use virl_engine::policy::qwen_vl::{Precision, QwenVl};
use virl_engine::policy::{DeviceKind, device};
use virl_engine::score::{RolloutFormat, score_rollouts};
use virl_engine::trajectory::Trajectory;
use virl_engine::vlm::{self, VlmRunConfig};

/// Flags of `virl audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Dataset folder (manifest.jsonl); samples without rationale boxes (HR-Bench) get answers and zoom statistics only.
    #[arg(long)]
    dataset: PathBuf,
    /// A checkpoint folder to run in the engine (Qwen2.5-VL or Qwen3-VL).
    #[arg(long, conflicts_with = "rollouts")]
    model: Option<PathBuf>,
    /// Rollouts made elsewhere: {"sample", "output", "shown"?: [w, h]} lines in --dialect.
    #[arg(long, required_unless_present = "model")]
    rollouts: Option<PathBuf>,
    /// The model's tool-call dialect (deepeyes, chain-of-focus, mini-o3, pixel-reasoner, qwen3-vl, virl); with --model it defaults from the checkpoint's name.
    #[arg(long)]
    dialect: Option<Dialect>,
    /// Rollouts of the same questions with the rationale masked out (the masked control), in --dialect.
    #[arg(long, requires = "rollouts")]
    masked_rollouts: Option<PathBuf>,
    /// Rollouts of the same questions on a blank image (the blank control), in --dialect.
    #[arg(long, requires = "rollouts")]
    blank_rollouts: Option<PathBuf>,
    /// With --model: also ask every question on a blank image.
    #[arg(long)]
    blank: bool,
    /// Samples per question: 1 is greedy; K > 1 samples at temperature 1 and reports pass@K.
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// With --model: audit the first N questions (default: all).
    #[arg(long)]
    n: Option<usize>,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// f32, bf16 or f16 (with --model).
    #[arg(long, default_value = "f32")]
    dtype: Precision,
    /// cpu or cuda (with --model).
    #[arg(long, default_value = "cpu")]
    device: DeviceKind,
    /// Most tool turns per rollout (with --model).
    #[arg(long, default_value_t = 6)]
    max_rounds: usize,
    /// Most tokens per assistant turn (with --model).
    #[arg(long, default_value_t = 512)]
    max_turn_tokens: usize,
    /// Pixel budget of the full image (with --model).
    #[arg(long, default_value_t = 512 * 512)]
    max_pixels: usize,
}

/// The audited run first (`real`), then each control, by name.
type Runs = Vec<(String, Vec<Trajectory>)>;

fn read_scored(
    file: &Path,
    dialect: Dialect,
    ds: &Dataset,
    skipped: &mut Vec<String>,
) -> Result<Vec<Trajectory>> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let r = score_rollouts(
        &bytes,
        RolloutFormat::Text(dialect),
        None,
        ds,
        &Default::default(),
    );
    skipped.extend(
        r.skipped
            .iter()
            .map(|s| format!("{}:{}: {}", file.display(), s.line, s.reason)),
    );
    if r.trajectories.is_empty() {
        bail!(
            "no line of {} could be scored ({} skipped)",
            file.display(),
            r.skipped.len()
        );
    }
    Ok(r.trajectories)
}

fn run_model(a: &AuditArgs, dir: &Path, dialect: Dialect) -> Result<(Runs, SessionConfig)> {
    let coords = match dialect {
        Dialect::Virl => CoordFrame::Shown,
        Dialect::Qwen3Vl => CoordFrame::Norm1000,
        d => bail!(
            "running a checkpoint in the {d} dialect is not supported in the engine yet (its rollouts speak virl and qwen3-vl); generate with vLLM in {d}'s own code and pass --rollouts FILE --dialect {d}"
        ),
    };
    let dev = device(a.device).map_err(anyhow::Error::msg)?;
    let model = QwenVl::load(dir, a.dtype, &dev)?;
    let spec = a.dataset.to_string_lossy().to_string();
    let (store, scfg, n) = vlm::open_dataset(&spec).map_err(anyhow::Error::msg)?;
    let n = a.n.map_or(n, |k| k.min(n));
    let k = a.samples.max(1);
    let cfg = VlmRunConfig {
        rollout: RolloutConfig {
            max_rounds: a.max_rounds,
            max_turn_tokens: a.max_turn_tokens,
            temperature: if k == 1 { 0.0 } else { 1.0 },
            max_pixels: a.max_pixels,
            coords,
            ..Default::default()
        },
        group: k,
        seed: 0,
        reward: Default::default(),
    };
    let all: Vec<usize> = (0..n).collect();
    let boxed: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&i| !store.dataset().samples()[i].rationales.is_empty())
        .collect();
    let mut runs = vec![("real", &all), ("masked", &boxed)];
    if a.blank {
        runs.push(("blank", &boxed));
    }
    let mut out = Vec::new();
    for (name, idx) in runs {
        // Controls: one greedy answer per question.
        let ctl_cfg = if name == "real" {
            cfg.clone()
        } else {
            VlmRunConfig {
                group: 1,
                rollout: RolloutConfig {
                    temperature: 0.0,
                    ..cfg.rollout.clone()
                },
                ..cfg.clone()
            }
        };
        let pb = super::progress_bar(idx.len() as u64, name);
        let mut control = |s: &virl_engine::dataset::Sample, img: &image::RgbImage| match name {
            "masked" => mask_rationale(img, &s.gt_boxes()),
            _ => blank(img),
        };
        let (recs, _) = vlm::run_on(
            &model,
            &store,
            idx,
            &ctl_cfg,
            0,
            (name != "real").then_some(&mut control as &mut vlm::ImageFn),
            &mut |d, _| pb.set_position(d as u64),
        )
        .map_err(anyhow::Error::msg)?;
        pb.finish_and_clear();
        out.push((name.to_string(), recs));
    }
    Ok((out, scfg))
}

fn pct(s: &Share) -> String {
    format!(
        "{} / {} ({:.1} %, 95 % CI {:.1}–{:.1} %)",
        s.count,
        s.of,
        100.0 * s.fraction,
        100.0 * s.ci95[0],
        100.0 * s.ci95[1]
    )
}

/// `audit.md`: the numbers to cite, each with its interval.
pub fn markdown(r: &AuditReport) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# Audit of {} ({} dialect)\n", r.source, r.dialect);
    let _ = writeln!(
        m,
        "{} questions ({} with rationale boxes), {} trajectories, K = {}.\n",
        r.samples, r.samples_with_boxes, r.trajectories, r.k
    );
    let _ = writeln!(m, "- Acc_ans: {}", pct(&r.acc_ans));
    if let Some(p) = &r.pass_at_k {
        let _ = writeln!(m, "- pass@{}: {}", r.k, pct(p));
    }
    let z = &r.zooms;
    let f = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.3}"));
    let _ = writeln!(
        m,
        "- zooms: {} ({:.2} per trajectory); no zoom: {}\n- mean IoU of a zoom with its best rationale box {}; Acc_rat {}; coverage {}\n",
        z.zooms,
        z.per_trajectory,
        pct(&z.no_zoom),
        f(z.mean_iou),
        f(z.acc_rat),
        f(z.coverage)
    );
    let _ = writeln!(
        m,
        "## Where it looked (IoU ≥ {}), over trajectories of questions with boxes\n\n| category | trajectories | share | 95 % CI |\n|---|---|---|---|",
        virl_engine::audit::HIT_IOU
    );
    for c in CATEGORIES {
        if let Some(s) = r.categories.get(c) {
            let note = match c {
                "right_off" => " (illusion)",
                "right_none" => " (no zoom)",
                _ => "",
            };
            let _ = writeln!(
                m,
                "| `{c}`{note} | {} | {:.1} % | {:.1}–{:.1} % |",
                s.count,
                100.0 * s.fraction,
                100.0 * s.ci95[0],
                100.0 * s.ci95[1]
            );
        }
    }
    if !r.controls.is_empty() {
        let _ = writeln!(
            m,
            "\n## Controls: right answers that survive without the evidence\n"
        );
        for c in &r.controls {
            let _ = writeln!(
                m,
                "- {}: {} of the questions answered right stay right; accuracy under the control {}",
                c.name,
                pct(&c.survive),
                pct(&c.acc_ans)
            );
        }
    }
    let _ = writeln!(
        m,
        "\nEvery trajectory is in `session/` (open it with `virl --open session`); `audit.json` lists each category's members as `sample#rollout`."
    );
    if !r.skipped.is_empty() {
        let _ = writeln!(
            m,
            "\n{} lines were not scored; the first: {}",
            r.skipped.len(),
            r.skipped[0]
        );
    }
    m
}

/// `categories.svg`: the six shares with their intervals.
pub fn svg(r: &AuditReport) -> String {
    let (w, h, left, top, bar) = (640.0, 300.0, 120.0, 20.0, 36.0);
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="13"><rect width="100%" height="100%" fill="white"/>"##
    );
    let scale = w - left - 40.0;
    for (i, c) in CATEGORIES.iter().enumerate() {
        let Some(sh) = r.categories.get(*c) else {
            continue;
        };
        let y = top + i as f64 * (bar + 8.0);
        let color = if c.starts_with("right_on") {
            "#2a9d8f"
        } else if c.starts_with("right") {
            "#e9c46a"
        } else {
            "#e76f51"
        };
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" text-anchor="end">{c}</text><rect x="{left}" y="{y}" width="{}" height="{bar}" fill="{color}"/><line x1="{}" x2="{}" y1="{}" y2="{}" stroke="black"/><text x="{}" y="{}">{:.1} %</text>"##,
            left - 8.0,
            y + bar * 0.65,
            scale * sh.fraction,
            left + scale * sh.ci95[0],
            left + scale * sh.ci95[1],
            y + bar / 2.0,
            y + bar / 2.0,
            left + scale * sh.ci95[1] + 6.0,
            y + bar * 0.65,
            100.0 * sh.fraction
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Runs `virl audit`.
pub fn run(a: AuditArgs) -> Result<()> {
    if a.n.is_some() && a.model.is_none() {
        bail!(
            "--n chooses how many questions the engine runs (with --model); a rollout file is audited whole"
        );
    }
    let ds = Dataset::load(&a.dataset)?;
    let session = a.out.join("session");
    if session.join("session.toml").exists() {
        bail!(
            "{}: an audit is already here; choose another --out",
            a.out.display()
        );
    }
    let mut skipped = Vec::new();
    let (dialect, source, runs, scfg) = match (&a.model, &a.rollouts) {
        (Some(dir), _) => {
            let d = a
                .dialect
                .or_else(|| Dialect::detect(dir))
                .unwrap_or_default();
            let (runs, scfg) = run_model(&a, dir, d)?;
            (d, dir.display().to_string(), runs, scfg)
        }
        (None, Some(file)) => {
            let d = a
                .dialect
                .context("--rollouts needs --dialect (the model's tool-call dialect)")?;
            let mut runs = vec![("real".to_string(), read_scored(file, d, &ds, &mut skipped)?)];
            for (name, f) in [("masked", &a.masked_rollouts), ("blank", &a.blank_rollouts)] {
                if let Some(f) = f {
                    runs.push((name.to_string(), read_scored(f, d, &ds, &mut skipped)?));
                }
            }
            let mut scfg = SessionConfig::default();
            scfg.data.dataset = Some(a.dataset.clone());
            (d, file.display().to_string(), runs, scfg)
        }
        (None, None) => bail!("give --model DIR or --rollouts FILE"),
    };
    let controls: Vec<(&str, &[Trajectory])> = runs[1..]
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_slice()))
        .collect();
    let mut report = audit(&source, dialect.name(), &runs[0].1, &ds, &controls);
    report.skipped = skipped;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let json = serde_json::to_string_pretty(&report)?;
    atomic_write(&a.out.join("audit.json"), json.as_bytes())?;
    atomic_write(&a.out.join("audit.md"), markdown(&report).as_bytes())?;
    atomic_write(&a.out.join("categories.svg"), svg(&report).as_bytes())?;
    vlm::write_session(&session, &scfg, &runs[0].1, Path::new(&source))
        .map_err(anyhow::Error::msg)?;
    print!("{}", markdown(&report));
    println!(
        "wrote {}/audit.json, audit.md, categories.svg and session/",
        a.out.display()
    );
    Ok(())
}
