//! ZoomNet's input features, computed on the host from the environment's
//! bytes: they depend on no parameter, so building them as tensor ops (pads,
//! narrows, a mean over 4 096 pixels, a six-axis permute) only cost forward
//! time, twice per crop (encoder and reader). Each is computed once here and
//! uploaded.

/// A byte as ZoomNet's input value, centred on zero.
pub(crate) fn unit(b: u8) -> f32 {
    b as f32 / 255.0 - 0.5
}

/// Every pixel's 3×3 neighbourhood of `n` global views (`n × v × v × 3`
/// bytes) as `[n, v·v, width]` values: neighbour `(dy, dx)` at
/// `(3·dy + dx)·3 + channel` ([`neighbourhood`]), then `width − 27` ones (a
/// ones column lets a layer's bias ride in its matrix product).
pub(crate) fn unfold3x3(bytes: &[u8], n: usize, v: usize, width: usize) -> Vec<f32> {
    let mut out = vec![1f32; n * v * v * width];
    for i in 0..n {
        let img = &bytes[i * v * v * 3..(i + 1) * v * v * 3];
        for cell in 0..v * v {
            let o = (i * v * v + cell) * width;
            neighbourhood(img, v, cell, &mut out[o..o + 27]);
        }
    }
    out
}

/// The 3×3 neighbourhood of pixel `cell` (`y · v + x`) of one `v × v`
/// global view into `out[..27]`: neighbour `(dy, dx)` at `(3·dy + dx)·3 +
/// channel`, zero outside the view.
pub(crate) fn neighbourhood(img: &[u8], v: usize, cell: usize, out: &mut [f32]) {
    let (y, x) = (cell / v, cell % v);
    for dy in 0..3 {
        for dx in 0..3 {
            let d = (dy * 3 + dx) * 3;
            let inside = (y + dy)
                .checked_sub(1)
                .filter(|&yy| yy < v)
                .zip((x + dx).checked_sub(1).filter(|&xx| xx < v));
            for c in 0..3 {
                out[d + c] = inside.map_or(0.0, |(yy, xx)| unit(img[(yy * v + xx) * 3 + c]));
            }
        }
    }
}

/// Contrast-normalised patches of `n` crops (`n × v × v × 3` bytes) as
/// `[n, g, g, ps·ps·6]` values (`g = v / ps`): each crop's mean colour is
/// subtracted, and twice the absolute deviation is appended as three more
/// channels, so a glyph looks the same whatever the placard's colour and
/// whether its ink is dark or light. Within a patch the values run by row,
/// column, then channel.
pub(crate) fn crop_patches(bytes: &[u8], n: usize, v: usize, ps: usize) -> Vec<f32> {
    let g = v / ps;
    let mut out = vec![0f32; n * v * v * 6];
    for i in 0..n {
        let img = &bytes[i * v * v * 3..(i + 1) * v * v * 3];
        let mut mean = [0f64; 3];
        for px in img.chunks_exact(3) {
            for c in 0..3 {
                mean[c] += unit(px[c]) as f64;
            }
        }
        let mean = mean.map(|m| (m / (v * v) as f64) as f32);
        for y in 0..v {
            let (gy, py) = (y / ps, y % ps);
            for x in 0..v {
                let (gx, px) = (x / ps, x % ps);
                let s = (y * v + x) * 3;
                let d = (((i * g + gy) * g + gx) * ps * ps + py * ps + px) * 6;
                for c in 0..3 {
                    let centred = unit(img[s + c]) - mean[c];
                    out[d + c] = centred;
                    out[d + 3 + c] = 2.0 * centred.abs();
                }
            }
        }
    }
    out
}
