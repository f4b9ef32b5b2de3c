//! The `virl` command line (DESIGN §10).

mod audit;
mod bench;
mod experiment;
/// `virl filter`.
pub(crate) mod filter;
mod interchange;
mod reward_args;
/// `virl rollout` and the Qwen3-VL flags.
pub(crate) mod rollout;
mod score;
mod suspects;
mod synth;
mod train;
mod vlm;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub use reward_args::RewardArgs;

/// ViRL Studio: train and inspect vision-language policies that think with images.
#[derive(Debug, Parser)]
#[command(name = "virl", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    studio: StudioArgs,
}

/// Without a subcommand, `virl` opens the desktop studio.
#[derive(Debug, clap::Args)]
struct StudioArgs {
    /// Open this session, dataset or experiment folder instead of a new ZoomBench session.
    #[arg(long, value_name = "DIR")]
    open: Option<std::path::PathBuf>,
    /// With --open: show this dataset folder instead of the one the session
    /// names (a verl trace viewed where the data is mounted at another path).
    #[arg(long, value_name = "DIR", requires = "open")]
    dataset: Option<std::path::PathBuf>,
    /// Start training at once.
    #[arg(long)]
    train: bool,
    /// Config of the new session (TOML; default: the schedule of `virl train` without a config).
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// The tab to show first: training, rollouts, compare or annotate.
    #[arg(long)]
    tab: Option<crate::studio::Tab>,
    /// Render the studio, save a PNG screenshot here and exit (smoke test).
    #[arg(long, value_name = "FILE")]
    screenshot_to: Option<std::path::PathBuf>,
    /// Frames to render before the screenshot.
    #[arg(long, default_value_t = 60)]
    frames: u32,
    /// Instead of --frames: take the screenshot this many seconds after
    /// start (a live run's curves at a given wall time).
    #[arg(long, value_name = "SECONDS", requires = "screenshot_to")]
    screenshot_after: Option<f64>,
    /// Annotate and the inspector: centre image pixel (X, Y) at ZOOM × the
    /// fitted size (e.g. `4096,4096,16` shows an 8K image at about full resolution).
    #[arg(long, value_name = "X,Y,ZOOM", value_parser = parse_zoom_to)]
    zoom_to: Option<[f64; 3]>,
}

fn parse_zoom_to(s: &str) -> Result<[f64; 3], String> {
    let v: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("expected X,Y,ZOOM numbers: {e}"))?;
    match v[..] {
        [x, y, z] if v.iter().all(|f| f.is_finite()) && z >= 1.0 => Ok([x, y, z]),
        _ => Err(format!(
            "expected X,Y,ZOOM (three finite numbers, ZOOM ≥ 1), got {s:?}"
        )),
    }
}

// Parsed once per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Write a ZoomBench split as an ordinary dataset folder (PNG images + manifest.jsonl).
    Synth(synth::SynthArgs),
    /// Import V* Bench, COCO, Visual-CoT, HR-Bench or a verl parquet as a dataset folder.
    Import(interchange::ImportArgs),
    /// The three-stage reasoning-centric filter: area ratio, solvable without zoom, unsolvable with the ground-truth zoom.
    Filter(filter::FilterArgs),
    /// Rank a session's samples by how likely their ground-truth boxes are wrong.
    Suspects(suspects::SuspectArgs),
    /// Export a dataset (with its ground-truth corrections) as COCO or JSONL.
    Export(interchange::ExportArgs),
    /// Score rollouts produced elsewhere (our JSONL, any model's dialect, verl dumps) with the ViRL rewards and credit.
    Score(score::ScoreArgs),
    /// Audit a model's zooms: right/wrong answer x on/off/no looking, with intervals, and controls that mask the evidence.
    Audit(audit::AuditArgs),
    /// Train ZoomNet with GRPO/PPO and ViRL credit, headless, into a session folder.
    Train(train::TrainArgs),
    /// Evaluate a session's checkpoint, or a Qwen3-VL checkpoint (--policy qwen-vl), greedily.
    Eval(train::EvalArgs),
    /// Roll out a Qwen3-VL checkpoint over a dataset: multi-turn zoom conversations, scored.
    Rollout(rollout::RolloutArgs),
    /// Run the ablations: reward modes, h0.
    #[command(subcommand)]
    Experiment(experiment::ExperimentCommand),
    /// Measure the speed of parts of the engine.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// The Qwen3-VL policy: make a random checkpoint, compare with transformers.
    #[command(subcommand)]
    Vlm(vlm::VlmCommand),
}

/// Runs the command line with the process's arguments; errors are printed
/// on stderr with their causes, and give exit code 1 (2 for usage errors).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            // Our error types already print their source; show only causes
            // that add something.
            let mut shown = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !shown.contains(&c) {
                    eprintln!("  caused by: {c}");
                }
                shown = c;
            }
            ExitCode::FAILURE
        }
    }
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let Some(command) = cli.command else {
        let a = cli.studio;
        let config = match &a.config {
            Some(p) => {
                Some(virl_engine::config::SessionConfig::load(p).map_err(anyhow::Error::msg)?)
            }
            None => None,
        };
        return crate::studio::run_native(crate::studio::StudioOptions {
            open: a.open,
            sessions_root: None,
            config,
            train: a.train,
            screenshot_to: a.screenshot_to,
            frames: a.frames,
            tab: a.tab,
            dataset: a.dataset,
            zoom_to: a.zoom_to,
            screenshot_after_s: a.screenshot_after,
        });
    };
    match command {
        Command::Synth(a) => synth::run(a),
        Command::Score(a) => score::run(a),
        Command::Audit(a) => audit::run(a),
        Command::Import(a) => interchange::import(a),
        Command::Export(a) => interchange::export(a),
        Command::Suspects(a) => suspects::run(a),
        Command::Filter(a) => filter::run(a),
        Command::Bench(b) => bench::run(b),
        Command::Train(a) => train::run(a),
        Command::Experiment(e) => experiment::run(e),
        Command::Eval(a) => train::eval(a),
        Command::Vlm(c) => vlm::run(c),
        Command::Rollout(a) => rollout::rollout(a),
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub(crate) fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template(&format!(
        "{what} {{bar:30}} {{pos}}/{{len}} [{{elapsed_precise}}, ETA {{eta}}]"
    ))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    pb.set_style(style);
    pb
}

#[cfg(test)]
mod tests {
    use super::parse_zoom_to;

    #[test]
    fn zoom_to_takes_three_finite_numbers_and_a_zoom_of_at_least_one() {
        assert_eq!(parse_zoom_to("4096, 4096,16"), Ok([4096.0, 4096.0, 16.0]));
        for bad in ["1,2", "1,2,3,4", "a,b,c", "1,2,0.5", "1,NaN,2", ""] {
            let e = parse_zoom_to(bad).expect_err(bad);
            assert!(e.contains("X,Y,ZOOM"), "{bad}: {e}");
        }
    }
}
