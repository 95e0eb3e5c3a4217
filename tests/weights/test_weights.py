"""The weights registry: downloads from a local HTTP server, caching, verification, CLI,
the package's import structure, and the one-line error helper its messages use."""

from __future__ import annotations

import ast
import hashlib
import http.server
import json
import re
import threading
from pathlib import Path

import pytest

import clipgen
from clipgen import weights
from clipgen.errors import MissingWeightsError, ModelError, one_line
from clipgen.weights import FileSpec, WeightsEntry
from clipgen.weights.spec import FileFacts, build_entry

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
    # shutdown() waits up to one poll interval (0.5 s by default) for the loop to notice.
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
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
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the CLI's offline rule reads both
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
    paths = weights.download(entry, offline=False, progress=events.append)
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
    weights.download(entry, offline=False)
    assert len(server.requests) == before


def test_final_file_appears_only_after_verification(server, home):
    entry = entry_for(server)
    final = home / "tiny-test" / "last.ckpt"
    seen_during_download = []

    def progress(event):
        if event.phase == "download" and event.filename == "last.ckpt":
            seen_during_download.append(final.exists())

    weights.download(entry, offline=False, progress=progress)
    assert seen_during_download and not any(seen_during_download)


def test_tampered_download_is_rejected_and_not_kept(server, home):
    entry = entry_for(server)
    server.files["/a/last.ckpt"] = (PAYLOAD[:-4] + b"EVIL", "application/octet-stream")
    with pytest.raises(ModelError, match="no mirror .* delivered the published file"):
        weights.download(entry, offline=False)
    folder = home / "tiny-test"
    assert not (folder / "last.ckpt").exists() and not list(folder.glob("last.ckpt.part*"))
    with pytest.raises(MissingWeightsError):
        weights.resolve(entry)


def test_next_mirror_after_a_bad_one(server, home):
    entry = entry_for(server, mirrors=("/missing", "/bad", "/a"))
    server.files["/bad/model.yaml"] = (CONFIG, "text/plain")
    server.files["/bad/last.ckpt"] = (b"x" * len(PAYLOAD), "application/octet-stream")
    failures = []
    weights.download(entry, offline=False, progress=lambda e: e.phase == "mirror-failed" and failures.append(e))
    assert (home / "tiny-test" / "last.ckpt").read_bytes() == PAYLOAD
    assert any("HTTP 404" in e.message for e in failures)
    assert any("SHA-256 mismatch" in e.message for e in failures)


def test_login_page_is_not_taken_for_the_file(server, home):
    entry = entry_for(server, sha_known=False, size_known=False, mirrors=("/login", "/a"))
    server.files["/login/model.yaml"] = (b"<html>sign in</html>", "text/html; charset=utf-8")
    server.files["/login/last.ckpt"] = (b"<html>sign in</html>", "text/html")
    failures = []
    weights.download(entry, offline=False, progress=lambda e: e.phase == "mirror-failed" and failures.append(e.message))
    assert (home / "tiny-test" / "model.yaml").read_bytes() == CONFIG
    assert failures and all("web page" in m for m in failures)


def test_wrong_size_offered_is_skipped_before_downloading(server, home):
    entry = entry_for(server, mirrors=("/short", "/a"))
    server.files["/short/model.yaml"] = (CONFIG + b"more", "text/plain")
    server.files["/short/last.ckpt"] = (PAYLOAD[:1000], "application/octet-stream")
    failures = []
    weights.download(entry, offline=False, progress=lambda e: e.phase == "mirror-failed" and failures.append(e.message))
    assert any(f"expected {len(PAYLOAD)}" in m for m in failures)
    assert weights.is_cached(entry)


def test_interrupted_download_resumes_with_range(server, home):
    entry = entry_for(server)
    server.cut_after["/a/last.ckpt"] = 300_000
    with pytest.raises(MissingWeightsError, match="could not download tiny-test/last.ckpt"):
        weights.download(entry, offline=False)
    part = home / "tiny-test" / "last.ckpt.part"
    assert part.stat().st_size == 300_000
    weights.download(entry, offline=False)
    assert ("/a/last.ckpt", "bytes=300000-") in server.requests
    assert (home / "tiny-test" / "last.ckpt").read_bytes() == PAYLOAD
    assert not part.exists()


def test_truncated_file_of_unpublished_size_is_not_kept(server, home):
    entry = entry_for(server, sha_known=False, size_known=False)
    server.cut_after["/a/last.ckpt"] = 300_000
    with pytest.raises(MissingWeightsError):
        weights.download(entry, offline=False)
    assert not (home / "tiny-test" / "last.ckpt").exists()
    weights.download(entry, offline=False)  # same mirror: resumes
    assert ("/a/last.ckpt", "bytes=300000-") in server.requests
    assert (home / "tiny-test" / "last.ckpt").read_bytes() == PAYLOAD


def test_no_splicing_of_mirrors_without_a_published_digest(server, home):
    entry = entry_for(server, sha_known=False, size_known=False, mirrors=("/a", "/b"))
    server.files["/b/model.yaml"] = (CONFIG, "text/plain")
    server.files["/b/last.ckpt"] = (PAYLOAD, "application/octet-stream")
    server.cut_after["/a/last.ckpt"] = 300_000
    weights.download(entry, offline=False)
    assert ("/b/last.ckpt", None) in server.requests  # started over, no Range
    assert (home / "tiny-test" / "last.ckpt").read_bytes() == PAYLOAD


def test_complete_part_is_finished_on_416(server, home):
    entry = entry_for(server)
    folder = home / "tiny-test"
    folder.mkdir(parents=True)
    (folder / "last.ckpt.part").write_bytes(PAYLOAD)
    weights.download(entry, offline=False)
    assert ("/a/last.ckpt", f"bytes={len(PAYLOAD)}-") in server.requests
    assert weights.resolve(entry)["last.ckpt"].read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_cleanly(server, home):
    entry = entry_for(server)
    server.honour_range = False
    server.cut_after["/a/last.ckpt"] = 300_000
    with pytest.raises(MissingWeightsError):
        weights.download(entry, offline=False)
    weights.download(entry, offline=False)
    assert (home / "tiny-test" / "last.ckpt").read_bytes() == PAYLOAD


def test_unknown_digest_is_recorded_and_later_checked(server, home):
    entry = entry_for(server, sha_known=False, size_known=False)
    weights.download(entry, offline=False)
    path = home / "tiny-test" / "last.ckpt"
    record = json.loads(path.with_name("last.ckpt.verified.json").read_text())
    assert record["sha256"] == sha(PAYLOAD) and record["published_digest"] is False
    assert weights.verify(entry)["last.ckpt"] == sha(PAYLOAD)
    path.write_bytes(PAYLOAD[:-1] + b"!")
    with pytest.raises(ModelError, match="fails SHA-256 verification"):
        weights.verify(entry)


def test_tampered_cached_file_is_not_used(server, home):
    entry = entry_for(server)
    weights.download(entry, offline=False)
    path = home / "tiny-test" / "last.ckpt"
    path.write_bytes(PAYLOAD[:-4] + b"EVIL")  # same size, new mtime
    with pytest.raises(ModelError) as excinfo:
        weights.resolve(entry)
    message = str(excinfo.value)
    assert "fails SHA-256 verification" in message and "clipgen models download tiny-test" in message
    # the fix named in the message works
    weights.download(entry, offline=False)
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


def test_offline_never_touches_the_network(server, home):
    entry = entry_for(server)
    with pytest.raises(MissingWeightsError) as excinfo:
        weights.download(entry, offline=True)
    assert "clipgen models download tiny-test" in str(excinfo.value)
    with pytest.raises(MissingWeightsError) as excinfo:
        weights.ensure(entry, offline=True, download_missing=True)
    assert "clipgen models download tiny-test" in str(excinfo.value)
    assert "\n" not in str(excinfo.value)
    with pytest.raises(MissingWeightsError):
        weights.ensure(entry, offline=False, download_missing=False)  # not allowed to fetch
    assert server.requests == []
    # online and allowed: ensure downloads
    assert weights.ensure(entry, offline=False, download_missing=True)["last.ckpt"].read_bytes() == PAYLOAD


def test_library_leaves_the_offline_rule_to_its_caller(server, home, monkeypatch):
    """Only the CLI reads CLIPGEN_OFFLINE / HF_HUB_OFFLINE (see the CLI tests below)."""
    entry = entry_for(server)
    monkeypatch.setenv("CLIPGEN_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert weights.ensure(entry, offline=False, download_missing=True)["last.ckpt"].read_bytes() == PAYLOAD


# --------------------------------------------------------------------------- registry


def test_registry_has_the_public_vqgans():
    expected = {"imagenet-f16-16384", "imagenet-f16-1024", "gumbel-f8-8192", "wikiart-f16-16384", "wikiart-f16-1024"}
    assert expected <= set(weights.names("vqgan"))
    for entry in weights.entries("vqgan"):
        # dalle-vqgan is min-dalle's decoder: one state dict, no yaml (generators/vqgan/detoker.py).
        taming_pair = [weights.VQGAN_CONFIG, weights.VQGAN_CHECKPOINT]
        assert [f.filename for f in entry.files] == (["detoker.pt"] if entry.name == "dalle-vqgan" else taming_pair)
        for spec in entry.files:
            assert spec.urls and all(u.startswith("https://") for u in spec.urls)
            assert len(set(spec.urls)) == len(spec.urls)
            assert spec.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
    default = weights.get_entry("imagenet-f16-16384").file(weights.VQGAN_CHECKPOINT)
    assert default.size == 980_092_370 and default.sha256.startswith("845a6880")


def test_the_dalle_entries_are_listed(home, run_cli):
    """DALL-E Mini/Mega and their decoder: min-dalle's files on Hugging Face, digests unpublished."""
    code, out, err = run_cli(["models", "list"])
    assert code == 0, err
    assert all(name in out for name in ("dalle-mini", "dalle-mega", "dalle-vqgan"))
    assert weights.get_entry("dalle-mini").kind == weights.get_entry("dalle-mega").kind == "prior"
    assert weights.get_entry("dalle-vqgan").kind == "vqgan"
    base = "https://huggingface.co/kuprel/min-dalle/resolve/main/"
    files = {name: [(f.filename, f.urls, f.sha256) for f in weights.get_entry(name).files]
             for name in ("dalle-mini", "dalle-mega", "dalle-vqgan")}
    assert files["dalle-mini"] == [(f, (base + f,), None) for f in
                                   ("encoder_mini.pt", "decoder_mini.pt", "vocab_mini.json", "merges_mini.txt")]
    assert files["dalle-mega"] == [(f, (base + f,), None) for f in
                                   ("encoder.pt", "decoder.pt", "vocab.json", "merges.txt")]
    assert files["dalle-vqgan"] == [("detoker.pt", (base + "detoker.pt",), None)]


def test_unknown_name_suggests(home):
    with pytest.raises(ModelError, match="did you mean 'imagenet-f16-16384'"):
        weights.get_entry("imagenet-f16-1638")


def test_build_entry_lays_mirrors_out_per_file():
    entry = build_entry("x", "vqgan", "test", {"a.yaml": FileFacts(size=3), "b.ckpt": FileFacts(sha256="0" * 64)},
                        [("https://m1/a", "https://m1/b"), (None, "https://m2/b"), ("https://m3/a", None)])
    assert entry.file("a.yaml") == FileSpec("a.yaml", ("https://m1/a", "https://m3/a"), size=3)
    assert entry.file("b.ckpt") == FileSpec("b.ckpt", ("https://m1/b", "https://m2/b"), sha256="0" * 64)
    with pytest.raises(ValueError, match="2 files"):
        build_entry("x", "vqgan", "test", {"a": FileFacts(), "b": FileFacts()}, [("https://m1/a",)])


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


def test_cli_list_download_verify_path(registered, home, run_cli):
    code, out, err = run_cli(["models", "list"])
    assert code == 0, err
    assert "imagenet-f16-16384" in out and "tiny-test" in out
    code, out, err = run_cli(["models", "path", "tiny-test"])
    assert code == 2 and "clipgen models download tiny-test" in err
    code, out, err = run_cli(["models", "download", "tiny-test"])
    assert code == 0, err
    code, out, err = run_cli(["models", "path", "tiny-test"])
    assert code == 0 and out.strip() == str(home / "tiny-test")
    code, out, err = run_cli(["models", "verify", "tiny-test"])
    assert code == 0 and out.count(": ok, sha256") == 2
    (home / "tiny-test" / "model.yaml").write_bytes(b"changed")
    code, out, err = run_cli(["models", "verify"])
    assert code == 2 and "model.yaml has 7 bytes" in err


@pytest.mark.parametrize("variable", ["CLIPGEN_OFFLINE", "HF_HUB_OFFLINE"])
def test_cli_offline_download_is_one_line_exit_2(registered, server, monkeypatch, run_cli, variable):
    """The environment is read at the CLI edge and handed to the library as ``offline``."""
    monkeypatch.setenv(variable, "1")
    code, out, err = run_cli(["models", "download", "tiny-test"])
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("clipgen: error:"), err
    assert "clipgen models download tiny-test" in lines[0] and "offline" in lines[0]
    assert "Traceback" not in out + err
    assert server.requests == []


def test_models_errors_take_the_app_error_path(registered, run_cli):
    code, out, err = run_cli(["models", "path", "tiny-tset"])
    assert code == 2 and out == ""
    assert err.startswith("clipgen: error: unknown model 'tiny-tset'; did you mean 'tiny-test'")
    assert err.count("\n") == 1


# --------------------------------------------------------------------------- structure


PACKAGE = Path(clipgen.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _clipgen_imports(path: Path) -> list[tuple[ast.ImportFrom | ast.Import, bool]]:
    """Every import of a clipgen module in ``path``, with whether it is at module level."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "clipgen":
            found.append((node, id(node) in top))
        elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "clipgen" for a in node.names):
            found.append((node, id(node) in top))
    return found


WEIGHTS_FILES = sorted((PACKAGE / "weights").rglob("*.py"))


def test_weights_imports_are_at_module_level():
    late = [f"{path.relative_to(PACKAGE)}:{node.lineno}" for path in WEIGHTS_FILES
            for node, at_top in _clipgen_imports(path) if not at_top]
    assert late == []


def test_no_import_cycle_inside_weights():
    modules = {_module_name(path): path for path in WEIGHTS_FILES}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node, _ in _clipgen_imports(path):
            if isinstance(node, ast.ImportFrom):
                # `from clipgen.weights import builtin` names a module; `import X` from it names the package.
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    targets.add(submodule if submodule in modules else node.module)
            else:
                targets.update(alias.name for alias in node.names)
        graph[name] = {t for t in targets if t in modules}

    def reachable(start: str) -> set[str]:
        seen, todo = set(), list(graph[start])
        while todo:
            module = todo.pop()
            if module not in seen:
                seen.add(module)
                todo.extend(graph[module])
        return seen

    assert [name for name in graph if name in reachable(name)] == []
    assert "clipgen.weights.fetch" not in reachable("clipgen.weights.cache")


def test_no_private_names_cross_into_or_out_of_weights():
    crossing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        inside = path.is_relative_to(PACKAGE / "weights")
        for node, _ in _clipgen_imports(path):
            if not isinstance(node, ast.ImportFrom) or not (inside or node.module.startswith("clipgen.weights")):
                continue
            private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            if private:
                crossing.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.module} {private}")
    assert crossing == []


# --------------------------------------------------------------------------- one-line errors


def test_one_line_keeps_the_first_line_and_cuts_long_ones():
    assert one_line(ValueError("\n  bad header\n  Traceback:\n  more")) == "bad header"
    assert one_line(RuntimeError("x" * 500)) == "x" * 157 + "..."
    assert len(one_line(RuntimeError("y" * 500), limit=40)) == 40
    assert one_line(OSError("short")) == "short"


def test_one_line_of_an_empty_exception_is_its_type():
    assert one_line(KeyboardInterrupt()) == "KeyboardInterrupt"
    assert one_line(ValueError("   \n ")) == "ValueError"


def test_download_of_several_names_checks_every_name_first(registered, server, run_cli):
    code, out, err = run_cli(["models", "download", "tiny-test", "tiny-tset"])
    assert code == 2 and "unknown model 'tiny-tset'" in err and server.requests == []
    code, out, err = run_cli(["models", "download", "tiny-test", "tiny-test"])
    assert code == 0 and err.count("tiny-test: 2 file(s) verified") == 2
