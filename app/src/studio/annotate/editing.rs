//! Box editing on the canvas, as geometry: drags (draw, move, resize by
//! one of eight handles), moving a box inside the image, tidying a drawn
//! box, and picking the box under the pointer. All in image pixels.

use egui::{Pos2, Rect};
use std::collections::HashSet;
use virl_engine::dataset::Rationale;
use virl_engine::geometry::BBox;

/// Smallest box side a drag creates or a resize leaves, in image pixels.
pub(super) const MIN_SIDE: f64 = 2.0;
/// Handle half-size on screen, in points.
pub(super) const HANDLE: f32 = 5.0;

/// A drag on the canvas.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Drag {
    Draw {
        start: (f64, f64),
    },
    Move {
        idx: usize,
        orig: BBox,
        grab: (f64, f64),
    },
    Resize {
        idx: usize,
        orig: BBox,
        handle: Handle,
    },
}

/// Which handle of a box: its corners and edge midpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Handle {
    N,
    S,
    E,
    W,
    NE,
    NW,
    SE,
    SW,
}

impl Handle {
    /// The eight handles, corners first.
    pub(super) const ALL: [Self; 8] = [
        Self::NW,
        Self::N,
        Self::NE,
        Self::E,
        Self::SE,
        Self::S,
        Self::SW,
        Self::W,
    ];

    /// Where the handle sits on a box drawn as `r`.
    pub(super) fn pos(self, r: Rect) -> Pos2 {
        let (cx, cy) = (r.center().x, r.center().y);
        match self {
            Self::NW => r.left_top(),
            Self::N => Pos2::new(cx, r.top()),
            Self::NE => r.right_top(),
            Self::E => Pos2::new(r.right(), cy),
            Self::SE => r.right_bottom(),
            Self::S => Pos2::new(cx, r.bottom()),
            Self::SW => r.left_bottom(),
            Self::W => Pos2::new(r.left(), cy),
        }
    }

    /// The box with this handle dragged to image point `p`.
    pub(super) fn drag(self, b: BBox, p: (f64, f64)) -> BBox {
        let (mut x1, mut y1, mut x2, mut y2) = (b.x1, b.y1, b.x2, b.y2);
        let (px, py) = p;
        match self {
            Self::N => y1 = py,
            Self::S => y2 = py,
            Self::E => x2 = px,
            Self::W => x1 = px,
            Self::NE => (x2, y1) = (px, py),
            Self::NW => (x1, y1) = (px, py),
            Self::SE => (x2, y2) = (px, py),
            Self::SW => (x1, y2) = (px, py),
        }
        BBox::new(x1.min(x2), y1.min(y2), x1.max(x2), y1.max(y2))
    }
}

/// A box moved inside a `w × h` image (its size kept where it fits).
pub(super) fn clamp_move(b: BBox, w: f64, h: f64) -> BBox {
    let dx = (-b.x1).max(0.0) - (b.x2 - w).max(0.0);
    let dy = (-b.y1).max(0.0) - (b.y2 - h).max(0.0);
    let m = b.translate(dx, dy);
    m.clip(w, h).unwrap_or(m)
}

/// A box clipped to the image and grown to [`MIN_SIDE`], or `None` if it
/// has no area inside.
pub(super) fn tidy(b: BBox, w: f64, h: f64) -> Option<BBox> {
    let c = b.clip(w, h)?;
    (c.width() >= MIN_SIDE && c.height() >= MIN_SIDE).then_some(c)
}

/// The topmost visible box containing image point `p` (smallest first, so a
/// box inside another can be picked).
pub(super) fn hit(
    rats: &[Rationale],
    hidden: &HashSet<(String, usize)>,
    id: &str,
    p: (f64, f64),
) -> Option<usize> {
    rats.iter()
        .enumerate()
        .filter(|(i, _)| !hidden.contains(&(id.to_string(), *i)))
        .filter(|(_, r)| {
            p.0 >= r.bbox.x1 && p.0 <= r.bbox.x2 && p.1 >= r.bbox.y1 && p.1 <= r.bbox.y2
        })
        .min_by(|a, b| a.1.bbox.area().total_cmp(&b.1.bbox.area()))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_stay_inside_and_tiny_boxes_are_refused() {
        let b = BBox::new(-5.0, 90.0, 15.0, 110.0);
        assert_eq!(
            clamp_move(b, 100.0, 100.0),
            BBox::new(0.0, 80.0, 20.0, 100.0)
        );
        assert_eq!(tidy(BBox::new(10.0, 10.0, 11.0, 30.0), 100.0, 100.0), None);
        assert_eq!(
            tidy(BBox::new(90.0, 90.0, 120.0, 95.0), 100.0, 100.0),
            Some(BBox::new(90.0, 90.0, 100.0, 95.0))
        );
    }

    #[test]
    fn the_smallest_visible_box_under_the_pointer_is_picked() {
        let r = |b: BBox| Rationale {
            bbox: b,
            label: String::new(),
        };
        let rats = [
            r(BBox::new(0.0, 0.0, 50.0, 50.0)),
            r(BBox::new(10.0, 10.0, 20.0, 20.0)),
        ];
        let none = HashSet::new();
        assert_eq!(hit(&rats, &none, "s", (15.0, 15.0)), Some(1));
        assert_eq!(hit(&rats, &none, "s", (40.0, 40.0)), Some(0));
        assert_eq!(hit(&rats, &none, "s", (60.0, 60.0)), None);
        let hidden: HashSet<(String, usize)> = [("s".to_string(), 1)].into();
        assert_eq!(hit(&rats, &hidden, "s", (15.0, 15.0)), Some(0));
    }
}
