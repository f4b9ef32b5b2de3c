//! The studio as an eframe app: its options, preferences and state, the
//! frame's layout (`ui()` draws and queues [`Request`]s), and the native
//! window. What it does is in [`super::logic`].

use super::commands::Cmd;
use super::compare::CompareRun;
use super::run::{Run, Waker};
use super::toasts::Toast;
use super::{annotate, browser, compare, images, interchange, selection, settings, training, vlm};
use crossbeam_channel::{Receiver, Sender, bounded};
use std::path::PathBuf;
use std::sync::Arc;
use virl_engine::config::SessionConfig;

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
    /// Instead of `frames`: take the screenshot this many seconds after
    /// start, repainting once a second meanwhile (a live run's curves at a
    /// given time, with the UI taking no more than it does when idle).
    pub screenshot_after_s: Option<f64>,
    /// Show this tab first.
    pub tab: Option<Tab>,
    /// With `open`: the dataset folder to show instead of the one the
    /// session names (a verl trace viewed where the data is mounted at
    /// another path).
    pub dataset: Option<PathBuf>,
    /// Annotate: show image pixel `(x, y)` at the canvas centre at `zoom` ×
    /// the fitted size (`[x, y, zoom]`).
    pub zoom_to: Option<[f64; 3]>,
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
    /// Compare: draw the seeds of one arm (`<arm>-s<seed>`) as their mean
    /// with a ± one standard deviation band.
    pub group_seeds: bool,
    /// Most MiB of full-resolution tile textures kept for large images
    /// (the inspector and the annotation canvas).
    pub tile_cache_mib: usize,
}

impl Default for Prefs {
    fn default() -> Self {
        Self {
            recent: Vec::new(),
            smoothing: 0.6,
            group_seeds: true,
            tile_cache_mib: super::tiles::DEFAULT_BUDGET_MIB,
        }
    }
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
    /// The user chose to close (the quit dialog is not shown again).
    pub(super) quit_allowed: bool,
    /// The keyboard help is open.
    pub help: bool,
    /// The command palette's query, when open.
    pub palette: Option<String>,
    /// The open window's typed path, when open.
    pub open_window: Option<String>,
    /// Decoded images and crops, as textures.
    pub(super) images: images::ImageCache,
    /// Messages being shown.
    pub(super) toasts: Vec<Toast>,
    /// Wakes the UI from background threads.
    pub(super) wake: Waker,
    /// Where new sessions go.
    pub(super) sessions_root: PathBuf,
    /// The config of a new session.
    pub(super) base_config: SessionConfig,
    /// The dataset folder that replaces an opened session's (`--dataset`).
    pub(super) dataset_override: Option<PathBuf>,
    /// The native folder dialog in flight.
    pub(super) dialog: Option<Receiver<Option<PathBuf>>>,
    /// Whether that dialog adds to Compare.
    pub(super) dialog_for_compare: bool,
    /// `--screenshot-after`: seconds to wait instead of frames, from `started`.
    pub(super) shot_after: Option<(f64, std::time::Instant)>,
    /// `--screenshot-to`: the file and the frames to wait.
    pub(super) screenshot: Option<(PathBuf, u32)>,
    /// Frames drawn (for the screenshot).
    pub(super) frame: u32,
    /// The screenshot being written.
    pub(super) shot_done: Option<Receiver<Result<(), String>>>,
    /// Sessions loaded for Compare arrive here…
    pub(super) compare_tx: Sender<CompareRun>,
    /// …and are taken here.
    pub(super) compare_rx: Receiver<CompareRun>,
    /// Start training once the engine is ready (`--train`, Space while starting).
    pub(super) pending_train: bool,
    /// What this frame's drawing asked for, carried out by the next `logic()`.
    pub(super) requests: Vec<Request>,
}

/// What the drawing code asks the studio to do: `ui()` only draws and
/// queues these; [`Studio::logic`] carries them out (commands, opening
/// folders, dialogs, saving).
#[derive(Clone, Debug)]
pub enum Request {
    /// Run a command of the command table.
    Cmd(Cmd),
    /// Open a session, dataset or experiment folder.
    Open(PathBuf),
    /// Open a folder, then show this tab.
    OpenAt(PathBuf, Tab),
    /// The native folder dialog (for Compare, or to open).
    Browse {
        /// Add the chosen folder to Compare instead of opening it.
        compare: bool,
    },
    /// Show the trajectories of a failure signature in the browser.
    FailureExamples(virl_engine::metrics::FailureKind),
    /// Compact the ground-truth corrections, then close.
    SaveAndQuit,
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
        // Images and tiles repaint at once; a run's events (several per
        // training iteration, which takes a second or more) at most once a
        // second, so that drawing the curves does not take the cores the
        // run trains on: with software rendering on 2 cores the rasteriser
        // took 28 % of the CPU at four repaints a second, and ten a second
        // cost a third of the iterations (RESULTS §1j, §1k). Input (a
        // mouse move, a key) still repaints at once.
        let image_wake: Waker = {
            let ctx = ctx.clone();
            Arc::new(move || ctx.request_repaint())
        };
        let wake: Waker = {
            let ctx = ctx.clone();
            Arc::new(move || ctx.request_repaint_after(std::time::Duration::from_secs(1)))
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
            images: images::ImageCache::new(12, image_wake),
            toasts: Vec::new(),
            wake,
            sessions_root: opts
                .sessions_root
                .clone()
                .unwrap_or_else(|| PathBuf::from("sessions")),
            base_config: opts.config.clone().unwrap_or_else(default_config),
            dataset_override: opts.dataset.clone(),
            dialog: None,
            dialog_for_compare: false,
            screenshot: opts.screenshot_to.clone().map(|p| (p, opts.frames.max(2))),
            shot_after: opts
                .screenshot_after_s
                .map(|s| (s, std::time::Instant::now())),
            frame: 0,
            shot_done: None,
            compare_tx,
            compare_rx,
            pending_train: false,
            requests: Vec::new(),
        };
        match &opts.open {
            Some(p) => s.open_path(p),
            None => s.new_session(s.base_config.clone()),
        }
        if opts.train {
            s.pending_train = true;
        }
        s.annotate.focus = opts.zoom_to.map(|[x, y, z]| (z as f32, [x, y]));
        if let Some(f) = s.annotate.focus {
            ctx.data_mut(|d| d.insert_temp(super::inspector::focus_id(), f));
        }
        s
    }
}

/// The config of a new studio session and of `virl train` without
/// `--config`: the ZoomBench defaults (a GELU reader) with the schedule of
/// RESULTS.md §1i — 300 warm-up iterations imitating freshly generated
/// samples (the reader learns to read instead of memorising the training
/// split), one pass over each in minibatches of 32, the gradient-norm clip
/// at 5, then 100 iterations of ViRL RL at a tenth of the imitation rate
/// (§1d), a greedy evaluation every 25; and a 96 px global view, so that
/// zooms are aimed on 8 px cells instead of 12 px (§1j).
/// `bench/configs/default-g96.toml` spells it out (tested).
pub fn default_config() -> SessionConfig {
    let mut c = SessionConfig::default();
    c.env.global_view = 96;
    c.trainer.warmup_iterations = 300;
    c.trainer.warmup_data = virl_engine::config::WarmupData::Fresh;
    c.trainer.warmup_epochs = Some(1);
    c.trainer.minibatch = 32;
    c.trainer.max_grad_norm = 5.0;
    c.trainer.rl_lr = Some(3e-4);
    c.trainer.iterations = 400;
    c.trainer.eval_every = 25;
    c
}

/// Seconds since the Unix epoch (session folder names).
pub(super) fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Studio {
    /// Queues a request for the next `logic()`.
    pub(super) fn request(&mut self, r: Request) {
        self.requests.push(r);
    }
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
        self.images.tiles.budget = self.prefs.tile_cache_mib.max(16) << 20;
        self.logic(ctx);
    }

    /// Draws the whole studio into `ui`.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        egui::Panel::top("menu").show(ui, |ui| self.menu_bar(ui));
        if let Some(r) = &self.run {
            let mut go = None;
            egui::Panel::top("progress").show(ui, |ui| {
                go = training::progress_and_banners(ui, r);
            });
            if let Some(kind) = go {
                self.request(Request::FailureExamples(kind));
            }
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
                        self.requests.push(Request::Cmd(c));
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
                &mut self.prefs.group_seeds,
            ),
            Tab::Annotate => match &mut self.run {
                Some(r) => {
                    let fire = annotate::ui(ui, r, &mut self.annotate, &mut self.images);
                    if let Some(c) = fire {
                        self.requests.push(Request::Cmd(c));
                    }
                }
                None => {
                    ui.label("No session: open a dataset or session to annotate its samples.");
                }
            },
        });
        if !self.requests.is_empty() || self.annotate.has_pending() {
            ctx.request_repaint();
        }
        self.help_window(&ctx);
        self.palette_window(&ctx);
        self.open_window(&ctx);
        self.tool_windows(&ctx);
        self.toasts_ui(&ctx);
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
