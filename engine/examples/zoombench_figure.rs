//! Writes the README figure: a ZoomBench sample with its ground-truth box,
//! the 64×64 global view the policy sees, and a 64×64 zoom on the rationale.
//!
//! `cargo run --release -p virl-engine --example zoombench_figure -- docs/zoombench-sample.png`

use image::{Rgb, RgbImage, imageops};
use virl_engine::dataset::zoombench::{ZoomBench, ZoomBenchConfig};
use virl_engine::geometry::{BBox, crop_resize, global_view};

fn outline(img: &mut RgbImage, b: &BBox, rgb: [u8; 3], t: u32) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (x1, y1, x2, y2) = (b.x1 as i64, b.y1 as i64, b.x2 as i64 - 1, b.y2 as i64 - 1);
    for d in 0..t as i64 {
        for x in x1 - d..=x2 + d {
            for y in [y1 - d, y2 + d] {
                if (0..w).contains(&x) && (0..h).contains(&y) {
                    img.put_pixel(x as u32, y as u32, Rgb(rgb));
                }
            }
        }
        for y in y1 - d..=y2 + d {
            for x in [x1 - d, x2 + d] {
                if (0..w).contains(&x) && (0..h).contains(&y) {
                    img.put_pixel(x as u32, y as u32, Rgb(rgb));
                }
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "zoombench-sample.png".into());
    let zb = ZoomBench::new(ZoomBenchConfig::default())?;
    let (sample, img) = zb.generate(0, 0);
    let g = sample.rationales[0].bbox;
    let (cx, cy) = g.center();
    let side = 3.0 * g.width();
    let zoom = BBox::new(
        cx - side / 2.0,
        cy - side / 2.0,
        cx + side / 2.0,
        cy + side / 2.0,
    );
    let global = imageops::resize(
        &global_view(&img, 64),
        384,
        384,
        imageops::FilterType::Nearest,
    );
    let crop = imageops::resize(
        &crop_resize(&img, &zoom, 64),
        384,
        384,
        imageops::FilterType::Nearest,
    );
    let mut full = img.clone();
    outline(&mut full, &zoom, [255, 255, 0], 2);
    outline(&mut full, &g, [0, 255, 0], 1);
    let mut canvas = RgbImage::from_pixel(768 + 384 + 16, 768, Rgb([30, 30, 30]));
    imageops::replace(&mut canvas, &full, 0, 0);
    imageops::replace(&mut canvas, &global, 768 + 16, 0);
    imageops::replace(&mut canvas, &crop, 768 + 16, 384);
    canvas.save(&out)?;
    println!(
        "{}: {:?} answer {} — left: 768×768 image (green: ground truth, yellow: zoom); top right: 64×64 global view; bottom right: 64×64 zoom",
        out, sample.question, sample.answer
    );
    Ok(())
}
