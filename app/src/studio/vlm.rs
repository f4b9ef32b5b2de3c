//! Train > Run VLM rollouts: a Qwen3-VL checkpoint as the policy over the
//! open dataset (or ZoomBench). The rollouts run on a background thread,
//! are scored with the same rewards and credit as ZoomNet's, written as a
//! session folder and opened, so they appear in the browser and the
//! inspector with each turn's text next to its zoom box.

use crossbeam_channel::{Receiver, bounded};
use std::path::{Path, PathBuf};
use virl_engine::policy::qwen_vl::protocol::RolloutConfig;
use virl_engine::policy::qwen_vl::{Precision, QwenVl};
use virl_engine::policy::{DeviceKind, device};
use virl_engine::vlm::{self, VlmRunConfig};

enum Msg {
    Progress(usize, usize),
    Done(Result<(String, PathBuf), String>),
}

/// The window's state.
pub struct Window {
    /// The checkpoint folder.
    pub model: String,
    /// A dataset folder or `zoombench`.
    pub dataset: String,
    /// Samples.
    pub n: usize,
    /// Rollouts per sample.
    pub group: usize,
    /// Sampling temperature (0: greedy).
    pub temperature: f64,
    /// Most tool turns.
    pub max_rounds: usize,
    /// Most tokens per turn.
    pub max_turn_tokens: usize,
    /// Pixel budget of the full image, as a side (side² pixels).
    pub max_side: usize,
    /// bf16 instead of f32.
    pub bf16: bool,
    /// Where the model runs: the open session's device.
    pub device: DeviceKind,
    /// Where the session goes.
    out: PathBuf,
    progress: (usize, usize),
    running: Option<Receiver<Msg>>,
    /// The last error, shown in the window.
    pub error: Option<String>,
    /// Run was pressed; [`Window::logic`] starts the job.
    start_requested: bool,
}

impl Window {
    /// A window whose session will be written under `sessions_root`;
    /// `dataset` is the open session's dataset folder, if any.
    pub fn new(
        sessions_root: &Path,
        dataset: Option<&Path>,
        device: DeviceKind,
        out_name: String,
    ) -> Self {
        Self {
            model: String::new(),
            dataset: dataset.map_or("zoombench".into(), |p| p.display().to_string()),
            n: 8,
            group: 4,
            temperature: 1.0,
            max_rounds: 6,
            max_turn_tokens: 256,
            max_side: 512,
            bf16: false,
            device,
            out: sessions_root.join(out_name),
            progress: (0, 0),
            running: None,
            start_requested: false,
            error: None,
        }
    }

    /// Whether rollouts are running.
    pub fn busy(&self) -> bool {
        self.running.is_some()
    }

    /// Draws the window. Returns `(open, message, session to open)`.
    pub fn ui(&mut self, ctx: &egui::Context) -> (bool, Option<(String, bool)>, Option<PathBuf>) {
        let mut open = true;
        let mut go = false;
        let mut result = (None, None);
        if let Some(rx) = &self.running {
            while let Ok(m) = rx.try_recv() {
                match m {
                    Msg::Progress(d, n) => self.progress = (d, n),
                    Msg::Done(r) => {
                        self.running = None;
                        match r {
                            Ok((m, p)) => result = (Some((m, false)), Some(p)),
                            Err(e) => {
                                self.error = Some(e.clone());
                                result = (Some((e, true)), None);
                            }
                        }
                        break;
                    }
                }
            }
        }
        egui::Window::new("Run VLM rollouts")
            .open(&mut open)
            .collapsible(false)
            .show(ctx, |ui| {
                ui.label("A local Qwen3-VL checkpoint (config.json, *.safetensors, tokenizer.json) as the policy: multi-turn zoom conversations, scored like ZoomNet's.");
                ui.weak("No checkpoint at hand? `virl vlm init --out DIR` writes a random one.");
                egui::Grid::new("vlm-run").num_columns(2).show(ui, |ui| {
                    let l = ui.label("model folder");
                    ui.add(egui::TextEdit::singleline(&mut self.model).desired_width(340.0)).labelled_by(l.id);
                    ui.end_row();
                    let l = ui.label("dataset");
                    ui.add(
                        egui::TextEdit::singleline(&mut self.dataset)
                            .hint_text("a dataset folder, or zoombench")
                            .desired_width(340.0),
                    ).labelled_by(l.id);
                    ui.end_row();
                    let l = ui.label("samples");
                    ui.add(egui::DragValue::new(&mut self.n).range(1..=10_000)).labelled_by(l.id);
                    ui.end_row();
                    let l = ui.label("rollouts per sample");
                    ui.add(egui::DragValue::new(&mut self.group).range(1..=64)).labelled_by(l.id);
                    ui.end_row();
                    let l = ui.label("temperature");
                    ui.add(egui::DragValue::new(&mut self.temperature).range(0.0..=2.0).speed(0.05)).labelled_by(l.id);
                    ui.end_row();
                    let l = ui.label("max rounds");
                    ui.add(egui::DragValue::new(&mut self.max_rounds).range(1..=32)).labelled_by(l.id);
                    ui.end_row();
                    let l = ui.label("max tokens per turn");
                    ui.add(egui::DragValue::new(&mut self.max_turn_tokens).range(1..=8192)).labelled_by(l.id);
                    ui.end_row();
                    let l = ui.label("image side (pixel budget)");
                    ui.add(egui::DragValue::new(&mut self.max_side).range(64..=2048)).labelled_by(l.id);
                    ui.end_row();
                    ui.label("device");
                    ui.monospace(self.device.to_string())
                        .on_hover_text("the open session's device (its session.toml)");
                    ui.end_row();
                    ui.label("session folder");
                    ui.monospace(self.out.display().to_string());
                    ui.end_row();
                });
                ui.checkbox(&mut self.bf16, "bf16 weights (half the memory; f32 otherwise)");
                ui.horizontal(|ui| {
                    let busy = self.running.is_some();
                    if ui
                        .add_enabled(!busy && !self.model.trim().is_empty(), egui::Button::new("Run"))
                        .on_disabled_hover_text(if busy {
                            "rollouts are running"
                        } else {
                            "give the model folder first"
                        })
                        .clicked()
                    {
                        go = true;
                    }
                    if busy {
                        let (d, n) = self.progress;
                        ui.add(
                            egui::ProgressBar::new(if n == 0 { 0.0 } else { d as f32 / n as f32 })
                                .desired_width(200.0)
                                .text(if n == 0 {
                                    "loading the model".to_string()
                                } else {
                                    format!("{d} / {n} samples")
                                }),
                        );
                    }
                });
                if let Some(e) = &self.error {
                    ui.colored_label(egui::Color32::from_rgb(230, 90, 90), e);
                }
            });
        if go {
            // Started by `logic()`: drawing only records the request.
            self.start_requested = true;
            ctx.request_repaint();
        }
        (open || self.running.is_some(), result.0, result.1)
    }
}

/// One run, off the UI thread.
pub struct Job {
    /// The checkpoint.
    pub model: PathBuf,
    /// A dataset folder or `zoombench`.
    pub dataset: String,
    /// Samples.
    pub n: usize,
    /// What to run.
    pub cfg: VlmRunConfig,
    /// Weights dtype.
    pub precision: Precision,
    /// Where the model runs.
    pub device: DeviceKind,
    /// The session folder to write.
    pub out: PathBuf,
}

impl Job {
    /// Loads the model, rolls out, writes the session. Returns a message
    /// and the session folder.
    pub fn run(&self, progress: &mut dyn FnMut(usize, usize)) -> Result<(String, PathBuf), String> {
        let dev = device(self.device)?;
        let model = QwenVl::load(&self.model, self.precision, &dev).map_err(|e| e.to_string())?;
        let (store, cfg, _) = vlm::open_dataset(&self.dataset)?;
        let n = self.n.min(store.dataset().samples().len());
        let idx: Vec<usize> = (0..n).collect();
        progress(0, n);
        let (recs, speed) = vlm::run(&model, &store, &idx, &self.cfg, 0, progress)?;
        vlm::write_session(&self.out, &cfg, &recs, &self.model)?;
        let m = vlm::metrics(&recs, 0);
        Ok((
            format!(
                "{} VLM rollouts: Acc_ans {:.2}, {:.2} zooms each, decode {:.1} tokens/s; session {}",
                recs.len(),
                m.acc_ans,
                m.zooms,
                speed.decode_tps(),
                self.out.display()
            ),
            self.out.clone(),
        ))
    }
}

impl Window {
    /// Starts the job the window's Run button asked for (off the UI thread).
    pub fn logic(&mut self, ctx: &egui::Context) {
        if !std::mem::take(&mut self.start_requested) || self.running.is_some() {
            return;
        }
        self.error = None;
        self.progress = (0, 0);
        let (tx, rx) = bounded(64);
        let job = Job {
            model: PathBuf::from(self.model.trim()),
            dataset: self.dataset.trim().to_string(),
            n: self.n,
            cfg: VlmRunConfig {
                rollout: RolloutConfig {
                    max_rounds: self.max_rounds,
                    max_turn_tokens: self.max_turn_tokens,
                    temperature: self.temperature,
                    max_pixels: self.max_side * self.max_side,
                    crop_max_pixels: self.max_side * self.max_side,
                    ..Default::default()
                },
                group: self.group,
                seed: 0,
                reward: Default::default(),
            },
            precision: if self.bf16 {
                Precision::Bf16
            } else {
                Precision::F32
            },
            device: self.device,
            out: self.out.clone(),
        };
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let tx2 = tx.clone();
            let c2 = ctx.clone();
            let r = job.run(&mut |d, n| {
                let _ = tx2.try_send(Msg::Progress(d, n));
                c2.request_repaint();
            });
            let _ = tx.send(Msg::Done(r));
            ctx.request_repaint();
        });
        self.running = Some(rx);
    }
}
