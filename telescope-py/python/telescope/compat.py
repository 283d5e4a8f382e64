"""The method names of the original Python telescope, on the new core.

Migration: replace ``from backpack.telescope import ...`` (or the module the original was
vendored as) with ``from telescope.compat import ...``; the calls stay the same:

    t = KVSTelescope("us-east-1", "my-stream", KVSInlineCredentialsHandler(key, secret))
    t.start_streaming(fps, width, height)
    t.put(frame)
    t.stop_streaming()

``RTSPTelescope(port, path)`` serves the stream over RTSP instead, ``FileTelescope(path)``
writes a file. The three credential handler styles map to Telescope's credential sources:
inline keys, the environment, and the AWS provider chain (which also covers instance roles and
refreshes temporary credentials before they expire, the job the file handler did for kvssink).
"""

from __future__ import annotations

from typing import Optional

import telescope as _t


class KVSCredentialsHandler:
    """Base of the credential handler styles."""

    def _source(self):
        return "default"


class KVSInlineCredentialsHandler(KVSCredentialsHandler):
    def __init__(self, aws_access_key_id: str, aws_secret_access_key: str,
                 aws_session_token: Optional[str] = None):
        self._keys = {"access_key_id": aws_access_key_id,
                      "secret_access_key": aws_secret_access_key}
        if aws_session_token:
            self._keys["session_token"] = aws_session_token

    def _source(self):
        return dict(self._keys)

    def __repr__(self) -> str:
        return "KVSInlineCredentialsHandler(aws_access_key_id=%r, ** redacted **)" % self._keys["access_key_id"]


class KVSEnvironmentCredentialsHandler(KVSCredentialsHandler):
    def _source(self):
        return "environment"


class KVSFileCredentialsHandler(KVSCredentialsHandler):
    """The original wrote refreshed credentials to a file for kvssink; the native sink reads
    the AWS provider chain directly and refreshes before expiry."""

    def __init__(self, credentials_path: Optional[str] = None, **_ignored):
        self.credentials_path = credentials_path

    def _source(self):
        return "default"


class _CompatTelescope:
    def __init__(self):
        self._telescope: Optional[_t.Telescope] = None

    def _sinks(self):
        raise NotImplementedError

    def start_streaming(self, fps: float, width: int, height: int) -> None:
        if self._telescope is not None:
            return
        self._telescope = _t.Telescope(sinks=self._sinks(), fps=fps, width=width, height=height)
        self._telescope.start()

    def put(self, frame) -> bool:
        if self._telescope is None:
            raise _t.StreamError("call start_streaming(fps, width, height) first")
        return self._telescope.put(frame)

    def stop_streaming(self) -> None:
        if self._telescope is not None:
            t, self._telescope = self._telescope, None
            t.stop()

    def stats(self) -> dict:
        return {} if self._telescope is None else self._telescope.stats()


class FileTelescope(_CompatTelescope):
    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def _sinks(self):
        return ["file:" + self.path]


class RTSPTelescope(_CompatTelescope):
    def __init__(self, rtsp_port: int = 8554, path: str = "/telescope", address: str = "0.0.0.0"):
        super().__init__()
        self.server = _t.RtspServer(port=rtsp_port, address=address)
        self.path = path

    def _sinks(self):
        return [self.server.mount(self.path)]

    @property
    def url(self) -> str:
        return self.server.url(self.path)


class KVSTelescope(_CompatTelescope):
    def __init__(self, stream_region: str, stream_name: str,
                 credentials_handler: Optional[KVSCredentialsHandler] = None,
                 endpoint: Optional[str] = None):
        super().__init__()
        handler = credentials_handler or KVSFileCredentialsHandler()
        self.stream = _t.KvsStream(stream_name, stream_region, endpoint=endpoint,
                                   credentials=handler._source())

    def _sinks(self):
        return [self.stream]


__all__ = [
    "FileTelescope",
    "RTSPTelescope",
    "KVSTelescope",
    "KVSInlineCredentialsHandler",
    "KVSEnvironmentCredentialsHandler",
    "KVSFileCredentialsHandler",
]
