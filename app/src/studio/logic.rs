//! What the studio does, as opposed to what it draws: sessions opened and
//! created, commands run, the requests the frame's drawing queued, channels
//! drained, keys and dropped files. eframe calls [`Studio::logic`] before
//! each frame's `ui()`.

use super::app::Request;
use super::commands::{self, Cmd};
use super::compare::{self, CompareRun};
use super::run::{Run, RunStatus};
use super::{Studio, Tab, settings, unix_secs};
use crossbeam_channel::bounded;
use std::path::{Path, PathBuf};
use virl_engine::config::SessionConfig;
use virl_engine::engine::Command;

impl Studio {
    /// Carries out one request queued by the drawing code.
    fn carry_out(&mut self, r: Request, ctx: &egui::Context) {
        match r {
            Request::Cmd(c) => self.run_cmd(c),
            Request::Open(p) => self.open_path(&p),
            Request::OpenAt(p, tab) => {
                self.open_path(&p);
                self.tab = tab;
            }
            Request::Browse { compare } => self.browse_dialog(compare),
            Request::FailureExamples(kind) => {
                self.browser.show_failure(kind);
                self.tab = Tab::Rollouts;
            }
            Request::SaveAndQuit => self.save_and_quit(ctx),
        }
    }

    /// Starts a new session trained by the studio.
    pub fn new_session(&mut self, cfg: SessionConfig) {
        let mut dir = self.sessions_root.join(format!("studio-{}", unix_secs()));
        let mut k = 1;
        while dir.exists() {
            dir = self
                .sessions_root
                .join(format!("studio-{}-{k}", unix_secs()));
            k += 1;
        }
        self.settings = settings::SettingsState::from_config(&cfg);
        self.browser = Default::default();
        self.run = Some(Run::new_live(dir, cfg, self.wake.clone()));
    }

    /// Opens a session folder (followed live), a dataset folder (a new
    /// session trains on it) or an experiment folder (its sessions go to
    /// Compare).
    pub fn open_path(&mut self, p: &Path) {
        let remember = |s: &mut Self| {
            let p = p.to_path_buf();
            s.prefs.recent.retain(|r| r != &p);
            s.prefs.recent.insert(0, p);
            s.prefs.recent.truncate(10);
        };
        if p.join("session.toml").is_file() {
            match Run::open(p, self.dataset_override.as_deref(), self.wake.clone()) {
                Ok(r) => {
                    self.settings = settings::SettingsState::from_config(&r.cfg);
                    self.browser = Default::default();
                    self.run = Some(r);
                    remember(self);
                    self.toast(format!("opened session {}", p.display()), false);
                }
                Err(e) => self.toast(format!("cannot open the session: {e}"), true),
            }
        } else if p.join("manifest.jsonl").is_file() {
            let mut cfg = self.base_config.clone();
            cfg.data.dataset = Some(p.to_path_buf());
            // A folder's samples cannot be generated afresh: its warm-up
            // imitates its own training samples.
            cfg.trainer.warmup_data = virl_engine::config::WarmupData::Train;
            remember(self);
            self.new_session(cfg);
            self.toast(format!("new session on the dataset {}", p.display()), false);
        } else if compare::sessions_in(p).is_empty() {
            self.toast(
                format!(
                    "nothing to open: no session.toml, manifest.jsonl or session folders in {}",
                    p.display()
                ),
                true,
            );
        } else {
            remember(self);
            self.add_comparison(p);
            self.tab = Tab::Compare;
        }
    }

    /// Loads the curves of a session, or of every session in an experiment
    /// folder, into Compare (in the background).
    pub fn add_comparison(&mut self, p: &Path) {
        let dirs = if p.join("session.toml").is_file() {
            vec![p.to_path_buf()]
        } else {
            compare::sessions_in(p)
        };
        if dirs.is_empty() {
            self.toast(format!("no session in {}", p.display()), true);
            return;
        }
        for d in dirs {
            let tx = self.compare_tx.clone();
            let wake = self.wake.clone();
            std::thread::spawn(move || {
                let _ = tx.send(CompareRun::load(&d));
                wake();
            });
        }
    }

    /// The native folder dialog, on its own thread (rfd blocks).
    pub(super) fn browse_dialog(&mut self, compare: bool) {
        let (tx, rx) = bounded(1);
        self.dialog = Some(rx);
        self.dialog_for_compare = compare;
        std::thread::spawn(move || {
            let _ = tx.send(
                rfd::FileDialog::new()
                    .set_title("Open a session, dataset or experiment folder")
                    .pick_folder(),
            );
        });
    }

    /// Runs a command.
    pub fn run_cmd(&mut self, c: Cmd) {
        match c {
            Cmd::TrainPause => {
                let Some(r) = &mut self.run else { return };
                match r.status {
                    RunStatus::Training => r.command(Command::Pause),
                    RunStatus::Idle | RunStatus::Finished => r.command(Command::Start),
                    RunStatus::Paused => r.command(Command::Resume),
                    RunStatus::Starting => self.pending_train = true,
                    RunStatus::Watching => {
                        self.toast("this session is read-only (opened from disk); start a new session to train", true)
                    }
                    RunStatus::Failed(_) => self.toast("training failed; see the message above", true),
                }
            }
            Cmd::StepIteration => {
                if let Some(r) = &mut self.run {
                    r.command(Command::Step);
                }
            }
            Cmd::Stop => {
                if let Some(r) = &mut self.run {
                    r.command(Command::Pause);
                }
            }
            Cmd::SaveCheckpoint => {
                if let Some(r) = &mut self.run {
                    r.command(Command::SaveCheckpoint);
                }
            }
            Cmd::NextAction | Cmd::PrevAction => {
                let d = if c == Cmd::NextAction { 1 } else { -1 };
                self.browser.step_action(self.run.as_ref(), d);
            }
            Cmd::NextTrajectory | Cmd::PrevTrajectory => {
                let d = if c == Cmd::NextTrajectory { 1 } else { -1 };
                self.browser.step_row(d);
                self.tab = Tab::Rollouts;
            }
            Cmd::ToggleFollow => self.browser.follow = !self.browser.follow,
            Cmd::Open => self.open_window = Some(self.open_window.take().unwrap_or_default()),
            Cmd::NewSession => self.new_session(self.base_config.clone()),
            Cmd::AddComparison => self.browse_dialog(true),
            Cmd::Palette => {
                self.palette = if self.palette.is_some() {
                    None
                } else {
                    Some(String::new())
                }
            }
            Cmd::Help => self.help = !self.help,
            Cmd::EditGroundTruth => {
                let id = self
                    .run
                    .as_ref()
                    .and_then(|r| self.browser.record(r))
                    .map(|t| t.sample.clone());
                match (id, &self.run) {
                    (Some(id), Some(r)) => {
                        self.annotate.open_sample(r, &id);
                        self.tab = Tab::Annotate;
                    }
                    _ => self.toast("select a trajectory first", false),
                }
            }
            c => {
                if let Some(r) = &mut self.run {
                    self.annotate.cmd(r, c);
                }
            }
        }
        for (m, error) in std::mem::take(&mut self.annotate.messages) {
            self.toast(m, error);
        }
    }

    /// Everything that is not drawing: channels, keys, dropped files.
    pub(super) fn logic(&mut self, ctx: &egui::Context) {
        // The edits the annotation canvas proposed last frame (journal
        // writes and re-scoring), then what the rest of the UI asked for.
        if let Some(r) = &mut self.run {
            self.annotate.logic(r);
            self.settings.logic(r);
            // The rollouts the browser shows are read in the background.
            if self.tab == Tab::Rollouts
                && self.browser.scope == super::selection::Scope::Iteration
                && let Some(i) = self.browser.iteration
            {
                r.request_rollouts(i);
            }
        }
        if let Some(w) = &mut self.interchange {
            w.logic(ctx);
        }
        if let Some(w) = &mut self.vlm {
            w.logic(ctx);
        }
        for r in std::mem::take(&mut self.requests) {
            self.carry_out(r, ctx);
        }
        if let Some(r) = &mut self.run {
            r.pump();
            for m in std::mem::take(&mut r.messages) {
                self.toast(m, true);
            }
        }
        if self.pending_train
            && let Some(r) = &mut self.run
            && r.status == RunStatus::Idle
        {
            r.command(Command::Start);
            self.pending_train = false;
        }
        while let Ok(c) = self.compare_rx.try_recv() {
            self.compare.retain(|x| x.dir != c.dir);
            // Sessions load on threads of their own and arrive in any order;
            // keep them in folder order (an experiment's arm-s0, arm-s1, …).
            let at = self.compare.partition_point(|x| x.dir < c.dir);
            self.compare.insert(at, c);
        }
        if let Some(rx) = &self.dialog
            && let Ok(res) = rx.try_recv()
        {
            self.dialog = None;
            match res {
                Some(p) if self.dialog_for_compare => self.add_comparison(&p),
                Some(p) => {
                    self.open_window = None;
                    self.open_path(&p);
                }
                None => self.toast(
                    "no folder chosen (without a desktop file portal the dialog cannot open: type the path instead)",
                    false,
                ),
            }
        }
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        for p in dropped {
            let dir = if p.is_file() {
                p.parent().map(Path::to_path_buf).unwrap_or(p)
            } else {
                p
            };
            self.open_path(&dir);
        }
        for c in Cmd::pressed(ctx, self.tab == Tab::Annotate) {
            if c.scope() == commands::Scope::Annotate {
                // Tab and the arrows are the editor's keys here, not egui's
                // focus navigation.
                ctx.memory_mut(|m| m.move_focus(egui::FocusDirection::None));
            }
            self.run_cmd(c);
        }
        self.quit_logic(ctx);
        if let Some(r) = &self.run {
            self.browser.update(r);
        }
        self.expire_toasts(ctx);
        self.screenshot_logic(ctx);
    }
}
