"""Manifest features of published Panorama applications beyond the basic graph: network
routing rules, array-typed ports, the panorama-cli file-source camera package, cameras
launched on a signal, shell-script entry points, and the run's report page."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from test_panorama import CAMERA, LOOP, app_dir, one_line, report, run_app


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def code_interface(root, change):
    pkg = root / "packages" / "111122223333-CODE-1.0" / "package.json"
    doc = json.loads(pkg.read_text())
    change(doc["nodePackage"]["interfaces"][0])
    pkg.write_text(json.dumps(doc))


SERVE_AND_CALL_ITSELF = """
    import http.server, threading, urllib.request
    import panoramasdk

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"hello from the container port"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", CONTAINER), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    node = panoramasdk.node()
    # As the developer guide's debug server does: call itself at the device's host port.
    got = urllib.request.urlopen(f"http://127.0.0.1:{HOST}/", timeout=10).read()
    with open("/opt/aws/panorama/storage/got.txt", "wb") as f:
        f.write(got)
    while True:
        node.outputs.video_out.put(node.inputs.video_in.get())
"""


def test_a_routing_rule_forwards_the_host_port_to_the_app(tmp_path):
    container, host = free_port(), free_port()
    src = SERVE_AND_CALL_ITSELF.replace("CONTAINER", str(container)).replace("HOST", str(host))

    def rule(g):
        g["nodeGraph"]["networkRoutingRules"] = [
            {"node": "code_node", "containerPort": container, "hostPort": host,
             "decorator": {"title": "Listener", "description": "HTTP"}}]

    root = app_dir(tmp_path, src, graph_extra=rule)
    code_interface(root, lambda i: i.update(
        network={"inboundPorts": [{"port": container, "description": "http"}]}))
    r = run_app([root, *CAMERA, "--report", tmp_path / "report"], tmp_path)
    assert r.returncode == 0, r.stderr
    got = (tmp_path / "run" / "storage" / "got.txt").read_text()
    assert got == "hello from the container port"
    assert f"forwards 127.0.0.1:{host}" in r.stdout
    assert any(f"host port {host}" in n for n in report(tmp_path)["notes"])


def test_a_host_port_in_use_is_a_note_not_a_failure(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        host = taken.getsockname()[1]
        root = app_dir(tmp_path, LOOP, graph_extra=lambda g: g["nodeGraph"].update(
            networkRoutingRules=[{"node": "code_node", "containerPort": 80, "hostPort": host}]))
        code_interface(root, lambda i: i.update(network={"inboundPorts": [{"port": 80}]}))
        r = run_app([root, *CAMERA, "--report", tmp_path / "report"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"cannot forward 127.0.0.1:{host} to port 80" in r.stdout
    assert any("cannot forward" in n for n in report(tmp_path)["notes"])


@pytest.mark.parametrize("rule,declared,needle", [
    ({"node": "ghost", "containerPort": 80}, [80], "no node `ghost`"),
    ({"node": "code_node", "containerPort": 81}, [80], "declares no such inbound port"),
    ({"node": "code_node", "containerPort": 80, "hostPort": 70000}, [80], "hostPort"),
    ({"node": "camera_node", "containerPort": 80}, [80], "not a code node"),
    ({"node": "code_node"}, [80], "needs a containerPort"),
    ({"node": "code_node", "containerPort": 80}, "x", "inboundPorts"),
])
def test_bad_routing_rules_are_one_line(tmp_path, rule, declared, needle):
    root = app_dir(tmp_path, LOOP, graph_extra=lambda g: g["nodeGraph"].update(
        networkRoutingRules=[rule]))
    network = {"inboundPorts": [{"port": p} for p in declared]} if isinstance(declared, list) \
        else {"inboundPorts": declared}
    code_interface(root, lambda i: i.update(network=network))
    one_line(run_app([root, *CAMERA], tmp_path), needle)


def test_the_runner_alone_says_how_to_get_the_report_page(tmp_path):
    r = run_app([app_dir(tmp_path, LOOP), *CAMERA, "--report", tmp_path / "report"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"(the page: telescope report {tmp_path / 'report'})" in r.stdout


def test_an_override_routing_rule_replaces_the_graph_s(tmp_path):
    root = app_dir(tmp_path, LOOP, graph_extra=lambda g: g["nodeGraph"].update(
        networkRoutingRules=[{"node": "code_node", "containerPort": 80, "hostPort": 8080}]))
    code_interface(root, lambda i: i.update(network={"inboundPorts": [{"port": 80}]}))
    override = tmp_path / "override.json"
    override.write_text(json.dumps({"nodeGraphOverrides": {
        "envelopeVersion": "2021-01-01",
        "networkRoutingRules": [{"node": "code_node", "containerPort": 80}]}}))
    r = run_app([root, *CAMERA, "--override", override, "--report", tmp_path / "report"],
                tmp_path)
    assert r.returncode == 0, r.stderr
    (note,) = report(tmp_path)["notes"]
    assert "listens on port 80 of this host itself" in note and "8080" not in note


ARRAY_PORTS = """
    import panoramasdk
    node = panoramasdk.node()
    assert node.inputs.zones.get() == ["door", "desk"], node.inputs.zones.get()
    assert node.inputs.limits.get() == [0.5, 2.0], node.inputs.limits.get()
    while True:
        node.outputs.video_out.put(node.inputs.video_in.get())
"""


def test_array_typed_ports_give_their_default_as_a_list(tmp_path):
    root = app_dir(tmp_path, ARRAY_PORTS)
    code_interface(root, lambda i: i["inputs"].extend([
        {"name": "zones", "type": "string[]", "default": ["door", "desk"]},
        {"name": "limits", "type": "float32[]", "default": [0.5, 2]}]))
    r = run_app([root, *CAMERA, "--report", tmp_path / "report"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert report(tmp_path)["cameras"][0]["delivered"] == 20


@pytest.mark.parametrize("port,needle", [
    ({"name": "zones", "type": "string[]", "default": "door"}, "is not a string[]"),
    ({"name": "zones", "type": "int32[]", "default": [1, "two"]}, "is not a int32"),
    ({"name": "zones", "type": "string[][]"}, "unknown type `string[][]`"),
    ({"name": "zones", "type": "media[]"}, "unknown type `media[]`"),
])
def test_bad_array_ports_are_one_line(tmp_path, port, needle):
    root = app_dir(tmp_path, LOOP)
    code_interface(root, lambda i: i["inputs"].append(port))
    one_line(run_app([root, *CAMERA], tmp_path), needle)


def test_a_scalar_parameter_cannot_feed_an_array_port(tmp_path):
    root = app_dir(tmp_path, LOOP, params={"zones": ("string", "door")})
    code_interface(root, lambda i: [p.update(type="string[]") for p in i["inputs"]
                                    if p["name"] == "zones"])
    one_line(run_app([root, *CAMERA], tmp_path), "takes string[]")


def clip(path, frames=15):
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc=size=64x48:rate=10", "-frames:v", str(frames), "-c:v", "mjpeg",
                    str(path)], check=True, timeout=60)
    return path


def test_the_cli_file_source_package_and_an_on_signal_camera(tmp_path):
    # panorama-cli's `source/video/file` package: no category, a system asset, `sourceNames`
    # a string[] naming the footage (relative to the package); launched on a signal.
    def file_camera(g):
        g = g["nodeGraph"]
        g["packages"].append({"name": "111122223333::FILE_CAM", "version": "1.0"})
        for n in g["nodes"]:
            if n["name"] == "camera_node":
                n["interface"] = "111122223333::FILE_CAM.default"
                n["launch"] = "onSignal"
        for e in g["edges"]:
            if e["producer"] == "camera_node.video_out":
                e["producer"] = "camera_node.videoOut"

    root = app_dir(tmp_path, LOOP, graph_extra=file_camera)
    pkg = root / "packages" / "111122223333-FILE_CAM-1.0"
    pkg.mkdir()
    clip(pkg / "lobby.avi")
    (pkg / "package.json").write_text(json.dumps({"nodePackage": {
        "envelopeVersion": "2021-01-01",
        "assets": [{"name": "default", "implementations": [
            {"type": "system", "assetUri": "source/video/file"}]}],
        "interfaces": [{"name": "default", "asset": "default",
                        "inputs": [{"name": "sourceNames", "type": "string[]",
                                    "default": ["lobby.avi"]},
                                   {"name": "loopCount", "type": "int32", "default": 0},
                                   {"name": "fps", "type": "float32", "default": 0}],
                        "outputs": [{"name": "videoOut", "type": "media"}]}]}}))
    r = run_app([root, "--virtual-clock", "--report", tmp_path / "report"], tmp_path)
    assert r.returncode == 0, r.stderr
    rep = report(tmp_path)
    (cam,) = rep["cameras"]
    assert cam["delivered"] == 15 and cam["source"].endswith("lobby.avi"), cam
    assert "launch onSignal" in r.stdout and "as if resumed at once" in r.stdout
    assert any("onSignal" in n for n in rep["notes"])


def test_an_unknown_launch_is_one_line(tmp_path):
    def launch(g):
        g["nodeGraph"]["nodes"][1]["launch"] = "onMonday"

    one_line(run_app([app_dir(tmp_path, LOOP, graph_extra=launch), *CAMERA], tmp_path),
             'launch "onMonday" is not one of onAppStart, onSignal, onDemand')


SHELL_APP = """
    import logging, os, sys
    import panoramasdk
    logging.basicConfig(filename="/opt/aws/panorama/logs/app.log", level=logging.INFO)
    assert os.environ["GREETING"] == "hello", os.environ.get("GREETING")
    assert sys.argv[1:] == ["--mode", "fast"], sys.argv
    assert os.path.exists("/panorama/setup.done")
    logging.info("started from the script")
    node = panoramasdk.node()
    while True:
        node.outputs.video_out.put(node.inputs.video_in.get())
"""


def shell_app(tmp_path, script, source=SHELL_APP):
    root = app_dir(tmp_path, source, descriptor={"runtimeDescriptor": {
        "envelopeVersion": "2021-01-01",
        "entry": {"path": "bash", "name": "/panorama/run_app.sh"}}})
    (root / "packages" / "111122223333-CODE-1.0" / "src" / "run_app.sh").write_text(
        textwrap.dedent(script))
    return root


def test_a_shell_entry_runs_its_script_and_the_python_it_starts(tmp_path):
    root = shell_app(tmp_path, """
        set -e
        export GREETING=hello
        touch /panorama/setup.done
        python3 -c 'print("setup step ran")'
        python3 -m pip --version > /panorama/pip.txt
        exec python3.8 -u /panorama/app.py --mode fast
    """)
    r = run_app([root, *CAMERA, "--report", tmp_path / "report"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "setup step ran" in r.stdout
    assert report(tmp_path)["cameras"][0]["delivered"] == 20
    assert "started from the script" in (tmp_path / "run" / "logs" / "app.log").read_text()
    # `python3 -m pip` is pip, not the app.
    code = root / "packages" / "111122223333-CODE-1.0" / "src"
    assert (code / "pip.txt").read_text().startswith("pip ")


def test_a_shell_entry_may_start_the_app_as_a_module(tmp_path):
    root = shell_app(tmp_path, "export GREETING=hello\ncd /panorama\n"
                               "touch setup.done\nexec python3 -m app --mode fast\n")
    r = run_app([root, *CAMERA, "--report", tmp_path / "report"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert report(tmp_path)["cameras"][0]["delivered"] == 20


def test_a_shell_entry_s_app_failure_is_the_run_s(tmp_path):
    root = shell_app(tmp_path, "python3 /panorama/app.py\necho after\n",
                     source="raise RuntimeError('broken app')\n")
    r = run_app([root, *CAMERA], tmp_path)
    assert r.returncode == 2, r.stderr
    assert "RuntimeError: broken app" in r.stderr


def test_a_shell_entry_that_never_starts_python_is_one_line(tmp_path):
    root = shell_app(tmp_path, "echo preparing\nexit 3\n")
    one_line(run_app([root, *CAMERA], tmp_path), "exited with 3 without starting the app")


def test_an_entry_that_is_neither_python_nor_a_shell_is_one_line(tmp_path):
    root = app_dir(tmp_path, LOOP, descriptor={"runtimeDescriptor": {
        "envelopeVersion": "2021-01-01", "entry": {"path": "node", "name": "/panorama/app.js"}}})
    one_line(run_app([root, *CAMERA], tmp_path), "`node` is neither a Python interpreter")


def test_telescope_run_app_writes_a_report_page_and_report_re_renders_it(tmp_path):
    binary = os.environ.get("TELESCOPE_BIN")
    if not binary:
        pytest.skip("TELESCOPE_BIN not set (ci/python sets it)")
    root = app_dir(tmp_path, LOOP)
    out = tmp_path / "report"
    r = subprocess.run([binary, "run-app", "--python", sys.executable, str(root), *CAMERA,
                        "--run-dir", str(tmp_path / "run"), f"--report={out}",
                        "--budget-rss", "1"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 1, r.stderr  # the run went through; its RSS budget is broken
    assert f"run-app: report {out}/report.html" in r.stdout
    assert "telescope report" not in r.stdout  # the hint is for python -m panoramasdk run
    page = (out / "report.html").read_text()
    assert "<td>camera_node</td><td>pattern:ball@64x48@10</td>" in page
    assert "class=\"fail\">FAIL" in page and "<svg" in page
    (out / "report.html").unlink()
    again = subprocess.run([binary, "report", str(out)], capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 0, again.stderr
    assert (out / "report.html").read_text() == page
    # A run that fails before it starts leaves no page (and not the last run's).
    (out / "report.html").unlink()
    bad = subprocess.run([binary, "run-app", "--python", sys.executable, str(tmp_path / "nope"),
                          "--report", str(out)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and not (out / "report.html").exists()


SEEN = """
    import json
    import panoramasdk
    node = panoramasdk.node()
    seen = []
    try:
        while True:
            streams = node.inputs.video_in.get()
            seen.append([[s.stream_id, s.time_stamp[0] * 1000000 + s.time_stamp[1]]
                         for s in streams])
            node.outputs.video_out.put(streams)
    finally:
        with open("/opt/aws/panorama/storage/seen.json", "w") as f:
            json.dump(seen, f)
"""


def multicam_override(tmp_path):
    # The developer guide's override-multicam.json: CAMERA_B waits for a signal.
    override = tmp_path / "override.json"
    override.write_text(json.dumps({"nodeGraphOverrides": {
        "envelopeVersion": "2021-01-01",
        "packages": [{"name": "123456789012::CAMERA_A", "version": "1.0"},
                     {"name": "123456789012::CAMERA_B", "version": "1.0"}],
        "nodes": [{"name": "CAMERA_A", "interface": "123456789012::CAMERA_A.CAMERA_A",
                   "launch": "onAppStart"},
                  {"name": "CAMERA_B", "interface": "123456789012::CAMERA_B.CAMERA_B",
                   "launch": "onSignal"}],
        "nodeOverrides": [{"replace": "camera_node",
                           "with": [{"name": "CAMERA_A"}, {"name": "CAMERA_B"}]}]}}))
    return ["--override", override, "--camera", "CAMERA_A=pattern:ball@64x48@10",
            "--camera", "CAMERA_B=pattern:smpte@64x48@10", "--virtual-clock", "--duration", "2"]


def test_an_on_signal_camera_stays_paused_until_resumed(tmp_path):
    root = app_dir(tmp_path, SEEN)
    r = run_app([root, *multicam_override(tmp_path), "--resume", "CAMERA_B@1",
                 "--report", tmp_path / "report"], tmp_path)
    assert r.returncode == 0, r.stderr
    seen = json.loads((tmp_path / "run" / "storage" / "seen.json").read_text())
    for batch in seen:
        ids = [s for s, _ in batch]
        assert "CAMERA_A" in ids, batch
        assert all(t >= 1_000_000 for s, t in batch if s == "CAMERA_B"), batch
    assert sum(1 for b in seen for s, _ in b if s == "CAMERA_B") == 10
    cams = {c["name"]: c for c in report(tmp_path)["cameras"]}
    assert cams["CAMERA_A"]["delivered"] == 20 and "paused_frames" not in cams["CAMERA_A"]
    assert cams["CAMERA_B"]["delivered"] == 10 and cams["CAMERA_B"]["paused_frames"] == 10
    assert "stays paused until 1 s" in r.stdout
    # Without --resume it starts with the run, as if resumed at once (said so).
    r = run_app([root, *multicam_override(tmp_path), "--report", tmp_path / "report"],
                tmp_path)
    assert r.returncode == 0, r.stderr
    assert [c["delivered"] for c in report(tmp_path)["cameras"]] == [20, 20]
    assert "--resume CAMERA_B@SECONDS" in r.stdout


def test_an_app_whose_only_camera_is_paused_waits_for_it(tmp_path):
    def on_signal(g):
        g["nodeGraph"]["nodes"][1]["launch"] = "onSignal"

    root = app_dir(tmp_path, SEEN, graph_extra=on_signal)
    r = run_app([root, *CAMERA, "--resume", "camera_node@1.5", "--report",
                 tmp_path / "report"], tmp_path)
    assert r.returncode == 0, r.stderr
    seen = json.loads((tmp_path / "run" / "storage" / "seen.json").read_text())
    assert len(seen) == 5 and seen[0][0][1] == 1_500_000, seen
    (cam,) = report(tmp_path)["cameras"]
    assert cam["delivered"] == 5 and cam["paused_frames"] == 15


@pytest.mark.parametrize("resume,needle", [
    ("CAMERA_A@1", "`CAMERA_A` is not launched onSignal"),
    ("CAMERA_C@1", "no camera node `CAMERA_C`"),
    ("CAMERA_B", "expected NODE@SECONDS"),
    ("CAMERA_B@soon", "expected NODE@SECONDS"),
    ("CAMERA_B@-1", "expected NODE@SECONDS"),
])
def test_bad_resumes_are_one_line(tmp_path, resume, needle):
    root = app_dir(tmp_path, LOOP)
    one_line(run_app([root, *multicam_override(tmp_path), "--resume", resume], tmp_path),
             needle)
