//! Still images as frames: PNG in and out (any PNG color type and bit depth in, BGR or gray
//! out), for snapshots, `telescope annotate` and image-directory cameras.

use std::fs;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use telescope::{Frame, PixelFormat};

/// Why an image cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not a PNG, or a damaged one.
    #[error("{}: not a readable PNG: {reason}", path.display())]
    Decode { path: PathBuf, reason: String },
    /// The frame's format has no PNG equivalent here (only BGR, RGB and gray are written).
    #[error("cannot write {format:?} frames as PNG (convert to BGR first)")]
    Format { format: PixelFormat },
    /// Encoding failed.
    #[error("{}: PNG encoding failed: {reason}", path.display())]
    Encode { path: PathBuf, reason: String },
}

/// Reads a PNG into a tightly packed BGR frame (gray PNGs into GRAY8).
pub fn read_png(path: &Path) -> Result<Frame, ImageError> {
    let io = |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let decode = |reason: String| ImageError::Decode {
        path: path.to_path_buf(),
        reason,
    };
    let file = fs::File::open(path).map_err(io)?;
    let mut decoder = png::Decoder::new(BufReader::new(file));
    // 16-bit to 8, palettes and low bit depths expanded.
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| decode(e.to_string()))?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| decode(e.to_string()))?;
    let (w, h) = (info.width, info.height);
    let pixels = w as usize * h as usize;
    let src = &buf[..info.buffer_size()];
    let (data, format) = match info.color_type {
        png::ColorType::Grayscale => (src.to_vec(), PixelFormat::Gray8),
        png::ColorType::GrayscaleAlpha => (
            src.chunks_exact(2).map(|p| p[0]).collect(),
            PixelFormat::Gray8,
        ),
        png::ColorType::Rgb => {
            let mut out = Vec::with_capacity(pixels * 3);
            for p in src.chunks_exact(3) {
                out.extend_from_slice(&[p[2], p[1], p[0]]);
            }
            (out, PixelFormat::Bgr8)
        }
        png::ColorType::Rgba => {
            let mut out = Vec::with_capacity(pixels * 3);
            for p in src.chunks_exact(4) {
                out.extend_from_slice(&[p[2], p[1], p[0]]);
            }
            (out, PixelFormat::Bgr8)
        }
        png::ColorType::Indexed => return Err(decode("palette was not expanded".into())),
    };
    Frame::from_vec(data, format, w, h).map_err(|e| decode(e.to_string()))
}

/// Writes a BGR, RGB or gray frame as PNG, atomically (a temporary file renamed into place).
pub fn write_png(path: &Path, frame: &Frame) -> Result<(), ImageError> {
    let (color, channels) = match frame.format() {
        PixelFormat::Bgr8 | PixelFormat::Rgb8 => (png::ColorType::Rgb, 3),
        PixelFormat::Gray8 => (png::ColorType::Grayscale, 1),
        format => return Err(ImageError::Format { format }),
    };
    let (w, h) = (frame.width(), frame.height());
    let row = w as usize * channels;
    let mut data = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        let line = &frame.data()[y * frame.stride()..y * frame.stride() + row];
        if frame.format() == PixelFormat::Bgr8 {
            for p in line.chunks_exact(3) {
                data.extend_from_slice(&[p[2], p[1], p[0]]);
            }
        } else {
            data.extend_from_slice(line);
        }
    }
    let io = |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let encode = |e: png::EncodingError| ImageError::Encode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let tmp = path.with_extension("png.tmp");
    {
        let file = fs::File::create(&tmp).map_err(io)?;
        let mut out = BufWriter::new(file);
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(color);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(encode)?;
        writer.write_image_data(&data).map_err(encode)?;
        writer.finish().map_err(encode)?;
        out.flush().map_err(io)?;
    }
    fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bgr_and_gray_frames_round_trip_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..5 * 4 * 3).map(|i| (i * 7 % 256) as u8).collect();
        let bgr = Frame::from_vec(data, PixelFormat::Bgr8, 5, 4).unwrap();
        let p = dir.path().join("a.png");
        write_png(&p, &bgr).unwrap();
        assert_eq!(read_png(&p).unwrap().data(), bgr.data());
        let gray = Frame::from_vec((0..12).collect(), PixelFormat::Gray8, 4, 3).unwrap();
        write_png(&p, &gray).unwrap();
        let back = read_png(&p).unwrap();
        assert_eq!(
            (back.format(), back.data()),
            (PixelFormat::Gray8, gray.data())
        );
        std::fs::write(&p, b"not a png").unwrap();
        assert!(matches!(read_png(&p), Err(ImageError::Decode { .. })));
        assert!(matches!(
            read_png(&dir.path().join("missing.png")),
            Err(ImageError::Io { .. })
        ));
    }
}
