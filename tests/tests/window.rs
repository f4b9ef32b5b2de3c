//! Smoke test in a real window: `virl --screenshot-to FILE --frames N` opens
//! the studio (eframe + wgpu; under Xvfb wgpu uses lavapipe, the software
//! Vulkan driver), renders, saves a PNG and exits. The PNG must show a UI,
//! not a blank or single-colour frame.
//!
//! Needs a display: `$DISPLAY` if set, else `xvfb-run` (README: the
//! `apt-get install` line). `.ci/run` installs it.

use std::process::Command;

#[test]
fn studio_renders_in_a_real_window() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = tmp.path().join("tiny.toml");
    std::fs::write(
        &cfg,
        "[data]\ntrain_n = 16\neval_n = 8\n[data.zoombench]\ncanvas = 256\nglobal_view = 32\nplacards_min = 1\nplacards_max = 2\ndistractors = 6\n[env]\nview = 32\nmax_rounds = 3\n[trainer]\nsamples_per_iter = 2\ngroup = 2\niterations = 3\neval_every = 0\n",
    )
    .expect("config");
    let shot = tmp.path().join("shot.png");
    let bin = env!("CARGO_BIN_EXE_virl-e2e");
    let args = [
        "--config",
        cfg.to_str().expect("utf8"),
        "--train",
        "--screenshot-to",
        shot.to_str().expect("utf8"),
        "--frames",
        "40",
    ];
    let out = if std::env::var_os("DISPLAY").is_some() {
        Command::new(bin).args(args).current_dir(tmp.path()).output()
    } else {
        Command::new("xvfb-run")
            .args(["-a", "-s", "-screen 0 1440x900x24", bin])
            .args(args)
            .current_dir(tmp.path())
            .output()
    }
    .expect("no display and no xvfb-run: install the packages listed in README.md (apt-get install xvfb …)");
    assert!(
        out.status.success(),
        "the studio failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let img = image::open(&shot).expect("a PNG screenshot").to_rgba8();
    assert!(
        img.width() >= 800 && img.height() >= 500,
        "{}×{}",
        img.width(),
        img.height()
    );
    let mut colours = std::collections::HashSet::new();
    for p in img.pixels() {
        colours.insert(p.0);
        if colours.len() > 64 {
            break;
        }
    }
    assert!(
        colours.len() > 64,
        "the screenshot is nearly blank ({} colours)",
        colours.len()
    );
    // The new session went under the working directory's sessions/.
    let sessions: Vec<_> = std::fs::read_dir(tmp.path().join("sessions"))
        .expect("sessions/")
        .collect();
    assert_eq!(sessions.len(), 1);
}
