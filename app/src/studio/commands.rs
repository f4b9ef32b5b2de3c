//! Every user command in one table: title, shortcut, and where it shows.
//! Menus, the F1 help overlay, the command palette and the key handling all
//! read this table (STYLE.md, rerun).

use egui::{Key, KeyboardShortcut, Modifiers};

/// A studio command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cmd {
    /// Start or pause training.
    TrainPause,
    /// One training iteration, then pause.
    StepIteration,
    /// Stop training.
    Stop,
    /// Next action of the inspected trajectory.
    NextAction,
    /// Previous action.
    PrevAction,
    /// Next trajectory in the browser.
    NextTrajectory,
    /// Previous trajectory.
    PrevTrajectory,
    /// Follow the newest iteration / pin the current trajectory.
    ToggleFollow,
    /// Open a session or dataset.
    Open,
    /// A new training session on ZoomBench.
    NewSession,
    /// Add a session's curves to the comparison.
    AddComparison,
    /// The command palette.
    Palette,
    /// The keyboard help.
    Help,
    /// Save a checkpoint now.
    SaveCheckpoint,
    /// Open the inspected trajectory's sample in the annotation editor.
    EditGroundTruth,
    /// Annotation: draw a new box (then drag).
    DrawBox,
    /// Annotation: select the next box.
    NextBox,
    /// Annotation: select the previous box.
    PrevBox,
    /// Annotation: move the selected box 1 px left.
    NudgeLeft,
    /// Annotation: 1 px right.
    NudgeRight,
    /// Annotation: 1 px up.
    NudgeUp,
    /// Annotation: 1 px down.
    NudgeDown,
    /// Annotation: 10 px left.
    NudgeLeft10,
    /// Annotation: 10 px right.
    NudgeRight10,
    /// Annotation: 10 px up.
    NudgeUp10,
    /// Annotation: 10 px down.
    NudgeDown10,
    /// Annotation: delete the selected box.
    DeleteBox,
    /// Annotation: hide or show the selected box (view only).
    HideBox,
    /// Annotation: undo the last edit.
    Undo,
    /// Annotation: redo.
    Redo,
    /// Annotation: compact the correction journal into the manifest.
    SaveAnnotations,
    /// Annotation: next sample.
    NextSample,
    /// Annotation: previous sample.
    PrevSample,
    /// Annotation: cancel drawing, deselect.
    CancelEdit,
}

/// Where a command's shortcut works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everywhere.
    Global,
    /// Everywhere but the annotation editor (its keys follow CVAT and reuse
    /// N, F, D, the arrows and Ctrl+S).
    NotAnnotate,
    /// Only in the annotation editor.
    Annotate,
}

impl Cmd {
    /// Every command, in menu order.
    pub const ALL: [Self; 34] = [
        Self::NewSession,
        Self::Open,
        Self::AddComparison,
        Self::TrainPause,
        Self::StepIteration,
        Self::Stop,
        Self::SaveCheckpoint,
        Self::PrevTrajectory,
        Self::NextTrajectory,
        Self::PrevAction,
        Self::NextAction,
        Self::ToggleFollow,
        Self::EditGroundTruth,
        Self::DrawBox,
        Self::NextBox,
        Self::PrevBox,
        Self::NudgeLeft,
        Self::NudgeRight,
        Self::NudgeUp,
        Self::NudgeDown,
        Self::NudgeLeft10,
        Self::NudgeRight10,
        Self::NudgeUp10,
        Self::NudgeDown10,
        Self::DeleteBox,
        Self::HideBox,
        Self::Undo,
        Self::Redo,
        Self::SaveAnnotations,
        Self::PrevSample,
        Self::NextSample,
        Self::CancelEdit,
        Self::Palette,
        Self::Help,
    ];

    /// The annotation editor's commands, in menu order.
    pub const ANNOTATE: [Self; 19] = [
        Self::DrawBox,
        Self::NextBox,
        Self::PrevBox,
        Self::NudgeLeft,
        Self::NudgeRight,
        Self::NudgeUp,
        Self::NudgeDown,
        Self::NudgeLeft10,
        Self::NudgeRight10,
        Self::NudgeUp10,
        Self::NudgeDown10,
        Self::DeleteBox,
        Self::HideBox,
        Self::Undo,
        Self::Redo,
        Self::SaveAnnotations,
        Self::PrevSample,
        Self::NextSample,
        Self::CancelEdit,
    ];

    /// Where the shortcut works.
    pub fn scope(self) -> Scope {
        match self {
            Self::StepIteration
            | Self::SaveCheckpoint
            | Self::NextAction
            | Self::PrevAction
            | Self::NextTrajectory
            | Self::PrevTrajectory
            | Self::ToggleFollow
            | Self::EditGroundTruth => Scope::NotAnnotate,
            c if Self::ANNOTATE.contains(&c) => Scope::Annotate,
            _ => Scope::Global,
        }
    }

    /// Title in menus and the palette.
    pub fn title(self) -> &'static str {
        match self {
            Self::TrainPause => "Train / pause",
            Self::StepIteration => "Run one iteration",
            Self::Stop => "Stop training",
            Self::NextAction => "Next action",
            Self::PrevAction => "Previous action",
            Self::NextTrajectory => "Next trajectory",
            Self::PrevTrajectory => "Previous trajectory",
            Self::ToggleFollow => "Follow newest / pin",
            Self::Open => "Open session or dataset…",
            Self::NewSession => "New ZoomBench session",
            Self::AddComparison => "Compare with session…",
            Self::Palette => "Command palette",
            Self::Help => "Keyboard help",
            Self::SaveCheckpoint => "Save checkpoint",
            Self::EditGroundTruth => "Edit this sample's ground truth",
            Self::DrawBox => "Draw a box",
            Self::NextBox => "Select next box",
            Self::PrevBox => "Select previous box",
            Self::NudgeLeft => "Nudge box left 1 px",
            Self::NudgeRight => "Nudge box right 1 px",
            Self::NudgeUp => "Nudge box up 1 px",
            Self::NudgeDown => "Nudge box down 1 px",
            Self::NudgeLeft10 => "Nudge box left 10 px",
            Self::NudgeRight10 => "Nudge box right 10 px",
            Self::NudgeUp10 => "Nudge box up 10 px",
            Self::NudgeDown10 => "Nudge box down 10 px",
            Self::DeleteBox => "Delete box",
            Self::HideBox => "Hide / show box",
            Self::Undo => "Undo",
            Self::Redo => "Redo",
            Self::SaveAnnotations => "Save corrections into the manifest",
            Self::NextSample => "Next sample",
            Self::PrevSample => "Previous sample",
            Self::CancelEdit => "Cancel drawing / deselect",
        }
    }

    /// The keyboard shortcut, if any (the first of [`Cmd::shortcuts`]).
    pub fn shortcut(self) -> Option<KeyboardShortcut> {
        self.shortcuts().first().copied()
    }

    /// Every shortcut of the command (some have an alternative, as in CVAT).
    pub fn shortcuts(self) -> Vec<KeyboardShortcut> {
        let shift_cmd = Modifiers::COMMAND | Modifiers::SHIFT;
        match self {
            Self::DeleteBox => vec![
                KeyboardShortcut::new(Modifiers::NONE, Key::Delete),
                KeyboardShortcut::new(Modifiers::NONE, Key::Backspace),
            ],
            Self::Redo => vec![
                KeyboardShortcut::new(shift_cmd, Key::Z),
                KeyboardShortcut::new(Modifiers::COMMAND, Key::Y),
            ],
            c => c.main_shortcut().into_iter().collect(),
        }
    }

    fn main_shortcut(self) -> Option<KeyboardShortcut> {
        let k = |m, key| Some(KeyboardShortcut::new(m, key));
        match self {
            Self::TrainPause => k(Modifiers::NONE, Key::Space),
            Self::StepIteration => k(Modifiers::NONE, Key::N),
            Self::NextAction => k(Modifiers::NONE, Key::ArrowRight),
            Self::PrevAction => k(Modifiers::NONE, Key::ArrowLeft),
            Self::NextTrajectory => k(Modifiers::NONE, Key::F),
            Self::PrevTrajectory => k(Modifiers::NONE, Key::D),
            Self::ToggleFollow => k(Modifiers::NONE, Key::L),
            Self::Open => k(Modifiers::COMMAND, Key::O),
            Self::Palette => k(Modifiers::COMMAND, Key::K),
            Self::Help => k(Modifiers::NONE, Key::F1),
            Self::SaveCheckpoint => k(Modifiers::COMMAND, Key::S),
            Self::EditGroundTruth => k(Modifiers::NONE, Key::E),
            Self::DrawBox => k(Modifiers::NONE, Key::N),
            Self::NextBox => k(Modifiers::NONE, Key::Tab),
            Self::PrevBox => k(Modifiers::SHIFT, Key::Tab),
            Self::NudgeLeft => k(Modifiers::NONE, Key::ArrowLeft),
            Self::NudgeRight => k(Modifiers::NONE, Key::ArrowRight),
            Self::NudgeUp => k(Modifiers::NONE, Key::ArrowUp),
            Self::NudgeDown => k(Modifiers::NONE, Key::ArrowDown),
            Self::NudgeLeft10 => k(Modifiers::SHIFT, Key::ArrowLeft),
            Self::NudgeRight10 => k(Modifiers::SHIFT, Key::ArrowRight),
            Self::NudgeUp10 => k(Modifiers::SHIFT, Key::ArrowUp),
            Self::NudgeDown10 => k(Modifiers::SHIFT, Key::ArrowDown),
            Self::DeleteBox | Self::Redo => None,
            Self::HideBox => k(Modifiers::NONE, Key::H),
            Self::Undo => k(Modifiers::COMMAND, Key::Z),
            Self::SaveAnnotations => k(Modifiers::COMMAND, Key::S),
            Self::NextSample => k(Modifiers::NONE, Key::F),
            Self::PrevSample => k(Modifiers::NONE, Key::D),
            Self::CancelEdit => k(Modifiers::NONE, Key::Escape),
            Self::Stop | Self::NewSession | Self::AddComparison => None,
        }
    }

    /// The shortcuts as text ("Ctrl+O", "Delete or Backspace").
    pub fn shortcut_text(self, ctx: &egui::Context) -> String {
        // egui writes arrow keys as ⏴ ⏵, which the default fonts lack.
        self.shortcuts()
            .iter()
            .map(|s| {
                ctx.format_shortcut(s)
                    .replace('⏴', "Left")
                    .replace('⏵', "Right")
                    .replace('⏶', "Up")
                    .replace('⏷', "Down")
            })
            .collect::<Vec<_>>()
            .join(" or ")
    }

    /// Whether the command fires on a bare key and so must not while a text
    /// field has the keyboard.
    pub fn bare_key(self) -> bool {
        self.shortcut().is_some_and(|s| s.modifiers.is_none())
    }

    /// Whether the shortcut works in the annotation editor (`annotating`)
    /// or elsewhere.
    pub fn active(self, annotating: bool) -> bool {
        match self.scope() {
            Scope::Global => true,
            Scope::NotAnnotate => !annotating,
            Scope::Annotate => annotating,
        }
    }

    /// The commands whose shortcuts were pressed this frame (consumed).
    /// Shortcuts with more modifiers are tried first, so Shift+Left is not
    /// taken for Left.
    pub fn pressed(ctx: &egui::Context, annotating: bool) -> Vec<Self> {
        let typing = ctx.egui_wants_keyboard_input();
        let mut cands: Vec<(Self, KeyboardShortcut)> = Self::ALL
            .into_iter()
            .filter(|c| c.active(annotating))
            .filter(|c| !(typing && (c.bare_key() || c.scope() == Scope::Annotate)))
            .flat_map(|c| c.shortcuts().into_iter().map(move |s| (c, s)))
            .collect();
        let n_mods = |m: Modifiers| m.shift as u8 + m.command as u8 + m.ctrl as u8 + m.alt as u8;
        cands.sort_by_key(|(_, s)| std::cmp::Reverse(n_mods(s.modifiers)));
        let mut out: Vec<Self> = Vec::new();
        ctx.input_mut(|i| {
            for (c, s) in cands {
                if i.consume_shortcut(&s) && !out.contains(&c) {
                    out.push(c);
                }
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcuts_are_unique_within_a_mode_and_titles_present() {
        for annotating in [false, true] {
            let mut seen = std::collections::HashSet::new();
            for c in Cmd::ALL.into_iter().filter(|c| c.active(annotating)) {
                assert!(!c.title().is_empty());
                for s in c.shortcuts() {
                    assert!(
                        seen.insert((s.modifiers.command, s.modifiers.shift, s.logical_key)),
                        "{c:?} (annotating: {annotating})"
                    );
                }
            }
        }
        let all: std::collections::HashSet<Cmd> = Cmd::ALL.into_iter().collect();
        assert_eq!(all.len(), Cmd::ALL.len(), "a command listed twice");
        assert_eq!(Cmd::Redo.shortcuts().len(), 2);
        assert_eq!(Cmd::DeleteBox.shortcuts().len(), 2);
        assert_eq!(
            Cmd::TrainPause.shortcut().map(|s| s.logical_key),
            Some(Key::Space)
        );
    }
}
