//! What the options describe, checked before anything opens: the cameras, their camera
//! models, rates and sizes no stream can have, outputs shared by cameras, memory.

use super::*;

/// The cameras the arguments describe: names and sources.
pub(super) fn cameras(args: &ReplayArgs) -> Result<Vec<(String, SourceSpec)>> {
    let sources = args
        .footage
        .iter()
        .map(|s| s.parse::<SourceSpec>())
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = match &args.graph {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let graph = Graph::parse(&text).with_context(|| format!("{}", path.display()))?;
            let problems = graph.problems();
            if !problems.is_empty() {
                bail!(
                    "{} is inconsistent: {}",
                    path.display(),
                    problems.join("; ")
                );
            }
            let mut names = graph.cameras();
            if let Some(n) = args.cameras {
                names.truncate(n);
                if names.len() < n {
                    bail!(
                        "--cameras {n}, but {} has {} cameras",
                        path.display(),
                        names.len()
                    );
                }
            }
            names
        }
        None => {
            let n = args.cameras.unwrap_or(sources.len());
            if n == 0 {
                bail!("--cameras must be at least 1");
            }
            (0..n).map(|i| i.to_string()).collect()
        }
    };
    Ok(names
        .into_iter()
        .enumerate()
        .map(|(i, name)| (name, sources[i % sources.len()].clone()))
        .collect())
}

/// The camera model the flags describe, or `None` when none of them is given.
pub(super) fn camera_model(
    args: &ReplayArgs,
    declared: Option<Rate>,
    seed: u64,
) -> Result<Option<TimingConfig>> {
    args.camera_model_options()
        .timing(args.fps.or(declared), seed)
        .map_err(|e| {
            let flag = match e {
                CameraModelError::Drop => "--drop",
                CameraModelError::StallEvery => "--stall-every",
                CameraModelError::Jitter => "--jitter-ms",
                CameraModelError::NoRate => "--fps or --camera-fps",
            };
            anyhow::anyhow!("{flag}: {e}")
        })
}

/// Rates, sizes and the encoder that no stream can have fail before anything opens, naming
/// the limit.
pub(super) fn check_stream_options(args: &ReplayArgs) -> Result<()> {
    let size = args.width.zip(args.height);
    if let Some((w, h)) = size {
        telescope::limits::check_size(w, h, &telescope::EncoderKind::Auto)
            .map_err(|reason| anyhow::anyhow!("--width/--height: {reason}"))?;
    }
    if let Some(rate) = args.fps {
        telescope::limits::check_rate(rate, size)
            .map_err(|reason| anyhow::anyhow!("--fps: {reason}"))?;
    }
    Ok(())
}

/// With several cameras, every output must name the camera: two cameras writing one file,
/// one RTSP mount or one KVS stream would interleave two streams into one.
pub(super) fn check_outputs_per_camera(sinks: &[String], cameras: usize) -> Result<()> {
    if cameras < 2 {
        return Ok(());
    }
    if let Some(shared) = sinks.iter().find(|s| !s.contains("{camera}")) {
        bail!(
            "{cameras} cameras would all write `{shared}`: put {{camera}} in it, \
             e.g. `{}`",
            with_camera_placeholder(shared)
        );
    }
    Ok(())
}

/// `spec` with `-{camera}` before the file extension, or after the path.
pub(super) fn with_camera_placeholder(spec: &str) -> String {
    let (base, query) = spec
        .split_once('?')
        .map_or((spec, None), |(b, q)| (b, Some(q)));
    let name_start = base.rfind('/').map_or(0, |i| i + 1);
    let with = match base[name_start..].rfind('.') {
        Some(dot) if spec.starts_with("file:") => {
            let dot = name_start + dot;
            format!("{}-{{camera}}{}", &base[..dot], &base[dot..])
        }
        _ => format!("{base}-{{camera}}"),
    };
    match query {
        Some(q) => format!("{with}?{q}"),
        None => with,
    }
}

/// What one camera costs in memory, at most, for frames of `frame_bytes`: its decoder's and
/// the node's frames, Telescope's queue and conversion buffers and the encoder's reference and
/// look-ahead frames (about 40 frames in all, measured in RESULTS.md), plus 24 MiB of
/// pipeline threads and buffers that do not grow with the frame size.
pub(super) fn camera_memory(frame_bytes: u64) -> u64 {
    frame_bytes * 40 + (24 << 20)
}

/// Refuses a camera count whose frames cannot fit in the memory this machine has available.
pub(super) fn check_memory(plan: &[(String, SourceSpec)]) -> Result<()> {
    let Some(available) = crate::sample::available_memory() else {
        return Ok(());
    };
    let mut sizes: Vec<(SourceSpec, u64)> = Vec::new();
    let mut need = 0u64;
    for (_, spec) in plan {
        let bytes = match sizes.iter().find(|(s, _)| s == spec) {
            Some((_, b)) => *b,
            None => {
                let b = first_frame_bytes(spec)?;
                sizes.push((spec.clone(), b));
                b
            }
        };
        need += camera_memory(bytes);
    }
    if need > available {
        let mib = |b: u64| b >> 20;
        bail!(
            "{} cameras need about {} MiB ({} MiB each for frames of {} bytes) and {} MiB are \
             available: use fewer cameras or smaller footage",
            plan.len(),
            mib(need),
            mib(need / plan.len().max(1) as u64),
            sizes.first().map_or(0, |(_, b)| *b),
            mib(available)
        );
    }
    Ok(())
}

/// The size of a source's first frame, in bytes (0 when it has none).
pub(super) fn first_frame_bytes(spec: &SourceSpec) -> Result<u64> {
    let mut source =
        simulator::Source::open(spec, Some(1)).with_context(|| format!("cannot open {spec}"))?;
    let frame = source
        .next_frame()
        .with_context(|| format!("cannot read {spec}"))?;
    Ok(frame.map_or(0, |f| f.memory_size() as u64))
}
