//! `virl import` and `virl export`: V* Bench and COCO in, COCO and JSONL out
//! (the engine's `dataset::interchange` does the work).

use anyhow::Context;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use virl_engine::dataset::Dataset;
use virl_engine::dataset::interchange::{self, ExportFormat};

/// Source formats of `virl import`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ImportFormat {
    /// A V* Bench folder: `<id>.jpg` + `<id>.json` (question, options with the correct one first, target_object, bbox as x,y,w,h).
    Vstar,
    /// A COCO detection JSON file; images from `--images` (default: the file's folder).
    Coco,
    /// Visual-CoT's training JSON (`viscot_363k.json`, or JSON Lines): the
    /// second turn is the rationale box (normalised to the image padded to a
    /// centred square), the last the answer; images from `--images`.
    Viscot,
    /// An HR-Bench TSV (4K or 8K): base64 images, question, options A–D and
    /// the answer letter; no boxes (an evaluation set without rationales).
    Hrbench,
    /// A verl RL parquet: what `virl export --format verl` writes comes back
    /// whole; another run's rows give question, answer and image (a path or
    /// embedded bytes), without boxes. Read by the `virl` Python package
    /// (pyarrow), as the verl export is written.
    Verl,
}

/// Flags of `virl import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The source format.
    #[arg(long, value_enum)]
    format: ImportFormat,
    /// The V* folder, or the COCO JSON file.
    src: PathBuf,
    /// The dataset folder to create. Its manifest names the images where
    /// they lie (nothing is copied) unless --copy-images; images embedded
    /// in the file (HR-Bench, verl bytes) are always written into it.
    #[arg(long)]
    out: PathBuf,
    /// Link (or, across file systems, copy) every image into the dataset
    /// folder, so that it stands alone.
    #[arg(long)]
    copy_images: bool,
    /// COCO, Visual-CoT: the folder the image paths are relative to
    /// (default: the folder a ViRL Studio COCO export records, else the file's folder).
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,
    /// Import the good samples and list the bad ones, instead of failing on the first bad file.
    #[arg(long)]
    skip_bad: bool,
}

/// Output formats of `virl export`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OutFormat {
    /// COCO detection JSON: rationales as annotations, their labels as categories.
    Coco,
    /// Our manifest JSONL, corrections from `annotations.jsonl` applied.
    Jsonl,
    /// verl's RL parquet (prompt with the zoom-tool system prompt and the
    /// image placeholder, images, reward_model.ground_truth, extra_info with
    /// the zoom tool's arguments, agent_name). Written by the `virl` Python
    /// package (`pip install ./python`), which verl runs use anyway.
    Verl,
}

/// Flags of `virl export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The output format.
    #[arg(long, value_enum)]
    format: OutFormat,
    /// The dataset folder (its correction journal is applied).
    #[arg(long)]
    dataset: PathBuf,
    /// The file to write.
    #[arg(long)]
    out: PathBuf,
    /// verl only: the largest image area the model is shown, in pixels
    /// (Qwen2.5-VL's smart_resize) [12845056].
    #[arg(long)]
    max_pixels: Option<u64>,
    /// verl only: the split written to extra_info.split [train].
    #[arg(long)]
    split: Option<String>,
}

/// The Python that has the `virl` package and pyarrow, found as a user
/// would look for it: `$VIRL_PYTHON` (used as given); else the first that
/// can import them of the active virtualenv (`$VIRTUAL_ENV`), a `.venv` in
/// the working directory, a `.venv` beside the `virl` binary's checkout
/// (`target/release/virl` → `.venv`, where `./run-tests` puts it), and
/// `python3` and `python` on PATH.
fn python() -> anyhow::Result<String> {
    if let Ok(py) = std::env::var("VIRL_PYTHON") {
        return Ok(py);
    }
    let mut tried: Vec<String> = Vec::new();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
        candidates.push(PathBuf::from(v).join("bin/python"));
    }
    candidates.push(PathBuf::from(".venv/bin/python"));
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(
            exe.ancestors()
                .skip(1)
                .take(4)
                .map(|d| d.join(".venv/bin/python")),
        );
    }
    candidates.push("python3".into());
    candidates.push("python".into());
    for c in candidates {
        let name = c.display().to_string();
        if tried.contains(&name) || (c.components().count() > 1 && !c.exists()) {
            continue;
        }
        let ok = std::process::Command::new(&c)
            .args(["-c", "import virl.verl.export, pyarrow"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(name);
        }
        tried.push(name);
    }
    anyhow::bail!(
        "this format needs the virl Python package and pyarrow, and no Python here has them \
         (tried {}): pip install ./python pyarrow into one of them, or set VIRL_PYTHON \
         to the Python that has them",
        tried.join(", ")
    )
}

/// `virl export --format verl`: runs the package's exporter, which writes
/// the parquet with pyarrow.
fn export_verl(a: &ExportArgs) -> anyhow::Result<()> {
    let py = python()?;
    let mut cmd = std::process::Command::new(&py);
    cmd.args(["-m", "virl.verl.export", "--dataset"])
        .arg(&a.dataset)
        .arg("--out")
        .arg(&a.out);
    if let Some(m) = a.max_pixels {
        cmd.arg("--max-pixels").arg(m.to_string());
    }
    if let Some(s) = &a.split {
        cmd.arg("--split").arg(s);
    }
    let status = cmd.status().with_context(|| {
        format!("cannot run {py} (set VIRL_PYTHON to the Python that has the virl package)")
    })?;
    if status.success() {
        return Ok(());
    }
    let probe = std::process::Command::new(&py)
        .args(["-c", "import virl.verl.export, pyarrow"])
        .output();
    if probe.is_ok_and(|o| !o.status.success()) {
        anyhow::bail!(
            "--format verl needs the virl Python package and pyarrow in {py}: \
             pip install ./python pyarrow (or set VIRL_PYTHON to the Python that has them)"
        );
    }
    anyhow::bail!("the verl export failed (see above)")
}

/// HR-Bench: its images are inside the file, so they are decoded into a
/// staging folder beside `--out` first, linked into the dataset, and the
/// staging folder removed whatever happens.
fn import_embedded(a: &ImportArgs) -> anyhow::Result<()> {
    let name = a
        .out
        .file_name()
        .map_or("dataset".into(), |n| n.to_string_lossy().into_owned());
    let staging = a
        .out
        .with_file_name(format!(".{name}.staging-{}", std::process::id()));
    let result = (|| {
        let rep = match a.format {
            ImportFormat::Verl => read_verl(&a.src, &staging)?,
            _ if a.src.extension().is_some_and(|e| e == "parquet") => {
                std::fs::create_dir_all(&staging)
                    .with_context(|| format!("cannot create {}", staging.display()))?;
                let tsv = staging.join("hrbench.tsv");
                run_python(&["-m", "virl.hrbench", "--parquet"], &a.src, &tsv)?;
                let mut rep = interchange::read_hrbench(&tsv, &staging)?;
                // Problems name the parquet the user gave, not the TSV made from it.
                for e in &mut rep.problems {
                    if let virl_engine::dataset::DatasetError::Invalid { path, .. } = e {
                        *path = a.src.clone();
                    }
                }
                rep
            }
            _ => interchange::read_hrbench(&a.src, &staging)?,
        };
        let mut rep = rep;
        // What the file held was decoded into the staging folder, which goes.
        for s in &mut rep.samples {
            s.extracted |= s.source_image.starts_with(&staging);
        }
        finish_import(a, rep)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// The rows of a verl parquet, read by the `virl` package's importer into
/// JSON lines in `staging` (with any embedded images).
fn read_verl(
    src: &std::path::Path,
    staging: &std::path::Path,
) -> anyhow::Result<interchange::ImportReport> {
    std::fs::create_dir_all(staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let rows = staging.join("rows.jsonl");
    let staging_arg = staging.to_string_lossy().into_owned();
    run_python(
        &[
            "-m",
            "virl.verl.importer",
            "--staging",
            &staging_arg,
            "--parquet",
        ],
        src,
        &rows,
    )?;
    let bytes = std::fs::read(&rows).with_context(|| format!("cannot read {}", rows.display()))?;
    Ok(interchange::from_verl_rows(&bytes, src))
}

/// Runs `python ARGS SRC --out OUT` with the Python that has the `virl`
/// package; its error, or what to install, on failure.
fn run_python(args: &[&str], src: &std::path::Path, out: &std::path::Path) -> anyhow::Result<()> {
    let py = python()?;
    let o = std::process::Command::new(&py)
        .args(args)
        .arg(src)
        .arg("--out")
        .arg(out)
        .output()
        .with_context(|| {
            format!("cannot run {py} (set VIRL_PYTHON to the Python that has the virl package)")
        })?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        if err.contains("No module named") {
            anyhow::bail!(
                "this format needs the virl Python package and pyarrow in {py}: \
                 pip install ./python pyarrow (or set VIRL_PYTHON to the Python that has them)"
            );
        }
        anyhow::bail!("{}", err.trim());
    }
    Ok(())
}

/// `--images`, or the folder a ViRL Studio COCO export records, or the
/// annotation file's folder.
fn images_dir(a: &ImportArgs) -> PathBuf {
    if a.images.is_none()
        && matches!(a.format, ImportFormat::Coco)
        && let Some(root) = interchange::coco_images_root(&a.src)
    {
        return root;
    }
    a.images.clone().unwrap_or_else(|| {
        a.src
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
    })
}

/// `virl import`: reads a V* folder, a COCO or a Visual-CoT file and writes a dataset folder.
pub fn import(a: ImportArgs) -> anyhow::Result<()> {
    let rep = match a.format {
        ImportFormat::Vstar => interchange::read_vstar(&a.src)?,
        ImportFormat::Coco => interchange::read_coco(&a.src, &images_dir(&a))?,
        ImportFormat::Viscot => interchange::read_viscot(&a.src, &images_dir(&a))?,
        ImportFormat::Hrbench | ImportFormat::Verl => return import_embedded(&a),
    };
    finish_import(&a, rep)
}

/// Verifies the images of an import, reports what is skipped, writes the
/// dataset folder.
fn finish_import(a: &ImportArgs, rep: interchange::ImportReport) -> anyhow::Result<()> {
    let mut rep = rep;
    interchange::verify_images(&mut rep);
    let bad = rep.problems.len();
    if a.skip_bad {
        for p in &rep.problems {
            eprintln!("skipped: {p}");
        }
    }
    let images = if a.copy_images {
        interchange::Images::Copy
    } else {
        interchange::Images::Reference
    };
    let ds = interchange::write_dataset(rep, &a.out, a.skip_bad, images)
        .with_context(|| format!("importing {}", a.src.display()))?;
    let boxes: usize = ds.samples().iter().map(|s| s.rationales.len()).sum();
    println!(
        "imported {} samples with {boxes} rationale boxes into {}{}",
        ds.len(),
        ds.manifest_path().display(),
        if bad > 0 {
            format!(" ({bad} skipped)")
        } else {
            String::new()
        }
    );
    Ok(())
}

/// `virl export`: writes a dataset (corrections applied) as COCO or JSONL.
pub fn export(a: ExportArgs) -> anyhow::Result<()> {
    let f = match a.format {
        OutFormat::Coco => ExportFormat::Coco,
        OutFormat::Jsonl => ExportFormat::Jsonl,
        OutFormat::Verl => return export_verl(&a),
    };
    let ds = Dataset::load(&a.dataset)?;
    for w in ds.journal_warnings() {
        eprintln!("warning: {w}");
    }
    interchange::export(&ds, f, &a.out)?;
    println!(
        "exported {} samples ({} corrections from the journal applied) to {}",
        ds.len(),
        ds.pending_edits(),
        a.out.display()
    );
    Ok(())
}
