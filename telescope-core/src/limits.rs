//! What an H.264 stream can be, checked before anything starts: a size, rate or bitrate no
//! encoder can take fails at once with the limit named, instead of in a pipeline that restarts
//! for a minute or a rate stage that never catches up.
//!
//! The bounds are H.264's largest level (6.2: at most 139264 macroblocks of 16x16 pixels per
//! frame and 16711680 per second, ITU-T H.264 table A-1) and x264enc's ranges (width and
//! height 2-16384, bitrate 1-2048000 kbit/s, as `gst-inspect-1.0 x264enc` shows); other
//! encoders add their own minimum size ([`min_side`]).

use crate::encoder::EncoderKind;
use crate::rate::Rate;

/// The largest width or height (x264enc's limit).
pub const MAX_SIDE: u32 = 16384;
/// Macroblocks in one frame, at most (H.264 level 6.2; 8192x4320 is 138240).
pub const MAX_FRAME_MACROBLOCKS: u64 = 139_264;
/// Macroblocks per second, at most (H.264 level 6.2).
pub const MAX_MACROBLOCK_RATE: u64 = 16_711_680;
/// The highest frame rate: beyond any camera, and what a constant-rate stage can fill.
pub const MAX_FPS: f64 = 1000.0;
/// The lowest frame rate: one frame an hour.
pub const MIN_FPS: f64 = 1.0 / 3600.0;
/// Bitrates in kbit/s (x264enc's range).
pub const BITRATE_KBPS: std::ops::RangeInclusive<u32> = 1..=2_048_000;

/// The smallest width or height `kind` encodes (x264 encodes 2x2; openh264 and the hardware
/// encoders refuse frames under 16x16).
pub fn min_side(kind: &EncoderKind) -> u32 {
    match kind {
        EncoderKind::Auto | EncoderKind::X264 => 2,
        _ => 16,
    }
}

fn macroblocks(width: u32, height: u32) -> u64 {
    u64::from(width.div_ceil(16)) * u64::from(height.div_ceil(16))
}

/// Whether a `width`x`height` stream fits H.264 and the encoder `kind`; the reason when not.
/// Sizes are rounded down to even before encoding, so that is what is checked.
pub fn check_size(width: u32, height: u32, kind: &EncoderKind) -> Result<(), String> {
    let (w, h) = (width - width % 2, height - height % 2);
    let min = min_side(kind);
    if w < min || h < min {
        return Err(format!(
            "frames of {width}x{height} are smaller than the {min}x{min} the {} encoder needs",
            kind.factory()
        ));
    }
    if w > MAX_SIDE || h > MAX_SIDE || macroblocks(w, h) > MAX_FRAME_MACROBLOCKS {
        return Err(format!(
            "frames of {width}x{height} are larger than H.264 allows: at most {MAX_SIDE} pixels \
             a side and {MAX_FRAME_MACROBLOCKS} macroblocks (for example 8192x4320)"
        ));
    }
    Ok(())
}

/// Whether `rate` is a rate a stream can have, and, with a size, whether H.264 can carry that
/// many macroblocks per second.
pub fn check_rate(rate: Rate, size: Option<(u32, u32)>) -> Result<(), String> {
    let fps = rate.fps();
    if !(MIN_FPS..=MAX_FPS).contains(&fps) {
        return Err(format!(
            "a frame rate of {rate} fps is outside 1/3600 to {MAX_FPS} fps"
        ));
    }
    if let Some((w, h)) = size {
        let per_second = macroblocks(w, h) as f64 * fps;
        if per_second > MAX_MACROBLOCK_RATE as f64 {
            return Err(format!(
                "{w}x{h} at {rate} fps is more than H.264 can carry \
                 ({MAX_MACROBLOCK_RATE} macroblocks a second)"
            ));
        }
    }
    Ok(())
}

/// Whether the encoder can be asked for this bitrate.
pub fn check_bitrate(kbps: u32) -> Result<(), String> {
    if BITRATE_KBPS.contains(&kbps) {
        Ok(())
    } else {
        Err(format!(
            "a bitrate of {kbps} kbit/s is outside the encoder's {}-{} kbit/s",
            BITRATE_KBPS.start(),
            BITRATE_KBPS.end()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_rates_and_bitrates_outside_what_h264_takes_are_refused_with_the_limit() {
        let x264 = EncoderKind::X264;
        assert!(check_size(2, 2, &x264).is_ok());
        assert!(check_size(8192, 4320, &x264).is_ok());
        assert!(check_size(4000, 3000, &x264).is_ok());
        let tiny = check_size(1, 1, &x264).unwrap_err();
        assert!(tiny.contains("2x2"), "{tiny}");
        assert!(check_size(8, 8, &EncoderKind::OpenH264).is_err());
        let huge = check_size(100_000, 100_000, &x264).unwrap_err();
        assert!(huge.contains("16384"), "{huge}");
        assert!(
            check_size(16384, 16384, &x264).is_err(),
            "too many macroblocks"
        );
        assert!(check_rate(Rate::new(24000, 1001).unwrap(), Some((1920, 1080))).is_ok());
        assert!(check_rate(Rate::new(1, 3600).unwrap(), None).is_ok());
        let fast = check_rate(Rate::whole(1_000_000_000).unwrap(), None).unwrap_err();
        assert!(fast.contains("1000"), "{fast}");
        assert!(check_rate(Rate::new(1, 7200).unwrap(), None).is_err());
        assert!(check_rate(Rate::whole(600).unwrap(), Some((7680, 4320))).is_err());
        assert!(check_bitrate(500).is_ok());
        assert!(check_bitrate(0).unwrap_err().contains("1-2048000"));
        assert!(check_bitrate(3_000_000).is_err());
    }
}
