"""The weights registry: downloads from a local HTTP server, caching, verification, CLI."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading

import pytest
from typer.testing import CliRunner

from clipgen import weights
from clipgen.cli.models import models_app
from clipgen.errors import MissingWeightsError, ModelError
from clipgen.weights import FileSpec, WeightsEntry

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # ~1 MiB: more than one read chunk
CONFIG = b"model:\n  target: something\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files``; honours Range unless told not to; can cut a response short."""

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        if self.path not in server.files:
            self.send_error(404)
            return
        data, content_type = server.files[self.path]
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and server.honour_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = server.cut_after.pop(self.path, None)
        self.wfile.write(body if cut is None else body[:cut])
        if cut is not None:
            self.wfile.flush()
            self.close_connection = True


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.requests, httpd.cut_after, httpd.honour_range = {}, [], {}, True
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private cache, online (conftest makes tests offline by default)."""
    monkeypatch.setenv("CLIPGEN_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CLIPGEN_OFFLINE", raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return tmp_path / "cache"


def entry_for(server, *, sha_known: bool = True, size_known: bool = True, mirrors=("/a",),
              name: str = "tiny-test") -> WeightsEntry:
    server.files.update({"/a/model.yaml": (CONFIG, "text/plain"), "/a/last.ckpt": (PAYLOAD, "application/octet-stream")})
    files = []
    for filename, data in (("model.yaml", CONFIG), ("last.ckpt", PAYLOAD)):
        files.append(FileSpec(
            filename,
            urls=tuple(f"{server.url}{m}/{filename}" for m in mirrors),
            size=len(data) if size_known else None,
            sha256=sha(data) if sha_known else None,
        ))
    return WeightsEntry(name=name, kind="vqgan", description="test model", files=tuple(files))


# --------------------------------------------------------------------------- download


def test_download_caches_and_verifies(server, home):
    entry = entry_for(server)
    events = []
    paths = weights.download(entry, progress=events.append)
    assert paths["last.ckpt"] == home / "tiny-test" / "last.ckpt"
    assert paths["last.ckpt"].read_bytes() == PAYLOAD
    assert weights.is_cached(entry)
    record = json.loads((home / "tiny-test" / "last.ckpt.verified.json").read_text())
    assert record["sha256"] == sha(PAYLOAD) and record["published_digest"] is True
    assert not list((home / "tiny-test").glob("*.part*"))
    assert weights.resolve(entry) == paths
    assert {"start", "download", "done"} <= {e.phase for e in events}
    # cached: nothing is fetched a second time
    before = len(server.requests)
    weights.download(entry)
    assert len(server.requests) == before


def test_final_file_appears_only_after_verification(server, home):
    entry = entry_for(server)
    final = home / "tiny-test" / "last.ckpt"
    seen_during_download = []

    def progress(event):
        if event.phase == "download" and event.filename == "last.ckpt":
            seen_during_download.append(final.exists())

    weights.download(entry, progress=progress)
    assert seen_during_download and not any(seen_during_download)


def test_tampered_download_is_rejected_and_not_kept(server, home):
    entry = entry_for(server)
    server.files["/a/last.ckpt"] = (PAYLOAD[:-4] + b"EVIL", "application/octet-stream")
    with pytest.raises(ModelError, match="no mirror .* delivered the published file"):
        weights.download(entry)
    folder = home / "tiny-test"
    assert not (folder / "last.ckpt").exists() and not list(folder.glob("last.ckpt.part*"))
    with pytest.raises(MissingWeightsError):
        weights.resolve(entry)


def test_next_mirror_after_a_bad_one(server, home):
    entry = entry_for(server, mirrors=("/missing", "/bad", "/a"))
    server.files["/bad/model.yaml"] = (CONFIG, "text/plain")
    server.files["/bad/last.ckpt"] = (b"x" * len(PAYLOAD), "application/octet-stream")
    failures = []
    weights.download(entry, progress=lambda e: e.phase == "mirror-failed" and failures.append(e))
    assert (home / "tiny-test" / "last.ckpt").read_bytes() == PAYLOAD
    assert any("HTTP 404" in e.message for e in failures)
    assert any("SHA-256 mismatch" in e.message for e in failures)


def test_login_page_is_not_taken_for_the_file(server, home):
    entry = entry_for(server, sha_known=False, size_known=False, mirrors=("/login", "/a"))
    server.files["/login/model.yaml"] = (b"<html>sign in</html>", "text/html; charset=utf-8")
    server.files["/login/last.ckpt"] = (b"<html>sign in</html>", "text/html")
    failures = []
    weights.download(entry, progress=lambda e: e.phase == "mirror-failed" and failures.append(e.message))
    assert (home / "tiny-test" / "model.yaml").read_bytes() == CONFIG
    assert failures and all("web page" in m for m in failures)


def test_wrong_size_offered_is_skipped_before_downloading(server, home):
    entry = entry_for(server, mirrors=("/short", "/a"))
    server.files["/short/model.yaml"] = (CONFIG + b"more", "text/plain")
    server.files["/short/last.ckpt"] = (PAYLOAD[:1000], "application/octet-stream")
    failures = []
    weights.download(entry, progress=lambda e: e.phase == "mirror-failed" and failures.append(e.message))
    assert any(f"expected {len(PAYLOAD)}" in m for m in failures)
    assert weights.is_cached(entry)


def test_interrupted_download_resumes_with_range(server, home):
    entry = entry_for(server)
    server.cut_after["/a/last.ckpt"] = 300_000
    with pytest.raises(MissingWeightsError, match="could not download tiny-test/last.ckpt"):
        weights.download(entry)
    part = home / "tiny-test" / "last.ckpt.part"
    assert part.stat().st_size == 300_000
    weights.download(entry)
    assert ("/a/last.ckpt", "bytes=300000-") in server.requests
    assert (home / "tiny-test" / "last.ckpt").read_bytes() == PAYLOAD
    assert not part.exists()


def test_truncated_file_of_unpublished_size_is_not_kept(server, home):
    entry = entry_for(server, sha_known=False, size_known=False)
    server.cut_after["/a/last.ckpt"] = 300_000
    with pytest.raises(MissingWeightsError):
        weights.download(entry)
    assert not (home / "tiny-test" / "last.ckpt").exists()
    weights.download(entry)  # same mirror: resumes
    assert ("/a/last.ckpt", "bytes=300000-") in server.requests
    assert (home / "tiny-test" / "last.ckpt").read_bytes() == PAYLOAD


def test_no_splicing_of_mirrors_without_a_published_digest(server, home):
    entry = entry_for(server, sha_known=False, size_known=False, mirrors=("/a", "/b"))
    server.files["/b/model.yaml"] = (CONFIG, "text/plain")
    server.files["/b/last.ckpt"] = (PAYLOAD, "application/octet-stream")
    server.cut_after["/a/last.ckpt"] = 300_000
    weights.download(entry)
    assert ("/b/last.ckpt", None) in server.requests  # started over, no Range
    assert (home / "tiny-test" / "last.ckpt").read_bytes() == PAYLOAD


def test_complete_part_is_finished_on_416(server, home):
    entry = entry_for(server)
    folder = home / "tiny-test"
    folder.mkdir(parents=True)
    (folder / "last.ckpt.part").write_bytes(PAYLOAD)
    weights.download(entry)
    assert ("/a/last.ckpt", f"bytes={len(PAYLOAD)}-") in server.requests
    assert weights.resolve(entry)["last.ckpt"].read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_cleanly(server, home):
    entry = entry_for(server)
    server.honour_range = False
    server.cut_after["/a/last.ckpt"] = 300_000
    with pytest.raises(MissingWeightsError):
        weights.download(entry)
    weights.download(entry)
    assert (home / "tiny-test" / "last.ckpt").read_bytes() == PAYLOAD


def test_unknown_digest_is_recorded_and_later_checked(server, home):
    entry = entry_for(server, sha_known=False, size_known=False)
    weights.download(entry)
    path = home / "tiny-test" / "last.ckpt"
    record = json.loads(path.with_name("last.ckpt.verified.json").read_text())
    assert record["sha256"] == sha(PAYLOAD) and record["published_digest"] is False
    assert weights.verify(entry)["last.ckpt"] == sha(PAYLOAD)
    path.write_bytes(PAYLOAD[:-1] + b"!")
    with pytest.raises(ModelError, match="fails SHA-256 verification"):
        weights.verify(entry)


def test_tampered_cached_file_is_not_used(server, home):
    entry = entry_for(server)
    weights.download(entry)
    path = home / "tiny-test" / "last.ckpt"
    path.write_bytes(PAYLOAD[:-4] + b"EVIL")  # same size, new mtime
    with pytest.raises(ModelError) as excinfo:
        weights.resolve(entry)
    message = str(excinfo.value)
    assert "fails SHA-256 verification" in message and "clipgen models download tiny-test" in message
    # the fix named in the message works
    weights.download(entry)
    assert weights.resolve(entry)["last.ckpt"].read_bytes() == PAYLOAD


def test_manually_placed_file_is_verified_once(server, home):
    entry = entry_for(server)
    folder = home / "tiny-test"
    folder.mkdir(parents=True)
    (folder / "model.yaml").write_bytes(CONFIG)
    (folder / "last.ckpt").write_bytes(PAYLOAD)
    assert weights.resolve(entry)["last.ckpt"] == folder / "last.ckpt"
    assert (folder / "last.ckpt.verified.json").is_file()
    assert server.requests == []


# --------------------------------------------------------------------------- offline


def test_offline_never_touches_the_network(server, home, monkeypatch):
    entry = entry_for(server)
    monkeypatch.setenv("CLIPGEN_OFFLINE", "1")
    with pytest.raises(MissingWeightsError) as excinfo:
        weights.download(entry)
    assert "clipgen models download tiny-test" in str(excinfo.value)
    with pytest.raises(MissingWeightsError) as excinfo:
        weights.ensure(entry, download_missing=True)
    assert "clipgen models download tiny-test" in str(excinfo.value)
    assert "\n" not in str(excinfo.value)
    monkeypatch.delenv("CLIPGEN_OFFLINE")
    with pytest.raises(MissingWeightsError):
        weights.ensure(entry, offline=True, download_missing=True)  # the run's flag
    assert server.requests == []
    # online and allowed: ensure downloads
    assert weights.ensure(entry, download_missing=True)["last.ckpt"].read_bytes() == PAYLOAD


# --------------------------------------------------------------------------- registry


def test_registry_has_the_public_vqgans():
    expected = {"imagenet-f16-16384", "imagenet-f16-1024", "gumbel-f8-8192", "wikiart-f16-16384", "wikiart-f16-1024"}
    assert expected <= set(weights.names("vqgan"))
    for entry in weights.entries("vqgan"):
        assert [f.filename for f in entry.files] == [weights.VQGAN_CONFIG, weights.VQGAN_CHECKPOINT]
        for spec in entry.files:
            assert spec.urls and all(u.startswith("https://") for u in spec.urls)
            assert len(set(spec.urls)) == len(spec.urls)
            assert spec.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
    default = weights.get_entry("imagenet-f16-16384").file(weights.VQGAN_CHECKPOINT)
    assert default.size == 980_092_370 and default.sha256.startswith("845a6880")


def test_unknown_name_suggests(home):
    with pytest.raises(ModelError, match="did you mean 'imagenet-f16-16384'"):
        weights.get_entry("imagenet-f16-1638")


def test_cache_dir_override(monkeypatch, tmp_path):
    monkeypatch.setenv("CLIPGEN_HOME", str(tmp_path / "x"))
    assert weights.entry_dir("gumbel-f8-8192") == tmp_path / "x" / "gumbel-f8-8192"
    monkeypatch.delenv("CLIPGEN_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights.cache_dir() == tmp_path / "xdg" / "clipgen"


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def registered(server, home, monkeypatch):
    entry = entry_for(server)
    monkeypatch.setitem(weights.REGISTRY, entry.name, entry)
    return entry


def test_cli_list_download_verify_path(registered, home):
    runner = CliRunner()
    result = runner.invoke(models_app, ["list"])
    assert result.exit_code == 0, result.output
    assert "imagenet-f16-16384" in result.output and "tiny-test" in result.output
    result = runner.invoke(models_app, ["path", "tiny-test"])
    assert result.exit_code == 2 and "clipgen models download tiny-test" in result.output
    result = runner.invoke(models_app, ["download", "tiny-test"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(models_app, ["path", "tiny-test"])
    assert result.exit_code == 0 and result.output.strip() == str(home / "tiny-test")
    result = runner.invoke(models_app, ["verify", "tiny-test"])
    assert result.exit_code == 0 and result.output.count(": ok, sha256") == 2
    (home / "tiny-test" / "model.yaml").write_bytes(b"changed")
    result = runner.invoke(models_app, ["verify"])
    assert result.exit_code == 2 and "model.yaml has 7 bytes" in result.output


def test_cli_offline_download_is_one_line_exit_2(registered, monkeypatch):
    monkeypatch.setenv("CLIPGEN_OFFLINE", "1")
    result = CliRunner().invoke(models_app, ["download", "tiny-test"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "clipgen models download tiny-test" in lines[0]
    assert "Traceback" not in result.output


def test_main_cli_mounts_models(registered, monkeypatch):
    cli = pytest.importorskip("clipgen.cli.app")
    if not any(getattr(g, "name", None) == "models" for g in cli.app.registered_groups):
        pytest.skip("clipgen.cli.app does not mount `models` yet")
    monkeypatch.setenv("CLIPGEN_OFFLINE", "1")
    result = CliRunner().invoke(cli.app, ["models", "path", "tiny-test"])
    assert result.exit_code == 2 and "clipgen models download tiny-test" in result.output
