"""Open the mock-kvs viewer in headless Chromium (Debian's chromium + chromedriver, driven by
Selenium) and check that the video plays: currentTime advances and the decoded frame count
grows. Prints one JSON line of what it saw; keeps a screenshot.

usage: viewer_plays.py VIEWER_URL SCREENSHOT.png [MIN_SECONDS]
"""
import json
import os
import sys
import time

os.environ.setdefault("SE_AVOID_STATS", "true")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

url, shot = sys.argv[1], sys.argv[2]
min_seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 1.5

opts = webdriver.ChromeOptions()
opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--mute-audio",
            "--autoplay-policy=no-user-gesture-required", "--window-size=1280,1000",
            "--disable-dev-shm-usage", "--no-first-run"):
    opts.add_argument(arg)
service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
driver = webdriver.Chrome(service=service, options=opts)
PROBE = """
const v = document.getElementById('video');
const q = v && v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
const s = window.telescopeViewer || {};
return {t: v ? v.currentTime : -1, frames: q ? q.totalVideoFrames : -1,
        dropped: q ? q.droppedVideoFrames : -1, state: s.state || '', mode: s.mode || '',
        errors: s.errors || [], thumbnails: s.thumbnails || 0, playing_ms: s.playingMs || 0,
        stamp: (document.getElementById('stamp') || {}).textContent || '',
        fragment: (document.getElementById('fragment') || {}).textContent || '',
        width: v ? v.videoWidth : 0, height: v ? v.videoHeight : 0};
"""
try:
    driver.get(url)
    deadline = time.monotonic() + 60
    first = None
    seen = driver.execute_script(PROBE)
    while time.monotonic() < deadline:
        seen = driver.execute_script(PROBE)
        if seen["errors"]:
            break
        if first is None and seen["t"] > 0 and seen["frames"] > 0:
            first = seen
        if (first and seen["t"] >= first["t"] + min_seconds
                and seen["frames"] > first["frames"] and seen["thumbnails"] > 0):
            break
        time.sleep(0.2)  # polling interval inside a bounded deadline
    driver.save_screenshot(shot)
    print(json.dumps({"first": first, "last": seen}))
finally:
    driver.quit()
