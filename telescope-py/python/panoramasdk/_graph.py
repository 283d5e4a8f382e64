"""A Panorama application directory: graph, override manifests, packages and descriptors.

Everything is read and checked before the application starts; every problem is a
``GraphError`` whose message names the file and the node, port or package concerned.
"""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

#: Parameter types and the Python type of their values.
PARAM_TYPES = {"float32": float, "int32": int, "string": str, "boolean": bool}
_STOCK_CAMERA = ("panorama", "abstract_rtsp_media_source")
_STOCK_SINK = ("panorama", "hdmi_data_sink")
_SINK_CATEGORIES = ("media_sink", "data_sink", "hdmi_data_sink")
#: When a package node starts (nodeWithInterface schema); the default is onAppStart.
LAUNCH = ("onAppStart", "onSignal", "onDemand")


def port_type_ok(kind: str) -> bool:
    """``media``, a parameter type, or an array of one (``string[]``, as the file-source
    package template of panorama-cli declares ``sourceNames``)."""
    return kind == "media" or kind in PARAM_TYPES or (
        kind.endswith("[]") and kind[:-2] in PARAM_TYPES)


class GraphError(Exception):
    """The application's manifests are inconsistent or unreadable."""


def _load_json(path: str, what: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise GraphError(f"{what} not found: {path}") from None
    except json.JSONDecodeError as e:
        raise GraphError(f"{what} {path} is not valid JSON: {e.msg} at line {e.lineno}") from None
    except OSError as e:
        raise GraphError(f"cannot read {what} {path}: {e.strerror}") from None


@dataclass
class Port:
    name: str
    type: str
    default: object = None


@dataclass
class Interface:
    package: str
    name: str
    category: str
    asset: Optional[str]
    inputs: List[Port]
    outputs: List[Port]
    #: Container ports the node listens on (``network.inboundPorts``).
    inbound_ports: List[int] = field(default_factory=list)
    package_dir: Optional[str] = None


@dataclass
class Route:
    """A networkRoutingRule: the appliance's ``host_port`` routed to ``container_port`` of
    ``node``'s container (``host_port`` None: not exposed on the host)."""

    node: str
    container_port: int
    host_port: Optional[int]


@dataclass
class Model:
    """A model node: its descriptor's inputs (name -> shape) and framework."""

    node: str
    framework: Optional[str]
    inputs: List[Tuple[str, List[int]]]
    package_dir: Optional[str]


@dataclass
class App:
    root: str
    graph_path: str
    code_node: str
    code_interface: Interface
    code_dir: str
    entry: List[str]
    environment: Dict[str, str]
    #: Camera node names, in graph order, per input port of the code node.
    cameras: Dict[str, List[str]]
    #: Parameter values per input port of the code node.
    params: Dict[str, object]
    #: Output ports of the code node connected to a sink (or declared).
    outputs: List[str]
    models: Dict[str, Model]
    #: Default stream URLs of local camera packages (``streamUrl``), by camera node.
    camera_urls: Dict[str, str] = field(default_factory=dict)
    #: networkRoutingRules of the graph with the overrides' applied.
    routes: List[Route] = field(default_factory=list)
    #: Camera nodes launched onSignal (paused until a signal on the appliance).
    on_signal: List[str] = field(default_factory=list)
    #: What the simulator accepted but does differently from the appliance (one line each:
    #: network routing, cameras launched on a signal...), shown at start and in the report.
    notes: List[str] = field(default_factory=list)

    def all_cameras(self) -> List[str]:
        seen: List[str] = []
        for names in self.cameras.values():
            for n in names:
                if n not in seen:
                    seen.append(n)
        return seen


def _objects(doc: dict, key: str, path: str) -> List[dict]:
    """``doc[key]``: a list of JSON objects (absent: empty), else a GraphError naming it."""
    items = doc.get(key)
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise GraphError(f"{path}: `{key}` must be a list of objects")
    return items


def _edges(doc: dict, path: str) -> List[dict]:
    edges = _objects(doc, "edges", path)
    for e in edges:
        for side in ("producer", "consumer"):
            if not isinstance(e.get(side), str) or not e[side]:
                raise GraphError(f"{path}: edge {json.dumps(e)} needs a {side} (NODE.PORT)")
    return [dict(e) for e in edges]


def _split_ref(ref: str, where: str) -> Tuple[str, str, Optional[str]]:
    m = re.fullmatch(r"([$A-Za-z0-9_]+)::([A-Za-z0-9_\-]+)(?:\.([A-Za-z0-9_\-]+))?", ref or "")
    if not m:
        raise GraphError(f"{where}: `{ref}` is not ACCOUNT::PACKAGE[.INTERFACE]")
    return m.group(1), m.group(2), m.group(3)


def _ports(items, where: str) -> List[Port]:
    out = []
    if items is not None and not isinstance(items, list):
        raise GraphError(f"{where}: ports must be a list")
    for p in items or []:
        if not isinstance(p, dict) or not isinstance(p.get("name"), str) or "type" not in p:
            raise GraphError(f"{where}: a port needs a name and a type")
        if not isinstance(p["type"], str):
            raise GraphError(f"{where}: port {p['name']} has type {json.dumps(p['type'])}, not a type name")
        if not port_type_ok(p["type"]):
            raise GraphError(f"{where}: port {p['name']} has unknown type `{p['type']}` "
                             "(media, boolean, int32, float32, string, or an array of one: "
                             "string[]...)")
        out.append(Port(p["name"], p["type"], p.get("default")))
    return out


def _inbound_ports(network, where: str) -> List[int]:
    if network is None:
        return []
    items = network.get("inboundPorts") if isinstance(network, dict) else None
    if not isinstance(network, dict) or not isinstance(items or [], list):
        raise GraphError(f"{where}: `network` must be an object with a list `inboundPorts`")
    out = []
    for p in items or []:
        port = p.get("port") if isinstance(p, dict) else None
        if not _is_port(port):
            raise GraphError(f"{where}: inbound port {json.dumps(p)} needs a `port` in 1..65535")
        out.append(port)
    return out


def _is_port(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65535


def _routes(doc: dict, path: str, routes: List[Route]) -> None:
    """Adds ``doc``'s networkRoutingRules to ``routes``; a rule for a node and container port
    already there (an override's) replaces it."""
    for r in _objects(doc, "networkRoutingRules", path):
        where = f"{path}: networkRoutingRule {json.dumps(r)}"
        if not isinstance(r.get("node"), str) or not r["node"]:
            raise GraphError(f"{where} needs a node")
        if not _is_port(r.get("containerPort")):
            raise GraphError(f"{where} needs a containerPort in 1..65535")
        host = r.get("hostPort")
        if host is not None and not _is_port(host):
            raise GraphError(f"{where}: hostPort must be in 1..65535")
        route = Route(r["node"], r["containerPort"], host)
        routes[:] = [x for x in routes
                     if (x.node, x.container_port) != (route.node, route.container_port)]
        routes.append(route)


def _find_graph(root: str) -> str:
    found = sorted(glob.glob(os.path.join(root, "graphs", "*", "graph.json")))
    if not found:
        if not os.path.isdir(root):
            raise GraphError(f"application directory not found: {root}")
        raise GraphError(f"no graphs/*/graph.json in {root}")
    if len(found) > 1:
        raise GraphError(f"several graphs in {root}: {', '.join(found)}")
    return found[0]


def _typed(value, kind: str, where: str):
    if kind.endswith("[]"):
        if not isinstance(value, list):
            raise GraphError(f"{where}: value {value!r} is not a {kind} (a JSON list)")
        return [_typed(v, kind[:-2], where) for v in value]
    py = PARAM_TYPES[kind]
    if kind == "boolean":
        if isinstance(value, bool):
            return value
    elif kind == "float32":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind == "int32":
        if isinstance(value, int) and not isinstance(value, bool) and -2**31 <= value < 2**31:
            return value
    elif isinstance(value, str):
        return value
    raise GraphError(f"{where}: value {value!r} is not a {kind} ({py.__name__})")


def _apply_override(nodes: dict, edges: list, packages: list, routes: List[Route],
                    path: str) -> None:
    doc = _load_json(path, "override manifest")
    ov = doc.get("nodeGraphOverrides")
    if not isinstance(ov, dict):
        raise GraphError(f"{path}: no nodeGraphOverrides object")
    for n in _objects(ov, "nodes", path):
        if not isinstance(n.get("name"), str):
            raise GraphError(f"{path}: a node without a name")
        if not isinstance(n.get("interface"), str):
            raise GraphError(f"{path}: node `{n['name']}` needs an interface")
        nodes[n["name"]] = dict(n, _override=True)
    packages.extend(_objects(ov, "packages", path))
    edges.extend(_edges(ov, path))
    _routes(ov, path, routes)
    for o in _objects(ov, "nodeOverrides", path):
        target = o.get("replace")
        if not isinstance(target, str) or target not in nodes:
            raise GraphError(f"{path}: nodeOverrides replaces unknown node `{target}`")
        with_ = [w.get("name") if isinstance(w, dict) else None for w in _objects(o, "with", path)]
        if not with_:
            raise GraphError(f"{path}: nodeOverrides for `{target}` replaces it with nothing")
        for w in with_:
            if w not in nodes:
                raise GraphError(f"{path}: node `{target}` is replaced by unknown node `{w}`")
        replaced = nodes[target]
        if replaced.get("interface") in PARAM_TYPES:
            if len(with_) != 1:
                raise GraphError(f"{path}: parameter `{target}` must be replaced by one node")
            new = nodes[with_[0]]
            replaced["value"] = new.get("value")
            continue
        del nodes[target]
        new_edges = []
        for e in edges:
            for side in ("producer", "consumer"):
                node_part, _, port = e.get(side, "").partition(".")
                if node_part == target:
                    for w in with_:
                        new_edges.append(dict(e, **{side: f"{w}.{port}" if port else w}))
                    break
            else:
                new_edges.append(e)
        edges[:] = new_edges


def load(root: str, overrides: List[str] = (), external_cameras: List[str] = ()) -> App:
    """Reads and checks the application in ``root``. ``external_cameras`` are camera nodes
    whose packages live in the account (supplied with ``--camera NODE=SOURCE``)."""
    root = os.path.abspath(root)
    graph_path = _find_graph(root)
    doc = _load_json(graph_path, "graph")
    g = doc.get("nodeGraph")
    if not isinstance(g, dict):
        raise GraphError(f"{graph_path}: no nodeGraph object")
    nodes: Dict[str, dict] = {}
    if not isinstance(g.get("nodes"), list):
        raise GraphError(f"{graph_path}: `nodes` must be a list of objects")
    for n in _objects(g, "nodes", graph_path):
        if not isinstance(n.get("name"), str) or not isinstance(n.get("interface"), str):
            raise GraphError(f"{graph_path}: every node needs a name and an interface")
        if n["name"] in nodes:
            raise GraphError(f"{graph_path}: node `{n['name']}` is declared twice")
        nodes[n["name"]] = dict(n)
    edges = _edges(g, graph_path)
    packages = list(_objects(g, "packages", graph_path))
    routes: List[Route] = []
    _routes(g, graph_path, routes)
    for o in overrides:
        _apply_override(nodes, edges, packages, routes, o)
    notes: List[str] = []
    for n in nodes.values():
        launch = n.get("launch", "onAppStart")
        if n["interface"] not in PARAM_TYPES and launch not in LAUNCH:
            raise GraphError(f"node `{n['name']}`: launch {json.dumps(launch)} is not one of "
                             f"{', '.join(LAUNCH)}")
    versions = {}
    for p in packages:
        if "name" not in p:
            raise GraphError(f"{graph_path}: a package without a name")
        versions[p["name"]] = str(p.get("version", ""))

    interfaces: Dict[str, Interface] = {}
    package_dirs: Dict[str, str] = {}

    def interface_of(node: dict) -> Optional[Interface]:
        ref = node["interface"]
        if ref in PARAM_TYPES:
            return None
        where = f"node `{node['name']}`"
        acct, pkg, iface = _split_ref(ref, where)
        if iface is None:
            raise GraphError(f"{where}: interface `{ref}` names no interface (PACKAGE.INTERFACE)")
        if (acct, pkg) == _STOCK_CAMERA:
            return Interface(pkg, iface, "media_source", None, [], [Port("video_out", "media")])
        if (acct, pkg) == _STOCK_SINK:
            return Interface(pkg, iface, "media_sink", None, [Port("video_in", "media")], [])
        full = f"{acct}::{pkg}"
        if full not in versions:
            raise GraphError(f"{where}: package `{full}` is not in the graph's packages")
        d = os.path.join(root, "packages", f"{acct}-{pkg}-{versions[full]}")
        if not os.path.isdir(d):
            # A camera of the account (an override's camera package is not in the app):
            # its source is given on the command line.
            if node["name"] in external_cameras or node.get("_override"):
                return Interface(pkg, iface, "media_source", None, [], [Port("video_out", "media")])
            raise GraphError(f"{where}: package directory not found: {d}")
        manifest = _load_json(os.path.join(d, "package.json"), "package manifest")
        np_ = manifest.get("nodePackage")
        if not isinstance(np_, dict):
            raise GraphError(f"{d}/package.json: no nodePackage object")
        for i in _objects(np_, "interfaces", f"{d}/package.json"):
            if i.get("name") == iface:
                desc = f"{d}/package.json interface {iface}"
                package_dirs[node["name"]] = d
                return Interface(
                    pkg,
                    iface,
                    i.get("category") or _system_category(np_, i.get("asset"), desc),
                    i.get("asset"),
                    _ports(i.get("inputs"), desc),
                    _ports(i.get("outputs"), desc),
                    _inbound_ports(i.get("network"), desc),
                    d,
                )
        raise GraphError(f"{where}: package {d} has no interface `{iface}`")

    for name, n in nodes.items():
        interfaces[name] = interface_of(n)
    _check_routes(routes, interfaces, graph_path, notes)

    code = [k for k, i in interfaces.items() if i is not None and i.category == "business_logic"]
    if not code:
        raise GraphError(f"{graph_path}: no code node (an interface of category business_logic)")
    if len(code) > 1:
        raise GraphError(f"{graph_path}: several code nodes ({', '.join(code)}); one is supported")
    code_node = code[0]
    ci = interfaces[code_node]
    in_ports = {p.name: p for p in ci.inputs}
    out_ports = {p.name: p for p in ci.outputs}
    cameras: Dict[str, List[str]] = {p: [] for p, v in in_ports.items() if v.type == "media"}
    params: Dict[str, object] = {}
    outputs: List[str] = []
    fed = set()
    for e in edges:
        prod, cons = e.get("producer", ""), e.get("consumer", "")
        pnode, _, pport = prod.partition(".")
        cnode, _, cport = cons.partition(".")
        where = f"{graph_path}: edge {prod} -> {cons}"
        for n_ in (pnode, cnode):
            if n_ not in nodes:
                raise GraphError(f"{where}: unknown node `{n_}`")
        if cnode == code_node:
            if cport not in in_ports:
                raise GraphError(f"{where}: code node `{code_node}` has no input port `{cport}`")
            port = in_ports[cport]
            src = nodes[pnode]
            if src["interface"] in PARAM_TYPES:
                if port.type != src["interface"]:
                    raise GraphError(
                        f"{where}: parameter `{pnode}` is {src['interface']} "
                        f"but port `{cport}` takes {port.type}"
                    )
                params[cport] = _typed(src.get("value"), port.type, f"parameter node `{pnode}`")
            else:
                si = interfaces[pnode]
                if si.category != "media_source" or port.type != "media":
                    raise GraphError(f"{where}: `{pnode}` ({si.category}) cannot feed port `{cport}` ({port.type})")
                if pport and pport not in [p.name for p in si.outputs]:
                    raise GraphError(f"{where}: camera `{pnode}` has no output port `{pport}`")
                cameras[cport].append(pnode)
                fed.add(pnode)
        elif pnode == code_node:
            if pport not in out_ports:
                raise GraphError(f"{where}: code node `{code_node}` has no output port `{pport}`")
            ti = interfaces[cnode]
            if ti is None or ti.category not in _SINK_CATEGORIES:
                raise GraphError(f"{where}: `{cnode}` is not a media sink")
            outputs.append(pport)
        elif interfaces.get(pnode) is not None and interfaces[pnode].category == "media_source":
            fed.add(pnode)
    for name, i in interfaces.items():
        if i is not None and i.category == "media_source" and name not in fed:
            raise GraphError(f"{graph_path}: camera node `{name}` feeds nothing")
    for pname, port in in_ports.items():
        if port.type != "media" and pname not in params and port.default is not None:
            params[pname] = _typed(port.default, port.type, f"port `{pname}` default")
    for pname in out_ports:
        if pname not in outputs:
            outputs.append(pname)

    models: Dict[str, Model] = {}
    for name, i in interfaces.items():
        if i is not None and i.category == "ml_model":
            models[name] = _model(name, i, package_dirs.get(name), root)

    code_pkg = package_dirs.get(code_node)
    if code_pkg is None:
        raise GraphError(f"code node `{code_node}`: its package directory is missing")
    entry, env = _entry(code_pkg, root, ci)
    src = os.path.join(code_pkg, "src")
    camera_urls = {}
    on_signal: List[str] = []
    for name, i in interfaces.items():
        if i is not None and i.category == "media_source":
            url = _package_source(i, root)
            if url:
                camera_urls[name] = url
            if nodes.get(name, {}).get("launch") == "onSignal" and name in fed:
                on_signal.append(name)
    return App(
        root=root,
        graph_path=graph_path,
        code_node=code_node,
        code_interface=ci,
        code_dir=src if os.path.isdir(src) else code_pkg,
        entry=entry,
        environment=env,
        cameras=cameras,
        params=params,
        outputs=outputs,
        models=models,
        camera_urls=camera_urls,
        routes=routes,
        notes=notes,
        on_signal=on_signal,
    )


def _system_category(np_: dict, asset: Optional[str], where: str) -> str:
    """The category of an interface that declares none: a system asset under
    ``source/video/`` (panorama-cli's camera and file-source templates) is a media source."""
    for a in _objects(np_, "assets", where):
        if a.get("name") == asset:
            for impl in _objects(a, "implementations", where):
                uri = impl.get("assetUri")
                if impl.get("type") == "system" and isinstance(uri, str) and \
                        uri.startswith("source/video/"):
                    return "media_source"
    return ""


def _package_source(i: Interface, root: str) -> Optional[str]:
    """A local camera package's own source: its ``streamUrl`` default (RTSP camera
    template), or the first of its ``sourceNames`` (file-source template; a relative name is
    looked up in the package directory, then in the application directory)."""
    for p in i.inputs:
        if p.name == "streamUrl" and isinstance(p.default, str) and p.default:
            return p.default
        if p.name == "sourceNames" and isinstance(p.default, list) and p.default:
            name = p.default[0]
            if not isinstance(name, str) or not name:
                continue
            if os.path.isabs(name):
                return name
            for base in (i.package_dir, root):
                if base and os.path.exists(os.path.join(base, name)):
                    return os.path.join(base, name)
            return name
    return None


def _check_routes(routes: List[Route], interfaces: Dict[str, Optional[Interface]],
                  graph_path: str, notes: List[str]) -> None:
    """Each networkRoutingRule names a node of the graph and a port its interface declares
    in ``network.inboundPorts``; the simulator's treatment is noted once per rule."""
    for r in routes:
        where = f"{graph_path}: networkRoutingRule for `{r.node}` port {r.container_port}"
        if r.node not in interfaces:
            raise GraphError(f"{where}: no node `{r.node}` in the graph")
        i = interfaces[r.node]
        if i is None or i.category != "business_logic":
            raise GraphError(f"{where}: `{r.node}` is not a code node (only code nodes "
                             "have containers)")
        if r.container_port not in i.inbound_ports:
            declared = ", ".join(map(str, i.inbound_ports)) or "none"
            raise GraphError(f"{where}: the interface declares no such inbound port "
                             f"(network.inboundPorts: {declared})")
        if r.host_port is None or r.host_port == r.container_port:
            notes.append(f"networkRoutingRule: `{r.node}` listens on port {r.container_port} "
                         "of this host itself (the app runs without a container)")
        else:
            notes.append(f"networkRoutingRule: host port {r.host_port} -> `{r.node}` port "
                         f"{r.container_port}: the app runs without a container and listens "
                         f"on port {r.container_port} of this host itself; the simulator "
                         f"forwards 127.0.0.1:{r.host_port} to it")


def _descriptor(pkg_dir: str, root: str, asset: Optional[str], key: str) -> dict:
    manifest = _load_json(os.path.join(pkg_dir, "package.json"), "package manifest")
    tried = []
    where = f"{pkg_dir}/package.json"
    for a in _objects(manifest.get("nodePackage") or {}, "assets", where):
        if a.get("name") == asset:
            for impl in _objects(a, "implementations", where):
                uri = impl.get("descriptorUri")
                if isinstance(uri, str) and uri and os.path.isfile(os.path.join(root, "assets", uri)):
                    return _load_json(os.path.join(root, "assets", uri), "descriptor")
                if uri:
                    tried.append(os.path.join(root, "assets", uri))
    path = os.path.join(pkg_dir, "descriptor.json")
    if not os.path.isfile(path):
        # Before `panorama-cli` registers them in assets/, a package with several interfaces
        # keeps one descriptor per asset under its own name (descriptor_people_detection.json
        # for the asset people_detection_model).
        named = _named_descriptor(pkg_dir, asset, key)
        if named is None:
            raise GraphError(
                f"no {key} for asset `{asset}`: none of {', '.join(tried + [path])} exists "
                f"(nor one descriptor*.json in {pkg_dir} named after the asset)")
        path = named
    doc = _load_json(path, "descriptor")
    if key not in doc:
        raise GraphError(f"{path}: no {key}")
    return doc


def _tokens(name: str) -> set:
    return {t for t in re.split(r"[^a-z0-9]+", name.lower()) if t}


def _named_descriptor(pkg_dir: str, asset: Optional[str], key: str) -> Optional[str]:
    """The package's ``*descriptor*.json`` for ``asset``: the only one holding ``key``, else
    the one whose name's words (less "descriptor") are all words of the asset's name, the
    most of them; None when that is not one file."""
    found = []
    for p in sorted(glob.glob(os.path.join(pkg_dir, "*.json"))):
        stem = os.path.basename(p)[:-5]
        if "descriptor" not in stem.lower():
            continue
        try:
            with open(p, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and key in doc:
            found.append((p, _tokens(stem) - {"descriptor"}))
    if len(found) == 1:
        return found[0][0]
    if not asset or not found:
        return None
    want = _tokens(asset)
    scored = [(len(t), p) for p, t in found if t and t <= want]
    if not scored:
        return None
    best = max(s for s, _ in scored)
    hits = [p for s, p in scored if s == best]
    return hits[0] if len(hits) == 1 else None


def _model(node: str, i: Interface, pkg_dir: Optional[str], root: str) -> Model:
    if pkg_dir is None:
        return Model(node, None, [], None)
    d = _descriptor(pkg_dir, root, i.asset, "mlModelDescriptor")["mlModelDescriptor"]
    inputs = []
    if not isinstance(d, dict):
        raise GraphError(f"model node `{node}`: mlModelDescriptor is not an object")
    for inp in _objects(d, "inputs", f"model node `{node}` descriptor"):
        if "name" not in inp or not isinstance(inp.get("shape"), list):
            raise GraphError(f"model node `{node}`: each descriptor input needs a name and a shape")
        if not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in inp["shape"]):
            raise GraphError(f"model node `{node}`: input `{inp['name']}` has shape "
                             f"{inp['shape']}, not a list of positive integers")
        inputs.append((inp["name"], [int(x) for x in inp["shape"]]))
    return Model(node, d.get("framework"), inputs, pkg_dir)


def _entry(pkg_dir: str, root: str, ci: Interface) -> Tuple[List[str], Dict[str, str]]:
    d = _descriptor(pkg_dir, root, ci.asset, "runtimeDescriptor")["runtimeDescriptor"]
    e = d.get("entry") if isinstance(d, dict) else None
    if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not e["name"]:
        raise GraphError(f"{pkg_dir}: the runtime descriptor names no entry")
    name = e["name"]
    path = e.get("path", "python3")
    if not isinstance(path, str):
        raise GraphError(f"{pkg_dir}: the runtime descriptor's entry path must be a string")
    args = e.get("arguments") or []
    if not isinstance(args, list):
        raise GraphError(f"{pkg_dir}: the runtime descriptor's arguments must be a list")
    if path == "$default":
        path = "python3"
    env = {x["name"]: str(x.get("value", "")) for x in _objects(e, "environment", pkg_dir)
           if isinstance(x.get("name"), str)}
    return [path, name, *[str(a) for a in args]], env
