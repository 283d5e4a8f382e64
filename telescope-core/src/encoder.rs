//! H.264 encoder selection: hardware when it is there and works, else x264 tuned for the edge.

use gst::prelude::*;

use crate::error::TelescopeError;
use crate::rate::Rate;

/// Which encoder element to use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EncoderKind {
    /// The first that works of: nvv4l2h264enc, v4l2h264enc, vaapih264enc, x264enc, openh264enc.
    #[default]
    Auto,
    /// NVIDIA Jetson (`nvv4l2h264enc`, fed through `nvvidconv`).
    Nvidia,
    /// V4L2 stateful hardware encoders (`v4l2h264enc`, Raspberry Pi and others).
    V4l2,
    /// VA-API (`vaapih264enc`).
    Vaapi,
    /// `x264enc` (software).
    X264,
    /// `openh264enc` (software).
    OpenH264,
}

impl EncoderKind {
    /// The GStreamer factory name.
    pub fn factory(&self) -> &'static str {
        match self {
            EncoderKind::Auto | EncoderKind::X264 => "x264enc",
            EncoderKind::Nvidia => "nvv4l2h264enc",
            EncoderKind::V4l2 => "v4l2h264enc",
            EncoderKind::Vaapi => "vaapih264enc",
            EncoderKind::OpenH264 => "openh264enc",
        }
    }
}

impl std::str::FromStr for EncoderKind {
    type Err = TelescopeError;

    /// `auto`, `x264`, `openh264`, `nvidia`, `v4l2`, `vaapi` or a factory name.
    fn from_str(s: &str) -> Result<Self, TelescopeError> {
        Ok(match s {
            "auto" => EncoderKind::Auto,
            "x264" | "x264enc" => EncoderKind::X264,
            "openh264" | "openh264enc" => EncoderKind::OpenH264,
            "nvidia" | "nvv4l2h264enc" => EncoderKind::Nvidia,
            "v4l2" | "v4l2h264enc" => EncoderKind::V4l2,
            "vaapi" | "vaapih264enc" => EncoderKind::Vaapi,
            other => return Err(TelescopeError::Config(format!("unknown encoder `{other}`"))),
        })
    }
}

impl EncoderKind {
    const AUTO_ORDER: [EncoderKind; 5] = [
        EncoderKind::Nvidia,
        EncoderKind::V4l2,
        EncoderKind::Vaapi,
        EncoderKind::X264,
        EncoderKind::OpenH264,
    ];
}

/// H.264 profile requested from software encoders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum H264Profile {
    /// Constrained baseline: every decoder plays it; larger files.
    Baseline,
    /// Main: CABAC, smaller at the same quality than baseline.
    Main,
    /// High (the default): adds the 8x8 transform, the largest single gain in quality at a
    /// given bitrate (SSIM 0.963 against main's 0.945 on vtest.avi at 500 kbit/s, `telescope
    /// bench`); browsers (the KVS console, HLS/DASH players), VLC and ffmpeg all play it.
    #[default]
    High,
}

impl H264Profile {
    fn caps_name(self) -> &'static str {
        match self {
            H264Profile::Baseline => "constrained-baseline",
            H264Profile::Main => "main",
            H264Profile::High => "high",
        }
    }
}

/// Named encoder settings, chosen from measurements (`benches/RESULTS.md`, `telescope bench`):
/// CPU per frame and SSIM at the same bitrate, against the original Python telescope as it
/// shipped (x264 `medium`, Baseline profile, no B-frames, key frame every 45 frames), whose CPU
/// per frame is 100 %.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EncoderProfile {
    /// x264 `ultrafast`, `zerolatency`, one thread: about a quarter of the original's CPU, no
    /// added latency; fine detail smears (SSIM about 0.03 below the original's at its bitrate).
    /// For boxes that cannot spare more.
    EdgeLowCpu,
    /// x264 `superfast` with SSIM-tuned adaptive quantization (`psy-tune=ssim`), a 5-frame
    /// lookahead for the macroblock tree (no `zerolatency`) and one thread (the default): about
    /// 0.3 of the original's CPU per frame for the original's SSIM or better at its bitrate on
    /// vtest.avi. The lookahead delays the stream by 5 frames (0.5 s at 10 fps, 0.17 s at 30).
    #[default]
    Balanced,
    /// x264 `faster` with `subme=7 ref=3`, frame lookahead (no `zerolatency`) and the
    /// original's key frame every 4.5 s: SSIM 0.006 above the original's at about its CPU. The
    /// lookahead delays the stream by about 20 frames; KVS fragments last 4.5 s.
    Quality,
}

impl EncoderProfile {
    /// Every profile, in order of CPU cost.
    pub const ALL: [EncoderProfile; 3] = [
        EncoderProfile::EdgeLowCpu,
        EncoderProfile::Balanced,
        EncoderProfile::Quality,
    ];

    /// The profile's name (`edge-low-cpu`, `balanced`, `quality`).
    pub fn name(self) -> &'static str {
        match self {
            EncoderProfile::EdgeLowCpu => "edge-low-cpu",
            EncoderProfile::Balanced => "balanced",
            EncoderProfile::Quality => "quality",
        }
    }

    /// Parse a profile name (also [`std::str::FromStr`]).
    pub fn parse(s: &str) -> Result<Self, TelescopeError> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                TelescopeError::Config(format!(
                    "unknown encoder profile `{s}`: use edge-low-cpu, balanced or quality"
                ))
            })
    }

    /// Seconds between key frames (one KVS fragment each).
    fn key_frame_interval_secs(self) -> f64 {
        match self {
            EncoderProfile::EdgeLowCpu | EncoderProfile::Balanced => 2.0,
            EncoderProfile::Quality => 4.5,
        }
    }

    /// Frames encoded ahead before a frame comes out (x264's lookahead; 0 with `zerolatency`).
    pub fn lookahead_frames(self) -> u32 {
        match self {
            EncoderProfile::EdgeLowCpu => 0,
            EncoderProfile::Balanced => 5,
            // `faster`'s rc-lookahead.
            EncoderProfile::Quality => 20,
        }
    }

    /// Whether x264 runs on one thread (up to [`SINGLE_THREAD_MAX_PIXEL_RATE`]).
    fn single_thread(self) -> bool {
        !matches!(self, EncoderProfile::Quality)
    }

    /// x264 settings of this profile: preset, tune (empty for none), extra properties.
    fn x264(
        self,
    ) -> (
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
    ) {
        match self {
            EncoderProfile::EdgeLowCpu => ("ultrafast", "zerolatency", &[]),
            EncoderProfile::Balanced => (
                "superfast",
                "",
                &[("psy-tune", "ssim"), ("rc-lookahead", "5")],
            ),
            EncoderProfile::Quality => ("faster", "", &[("subme", "7"), ("ref", "3")]),
        }
    }
}

/// Pixels per second (1080p at 30 fps) up to which the `edge-low-cpu` and `balanced` profiles
/// run x264 on one thread: threads cost CPU (about 5 % per frame on vtest.avi) and delay the
/// stream by a frame each; one thread of the test VM encodes `superfast` 1080p at about 60 fps.
pub const SINGLE_THREAD_MAX_PIXEL_RATE: u64 = 1920 * 1080 * 30;

/// Key frames are at least this many frames apart by default (the original telescope's
/// interval): at low rates a 2 s interval spends too much of the bitrate on key frames
/// (SSIM 0.958 against 0.965 on vtest.avi at 10 fps and 500 kbit/s, `balanced`).
pub const MIN_KEY_INT_FRAMES: u32 = 45;

/// Encoder settings. Unset values are derived from the stream's rate and size.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderConfig {
    /// Which encoder (default: automatic).
    pub kind: EncoderKind,
    /// Target bitrate in kbit/s (default: [`EncoderConfig::bitrate_for`]'s rule,
    /// 250 x megapixels^0.75 x fps^0.5, 200..=8000).
    pub bitrate_kbps: Option<u32>,
    /// Seconds between key frames (default 2, one per KVS fragment).
    pub key_frame_interval_secs: f64,
    /// Fewest frames between key frames (default [`MIN_KEY_INT_FRAMES`]; 1 for none): the
    /// interval is the longer of this and `key_frame_interval_secs`.
    pub min_key_int_frames: u32,
    /// x264 speed preset (default `superfast`: the measured knee of CPU against quality).
    pub speed_preset: String,
    /// x264 tuning flags (`zerolatency`, `stillimage`, `fastdecode`); empty for none.
    pub tune: String,
    /// Further x264 `property=value` settings (ignored by other encoders).
    pub x264_options: Vec<(String, String)>,
    /// x264 on one thread while width x height x fps is at most this (`threads=1`); above it,
    /// or when `None`, x264 chooses. An explicit `threads` in `x264_options` wins.
    pub x264_single_thread_up_to: Option<u64>,
    /// Profile for software encoders (default high).
    pub profile: H264Profile,
    /// Extra `property=value` settings applied to the encoder element last, overriding the above.
    pub properties: Vec<(String, String)>,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig::for_profile(EncoderProfile::default())
    }
}

impl EncoderConfig {
    /// The settings of a named profile (automatic encoder choice, derived bitrate).
    pub fn for_profile(profile: EncoderProfile) -> Self {
        let (preset, tune, options) = profile.x264();
        EncoderConfig {
            kind: EncoderKind::Auto,
            bitrate_kbps: None,
            key_frame_interval_secs: profile.key_frame_interval_secs(),
            min_key_int_frames: MIN_KEY_INT_FRAMES,
            speed_preset: preset.to_owned(),
            tune: tune.to_owned(),
            x264_options: options
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            x264_single_thread_up_to: profile
                .single_thread()
                .then_some(SINGLE_THREAD_MAX_PIXEL_RATE),
            profile: H264Profile::High,
            properties: Vec::new(),
        }
    }

    /// The bitrate used for a stream of this size and rate: the configured one, else
    /// 250 kbit/s x megapixels^0.75 x fps^0.5 (200..=8000). Sub-linear in both, because
    /// consecutive frames share most of their content and large frames are smoother per pixel:
    /// 430 kbit/s for 768x576 at 10 fps, 590 for 720x528 at 23.976, 1290 for 720p30, 2370 for
    /// 1080p30 (SSIM at least 0.95 on each footage of `benches/RESULTS.md`). A rule linear in
    /// pixels per second starved low rates: 310 kbit/s and SSIM 0.92 on vtest.avi.
    pub fn bitrate_for(&self, width: u32, height: u32, rate: Rate) -> u32 {
        self.bitrate_kbps.unwrap_or_else(|| {
            let megapixels = f64::from(width) * f64::from(height) / 1e6;
            let kbps = 250.0 * megapixels.powf(0.75) * rate.fps().sqrt();
            (kbps.round() as u32).clamp(200, 8000)
        })
    }

    /// Frames between key frames at this rate.
    pub fn key_int_for(&self, rate: Rate) -> u32 {
        ((rate.fps() * self.key_frame_interval_secs).round() as u32)
            .max(self.min_key_int_frames)
            .max(1)
    }

    /// x264's `threads` for a stream of this size and rate (`None`: x264 chooses).
    pub fn x264_threads_for(&self, width: u32, height: u32, rate: Rate) -> Option<u32> {
        let pixel_rate = f64::from(width) * f64::from(height) * rate.fps();
        self.x264_single_thread_up_to
            .filter(|max| pixel_rate <= *max as f64)
            .map(|_| 1)
    }
}

/// The encoder chosen for a stream: the elements to insert, in order.
#[derive(Debug)]
pub(crate) struct EncoderChain {
    pub name: &'static str,
    pub elements: Vec<gst::Element>,
}

/// Whether a factory exists and (for hardware) its element can open its device.
fn usable(kind: &EncoderKind) -> bool {
    let Some(factory) = gst::ElementFactory::find(kind.factory()) else {
        return false;
    };
    if matches!(kind, EncoderKind::X264 | EncoderKind::OpenH264) {
        return true;
    }
    // Hardware plugins can be installed on machines without the device: open it to be sure.
    let Ok(element) = factory.create().build() else {
        return false;
    };
    let ok = element.set_state(gst::State::Ready).is_ok();
    let _ = element.set_state(gst::State::Null);
    ok
}

/// Pick the encoder: the configured one, or the first usable in the automatic order.
pub(crate) fn select(config: &EncoderConfig) -> Result<EncoderKind, TelescopeError> {
    let candidates: Vec<EncoderKind> = match &config.kind {
        EncoderKind::Auto => EncoderKind::AUTO_ORDER.to_vec(),
        k => vec![k.clone()],
    };
    for kind in &candidates {
        if usable(kind) {
            tracing::info!(encoder = kind.factory(), "selected H.264 encoder");
            return Ok(kind.clone());
        }
        tracing::debug!(encoder = kind.factory(), "encoder not available");
    }
    Err(TelescopeError::NoEncoder {
        tried: candidates
            .iter()
            .map(|k| k.factory())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

fn make(factory: &'static str) -> Result<gst::Element, TelescopeError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| TelescopeError::MissingElement {
            element: factory,
            hint: "check the GStreamer plugin packages",
        })
}

/// Set a property from its string form, with a typed error instead of a panic on bad input.
pub(crate) fn set_from_str(
    element: &gst::Element,
    name: &str,
    value: &str,
) -> Result<(), TelescopeError> {
    let owner = || {
        element
            .factory()
            .map(|f| f.name().to_string())
            .unwrap_or_default()
    };
    let pspec = element
        .find_property(name)
        .filter(|p| p.flags().contains(gst::glib::ParamFlags::WRITABLE))
        .ok_or_else(|| {
            TelescopeError::Config(format!("{} has no writable property `{name}`", owner()))
        })?;
    let v = gst::glib::Value::deserialize_with_pspec(value, &pspec).map_err(|_| {
        TelescopeError::Config(format!(
            "{}: `{value}` is not a valid value for `{name}`",
            owner()
        ))
    })?;
    element.set_property_from_value(name, &v);
    Ok(())
}

/// Build the encoder elements for a stream of this size and rate.
pub(crate) fn build(
    kind: &EncoderKind,
    config: &EncoderConfig,
    width: u32,
    height: u32,
    rate: Rate,
) -> Result<EncoderChain, TelescopeError> {
    let kbps = config.bitrate_for(width, height, rate);
    let key_int = config.key_int_for(rate);
    let enc = make(kind.factory())?;
    let mut elements = Vec::new();
    match kind {
        EncoderKind::Auto | EncoderKind::X264 => {
            enc.set_property("bitrate", kbps);
            enc.set_property("key-int-max", key_int);
            enc.set_property("bframes", 0u32);
            set_from_str(&enc, "speed-preset", &config.speed_preset)?;
            if let Some(threads) = config.x264_threads_for(width, height, rate) {
                enc.set_property("threads", threads);
            }
            if !config.tune.is_empty() {
                set_from_str(&enc, "tune", &config.tune)?;
            }
            for (name, value) in &config.x264_options {
                set_from_str(&enc, name, value)?;
            }
            elements.push(enc.clone());
        }
        EncoderKind::OpenH264 => {
            enc.set_property("bitrate", kbps.saturating_mul(1000));
            enc.set_property("gop-size", key_int);
            set_from_str(&enc, "complexity", "low")?;
            elements.push(enc.clone());
        }
        EncoderKind::Nvidia => {
            elements.push(make("nvvidconv")?);
            enc.set_property("bitrate", kbps.saturating_mul(1000));
            set_from_str(&enc, "iframeinterval", &key_int.to_string())?;
            set_from_str(&enc, "insert-sps-pps", "true")?;
            elements.push(enc.clone());
        }
        EncoderKind::V4l2 => {
            let controls = format!(
                "controls,video_bitrate={},h264_i_frame_period={key_int}",
                kbps * 1000
            );
            set_from_str(&enc, "extra-controls", &controls)?;
            elements.push(enc.clone());
        }
        EncoderKind::Vaapi => {
            enc.set_property("bitrate", kbps);
            enc.set_property("keyframe-period", key_int);
            elements.push(enc.clone());
        }
    }
    for (name, value) in &config.properties {
        set_from_str(&enc, name, value)?;
    }
    if matches!(
        kind,
        EncoderKind::Auto | EncoderKind::X264 | EncoderKind::OpenH264
    ) {
        let caps = gst::Caps::builder("video/x-h264")
            .field("profile", config.profile.caps_name())
            .build();
        let filter = gst::ElementFactory::make("capsfilter")
            .property("caps", caps)
            .build()?;
        elements.push(filter);
    }
    tracing::info!(encoder = kind.factory(), kbps, key_int, preset = %config.speed_preset, "encoder configured");
    Ok(EncoderChain {
        name: kind.factory(),
        elements,
    })
}

impl std::str::FromStr for EncoderProfile {
    type Err = TelescopeError;

    fn from_str(s: &str) -> Result<Self, TelescopeError> {
        EncoderProfile::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_settings_follow_rate_and_size() {
        let c = EncoderConfig::default();
        let r = Rate::new(30000, 1001).unwrap();
        let ten = Rate::whole(10).unwrap();
        assert_eq!(c.key_int_for(r), 60);
        // At low rates, the original's 45 frames rather than 2 s.
        assert_eq!(c.key_int_for(ten), 45);
        assert_eq!(
            EncoderConfig {
                min_key_int_frames: 1,
                ..c.clone()
            }
            .key_int_for(ten),
            20
        );
        assert_eq!(c.bitrate_for(768, 576, ten), 429);
        assert_eq!(c.bitrate_for(720, 528, "24000/1001".parse().unwrap()), 593);
        assert_eq!(c.bitrate_for(1280, 720, Rate::whole(30).unwrap()), 1288);
        assert_eq!(c.bitrate_for(1920, 1080, Rate::whole(30).unwrap()), 2366);
        assert_eq!(c.bitrate_for(64, 64, r), 200);
        assert_eq!(c.bitrate_for(7680, 4320, r), 8000);
        assert_eq!(
            c.x264_threads_for(1920, 1080, Rate::whole(30).unwrap()),
            Some(1)
        );
        assert_eq!(
            c.x264_threads_for(3840, 2160, Rate::whole(30).unwrap()),
            None
        );
        assert_eq!(
            EncoderConfig::for_profile(EncoderProfile::Quality).x264_threads_for(64, 64, ten),
            None
        );
        assert_eq!(
            EncoderConfig {
                bitrate_kbps: Some(900),
                ..c
            }
            .bitrate_for(1, 1, r),
            900
        );
        assert!("h265".parse::<EncoderKind>().is_err());
        for p in EncoderProfile::ALL {
            assert_eq!(EncoderProfile::parse(p.name()).unwrap(), p);
        }
        assert_eq!(
            EncoderConfig::default(),
            EncoderConfig::for_profile(EncoderProfile::Balanced)
        );
        assert!(EncoderProfile::parse("fast").is_err());
    }
}
