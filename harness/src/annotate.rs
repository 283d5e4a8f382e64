//! `telescope annotate`: draw a scene on an image or a video frame and write a PNG.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use simulator::Footage;
use telescope::annotation::opencv::FrameDriver;
use telescope::annotation::{Driver, Scene};
use telescope::images::{check_dimensions, jpeg_dimensions, read_png, write_png};
use telescope::Frame;

/// Arguments of `telescope annotate`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  telescope annotate --image street.png --scene scene.json --out annotated.png
  telescope annotate --image vtest.avi --frame 120 --scene scene.json --out frame120.png")]
pub struct AnnotateArgs {
    /// The image (PNG, JPEG) or video file to draw on.
    #[arg(long)]
    pub image: PathBuf,
    /// For a video: which frame (0 is the first).
    #[arg(long, default_value_t = 0)]
    pub frame: u64,
    /// The scene: JSON as documented in the README.
    #[arg(long)]
    pub scene: PathBuf,
    /// Where the PNG goes.
    #[arg(long)]
    pub out: PathBuf,
}

/// Reads a scene file; the error names the file, and the line and column of bad JSON.
pub fn read_scene(path: &Path) -> Result<Scene> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    Scene::from_json(&text).with_context(|| format!("bad scene {}", path.display()))
}

fn load(path: &Path, index: u64) -> Result<Frame> {
    let is_png = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if is_png {
        if index > 0 {
            bail!(
                "{} is a still image: it has no frame {index}",
                path.display()
            );
        }
        return Ok(read_png(path)?);
    }
    // A JPEG's declared size is checked before GStreamer's decoder allocates the frame (read_png
    // checks PNG headers the same way).
    if let Some((width, height)) = jpeg_dimensions(path)? {
        check_dimensions(path, width, height)?;
    }
    let mut footage = Footage::open(path).context("cannot read the image")?;
    let mut n = 0;
    while let Some(frame) = footage.next_frame()? {
        if n == index {
            return Ok(frame);
        }
        n += 1;
    }
    bail!(
        "{} has {n} frames: there is no frame {index}",
        path.display()
    )
}

pub fn run(args: AnnotateArgs) -> Result<()> {
    let scene = read_scene(&args.scene)?;
    let mut frame = load(&args.image, args.frame)?;
    let report = FrameDriver::new(&mut frame)
        .draw(&scene, Some(time::OffsetDateTime::now_utc()))
        .context("cannot draw the scene")?;
    for (index, skip) in &report.skipped {
        eprintln!(
            "telescope: annotation {index} drew nothing: {}",
            skip.reason()
        );
    }
    write_png(&args.out, &frame)?;
    println!(
        "drew {} of {} annotations on {}x{} -> {}",
        report.drawn,
        scene.annotations.len(),
        frame.width(),
        frame.height(),
        args.out.display()
    );
    Ok(())
}
