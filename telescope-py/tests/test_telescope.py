"""The Python package end to end: numpy frames in, files and RTSP streams out, checked with
ffprobe; annotations drawn on numpy frames; the compat API; errors as Python exceptions."""

import json
import subprocess
import threading
import time

import numpy as np
import pytest

import telescope
from telescope import annotation
from telescope.compat import FileTelescope, KVSInlineCredentialsHandler


def probe(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=width,height,nb_read_frames,r_frame_rate", "-of", "json", str(path)],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout
    s = json.loads(out)["streams"][0]
    return int(s["width"]), int(s["height"]), int(s["nb_read_frames"]), s["r_frame_rate"]


def frames(n, h=120, w=160, gray=False):
    rng = np.random.default_rng(7)
    base = rng.integers(0, 255, size=(h, w) if gray else (h, w, 3), dtype=np.uint8)
    for i in range(n):
        f = base.copy()
        f[:, (i * 3) % w] = 255
        yield f


@pytest.mark.parametrize("kind", ["bgr", "gray", "crop", "strided", "fortran"])
def test_frames_of_every_layout_make_a_file(tmp_path, kind):
    out = tmp_path / f"{kind}.mkv"
    t = telescope.Telescope(sinks=[f"file:{out}"], fps=10, width=160, height=120)
    with t:
        for f in frames(30, h=240, w=320, gray=(kind == "gray")):
            if kind == "crop":
                f = f[20:140, 40:200]           # row stride of the big image
            elif kind == "strided":
                f = f[::2, ::2]                 # pixels not adjacent: copied
            elif kind == "fortran":
                f = np.asfortranarray(f[:120, :160])
            elif kind in ("bgr", "gray"):
                f = f[:120, :160].copy()
            assert t.put(f) is True
    stats = t.stats()
    # Put at machine speed, the frames span
    # a few milliseconds of real time, so the 10 fps output holds what that span covers.
    # put never blocks: what the queue could not hold was dropped, and counted.
    assert stats["frames_pushed"] + sum(stats["dropped"].values()) == 30, stats
    assert stats["frames_pushed"] >= 8, stats
    w, h, n, rate = probe(out)
    assert (w, h, rate) == (160, 120, "10/1")
    assert n == stats["frames_out"] >= 1
    # Frames are copied into recycled buffers: fewer allocations than frames.
    assert stats["buffers_allocated"] <= 8 + 8, stats


def test_bad_frames_raise_value_error_and_nothing_else_breaks(tmp_path):
    t = telescope.Telescope(sinks=[f"file:{tmp_path / 'x.mkv'}"], fps=10)
    t.start()
    with pytest.raises(ValueError, match="uint8"):
        t.put(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        t.put(np.zeros((10, 10, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="shape"):
        t.put(np.zeros((0, 10, 3), dtype=np.uint8))
    with pytest.raises(ValueError):
        t.put([[1, 2, 3]])
    assert t.put(np.zeros((48, 64, 3), dtype=np.uint8))
    stats = t.stop()
    assert stats["frames_put"] == 1


def test_configuration_errors_are_telescope_errors(tmp_path):
    with pytest.raises(telescope.ConfigError, match="encoder profile"):
        telescope.Telescope(sinks=[f"file:{tmp_path / 'p.mkv'}"], profile="fastest")
    with pytest.raises(telescope.ConfigError, match="sink"):
        telescope.Telescope(sinks=[])
    with pytest.raises(telescope.ConfigError):
        telescope.Telescope(sinks=["file:/no/such/dir/x.avi"])
    with pytest.raises(telescope.ConfigError):
        telescope.Telescope(sinks=[f"file:{tmp_path / 'a.mkv'}"], width=10)
    assert issubclass(telescope.ConfigError, telescope.TelescopeError)


def test_annotations_draw_on_numpy_frames_and_on_the_stream(tmp_path):
    frame = np.zeros((100, 200, 3), dtype=np.uint8)
    scene = annotation.Scene([
        annotation.Rect((0.25, 0.25, 0.75, 0.75), color="#ffffff", fill=True),
        annotation.BoundingBox((0.05, 0.05, 0.2, 0.5), label="person", confidence=0.9, track_id=3),
        annotation.Label("", (0, 0)),
    ])
    assert annotation.render(scene, frame) == 2
    assert (frame[50, 100] == 255).all()
    assert (frame[95, 195] == 0).all()
    # A crop draws in place into the parent image.
    big = np.zeros((200, 400, 3), dtype=np.uint8)
    annotation.render(scene, big[100:200, 200:400])
    assert (big[150, 300] == 255).all() and (big[50, 100] == 0).all()
    with pytest.raises(ValueError, match="line 1"):
        annotation.Scene.from_json('{"annotations": [}')
    with pytest.raises(ValueError, match="inverted"):
        annotation.render('{"annotations":[{"type":"rect","rect":[0.5,0.5,0.1,0.1]}]}', frame)
    parsed = annotation.Scene.from_json(scene.to_json())
    assert len(parsed) == 3

    out = tmp_path / "drawn.mkv"
    with telescope.Telescope(sinks=[f"file:{out}"], fps=10, width=200, height=100) as t:
        t.set_scene(annotation.Scene([annotation.Rect((0.25, 0.25, 0.75, 0.75), color="#ffffff", fill=True)]))
        for _ in range(10):
            t.put(np.zeros((100, 200, 3), dtype=np.uint8))
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "bgr24", "-"], check=True, capture_output=True, timeout=60).stdout
    decoded = np.frombuffer(raw, dtype=np.uint8).reshape(100, 200, 3)
    assert decoded[50, 100].min() > 230 and decoded[5, 5].max() < 30


def test_an_rtsp_stream_is_read_by_ffprobe():
    server = telescope.RtspServer(port=0, address="127.0.0.1")
    mount = server.mount("/py")
    t = telescope.Telescope(sinks=[mount], fps=10, width=160, height=120)
    t.start()
    stop = threading.Event()

    def feed():
        # Real time, bounded: at most 20 s of frames.
        for f in frames(200):
            if stop.wait(0.1):
                break
            t.put(f)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries",
             "stream=codec_name,width,height", "-of", "json", mount.url],
            check=True, capture_output=True, text=True, timeout=30,
        ).stdout
    finally:
        stop.set()
        feeder.join()
        t.stop()
    s = json.loads(out)["streams"][0]
    assert (s["codec_name"], s["width"], s["height"]) == ("h264", 160, 120)


def test_the_compat_api_writes_a_file_and_hides_secrets(tmp_path):
    out = tmp_path / "compat.mkv"
    t = FileTelescope(str(out))
    t.start_streaming(10, 160, 120)
    for f in frames(20):
        t.put(f)
    stats = t._telescope.stats()
    t.stop_streaming()
    assert stats["frames_put"] == 20
    assert probe(out)[:2] == (160, 120)
    with pytest.raises(telescope.StreamError):
        t.put(next(frames(1)))
    handler = KVSInlineCredentialsHandler("AKIDEXAMPLE", "very-secret")
    assert "very-secret" not in repr(handler)


@pytest.fixture
def mock_kvs():
    """The project's mock-kvs (`telescope mock-kvs`, built by ci/python) on a loopback port."""
    import os
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[2]
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", root / "target"))
    binary = os.environ.get("TELESCOPE_BIN", str(target / "debug" / "telescope"))
    assert os.path.exists(binary), f"{binary} missing: ci/python builds it (cargo build -p harness)"
    proc = subprocess.Popen(
        [binary, "mock-kvs", "--listen", "127.0.0.1:0",
         "--access-key", KVS_KEY, "--secret-key", KVS_SECRET],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("mock-kvs listening on "), line
        yield line.removeprefix("mock-kvs listening on ")
    finally:
        proc.kill()
        proc.wait(timeout=10)


KVS_KEY = "AKIDPYTHONKVS01"
KVS_SECRET = "python-kvs-secret"


def test_a_kvs_stream_into_mock_kvs_is_read_back_with_boto3(tmp_path, mock_kvs):
    import boto3

    creds = {"access_key_id": KVS_KEY, "secret_access_key": KVS_SECRET}
    kvs = telescope.KvsStream("py-lobby", "us-east-1", endpoint=mock_kvs,
                              credentials=creds, create=True)
    assert KVS_SECRET not in repr(kvs)
    n = 50
    with telescope.Telescope(sinks=[kvs], fps=10, width=160, height=120) as t:
        for i, f in enumerate(frames(n)):
            # Recorded footage: its own timeline, every frame kept.
            assert t.put(f, timestamp=i / 10, block=True)
    stats = t.stats()
    assert stats["frames_out"] == n and stats["frames_pushed"] == n, stats
    delivered = kvs.stats()
    assert delivered["fragments"] >= 1 and delivered["persisted"] == delivered["fragments"], delivered
    assert delivered["evicted"] == 0 and delivered["rejected"] == 0, delivered

    # A real AWS client reads it back: boto3 GetDataEndpoint + GetMedia from the earliest.
    session = boto3.session.Session(aws_access_key_id=KVS_KEY, aws_secret_access_key=KVS_SECRET,
                                    region_name="us-east-1")
    control = session.client("kinesisvideo", endpoint_url=mock_kvs)
    endpoint = control.get_data_endpoint(StreamName="py-lobby", APIName="GET_MEDIA")["DataEndpoint"]
    media = session.client("kinesis-video-media", endpoint_url=endpoint)
    got = media.get_media(StreamName="py-lobby", StartSelector={"StartSelectorType": "EARLIEST"})
    fetched = tmp_path / "fetched.mkv"
    fetched.write_bytes(got["Payload"].read())
    w, h, count, _ = probe(fetched)
    assert (w, h, count) == (160, 120, n)

    # The archived-media path: ListFragments a page at a time, then GetMediaForFragmentList.
    endpoint = control.get_data_endpoint(StreamName="py-lobby",
                                         APIName="LIST_FRAGMENTS")["DataEndpoint"]
    archive = session.client("kinesis-video-archived-media", endpoint_url=endpoint)
    selector = {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": 0, "EndTimestamp": 4102444800}}
    numbers, token = [], None
    while True:
        page = archive.list_fragments(StreamName="py-lobby", MaxResults=1,
                                      FragmentSelector=selector,
                                      **({"NextToken": token} if token else {}))
        numbers += [f["FragmentNumber"] for f in page["Fragments"]]
        token = page.get("NextToken")
        if not token:
            break
    assert len(numbers) == delivered["fragments"], numbers
    got = archive.get_media_for_fragment_list(StreamName="py-lobby", Fragments=numbers + ["7"])
    payload = got["Payload"].read()
    assert b"AWS_KINESISVIDEO_ERROR_CODE" in payload, "the unknown fragment is reported"
    listed = tmp_path / "listed.mkv"
    listed.write_bytes(payload)
    assert probe(listed)[:3] == (160, 120, n)


def test_a_rotating_file_sink_writes_a_series_of_files(tmp_path):
    base = tmp_path / "cam.mkv"
    t = telescope.Telescope(sinks=[f"file:{base}?rotate=1s&keep=2"], fps=10, width=160, height=120)
    with t:
        for i, f in enumerate(frames(35)):
            assert t.put(f, timestamp=i / 10, block=True)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["cam-00002.mkv", "cam-00003.mkv"], written
    assert [probe(tmp_path / n)[2] for n in written] == [10, 5]
    with pytest.raises(telescope.ConfigError, match="rotate"):
        telescope.Telescope(sinks=[f"file:{base}?rotate=soon"], fps=10, width=160, height=120)


def test_timestamps_must_be_times(tmp_path):
    t = telescope.Telescope(sinks=[f"file:{tmp_path / 'ts.mkv'}"], fps=10, width=160, height=120)
    f = np.zeros((120, 160, 3), np.uint8)
    with t:
        for bad in (float("nan"), -1.0, float("inf")):
            with pytest.raises(ValueError, match="timestamp"):
                t.put(f, timestamp=bad)
        assert t.put(f, timestamp=0.0)
    assert t.stats()["frames_put"] == 1, "a refused frame is not counted as put"


def test_put_without_copy_streams_the_arrays_own_memory(tmp_path):
    out = tmp_path / "nocopy.mkv"
    n = 30
    arrays = list(frames(n))
    t = telescope.Telescope(sinks=[f"file:{out}"], fps=10, width=160, height=120)
    with t:
        for i, f in enumerate(arrays):
            assert t.put(f, timestamp=i / 10, block=True, copy=False)
        # A strided view cannot be borrowed: it is copied, and still streams.
        assert t.put(arrays[0][:, ::-1], timestamp=n / 10, block=True, copy=False)
    stats = t.stats()
    assert stats["frames_out"] == n + 1, stats
    assert stats["buffers_allocated"] == 1, "only the strided frame was copied"
    assert probe(out)[2] == n + 1
    # The arrays are untouched and still the caller's.
    assert all(a.flags.writeable for a in arrays)


@pytest.mark.parametrize("kwargs, limit", [
    (dict(bitrate_kbps=0), "1-2048000"),
    (dict(bitrate_kbps=5_000_000), "1-2048000"),
    (dict(fps=1e9), "1000"),
    (dict(fps=10, width=100000, height=100000), "16384"),
])
def test_configurations_no_encoder_takes_raise_config_error_naming_the_limit(tmp_path, kwargs, limit):
    with pytest.raises(telescope.ConfigError, match=limit):
        telescope.Telescope(sinks=[f"file:{tmp_path / 'x.mkv'}"], **kwargs)
    assert not (tmp_path / "x.mkv").exists()


def test_a_stream_that_fails_for_good_raises_from_put_and_stop(tmp_path):
    # 1x1 frames: the warmup measures a size no encoder takes, and streaming ends for good.
    t = telescope.Telescope(sinks=[f"file:{tmp_path / 'x.mkv'}"], fps=10)
    t.start()
    tiny = np.zeros((1, 1, 3), dtype=np.uint8)
    t.put(tiny, timestamp=0.0)
    deadline = time.monotonic() + 20
    while t.stats()["state"] != "failed" and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(telescope.StreamError, match="1x1"):
        t.put(tiny, timestamp=0.1)
    with pytest.raises(telescope.StreamError, match="1x1"):
        t.stop()
