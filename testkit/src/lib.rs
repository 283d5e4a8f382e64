//! Test support shared by the workspace: media checks with real clients (ffprobe), clip
//! generation with real encoders (gst-launch-1.0, ffmpeg), and guards that stop child
//! processes by PID. Panics are the failure mode here: these run only inside tests.

use std::path::Path;
use std::process::{Child, Command, Output};

/// What ffprobe says about a file's first video stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Frames decoded (ffprobe `-count_frames`).
    pub frames: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `r_frame_rate` as a fraction string, e.g. `24000/1001`.
    pub rate: String,
    /// Codec name, e.g. `h264`.
    pub codec: String,
    /// Container duration in seconds (0 when unknown).
    pub duration: f64,
}

/// Count decoded frames and read size, rate, codec and duration with ffprobe.
pub fn probe(path: &Path) -> Probe {
    let out = host_tool("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
        ])
        .arg("stream=nb_read_frames,width,height,r_frame_rate,codec_name:format=duration")
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe runs (ci/setup installs ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe prints JSON");
    let s = &v["streams"][0];
    Probe {
        frames: s["nb_read_frames"]
            .as_str()
            .unwrap_or("0")
            .parse()
            .expect("frame count"),
        width: s["width"].as_u64().expect("width") as u32,
        height: s["height"].as_u64().expect("height") as u32,
        rate: s["r_frame_rate"].as_str().expect("rate").to_owned(),
        codec: s["codec_name"].as_str().expect("codec").to_owned(),
        duration: v["format"]["duration"]
            .as_str()
            .unwrap_or("0")
            .parse()
            .unwrap_or(0.0),
    }
}

/// Presentation times (seconds) of every video frame, from ffprobe.
pub fn frame_times(path: &Path) -> Vec<f64> {
    let out = host_tool("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe failed on {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

/// Write an H.264 MKV/MP4 clip of `frames` test-pattern frames with gst-launch-1.0.
pub fn gst_clip(path: &Path, width: u32, height: u32, rate: &str, frames: u32) {
    let mux = if path.extension().is_some_and(|e| e == "mp4") {
        "mp4mux"
    } else {
        "matroskamux"
    };
    let status = host_tool("gst-launch-1.0")
        .arg("-q")
        .args([
            "videotestsrc",
            "pattern=ball",
            &format!("num-buffers={frames}"),
            "!",
        ])
        .arg(format!(
            "video/x-raw,width={width},height={height},framerate={rate}"
        ))
        .args([
            "!",
            "x264enc",
            "speed-preset=ultrafast",
            "!",
            mux,
            "!",
            "filesink",
        ])
        .arg(format!("location={}", path.display()))
        .status()
        .expect("gst-launch-1.0 runs (ci/setup installs gstreamer1.0-tools)");
    assert!(
        status.success(),
        "gst-launch-1.0 could not write {}",
        path.display()
    );
}

/// Run ffmpeg with these arguments (quiet, overwrite), asserting success.
pub fn ffmpeg(args: &[&str]) {
    let status = host_tool("ffmpeg")
        .args(["-y", "-v", "error", "-nostdin"])
        .args(args)
        .status()
        .expect("ffmpeg runs (ci/setup installs ffmpeg)");
    assert!(status.success(), "ffmpeg {args:?} failed");
}

/// Owns a child process and kills it by PID when dropped.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `BIN mock-kvs --listen 127.0.0.1:0 ARGS...` and wait for the URL it prints first;
/// returns the guard that stops it and the URL. Panics, naming the arguments, if it does not
/// start.
pub fn start_mock_kvs(bin: &str, args: &[&str]) -> (ChildGuard, String) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = ChildGuard(
        Command::new(bin)
            .args(["mock-kvs", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the telescope binary runs"),
    );
    let mut line = String::new();
    if let Some(stdout) = child.0.stdout.take() {
        let _ = BufReader::new(stdout).read_line(&mut line);
    }
    let url = line
        .trim()
        .strip_prefix("mock-kvs listening on ")
        .map(str::to_owned);
    let url =
        url.unwrap_or_else(|| panic!("mock-kvs did not start (arguments {args:?}): `{line}`"));
    (child, url)
}

/// A command for a tool of the machine running the tests (ffprobe, ffmpeg, gst-launch-1.0).
/// Under emulation (`ci/arm64` sets `TELESCOPE_TARGET_SYSROOT`) the test process carries the
/// target's library and plugin paths; the host's tools must not load those.
pub fn host_tool(program: &str) -> Command {
    let mut cmd = Command::new(program);
    if std::env::var_os("TELESCOPE_TARGET_SYSROOT").is_some() {
        for var in [
            "LD_LIBRARY_PATH",
            "GST_PLUGIN_SYSTEM_PATH",
            "GST_PLUGIN_SCANNER",
            "GST_REGISTRY",
            "QEMU_LD_PREFIX",
        ] {
            cmd.env_remove(var);
        }
    }
    cmd
}

/// A command-line failure as the binaries promise it: exit code 2 and one line on stderr that
/// contains `needle`.
pub fn assert_one_line_error(output: &Output, needle: &str) {
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(needle), "`{needle}` in: {stderr}");
}

/// A program of the Python venv `ci/setup` makes (`TELESCOPE_VENV`, else `target/venv`):
/// `moto_server`, `aws`. `None` when it is not installed.
pub fn venv_tool(name: &str) -> Option<std::path::PathBuf> {
    let venv = std::env::var_os("TELESCOPE_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/venv"));
    let bin = venv.join("bin").join(name);
    bin.exists().then_some(bin)
}

/// MKVToolNix's `mkvinfo` description of a Matroska file; panics when it cannot parse it.
pub fn mkvinfo(path: &Path) -> String {
    let out = host_tool("mkvinfo")
        .arg(path)
        .output()
        .expect("mkvinfo runs (ci/setup installs mkvtoolnix)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "mkvinfo failed on {}: {text}",
        path.display()
    );
    text
}

/// A loopback TCP port nothing listens on at this moment (the OS picked it; a server started
/// right after may take it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("the OS gives a loopback port")
}

/// A valid PNG header declaring `width`x`height` RGB pixels, one tiny IDAT and IEND: a few
/// dozen bytes that claim any size (for image-bomb tests).
pub fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    // zlib: an empty stored block.
    chunk(
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x01,
        ],
    );
    chunk(b"IEND", &[]);
    out
}

/// CRC-32 (IEEE), as PNG chunks carry it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The value of every Matroska tag `name` in `bytes` (GetMedia output): a TagString of under
/// 127 bytes follows its TagName (id 0x4487, then a one-byte size).
pub fn tag_values(bytes: &[u8], name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let needle = name.as_bytes();
    let mut i = 0;
    while let Some(at) = bytes[i..].windows(needle.len()).position(|w| w == needle) {
        let v = i + at + needle.len();
        if bytes.get(v..v + 2) == Some(&[0x44, 0x87]) {
            let len = usize::from(bytes[v + 2] & 0x7f);
            out.push(String::from_utf8_lossy(&bytes[v + 3..v + 3 + len]).into_owned());
        }
        i = v;
    }
    out
}
