"""Cost of archived-media playback on mock-kvs: time to the first playable HLS fragment of a
live stream, CPU of the mock-kvs process serving 4 concurrent HLS viewers of a stored 1080p
stream (re-packaging only: fMP4 and MPEG-TS), and GetImages per image.

usage: python mock-kvs/bench/playback.py TELESCOPE_BINARY [WORKDIR]
(the project venv's Python: boto3; gst-launch-1.0 and ffmpeg on the PATH)
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3

BIN = sys.argv[1]
WORK = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp()
TICK = os.sysconf("SC_CLK_TCK")
ENV = dict(os.environ, AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s")


def footage(path, width, height, seconds):
    if os.path.exists(path):
        return
    subprocess.run(["gst-launch-1.0", "-q", "videotestsrc", "pattern=smpte",
                    f"num-buffers={seconds * 25}", "!",
                    f"video/x-raw,width={width},height={height},framerate=25/1", "!",
                    "x264enc", "speed-preset=ultrafast", "bitrate=4000", "key-int-max=50", "!",
                    "matroskamux", "!", "filesink", f"location={path}"], check=True)


def mock():
    proc = subprocess.Popen([BIN, "mock-kvs", "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = proc.stdout.readline().strip().removeprefix("mock-kvs listening on ")
    return proc, url


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def replay(url, stream, clip, virtual):
    cmd = [BIN, "replay", clip, "--create-stream", "--sink",
           f"kvs://{stream}?endpoint={url}&region=us-east-1"]
    if virtual:
        cmd.append("--virtual-clock")
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def clients(url):
    s = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s",
                              region_name="us-east-1")
    return s.client("kinesis-video-archived-media", endpoint_url=url)


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def first_live_fragment(url, clip):
    """Seconds from the producer's launch to a LIVE session opening, from then to its first
    media fragment served, and the age of that fragment's first frame (producer timestamp,
    wall clock) when it was served."""
    am = clients(url)
    launched = time.monotonic()
    producer = replay(url, "live", clip, virtual=False)
    try:
        deadline = launched + 60
        while time.monotonic() < deadline:
            try:
                session = am.get_hls_streaming_session_url(StreamName="live",
                                                            PlaybackMode="LIVE")
                break
            except am.exceptions.ResourceNotFoundException:
                time.sleep(0.02)  # polling interval inside a bounded deadline
        stored = time.monotonic()
        master = session["HLSStreamingSessionURL"]
        base = master.rsplit("/", 1)[0]
        media = get(base + "/" + get(master).decode().strip().splitlines()[-1]).decode()
        first = next(line for line in media.splitlines() if line.startswith("getMP4Media"))
        get(base + "/" + first)
        served, wall = time.monotonic(), time.time()
        listed = am.list_fragments(StreamName="live")["Fragments"]
        oldest = min(f["ProducerTimestamp"].timestamp() for f in listed)
        return stored - launched, served - stored, wall - oldest
    finally:
        producer.kill()
        producer.wait()


def viewers_cpu(url, pid, container, n=4, seconds=20):
    am = clients(url)
    frags = am.list_fragments(StreamName="stored")["Fragments"]
    start = min(f["ProducerTimestamp"] for f in frags)
    end = max(f["ProducerTimestamp"] for f in frags)
    procs = []
    for _ in range(n):
        hls = am.get_hls_streaming_session_url(
            StreamName="stored", PlaybackMode="ON_DEMAND", ContainerFormat=container,
            HLSFragmentSelector={"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                                 "TimestampRange": {"StartTimestamp": start,
                                                    "EndTimestamp": end}})
        procs.append(subprocess.Popen(
            ["ffmpeg", "-v", "error", "-re", "-i", hls["HLSStreamingSessionURL"], "-c", "copy",
             "-t", str(seconds), "-f", "null", "-"]))
    before, t0 = cpu_seconds(pid), time.monotonic()
    for p in procs:
        p.wait()
    used, wall = cpu_seconds(pid) - before, time.monotonic() - t0
    return 100 * used / wall


def images_cost(url, size):
    am = clients(url)
    frags = am.list_fragments(StreamName="stored")["Fragments"]
    start = min(f["ProducerTimestamp"] for f in frags)
    kw = dict(StreamName="stored", ImageSelectorType="PRODUCER_TIMESTAMP",
              StartTimestamp=start.timestamp() + 1, EndTimestamp=start.timestamp() + 25,
              SamplingInterval=1000, Format="JPEG", MaxResults=25)
    if size:
        kw.update(WidthPixels=size[0], HeightPixels=size[1])
    t0 = time.monotonic()
    got = am.get_images(**kw)["Images"]
    took = time.monotonic() - t0
    n = sum(1 for i in got if "ImageContent" in i)
    return n, took


def main():
    clip = os.path.join(WORK, "1080p.mkv")
    footage(clip, 1920, 1080, 30)
    proc, url = mock()
    try:
        out = {}
        (out["live_first_session_s"], out["live_first_fragment_served_s"],
         out["live_first_frame_age_when_served_s"]) = first_live_fragment(url, clip)
        r = replay(url, "stored", clip, virtual=True)
        r.wait()
        for container in ("FRAGMENTED_MP4", "MPEG_TS"):
            out[f"cpu_4_viewers_{container}_pct"] = viewers_cpu(url, proc.pid, container)
        for size in (None, (320, 180)):
            n, took = images_cost(url, size)
            out[f"get_images_{'full' if not size else 'x'.join(map(str, size))}"] = \
                {"images": n, "seconds": round(took, 3), "ms_per_image": round(1000 * took / n)}
        print(json.dumps(out, indent=1))
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
