//! The `virl` command line (DESIGN §10).

mod bench;
mod experiment;
mod reward_args;
mod score;
mod synth;
mod train;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub use reward_args::RewardArgs;

/// ViRL Studio: train and inspect vision-language policies that think with images.
#[derive(Debug, Parser)]
#[command(name = "virl", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Write a ZoomBench split as an ordinary dataset folder (PNG images + manifest.jsonl).
    Synth(synth::SynthArgs),
    /// Score rollouts produced elsewhere (our JSONL, DeepEyes text, verl dumps) with the ViRL rewards and credit.
    Score(score::ScoreArgs),
    /// Train ZoomNet with GRPO/PPO and ViRL credit, headless, into a session folder.
    Train(train::TrainArgs),
    /// Evaluate a session's checkpoint greedily.
    Eval(train::EvalArgs),
    /// Run the ablations: reward modes, h0.
    #[command(subcommand)]
    Experiment(experiment::ExperimentCommand),
    /// Measure the speed of parts of the engine.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Runs the command line with the process's arguments; errors are printed
/// on stderr with their causes, and give exit code 1 (2 for usage errors).
pub fn main() -> ExitCode {
    if std::env::args_os().len() == 1 {
        // `virl` alone will open the desktop studio (issue #4); until then it
        // explains itself instead of failing.
        use clap::CommandFactory;
        let _ = Cli::command().print_help();
        println!(
            "\nThe desktop studio is not built yet; use the commands above (for example `virl synth --out /tmp/zoombench`)."
        );
        return ExitCode::SUCCESS;
    }
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
    match cli.command {
        Command::Synth(a) => synth::run(a),
        Command::Score(a) => score::run(a),
        Command::Bench(b) => bench::run(b),
        Command::Train(a) => train::run(a),
        Command::Experiment(e) => experiment::run(e),
        Command::Eval(a) => train::eval(a),
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
