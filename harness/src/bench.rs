//! `telescope bench FOOTAGE`: CPU per frame of Telescope against the raw encoder pipeline and
//! the original Python path, on the same frames, in one go.
//!
//! The footage is decoded once into a raw BGR file. Each variant then runs as its own process
//! (so its CPU time and peak memory are its own, read from `wait4`):
//! - `gst-launch[P]`: `filesrc ! rawvideoparse ! videoconvert ! x264enc (profile P) ! h264parse !
//!   matroskamux ! filesink`, the floor for that profile;
//! - `telescope[P]`: this binary's `bench-run`, which loads the frames into memory and hands
//!   each to `Telescope::put_ref` (one copy into a pooled buffer), with profile P; and
//!   `telescope[balanced, no bitrate]`, the default profile at its derived bitrate;
//! - `python videowriter (original)` / `(telescope settings)`: OpenCV's VideoWriter over
//!   GStreamer from Debian's python3-opencv, the original telescope's path;
//! - `telescope-py[balanced]`: the Python package, when a Python that imports it is given.
//!
//! In-process variants report the CPU spent streaming (after loading the frames); gst-launch's
//! figure is its whole process (reading the raw file is its input stage). SSIM comes from
//! ffmpeg's `ssim` filter against the raw frames converted to I420 with the colour matrix the
//! output declares (GStreamer converts HD with BT.709), bitrate from the output's size.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use simulator::source::{Source, SourceSpec};
use telescope::{
    EncoderConfig, EncoderKind, EncoderProfile, FrameRef, PixelFormat, Rate, SinkConfig, Telescope,
    TelescopeConfig,
};

/// Arguments of `telescope bench`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  telescope bench /usr/share/doc/opencv-doc/examples/data/vtest.avi
  telescope bench clip.mp4 --frames 300 --bitrate 1500 --json
  ci/bench   (the same on vtest.avi, with the Python baselines)")]
pub struct BenchArgs {
    /// Footage: a file GStreamer decodes, or a source spec (pattern:smpte@1280x720@30).
    pub footage: String,
    /// Use at most this many frames (they are held in memory: mind width x height x 3 each).
    #[arg(long, default_value_t = 900)]
    pub frames: u32,
    /// Target bitrate for every variant, kbit/s (the original Python telescope used 500, and
    /// keeps it whatever this says); `telescope[balanced, no bitrate]` derives its own.
    #[arg(long, default_value_t = 500)]
    pub bitrate: u32,
    /// Frame rate when the footage declares none.
    #[arg(long, default_value = "10")]
    pub fps: Rate,
    /// Profiles to measure (comma-separated).
    #[arg(long, default_value = "edge-low-cpu,balanced,quality")]
    pub profiles: String,
    /// Python with python3-opencv for the VideoWriter baselines ("" to skip them).
    #[arg(long, default_value = "/usr/bin/python3")]
    pub python: String,
    /// Python that imports the telescope package, for the telescope-py variant.
    #[arg(long)]
    pub telescope_python: Option<PathBuf>,
    /// Keep the raw frames and outputs here (default: a temporary directory, removed).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of the hidden `telescope bench-run` (one Telescope variant).
#[derive(Debug, Args)]
pub struct BenchRunArgs {
    raw: PathBuf,
    width: u32,
    height: u32,
    fps: Rate,
    profile: String,
    /// kbit/s; 0: the bitrate the profile derives from the size and rate.
    bitrate: u32,
    out: PathBuf,
}

/// One measured variant.
#[derive(Debug, Clone, Serialize)]
pub struct Variant {
    pub name: String,
    pub frames: u64,
    /// CPU per input frame, ms (streaming only where the variant reports it).
    pub cpu_ms_per_frame: f64,
    /// Whole-process CPU per frame, ms (including loading the frames).
    pub process_cpu_ms_per_frame: f64,
    pub wall_s: f64,
    pub max_rss_mib: f64,
    pub kbps: f64,
    pub ssim: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Results {
    footage: String,
    width: u32,
    height: u32,
    fps: String,
    frames: u64,
    bitrate_kbps: u32,
    /// What `telescope[balanced, no bitrate]` used.
    derived_bitrate_kbps: u32,
    variants: Vec<Variant>,
    ratios: Vec<(String, f64)>,
}

/// Child process accounting from `wait4`.
struct Usage {
    cpu: Duration,
    max_rss_kib: u64,
    wall: Duration,
    stdout: String,
}

fn run_measured(cmd: &mut Command) -> Result<Usage> {
    let what = format!("{cmd:?}");
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {what}"))?;
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut stdout).ok();
    }
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut stderr).ok();
    }
    let pid = i32::try_from(child.id()).context("child pid")?;
    let mut status = 0i32;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet reaped (std only reaps in wait()); pointers are valid.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    if r != pid {
        bail!("waiting for {what}: {}", std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!(
            "{what} failed: {}",
            stderr.lines().last().unwrap_or("(no output)")
        );
    }
    let tv = crate::sample::timeval;
    Ok(Usage {
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        wall,
        stdout,
    })
}

/// Decode up to `max` frames into `raw` (BGR, tightly packed).
fn decode(footage: &str, max: u32, fallback: Rate, raw: &Path) -> Result<(u32, u32, Rate, u64)> {
    let spec: SourceSpec = footage
        .parse()
        .with_context(|| format!("footage `{footage}`"))?;
    let mut source = Source::open(&spec, Some(1)).with_context(|| format!("opening {footage}"))?;
    let rate = source.declared_rate().unwrap_or(fallback);
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(raw).with_context(|| format!("creating {}", raw.display()))?,
    );
    let (mut w, mut h, mut n) = (0, 0, 0u64);
    while n < u64::from(max) {
        let Some(frame) = source.next_frame().context("decoding the footage")? else {
            break;
        };
        if frame.format() != PixelFormat::Bgr8 {
            bail!("the footage decoded to {:?}, expected BGR", frame.format());
        }
        if n == 0 {
            (w, h) = (frame.width(), frame.height());
        } else if (frame.width(), frame.height()) != (w, h) {
            bail!("the footage changes size at frame {n}; bench needs one size");
        }
        let row = w as usize * 3;
        for y in 0..h as usize {
            let start = y * frame.stride();
            out.write_all(&frame.data()[start..start + row])?;
        }
        n += 1;
    }
    out.flush()?;
    if n == 0 {
        bail!("{footage} has no frames");
    }
    Ok((w, h, rate, n))
}

/// The original Python telescope's variant name in the table.
const ORIGINAL: &str = "python videowriter (original as shipped)";

/// The original Python telescope's encoding, exactly as it shipped (Neosperience `backpack`,
/// `backpack/kvs.py` and `backpack/rtsp.py`, `_get_pipeline`): I420 caps with
/// `framerate={fps}/1` (a whole number: the rate rounded, as an integer fps gave it),
/// `x264enc bframes=0 key-int-max=45 bitrate=500` (x264's default `medium` preset) and
/// Baseline-profile AVC caps after it, whatever `--bitrate` says.
fn original_encode(width: u32, height: u32, rate: Rate) -> String {
    format!(
        "video/x-raw,format=I420,width={width},height={height},framerate={}/1 ! \
         x264enc bframes=0 key-int-max=45 bitrate=500 ! \
         video/x-h264,stream-format=avc,alignment=au,profile=baseline",
        rate.fps().round().max(1.0)
    )
}

/// The x264enc settings of a profile, as gst-launch and VideoWriter pipelines spell them.
fn x264_settings(profile: EncoderProfile, bitrate: u32, w: u32, h: u32, rate: Rate) -> String {
    let c = EncoderConfig::for_profile(profile);
    let mut s = format!(
        "bitrate={bitrate} key-int-max={} bframes=0 speed-preset={}",
        c.key_int_for(rate),
        c.speed_preset
    );
    if let Some(threads) = c.x264_threads_for(w, h, rate) {
        s.push_str(&format!(" threads={threads}"));
    }
    if !c.tune.is_empty() {
        s.push_str(&format!(" tune={}", c.tune));
    }
    for (k, v) in &c.x264_options {
        s.push_str(&format!(" {k}={v}"));
    }
    s
}

/// The colour matrix an encoded file declares, as ffmpeg's `scale` names it (`bt601` when it
/// declares none: GStreamer's choice below 720 rows).
fn colour_matrix(out: &Path) -> &'static str {
    let declared = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=color_space", "-of", "csv=p=0"])
        .arg(out)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    if declared == "bt709" {
        "bt709"
    } else {
        "bt601"
    }
}

fn ssim(out: &Path, raw: &Path, w: u32, h: u32, rate: Rate) -> Result<f64> {
    let fps = format!("{}/{}", rate.num(), rate.den());
    // Renumber both timelines (container timestamps are rounded to ms) so frame N meets N. The
    // reference is converted with the output's matrix: ffmpeg's default (BT.601) against a
    // BT.709 stream caps SSIM at 0.98 for a lossless 1080p encode.
    let matrix = colour_matrix(out);
    let graph = format!(
        "[0:v]setpts=N/({fps})/TB[a];[1:v]setpts=N/({fps})/TB,\
         scale=out_color_matrix={matrix}:out_range=tv,format=yuv420p[b];[a][b]ssim"
    );
    let o = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(out)
        .args(["-f", "rawvideo", "-pix_fmt", "bgr24", "-s"])
        .arg(format!("{w}x{h}"))
        .args(["-framerate", &fps, "-i"])
        .arg(raw)
        .args(["-lavfi", &graph, "-f", "null", "-"])
        .output()
        .context("running ffmpeg (ci/setup installs it)")?;
    let text = String::from_utf8_lossy(&o.stderr);
    text.split("All:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .with_context(|| {
            format!(
                "no SSIM in ffmpeg's output: {}",
                text.lines().last().unwrap_or("")
            )
        })
}

#[derive(Debug, serde::Deserialize)]
struct Reported {
    cpu_s: f64,
}

struct Ctx {
    raw: PathBuf,
    dir: PathBuf,
    w: u32,
    h: u32,
    rate: Rate,
    frames: u64,
    /// JSON output: no progress lines.
    quiet: bool,
}

impl Ctx {
    fn variant(&self, name: &str, usage: Usage, out: &Path) -> Result<Variant> {
        let reported: Option<Reported> = usage
            .stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok());
        let frames = self.frames as f64;
        let process = usage.cpu.as_secs_f64() * 1000.0 / frames;
        let size = std::fs::metadata(out)
            .with_context(|| format!("{name} wrote no {}", out.display()))?
            .len();
        let seconds = frames / self.rate.fps();
        Ok(Variant {
            name: name.to_owned(),
            frames: self.frames,
            cpu_ms_per_frame: reported
                .as_ref()
                .map_or(process, |r| r.cpu_s * 1000.0 / frames),
            process_cpu_ms_per_frame: process,
            wall_s: usage.wall.as_secs_f64(),
            max_rss_mib: usage.max_rss_kib as f64 / 1024.0,
            kbps: size as f64 * 8.0 / seconds / 1000.0,
            ssim: Some(ssim(out, &self.raw, self.w, self.h, self.rate)?),
        })
    }

    fn out(&self, name: &str) -> PathBuf {
        // Names become file names inside pipeline descriptions: no spaces or brackets.
        let slug: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        self.dir.join(format!("{}.mkv", slug.trim_matches('-')))
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    let profiles: Vec<EncoderProfile> = args
        .profiles
        .split(',')
        .map(|p| EncoderProfile::parse(p.trim()))
        .collect::<Result<_, _>>()?;
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("telescope-bench-")
                .tempdir()
                .context("creating a temporary directory")?;
            tmp.path().to_path_buf()
        }
    };
    let raw = dir.join("source.bgr");
    let (w, h, rate, frames) = decode(&args.footage, args.frames, args.fps, &raw)?;
    let ctx = Ctx {
        raw,
        dir: dir.clone(),
        w,
        h,
        rate,
        frames,
        quiet: args.json,
    };
    ctx.say(&format!(
        "bench: {frames} frames of {w}x{h} at {} fps, {} kbit/s, in {}",
        ctx.fps(),
        args.bitrate,
        dir.display()
    ));
    let mut variants = Vec::new();
    for p in &profiles {
        variants.push(ctx.gst_launch(*p, args.bitrate)?);
        variants.push(ctx.telescope(*p, args.bitrate)?);
    }
    // The default as a user gets it: no bitrate given.
    variants.push(ctx.telescope(EncoderProfile::default(), 0)?);
    if !args.python.is_empty() {
        variants.extend(ctx.videowriters(&args.python, args.bitrate)?);
    }
    if let Some(py) = &args.telescope_python {
        variants.push(ctx.telescope_py(py, args.bitrate)?);
    }
    let results = Results {
        footage: args.footage.clone(),
        width: w,
        height: h,
        fps: ctx.fps(),
        frames,
        bitrate_kbps: args.bitrate,
        derived_bitrate_kbps: EncoderConfig::default().bitrate_for(w, h, rate),
        ratios: ratios(&variants),
        variants,
    };
    std::fs::write(dir.join("bench.json"), serde_json::to_vec_pretty(&results)?)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", table(&results));
    }
    Ok(())
}

/// The name of the Telescope variant of profile `p` at `bitrate` (0: derived).
fn telescope_name(p: EncoderProfile, bitrate: u32) -> String {
    if bitrate == 0 {
        format!("telescope[{}, no bitrate]", p.name())
    } else {
        format!("telescope[{}]", p.name())
    }
}

impl Ctx {
    fn fps(&self) -> String {
        format!("{}/{}", self.rate.num(), self.rate.den())
    }

    fn say(&self, line: &str) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    /// Run one variant's process and measure it.
    fn measure(&self, name: &str, cmd: &mut Command, out: &Path) -> Result<Variant> {
        let v = self.variant(name, run_measured(cmd)?, out)?;
        self.say(&format!("  measured {}", v.name));
        Ok(v)
    }

    /// `gst-launch[P]`: the raw pipeline with profile P's x264 settings.
    fn gst_launch(&self, p: EncoderProfile, bitrate: u32) -> Result<Variant> {
        let (w, h) = (self.w, self.h);
        let name = format!("gst-launch[{}]", p.name());
        let out = self.out(&name);
        let pipeline = format!(
            "filesrc location={} blocksize={} ! rawvideoparse format=bgr width={w} height={h} \
             framerate={} ! videoconvert ! x264enc {} ! video/x-h264,profile=high ! h264parse \
             ! matroskamux ! filesink location={}",
            self.raw.display(),
            w as usize * h as usize * 3,
            self.fps(),
            x264_settings(p, bitrate, w, h, self.rate),
            out.display()
        );
        let mut cmd = Command::new("gst-launch-1.0");
        cmd.arg("-q").args(pipeline.split_whitespace());
        self.measure(&name, &mut cmd, &out)
    }

    /// `telescope[P]`: this binary's `bench-run` with profile P at `bitrate` (0: derived).
    fn telescope(&self, p: EncoderProfile, bitrate: u32) -> Result<Variant> {
        let name = telescope_name(p, bitrate);
        let out = self.out(&name);
        let exe = std::env::current_exe().context("locating this binary")?;
        let mut cmd = Command::new(exe);
        cmd.arg("bench-run")
            .arg(&self.raw)
            .args([
                self.w.to_string(),
                self.h.to_string(),
                self.fps(),
                p.name().to_owned(),
                bitrate.to_string(),
            ])
            .arg(&out);
        self.measure(&name, &mut cmd, &out)
    }

    /// The raw frames' size and rate, as `baseline.py` takes them.
    fn dims(&self) -> [String; 4] {
        self.dims_at(self.rate)
    }

    fn dims_at(&self, rate: Rate) -> [String; 4] {
        [
            self.w.to_string(),
            self.h.to_string(),
            rate.num().to_string(),
            rate.den().to_string(),
        ]
    }

    /// OpenCV's VideoWriter: the original as shipped, and with `balanced`'s x264 settings.
    fn videowriters(&self, python: &str, bitrate: u32) -> Result<Vec<Variant>> {
        let script = python_script()?;
        // The same I420 input and High-profile output as Telescope's: without the caps,
        // videoconvert and x264enc agree on 4:4:4 (High 4:4:4, which browsers do not play).
        let balanced = format!(
            "video/x-raw,format=I420 ! x264enc {} ! video/x-h264,profile=high",
            x264_settings(EncoderProfile::Balanced, bitrate, self.w, self.h, self.rate)
        );
        // The original took a whole number of frames per second, for the VideoWriter as for
        // its caps (which refuse any other rate: 23.976 fps footage would never negotiate).
        let whole = Rate::whole(self.rate.fps().round().max(1.0) as u32).unwrap_or(self.rate);
        let mut variants = Vec::new();
        for (name, encode, rate) in [
            (ORIGINAL, original_encode(self.w, self.h, self.rate), whole),
            (
                "python videowriter (balanced settings)",
                balanced,
                self.rate,
            ),
        ] {
            let out = self.out(name);
            let mut cmd = Command::new(python);
            cmd.arg(&script)
                .arg("videowriter")
                .arg(&self.raw)
                .args(self.dims_at(rate))
                .arg(&out)
                .arg(encode);
            variants.push(self.measure(name, &mut cmd, &out)?);
        }
        Ok(variants)
    }

    /// The telescope Python package, `balanced` at `bitrate`.
    fn telescope_py(&self, python: &Path, bitrate: u32) -> Result<Variant> {
        let name = "telescope-py[balanced]";
        let out = self.out(name);
        let mut cmd = Command::new(python);
        cmd.arg(python_script()?)
            .arg("telescope")
            .arg(&self.raw)
            .args(self.dims())
            .arg(&out)
            .args(["balanced", &bitrate.to_string()]);
        self.measure(name, &mut cmd, &out)
    }
}

fn find<'a>(variants: &'a [Variant], name: &str) -> Option<&'a Variant> {
    variants.iter().find(|v| v.name == name)
}

/// The ratios the performance targets are stated in.
fn ratios(variants: &[Variant]) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for p in EncoderProfile::ALL {
        let (Some(t), Some(g)) = (
            find(variants, &format!("telescope[{}]", p.name())),
            find(variants, &format!("gst-launch[{}]", p.name())),
        ) else {
            continue;
        };
        out.push((
            format!("telescope[{0}] / gst-launch[{0}] CPU", p.name()),
            t.cpu_ms_per_frame / g.cpu_ms_per_frame,
        ));
    }
    if let Some(orig) = find(variants, ORIGINAL) {
        for t in variants.iter().filter(|v| v.name.starts_with("telescope[")) {
            out.push((
                format!("{} / python original CPU", t.name),
                t.cpu_ms_per_frame / orig.cpu_ms_per_frame,
            ));
            if let (Some(a), Some(b)) = (t.ssim, orig.ssim) {
                out.push((format!("{} SSIM - python original SSIM", t.name), a - b));
            }
        }
    }
    out
}

fn table(r: &Results) -> String {
    let mut s = format!(
        "\n{} frames of {}x{} at {} fps, target {} kbit/s (no bitrate: {} kbit/s)\n\n",
        r.frames, r.width, r.height, r.fps, r.bitrate_kbps, r.derived_bitrate_kbps
    );
    s.push_str(&format!(
        "{:<40} {:>9} {:>9} {:>7} {:>8} {:>7} {:>7}\n",
        "variant", "CPU ms/f", "proc ms/f", "wall s", "RSS MiB", "kbit/s", "SSIM"
    ));
    for v in &r.variants {
        s.push_str(&format!(
            "{:<40} {:>9.2} {:>9.2} {:>7.2} {:>8.1} {:>7.0} {:>7.4}\n",
            v.name,
            v.cpu_ms_per_frame,
            v.process_cpu_ms_per_frame,
            v.wall_s,
            v.max_rss_mib,
            v.kbps,
            v.ssim.unwrap_or(f64::NAN),
        ));
    }
    s.push('\n');
    for (name, ratio) in &r.ratios {
        s.push_str(&format!("{name:<62} {ratio:>7.3}\n"));
    }
    s
}

/// The Python baselines script, next to the workspace (found from the binary or the cwd).
fn python_script() -> Result<PathBuf> {
    let rel = Path::new("benches/python/baseline.py");
    let mut candidates = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)];
    if let Ok(cwd) = std::env::current_dir() {
        candidates.push(cwd.join(rel));
    }
    candidates
        .into_iter()
        .find(|p| p.exists())
        .context("benches/python/baseline.py not found: run from the repository")
}

/// `telescope bench-run`: load the raw frames, then time streaming them through Telescope.
pub fn run_one(args: BenchRunArgs) -> Result<()> {
    let rate = args.fps;
    let frame_len = args.width as usize * args.height as usize * 3;
    let bytes =
        std::fs::read(&args.raw).with_context(|| format!("reading {}", args.raw.display()))?;
    let frames: Vec<&[u8]> = bytes.chunks_exact(frame_len).collect();
    let profile = EncoderProfile::parse(&args.profile)?;
    let t = Telescope::new(
        TelescopeConfig::builder()
            .name("bench")
            .fps(rate)
            .size(args.width, args.height)
            .encoder(EncoderConfig {
                kind: EncoderKind::X264,
                bitrate_kbps: (args.bitrate > 0).then_some(args.bitrate),
                ..EncoderConfig::for_profile(profile)
            })
            .sink(SinkConfig::file(&args.out)?)
            .build(),
    )?;
    let cpu0 = process_cpu();
    t.start()?;
    for (i, data) in frames.iter().enumerate() {
        let frame = FrameRef::new(data, PixelFormat::Bgr8, args.width, args.height)?
            .at(rate.frame_time(i as u64));
        // What put_ref does, but waiting for room rather than dropping (offline input), so
        // every variant encodes every frame. put's own latency is a criterion bench.
        let outcome = t.put_blocking(t.pool().copy(frame));
        if !outcome.is_queued() {
            bail!("frame {i} was not accepted: {outcome:?}");
        }
    }
    let stats = t.stop()?.stats;
    let cpu = process_cpu() - cpu0;
    if stats.frames_out != frames.len() as u64 {
        bail!(
            "{} frames in, {} out: {stats:?}",
            frames.len(),
            stats.frames_out
        );
    }
    println!(
        "{}",
        serde_json::json!({ "cpu_s": cpu.as_secs_f64(), "frames": frames.len() })
    );
    Ok(())
}

/// CPU time of this whole process (every thread).
fn process_cpu() -> Duration {
    let (user, sys) = crate::sample::process_cpu();
    user + sys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_spell_the_same_x264_settings_for_gst_launch() {
        let r = Rate::new(30000, 1001).unwrap();
        assert_eq!(
            x264_settings(EncoderProfile::Balanced, 500, 1920, 1080, r),
            "bitrate=500 key-int-max=60 bframes=0 speed-preset=superfast threads=1 \
             psy-tune=ssim rc-lookahead=5"
        );
        assert_eq!(
            x264_settings(
                EncoderProfile::EdgeLowCpu,
                500,
                768,
                576,
                Rate::whole(10).unwrap()
            ),
            "bitrate=500 key-int-max=45 bframes=0 speed-preset=ultrafast threads=1 \
             tune=zerolatency"
        );
        assert_eq!(
            x264_settings(
                EncoderProfile::Quality,
                900,
                768,
                576,
                Rate::whole(10).unwrap()
            ),
            "bitrate=900 key-int-max=45 bframes=0 speed-preset=faster subme=7 ref=3"
        );
        assert!("24000/1001".parse::<Rate>().is_ok());
        assert!("fast".parse::<Rate>().is_err());
    }
}
