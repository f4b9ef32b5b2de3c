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
}

impl Cmd {
    /// Every command, in menu order.
    pub const ALL: [Self; 14] = [
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
        Self::Palette,
        Self::Help,
    ];

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
        }
    }

    /// The keyboard shortcut, if any.
    pub fn shortcut(self) -> Option<KeyboardShortcut> {
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
            Self::Stop | Self::NewSession | Self::AddComparison => None,
        }
    }

    /// The shortcut as text ("Ctrl+O").
    pub fn shortcut_text(self, ctx: &egui::Context) -> String {
        // egui writes arrow keys as ⏴ ⏵, which the default fonts lack.
        self.shortcut()
            .map(|s| {
                ctx.format_shortcut(&s)
                    .replace('⏴', "Left")
                    .replace('⏵', "Right")
                    .replace('⏶', "Up")
                    .replace('⏷', "Down")
            })
            .unwrap_or_default()
    }

    /// Whether the command fires on a bare key and so must not while a text
    /// field has the keyboard.
    pub fn bare_key(self) -> bool {
        self.shortcut().is_some_and(|s| s.modifiers.is_none())
    }

    /// The commands whose shortcuts were pressed this frame (consumed).
    pub fn pressed(ctx: &egui::Context) -> Vec<Self> {
        let typing = ctx.egui_wants_keyboard_input();
        ctx.input_mut(|i| {
            Self::ALL
                .into_iter()
                .filter(|c| !(typing && c.bare_key()))
                .filter(|c| c.shortcut().is_some_and(|s| i.consume_shortcut(&s)))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcuts_are_unique_and_titles_present() {
        let mut seen = std::collections::HashSet::new();
        for c in Cmd::ALL {
            assert!(!c.title().is_empty());
            if let Some(s) = c.shortcut() {
                assert!(
                    seen.insert((s.modifiers.command, s.modifiers.ctrl, s.logical_key)),
                    "{c:?}"
                );
            }
        }
        assert_eq!(
            Cmd::TrainPause.shortcut().map(|s| s.logical_key),
            Some(Key::Space)
        );
    }
}
