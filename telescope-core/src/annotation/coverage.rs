//! Coverage masks and the blending that puts them on pixels.
//!
//! A rasterizer (OpenCV, or any other) draws a shape once as an 8-bit coverage mask; a
//! [`Coverage`] keeps the mask with the runs of covered pixels on each row found in advance, so
//! that drawing it on a frame touches only covered pixels, and runs of full coverage blend a
//! constant color with a constant weight in a loop the compiler vectorizes. Masks of shapes
//! that do not change between frames (a zone's filled polygon, a letter of a caption) are kept
//! in a bounded [`Lru`] by the driver, so a scene redrawn on every frame rasterizes each once.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::rc::Rc;

/// One run of covered pixels on a mask row: `start..end`, fully covered or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    row: u32,
    start: u32,
    end: u32,
    full: bool,
}

/// An 8-bit coverage mask placed on an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    x: i32,
    y: i32,
    width: usize,
    height: usize,
    mask: Vec<u8>,
    runs: Vec<Run>,
}

impl Coverage {
    /// A mask of `width` x `height` bytes (row after row), its top-left at `(x, y)` on the image.
    /// A mask shorter than `width * height` is padded with zeros.
    pub fn from_mask(x: i32, y: i32, width: usize, height: usize, mut mask: Vec<u8>) -> Self {
        mask.resize(width * height, 0);
        let mut runs = Vec::new();
        for (row, line) in mask.chunks_exact(width.max(1)).enumerate().take(height) {
            let mut i = 0;
            while i < line.len() {
                if line[i] == 0 {
                    i += 1;
                    continue;
                }
                let full = line[i] == 255;
                let start = i;
                while i < line.len() && line[i] != 0 && (line[i] == 255) == full {
                    i += 1;
                }
                runs.push(Run {
                    row: row as u32,
                    start: start as u32,
                    end: i as u32,
                    full,
                });
            }
        }
        Coverage {
            x,
            y,
            width,
            height,
            mask,
            runs,
        }
    }

    /// The coverage at `(x, y)` of the mask (0 outside it).
    pub fn at(&self, x: usize, y: usize) -> u8 {
        if x < self.width && y < self.height {
            self.mask[y * self.width + x]
        } else {
            0
        }
    }

    /// Memory held, for cache budgets.
    pub fn bytes(&self) -> usize {
        self.mask.len() + self.runs.len() * std::mem::size_of::<Run>()
    }

    /// Whether nothing is covered.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }
}

/// Pixels being drawn on: `height` rows of `width` pixels of `channels` bytes (1 or 3),
/// `stride` bytes apart.
#[derive(Debug)]
pub struct Canvas<'a> {
    data: &'a mut [u8],
    width: usize,
    height: usize,
    stride: usize,
    channels: usize,
}

/// Why pixels cannot be a [`Canvas`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{len} bytes cannot hold {height} rows of {width} pixels x {channels} bytes, {stride} apart"
)]
pub struct CanvasError {
    len: usize,
    width: usize,
    height: usize,
    stride: usize,
    channels: usize,
}

impl<'a> Canvas<'a> {
    /// A canvas over `data`; the last row needs only its pixels.
    pub fn new(
        data: &'a mut [u8],
        width: usize,
        height: usize,
        stride: usize,
        channels: usize,
    ) -> Result<Self, CanvasError> {
        let row = width.checked_mul(channels);
        let needed = row.and_then(|r| {
            stride
                .checked_mul(height.saturating_sub(1))
                .and_then(|s| s.checked_add(r))
        });
        match (row, needed) {
            (Some(row), Some(needed))
                if (channels == 1 || channels == 3) && stride >= row && data.len() >= needed =>
            {
                Ok(Canvas {
                    data,
                    width,
                    height,
                    stride,
                    channels,
                })
            }
            _ => Err(CanvasError {
                len: data.len(),
                width,
                height,
                stride,
                channels,
            }),
        }
    }

    /// One row of pixels.
    fn row(&mut self, y: usize) -> &mut [u8] {
        let start = y * self.stride;
        &mut self.data[start..start + self.width * self.channels]
    }

    /// Blends `color` (channel bytes in the canvas's order) at opacity `alpha` over the
    /// rectangle `x0..x1` x `y0..y1`, clipped to the canvas.
    pub fn blend_rect(&mut self, x0: i32, y0: i32, x1: i32, y1: i32, color: [u8; 3], alpha: u8) {
        let clamp_x = |v: i32| v.clamp(0, self.width as i32) as usize;
        let clamp_y = |v: i32| v.clamp(0, self.height as i32) as usize;
        let (x0, x1, y0, y1) = (clamp_x(x0), clamp_x(x1), clamp_y(y0), clamp_y(y1));
        if x0 >= x1 || y0 >= y1 || alpha == 0 {
            return;
        }
        let paint = self.paint(color, alpha, x1 - x0);
        let n = self.channels;
        for y in y0..y1 {
            paint.fill(&mut self.row(y)[x0 * n..x1 * n]);
        }
    }

    /// Blends `color` at opacity `alpha` through `coverage` (each pixel at `alpha` times its
    /// coverage), clipped to the canvas.
    pub fn blend_coverage(&mut self, coverage: &Coverage, color: [u8; 3], alpha: u8) {
        let paint = self.paint(color, alpha, coverage.width);
        self.blend_coverage_at(coverage, (0, 0), &paint);
    }

    /// `color` at opacity `alpha` prepared for this canvas, for runs up to `pixels` long.
    pub fn paint(&self, color: [u8; 3], alpha: u8, pixels: usize) -> Paint {
        Paint::new(color, alpha, self.channels, pixels)
    }

    /// Blends `paint` through `coverage` moved by `shift` (one letter's mask drawn wherever
    /// the letter occurs), clipped to the canvas.
    pub fn blend_coverage_at(&mut self, coverage: &Coverage, shift: (i32, i32), paint: &Paint) {
        if paint.alpha == 0 || coverage.is_empty() {
            return;
        }
        if self.channels == 1 {
            self.blend_runs::<1>(coverage, shift, paint);
        } else {
            self.blend_runs::<3>(coverage, shift, paint);
        }
    }

    fn blend_runs<const N: usize>(
        &mut self,
        coverage: &Coverage,
        shift: (i32, i32),
        paint: &Paint,
    ) {
        let mut color = [0u8; N];
        for (c, p) in color.iter_mut().zip(paint.color) {
            *c = p;
        }
        let (w, h) = (self.width as i64, self.height as i64);
        let left = i64::from(coverage.x) + i64::from(shift.0);
        let top = i64::from(coverage.y) + i64::from(shift.1);
        for run in &coverage.runs {
            let y = top + i64::from(run.row);
            if y < 0 || y >= h {
                continue;
            }
            // The run on the image, clipped; `skip` pixels of it fell off the left edge.
            let x_start = left + i64::from(run.start);
            let x_end = (left + i64::from(run.end)).min(w);
            let x0 = x_start.max(0);
            if x0 >= x_end {
                continue;
            }
            let skip = (x0 - x_start) as usize;
            let (x0, x1) = (x0 as usize, x_end as usize);
            let row = self.row(y as usize);
            let px = &mut row[x0 * N..x1 * N];
            if run.full {
                paint.fill(px);
            } else {
                let from = run.row as usize * coverage.width + run.start as usize + skip;
                let cover = &coverage.mask[from..from + (x1 - x0)];
                for (p, &c) in px.chunks_exact_mut(N).zip(cover) {
                    blend_span(p, &color, paint.partial[usize::from(c)]);
                }
            }
        }
    }
}

/// A color at an opacity, prepared for blending many masks: a row of it to blend runs with and
/// the weight of every coverage level.
#[derive(Debug, Clone)]
pub struct Paint {
    color: [u8; 3],
    alpha: u8,
    full: u16,
    partial: [u16; 256],
    row: Vec<u8>,
}

impl Paint {
    /// `color` (its first `channels` bytes, in the canvas's order) at opacity `alpha` on a
    /// canvas of `channels` bytes per pixel, for runs up to `pixels` long (longer runs are
    /// blended in pieces).
    pub fn new(color: [u8; 3], alpha: u8, channels: usize, pixels: usize) -> Self {
        let n = channels.clamp(1, 3);
        let mut partial = [0u16; 256];
        for (c, w) in partial.iter_mut().enumerate() {
            // alpha * cover / 255² in 256ths, rounded once.
            *w = ((u32::from(alpha) * c as u32 * 256 + 32512) / 65025) as u16;
        }
        let mut row = vec![0u8; pixels.clamp(1, 4096) * n];
        for px in row.chunks_exact_mut(n) {
            px.copy_from_slice(&color[..n]);
        }
        Paint {
            color,
            alpha,
            full: weight(alpha),
            partial,
            row,
        }
    }

    /// Blends a run of fully covered pixels, in pieces as long as the prepared row (a whole
    /// number of pixels, so each piece starts on a pixel).
    fn fill(&self, px: &mut [u8]) {
        for chunk in px.chunks_mut(self.row.len()) {
            blend_run(chunk, &self.row[..chunk.len()], self.full);
        }
    }
}

/// An opacity 0..=255 as a weight 0..=256 (so that 255 replaces exactly).
fn weight(alpha: u8) -> u16 {
    ((u32::from(alpha) * 256 + 127) / 255) as u16
}

/// `dst = dst * (1 - w) + src * w` over a run of pixels, `w` in 256ths: a copy when opaque,
/// with 256-bit vectors where the CPU has them.
fn blend_run(dst: &mut [u8], src: &[u8], w: u16) {
    if w >= 256 {
        dst.copy_from_slice(&src[..dst.len()]);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        unsafe { blend_span_avx2(dst, src, w) };
        return;
    }
    blend_span(dst, src, w);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn blend_span_avx2(dst: &mut [u8], src: &[u8], w: u16) {
    blend_span(dst, src, w);
}

/// `dst = dst * (1 - w) + src * w`, `w` in 256ths. Written so that it vectorizes.
#[inline(always)]
fn blend_span(dst: &mut [u8], src: &[u8], w: u16) {
    let keep = 256 - w;
    for (d, &s) in dst.iter_mut().zip(src) {
        // At most 255 * 256 + 128: fits.
        *d = ((u16::from(*d) * keep + u16::from(s) * w + 128) >> 8) as u8;
    }
}

/// A small least-recently-used cache bounded by the bytes its values hold.
#[derive(Debug)]
pub struct Lru<K, V> {
    map: HashMap<K, (Rc<V>, u64, usize)>,
    clock: u64,
    bytes: usize,
    budget: usize,
    /// With second-sighting admission: hashes of keys made once and not kept yet.
    seen: Option<HashSet<u64>>,
}

/// Keys remembered for second-sighting admission before the memory of them starts over.
const SEEN_KEYS: usize = 4096;

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// A cache holding at most `budget` bytes (as its callers count them).
    pub fn new(budget: usize) -> Self {
        Lru {
            map: HashMap::new(),
            clock: 0,
            bytes: 0,
            budget,
            seen: None,
        }
    }

    /// A cache that keeps a value only when its key comes a second time: what is drawn once
    /// (a translucent box that changes size on every frame) costs no memory, what repeats (a
    /// zone, a marker) is kept from its second drawing on.
    pub fn second_sighting(budget: usize) -> Self {
        Lru {
            seen: Some(HashSet::new()),
            ..Lru::new(budget)
        }
    }

    /// The value for `key`, made by `make` (which also says its size) when absent.
    pub fn get_or_try_insert<E>(
        &mut self,
        key: &K,
        make: impl FnOnce() -> Result<(V, usize), E>,
    ) -> Result<Rc<V>, E> {
        self.clock += 1;
        if let Some(entry) = self.map.get_mut(key) {
            entry.1 = self.clock;
            return Ok(entry.0.clone());
        }
        let (value, size) = make()?;
        let value = Rc::new(value);
        if let Some(seen) = &mut self.seen {
            let mut h = DefaultHasher::new();
            key.hash(&mut h);
            if seen.len() >= SEEN_KEYS {
                seen.clear();
            }
            if seen.insert(h.finish()) {
                return Ok(value);
            }
        }
        // A value larger than the whole budget is returned but not kept.
        if size <= self.budget {
            while self.bytes + size > self.budget && !self.map.is_empty() {
                self.evict_oldest();
            }
            self.bytes += size;
            self.map
                .insert(key.clone(), (value.clone(), self.clock, size));
        }
        Ok(value)
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .map
            .iter()
            .min_by_key(|(_, (_, used, _))| *used)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            if let Some((_, _, size)) = self.map.remove(&k) {
                self.bytes -= size;
            }
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
        if let Some(seen) = &mut self.seen {
            seen.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The blend of one channel, written the obvious way in floating point.
    fn reference(old: u8, new: u8, alpha: u8, cover: u8) -> f64 {
        let k = f64::from(alpha) / 255.0 * f64::from(cover) / 255.0;
        f64::from(old) * (1.0 - k) + f64::from(new) * k
    }

    #[test]
    fn runs_split_full_and_partial_coverage_and_skip_holes() {
        let mask = vec![
            0, 255, 255, 128, 0, 255, //
            0, 0, 0, 0, 0, 0, //
            64, 64, 255, 0, 0, 255,
        ];
        let c = Coverage::from_mask(0, 0, 6, 3, mask);
        let runs: Vec<_> = c
            .runs
            .iter()
            .map(|r| (r.row, r.start, r.end, r.full))
            .collect();
        assert_eq!(
            runs,
            vec![
                (0, 1, 3, true),
                (0, 3, 4, false),
                (0, 5, 6, true),
                (2, 0, 2, false),
                (2, 2, 3, true),
                (2, 5, 6, true),
            ]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Every pixel ends within one level of the floating-point blend, pixels outside the
        /// mask or off the canvas stay as they were, whatever the placement (partly off any
        /// edge) and the stride padding.
        #[test]
        fn blending_matches_the_reference_and_clips(
            mask in proptest::collection::vec(prop_oneof![Just(0u8), Just(255u8), any::<u8>()], 1..200),
            mw in 1usize..20,
            x in -25i32..25,
            y in -15i32..15,
            alpha in any::<u8>(),
            color in any::<[u8; 3]>(),
            base in any::<u8>(),
            channels in prop_oneof![Just(1usize), Just(3usize)],
        ) {
            let mh = mask.len().div_ceil(mw);
            let cov = Coverage::from_mask(x, y, mw, mh, mask);
            let (w, h) = (17usize, 11usize);
            let stride = w * channels + 5;
            let mut data = vec![base; stride * h];
            Canvas::new(&mut data, w, h, stride, channels)
                .unwrap()
                .blend_coverage(&cov, color, alpha);
            for py in 0..h {
                for (i, &v) in data[py * stride..(py + 1) * stride].iter().enumerate() {
                    let (px, ch) = (i / channels, i % channels);
                    if px >= w {
                        prop_assert_eq!(v, base, "stride padding changed");
                        continue;
                    }
                    let (mx, my) = (px as i64 - i64::from(x), py as i64 - i64::from(y));
                    let cover = if mx >= 0 && my >= 0 { cov.at(mx as usize, my as usize) } else { 0 };
                    let want = reference(base, color[ch], alpha, cover);
                    prop_assert!((f64::from(v) - want).abs() <= 1.0,
                        "pixel ({px},{py}) channel {ch}: {v}, expected {want:.2}");
                }
            }
        }
    }

    #[test]
    fn rectangles_blend_inside_their_clipped_bounds_only() {
        let (w, h) = (8usize, 4usize);
        let mut data = vec![100u8; w * 3 * h];
        let mut canvas = Canvas::new(&mut data, w, h, w * 3, 3).unwrap();
        canvas.blend_rect(-3, 1, 2, 9, [0, 200, 255], 255);
        canvas.blend_rect(6, 0, 20, 1, [0, 0, 0], 128);
        assert_eq!(&data[3 * w..3 * w + 6], &[0, 200, 255, 0, 200, 255]);
        assert_eq!(&data[3 * w + 6..3 * w + 9], &[100, 100, 100]);
        assert_eq!(&data[..3], &[100, 100, 100]);
        assert_eq!(&data[18..24], &[50, 50, 50, 50, 50, 50]);
    }

    #[test]
    fn canvases_refuse_pixels_too_short_for_their_layout() {
        let mut data = vec![0u8; 10];
        assert!(Canvas::new(&mut data, 2, 2, 6, 3).is_err());
        assert!(
            Canvas::new(&mut data, 2, 2, 4, 3).is_err(),
            "stride below a row"
        );
        assert!(Canvas::new(&mut data, 2, 2, 4, 1).is_ok());
        assert!(
            Canvas::new(&mut data, 1, 2, 4, 2).is_err(),
            "1 or 3 channels"
        );
        assert!(Canvas::new(&mut data, usize::MAX, 2, 4, 3).is_err());
    }

    #[test]
    fn the_cache_evicts_the_least_recently_used_within_its_budget() {
        let mut lru: Lru<u32, Vec<u8>> = Lru::new(100);
        let mut made = 0;
        let mut get = |lru: &mut Lru<u32, Vec<u8>>, k: u32, size: usize| {
            lru.get_or_try_insert(&k, || {
                made += 1;
                Ok::<_, ()>((vec![0; size], size))
            })
            .unwrap()
            .len()
        };
        assert_eq!(get(&mut lru, 1, 40), 40);
        get(&mut lru, 2, 40);
        get(&mut lru, 1, 40); // 1 is now the most recent
        get(&mut lru, 3, 40); // evicts 2
        assert_eq!((lru.len(), lru.bytes()), (2, 80));
        get(&mut lru, 1, 40);
        get(&mut lru, 2, 40); // made again, evicts 3
        get(&mut lru, 4, 500); // too large to keep: returned, nothing evicted for it
        assert_eq!(made, 5);
        assert_eq!((lru.len(), lru.bytes()), (2, 80));
    }

    #[test]
    fn second_sighting_keeps_only_what_comes_again() {
        let mut lru: Lru<u32, u32> = Lru::second_sighting(1000);
        let mut made = 0;
        for k in [1, 2, 3, 1, 1, 1, 4] {
            lru.get_or_try_insert(&k, || {
                made += 1;
                Ok::<_, ()>((k, 10))
            })
            .unwrap();
        }
        // 1 made on its first two sightings and kept from the second; 2, 3 and 4 never kept.
        assert_eq!((made, lru.len(), lru.bytes()), (5, 1, 10));
    }
}
