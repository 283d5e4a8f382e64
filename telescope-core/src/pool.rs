//! A pool of pixel buffers, so that copying frames in (`put_ref`, the Python binding) does not
//! allocate per frame once the stream runs: a buffer comes back to its pool when the GStreamer
//! buffer wrapping it is freed, after the encoder has converted it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::error::FrameError;
use crate::frame::{tight_stride, Frame, FrameRef, PixelFormat};

#[derive(Debug)]
struct Shared {
    idle: Mutex<Vec<Vec<u8>>>,
    max_idle: usize,
    allocated: AtomicU64,
    reused: AtomicU64,
}

/// Recycled pixel buffers. Cloning gives another handle on the same pool.
#[derive(Debug, Clone)]
pub struct FramePool {
    shared: Arc<Shared>,
}

/// Counters of a [`FramePool`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Buffers allocated because none of the right size was idle.
    pub allocated: u64,
    /// Buffers handed out again after they came back.
    pub reused: u64,
    /// Buffers idle in the pool now.
    pub idle: usize,
}

impl FramePool {
    /// A pool keeping at most `max_idle` buffers that came back (more are freed).
    pub fn new(max_idle: usize) -> Self {
        FramePool {
            shared: Arc::new(Shared {
                idle: Mutex::new(Vec::new()),
                max_idle,
                allocated: AtomicU64::new(0),
                reused: AtomicU64::new(0),
            }),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.shared.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An empty buffer with room for `len` bytes: a recycled one when one is big enough.
    fn take(&self, len: usize) -> Vec<u8> {
        let recycled = {
            let mut idle = self.idle();
            // Buffers of another size (the stream changed size) are freed, not kept.
            idle.retain(|b| b.capacity() >= len && b.capacity() <= len.saturating_mul(2));
            idle.pop()
        };
        match recycled {
            Some(mut b) => {
                self.shared.reused.fetch_add(1, Ordering::Relaxed);
                b.clear();
                b
            }
            None => {
                self.shared.allocated.fetch_add(1, Ordering::Relaxed);
                Vec::with_capacity(len)
            }
        }
    }

    /// A tightly packed frame whose bytes `fill` appends to an empty pooled buffer. `fill` must
    /// append exactly the frame's bytes; anything else is a [`FrameError`].
    pub fn build(
        &self,
        format: PixelFormat,
        width: u32,
        height: u32,
        fill: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Frame, FrameError> {
        let stride = tight_stride(format, width);
        let len = crate::frame::layout(format, width, height, stride)?.size;
        let mut data = self.take(len);
        fill(&mut data);
        let pixels = Pixels {
            data,
            home: Arc::downgrade(&self.shared),
            borrowed: None,
        };
        Frame::from_pixels(pixels, format, width, height, stride)
    }

    /// Copy a borrowed frame (any stride) into a tightly packed pooled frame, keeping its
    /// capture time.
    pub fn copy(&self, frame: FrameRef<'_>) -> Frame {
        let (format, width, height) = (frame.format(), frame.width(), frame.height());
        let tight = tight_stride(format, width);
        let src = frame.data();
        let built = self.build(format, width, height, |out| {
            if frame.stride() == tight {
                let len = out.capacity();
                out.extend_from_slice(&src[..len.min(src.len())]);
            } else {
                copy_rows(src, frame, out);
            }
        });
        match built {
            Ok(f) => match frame.captured_at() {
                Some(t) => f.at(t),
                None => f,
            },
            // A FrameRef is validated at construction, so its copy has the right length; keep
            // the plain copy as the fallback rather than a panic.
            Err(_) => frame.to_owned(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            allocated: self.shared.allocated.load(Ordering::Relaxed),
            reused: self.shared.reused.load(Ordering::Relaxed),
            idle: self.idle().len(),
        }
    }
}

/// Copy each plane row by row, dropping the row padding.
fn copy_rows(src: &[u8], frame: FrameRef<'_>, out: &mut Vec<u8>) {
    let (format, width, height) = (frame.format(), frame.width(), frame.height());
    let (Ok(from), Ok(to)) = (
        crate::frame::layout(format, width, height, frame.stride()),
        crate::frame::layout(format, width, height, tight_stride(format, width)),
    ) else {
        return;
    };
    for p in 0..from.planes {
        let rows = crate::frame::plane_rows(format, height, p);
        let row = to.strides[p];
        for y in 0..rows {
            let start = from.offsets[p] + y * from.strides[p];
            if let Some(r) = src.get(start..start + row) {
                out.extend_from_slice(r);
            }
        }
    }
}

/// Memory owned elsewhere (a numpy array, a camera buffer), borrowed read-only for as long as
/// `_owner` lives.
struct Borrowed {
    ptr: *const u8,
    len: usize,
    _owner: Box<dyn Send>,
}

// SAFETY: the memory is only read, and its owner (which keeps it valid) is itself Send; the
// creator of a borrowed frame promises nobody writes to it while the frame lives
// (`Frame::from_borrowed`).
unsafe impl Send for Borrowed {}
// SAFETY: shared access only reads the memory (see above).
unsafe impl Sync for Borrowed {}

/// Pixel bytes, returned to their pool (if any, and if it still exists) when dropped; or
/// borrowed memory, copied on the first write.
pub(crate) struct Pixels {
    data: Vec<u8>,
    home: Weak<Shared>,
    borrowed: Option<Borrowed>,
}

impl Pixels {
    pub(crate) fn unpooled(data: Vec<u8>) -> Self {
        Pixels {
            data,
            home: Weak::new(),
            borrowed: None,
        }
    }

    /// # Safety
    /// `ptr..ptr+len` must stay valid and unmodified for as long as `owner` lives.
    pub(crate) unsafe fn borrowed(ptr: *const u8, len: usize, owner: Box<dyn Send>) -> Self {
        Pixels {
            data: Vec::new(),
            home: Weak::new(),
            borrowed: Some(Borrowed {
                ptr,
                len,
                _owner: owner,
            }),
        }
    }

    pub(crate) fn is_borrowed(&self) -> bool {
        self.borrowed.is_some()
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match &self.borrowed {
            // SAFETY: valid and unmodified while the owner lives (constructor contract).
            Some(b) => unsafe { std::slice::from_raw_parts(b.ptr, b.len) },
            None => &self.data,
        }
    }

    /// Mutable bytes; borrowed memory is copied first (the owner's memory is never written).
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        if self.borrowed.is_some() {
            self.data = self.as_slice().to_vec();
            self.borrowed = None;
        }
        &mut self.data
    }

    pub(crate) fn capacity(&self) -> usize {
        self.borrowed
            .as_ref()
            .map_or(self.data.capacity(), |b| b.len)
    }

    /// The bytes, taken out of the pool for good.
    pub(crate) fn into_vec(mut self) -> Vec<u8> {
        self.home = Weak::new();
        if self.borrowed.is_some() {
            return self.as_slice().to_vec();
        }
        std::mem::take(&mut self.data)
    }
}

impl Clone for Pixels {
    /// A copy is the caller's own, never the pool's.
    fn clone(&self) -> Self {
        Pixels::unpooled(self.as_slice().to_vec())
    }
}

impl PartialEq for Pixels {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Pixels {}

impl AsRef<[u8]> for Pixels {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsMut<[u8]> for Pixels {
    fn as_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl Drop for Pixels {
    fn drop(&mut self) {
        if self.borrowed.is_some() {
            return;
        }
        let Some(home) = self.home.upgrade() else {
            return;
        };
        let data = std::mem::take(&mut self.data);
        if data.capacity() == 0 {
            return;
        }
        let mut idle = home.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < home.max_idle {
            idle.push(data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_and_are_reused() {
        let pool = FramePool::new(2);
        let pixels = vec![7u8; 4 * 3 * 2];
        let r = FrameRef::new(&pixels, PixelFormat::Bgr8, 4, 2).unwrap();
        let a = pool.copy(r);
        assert_eq!(a.data(), &pixels[..]);
        drop(a);
        assert_eq!(pool.stats().idle, 1);
        for _ in 0..10 {
            let f = pool.copy(r.at(std::time::Duration::from_millis(5)));
            assert_eq!(f.captured_at(), Some(std::time::Duration::from_millis(5)));
        }
        let s = pool.stats();
        assert_eq!((s.allocated, s.reused), (1, 10));
        // More alive at once than the pool keeps: the extra ones are freed when they return.
        let many: Vec<Frame> = (0..4).map(|_| pool.copy(r)).collect();
        drop(many);
        assert_eq!(pool.stats().idle, 2);
    }

    #[test]
    fn a_padded_frame_is_packed_and_a_new_size_allocates() {
        let pool = FramePool::new(4);
        // 2x2 gray with a stride of 4: rows [1,2,pad,pad] [3,4,pad,pad].
        let padded = [1u8, 2, 9, 9, 3, 4, 9, 9];
        let r = FrameRef::with_stride(&padded, PixelFormat::Gray8, 2, 2, 4).unwrap();
        let f = pool.copy(r);
        assert_eq!(f.data(), &[1, 2, 3, 4]);
        assert_eq!(f.stride(), 2);
        drop(f);
        let big = vec![0u8; 64 * 64];
        let g = pool.copy(FrameRef::new(&big, PixelFormat::Gray8, 64, 64).unwrap());
        assert_eq!(g.data().len(), 64 * 64);
        assert_eq!(
            pool.stats().allocated,
            2,
            "the small buffer cannot hold 64x64"
        );
        // A frame taken out for good never returns.
        let v = g.into_data();
        assert_eq!(v.len(), 64 * 64);
        assert_eq!(pool.stats().idle, 0);
    }

    #[test]
    fn padded_planar_frames_are_packed_plane_by_plane() {
        let pool = FramePool::new(1);
        // 4x2 I420 with a luma stride of 8 (chroma stride 4): Y rows, then U, then V.
        #[rustfmt::skip]
        let padded = [
            1, 2, 3, 4, 0, 0, 0, 0,
            5, 6, 7, 8, 0, 0, 0, 0,
            20, 21, 0, 0,
            30, 31, 0, 0,
        ];
        let r = FrameRef::with_stride(&padded, PixelFormat::I420, 4, 2, 8).unwrap();
        let f = pool.copy(r);
        assert_eq!(f.data(), &[1, 2, 3, 4, 5, 6, 7, 8, 20, 21, 30, 31]);
        // NV12: one interleaved chroma plane of width bytes.
        #[rustfmt::skip]
        let nv12 = [
            1, 2, 3, 4, 0, 0,
            5, 6, 7, 8, 0, 0,
            40, 41, 42, 43, 0, 0,
        ];
        let r = FrameRef::with_stride(&nv12, PixelFormat::Nv12, 4, 2, 6).unwrap();
        assert_eq!(
            pool.copy(r).data(),
            &[1, 2, 3, 4, 5, 6, 7, 8, 40, 41, 42, 43]
        );
    }

    #[test]
    fn borrowed_pixels_are_read_in_place_and_copied_before_a_write() {
        struct Owner(std::sync::Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Owner {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let memory: &'static [u8] = &[1, 2, 3, 4];
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // SAFETY: static memory, never written.
        let mut f = unsafe {
            Frame::from_borrowed(
                memory.as_ptr(),
                memory.len(),
                Box::new(Owner(dropped.clone())),
                PixelFormat::Gray8,
                2,
                2,
                2,
            )
        }
        .unwrap();
        assert!(f.is_borrowed());
        assert_eq!(f.data().as_ptr(), memory.as_ptr(), "no copy");
        let copy = f.clone();
        assert!(!copy.is_borrowed());
        f.data_mut()[0] = 9;
        assert!(!f.is_borrowed(), "a write copies first");
        assert_eq!(f.data(), &[9, 2, 3, 4]);
        assert_eq!(memory, &[1, 2, 3, 4], "the owner's memory is untouched");
        assert!(
            dropped.load(std::sync::atomic::Ordering::SeqCst),
            "owner released"
        );
        // SAFETY: as above.
        let short = unsafe {
            Frame::from_borrowed(
                memory.as_ptr(),
                3,
                Box::new(()),
                PixelFormat::Gray8,
                2,
                2,
                2,
            )
        };
        assert!(short.is_err());
    }

    #[test]
    fn a_fill_of_the_wrong_length_is_an_error() {
        let pool = FramePool::new(1);
        let err = pool.build(PixelFormat::Bgr8, 4, 4, |b| b.extend_from_slice(&[0; 5]));
        assert!(err.is_err());
    }
}
