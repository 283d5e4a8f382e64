"""Python sides of `telescope bench`: the same raw BGR frames, loaded into memory first, then
streamed by (a) OpenCV's VideoWriter over a GStreamer pipeline, as the original Python
telescope did, or (b) the telescope Python package. Prints one JSON line: CPU seconds spent
streaming (after loading), frames, and put latencies for (b).

    python3 baseline.py videowriter RAW W H FPS_NUM FPS_DEN OUT.mkv "ENCODE"
      (ENCODE: the pipeline between `appsrc ! videoconvert !` and `! h264parse`, e.g. the
      original's caps, x264enc and caps, or `x264enc SETTINGS`)
    python3 baseline.py telescope   RAW W H FPS_NUM FPS_DEN OUT.mkv PROFILE BITRATE (0: derived)
    python3 baseline.py put-latency W H FPS N [nocopy]  (put() paced at FPS, latency percentiles)
"""

import json
import sys
import time

import numpy as np


def load(raw, w, h):
    frames = np.fromfile(raw, dtype=np.uint8)
    n = frames.size // (w * h * 3)
    return frames[: n * w * h * 3].reshape(n, h, w, 3)


def videowriter(frames, fps, out, encode):
    import cv2

    h, w = frames.shape[1:3]
    pipeline = (f"appsrc ! videoconvert ! {encode} ! h264parse ! matroskamux "
                f"! filesink location={out}")
    start = time.process_time()
    writer = cv2.VideoWriter(pipeline, cv2.CAP_GSTREAMER, 0, fps, (w, h))
    if not writer.isOpened():
        raise SystemExit("OpenCV cannot open the GStreamer pipeline (python3-opencv with GStreamer?)")
    for f in frames:
        writer.write(f)
    writer.release()
    return {"cpu_s": time.process_time() - start, "frames": len(frames)}


def telescope_put(frames, fps_num, fps_den, out, profile, bitrate):
    import telescope

    h, w = frames.shape[1:3]
    fps = fps_num / fps_den
    t = telescope.Telescope(sinks=[f"file:{out}"], fps=fps, width=w, height=h,
                            profile=profile, encoder="x264", bitrate_kbps=bitrate or None)
    start = time.process_time()
    t.start()
    for i, f in enumerate(frames):
        # Offline input: wait for room rather than drop, so every frame is encoded.
        t.put(f, timestamp=i * fps_den / fps_num, block=True)
    stats = t.stop()
    cpu = time.process_time() - start
    return {"cpu_s": cpu, "frames": len(frames), "frames_out": stats["frames_out"]}


def put_latency(w, h, fps, n, copy=True):
    """put() from a paced loop, as an app calls it: latency percentiles in microseconds."""
    import tempfile

    import telescope

    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8) for _ in range(4)]
    with tempfile.TemporaryDirectory() as d:
        t = telescope.Telescope(sinks=[f"file:{d}/lat.mkv"], fps=fps, width=w, height=h)
        latencies = []
        with t:
            period = 1.0 / fps
            next_at = time.perf_counter()
            for i in range(n):
                # Without copying, each frame must be a fresh array the app no longer writes.
                f = frames[i % 4] if copy else frames[i % 4].copy()
                s = time.perf_counter_ns()
                t.put(f, copy=copy)
                latencies.append(time.perf_counter_ns() - s)
                next_at += period
                time.sleep(max(0.0, next_at - time.perf_counter()))
        stats = t.stats()
    lat = np.array(latencies) / 1000.0
    return {"frames": n, "width": w, "height": h, "copy": copy, "put_p50_us": float(np.percentile(lat, 50)),
            "put_p99_us": float(np.percentile(lat, 99)), "put_max_us": float(lat.max()),
            "dropped": sum(stats["dropped"].values()), "buffers_allocated": stats["buffers_allocated"]}


def main(argv):
    if argv[1] == "put-latency":
        w, h, fps, n = int(argv[2]), int(argv[3]), float(argv[4]), int(argv[5])
        copy = len(argv) < 7 or argv[6] != "nocopy"
        print(json.dumps(put_latency(w, h, fps, n, copy)))
        return
    mode, raw, w, h, num, den, out = argv[1:8]
    w, h, num, den = int(w), int(h), int(num), int(den)
    frames = load(raw, w, h)
    if mode == "videowriter":
        result = videowriter(frames, num / den, out, argv[8])
    elif mode == "telescope":
        result = telescope_put(frames, num, den, out, argv[8], int(argv[9]))
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv)
