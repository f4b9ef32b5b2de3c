use super::*;

/// A `w × h` image whose pixel (x, y) is `(x mod 256, y mod 256, (x / 256 + y / 256) mod 256)`.
fn ramp(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x % 256) as u8,
            (y % 256) as u8,
            ((x / 256 + y / 256) % 256) as u8,
        ])
    })
}

#[test]
fn the_level_is_the_coarsest_that_still_fills_every_screen_pixel() {
    assert_eq!(level_for(4.0), 0);
    assert_eq!(level_for(1.0), 0);
    assert_eq!(level_for(0.99), 0);
    assert_eq!(level_for(0.5), 1);
    assert_eq!(level_for(0.3), 1);
    assert_eq!(level_for(0.25), 2);
    assert_eq!(level_for(0.1), 3);
    assert_eq!(level_for(f32::NAN), 0);
    assert_eq!(level_for(0.0), 0);
}

#[test]
fn covering_tiles_span_the_visible_part_and_stay_inside_the_image() {
    // 8192 × 8192 at full resolution: 16 × 16 tiles of 512.
    let all = covering(0, [0.0, 0.0, 8192.0, 8192.0], 8192, 8192);
    assert_eq!(all.len(), 256);
    // A view from (1000, 1000) to (2100, 1600) touches columns 1..=4, rows 1..=3.
    let some = covering(0, [1000.0, 1000.0, 2100.0, 1600.0], 8192, 8192);
    assert_eq!(some.len(), 4 * 3);
    assert!(
        some.iter()
            .all(|t| (1..=4).contains(&t.tx) && (1..=3).contains(&t.ty))
    );
    // Nearest to the centre (1550, 1300) first: tile (3, 2) holds it.
    assert_eq!((some[0].tx, some[0].ty), (3, 2));
    // Off the image: nothing. Partly off: clipped.
    assert!(covering(0, [9000.0, 0.0, 9500.0, 100.0], 8192, 8192).is_empty());
    let edge = covering(1, [-500.0, -500.0, 700.0, 700.0], 15000, 10000);
    assert_eq!(
        edge,
        vec![TileId {
            level: 1,
            tx: 0,
            ty: 0
        }]
    );
    // The last tile of a 15000 × 10000 image is clipped to it.
    let last = TileId {
        level: 0,
        tx: 29,
        ty: 19,
    };
    assert_eq!(last.source(15000, 10000), [14848, 9728, 15000, 10000]);
}

#[test]
fn a_full_resolution_tile_is_the_original_pixels() {
    let img = ramp(1300, 700);
    let t = TileId {
        level: 0,
        tx: 2,
        ty: 1,
    };
    let c = cut(&img, t);
    // Columns 1024..1300, rows 512..700.
    assert_eq!(c.size, [276, 188]);
    for (x, y) in [(0u32, 0u32), (275, 187), (100, 50)] {
        let p = img.get_pixel(1024 + x, 512 + y).0;
        assert_eq!(
            c.pixels[(y * 276 + x) as usize],
            Color32::from_rgb(p[0], p[1], p[2]),
            "pixel ({x}, {y})"
        );
    }
}

#[test]
fn a_coarser_tile_averages_the_pixels_it_covers() {
    // 2 × 2 blocks of (0, 100, 200, 40) red values average to 85.
    let img = RgbImage::from_fn(1030, 4, |x, y| {
        let v = [0u8, 100, 200, 40][((y % 2) * 2 + x % 2) as usize];
        image::Rgb([v, 7, 9])
    });
    let c = cut(
        &img,
        TileId {
            level: 1,
            tx: 0,
            ty: 0,
        },
    );
    // 1024 image pixels → 512 texture pixels (the tile's width), 4 rows → 2.
    assert_eq!(c.size, [512, 2]);
    assert_eq!(c.pixels[0], Color32::from_rgb(85, 7, 9));
    // The next tile holds the 6 pixels left: 3 texture pixels.
    let c = cut(
        &img,
        TileId {
            level: 1,
            tx: 1,
            ty: 0,
        },
    );
    assert_eq!(c.size, [3, 2]);
}

fn store_of(dir: &std::path::Path, w: u32, h: u32) -> Arc<ImageStore> {
    ramp(w, h).save(dir.join("big.png")).expect("png");
    crate::studio::images::one_image_store(dir, "big.png", w, h)
}

/// Paints frames of the `w × h` image at `placed` until no tile is missing.
fn settle(
    tiles: &mut TileCache,
    ctx: &egui::Context,
    store: &Arc<ImageStore>,
    overview: &TextureHandle,
    placed: Placed,
    view: Rect,
    size: [u32; 2],
) -> usize {
    let start = std::time::Instant::now();
    let frame = |tiles: &mut TileCache| {
        let mut painted = 0;
        ctx.run_ui(egui::RawInput::default(), |ui| {
            let painter = ui.painter_at(view);
            painted = tiles.paint(&painter, view, placed, overview, "big", store, 0, size);
        })
        .textures_delta
        .clear();
        painted
    };
    loop {
        frame(tiles);
        if !tiles.loading() {
            // One more frame uploads what the worker finished last.
            let painted = frame(tiles);
            if !tiles.loading() {
                return painted;
            }
        }
        assert!(
            start.elapsed().as_secs() < 120,
            "tiles still loading after 2 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn zooming_in_fetches_full_resolution_tiles_within_the_budget() {
    let dir = tempfile::tempdir().expect("tmp");
    let (w, h) = (3000, 2000);
    let store = store_of(dir.path(), w, h);
    let ctx = egui::Context::default();
    let overview = ctx.load_texture(
        "ov",
        ColorImage::filled([1000, 667], Color32::BLACK),
        TextureOptions::LINEAR,
    );
    // Three tiles' worth of budget.
    let mut tiles = TileCache::new(3 * (TILE * TILE * 4) as usize, Arc::new(|| {}));
    let view = Rect::from_min_size(Pos2::ZERO, Vec2::new(800.0, 600.0));
    // Fitted (0.25 points per pixel): a 1000-wide overview is sharp enough.
    let fit = Placed {
        origin: Pos2::ZERO,
        scale: 0.25,
    };
    assert_eq!(
        settle(&mut tiles, &ctx, &store, &overview, fit, view, [w, h]),
        0
    );
    assert!(tiles.is_empty());
    // A 300-wide one is not: level 2 tiles (a quarter of full resolution).
    let coarse = ctx.load_texture(
        "ov-small",
        ColorImage::filled([300, 200], Color32::BLACK),
        TextureOptions::LINEAR,
    );
    let n = settle(&mut tiles, &ctx, &store, &coarse, fit, view, [w, h]);
    assert_eq!(n, 2, "3000 × 2000 at level 2 is 2 × 1 tiles");
    assert!(tiles.texture_bytes() <= 2 * (TILE * TILE * 4) as usize);
    // 2 points per pixel over (1000, 500)..(1400, 800): level 0, columns 1–2, rows 0–1.
    let zoomed = Placed {
        origin: Pos2::new(-2000.0, -1000.0),
        scale: 2.0,
    };
    let n = settle(&mut tiles, &ctx, &store, &overview, zoomed, view, [w, h]);
    assert_eq!(n, 4, "the four tiles under the view are painted");
    // More than the budget was needed for this frame, so nothing is evicted
    // from it; the next view evicts.
    let elsewhere = Placed {
        origin: Pos2::new(-4000.0, -2600.0),
        scale: 2.0,
    };
    let n = settle(&mut tiles, &ctx, &store, &overview, elsewhere, view, [w, h]);
    assert!(n >= 1);
    assert!(
        tiles.texture_bytes() <= tiles.budget.max(n * (TILE * TILE * 4) as usize),
        "{} bytes held against a budget of {}",
        tiles.texture_bytes(),
        tiles.budget
    );
    assert!(tiles.len() <= 4);
}

#[test]
fn an_image_that_cannot_be_decoded_is_not_asked_for_again() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = store_of(dir.path(), 3000, 2000);
    std::fs::write(dir.path().join("big.png"), b"not a png").expect("write");
    let ctx = egui::Context::default();
    let overview = ctx.load_texture(
        "ov",
        ColorImage::filled([300, 200], Color32::BLACK),
        TextureOptions::LINEAR,
    );
    let mut tiles = TileCache::new(1 << 26, Arc::new(|| {}));
    let view = Rect::from_min_size(Pos2::ZERO, Vec2::new(400.0, 300.0));
    let zoomed = Placed {
        origin: Pos2::ZERO,
        scale: 1.0,
    };
    assert_eq!(
        settle(
            &mut tiles,
            &ctx,
            &store,
            &overview,
            zoomed,
            view,
            [3000, 2000]
        ),
        0
    );
    assert!(!tiles.loading(), "failed tiles are not requested again");
}
