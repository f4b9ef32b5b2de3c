//! Boxes, IoU and crops.
//!
//! # Conventions
//!
//! Every box in the engine is a [`BBox`]: `[x1, y1, x2, y2]` in **pixels of the
//! original image**, continuous (floats), origin at the top-left corner of the
//! image, x to the right, y down. Pixel `(i, j)` covers the square
//! `[i, i+1) × [j, j+1)`, so the whole image of width `W` and height `H` is the
//! box `[0, 0, W, H]`. A well-formed box has `x2 > x1` and `y2 > y1`.
//!
//! Other conventions (xywh, normalised, normalised to a padded square) are
//! converted here, at the border, and nowhere else.
//!
//! IoU is the continuous area ratio, with no `+1` pixel-inclusive correction
//! (unlike `candle_transformers::object_detection::iou`).

use serde::{Deserialize, Serialize};

mod resample;
pub use resample::{crop_resize, crop_resize_into, downsample_area_into, global_view};

/// An axis-aligned box `[x1, y1, x2, y2]` in pixels of the original image
/// (continuous coordinates, origin top-left, see the module docs).
///
/// Serialised as a JSON array of four numbers.
///
/// ```
/// use virl_engine::geometry::BBox;
/// let b = BBox::new(10.0, 20.0, 30.0, 60.0);
/// assert_eq!(b.width(), 20.0);
/// assert_eq!(b.height(), 40.0);
/// assert_eq!(b.area(), 800.0);
/// assert_eq!(serde_json::to_string(&b).unwrap(), "[10.0,20.0,30.0,60.0]");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "[f64; 4]", into = "[f64; 4]")]
pub struct BBox {
    /// Left edge.
    pub x1: f64,
    /// Top edge.
    pub y1: f64,
    /// Right edge (exclusive: a box `[0, 0, W, H]` covers a `W × H` image).
    pub x2: f64,
    /// Bottom edge.
    pub y2: f64,
}

impl From<[f64; 4]> for BBox {
    fn from(a: [f64; 4]) -> Self {
        Self::new(a[0], a[1], a[2], a[3])
    }
}

impl From<BBox> for [f64; 4] {
    fn from(b: BBox) -> Self {
        b.to_array()
    }
}

impl BBox {
    /// A box from its corners, `[x1, y1, x2, y2]`, taken as given (no checks;
    /// see [`BBox::is_well_formed`]).
    pub const fn new(x1: f64, y1: f64, x2: f64, y2: f64) -> Self {
        Self { x1, y1, x2, y2 }
    }

    /// The box as `[x1, y1, x2, y2]`.
    pub const fn to_array(self) -> [f64; 4] {
        [self.x1, self.y1, self.x2, self.y2]
    }

    /// From COCO / V* style `[x, y, w, h]`: top-left corner plus size, in pixels.
    ///
    /// ```
    /// use virl_engine::geometry::BBox;
    /// assert_eq!(BBox::from_xywh(10.0, 20.0, 5.0, 8.0), BBox::new(10.0, 20.0, 15.0, 28.0));
    /// ```
    pub fn from_xywh(x: f64, y: f64, w: f64, h: f64) -> Self {
        Self::new(x, y, x + w, y + h)
    }

    /// The box as `[x, y, w, h]` (top-left corner plus size).
    pub fn to_xywh(self) -> [f64; 4] {
        [self.x1, self.y1, self.width(), self.height()]
    }

    /// From coordinates normalised by the image size: `[0, 0, 1, 1]` is the
    /// whole image of `width × height` pixels.
    ///
    /// ```
    /// use virl_engine::geometry::BBox;
    /// let b = BBox::from_normalized([0.25, 0.5, 0.75, 1.0], 200.0, 100.0);
    /// assert_eq!(b, BBox::new(50.0, 50.0, 150.0, 100.0));
    /// ```
    pub fn from_normalized(n: [f64; 4], width: f64, height: f64) -> Self {
        Self::new(n[0] * width, n[1] * height, n[2] * width, n[3] * height)
    }

    /// From coordinates normalised to the **padded square** that some models
    /// see: the image is centred in a square of side `max(width, height)`
    /// (LLaVA's `expand2square`), and `[0, 0, 1, 1]` is that whole square.
    /// The result is in pixels of the original (unpadded) image and may lie
    /// partly outside it (clip it with [`BBox::clip`]).
    ///
    /// ```
    /// use virl_engine::geometry::BBox;
    /// // A 200×100 image is padded by 50 px above and below into a 200×200 square.
    /// let b = BBox::from_normalized_padded_square([0.0, 0.25, 0.5, 0.75], 200.0, 100.0);
    /// assert_eq!(b, BBox::new(0.0, 0.0, 100.0, 100.0));
    /// ```
    pub fn from_normalized_padded_square(n: [f64; 4], width: f64, height: f64) -> Self {
        let side = width.max(height);
        let ox = (side - width) / 2.0;
        let oy = (side - height) / 2.0;
        Self::new(
            n[0] * side - ox,
            n[1] * side - oy,
            n[2] * side - ox,
            n[3] * side - oy,
        )
    }

    /// From pixels of the image as the model was shown it (`shown = (w, h)`,
    /// e.g. after Qwen's smart_resize) to pixels of the original image
    /// (`size = (W, H)`): each coordinate scaled by `W / w` or `H / h`.
    ///
    /// The result is always finite and well formed, whatever the box: a
    /// coordinate so far outside the image that scaling it would overflow
    /// (`1.7e308`) is first brought to one image side beyond the image's
    /// edge. Nothing that is scored changes by that: every zoom box is
    /// clipped to the image before its IoU is taken (DESIGN §4), and a box
    /// wholly outside stays wholly outside, on the same side. `None` when the
    /// box is not finite and well formed or a size is not positive.
    ///
    /// ```
    /// use virl_engine::geometry::BBox;
    /// let b = BBox::new(10.0, 20.0, 30.0, 40.0).shown_to_original((100.0, 100.0), (1000.0, 500.0));
    /// assert_eq!(b, Some(BBox::new(100.0, 100.0, 300.0, 200.0)));
    /// let huge = BBox::new(0.0, 0.0, 1.7e308, 1.7e308).shown_to_original((1000.0, 700.0), (9000.0, 6000.0)).unwrap();
    /// assert_eq!(huge.clip(9000.0, 6000.0), Some(BBox::new(0.0, 0.0, 9000.0, 6000.0)));
    /// ```
    pub fn shown_to_original(&self, shown: (f64, f64), size: (f64, f64)) -> Option<Self> {
        let sizes = [shown.0, shown.1, size.0, size.1];
        if !self.is_well_formed() || !sizes.iter().all(|s| s.is_finite() && *s > 0.0) {
            return None;
        }
        let (sx, sy) = (size.0 / shown.0, size.1 / shown.1);
        let b = Self::new(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy);
        if b.is_well_formed() {
            return Some(b);
        }
        // One side of the image beyond each edge; a side wholly beyond a
        // bound keeps one side's extent there.
        fn bring_in(lo: f64, hi: f64, side: f64) -> (f64, f64) {
            let (a, b) = (lo.clamp(-side, 2.0 * side), hi.clamp(-side, 2.0 * side));
            if b > a {
                (a, b)
            } else if a <= -side {
                (-2.0 * side, -side)
            } else {
                (2.0 * side, 3.0 * side)
            }
        }
        let (x1, x2) = bring_in(self.x1, self.x2, shown.0);
        let (y1, y2) = bring_in(self.y1, self.y2, shown.1);
        let b = Self::new(x1 * sx, y1 * sy, x2 * sx, y2 * sy);
        b.is_well_formed().then_some(b)
    }

    /// `x2 − x1` (negative for an inverted box).
    pub fn width(&self) -> f64 {
        self.x2 - self.x1
    }

    /// `y2 − y1` (negative for an inverted box).
    pub fn height(&self) -> f64 {
        self.y2 - self.y1
    }

    /// The centre `(cx, cy)`.
    pub fn center(&self) -> (f64, f64) {
        ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)
    }

    /// Area in square pixels; 0 for a degenerate or inverted box (never negative).
    pub fn area(&self) -> f64 {
        self.width().max(0.0) * self.height().max(0.0)
    }

    /// All four coordinates are finite and `x2 > x1`, `y2 > y1`.
    pub fn is_well_formed(&self) -> bool {
        self.to_array().iter().all(|v| v.is_finite()) && self.x2 > self.x1 && self.y2 > self.y1
    }

    /// The box moved by `(dx, dy)`.
    pub fn translate(&self, dx: f64, dy: f64) -> Self {
        Self::new(self.x1 + dx, self.y1 + dy, self.x2 + dx, self.y2 + dy)
    }

    /// The intersection with the image `[0, 0, width, height]`, or `None` when
    /// nothing with positive area is left (or a coordinate is not finite).
    ///
    /// ```
    /// use virl_engine::geometry::BBox;
    /// let b = BBox::new(-10.0, 5.0, 50.0, 500.0).clip(100.0, 100.0).unwrap();
    /// assert_eq!(b, BBox::new(0.0, 5.0, 50.0, 100.0));
    /// assert!(BBox::new(120.0, 0.0, 150.0, 10.0).clip(100.0, 100.0).is_none());
    /// ```
    pub fn clip(&self, width: f64, height: f64) -> Option<Self> {
        if !self.to_array().iter().all(|v| v.is_finite()) {
            return None;
        }
        let b = Self::new(
            self.x1.clamp(0.0, width),
            self.y1.clamp(0.0, height),
            self.x2.clamp(0.0, width),
            self.y2.clamp(0.0, height),
        );
        (b.x2 > b.x1 && b.y2 > b.y1).then_some(b)
    }

    /// Whether the box lies inside `[0, 0, width, height]` (edges included).
    pub fn is_inside(&self, width: f64, height: f64) -> bool {
        self.x1 >= 0.0 && self.y1 >= 0.0 && self.x2 <= width && self.y2 <= height
    }

    /// The area shared with `other` (0 when they do not overlap).
    pub fn intersection_area(&self, other: &Self) -> f64 {
        let w = self.x2.min(other.x2) - self.x1.max(other.x1);
        let h = self.y2.min(other.y2) - self.y1.max(other.y1);
        if w > 0.0 && h > 0.0 { w * h } else { 0.0 }
    }

    /// Continuous intersection over union, in `[0, 1]`; symmetric; 0 when
    /// either box has no area or a coordinate is NaN.
    ///
    /// ```
    /// use virl_engine::geometry::BBox;
    /// let a = BBox::new(0.0, 0.0, 2.0, 2.0);
    /// let b = BBox::new(1.0, 0.0, 3.0, 2.0);
    /// assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-12); // 2 / (4 + 4 - 2)
    /// assert_eq!(a.iou(&a), 1.0);
    /// ```
    pub fn iou(&self, other: &Self) -> f64 {
        if !(self
            .to_array()
            .iter()
            .chain(other.to_array().iter())
            .all(|v| v.is_finite()))
        {
            return 0.0;
        }
        let inter = self.intersection_area(other);
        let union = self.area() + other.area() - inter;
        if inter > 0.0 && union > 0.0 {
            (inter / union).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Grows a box whose side is below `min_side` to that side around its
    /// centre, then shifts it (without shrinking) to stay inside the image
    /// where the image is large enough.
    ///
    /// ```
    /// use virl_engine::geometry::BBox;
    /// let b = BBox::new(0.0, 10.0, 2.0, 12.0).ensure_min_side(8.0, 100.0, 100.0);
    /// assert_eq!(b, BBox::new(0.0, 7.0, 8.0, 15.0));
    /// ```
    pub fn ensure_min_side(&self, min_side: f64, width: f64, height: f64) -> Self {
        fn grow(lo: f64, hi: f64, min: f64, limit: f64) -> (f64, f64) {
            if hi - lo >= min {
                return (lo, hi);
            }
            let c = (lo + hi) / 2.0;
            let (mut lo, mut hi) = (c - min / 2.0, c + min / 2.0);
            if min <= limit {
                if lo < 0.0 {
                    hi -= lo;
                    lo = 0.0;
                }
                if hi > limit {
                    lo -= hi - limit;
                    hi = limit;
                }
            }
            (lo, hi)
        }
        let (x1, x2) = grow(self.x1, self.x2, min_side, width);
        let (y1, y2) = grow(self.y1, self.y2, min_side, height);
        Self::new(x1, y1, x2, y2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};
    use proptest::prelude::*;

    fn arb_box() -> impl Strategy<Value = BBox> {
        (
            -50.0..150.0f64,
            -50.0..150.0f64,
            0.0..100.0f64,
            0.0..100.0f64,
        )
            .prop_map(|(x, y, w, h)| BBox::from_xywh(x, y, w, h))
    }

    proptest! {
        #[test]
        fn iou_is_symmetric_and_bounded(a in arb_box(), b in arb_box()) {
            let ab = a.iou(&b);
            let ba = b.iou(&a);
            prop_assert!((0.0..=1.0).contains(&ab));
            prop_assert!((ab - ba).abs() < 1e-12);
        }

        #[test]
        fn iou_with_itself_is_one(a in arb_box()) {
            prop_assume!(a.area() > 1e-9);
            prop_assert!((a.iou(&a) - 1.0).abs() < 1e-12);
        }

        #[test]
        fn iou_is_translation_invariant(a in arb_box(), b in arb_box(), dx in -20.0..20.0f64, dy in -20.0..20.0f64) {
            let moved = a.translate(dx, dy).iou(&b.translate(dx, dy));
            prop_assert!((a.iou(&b) - moved).abs() < 1e-9);
        }

        #[test]
        fn clip_stays_inside(a in arb_box()) {
            if let Some(c) = a.clip(100.0, 80.0) {
                prop_assert!(c.is_inside(100.0, 80.0));
                prop_assert!(c.area() > 0.0);
                prop_assert!(c.area() <= a.area() + 1e-9);
            }
        }
    }

    #[test]
    fn iou_hand_values() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        assert_eq!(a.iou(&BBox::new(20.0, 20.0, 30.0, 30.0)), 0.0);
        // touching edges share no area
        assert_eq!(a.iou(&BBox::new(10.0, 0.0, 20.0, 10.0)), 0.0);
        // contained quarter: 25 / 100
        assert!((a.iou(&BBox::new(0.0, 0.0, 5.0, 5.0)) - 0.25).abs() < 1e-12);
        // degenerate and NaN boxes
        assert_eq!(a.iou(&BBox::new(5.0, 5.0, 5.0, 9.0)), 0.0);
        assert_eq!(a.iou(&BBox::new(f64::NAN, 0.0, 5.0, 5.0)), 0.0);
    }

    #[test]
    fn padded_square_round_trip_tall_image() {
        // 100 wide, 200 tall: 50 px of padding left and right.
        let b = BBox::from_normalized_padded_square([0.25, 0.0, 0.75, 0.5], 100.0, 200.0);
        assert_eq!(b, BBox::new(0.0, 0.0, 100.0, 100.0));
    }

    #[test]
    fn ensure_min_side_near_far_border() {
        let b = BBox::new(99.0, 99.0, 100.0, 100.0).ensure_min_side(10.0, 100.0, 100.0);
        assert_eq!(b, BBox::new(90.0, 90.0, 100.0, 100.0));
        // already large enough: unchanged
        let c = BBox::new(1.0, 2.0, 30.0, 40.0);
        assert_eq!(c.ensure_min_side(10.0, 100.0, 100.0), c);
    }

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb([(x * 10) as u8, (y * 10) as u8, 7]))
    }

    #[test]
    fn crop_identity_when_sizes_match() {
        let img = gradient(16, 16);
        let crop = crop_resize(&img, &BBox::new(4.0, 4.0, 12.0, 12.0), 8);
        for j in 0..8 {
            for i in 0..8 {
                assert_eq!(crop.get_pixel(i, j), img.get_pixel(i + 4, j + 4));
            }
        }
    }

    #[test]
    fn crop_at_border_replicates_edge_and_interpolates_inside() {
        let img = gradient(4, 4);
        // Upsample the whole image 2x: output pixel 0 samples x = -0.25 → clamped to pixel 0.
        let crop = crop_resize(&img, &BBox::new(0.0, 0.0, 4.0, 4.0), 8);
        assert_eq!(crop.get_pixel(0, 0)[0], 0);
        assert_eq!(crop.get_pixel(7, 0)[0], 30); // x = 3.25 → clamped to pixel 3 (value 30)
        // output pixel 1 samples x = 0.25: 0.75·0 + 0.25·10 = 2.5 → rounds to 3 (half away from zero)
        assert_eq!(crop.get_pixel(1, 0)[0], 3);
        assert_eq!(crop.get_pixel(0, 1)[1], 3);
    }

    #[test]
    fn area_downsample_is_exact_mean() {
        let mut img = RgbImage::from_pixel(4, 4, Rgb([0, 0, 0]));
        img.put_pixel(0, 0, Rgb([255, 255, 255]));
        let g = global_view(&img, 2);
        assert_eq!(g.get_pixel(0, 0), &Rgb([64, 64, 64])); // 255/4 = 63.75
        assert_eq!(g.get_pixel(1, 1), &Rgb([0, 0, 0]));
        // A large region routes crop_resize through area averaging too.
        let c = crop_resize(&img, &BBox::new(0.0, 0.0, 4.0, 4.0), 1);
        assert_eq!(c.get_pixel(0, 0), &Rgb([16, 16, 16])); // 255/16 = 15.9
    }
}
