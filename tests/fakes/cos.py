"""A fake Tencent COS bucket for the COS storage backend: objects in memory, HEAD/GET/PUT/
DELETE and multipart upload (initiate, upload part, complete, abort), reached by the real
cos-python-sdk-v5 client (CosConfig(Domain=...)) and by presigned URLs.

Every request must carry a valid COS signature (q-sign-algorithm=sha1, in the Authorization
header or the query string), checked here with COS's documented algorithm written out
independently of the SDK, so a test that passes proves the signature, not only its shape.
"""
from __future__ import annotations

import hashlib
import hmac
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import quote, unquote

import tornado.web

from tests.fakes import BackgroundServer

SECRET_ID = "AKIDfakecos0000000000000000000000000"
SECRET_KEY = "fake-cos-secret-key-0123456789"


class FakeCosState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.objects: dict[str, tuple[bytes, str]] = {}  # key -> (body, content type)
        self.uploads: dict[str, dict[int, bytes]] = {}
        self.requests: list[tuple[str, str]] = []
        self.refused = 0


def _quote(value: str) -> str:
    return quote(value, safe="-_.~")


def signature_problem(method: str, path: str, query: dict[str, str],
                      headers: dict[str, str], secret_key: str = SECRET_KEY) -> str | None:
    """Why a COS-signed request is not validly signed, or None."""
    auth = headers.get("authorization") or ""
    fields = dict(p.split("=", 1) for p in auth.split("&") if "=" in p) if auth else \
        {k: v for k, v in query.items() if k.startswith("q-")}
    if fields.get("q-sign-algorithm") != "sha1" or fields.get("q-ak") != SECRET_ID:
        return "missing or foreign signature"
    start, _, end = fields.get("q-key-time", "").partition(";")
    if not (start.isdigit() and end.isdigit() and int(start) <= time.time() <= int(end)):
        return "signature expired"
    header_names = [h for h in fields.get("q-header-list", "").split(";") if h]
    param_names = [p for p in fields.get("q-url-param-list", "").split(";") if p]
    lowered_query = {k.lower(): v for k, v in query.items()}
    http_string = "\n".join([
        method.lower(), path,
        "&".join(f"{n}={_quote(lowered_query.get(n, ''))}" for n in sorted(param_names)),
        "&".join(f"{n}={_quote(headers.get(n, ''))}" for n in sorted(header_names)), ""])
    string_to_sign = "sha1\n{}\n{}\n".format(fields["q-key-time"],
                                             hashlib.sha1(http_string.encode()).hexdigest())
    sign_key = hmac.new(secret_key.encode(), fields["q-key-time"].encode(),
                        hashlib.sha1).hexdigest()
    expected = hmac.new(sign_key.encode(), string_to_sign.encode(), hashlib.sha1).hexdigest()
    if not hmac.compare_digest(expected, fields.get("q-signature", "")):
        return "signature does not match"
    return None


class ObjectHandler(tornado.web.RequestHandler):
    def initialize(self, state: FakeCosState) -> None:
        self.state = state

    def prepare(self) -> None:
        query = {k: v[-1].decode() for k, v in self.request.query_arguments.items()}
        headers = {k.lower(): v for k, v in self.request.headers.items()}
        # The SDK signs the URL's hostname; real COS hosts carry no port, this fake's does.
        headers["host"] = headers.get("host", "").rsplit(":", 1)[0]
        path = unquote(self.request.path)
        with self.state.lock:
            self.state.requests.append((self.request.method, path))
        problem = signature_problem(self.request.method, path, query, headers)
        if problem:
            with self.state.lock:
                self.state.refused += 1
            self._error(403, "AccessDenied", problem)
        self.key = path.lstrip("/")
        self.query = query

    def _error(self, status: int, code: str, message: str = "") -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/xml")
        if self.request.method == "HEAD":
            self.finish()
        else:
            self.finish(f"<Error><Code>{code}</Code><Message>{message}</Message>"
                        f"<RequestId>fake</RequestId></Error>")

    def _xml(self, body: str) -> None:
        self.set_header("Content-Type", "application/xml")
        self.finish(body)

    def head(self, _path: str) -> None:
        with self.state.lock:
            found = self.state.objects.get(self.key)
        if found is None:
            return self._error(404, "NoSuchKey")
        self.set_header("Content-Length", str(len(found[0])))
        self.set_header("Content-Type", found[1])
        self.set_header("ETag", f'"{hashlib.md5(found[0]).hexdigest()}"')
        self.finish()

    def get(self, _path: str) -> None:
        with self.state.lock:
            found = self.state.objects.get(self.key)
        if found is None:
            return self._error(404, "NoSuchKey")
        self.set_header("Content-Type", found[1])
        self.set_header("ETag", f'"{hashlib.md5(found[0]).hexdigest()}"')
        self.finish(found[0])

    def put(self, _path: str) -> None:
        body = self.request.body
        etag = hashlib.md5(body).hexdigest()
        with self.state.lock:
            if "uploadId" in self.query:
                parts = self.state.uploads.get(self.query["uploadId"])
                if parts is None:
                    return self._error(404, "NoSuchUpload")
                parts[int(self.query["partNumber"])] = body
            else:
                self.state.objects[self.key] = (
                    body, self.request.headers.get("Content-Type", "application/octet-stream"))
        self.set_header("ETag", f'"{etag}"')
        self.finish()

    def post(self, _path: str) -> None:
        if "uploads" in self.query:
            upload_id = uuid.uuid4().hex
            with self.state.lock:
                self.state.uploads[upload_id] = {}
            return self._xml(f"<InitiateMultipartUploadResult><Bucket>b</Bucket>"
                             f"<Key>{self.key}</Key><UploadId>{upload_id}</UploadId>"
                             "</InitiateMultipartUploadResult>")
        upload_id = self.query.get("uploadId", "")
        with self.state.lock:
            parts = self.state.uploads.get(upload_id)
        if parts is None:
            return self._error(404, "NoSuchUpload")
        listed = ET.fromstring(self.request.body)
        body = b""
        for part in listed.findall("Part"):
            number = int(part.findtext("PartNumber"))
            data = parts.get(number)
            if data is None or part.findtext("ETag").strip('"') != hashlib.md5(data).hexdigest():
                return self._error(400, "InvalidPart", f"part {number}")
            body += data
        with self.state.lock:
            self.state.objects[self.key] = (body, "application/octet-stream")
            del self.state.uploads[upload_id]
        self._xml(f"<CompleteMultipartUploadResult><Key>{self.key}</Key>"
                  f"<ETag>\"{hashlib.md5(body).hexdigest()}-{len(parts)}\"</ETag>"
                  "</CompleteMultipartUploadResult>")

    def delete(self, _path: str) -> None:
        with self.state.lock:
            if "uploadId" in self.query:
                self.state.uploads.pop(self.query["uploadId"], None)
            else:
                self.state.objects.pop(self.key, None)
        self.set_status(204)
        self.finish()


class FakeCos:
    def __init__(self) -> None:
        self.state = FakeCosState()
        app = tornado.web.Application([(r"/(.*)", ObjectHandler, {"state": self.state})])
        self.server = BackgroundServer(app, "cos")
        self.domain = f"127.0.0.1:{self.server.port}"
        self.base_url = self.server.base_url
