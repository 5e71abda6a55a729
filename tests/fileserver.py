"""A small HTTP file server for tests, on 127.0.0.1, with Range support and fault injection.

Stands in for Hugging Face / a mirror: serves real files from a directory, honours
``Range: bytes=N-`` (206), can cut the connection after N bytes (once), can serve
corrupted bytes, can be slow (bytes per second), and can send Hugging Face's ``X-Linked-Etag``
header.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Faults:
    cut_after_bytes: int | None = None  # close the connection after this many body bytes (once)
    corrupt: bool = False  # flip one byte of every body
    ignore_range: bool = False  # answer 200 with the whole file even when asked for a range
    linked_etag: str | None = None  # sent as X-Linked-Etag (Hugging Face's LFS sha256)
    bytes_per_second: int | None = None  # throttle bodies to this rate (a slow mirror)
    requests: list[dict[str, str | None]] = field(default_factory=list)


class FileServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.faults = Faults()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _file(self) -> Path | None:
                path = (server.root / self.path.split("?")[0].lstrip("/")).resolve()
                if server.root.resolve() not in path.parents or not path.is_file():
                    self.send_error(404)
                    return None
                return path

            def do_HEAD(self) -> None:  # noqa: N802
                path = self._file()
                if path is None:
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(path.stat().st_size))
                if server.faults.linked_etag:
                    self.send_header("X-Linked-Etag", f'"{server.faults.linked_etag}"')
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802
                faults = server.faults
                faults.requests.append({"path": self.path, "range": self.headers.get("Range")})
                path = self._file()
                if path is None:
                    return
                size = path.stat().st_size
                start = 0
                range_header = self.headers.get("Range")
                if range_header and not faults.ignore_range:
                    start = int(range_header.removeprefix("bytes=").split("-")[0])
                    if start >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(size - start))
                self.end_headers()
                limit = faults.cut_after_bytes
                faults.cut_after_bytes = None  # a fault happens once
                sent = 0
                with path.open("rb") as handle:
                    handle.seek(start)
                    while block := handle.read(1 << 20):
                        if faults.bytes_per_second:
                            time.sleep(len(block) / faults.bytes_per_second)
                        if faults.corrupt and sent == 0:
                            block = bytes([block[0] ^ 0xFF]) + block[1:]
                        if limit is not None and sent + len(block) > limit:
                            self.wfile.write(block[: limit - sent])
                            self.wfile.flush()
                            self.close_connection = True
                            return
                        self.wfile.write(block)
                        sent += len(block)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
