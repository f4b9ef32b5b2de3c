//! The desktop studio (DESIGN §9): an eframe app over a [`run::Run`].
//!
//! The UI thread only draws and drains channels; training, file reading and
//! image preparation run on their own threads (see [`run`] and [`images`]).

mod annotate;
pub mod bench;
pub mod browser;
pub mod commands;
mod compare;
mod images;
mod inspector;
pub mod interchange;
pub mod rows;
pub mod run;
pub mod selection;
mod settings;
mod training;
pub mod vlm;

use commands::Cmd;
use crossbeam_channel::{Receiver, Sender, bounded};
use run::{Run, RunStatus, Waker};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use virl_engine::config::SessionConfig;
use virl_engine::engine::Command;

pub use compare::CompareRun;

/// How the studio starts.
#[derive(Clone, Debug, Default)]
pub struct StudioOptions {
    /// Open this session, dataset or experiment folder instead of a new session.
    pub open: Option<PathBuf>,
    /// Where new sessions go (default `sessions/`).
    pub sessions_root: Option<PathBuf>,
    /// Config of the new session (default: ZoomBench defaults).
    pub config: Option<SessionConfig>,
    /// Start training at once.
    pub train: bool,
    /// Render, save a screenshot here and exit.
    pub screenshot_to: Option<PathBuf>,
    /// Frames to render before the screenshot.
    pub frames: u32,
    /// Show this tab first.
    pub tab: Option<Tab>,
}

/// The main views.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Tab {
    /// Controls and live curves.
    Training,
    /// Rollout browser and trajectory inspector.
    Rollouts,
    /// Curves of several sessions.
    Compare,
    /// The ground-truth annotation editor.
    Annotate,
}

impl std::str::FromStr for Tab {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "training" => Ok(Self::Training),
            "rollouts" => Ok(Self::Rollouts),
            "compare" => Ok(Self::Compare),
            "annotate" => Ok(Self::Annotate),
            o => Err(format!(
                "unknown tab `{o}` (expected training, rollouts, compare or annotate)"
            )),
        }
    }
}

/// Preferences kept between launches (eframe storage).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Prefs {
    /// Recently opened folders, newest first.
    pub recent: Vec<PathBuf>,
    /// EMA smoothing of the curves, 0 (none) … 0.99.
    pub smoothing: f32,
}

impl Default for Prefs {
    fn default() -> Self {
        Self {
            recent: Vec::new(),
            smoothing: 0.6,
        }
    }
}

/// A transient message.
struct Toast {
    text: String,
    error: bool,
    at: Instant,
}

/// The studio.
pub struct Studio {
    /// The session shown.
    pub run: Option<Run>,
    /// Sessions whose curves are overlaid in Compare.
    pub compare: Vec<CompareRun>,
    /// The current tab.
    pub tab: Tab,
    /// Preferences.
    pub prefs: Prefs,
    /// Rollout browser state.
    pub browser: selection::BrowserState,
    /// Settings drafts.
    pub settings: settings::SettingsState,
    /// The annotation editor.
    pub annotate: annotate::AnnotateState,
    /// The import / export window, when open.
    pub interchange: Option<interchange::Window>,
    /// Train > Run VLM rollouts.
    pub vlm: Option<vlm::Window>,
    /// The quit confirmation is shown (uncompacted corrections).
    pub confirm_quit: bool,
    quit_allowed: bool,
    /// The keyboard help is open.
    pub help: bool,
    /// The command palette's query, when open.
    pub palette: Option<String>,
    /// The open window's typed path, when open.
    pub open_window: Option<String>,
    images: images::ImageCache,
    toasts: Vec<Toast>,
    wake: Waker,
    sessions_root: PathBuf,
    base_config: SessionConfig,
    dialog: Option<Receiver<Option<PathBuf>>>,
    dialog_for_compare: bool,
    screenshot: Option<(PathBuf, u32)>,
    frame: u32,
    shot_done: Option<Receiver<Result<(), String>>>,
    compare_tx: Sender<CompareRun>,
    compare_rx: Receiver<CompareRun>,
    pending_train: bool,
}

impl Studio {
    /// The studio in an eframe context.
    pub fn new(cc: &eframe::CreationContext<'_>, opts: StudioOptions) -> Self {
        let prefs = cc
            .storage
            .and_then(|s| eframe::get_value::<Prefs>(s, eframe::APP_KEY))
            .unwrap_or_default();
        let ctx = cc.egui_ctx.clone();
        Self::with_context(ctx, opts, prefs)
    }

    /// The studio for a given egui context (tests build it without eframe storage).
    pub fn with_context(ctx: egui::Context, opts: StudioOptions, prefs: Prefs) -> Self {
        let wake: Waker = {
            let ctx = ctx.clone();
            Arc::new(move || ctx.request_repaint())
        };
        let (compare_tx, compare_rx) = bounded(16);
        let mut s = Self {
            run: None,
            compare: Vec::new(),
            tab: opts.tab.unwrap_or(Tab::Training),
            prefs,
            browser: Default::default(),
            settings: Default::default(),
            annotate: Default::default(),
            interchange: None,
            vlm: None,
            confirm_quit: false,
            quit_allowed: false,
            help: false,
            palette: None,
            open_window: None,
            images: images::ImageCache::new(12, wake.clone()),
            toasts: Vec::new(),
            wake,
            sessions_root: opts
                .sessions_root
                .clone()
                .unwrap_or_else(|| PathBuf::from("sessions")),
            base_config: opts.config.clone().unwrap_or_else(default_config),
            dialog: None,
            dialog_for_compare: false,
            screenshot: opts.screenshot_to.clone().map(|p| (p, opts.frames.max(2))),
            frame: 0,
            shot_done: None,
            compare_tx,
            compare_rx,
            pending_train: false,
        };
        match &opts.open {
            Some(p) => s.open_path(p),
            None => s.new_session(s.base_config.clone()),
        }
        if opts.train {
            s.pending_train = true;
        }
        s
    }
}

/// The config of a new studio session: the ZoomBench defaults, with the
/// imitation warm-up the built-in policy needs before RL (RESULTS.md §1).
pub fn default_config() -> SessionConfig {
    let mut c = SessionConfig::default();
    c.trainer.warmup_iterations = 100;
    c.trainer.eval_every = 25;
    c
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Studio {
    fn toast(&mut self, text: impl Into<String>, error: bool) {
        self.toasts.push(Toast {
            text: text.into(),
            error,
            at: Instant::now(),
        });
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
            match Run::open(p, self.wake.clone()) {
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

    fn browse_dialog(&mut self, compare: bool) {
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
    fn logic(&mut self, ctx: &egui::Context) {
        if let Some(r) = &mut self.run {
            r.pump();
            for m in std::mem::take(&mut r.messages) {
                self.toasts.push(Toast {
                    text: m,
                    error: true,
                    at: Instant::now(),
                });
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
            self.compare.push(c);
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
        self.toasts
            .retain(|t| t.at.elapsed() < Duration::from_secs(if t.error { 12 } else { 4 }));
        if !self.toasts.is_empty() {
            ctx.request_repaint_after(Duration::from_millis(500));
        }
        self.screenshot_logic(ctx);
    }

    /// Closing the window with corrections that are only in the journal
    /// asks first (they are safe on disk, but not in the manifest).
    fn quit_logic(&mut self, ctx: &egui::Context) {
        if ctx.input(|i| i.viewport().close_requested())
            && !self.quit_allowed
            && self.annotate.uncompacted() > 0
        {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            self.confirm_quit = true;
        }
    }

    fn quit_dialog(&mut self, ctx: &egui::Context) {
        if !self.confirm_quit {
            return;
        }
        let n = self.annotate.uncompacted();
        let mut choice = None;
        egui::Modal::new(egui::Id::unique("confirm-quit")).show(ctx, |ui| {
            ui.heading("Save the ground-truth corrections?");
            ui.label(format!(
                "{n} correction{} {} in annotations.jsonl but not in manifest.jsonl. The journal keeps {}: it is applied whenever the dataset is loaded.",
                if n == 1 { "" } else { "s" },
                if n == 1 { "is" } else { "are" },
                if n == 1 { "it" } else { "them" },
            ));
            ui.horizontal(|ui| {
                if ui.button("Save and quit").clicked() {
                    choice = Some(0);
                }
                if ui.button("Quit without compacting").clicked() {
                    choice = Some(1);
                }
                if ui.button("Cancel").clicked() {
                    choice = Some(2);
                }
            });
        });
        match choice {
            Some(0) => {
                self.annotate.save();
                for (m, e) in std::mem::take(&mut self.annotate.messages) {
                    self.toast(m, e);
                }
                self.confirm_quit = false;
                if self.annotate.uncompacted() == 0 {
                    self.quit_allowed = true;
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
            }
            Some(1) => {
                self.confirm_quit = false;
                self.quit_allowed = true;
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            Some(2) => self.confirm_quit = false,
            _ => {}
        }
    }

    fn screenshot_logic(&mut self, ctx: &egui::Context) {
        if let Some(rx) = &self.shot_done
            && let Ok(r) = rx.try_recv()
        {
            if let Err(e) = r {
                eprintln!("error: {e}");
            }
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        let Some((path, frames)) = &self.screenshot else {
            return;
        };
        self.frame += 1;
        // Wait for the engine to be ready and the images to arrive, within the budget.
        if self.frame >= *frames && self.shot_done.is_none() {
            let (tx, rx) = bounded(1);
            let path = path.clone();
            ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(
                egui::ScreenshotCallback::new(move |img| {
                    let _ = tx.send(save_png(&img, &path));
                }),
            ));
            self.shot_done = Some(rx);
        }
        ctx.request_repaint_after(Duration::from_millis(30));
    }

    fn menu_bar(&mut self, ui: &mut egui::Ui) {
        let mut fire = None;
        egui::MenuBar::new().ui(ui, |ui| {
            let item = |ui: &mut egui::Ui, c: Cmd, fire: &mut Option<Cmd>| {
                let b = egui::Button::new(c.title()).shortcut_text(c.shortcut_text(ui.ctx()));
                if ui.add(b).clicked() {
                    *fire = Some(c);
                }
            };
            ui.menu_button("File", |ui| {
                for c in [Cmd::NewSession, Cmd::Open, Cmd::AddComparison] {
                    item(ui, c, &mut fire);
                }
                ui.separator();
                let dataset = self.run.as_ref().and_then(|r| r.cfg.data.dataset.clone());
                for (m, label) in [
                    (interchange::Mode::ImportVstar, "Import V* Bench folder…"),
                    (interchange::Mode::ImportCoco, "Import COCO detection file…"),
                ] {
                    if ui.button(label).clicked() {
                        self.interchange = Some(interchange::Window::new(m, None));
                    }
                }
                for (m, label) in [
                    (interchange::Mode::ExportCoco, "Export dataset as COCO…"),
                    (interchange::Mode::ExportJsonl, "Export dataset as JSONL…"),
                ] {
                    let b = ui.add_enabled(dataset.is_some(), egui::Button::new(label));
                    let b = if dataset.is_none() {
                        b.on_disabled_hover_text("the session's data is generated ZoomBench: write it as a dataset folder with `virl synth` and open that")
                    } else {
                        b
                    };
                    if b.clicked() {
                        self.interchange = Some(interchange::Window::new(m, dataset.as_deref()));
                    }
                }
                ui.separator();
                ui.label("Recent");
                for p in self.prefs.recent.clone() {
                    if ui.button(p.display().to_string()).clicked() {
                        self.open_path(&p);
                    }
                }
            });
            ui.menu_button("Train", |ui| {
                for c in [
                    Cmd::TrainPause,
                    Cmd::StepIteration,
                    Cmd::Stop,
                    Cmd::SaveCheckpoint,
                ] {
                    item(ui, c, &mut fire);
                }
                ui.separator();
                if ui
                    .button("Run VLM rollouts…")
                    .on_hover_text("a local Qwen3-VL checkpoint as the policy: multi-turn zoom rollouts, scored and shown in the inspector")
                    .clicked()
                {
                    let dataset = self.run.as_ref().and_then(|r| r.cfg.data.dataset.clone());
                    let device = self.run.as_ref().map(|r| r.cfg.device).unwrap_or_default();
                    self.vlm = Some(vlm::Window::new(
                        &self.sessions_root,
                        dataset.as_deref(),
                        device,
                        format!("vlm-{}", unix_secs()),
                    ));
                }
            });
            ui.menu_button("Inspect", |ui| {
                for c in [
                    Cmd::PrevTrajectory,
                    Cmd::NextTrajectory,
                    Cmd::PrevAction,
                    Cmd::NextAction,
                    Cmd::ToggleFollow,
                ] {
                    item(ui, c, &mut fire);
                }
            });
            ui.menu_button("Annotate", |ui| {
                item(ui, Cmd::EditGroundTruth, &mut fire);
                ui.separator();
                for c in Cmd::ANNOTATE {
                    item(ui, c, &mut fire);
                }
            });
            ui.menu_button("Help", |ui| {
                for c in [Cmd::Help, Cmd::Palette] {
                    item(ui, c, &mut fire);
                }
            });
            ui.separator();
            for (t, name) in [
                (Tab::Training, "Training"),
                (Tab::Rollouts, "Rollouts"),
                (Tab::Compare, "Compare"),
                (Tab::Annotate, "Annotate"),
            ] {
                let dirty = t == Tab::Annotate && self.annotate.uncompacted() > 0;
                let name = if dirty {
                    format!("{name} *")
                } else {
                    name.to_string()
                };
                ui.selectable_value(&mut self.tab, t, name);
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if let Some(r) = &self.run {
                    training::status_line(ui, r);
                }
            });
        });
        if let Some(c) = fire {
            self.run_cmd(c);
        }
    }

    fn overlays(&mut self, ctx: &egui::Context) {
        if self.help {
            let mut open = true;
            egui::Window::new("Keyboard")
                .open(&mut open)
                .collapsible(false)
                .show(ctx, |ui| {
                    egui::ScrollArea::vertical().max_height(620.0).show(ui, |ui| {
                        for (scope, heading) in [
                            (commands::Scope::Global, "Everywhere"),
                            (commands::Scope::NotAnnotate, "Training, rollouts and the inspector"),
                            (commands::Scope::Annotate, "Annotation editor (keys as in CVAT)"),
                        ] {
                            ui.strong(heading);
                            egui::Grid::new(("help", heading)).striped(true).show(ui, |ui| {
                                for c in Cmd::ALL.into_iter().filter(|c| c.scope() == scope) {
                                    ui.label(c.title());
                                    ui.monospace(c.shortcut_text(ctx));
                                    ui.end_row();
                                }
                            });
                            ui.add_space(6.0);
                        }
                        ui.weak("Annotation mouse: drag a box to move it, its handles to resize; right-drag pans, the wheel zooms.");
                    });
                });
            self.help = open;
        }
        if let Some(q) = &mut self.palette {
            let mut fire = None;
            let mut close = false;
            egui::Window::new("Command palette")
                .collapsible(false)
                .title_bar(false)
                .anchor(egui::Align2::CENTER_TOP, [0.0, 60.0])
                .show(ctx, |ui| {
                    let r = ui.text_edit_singleline(q);
                    r.request_focus();
                    let ql = q.to_lowercase();
                    let hits: Vec<Cmd> = Cmd::ALL
                        .into_iter()
                        .filter(|c| c.title().to_lowercase().contains(&ql))
                        .collect();
                    for c in &hits {
                        ui.horizontal(|ui| {
                            if ui.button(c.title()).clicked() {
                                fire = Some(*c);
                            }
                            ui.weak(c.shortcut_text(ctx));
                        });
                    }
                    if ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                        fire = hits.first().copied();
                    }
                    if ui.input(|i| i.key_pressed(egui::Key::Escape)) {
                        close = true;
                    }
                });
            if let Some(c) = fire {
                self.palette = None;
                self.run_cmd(c);
            } else if close {
                self.palette = None;
            }
        }
        if let Some(path) = &mut self.open_window {
            let mut go = None;
            let mut browse = false;
            let mut open = true;
            egui::Window::new("Open").open(&mut open).collapsible(false).show(ctx, |ui| {
                ui.label("A session folder (followed live), a dataset folder (manifest.jsonl) or an experiment folder (its sessions are compared).");
                ui.horizontal(|ui| {
                    let r = ui.add(egui::TextEdit::singleline(path).hint_text("path/to/folder").desired_width(360.0));
                    if ui.button("Open").clicked() || (r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter))) {
                        go = Some(PathBuf::from(path.trim()));
                    }
                    if ui.button("Browse…").clicked() {
                        browse = true;
                    }
                });
                if !self.prefs.recent.is_empty() {
                    ui.separator();
                    ui.label("Recent");
                    for p in &self.prefs.recent {
                        if ui.link(p.display().to_string()).clicked() {
                            go = Some(p.clone());
                        }
                    }
                }
            });
            if !open {
                self.open_window = None;
            }
            if browse {
                self.browse_dialog(false);
            }
            if let Some(p) = go {
                self.open_window = None;
                self.open_path(&p);
            }
        }
        if let Some(w) = &mut self.interchange {
            let (open, msg, opened) = w.ui(ctx);
            if !open {
                self.interchange = None;
            }
            if let Some((m, e)) = msg {
                self.toast(m, e);
            }
            if let Some(p) = opened {
                self.interchange = None;
                self.open_path(&p);
                self.tab = Tab::Annotate;
            }
        }
        if let Some(w) = &mut self.vlm {
            let (open, msg, opened) = w.ui(ctx);
            if !open {
                self.vlm = None;
            }
            if let Some((m, e)) = msg {
                self.toast(m, e);
            }
            if let Some(p) = opened {
                self.vlm = None;
                self.open_path(&p);
                self.tab = Tab::Rollouts;
            }
        }
        // Toasts, newest at the bottom right.
        if !self.toasts.is_empty() {
            egui::Area::new(egui::Id::unique("toasts"))
                .anchor(egui::Align2::RIGHT_BOTTOM, [-12.0, -12.0])
                .show(ctx, |ui| {
                    for t in &self.toasts {
                        let fill = if t.error {
                            egui::Color32::from_rgb(110, 30, 30)
                        } else {
                            egui::Color32::from_rgb(30, 60, 90)
                        };
                        egui::Frame::popup(ui.style()).fill(fill).show(ui, |ui| {
                            ui.set_max_width(420.0);
                            ui.colored_label(egui::Color32::WHITE, &t.text);
                        });
                    }
                });
        }
    }
}

fn save_png(img: &egui::ColorImage, path: &Path) -> Result<(), String> {
    let [w, h] = img.size;
    let mut buf = Vec::with_capacity(w * h * 4);
    for p in &img.pixels {
        buf.extend_from_slice(&p.to_array());
    }
    let out =
        image::RgbaImage::from_raw(w as u32, h as u32, buf).ok_or("screenshot has a bad size")?;
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    out.save(path)
        .map_err(|e| format!("cannot write the screenshot: {e}: {}", path.display()))
}

impl eframe::App for Studio {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        Studio::logic(self, ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.prefs);
    }
}

impl Studio {
    /// One frame's non-drawing work (channels, keys, dropped files); eframe
    /// calls it before [`Studio::show`].
    pub fn tick(&mut self, ctx: &egui::Context) {
        self.logic(ctx);
    }

    /// Draws the whole studio into `ui`.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        egui::Panel::top("menu").show(ui, |ui| self.menu_bar(ui));
        if let Some(r) = &self.run {
            egui::Panel::top("progress").show(ui, |ui| {
                if let Some(go) = training::progress_and_banners(ui, r) {
                    self.browser.show_failure(go);
                    self.tab = Tab::Rollouts;
                }
            });
        }
        egui::Panel::left("settings")
            .resizable(true)
            .default_size(270.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    if let Some(r) = &mut self.run {
                        self.settings.ui(ui, r);
                    } else {
                        ui.label("No session. File > New ZoomBench session, or open one (Ctrl+O).");
                    }
                });
            });
        egui::CentralPanel::default().show(ui, |ui| match self.tab {
            Tab::Training => match &self.run {
                Some(r) => training::curves(ui, r, &mut self.prefs.smoothing),
                None => {
                    ui.label("No session.");
                }
            },
            Tab::Rollouts => match &mut self.run {
                Some(r) => {
                    let fire = browser::rollouts_view(ui, r, &mut self.browser, &mut self.images);
                    if let Some(c) = fire {
                        self.run_cmd(c);
                    }
                }
                None => {
                    ui.label("No session.");
                }
            },
            Tab::Compare => compare::ui(
                ui,
                self.run.as_ref(),
                &mut self.compare,
                self.prefs.smoothing,
            ),
            Tab::Annotate => match &mut self.run {
                Some(r) => {
                    let fire = annotate::ui(ui, r, &mut self.annotate, &mut self.images);
                    if let Some(c) = fire {
                        self.run_cmd(c);
                    }
                }
                None => {
                    ui.label("No session: open a dataset or session to annotate its samples.");
                }
            },
        });
        self.overlays(&ctx);
        self.quit_dialog(&ctx);
        for (m, e) in std::mem::take(&mut self.annotate.messages) {
            self.toast(m, e);
        }
    }
}

/// Opens the studio in a window; returns when it is closed.
pub fn run_native(opts: StudioOptions) -> anyhow::Result<()> {
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1440.0, 900.0])
            .with_min_inner_size([900.0, 600.0])
            .with_title("ViRL Studio")
            .with_drag_and_drop(true),
        persist_window: opts.screenshot_to.is_none(),
        ..Default::default()
    };
    eframe::run_native(
        "ViRL Studio",
        native,
        Box::new(move |cc| Ok(Box::new(Studio::new(cc, opts)))),
    )
    .map_err(|e| anyhow::anyhow!("the studio window failed: {e}"))
}
