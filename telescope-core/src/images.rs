//! Still images as frames: PNG in and out (any PNG color type and bit depth in, BGR or gray
//! out), for snapshots, `telescope annotate` and image-directory cameras.

use std::fs;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::{Frame, PixelFormat};

/// Why an image cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The file could not be opened, read or written.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        // Said in the message, so not also a `source`: one-line error chains name it once.
        error: std::io::Error,
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
    /// The image declares more pixels than [`MAX_IMAGE_SIDE`] / [`MAX_IMAGE_PIXELS`] allow;
    /// refused before anything is decoded or allocated.
    #[error(
        "{}: the image declares {width}x{height} pixels, more than the {MAX_IMAGE_SIDE} a side and {MAX_IMAGE_PIXELS} in all that are read",
        path.display()
    )]
    TooLarge {
        path: PathBuf,
        width: u64,
        height: u64,
    },
}

/// The widest or tallest image read (PNG for `telescope annotate` and `images:` cameras, JPEG
/// headers checked before `annotate` hands a file to the decoder): 16384 pixels.
pub const MAX_IMAGE_SIDE: u64 = 16_384;
/// The most pixels an image read may have: 40 million (an 8K UHD frame has 33 million). A
/// decoded image then takes at most 160 MB (4 bytes a pixel before conversion to BGR).
pub const MAX_IMAGE_PIXELS: u64 = 40_000_000;
/// What the PNG decoder may allocate besides the output image (metadata chunks, ICC profiles,
/// its row buffers): 64 MiB.
const PNG_DECODER_BYTES: usize = 64 << 20;

/// Refuses dimensions beyond the limits, before any pixel is decoded.
pub fn check_dimensions(path: &Path, width: u64, height: u64) -> Result<(), ImageError> {
    if width > MAX_IMAGE_SIDE
        || height > MAX_IMAGE_SIDE
        || width.saturating_mul(height) > MAX_IMAGE_PIXELS
    {
        return Err(ImageError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
        });
    }
    Ok(())
}

/// The dimensions a JPEG file declares in its frame header (SOFn), read without decoding;
/// `Ok(None)` when the file is not a JPEG or has no frame header in its first segments.
pub fn jpeg_dimensions(path: &Path) -> Result<Option<(u64, u64)>, ImageError> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |error| ImageError::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut file = BufReader::new(fs::File::open(path).map_err(io)?);
    let mut two = [0u8; 2];
    if file.read_exact(&mut two).is_err() || two != [0xFF, 0xD8] {
        return Ok(None);
    }
    // Segments until the first frame header; a bounded number, so a file of empty segments
    // cannot keep this busy.
    for _ in 0..1024 {
        let mut marker = [0u8; 2];
        if file.read_exact(&mut marker).is_err() || marker[0] != 0xFF {
            return Ok(None);
        }
        let kind = marker[1];
        if kind == 0xFF || (0xD0..=0xD7).contains(&kind) || kind == 0x01 {
            // Fill bytes and markers without a length.
            file.seek(SeekFrom::Current(if kind == 0xFF { -1 } else { 0 }))
                .map_err(io)?;
            continue;
        }
        if kind == 0xD9 || kind == 0xDA {
            return Ok(None);
        }
        let mut len = [0u8; 2];
        if file.read_exact(&mut len).is_err() {
            return Ok(None);
        }
        let len = u16::from_be_bytes(len);
        // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
        if (0xC0..=0xCF).contains(&kind) && ![0xC4, 0xC8, 0xCC].contains(&kind) {
            let mut sof = [0u8; 5];
            if file.read_exact(&mut sof).is_err() {
                return Ok(None);
            }
            let height = u64::from(u16::from_be_bytes([sof[1], sof[2]]));
            let width = u64::from(u16::from_be_bytes([sof[3], sof[4]]));
            return Ok(Some((width, height)));
        }
        if len < 2 {
            return Ok(None);
        }
        file.seek(SeekFrom::Current(i64::from(len) - 2))
            .map_err(io)?;
    }
    Ok(None)
}

/// Reads a PNG into a tightly packed BGR frame (gray PNGs into GRAY8).
pub fn read_png(path: &Path) -> Result<Frame, ImageError> {
    let io = |error| ImageError::Io {
        path: path.to_path_buf(),
        error,
    };
    let decode = |reason: String| ImageError::Decode {
        path: path.to_path_buf(),
        reason,
    };
    let file = fs::File::open(path).map_err(io)?;
    let mut decoder = png::Decoder::new_with_limits(
        BufReader::new(file),
        png::Limits {
            bytes: PNG_DECODER_BYTES,
        },
    );
    // 16-bit to 8, palettes and low bit depths expanded.
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| decode(e.to_string()))?;
    // The header's dimensions are checked before the output buffer exists: a few hundred
    // bytes can declare 100000x100000 pixels (40 GB).
    let (width, height) = (reader.info().width, reader.info().height);
    check_dimensions(path, u64::from(width), u64::from(height))?;
    let size = reader.output_buffer_size();
    if size as u64 > MAX_IMAGE_PIXELS * 4 {
        return Err(ImageError::TooLarge {
            path: path.to_path_buf(),
            width: u64::from(width),
            height: u64::from(height),
        });
    }
    let mut buf = Vec::new();
    buf.try_reserve_exact(size)
        .map_err(|e| decode(format!("cannot allocate {size} bytes: {e}")))?;
    buf.resize(size, 0);
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
    let io = |error| ImageError::Io {
        path: path.to_path_buf(),
        error,
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

    #[test]
    fn image_bombs_are_refused_from_their_header_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bomb.png");
        // 40 GB declared (aborted the process before), then 0.9 Gpx within the u32 range, then
        // one side too long with few pixels.
        for (w, h) in [(100_000, 100_000), (30_000, 30_000), (20_000, 10)] {
            std::fs::write(&p, testkit::png_declaring(w, h)).unwrap();
            match read_png(&p) {
                Err(ImageError::TooLarge { width, height, .. }) => {
                    assert_eq!((width, height), (u64::from(w), u64::from(h)))
                }
                other => panic!("{w}x{h}: {other:?}"),
            }
        }
        let message = read_png(&p).unwrap_err().to_string();
        assert!(
            message.contains("20000x10") && message.contains("16384"),
            "{message}"
        );
        // Within the limits, the same header is an ordinary (truncated) PNG: a decode error.
        std::fs::write(&p, testkit::png_declaring(64, 48)).unwrap();
        assert!(matches!(read_png(&p), Err(ImageError::Decode { .. })));
    }

    #[test]
    fn jpeg_headers_give_their_dimensions_without_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jpg");
        // SOI, an APP0 segment, SOF0 declaring 65535x60000.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00];
        jpeg.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, 0xEA, 0x60, 0xFF, 0xFF, 3]);
        std::fs::write(&p, &jpeg).unwrap();
        assert_eq!(jpeg_dimensions(&p).unwrap(), Some((65535, 60000)));
        assert!(matches!(
            check_dimensions(&p, 65535, 60000),
            Err(ImageError::TooLarge { .. })
        ));
        std::fs::write(&p, b"not a jpeg").unwrap();
        assert_eq!(jpeg_dimensions(&p).unwrap(), None);
        assert!(check_dimensions(&p, 7680, 4320).is_ok());
    }
}
