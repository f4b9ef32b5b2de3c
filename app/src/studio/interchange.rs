//! File > Import / Export: the studio's front end to `virl import` and
//! `virl export` (engine `dataset::interchange`). The work runs on a
//! background thread; the result comes back as a toast, and an imported
//! dataset is opened.

use crossbeam_channel::{Receiver, bounded};
use std::path::{Path, PathBuf};
use virl_engine::dataset::Dataset;
use virl_engine::dataset::interchange::{self, ExportFormat};

/// A finished job: its message and, for an import, the new dataset.
type JobResult = Result<(String, Option<PathBuf>), String>;

/// What the window does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// V* folder in.
    ImportVstar,
    /// COCO file in.
    ImportCoco,
    /// Visual-CoT file in.
    ImportViscot,
    /// COCO file out.
    ExportCoco,
    /// JSONL out.
    ExportJsonl,
}

impl Mode {
    fn title(self) -> &'static str {
        match self {
            Self::ImportVstar => "Import a V* Bench folder",
            Self::ImportCoco => "Import a COCO detection file",
            Self::ImportViscot => "Import a Visual-CoT file",
            Self::ExportCoco => "Export the dataset as COCO",
            Self::ExportJsonl => "Export the dataset as JSONL",
        }
    }
}

/// The window's state.
pub struct Window {
    /// What it does.
    pub mode: Mode,
    /// Source (import) or the dataset folder (export).
    pub src: String,
    /// COCO: the images folder.
    pub images: String,
    /// Output: dataset folder (import) or file (export).
    pub out: String,
    /// Import: keep the good samples and list the bad ones.
    pub skip_bad: bool,
    /// Import: link or copy the images into the dataset folder instead of
    /// naming them where they lie.
    pub copy_images: bool,
    running: Option<Receiver<JobResult>>,
    /// Run was pressed; [`Window::logic`] starts the job.
    start_requested: bool,
}

impl Window {
    /// A window for `mode`; `dataset` is the open session's dataset folder, if any.
    pub fn new(mode: Mode, dataset: Option<&Path>) -> Self {
        let d = dataset.map(|p| p.display().to_string()).unwrap_or_default();
        let (src, out) = match mode {
            Mode::ImportVstar | Mode::ImportCoco | Mode::ImportViscot => {
                (String::new(), "datasets/imported".into())
            }
            Mode::ExportCoco => (d.clone(), format!("{}.coco.json", d.trim_end_matches('/'))),
            Mode::ExportJsonl => (
                d.clone(),
                format!("{}.export.jsonl", d.trim_end_matches('/')),
            ),
        };
        Self {
            mode,
            src,
            images: String::new(),
            out,
            skip_bad: false,
            copy_images: false,
            running: None,
            start_requested: false,
        }
    }

    /// Draws the window. Returns `(open, message, dataset to open)`: the
    /// window stays open while `open`; a finished job gives its message (error
    /// flagged) and, for an import, the new dataset's folder.
    pub fn ui(&mut self, ctx: &egui::Context) -> (bool, Option<(String, bool)>, Option<PathBuf>) {
        let mut open = true;
        let mut go = false;
        let mut result = (None, None);
        if let Some(rx) = &self.running
            && let Ok(r) = rx.try_recv()
        {
            self.running = None;
            result = match r {
                Ok((m, p)) => (Some((m, false)), p),
                Err(e) => (Some((e, true)), None),
            };
        }
        egui::Window::new(self.mode.title())
            .open(&mut open)
            .collapsible(false)
            .show(ctx, |ui| {
                let importing = matches!(
                    self.mode,
                    Mode::ImportVstar | Mode::ImportCoco | Mode::ImportViscot
                );
                egui::Grid::new("interchange")
                    .num_columns(2)
                    .show(ui, |ui| {
                        ui.label(match self.mode {
                            Mode::ImportVstar => "V* folder",
                            Mode::ImportCoco => "COCO JSON file",
                            Mode::ImportViscot => "Visual-CoT JSON file",
                            _ => "dataset folder",
                        });
                        ui.add(egui::TextEdit::singleline(&mut self.src).desired_width(360.0));
                        ui.end_row();
                        if matches!(self.mode, Mode::ImportCoco | Mode::ImportViscot) {
                            ui.label("images folder");
                            ui.add(
                                egui::TextEdit::singleline(&mut self.images)
                                    .hint_text("default: the JSON file's folder")
                                    .desired_width(360.0),
                            );
                            ui.end_row();
                        }
                        ui.label(if importing {
                            "new dataset folder"
                        } else {
                            "output file"
                        });
                        ui.add(egui::TextEdit::singleline(&mut self.out).desired_width(360.0));
                        ui.end_row();
                    });
                if importing {
                    ui.checkbox(
                        &mut self.skip_bad,
                        "skip bad samples (list them) instead of failing",
                    );
                    ui.checkbox(
                        &mut self.copy_images,
                        "copy the images into the dataset folder (otherwise it names them where they lie)",
                    );
                }
                ui.horizontal(|ui| {
                    let busy = self.running.is_some();
                    if ui
                        .add_enabled(
                            !busy,
                            egui::Button::new(if importing { "Import" } else { "Export" }),
                        )
                        .clicked()
                    {
                        go = true;
                    }
                    if busy {
                        ui.add(egui::Spinner::new());
                    }
                });
            });
        if go {
            // Started by `logic()`: drawing only records the request.
            self.start_requested = true;
            ctx.request_repaint();
        }
        (open || self.running.is_some(), result.0, result.1)
    }
}

fn run(mode: Mode, src: &Path, images: &str, out: &Path, skip_bad: bool, copy: bool) -> JobResult {
    match mode {
        Mode::ImportVstar | Mode::ImportCoco | Mode::ImportViscot => {
            let recorded = (images.is_empty() && mode == Mode::ImportCoco)
                .then(|| interchange::coco_images_root(src))
                .flatten();
            let images = if let Some(r) = recorded {
                r
            } else if images.is_empty() {
                src.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from("."))
            } else {
                PathBuf::from(images)
            };
            let mut rep = match mode {
                Mode::ImportVstar => interchange::read_vstar(src),
                Mode::ImportViscot => interchange::read_viscot(src, &images),
                _ => interchange::read_coco(src, &images),
            }
            .map_err(|e| e.to_string())?;
            interchange::verify_images(&mut rep);
            let skipped = rep.problems.len();
            let first = rep.problems.first().map(ToString::to_string);
            let placed = if copy {
                interchange::Images::Copy
            } else {
                interchange::Images::Reference
            };
            let ds = interchange::write_dataset(rep, out, skip_bad, placed)
                .map_err(|e| e.to_string())?;
            let mut m = format!("imported {} samples into {}", ds.len(), out.display());
            if skipped > 0 {
                m.push_str(&format!(
                    "; {skipped} skipped, the first: {}",
                    first.unwrap_or_default()
                ));
            }
            Ok((m, Some(out.to_path_buf())))
        }
        Mode::ExportCoco | Mode::ExportJsonl => {
            let ds = Dataset::load(src).map_err(|e| e.to_string())?;
            let f = if mode == Mode::ExportCoco {
                ExportFormat::Coco
            } else {
                ExportFormat::Jsonl
            };
            interchange::export(&ds, f, out).map_err(|e| e.to_string())?;
            Ok((
                format!(
                    "exported {} samples (with {} corrections from the journal) to {}",
                    ds.len(),
                    ds.pending_edits(),
                    out.display()
                ),
                None,
            ))
        }
    }
}

impl Window {
    /// Starts the job the window's Run button asked for (off the UI thread).
    pub fn logic(&mut self, ctx: &egui::Context) {
        if !std::mem::take(&mut self.start_requested) || self.running.is_some() {
            return;
        }
        let (tx, rx) = bounded(1);
        let (mode, src, images, out, skip, copy) = (
            self.mode,
            PathBuf::from(self.src.trim()),
            self.images.trim().to_string(),
            PathBuf::from(self.out.trim()),
            self.skip_bad,
            self.copy_images,
        );
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let _ = tx.send(run(mode, &src, &images, &out, skip, copy));
            ctx.request_repaint();
        });
        self.running = Some(rx);
    }
}
