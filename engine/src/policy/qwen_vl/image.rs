//! Image preprocessing exactly as Qwen3-VL's image processor does it
//! (`Qwen2VLImageProcessorFast` in transformers): smart resize to multiples
//! of `patch_size · merge_size` within `[min_pixels, max_pixels]`, rescale to
//! `[0, 1]`, normalise per channel, repeat the frame `temporal_patch_size`
//! times and cut it into patches in the vision tower's token order.
//!
//! The one difference from the reference: resampling uses the `image`
//! crate's Catmull-Rom (bicubic, a = −0.5) filter where transformers uses
//! torchvision's antialiased bicubic; when no resize is needed (sides
//! already multiples of the factor, pixels within budget) the pixel values
//! are identical.

use super::QwenError;
use image::RgbImage;
use serde_json::Value;
use std::path::Path;

/// `preprocessor_config.json`: what the image processor needs.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageProcessorConfig {
    /// Side of one vision patch.
    pub patch_size: usize,
    /// Frames per temporal patch.
    pub temporal_patch_size: usize,
    /// Patches merged per side into one token.
    pub merge_size: usize,
    /// Fewest pixels after resizing.
    pub min_pixels: usize,
    /// Most pixels after resizing.
    pub max_pixels: usize,
    /// Per-channel mean (on `[0, 1]` values).
    pub image_mean: [f32; 3],
    /// Per-channel standard deviation.
    pub image_std: [f32; 3],
}

impl Default for ImageProcessorConfig {
    /// Qwen3-VL's published preprocessor settings.
    fn default() -> Self {
        Self {
            patch_size: 16,
            temporal_patch_size: 2,
            merge_size: 2,
            min_pixels: 65_536,
            max_pixels: 16_777_216,
            image_mean: [0.5; 3],
            image_std: [0.5; 3],
        }
    }
}

impl ImageProcessorConfig {
    /// The published preprocessor settings of a network family: Qwen3-VL's
    /// (the [`Default`]), or Qwen2.5-VL's (patch 14, CLIP mean and std,
    /// 3 136 to 12 845 056 pixels).
    pub fn for_arch(arch: super::config::Arch) -> Self {
        match arch {
            super::config::Arch::Qwen3Vl => Self::default(),
            super::config::Arch::Qwen25Vl => Self {
                patch_size: 14,
                temporal_patch_size: 2,
                merge_size: 2,
                min_pixels: 3136,
                max_pixels: 12_845_056,
                image_mean: [0.481_454_66, 0.457_827_5, 0.408_210_73],
                image_std: [0.268_629_54, 0.261_302_6, 0.275_777_1],
            },
        }
    }

    /// Side that resized images are multiples of.
    pub fn factor(&self) -> usize {
        self.patch_size * self.merge_size
    }

    /// Reads `preprocessor_config.json`; keys it lacks keep Qwen3-VL's
    /// defaults.
    pub fn from_file(file: &Path) -> Result<Self, QwenError> {
        Self::from_file_for(file, super::config::Arch::Qwen3Vl)
    }

    /// Reads `preprocessor_config.json`; keys it lacks keep the defaults
    /// of `arch` ([`Self::for_arch`]).
    pub fn from_file_for(file: &Path, arch: super::config::Arch) -> Result<Self, QwenError> {
        let text = std::fs::read_to_string(file).map_err(|e| QwenError::Io {
            file: file.to_path_buf(),
            source: e,
        })?;
        let bad = |problem: String| QwenError::Config {
            file: file.to_path_buf(),
            problem,
        };
        let v: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let mut c = Self::for_arch(arch);
        let uint = |k: &str, d: usize| -> Result<usize, QwenError> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(d),
                Some(x) => x
                    .as_u64()
                    .filter(|&x| x > 0)
                    .map(|x| x as usize)
                    .ok_or_else(|| bad(format!("`{k}` must be a positive integer"))),
            }
        };
        c.patch_size = uint("patch_size", c.patch_size)?;
        c.temporal_patch_size = uint("temporal_patch_size", c.temporal_patch_size)?;
        c.merge_size = uint("merge_size", c.merge_size)?;
        let size = v.get("size");
        let edge = |k: &str| size.and_then(|s| s.get(k)).and_then(Value::as_u64);
        c.min_pixels = uint(
            "min_pixels",
            edge("shortest_edge").map_or(c.min_pixels, |x| x as usize),
        )?;
        c.max_pixels = uint(
            "max_pixels",
            edge("longest_edge").map_or(c.max_pixels, |x| x as usize),
        )?;
        let triple = |k: &str, d: [f32; 3]| -> Result<[f32; 3], QwenError> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(d),
                Some(x) => {
                    let a: Vec<f32> = serde_json::from_value(x.clone())
                        .map_err(|_| bad(format!("`{k}` must be three numbers")))?;
                    let a: [f32; 3] = a
                        .try_into()
                        .map_err(|_| bad(format!("`{k}` must be three numbers")))?;
                    Ok(a)
                }
            }
        };
        c.image_mean = triple("image_mean", c.image_mean)?;
        c.image_std = triple("image_std", c.image_std)?;
        if c.image_std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(bad("`image_std` must be positive".into()));
        }
        if c.min_pixels > c.max_pixels {
            return Err(bad(format!(
                "min_pixels {} exceeds max_pixels {}",
                c.min_pixels, c.max_pixels
            )));
        }
        Ok(c)
    }
}

/// transformers' `smart_resize`: the `(height, width)` to resize to, both
/// multiples of `factor`, with `min_pixels ≤ h·w ≤ max_pixels` and the
/// aspect ratio kept as closely as possible.
pub fn smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: usize,
    max_pixels: usize,
) -> Result<(usize, usize), String> {
    if height == 0 || width == 0 {
        return Err(format!("the image is {width}x{height} pixels"));
    }
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    if h.max(w) / h.min(w) > 200.0 {
        return Err(format!(
            "aspect ratio {:.0} of a {width}x{height} image is over 200",
            h.max(w) / h.min(w)
        ));
    }
    // Python's round() rounds half to even.
    let round = |x: f64| x.round_ties_even();
    let mut h_bar = (round(h / f) * f).max(f);
    let mut w_bar = (round(w / f) * f).max(f);
    if h_bar * w_bar > max_pixels as f64 {
        let beta = (h * w / max_pixels as f64).sqrt();
        h_bar = f.max((h / beta / f).floor() * f);
        w_bar = f.max((w / beta / f).floor() * f);
    } else if h_bar * w_bar < min_pixels as f64 {
        let beta = (min_pixels as f64 / (h * w)).sqrt();
        h_bar = (h * beta / f).ceil() * f;
        w_bar = (w * beta / f).ceil() * f;
    }
    Ok((h_bar as usize, w_bar as usize))
}

/// An image ready for the vision tower.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedImage {
    /// `patches × (3 · temporal_patch_size · patch_size²)` values, row-major.
    pub pixel_values: Vec<f32>,
    /// `(t, h, w)` in patches.
    pub grid_thw: [usize; 3],
    /// The size the image was resized to (what the model sees), `(w, h)`.
    pub shown: (u32, u32),
    /// The size it had, `(w, h)`.
    pub original: (u32, u32),
    /// Patches merged per side into one token.
    pub merge_size: usize,
}

impl PreparedImage {
    /// Number of patches (rows of `pixel_values`).
    pub fn patches(&self) -> usize {
        self.grid_thw.iter().product()
    }

    /// Width of one patch vector.
    pub fn patch_dim(&self) -> usize {
        self.pixel_values.len() / self.patches().max(1)
    }

    /// Language-model tokens (`<|image_pad|>`) this image takes.
    pub fn tokens(&self) -> usize {
        self.patches() / (self.merge_size * self.merge_size)
    }
}

/// Resizes, normalises and patchifies an image. `max_pixels` (if given)
/// lowers the processor's pixel budget.
pub fn prepare(
    img: &RgbImage,
    cfg: &ImageProcessorConfig,
    max_pixels: Option<usize>,
) -> Result<PreparedImage, String> {
    let max_px = max_pixels.map_or(cfg.max_pixels, |m| m.min(cfg.max_pixels));
    let min_px = cfg.min_pixels.min(max_px);
    let (rh, rw) = smart_resize(
        img.height() as usize,
        img.width() as usize,
        cfg.factor(),
        min_px,
        max_px,
    )?;
    let resized;
    let src = if (rw as u32, rh as u32) == img.dimensions() {
        img
    } else {
        resized = image::imageops::resize(
            img,
            rw as u32,
            rh as u32,
            image::imageops::FilterType::CatmullRom,
        );
        &resized
    };
    let (p, m, tp) = (cfg.patch_size, cfg.merge_size, cfg.temporal_patch_size);
    let (gh, gw) = (rh / p, rw / p);
    let dim = 3 * tp * p * p;
    let mut out = vec![0f32; gh * gw * dim];
    let raw = src.as_raw();
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * cfg.image_std[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| cfg.image_mean[c] / cfg.image_std[c]);
    let mut row = 0;
    for bh in 0..gh / m {
        for bw in 0..gw / m {
            for mh in 0..m {
                for mw in 0..m {
                    let (py0, px0) = ((bh * m + mh) * p, (bw * m + mw) * p);
                    let dst = &mut out[row * dim..(row + 1) * dim];
                    for c in 0..3 {
                        for t in 0..tp {
                            for y in 0..p {
                                let base = ((c * tp + t) * p + y) * p;
                                let src_row = ((py0 + y) * rw + px0) * 3;
                                for x in 0..p {
                                    dst[base + x] =
                                        raw[src_row + x * 3 + c] as f32 * scale[c] - shift[c];
                                }
                            }
                        }
                    }
                    row += 1;
                }
            }
        }
    }
    Ok(PreparedImage {
        pixel_values: out,
        grid_thw: [1, gh, gw],
        shown: (rw as u32, rh as u32),
        original: img.dimensions(),
        merge_size: m,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_resize_matches_transformers() {
        // Values computed with transformers' smart_resize (factor 32).
        assert_eq!(
            smart_resize(768, 768, 32, 65_536, 16_777_216),
            Ok((768, 768))
        );
        assert_eq!(
            smart_resize(100, 300, 32, 65_536, 16_777_216),
            Ok((160, 448))
        );
        assert_eq!(
            smart_resize(1000, 2000, 32, 65_536, 262_144),
            Ok((352, 704))
        );
        assert_eq!(smart_resize(50, 49, 32, 1024, 1_000_000), Ok((64, 64)));
        assert!(smart_resize(1, 1000, 32, 1024, 1_000_000).is_err());
        assert!(smart_resize(0, 10, 32, 1024, 1_000_000).is_err());
    }

    #[test]
    fn patches_are_in_the_vision_tower_order() {
        // A 64×32 image (no resize at factor 32) whose pixel value encodes
        // its position: red = x, green = y.
        let img = RgbImage::from_fn(64, 32, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let cfg = ImageProcessorConfig {
            min_pixels: 1,
            image_mean: [0.0; 3],
            image_std: [1.0; 3],
            ..Default::default()
        };
        let p = prepare(&img, &cfg, None).expect("prepare");
        assert_eq!(p.grid_thw, [1, 2, 4]);
        assert_eq!(p.shown, (64, 32));
        assert_eq!(p.tokens(), 2);
        assert_eq!(p.patch_dim(), 3 * 2 * 16 * 16);
        // Row order: merge blocks (bh, bw), then (mh, mw) inside a block.
        let expect = [
            (0, 0),
            (16, 0),
            (0, 16),
            (16, 16),
            (32, 0),
            (48, 0),
            (32, 16),
            (48, 16),
        ];
        for (row, &(x0, y0)) in expect.iter().enumerate() {
            let v = &p.pixel_values[row * p.patch_dim()..];
            let red = |t: usize, y: usize, x: usize| v[(t * 16 + y) * 16 + x] * 255.0;
            let green = |t: usize, y: usize, x: usize| v[((2 + t) * 16 + y) * 16 + x] * 255.0;
            for t in 0..2 {
                assert!((red(t, 3, 5) - (x0 + 5) as f32).abs() < 1e-3, "row {row}");
                assert!((green(t, 3, 5) - (y0 + 3) as f32).abs() < 1e-3, "row {row}");
            }
            assert!((v[4 * 256] * 255.0 - 7.0).abs() < 1e-3);
        }
    }

    #[test]
    fn normalisation_and_budget() {
        let img = RgbImage::from_pixel(300, 200, image::Rgb([255, 0, 128]));
        let cfg = ImageProcessorConfig::default();
        let p = prepare(&img, &cfg, Some(40_000)).expect("prepare");
        let (w, h) = p.shown;
        assert!(w as usize * h as usize <= 65_536, "{w}x{h}");
        assert_eq!(w % 32, 0);
        assert_eq!(h % 32, 0);
        assert!((p.pixel_values[0] - 1.0).abs() < 1e-5);
        assert!((p.pixel_values[2 * 256] + 1.0).abs() < 1e-5);
        assert!((p.pixel_values[4 * 256] - (128.0 / 127.5 - 1.0)).abs() < 1e-5);
    }
}
