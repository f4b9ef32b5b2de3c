//! The settings panel: the reward mode and every constant of DESIGN §4–5,
//! and the trainer's learning knobs. Changes apply from the next iteration
//! and are recorded in the session's `events.jsonl`.

use super::run::{Run, RunStatus};
use egui::RichText;
use virl_engine::config::{SessionConfig, TrainerConfig};
use virl_engine::engine::Command;
use virl_engine::reward::{RewardConfig, RewardMode};

/// Drafts being edited.
#[derive(Clone, Debug, Default)]
pub struct SettingsState {
    /// The reward config being edited.
    pub reward: RewardConfig,
    /// The trainer config being edited.
    pub trainer: TrainerConfig,
    /// Why the draft cannot be applied.
    pub error: Option<String>,
    /// "Apply" was pressed; [`SettingsState::logic`] sends the drafts.
    apply_requested: bool,
}

impl SettingsState {
    /// Drafts equal to a config.
    pub fn from_config(c: &SessionConfig) -> Self {
        Self {
            reward: c.reward.clone(),
            trainer: c.trainer.clone(),
            error: None,
            apply_requested: false,
        }
    }

    /// Applies the drafts when the panel's button asked for it (the
    /// studio's `logic()` calls this).
    pub fn logic(&mut self, r: &mut Run) {
        if std::mem::take(&mut self.apply_requested) {
            self.apply(r);
        }
    }

    /// Sends the drafts to the engine if they differ from what is in force.
    pub fn apply(&mut self, r: &mut Run) {
        self.error = self
            .reward
            .validate()
            .err()
            .or_else(|| self.trainer.validate().err());
        if self.error.is_some() {
            return;
        }
        if self.reward != r.cfg.reward {
            r.command(Command::SetRewardConfig(self.reward.clone()));
        }
        if self.trainer != r.cfg.trainer {
            r.command(Command::SetTrainerConfig(self.trainer.clone()));
        }
    }

    /// Draws the panel.
    pub fn ui(&mut self, ui: &mut egui::Ui, r: &mut Run) {
        let editable = r.is_live() && !matches!(r.status, RunStatus::Failed(_));
        ui.heading("Reward");
        if r.cfg.external.is_some() {
            ui.weak("read-only: the reward config of the traced run (VIRL_REWARD)");
        } else if !editable {
            ui.weak("read-only: this session was opened from disk");
        }
        ui.add_enabled_ui(editable, |ui| {
            ui.horizontal(|ui| {
                ui.label("mode");
                for m in [RewardMode::Outcome, RewardMode::Fidelity, RewardMode::Virl] {
                    ui.selectable_value(&mut self.reward.mode, m, m.as_str());
                }
            });
            let c = &mut self.reward;
            egui::Grid::new("reward-grid")
                .num_columns(2)
                .show(ui, |ui| {
                    let row =
                        |ui: &mut egui::Ui, name: &str, tip: &str, v: &mut f64, speed: f64| {
                            ui.label(name);
                            // ε_adv is 1e-6: four decimals showed it as 0.0000.
                            let decimals = if speed < 1e-3 { 8 } else { 4 };
                            ui.add(egui::DragValue::new(v).speed(speed).max_decimals(decimals))
                                .on_hover_text(tip);
                            ui.end_row();
                        };
                    row(
                        ui,
                        "h0",
                        "IoU at which a zoom is correct (σ = +1) and a rationale covered",
                        &mut c.h0,
                        0.01,
                    );
                    row(
                        ui,
                        "ε_ref",
                        "refinement bonus below which a correct zoom is redundant",
                        &mut c.eps_ref,
                        0.005,
                    );
                    row(
                        ui,
                        "τ_dup",
                        "IoU with an earlier zoom at which a zoom is a duplicate",
                        &mut c.tau_dup,
                        0.01,
                    );
                    row(
                        ui,
                        "w_s",
                        "weight of the signed correctness σ_k",
                        &mut c.w_s,
                        0.01,
                    );
                    row(
                        ui,
                        "w_b",
                        "weight of the refinement bonus β_k",
                        &mut c.w_b,
                        0.01,
                    );
                    row(ui, "ρ", "penalty of a redundant zoom", &mut c.rho, 0.01);
                    row(
                        ui,
                        "w_c",
                        "weight of the missed coverage 1 − C",
                        &mut c.w_c,
                        0.01,
                    );
                    row(
                        ui,
                        "r_none",
                        "R_rat of a trajectory without zooms",
                        &mut c.r_none,
                        0.01,
                    );
                    row(
                        ui,
                        "λ_rat",
                        "weight of R_rat in the total (0 in outcome mode)",
                        &mut c.lambda_rat,
                        0.01,
                    );
                    row(
                        ui,
                        "λ_fmt",
                        "weight of R_fmt in the total",
                        &mut c.lambda_fmt,
                        0.01,
                    );
                    row(
                        ui,
                        "h_good",
                        "IoU at which q_k reaches +1",
                        &mut c.h_good,
                        0.01,
                    );
                    row(
                        ui,
                        "h_bad",
                        "IoU at or below which q_k is −1",
                        &mut c.h_bad,
                        0.01,
                    );
                    row(
                        ui,
                        "α",
                        "modulation strength: m_k within [1 − α, 1 + α]",
                        &mut c.alpha,
                        0.01,
                    );
                    row(
                        ui,
                        "ε_adv",
                        "ε of the group normalisation",
                        &mut c.adv_eps,
                        1e-6,
                    );
                    ui.label("A_i / std");
                    ui.checkbox(&mut c.adv_by_std, "").on_hover_text(
                        "divide A_i by the group's standard deviation (GRPO); \
                             off: A_i = R_i − mean (Dr. GRPO)",
                    );
                    ui.end_row();
                });
            if r.cfg.external.is_some() {
                return;
            }
            ui.separator();
            ui.heading("Trainer");
            let t = &mut self.trainer;
            egui::Grid::new("trainer-grid")
                .num_columns(2)
                .show(ui, |ui| {
                    ui.label("iterations");
                    ui.add(egui::DragValue::new(&mut t.iterations).range(1..=1_000_000))
                        .on_hover_text("iterations");
                    ui.end_row();
                    ui.label("lr");
                    ui.add(egui::DragValue::new(&mut t.lr).speed(1e-4).max_decimals(6))
                        .on_hover_text("lr");
                    ui.end_row();
                    ui.label("entropy coef");
                    ui.add(
                        egui::DragValue::new(&mut t.entropy_coef)
                            .speed(1e-3)
                            .max_decimals(4),
                    )
                    .on_hover_text("entropy coef");
                    ui.end_row();
                    ui.label("clip");
                    ui.add(
                        egui::DragValue::new(&mut t.clip)
                            .speed(0.01)
                            .max_decimals(3),
                    )
                    .on_hover_text("clip");
                    ui.end_row();
                    ui.label("epochs");
                    ui.add(egui::DragValue::new(&mut t.epochs).range(1..=64))
                        .on_hover_text("epochs");
                    ui.end_row();
                });
            let dirty = self.reward != r.cfg.reward || self.trainer != r.cfg.trainer;
            ui.horizontal(|ui| {
                if ui
                    .add_enabled(dirty, egui::Button::new("Apply from next iteration"))
                    .clicked()
                {
                    self.apply_requested = true;
                }
                if ui.add_enabled(dirty, egui::Button::new("Revert")).clicked() {
                    *self = Self::from_config(&r.cfg);
                }
            });
            if let Some(e) = &self.error {
                ui.colored_label(egui::Color32::from_rgb(230, 80, 80), e);
            }
        });
        if r.reward_history.len() > 1 {
            ui.separator();
            ui.label(RichText::new("Reward config changes").strong());
            for (it, c) in r.reward_history.iter().skip(1) {
                ui.weak(format!(
                    "from iteration {it}: {} h0={} α={}",
                    c.mode, c.h0, c.alpha
                ));
            }
        }
        ui.separator();
        ui.label(RichText::new("Session").strong());
        ui.weak(r.dir.display().to_string());
        ui.weak(match &r.cfg.data.dataset {
            Some(d) => format!("dataset {}", d.display()),
            None => format!(
                "ZoomBench: {} train / {} eval samples, {} px canvas",
                r.cfg.data.train_n, r.cfg.data.eval_n, r.cfg.data.zoombench.canvas
            ),
        });
        if let Some(x) = &r.cfg.external {
            ui.weak(format!(
                "a {} run traced here: {} steps so far; a step's curves appear once the next begins",
                x.trainer,
                r.stored.len()
            ));
            return;
        }
        match &r.vlm_model {
            Some(m) => {
                ui.weak(format!(
                    "VLM rollouts of {m}: {} samples × {} rollouts, no training",
                    r.cfg.trainer.samples_per_iter, r.cfg.trainer.group
                ));
            }
            None => {
                let t = &r.cfg.trainer;
                let of = match t.warmup_data {
                    virl_engine::config::WarmupData::Fresh => {
                        " (on newly generated samples, never the training split)"
                    }
                    virl_engine::config::WarmupData::Train => " (on the training split)",
                };
                ui.weak(format!(
                    "{} samples × {} rollouts per iteration, {} imitation iterations{}",
                    t.samples_per_iter,
                    t.group,
                    t.warmup_iterations,
                    if t.warmup_iterations > 0 { of } else { "" }
                ));
            }
        }
    }
}
