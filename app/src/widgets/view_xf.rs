//! Pan and zoom of an image view, shared by the inspector and the
//! annotation canvas.

use egui::{Color32, Pos2, Rect, Vec2};
use virl_engine::geometry::BBox;

/// Pan and zoom of an image view (the inspector's and the annotation
/// canvas): zoom ≥ 1 relative to fitting the image in the view.
#[derive(Clone, Copy, Debug)]
pub struct ViewXf {
    /// Zoom relative to fitting the image in the view (≥ 1).
    pub zoom: f32,
    /// Offset of the image centre from the view centre, in points.
    pub pan: Vec2,
}

impl Default for ViewXf {
    fn default() -> Self {
        Self {
            zoom: 1.0,
            pan: Vec2::ZERO,
        }
    }
}

impl ViewXf {
    /// The mouse wheel zooms about the pointer while `resp` is hovered.
    pub fn wheel(&mut self, ui: &egui::Ui, resp: &egui::Response, rect: Rect) {
        if !resp.hovered() {
            return;
        }
        let scroll = ui.input(|i| i.smooth_scroll_delta.y);
        if scroll != 0.0 {
            let old = self.zoom;
            self.zoom = (self.zoom * (scroll / 200.0).exp()).clamp(1.0, 64.0);
            if let Some(p) = resp.hover_pos() {
                let c = rect.center() + self.pan;
                self.pan += (p - c) * (1.0 - self.zoom / old);
            }
        }
    }

    /// Zooms to `zoom` × the fitted size (clamped as the wheel clamps it)
    /// with image pixel `(x, y)` of a `w × h` image at the centre of `rect`.
    pub fn focus(&mut self, rect: Rect, w: f64, h: f64, zoom: f32, x: f64, y: f64) {
        self.zoom = zoom.clamp(1.0, 64.0);
        let size = rect.size();
        let scale = (size.x / w as f32).min(size.y / h as f32) * self.zoom;
        let img = Vec2::new(w as f32, h as f32) * scale;
        self.pan = img / 2.0 - Vec2::new(x as f32, y as f32) * scale;
    }

    /// Screen position of image pixel (0, 0) and points per image pixel, for
    /// a `w × h` image in the view `rect`.
    pub fn place(&self, rect: Rect, w: f64, h: f64) -> (Pos2, f32) {
        let size = rect.size();
        let fit = (size.x / w as f32).min(size.y / h as f32);
        let scale = fit * self.zoom;
        let img_size = Vec2::new(w as f32, h as f32) * scale;
        (rect.center() + self.pan - img_size / 2.0, scale)
    }
}

/// Where an image was painted: screen position of image pixel (0, 0) and
/// points per image pixel. Boxes are in original-image pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placed {
    /// Screen position of image pixel (0, 0).
    pub origin: Pos2,
    /// Points per image pixel.
    pub scale: f32,
}

impl Placed {
    /// A box in image pixels, on screen.
    pub fn to_screen(&self, b: &BBox) -> Rect {
        Rect::from_min_max(
            self.origin + Vec2::new(b.x1 as f32, b.y1 as f32) * self.scale,
            self.origin + Vec2::new(b.x2 as f32, b.y2 as f32) * self.scale,
        )
    }
}

impl ViewXf {
    /// Paints texture `tex` of a `w × h` image into `rect` with this pan and
    /// zoom; returns where it went.
    pub fn paint(
        &self,
        painter: &egui::Painter,
        rect: Rect,
        tex: egui::TextureId,
        w: f64,
        h: f64,
    ) -> Placed {
        let (origin, scale) = self.place(rect, w, h);
        let img_size = Vec2::new(w as f32, h as f32) * scale;
        painter.image(
            tex,
            Rect::from_min_size(origin, img_size),
            Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)),
            Color32::WHITE,
        );
        Placed { origin, scale }
    }
}
