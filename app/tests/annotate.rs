//! The annotation editor's flows through egui_kittest: draw, move, resize,
//! nudge, delete, undo, redo, save, labels and quitting, each checked
//! against the boxes stored on disk (manifest + journal, as `Dataset::load`
//! reads them). `annotate_gt.rs` has the crash test and the round trips.

mod common;
use common::annotate::*;

use egui::{Key, Modifiers};
use egui_kittest::Harness;
use virl_engine::dataset::Dataset;
use virl_studio::studio::Studio;

#[test]
fn draw_move_resize_nudge_delete_undo_redo_save() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ds = dataset(tmp.path(), 4);
    let mut h = open_annotator(tmp.path(), &ds);
    let id = h.state().annotate.sample.clone().expect("sample");
    let original = stored(&ds, &id);
    let n0 = original.len();

    // Draw: N, then drag.
    h.key_press(Key::N);
    h.run_steps(2);
    assert!(h.state().annotate.drawing);
    drag(&mut h, (40.0, 40.0), (100.0, 90.0));
    let boxes = stored(&ds, &id);
    assert_eq!(boxes.len(), n0 + 1, "the drawn box is in the journal");
    let new = boxes[n0];
    assert!(near(&new, [40.0, 40.0, 100.0, 90.0], 1.5), "{new:?}");
    assert_eq!(h.state().annotate.selected, Some(n0));

    // Move: drag the box's inside by (+20, +10).
    drag(&mut h, (70.0, 65.0), (90.0, 75.0));
    let moved = stored(&ds, &id)[n0];
    assert!(
        near(
            &moved,
            [new.x1 + 20.0, new.y1 + 10.0, new.x2 + 20.0, new.y2 + 10.0],
            1.5
        ),
        "{moved:?}"
    );

    // Resize: drag the bottom-right handle.
    drag(&mut h, (moved.x2, moved.y2), (150.0, 130.0));
    let resized = stored(&ds, &id)[n0];
    assert!(
        near(&resized, [moved.x1, moved.y1, 150.0, 130.0], 1.5),
        "{resized:?}"
    );

    // Nudge: Left 1 px, Shift+Right 10 px.
    h.key_press(Key::ArrowLeft);
    h.run_steps(2);
    h.key_press_modifiers(Modifiers::SHIFT, Key::ArrowRight);
    h.run_steps(2);
    let nudged = stored(&ds, &id)[n0];
    assert!(
        near(
            &nudged,
            [resized.x1 + 9.0, resized.y1, resized.x2 + 9.0, resized.y2],
            1e-6
        ),
        "{nudged:?} vs {resized:?}"
    );

    // Delete, undo, redo (both shortcuts).
    h.key_press(Key::Delete);
    h.run_steps(2);
    assert_eq!(stored(&ds, &id).len(), n0);
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.run_steps(2);
    assert_eq!(stored(&ds, &id)[n0], nudged, "undo brings the box back");
    h.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    h.run_steps(2);
    assert_eq!(stored(&ds, &id).len(), n0, "redo deletes it again");
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.run_steps(2);
    h.key_press_modifiers(Modifiers::COMMAND, Key::Y);
    h.run_steps(2);
    assert_eq!(stored(&ds, &id).len(), n0, "Ctrl+Y redoes too");
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.run_steps(2);
    assert_eq!(stored(&ds, &id)[n0], nudged);

    // Every edit went to the journal; the manifest is untouched until Ctrl+S.
    let journal = ds.join("annotations.jsonl");
    let lines = std::fs::read_to_string(&journal).expect("journal");
    let ops: Vec<String> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["op"]
                .as_str()
                .expect("op")
                .to_string()
        })
        .collect();
    assert_eq!(
        ops,
        [
            "add", "move", "resize", "nudge", "nudge", "delete", "undo", "redo", "undo", "redo",
            "undo"
        ]
    );
    assert!(h.state().annotate.uncompacted() > 0, "dirty before saving");
    let manifest_before = std::fs::read_to_string(ds.join("manifest.jsonl")).expect("manifest");

    // Ctrl+S compacts: manifest rewritten, journal removed, same boxes.
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    h.run_steps(2);
    assert!(!journal.exists(), "the journal is compacted away");
    assert_eq!(h.state().annotate.uncompacted(), 0);
    let manifest_after = std::fs::read_to_string(ds.join("manifest.jsonl")).expect("manifest");
    assert_ne!(manifest_before, manifest_after);
    let after = stored(&ds, &id);
    assert_eq!(after.len(), n0 + 1);
    assert_eq!(after[n0], nudged);
    assert_eq!(&after[..n0], &original[..]);
}

#[test]
fn tab_cycles_hide_hides_and_f_steps_samples() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ds = dataset(tmp.path(), 3);
    let mut h = open_annotator(tmp.path(), &ds);
    let first = h.state().annotate.sample.clone();
    h.key_press(Key::Tab);
    h.run_steps(2);
    assert_eq!(h.state().annotate.selected, Some(0));
    h.key_press(Key::Tab);
    h.run_steps(2);
    assert_eq!(
        h.state().annotate.selected,
        Some(0),
        "one box: Tab wraps to it"
    );
    h.key_press(Key::H);
    h.run_steps(2);
    // Hiding is a view setting, not an edit.
    assert!(!ds.join("annotations.jsonl").exists());
    assert!(h.state().annotate.is_hidden(0));
    h.key_press(Key::H);
    h.run_steps(2);
    assert!(!h.state().annotate.is_hidden(0));
    // The keys went to the editor, not to egui's focus navigation.
    assert!(
        !h.ctx.egui_wants_keyboard_input(),
        "no text field took the focus"
    );
    h.key_press(Key::Escape);
    h.run_steps(2);
    assert_eq!(h.state().annotate.selected, None);
    h.key_press(Key::F);
    h.run_steps(2);
    assert_ne!(h.state().annotate.sample, first);
    h.key_press(Key::D);
    h.run_steps(2);
    assert_eq!(h.state().annotate.sample, first);
}

#[test]
fn closing_with_uncompacted_corrections_asks_first() {
    use egui_kittest::kittest::Queryable;
    let tmp = tempfile::tempdir().expect("tmp");
    let ds = dataset(tmp.path(), 2);
    let mut h = open_annotator(tmp.path(), &ds);
    h.key_press(Key::Tab);
    h.run_steps(2);
    h.key_press(Key::ArrowRight);
    h.run_steps(2);
    assert_eq!(h.state().annotate.uncompacted(), 1);
    let close = |h: &mut Harness<'_, Studio>| {
        h.input_mut()
            .viewports
            .entry(egui::ViewportId::ROOT)
            .or_default()
            .events
            .push(egui::ViewportEvent::Close);
        h.run_steps(2);
    };
    close(&mut h);
    assert!(h.state().confirm_quit, "the close is held back");
    // "Save and quit" compacts the journal into the manifest.
    h.get_by_label("Save and quit").click();
    h.run_steps(2);
    assert!(!ds.join("annotations.jsonl").exists());
    assert_eq!(h.state().annotate.uncompacted(), 0);
    assert!(!h.state().confirm_quit);
}

#[test]
fn saving_keeps_edits_made_before_and_after_opening() {
    // A journal left by an earlier session (not compacted), then a new edit:
    // Ctrl+S must write both into the manifest.
    let tmp = tempfile::tempdir().expect("tmp");
    let ds = dataset(tmp.path(), 3);
    let d = Dataset::load(&ds).expect("load");
    let (a, b) = (d.samples()[0].clone(), d.samples()[1].clone());
    let mut moved = a.rationales.clone();
    moved[0].bbox = moved[0].bbox.translate(3.0, 0.0);
    virl_engine::dataset::annotations::Journal::new(d.journal_path())
        .append(&virl_engine::dataset::annotations::Edit::now(
            &a.id,
            "move",
            a.rationales.clone(),
            moved.clone(),
        ))
        .expect("append");
    let mut h = open_annotator(tmp.path(), &ds);
    assert_eq!(
        h.state().annotate.uncompacted(),
        1,
        "the old edit is pending"
    );
    // Edit the second sample.
    h.key_press(Key::F);
    h.run_steps(2);
    assert_eq!(h.state().annotate.sample.as_deref(), Some(b.id.as_str()));
    h.key_press(Key::Tab);
    h.run_steps(2);
    h.key_press(Key::ArrowDown);
    h.run_steps(2);
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    h.run_steps(2);
    assert!(!ds.join("annotations.jsonl").exists());
    let after = Dataset::load(&ds).expect("load");
    assert_eq!(after.get(&a.id).expect("a").rationales, moved);
    assert_eq!(
        after.get(&b.id).expect("b").rationales[0].bbox,
        b.rationales[0].bbox.translate(0.0, 1.0)
    );
}

#[test]
fn the_selected_boxs_label_is_edited_in_the_side_panel() {
    use egui_kittest::kittest::Queryable;
    let tmp = tempfile::tempdir().expect("tmp");
    let ds = dataset(tmp.path(), 1);
    let mut h = open_annotator(tmp.path(), &ds);
    let id = h.state().annotate.sample.clone().expect("sample");
    let old = Dataset::load(&ds)
        .expect("load")
        .get(&id)
        .expect("s")
        .rationales[0]
        .label
        .clone();
    h.key_press(Key::Tab);
    h.run_steps(2);
    // The label field holds the box's label; replace it and press Enter.
    let field = |h: &Harness<'_, Studio>| {
        h.get_all_by_role(egui::accesskit::Role::TextInput)
            .find(|n| n.value().as_deref() == Some(old.as_str()))
            .map(|n| n.rect().center())
            .expect("the label field")
    };
    let at = field(&h);
    h.get_all_by_role(egui::accesskit::Role::TextInput)
        .find(|n| n.rect().center() == at)
        .expect("field")
        .focus();
    h.run_steps(1);
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.run_steps(1);
    h.get_all_by_role(egui::accesskit::Role::TextInput)
        .find(|n| n.rect().center() == at)
        .expect("field")
        .type_text("red sign");
    h.run_steps(1);
    h.key_press(Key::Enter);
    h.run_steps(3);
    let stored = Dataset::load(&ds).expect("load");
    assert_eq!(stored.get(&id).expect("s").rationales[0].label, "red sign");
}
