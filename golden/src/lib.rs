//! Golden-image snapshots of annotation rendering.
//!
//! A snapshot is a PNG in `golden/snapshots/`. [`Golden::check`] compares a rendered image
//! with it under a [`Tolerance`]: a pixel differs when one of its channels moved by more than
//! `channel`, and the check fails when more than `max_fraction` of the pixels differ. A minor
//! rasterization change (anti-aliasing, a rounding) passes; a box that moved does not.
//!
//! On a mismatch or a missing snapshot, the new image is written next to the snapshot as
//! `NAME.png.new` (review it with `cargo run -p golden -- review`, keep it with `accept`), and
//! `target/golden/NAME.{actual,expected,diff}.png` show what changed. `GOLDEN_ACCEPT=1 cargo
//! test -p golden` accepts every new image at once.

use std::path::{Path, PathBuf};

use telescope::annotation::opencv::FrameDriver;
use telescope::annotation::{DrawError, Driver, Scene};
use telescope::images::{read_png, write_png, ImageError};
use telescope::{Frame, PixelFormat};

/// How far an image may stray from its snapshot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// A pixel differs when a channel moved by more than this.
    pub channel: u8,
    /// The check fails when more than this fraction of pixels differ.
    pub max_fraction: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            channel: 40,
            max_fraction: 0.002,
        }
    }
}

/// How two images differ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Difference {
    /// Pixels with a channel beyond the tolerance.
    pub differing: usize,
    /// Pixels compared.
    pub total: usize,
    /// The largest channel difference seen.
    pub max_channel: u8,
    /// The sizes or formats differ (then nothing else is compared).
    pub shape_mismatch: bool,
}

impl Difference {
    /// Whether this is within `tolerance`.
    pub fn within(&self, tolerance: Tolerance) -> bool {
        !self.shape_mismatch && self.differing as f64 <= tolerance.max_fraction * self.total as f64
    }
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.shape_mismatch {
            return write!(f, "size or format differs");
        }
        write!(
            f,
            "{} of {} pixels differ ({:.3} %), largest channel difference {}",
            self.differing,
            self.total,
            100.0 * self.differing as f64 / self.total.max(1) as f64,
            self.max_channel
        )
    }
}

fn channels(format: PixelFormat) -> usize {
    format.luma_bytes_per_pixel()
}

fn same_shape(actual: &Frame, expected: &Frame) -> bool {
    actual.format() == expected.format()
        && actual.width() == expected.width()
        && actual.height() == expected.height()
        && !actual.format().is_subsampled()
}

/// For each pixel of two images of the same shape, in row order: its largest channel
/// difference and the expected pixel's channels.
fn pixel_diffs<'a>(actual: &'a Frame, expected: &'a Frame) -> impl Iterator<Item = (u8, &'a [u8])> {
    let c = channels(expected.format());
    let row = expected.width() as usize * c;
    (0..expected.height() as usize).flat_map(move |y| {
        let a = &actual.data()[y * actual.stride()..][..row];
        let e = &expected.data()[y * expected.stride()..][..row];
        a.chunks_exact(c).zip(e.chunks_exact(c)).map(|(pa, pe)| {
            let d = pa
                .iter()
                .zip(pe)
                .map(|(x, y)| x.abs_diff(*y))
                .max()
                .unwrap_or(0);
            (d, pe)
        })
    })
}

/// Compares two packed 8-bit images pixel by pixel.
pub fn compare(actual: &Frame, expected: &Frame, tolerance: Tolerance) -> Difference {
    let total = (expected.width() * expected.height()) as usize;
    if !same_shape(actual, expected) {
        return Difference {
            differing: total,
            total,
            max_channel: 255,
            shape_mismatch: true,
        };
    }
    let (mut differing, mut max_channel) = (0, 0u8);
    for (d, _) in pixel_diffs(actual, expected) {
        max_channel = max_channel.max(d);
        if d > tolerance.channel {
            differing += 1;
        }
    }
    Difference {
        differing,
        total,
        max_channel,
        shape_mismatch: false,
    }
}

/// A picture of the difference: the expected image dimmed, differing pixels in red.
pub fn diff_image(actual: &Frame, expected: &Frame, tolerance: Tolerance) -> Option<Frame> {
    if !same_shape(actual, expected) {
        return None;
    }
    let c = channels(expected.format()) as u32;
    let (w, h) = (expected.width(), expected.height());
    let mut out = Vec::with_capacity((w * h * 3) as usize);
    for (d, pe) in pixel_diffs(actual, expected) {
        if d > tolerance.channel {
            out.extend_from_slice(&[0, 0, 255]);
        } else {
            let luma = pe.iter().map(|&v| u32::from(v)).sum::<u32>() / c / 3;
            out.extend_from_slice(&[luma as u8; 3]);
        }
    }
    Frame::from_vec(out, PixelFormat::Bgr8, w, h).ok()
}

/// Why a snapshot check failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GoldenError {
    /// No snapshot yet; the image was written for review.
    #[error("snapshot `{name}` does not exist yet; review {} (cargo run -p golden -- review), or run with GOLDEN_ACCEPT=1", new.display())]
    Missing { name: String, new: PathBuf },
    /// The image differs from its snapshot.
    #[error("snapshot `{name}` differs: {difference}; see {} and {}.{{actual,expected,diff}}.png; review with cargo run -p golden -- review", new.display(), report.display())]
    Mismatch {
        name: String,
        difference: Difference,
        new: PathBuf,
        report: PathBuf,
    },
    /// Reading or writing an image failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Drawing failed.
    #[error(transparent)]
    Draw(#[from] DrawError),
}

/// What a passing check did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Within tolerance of the snapshot.
    Matched(Difference),
    /// `GOLDEN_ACCEPT` was set: the snapshot was (re)written.
    Accepted,
}

/// A snapshot directory and where mismatch reports go.
#[derive(Debug, Clone)]
pub struct Golden {
    /// Where the `NAME.png` snapshots live.
    pub snapshots: PathBuf,
    /// Where `NAME.{actual,expected,diff}.png` go on a mismatch.
    pub reports: PathBuf,
    /// The tolerance.
    pub tolerance: Tolerance,
    /// Write the image as the snapshot instead of comparing.
    pub accept: bool,
}

impl Default for Golden {
    fn default() -> Self {
        Self::new()
    }
}

impl Golden {
    /// This crate's `snapshots/`, reports under the target directory, `GOLDEN_ACCEPT` from the
    /// environment.
    pub fn new() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("../target"));
        Golden {
            snapshots: root.join("snapshots"),
            reports: target.join("golden"),
            tolerance: Tolerance::default(),
            accept: std::env::var("GOLDEN_ACCEPT").is_ok_and(|v| v == "1" || v == "always"),
        }
    }

    /// Compares `actual` with the snapshot `name`.
    pub fn check(&self, name: &str, actual: &Frame) -> Result<Outcome, GoldenError> {
        let expected_path = self.snapshots.join(format!("{name}.png"));
        let new = self.snapshots.join(format!("{name}.png.new"));
        let io = |error| {
            GoldenError::Image(ImageError::Io {
                path: self.snapshots.clone(),
                error,
            })
        };
        std::fs::create_dir_all(&self.snapshots).map_err(io)?;
        if self.accept {
            write_png(&expected_path, actual)?;
            let _ = std::fs::remove_file(&new);
            return Ok(Outcome::Accepted);
        }
        if !expected_path.exists() {
            write_png(&new, actual)?;
            return Err(GoldenError::Missing {
                name: name.to_owned(),
                new,
            });
        }
        let expected = read_png(&expected_path)?;
        let difference = compare(actual, &expected, self.tolerance);
        if difference.within(self.tolerance) {
            // A stale review file from an earlier failure is gone once the image matches.
            let _ = std::fs::remove_file(&new);
            return Ok(Outcome::Matched(difference));
        }
        write_png(&new, actual)?;
        std::fs::create_dir_all(&self.reports).map_err(io)?;
        let report = self.reports.join(name);
        let with = |suffix: &str| self.reports.join(format!("{name}.{suffix}.png"));
        write_png(&with("actual"), actual)?;
        write_png(&with("expected"), &expected)?;
        if let Some(diff) = diff_image(actual, &expected, self.tolerance) {
            write_png(&with("diff"), &diff)?;
        }
        Err(GoldenError::Mismatch {
            name: name.to_owned(),
            difference,
            new,
            report,
        })
    }
}

/// Draws `scene` on a copy of `background`.
pub fn render(scene: &Scene, background: &Frame) -> Result<Frame, DrawError> {
    let mut frame = background.clone();
    FrameDriver::new(&mut frame).draw(scene, None)?;
    Ok(frame)
}

/// The fixed background of the synthetic snapshots: a smooth two-way gradient with a grid, so
/// that both light and dark annotations show and alpha blending is visible.
pub fn background(width: u32, height: u32) -> Frame {
    let mut data = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let grid = x % 40 == 0 || y % 40 == 0;
            let b = (x * 255 / width.max(1)) as u8;
            let g = (y * 255 / height.max(1)) as u8;
            let r = 128u8;
            if grid {
                data.extend_from_slice(&[40, 40, 40]);
            } else {
                data.extend_from_slice(&[b / 2 + 40, g / 2 + 40, r]);
            }
        }
    }
    // The size is positive and the buffer matches it exactly.
    Frame::from_vec(data, PixelFormat::Bgr8, width, height)
        .unwrap_or_else(|e| unreachable!("background {width}x{height}: {e}"))
}

/// A snapshot waiting for review: `NAME.png.new` and its current `NAME.png`, if any.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Snapshot name.
    pub name: String,
    /// The new image.
    pub new: PathBuf,
    /// The snapshot it would replace.
    pub current: Option<PathBuf>,
}

/// The `.png.new` files in `dir`, sorted by name.
pub fn pending(dir: &Path) -> std::io::Result<Vec<Pending>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".png.new"))
        else {
            continue;
        };
        let current = dir.join(format!("{name}.png"));
        out.push(Pending {
            name: name.to_owned(),
            current: current.exists().then_some(current),
            new: path,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_counts_pixels_beyond_the_channel_tolerance() {
        let a = background(40, 30);
        let mut b = a.clone();
        b.data_mut()[0] = b.data()[0].wrapping_add(41);
        b.data_mut()[4] = b.data()[4].wrapping_add(40);
        let d = compare(&a, &b, Tolerance::default());
        assert_eq!((d.differing, d.total, d.max_channel), (1, 1200, 41));
        assert!(d.within(Tolerance::default()));
        assert!(!d.within(Tolerance {
            channel: 40,
            max_fraction: 0.0
        }));
        let other = background(40, 31);
        assert!(compare(&a, &other, Tolerance::default()).shape_mismatch);
    }
}
