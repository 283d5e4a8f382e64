//! Frames as the application hands them over: pixels plus layout plus capture time.
//!
//! A [`Frame`] owns its pixels (a `Vec<u8>` moved in, never copied); a [`FrameRef`] borrows
//! them. Both are validated on construction, so a frame that exists can be wrapped into a
//! GStreamer buffer without further checks. Colour conversion happens once, inside GStreamer.

use std::time::Duration;

use crate::error::FrameError;
use crate::pool::Pixels;

/// Pixel layouts Telescope accepts from applications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PixelFormat {
    /// 8-bit blue, green, red (OpenCV's default).
    Bgr8,
    /// 8-bit red, green, blue.
    Rgb8,
    /// 8-bit luma only.
    Gray8,
    /// Planar 4:2:0: Y plane, then U and V planes at half resolution.
    I420,
    /// Semi-planar 4:2:0: Y plane, then one interleaved UV plane at half resolution.
    Nv12,
}

impl PixelFormat {
    /// Whether chroma is subsampled by two in both directions (so sizes must be even).
    pub fn is_subsampled(self) -> bool {
        matches!(self, PixelFormat::I420 | PixelFormat::Nv12)
    }

    /// Bytes per pixel in the first (or only) plane.
    pub fn luma_bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Bgr8 | PixelFormat::Rgb8 => 3,
            PixelFormat::Gray8 | PixelFormat::I420 | PixelFormat::Nv12 => 1,
        }
    }

    /// The GStreamer name of this format.
    pub fn video_format(self) -> gst_video::VideoFormat {
        match self {
            PixelFormat::Bgr8 => gst_video::VideoFormat::Bgr,
            PixelFormat::Rgb8 => gst_video::VideoFormat::Rgb,
            PixelFormat::Gray8 => gst_video::VideoFormat::Gray8,
            PixelFormat::I420 => gst_video::VideoFormat::I420,
            PixelFormat::Nv12 => gst_video::VideoFormat::Nv12,
        }
    }

    /// Parse a GStreamer-style name (`BGR`, `RGB`, `GRAY8`, `I420`, `NV12`).
    pub fn from_name(name: &str) -> Result<Self, FrameError> {
        match name.to_ascii_uppercase().as_str() {
            "BGR" | "BGR8" => Ok(PixelFormat::Bgr8),
            "RGB" | "RGB8" => Ok(PixelFormat::Rgb8),
            "GRAY8" | "GRAY" => Ok(PixelFormat::Gray8),
            "I420" => Ok(PixelFormat::I420),
            "NV12" => Ok(PixelFormat::Nv12),
            _ => Err(FrameError::UnsupportedFormat(name.to_owned())),
        }
    }
}

/// Where each plane starts and how long its rows are; derived from a validated frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaneLayout {
    /// Number of planes used (1, 2 or 3).
    pub planes: usize,
    /// Byte offset of each plane in the buffer.
    pub offsets: [usize; 3],
    /// Row stride of each plane in bytes.
    pub strides: [usize; 3],
    /// Total bytes the frame occupies.
    pub size: usize,
}

/// Rows of plane `plane` in a frame of this format and height.
pub(crate) fn plane_rows(format: PixelFormat, height: u32, plane: usize) -> usize {
    if plane > 0 && format.is_subsampled() {
        height as usize / 2
    } else {
        height as usize
    }
}

/// Layout checks shared by [`Frame`] and [`FrameRef`].
pub(crate) fn layout(
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
) -> Result<PlaneLayout, FrameError> {
    if width == 0 || height == 0 {
        return Err(FrameError::EmptySize { width, height });
    }
    if format.is_subsampled() && (!width.is_multiple_of(2) || !height.is_multiple_of(2)) {
        return Err(FrameError::OddSize {
            format,
            width,
            height,
        });
    }
    let too_large = || FrameError::TooLarge { width, height };
    let min = (width as usize)
        .checked_mul(format.luma_bytes_per_pixel())
        .ok_or_else(too_large)?;
    if stride < min {
        return Err(FrameError::StrideTooSmall {
            format,
            width,
            stride,
            min,
        });
    }
    let h = height as usize;
    let luma = stride.checked_mul(h).ok_or_else(too_large)?;
    let layout = match format {
        PixelFormat::Bgr8 | PixelFormat::Rgb8 | PixelFormat::Gray8 => PlaneLayout {
            planes: 1,
            offsets: [0, 0, 0],
            strides: [stride, 0, 0],
            size: luma,
        },
        PixelFormat::I420 => {
            let cs = stride.div_ceil(2);
            let chroma = cs * (h / 2);
            PlaneLayout {
                planes: 3,
                offsets: [0, luma, luma + chroma],
                strides: [stride, cs, cs],
                size: luma.checked_add(2 * chroma).ok_or_else(too_large)?,
            }
        }
        PixelFormat::Nv12 => PlaneLayout {
            planes: 2,
            offsets: [0, luma, 0],
            strides: [stride, stride, 0],
            size: luma.checked_add(stride * (h / 2)).ok_or_else(too_large)?,
        },
    };
    Ok(layout)
}

fn check_len(
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
    len: usize,
) -> Result<PlaneLayout, FrameError> {
    let l = layout(format, width, height, stride)?;
    if len < l.size {
        return Err(FrameError::BufferTooShort {
            format,
            width,
            height,
            expected: l.size,
            actual: len,
        });
    }
    Ok(l)
}

/// The tightest row stride for a format and width.
pub fn tight_stride(format: PixelFormat, width: u32) -> usize {
    width as usize * format.luma_bytes_per_pixel()
}

/// An owned frame: pixels, layout and (optionally) the time it was captured.
///
/// The capture time is measured on the application's clock (any monotonic origin). When it is
/// absent, [`crate::Telescope::put`] stamps the frame with the Telescope's clock.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    data: Pixels,
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
    captured_at: Option<Duration>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("format", &self.format)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("stride", &self.stride)
            .field("bytes", &self.data.as_slice().len())
            .field("captured_at", &self.captured_at)
            .finish()
    }
}

impl Frame {
    /// Take ownership of tightly packed pixels without copying them.
    pub fn from_vec(
        data: Vec<u8>,
        format: PixelFormat,
        width: u32,
        height: u32,
    ) -> Result<Self, FrameError> {
        Self::from_vec_with_stride(data, format, width, height, tight_stride(format, width))
    }

    /// Take ownership of pixels whose rows are `stride` bytes apart, without copying them.
    pub fn from_vec_with_stride(
        data: Vec<u8>,
        format: PixelFormat,
        width: u32,
        height: u32,
        stride: usize,
    ) -> Result<Self, FrameError> {
        Self::from_pixels(Pixels::unpooled(data), format, width, height, stride)
    }

    pub(crate) fn from_pixels(
        data: Pixels,
        format: PixelFormat,
        width: u32,
        height: u32,
        stride: usize,
    ) -> Result<Self, FrameError> {
        check_len(format, width, height, stride, data.as_slice().len())?;
        Ok(Frame {
            data,
            format,
            width,
            height,
            stride,
            captured_at: None,
        })
    }

    /// Copy tightly packed pixels out of a slice.
    pub fn from_slice(
        data: &[u8],
        format: PixelFormat,
        width: u32,
        height: u32,
    ) -> Result<Self, FrameError> {
        FrameRef::new(data, format, width, height).map(|r| r.to_owned())
    }

    /// Set the capture time (builder style).
    #[must_use]
    pub fn at(mut self, captured_at: Duration) -> Self {
        self.captured_at = Some(captured_at);
        self
    }

    /// Set or clear the capture time.
    pub fn set_captured_at(&mut self, captured_at: Option<Duration>) {
        self.captured_at = captured_at;
    }

    /// Borrow this frame.
    pub fn as_frame_ref(&self) -> FrameRef<'_> {
        FrameRef {
            data: self.data.as_slice(),
            format: self.format,
            width: self.width,
            height: self.height,
            stride: self.stride,
            captured_at: self.captured_at,
        }
    }

    /// The pixel bytes (possibly longer than [`PlaneLayout::size`]).
    pub fn data(&self) -> &[u8] {
        self.data.as_slice()
    }
    /// Mutable pixel bytes, for drawing in place.
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.data.as_mut_slice()
    }
    /// Give the pixels back.
    pub fn into_data(self) -> Vec<u8> {
        self.data.into_vec()
    }
    /// Pixel format.
    pub fn format(&self) -> PixelFormat {
        self.format
    }
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }
    /// Row stride of the first plane in bytes.
    pub fn stride(&self) -> usize {
        self.stride
    }
    /// Capture time, if the application gave one.
    pub fn captured_at(&self) -> Option<Duration> {
        self.captured_at
    }
    /// Plane offsets and strides.
    pub fn layout(&self) -> PlaneLayout {
        // Validated at construction; recomputing cannot fail.
        layout(self.format, self.width, self.height, self.stride).unwrap_or(PlaneLayout {
            planes: 1,
            offsets: [0; 3],
            strides: [self.stride, 0, 0],
            size: self.data.as_slice().len(),
        })
    }
    /// Bytes of memory this frame holds.
    pub fn memory_size(&self) -> usize {
        self.data.capacity()
    }

    /// The pixels as a GStreamer buffer's memory, returned to their pool when it is freed.
    pub(crate) fn into_pixels(self) -> Pixels {
        self.data
    }

    /// A frame over memory owned elsewhere, without copying it: for bindings whose frames
    /// live in their own objects (a numpy array). `owner` keeps the memory alive; it is
    /// dropped when the frame and every GStreamer buffer made from it are gone, on whatever
    /// thread that happens. Drawing on the frame (an overlay) copies it first.
    ///
    /// # Safety
    /// `ptr..ptr+len` must be valid for reads, and not written by anyone, for as long as
    /// `owner` lives.
    pub unsafe fn from_borrowed(
        ptr: *const u8,
        len: usize,
        owner: Box<dyn Send>,
        format: PixelFormat,
        width: u32,
        height: u32,
        stride: usize,
    ) -> Result<Self, FrameError> {
        // SAFETY: forwarded from this function's contract.
        let pixels = unsafe { Pixels::borrowed(ptr, len, owner) };
        Self::from_pixels(pixels, format, width, height, stride)
    }

    /// Whether the pixels are borrowed (see [`Frame::from_borrowed`]).
    pub fn is_borrowed(&self) -> bool {
        self.data.is_borrowed()
    }
}

/// A borrowed frame: the application keeps the pixels, Telescope copies them once if it needs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef<'a> {
    data: &'a [u8],
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
    captured_at: Option<Duration>,
}

impl<'a> FrameRef<'a> {
    /// Borrow tightly packed pixels.
    pub fn new(
        data: &'a [u8],
        format: PixelFormat,
        width: u32,
        height: u32,
    ) -> Result<Self, FrameError> {
        Self::with_stride(data, format, width, height, tight_stride(format, width))
    }

    /// Borrow pixels whose rows are `stride` bytes apart.
    pub fn with_stride(
        data: &'a [u8],
        format: PixelFormat,
        width: u32,
        height: u32,
        stride: usize,
    ) -> Result<Self, FrameError> {
        check_len(format, width, height, stride, data.len())?;
        Ok(FrameRef {
            data,
            format,
            width,
            height,
            stride,
            captured_at: None,
        })
    }

    /// Set the capture time (builder style).
    #[must_use]
    pub fn at(mut self, captured_at: Duration) -> Self {
        self.captured_at = Some(captured_at);
        self
    }

    /// Copy the frame's bytes (only the bytes the layout covers) into an owned [`Frame`].
    pub fn to_owned(&self) -> Frame {
        let size = layout(self.format, self.width, self.height, self.stride)
            .map(|l| l.size)
            .unwrap_or(self.data.len());
        Frame {
            data: Pixels::unpooled(self.data[..size.min(self.data.len())].to_vec()),
            format: self.format,
            width: self.width,
            height: self.height,
            stride: self.stride,
            captured_at: self.captured_at,
        }
    }

    /// The borrowed pixel bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
    /// Pixel format.
    pub fn format(&self) -> PixelFormat {
        self.format
    }
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }
    /// Row stride of the first plane in bytes.
    pub fn stride(&self) -> usize {
        self.stride
    }
    /// Capture time, if set.
    pub fn captured_at(&self) -> Option<Duration> {
        self.captured_at
    }
}

#[cfg(feature = "opencv")]
mod mat {
    use opencv::core::MatTraitConst;

    use super::{Frame, FrameRef, PixelFormat};
    use crate::error::FrameError;

    /// Format, size and row step (bytes) of a 2-D 8-bit Mat.
    fn describe(mat: &impl MatTraitConst) -> Result<(PixelFormat, u32, u32, usize), FrameError> {
        if mat.empty() {
            return Err(FrameError::EmptySize {
                width: 0,
                height: 0,
            });
        }
        let format = match mat.typ() {
            t if t == opencv::core::CV_8UC3 => PixelFormat::Bgr8,
            t if t == opencv::core::CV_8UC1 => PixelFormat::Gray8,
            t => {
                return Err(FrameError::UnsupportedFormat(format!(
                    "OpenCV Mat type {t} ({} channels of depth {}); expected CV_8UC3 or CV_8UC1",
                    mat.channels(),
                    mat.depth()
                )))
            }
        };
        if mat.dims() != 2 {
            return Err(FrameError::UnsupportedFormat(format!(
                "{}-dimensional Mat",
                mat.dims()
            )));
        }
        let w = u32::try_from(mat.cols()).unwrap_or(0);
        let h = u32::try_from(mat.rows()).unwrap_or(0);
        if w == 0 || h == 0 || mat.data().is_null() {
            return Err(FrameError::EmptySize {
                width: w,
                height: h,
            });
        }
        let step = mat
            .step1(0)
            .map_err(|e| FrameError::UnsupportedFormat(e.to_string()))?
            * mat.elem_size1();
        Ok((format, w, h, step))
    }

    impl<'a> FrameRef<'a> {
        /// Borrow the pixels of a continuous 8-bit BGR (`CV_8UC3`) or gray (`CV_8UC1`) `Mat`.
        ///
        /// A region of interest of a larger `Mat` is not continuous: use [`Frame::from_mat`].
        pub fn from_mat(mat: &'a impl MatTraitConst) -> Result<Self, FrameError> {
            let (format, w, h, step) = describe(mat)?;
            if !mat.is_continuous() {
                return Err(FrameError::UnsupportedFormat(
                    "a non-continuous Mat (region of interest) cannot be borrowed; use Frame::from_mat".into(),
                ));
            }
            let len = step * h as usize;
            // SAFETY: a continuous 2-D Mat holds `rows * step` bytes starting at `data`, and the
            // returned slice borrows `mat`, so the pixels outlive it.
            let data = unsafe { std::slice::from_raw_parts(mat.data(), len) };
            FrameRef::with_stride(data, format, w, h, step)
        }
    }

    impl Frame {
        /// Copy an 8-bit BGR (`CV_8UC3`) or gray (`CV_8UC1`) `Mat`, continuous or not, into a
        /// tightly packed frame.
        pub fn from_mat(mat: &impl MatTraitConst) -> Result<Self, FrameError> {
            let (format, w, h, _) = describe(mat)?;
            let row = super::tight_stride(format, w);
            let mut data = Vec::with_capacity(row * h as usize);
            for y in 0..mat.rows() {
                let ptr = mat
                    .ptr(y)
                    .map_err(|e| FrameError::UnsupportedFormat(e.to_string()))?;
                // SAFETY: row `y` of a 2-D Mat holds `cols * elem_size` = `row` bytes.
                data.extend_from_slice(unsafe { std::slice::from_raw_parts(ptr, row) });
            }
            Frame::from_vec(data, format, w, h)
        }
    }

    #[cfg(test)]
    mod tests {
        use opencv::core::{Mat, MatTrait, Rect, Scalar, CV_32FC1, CV_8UC1, CV_8UC3};

        use super::*;

        #[test]
        fn a_bgr_mat_is_borrowed_without_copying() {
            let mat =
                Mat::new_rows_cols_with_default(4, 6, CV_8UC3, Scalar::new(1.0, 2.0, 3.0, 0.0))
                    .unwrap();
            let r = FrameRef::from_mat(&mat).unwrap();
            assert_eq!(
                (r.format(), r.width(), r.height(), r.stride()),
                (PixelFormat::Bgr8, 6, 4, 18)
            );
            assert_eq!(r.data().as_ptr(), mat.data());
            assert_eq!(&r.data()[..3], &[1, 2, 3]);
        }

        #[test]
        fn a_region_of_interest_is_copied_row_by_row() {
            let mut mat = Mat::new_rows_cols_with_default(8, 8, CV_8UC1, Scalar::all(0.0)).unwrap();
            for y in 0..8 {
                for x in 0..8 {
                    *mat.at_2d_mut::<u8>(y, x).unwrap() = (y * 8 + x) as u8;
                }
            }
            let roi = Mat::roi(&mat, Rect::new(2, 3, 4, 2))
                .unwrap()
                .try_clone()
                .unwrap();
            let shallow = Mat::roi(&mat, Rect::new(2, 3, 4, 2)).unwrap();
            assert!(matches!(
                FrameRef::from_mat(&shallow),
                Err(FrameError::UnsupportedFormat(_))
            ));
            let f = Frame::from_mat(&shallow).unwrap();
            assert_eq!((f.width(), f.height(), f.stride()), (4, 2, 4));
            assert_eq!(f.data(), &[26, 27, 28, 29, 34, 35, 36, 37]);
            assert_eq!(Frame::from_mat(&roi).unwrap().data(), f.data());
        }

        #[test]
        fn float_and_empty_mats_are_rejected() {
            let float = Mat::new_rows_cols_with_default(2, 2, CV_32FC1, Scalar::all(0.5)).unwrap();
            assert!(matches!(
                Frame::from_mat(&float),
                Err(FrameError::UnsupportedFormat(_))
            ));
            assert!(matches!(
                Frame::from_mat(&Mat::default()),
                Err(FrameError::EmptySize { .. })
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_formats_need_width_times_channels_per_row() {
        let f = Frame::from_vec(vec![0; 4 * 2 * 3], PixelFormat::Bgr8, 4, 2).unwrap();
        assert_eq!(f.stride(), 12);
        assert_eq!(f.layout().size, 24);
        let err = Frame::from_vec(vec![0; 23], PixelFormat::Bgr8, 4, 2).unwrap_err();
        assert_eq!(
            err,
            FrameError::BufferTooShort {
                format: PixelFormat::Bgr8,
                width: 4,
                height: 2,
                expected: 24,
                actual: 23
            }
        );
    }

    #[test]
    fn subsampled_formats_reject_odd_sizes() {
        for format in [PixelFormat::I420, PixelFormat::Nv12] {
            assert!(matches!(
                Frame::from_vec(vec![0; 1000], format, 5, 4),
                Err(FrameError::OddSize { .. })
            ));
            assert!(matches!(
                Frame::from_vec(vec![0; 1000], format, 4, 5),
                Err(FrameError::OddSize { .. })
            ));
        }
        // Odd sizes are fine where chroma is not subsampled.
        assert!(Frame::from_vec(vec![0; 15], PixelFormat::Gray8, 5, 3).is_ok());
    }

    #[test]
    fn planar_layouts_follow_the_luma_stride() {
        let i420 = Frame::from_vec(vec![0; 8 * 4 * 3 / 2], PixelFormat::I420, 8, 4).unwrap();
        assert_eq!(i420.layout().offsets, [0, 32, 40]);
        assert_eq!(i420.layout().strides, [8, 4, 4]);
        let nv12 =
            Frame::from_vec_with_stride(vec![0; 16 * 6], PixelFormat::Nv12, 8, 4, 16).unwrap();
        assert_eq!(nv12.layout().offsets[1], 64);
        assert_eq!(nv12.layout().size, 96);
    }

    #[test]
    fn empty_and_short_stride_are_errors() {
        assert!(matches!(
            Frame::from_vec(vec![], PixelFormat::Gray8, 0, 4),
            Err(FrameError::EmptySize { .. })
        ));
        assert!(matches!(
            FrameRef::with_stride(&[0; 100], PixelFormat::Rgb8, 10, 2, 20),
            Err(FrameError::StrideTooSmall { min: 30, .. })
        ));
        assert!(matches!(
            PixelFormat::from_name("RGBA"),
            Err(FrameError::UnsupportedFormat(_))
        ));
    }

    #[test]
    fn from_vec_keeps_the_allocation() {
        let v = vec![7u8; 6 * 4 * 3];
        let ptr = v.as_ptr();
        let f = Frame::from_vec(v, PixelFormat::Rgb8, 6, 4).unwrap();
        assert_eq!(f.data().as_ptr(), ptr, "from_vec must not copy");
        let copy = f.as_frame_ref().at(Duration::from_secs(1)).to_owned();
        assert_ne!(copy.data().as_ptr(), ptr);
        assert_eq!(copy.captured_at(), Some(Duration::from_secs(1)));
    }
}
