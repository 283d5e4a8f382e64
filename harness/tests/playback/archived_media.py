"""The archived-media APIs of a mock-kvs driven by boto3 and the AWS CLI: session URLs (HLS
fMP4 and TS, DASH), a clip and images written to OUTDIR, and every documented error checked
(type and HTTP status). Prints one JSON object for the test to check the media with ffprobe.

usage: archived_media.py ENDPOINT STREAM OUTDIR
"""
import base64
import datetime
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import boto3
from botocore.exceptions import ClientError

url, stream, outdir = sys.argv[1], sys.argv[2], sys.argv[3]
session = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s",
                                region_name="us-east-1")
kv = session.client("kinesisvideo", endpoint_url=url)
am = session.client("kinesis-video-archived-media", endpoint_url=url)
out = {"errors": {}}

# The data endpoint of each archived-media API is this server.
for api in ("GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL", "GET_CLIP",
            "GET_IMAGES"):
    assert kv.get_data_endpoint(StreamName=stream, APIName=api)["DataEndpoint"] == url, api

fragments = am.list_fragments(StreamName=stream)["Fragments"]
fragments.sort(key=lambda f: f["ProducerTimestamp"])
first, last = fragments[0], fragments[-1]
out["fragments"] = [[f["FragmentNumber"], f["ProducerTimestamp"].timestamp()] for f in fragments]
start = first["ProducerTimestamp"]
# boto3 sends whole seconds: a range from the second before to a second after the last.
begin = start - datetime.timedelta(seconds=1)
end = last["ProducerTimestamp"] + datetime.timedelta(seconds=2)
rng = {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
       "TimestampRange": {"StartTimestamp": begin, "EndTimestamp": end}}


def hls(**kw):
    return am.get_hls_streaming_session_url(StreamName=stream, **kw)["HLSStreamingSessionURL"]


out["hls_fmp4"] = hls(PlaybackMode="ON_DEMAND", HLSFragmentSelector=rng,
                      DisplayFragmentTimestamp="ALWAYS")
out["hls_ts"] = hls(PlaybackMode="ON_DEMAND", HLSFragmentSelector=rng, ContainerFormat="MPEG_TS")
out["dash"] = am.get_dash_streaming_session_url(
    StreamName=stream, PlaybackMode="ON_DEMAND", DASHFragmentSelector=rng,
    MaxManifestFragmentResults=1000)["DASHStreamingSessionURL"]
assert "/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=" in out["hls_fmp4"]
assert "/dash/v1/getDASHManifest.mpd?SessionToken=" in out["dash"]

clip = am.get_clip(StreamName=stream, ClipFragmentSelector=rng)
assert clip["ContentType"] == "video/mp4", clip["ContentType"]
with open(os.path.join(outdir, "clip.mp4"), "wb") as f:
    f.write(clip["Payload"].read())

# Images: JPEG at a size, paged; PNG at the stream's own size.
images, token, pages = [], None, 0
while True:
    kw = dict(StreamName=stream, ImageSelectorType="PRODUCER_TIMESTAMP", StartTimestamp=begin,
              EndTimestamp=end, SamplingInterval=500, Format="JPEG",
              FormatConfig={"JPEGQuality": "60"}, WidthPixels=160, HeightPixels=90,
              MaxResults=4)
    if token:
        kw["NextToken"] = token
    page = am.get_images(**kw)
    pages += 1
    assert len(page["Images"]) <= 4
    images += page["Images"]
    token = page.get("NextToken")
    if not token:
        break
out["image_pages"] = pages
out["images"] = []
for i, img in enumerate(images):
    entry = {"t": img["TimeStamp"].timestamp(), "error": img.get("Error")}
    if "ImageContent" in img:
        path = os.path.join(outdir, f"image{i}.jpg")
        with open(path, "wb") as f:
            f.write(base64.b64decode(img["ImageContent"]))
        entry["path"] = path
    out["images"].append(entry)
inside = start + datetime.timedelta(seconds=1)  # a whole second inside the first fragment
png = am.get_images(StreamName=stream, ImageSelectorType="PRODUCER_TIMESTAMP",
                    StartTimestamp=inside, EndTimestamp=inside, SamplingInterval=3000,
                    Format="PNG")["Images"]
out["png"] = os.path.join(outdir, "image.png")
with open(out["png"], "wb") as f:
    f.write(base64.b64decode(png[0]["ImageContent"]))


def expect(name, call, code, status):
    try:
        call()
    except ClientError as e:
        got = (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
        assert got == (code, status), f"{name}: {got}, wanted {(code, status)}"
        out["errors"][name] = code
        return
    raise AssertionError(f"{name}: no error, wanted {code}")


long_ago = {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": datetime.datetime(2001, 1, 1),
                               "EndTimestamp": datetime.datetime(2001, 1, 1, 1)}}
kv.create_stream(StreamName=stream + "-kept-nothing")  # retention 0
expect("unknown stream", lambda: am.get_hls_streaming_session_url(
    StreamName="no-such-stream"), "ResourceNotFoundException", 404)
expect("unknown stream (DASH)", lambda: am.get_dash_streaming_session_url(
    StreamName="no-such-stream"), "ResourceNotFoundException", 404)
expect("unknown stream (clip)", lambda: am.get_clip(
    StreamName="no-such-stream", ClipFragmentSelector=rng), "ResourceNotFoundException", 404)
expect("unknown stream (images)", lambda: am.get_images(
    StreamName="no-such-stream", ImageSelectorType="PRODUCER_TIMESTAMP", StartTimestamp=begin,
    EndTimestamp=end, SamplingInterval=1000, Format="JPEG"), "ResourceNotFoundException", 404)
expect("no media in range", lambda: hls(PlaybackMode="ON_DEMAND", HLSFragmentSelector=long_ago),
       "ResourceNotFoundException", 404)
expect("no media in range (clip)", lambda: am.get_clip(
    StreamName=stream, ClipFragmentSelector=long_ago), "ResourceNotFoundException", 404)
expect("no retention", lambda: am.get_hls_streaming_session_url(
    StreamName=stream + "-kept-nothing"), "NoDataRetentionException", 400)
expect("no retention (images)", lambda: am.get_images(
    StreamName=stream + "-kept-nothing", ImageSelectorType="PRODUCER_TIMESTAMP",
    StartTimestamp=begin, EndTimestamp=end, SamplingInterval=1000, Format="JPEG"),
    "NoDataRetentionException", 400)
expect("ON_DEMAND without a range", lambda: hls(PlaybackMode="ON_DEMAND"),
       "InvalidArgumentException", 400)
expect("LIVE with a range", lambda: hls(PlaybackMode="LIVE", HLSFragmentSelector=rng),
       "InvalidArgumentException", 400)
expect("end before start", lambda: hls(PlaybackMode="ON_DEMAND", HLSFragmentSelector={
    "FragmentSelectorType": "PRODUCER_TIMESTAMP",
    "TimestampRange": {"StartTimestamp": end, "EndTimestamp": begin}}),
    "InvalidArgumentException", 400)
expect("range over 24 hours", lambda: am.get_clip(StreamName=stream, ClipFragmentSelector={
    "FragmentSelectorType": "PRODUCER_TIMESTAMP",
    "TimestampRange": {"StartTimestamp": begin,
                       "EndTimestamp": begin + datetime.timedelta(hours=25)}}),
    "InvalidArgumentException", 400)
expect("images over 300 s", lambda: am.get_images(
    StreamName=stream, ImageSelectorType="PRODUCER_TIMESTAMP", StartTimestamp=begin,
    EndTimestamp=begin + datetime.timedelta(seconds=301), SamplingInterval=1000,
    Format="JPEG"), "InvalidArgumentException", 400)
expect("sampling under 200 ms", lambda: am.get_images(
    StreamName=stream, ImageSelectorType="PRODUCER_TIMESTAMP", StartTimestamp=begin,
    EndTimestamp=end, SamplingInterval=100, Format="JPEG"), "InvalidArgumentException", 400)
expect("width without height", lambda: am.get_images(
    StreamName=stream, ImageSelectorType="PRODUCER_TIMESTAMP", StartTimestamp=begin,
    EndTimestamp=end, SamplingInterval=1000, Format="JPEG", WidthPixels=100),
    "ValidationException", 400)
expect("JPEG quality out of range", lambda: am.get_images(
    StreamName=stream, ImageSelectorType="PRODUCER_TIMESTAMP", StartTimestamp=begin,
    EndTimestamp=end, SamplingInterval=1000, Format="JPEG",
    FormatConfig={"JPEGQuality": "101"}), "InvalidArgumentException", 400)

# Session resources refuse a token that is not a session's.
base = out["hls_fmp4"].split("?")[0]
for bad in ("0" * 160, "nonsense"):
    try:
        urllib.request.urlopen(f"{base}?SessionToken={bad}", timeout=30)
        raise AssertionError("an unknown session token was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 403 and e.headers["x-amzn-ErrorType"] == "NotAuthorizedException", e
out["errors"]["unknown session token"] = "NotAuthorizedException"

# The AWS CLI, unchanged, against the same endpoint.
cli = [sys.executable, "-m", "awscli", "--endpoint-url", url, "--region", "us-east-1",
       "kinesis-video-archived-media"]
env = dict(os.environ, AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s")
sel = json.dumps({"FragmentSelectorType": "PRODUCER_TIMESTAMP", "TimestampRange": {
    "StartTimestamp": begin.timestamp(), "EndTimestamp": end.timestamp()}})
got = json.loads(subprocess.run(cli + ["get-hls-streaming-session-url", "--stream-name", stream,
                                       "--playback-mode", "ON_DEMAND",
                                       "--hls-fragment-selector", sel],
                                check=True, capture_output=True, env=env).stdout)
out["cli_hls"] = got["HLSStreamingSessionURL"]
out["cli_clip"] = os.path.join(outdir, "cli-clip.mp4")
subprocess.run(cli + ["get-clip", "--stream-name", stream, "--clip-fragment-selector", sel,
                      out["cli_clip"]], check=True, capture_output=True, env=env)
got = json.loads(subprocess.run(cli + ["get-images", "--stream-name", stream,
                                       "--image-selector-type", "PRODUCER_TIMESTAMP",
                                       "--start-timestamp", str(int(inside.timestamp())),
                                       "--end-timestamp", str(int(inside.timestamp()) + 1),
                                       "--sampling-interval", "1000", "--format", "PNG"],
                                check=True, capture_output=True, env=env).stdout)
out["cli_images"] = sum(1 for i in got["Images"] if "ImageContent" in i)
print(json.dumps(out, default=str))
