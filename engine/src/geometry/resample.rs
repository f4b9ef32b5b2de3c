//! Crops and resampling: the region of an image a zoom shows, and the
//! global view, as the policy sees them (boxes in the conventions of
//! [`super`]).

use super::BBox;
use image::RgbImage;

/// Crops `region` (pixels of `src`, see the module conventions) and resizes it
/// to an `out × out` RGB image with bilinear sampling, writing into `dst`
/// (`out * out * 3` bytes, row-major RGB) without allocating.
///
/// Output pixel `(i, j)` samples the source at the centre of its footprint:
/// `x = x1 + (i + 0.5) · (x2 − x1) / out − 0.5` in pixel-centre coordinates,
/// and likewise for y. Samples beyond the outermost pixel centres take the
/// edge pixel (clamp-to-edge), so crops touching the image border are correct
/// and never read outside the image. A region partly outside the image is
/// sampled as given (the outside replicates the border); clip it first if that
/// is not wanted.
///
/// When the region is more than twice the output size, bilinear sampling
/// would alias; the crop is then averaged over each output pixel's footprint
/// (see [`downsample_area_into`]) instead.
///
/// # Panics
/// If `dst.len() != out * out * 3` (a programming error, not a data error).
pub fn crop_resize_into(src: &RgbImage, region: &BBox, out: u32, dst: &mut [u8]) {
    let n = out as usize;
    assert_eq!(dst.len(), n * n * 3, "crop_resize_into: wrong dst length");
    if n == 0 || src.width() == 0 || src.height() == 0 {
        dst.fill(0);
        return;
    }
    if region.width() > 2.0 * out as f64 || region.height() > 2.0 * out as f64 {
        downsample_area_into(src, region, out, dst);
        return;
    }
    let (w, h) = (src.width() as usize, src.height() as usize);
    let raw = src.as_raw();
    let sx = region.width() / out as f64;
    let sy = region.height() / out as f64;
    for j in 0..n {
        let y = (region.y1 + (j as f64 + 0.5) * sy - 0.5).clamp(0.0, (h - 1) as f64);
        let y0 = y.floor() as usize;
        let y1 = (y0 + 1).min(h - 1);
        let fy = y - y0 as f64;
        for i in 0..n {
            let x = (region.x1 + (i as f64 + 0.5) * sx - 0.5).clamp(0.0, (w - 1) as f64);
            let x0 = x.floor() as usize;
            let x1 = (x0 + 1).min(w - 1);
            let fx = x - x0 as f64;
            for c in 0..3 {
                let p = |xx: usize, yy: usize| raw[(yy * w + xx) * 3 + c] as f64;
                let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
                let bot = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
                let v = top * (1.0 - fy) + bot * fy;
                dst[(j * n + i) * 3 + c] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// Like [`crop_resize_into`], returning a new `out × out` image.
///
/// ```
/// use image::{Rgb, RgbImage};
/// use virl_engine::geometry::{crop_resize, BBox};
/// let mut img = RgbImage::from_pixel(8, 8, Rgb([0, 0, 0]));
/// img.put_pixel(7, 7, Rgb([255, 255, 255]));
/// // The bottom-right 2×2 pixels, blown up to 4×4: the far corner stays white.
/// let crop = crop_resize(&img, &BBox::new(6.0, 6.0, 8.0, 8.0), 4);
/// assert_eq!(crop.get_pixel(3, 3), &Rgb([255, 255, 255]));
/// assert_eq!(crop.get_pixel(0, 0), &Rgb([0, 0, 0]));
/// ```
pub fn crop_resize(src: &RgbImage, region: &BBox, out: u32) -> RgbImage {
    let mut buf = vec![0u8; (out as usize) * (out as usize) * 3];
    crop_resize_into(src, region, out, &mut buf);
    RgbImage::from_raw(out, out, buf).unwrap_or_else(|| RgbImage::new(out, out))
}

/// Area-averaging (box filter) resize of `region` to `out × out`, into `dst`.
/// Each output pixel is the exact area-weighted mean of the source pixels its
/// footprint covers (fractional coverage at the edges), so small coloured
/// objects survive as dots of their mean colour. Parts of the region outside
/// the image are clamped to the image (they contribute nothing).
///
/// # Panics
/// If `dst.len() != out * out * 3`.
pub fn downsample_area_into(src: &RgbImage, region: &BBox, out: u32, dst: &mut [u8]) {
    let n = out as usize;
    assert_eq!(
        dst.len(),
        n * n * 3,
        "downsample_area_into: wrong dst length"
    );
    let (w, h) = (src.width() as f64, src.height() as f64);
    let raw = src.as_raw();
    let sx = region.width() / out as f64;
    let sy = region.height() / out as f64;
    let stride = src.width() as usize;
    let whole = |v: f64| v >= 0.0 && v.fract() == 0.0;
    if [region.x1, region.y1, sx, sy].into_iter().all(whole)
        && sx >= 1.0
        && sy >= 1.0
        && region.x2 <= w
        && region.y2 <= h
    {
        // Whole-pixel blocks (a global view of a canvas that is a multiple
        // of the view): every weight is 1, so integer sums give the same
        // bytes as the general loop below, several times faster.
        let (bx, by) = (sx as usize, sy as usize);
        let (x0, y0) = (region.x1 as usize, region.y1 as usize);
        let area = (bx * by) as f64;
        let mut row = vec![0u32; n * 3];
        for j in 0..n {
            row.fill(0);
            for y in y0 + j * by..y0 + (j + 1) * by {
                let line = &raw[(y * stride + x0) * 3..(y * stride + x0 + n * bx) * 3];
                for (i, block) in line.chunks_exact(bx * 3).enumerate() {
                    for px in block.chunks_exact(3) {
                        for c in 0..3 {
                            row[i * 3 + c] += px[c] as u32;
                        }
                    }
                }
            }
            for (d, &sum) in dst[j * n * 3..(j + 1) * n * 3].iter_mut().zip(&row) {
                *d = (sum as f64 / area).round().clamp(0.0, 255.0) as u8;
            }
        }
        return;
    }
    downsample_weighted(src, region, out, dst);
}

/// [`downsample_area_into`] for any region: fractional pixel weights.
fn downsample_weighted(src: &RgbImage, region: &BBox, out: u32, dst: &mut [u8]) {
    let n = out as usize;
    let (w, h) = (src.width() as f64, src.height() as f64);
    let raw = src.as_raw();
    let sx = region.width() / out as f64;
    let sy = region.height() / out as f64;
    let stride = src.width() as usize;
    for j in 0..n {
        let fy0 = (region.y1 + j as f64 * sy).clamp(0.0, h);
        let fy1 = (region.y1 + (j + 1) as f64 * sy).clamp(0.0, h);
        for i in 0..n {
            let fx0 = (region.x1 + i as f64 * sx).clamp(0.0, w);
            let fx1 = (region.x1 + (i + 1) as f64 * sx).clamp(0.0, w);
            let mut acc = [0.0f64; 3];
            let mut total = 0.0;
            let mut y = fy0.floor();
            while y < fy1 {
                let wy = (fy1.min(y + 1.0) - fy0.max(y)).max(0.0);
                let mut x = fx0.floor();
                while x < fx1 {
                    let wx = (fx1.min(x + 1.0) - fx0.max(x)).max(0.0);
                    let wgt = wx * wy;
                    if wgt > 0.0 {
                        let o = (y as usize * stride + x as usize) * 3;
                        for c in 0..3 {
                            acc[c] += wgt * raw[o + c] as f64;
                        }
                        total += wgt;
                    }
                    x += 1.0;
                }
                y += 1.0;
            }
            for c in 0..3 {
                let v = if total > 0.0 { acc[c] / total } else { 0.0 };
                dst[(j * n + i) * 3 + c] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// The whole image downsampled to `out × out` by area averaging: the policy's
/// global view. Non-square images are stretched (the box convention stays
/// the original image's pixels; map with `x · out / width`).
pub fn global_view(src: &RgbImage, out: u32) -> RgbImage {
    let mut buf = vec![0u8; (out as usize) * (out as usize) * 3];
    let whole = BBox::new(0.0, 0.0, src.width() as f64, src.height() as f64);
    downsample_area_into(src, &whole, out, &mut buf);
    RgbImage::from_raw(out, out, buf).unwrap_or_else(|| RgbImage::new(out, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn whole_pixel_blocks_downsample_as_the_weighted_loop_does(
            seed in 0u64..1000, out in 1u32..9, bx in 1u32..5, by in 1u32..5,
            x0 in 0u32..7, y0 in 0u32..7,
        ) {
            let (w, h) = (x0 + out * bx + 3, y0 + out * by + 2);
            let mut r = crate::rng::SplitMix64::new(seed);
            let img = RgbImage::from_fn(w, h, |_, _| {
                Rgb([r.next_u64() as u8, r.next_u64() as u8, r.next_u64() as u8])
            });
            let region = BBox::new(
                x0 as f64, y0 as f64, (x0 + out * bx) as f64, (y0 + out * by) as f64,
            );
            let n = (out * out * 3) as usize;
            let (mut fast, mut slow) = (vec![0u8; n], vec![0u8; n]);
            downsample_area_into(&img, &region, out, &mut fast);
            downsample_weighted(&img, &region, out, &mut slow);
            prop_assert_eq!(fast, slow);
        }
    }
}
