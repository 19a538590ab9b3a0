"""The model catalogue, the cache and pulls, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import socket
import threading
from pathlib import Path

import pytest
import torch

from runtime.cli import main
from runtime.errors import ConfigError
from runtime.generators import build_with_fallback
from runtime.generators.biggan import random_state_dict, standard_config
from runtime.models import (
    ModelError,
    OfflineError,
    list_models,
    load_catalogue,
    lookup,
    pull,
    require_cached,
)
from runtime.show import GENERATOR_KINDS, NEURAL_KINDS, load_show

PAYLOAD = bytes(range(256)) * 2600  # 650 kB: several reads, a visible progress bar
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /weights.bin; the server's attributes choose how it misbehaves."""

    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        server = self.server
        server.ranges_seen.append(self.headers.get("Range"))
        start = 0
        if server.resumes and self.headers.get("Range"):
            start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
            if start >= len(server.payload):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(server.payload) - 1}/*")
        else:
            self.send_response(200)
        body = server.payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cut_after is not None:
            body = body[: server.cut_after]  # then the connection closes early
            server.cut_after = None
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    httpd.payload = PAYLOAD
    httpd.resumes = True
    httpd.cut_after = None
    httpd.ranges_seen = []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def catalogue_for(tmp_path: Path, url: str, sha256: str) -> dict:
    path = tmp_path / "catalogue.toml"
    path.write_text(
        f"""
[tiny]
kind = "stylegan"
licence = "test"
note = "a test file"
files = [{{ name = "weights.bin", url = "{url}", sha256 = "{sha256}", size_mb = 0.65 }}]
"""
    )
    return load_catalogue(path)


def url_of(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/weights.bin"


def test_pull_downloads_with_progress_and_checks_sha256(tmp_path, server, capsys):
    cache = tmp_path / "cache"
    out = io.StringIO()
    path = pull(
        "tiny",
        cache=cache,
        catalogue=catalogue_for(tmp_path, url_of(server), PAYLOAD_SHA),
        out=out,
    )
    assert path == cache / "tiny" / "weights.bin"
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in (cache / "tiny").iterdir()) == ["weights.bin"]  # no .part
    assert "verified" in out.getvalue() and PAYLOAD_SHA in out.getvalue()
    err = capsys.readouterr().err
    assert "weights.bin" in err and "100%" in err and "650k/650k" in err  # tqdm's bar
    again = io.StringIO()
    pull("tiny", cache=cache, catalogue=catalogue_for(tmp_path, url_of(server), ""), out=again)
    assert "already cached" in again.getvalue()
    assert len(server.ranges_seen) == 1  # the second pull downloaded nothing


def test_sha256_mismatch_is_refused_and_nothing_is_kept(tmp_path, server):
    cache = tmp_path / "cache"
    wrong = "0" * 64
    catalogue = catalogue_for(tmp_path, url_of(server), wrong)
    with pytest.raises(ModelError, match=f"sha256 mismatch: got {PAYLOAD_SHA}, expected {wrong}"):
        pull("tiny", cache=cache, catalogue=catalogue, progress=False)
    assert list((cache / "tiny").iterdir()) == []
    assert catalogue["tiny"].missing(cache)


def test_interrupted_download_resumes(tmp_path, server):
    cache = tmp_path / "cache"
    catalogue = catalogue_for(tmp_path, url_of(server), PAYLOAD_SHA)
    server.cut_after = 200_000
    with pytest.raises(ModelError, match=r"interrupted at 200000 of 665600 bytes.*resume"):
        pull("tiny", cache=cache, catalogue=catalogue, progress=False)
    part = cache / "tiny" / "weights.bin.part"
    assert part.stat().st_size == 200_000 and not (cache / "tiny" / "weights.bin").exists()
    path = pull("tiny", cache=cache, catalogue=catalogue, progress=False)
    assert server.ranges_seen == [None, "bytes=200000-"]
    assert path.read_bytes() == PAYLOAD and not part.exists()


def test_server_that_cannot_resume_restarts_cleanly(tmp_path, server):
    cache = tmp_path / "cache"
    catalogue = catalogue_for(tmp_path, url_of(server), PAYLOAD_SHA)
    server.cut_after = 100_000
    with pytest.raises(ModelError, match="interrupted"):
        pull("tiny", cache=cache, catalogue=catalogue, progress=False)
    server.resumes = False  # answers a Range request with the whole file (200)
    path = pull("tiny", cache=cache, catalogue=catalogue, progress=False)
    assert server.ranges_seen[-1] == "bytes=100000-"
    assert path.read_bytes() == PAYLOAD  # not the first 100 kB twice


def test_stale_part_longer_than_the_file_restarts(tmp_path, server):
    cache = tmp_path / "cache"
    (cache / "tiny").mkdir(parents=True)
    (cache / "tiny" / "weights.bin.part").write_bytes(b"x" * (len(PAYLOAD) + 10))
    catalogue = catalogue_for(tmp_path, url_of(server), PAYLOAD_SHA)
    path = pull("tiny", cache=cache, catalogue=catalogue, progress=False)
    assert server.ranges_seen == [f"bytes={len(PAYLOAD) + 10}-", None]  # 416, then afresh
    assert path.read_bytes() == PAYLOAD


def test_offline_says_which_file_goes_where(tmp_path):
    with socket.socket() as s:  # a port nothing listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/weights.bin"
    cache = tmp_path / "cache"
    with pytest.raises(OfflineError) as info:
        pull("tiny", cache=cache, catalogue=catalogue_for(tmp_path, url, PAYLOAD_SHA))
    message = str(info.value)
    assert f"download {url} to {cache / 'tiny' / 'weights.bin'}" in message
    assert f"sha256 {PAYLOAD_SHA}" in message and "models pull tiny" in message
    assert not (cache / "tiny" / "weights.bin").exists()


def test_unverified_file_needs_a_checksum_or_consent(tmp_path, server):
    cache = tmp_path / "cache"
    catalogue = catalogue_for(tmp_path, url_of(server), "")
    with pytest.raises(ModelError, match=r"no verified sha256.*--accept-unverified"):
        pull("tiny", cache=cache, catalogue=catalogue, progress=False)
    assert server.ranges_seen == []  # refused before downloading
    with pytest.raises(ModelError, match="sha256 mismatch"):
        pull("tiny", sha256="1" * 64, cache=cache, catalogue=catalogue, progress=False)
    out = io.StringIO()
    pull("tiny", accept_unverified=True, cache=cache, catalogue=catalogue, out=out)
    assert "NOT verified" in out.getvalue() and PAYLOAD_SHA in out.getvalue()
    assert "cached" in list_models(cache=cache, catalogue=catalogue)[0]


def test_project_catalogue_is_well_formed():
    catalogue = load_catalogue()
    assert {"biggan-deep-128", "biggan-deep-256", "biggan-deep-512"} <= set(catalogue)
    assert any(name.startswith("stylegan3-") for name in catalogue)
    assert any(name.startswith("stylegan2-ada-") for name in catalogue)
    for model in catalogue.values():
        assert model.kind in (*GENERATOR_KINDS, *NEURAL_KINDS, "clip") and model.licence
        for f in model.files:
            assert f.bundled is not None or f.url.startswith("https://")
    for res in (128, 256, 512):
        bundled = catalogue[f"biggan-deep-{res}"].files[0].bundled
        assert json.loads(bundled.read_text()) == standard_config(res).to_json()


def test_torchvision_entries_are_torchvisions_own_downloads():
    """Each tv-NAME entry downloads what torchvision itself would for NAME, and its
    file name carries the sha256 digits the pull checks."""
    import torchvision

    catalogue = load_catalogue()
    entries = {name: m for name, m in catalogue.items() if name.startswith("tv-")}
    assert "tv-googlenet" in entries
    for name, model in entries.items():
        assert model.kind == "dream"
        url = torchvision.models.get_model_weights(name.removeprefix("tv-")).DEFAULT.url
        (file,) = model.files
        assert file.url == url and file.name == url.rsplit("/", 1)[-1]
        assert file.sha256 is None and len(file.sha256_prefix) == 8


def test_sha256_digits_in_the_file_name_are_checked(tmp_path, server):
    """A torchvision-style name (weights-HASH.bin) needs no --accept-unverified: the
    download is kept when its sha256 starts with HASH, refused when it does not."""
    cache = tmp_path / "cache"
    good = url_of(server).replace("weights.bin", f"weights-{PAYLOAD_SHA[:8]}.bin")
    catalogue = catalogue_for(tmp_path, good, "")
    assert catalogue["tiny"].files[0].sha256_prefix == PAYLOAD_SHA[:8]
    out = io.StringIO()
    pull("tiny", cache=cache, catalogue=catalogue, out=out, progress=False)
    assert "first 8 hex digits match" in out.getvalue()
    assert "prefix from the file name" in list_models(cache=cache, catalogue=catalogue)[0]

    bad = url_of(server).replace("weights.bin", "weights-00000000.bin")
    catalogue = catalogue_for(tmp_path, bad, "")
    with pytest.raises(ModelError, match="does not start with 00000000"):
        pull("tiny", cache=tmp_path / "other", catalogue=catalogue, progress=False)
    assert not (tmp_path / "other" / "tiny" / "weights.bin").exists()


def test_bad_catalogue_entry_names_the_key(tmp_path):
    path = tmp_path / "catalogue.toml"
    path.write_text('[x]\nkind = "biggan"\nlicence = "l"\nfiles = [{ name = "a", url = "u" }]\n')
    with pytest.raises(ConfigError, match="missing required key 'sha256'"):
        load_catalogue(path)
    path.write_text(
        '[x]\nkind = "biggan"\nlicence = "l"\nfiles = [{ name = "a", url = "u", sha256 = "ab" }]\n'
    )
    with pytest.raises(ConfigError, match="expected 64 hex digits"):
        load_catalogue(path)


def test_show_names_a_cached_model(tmp_path, monkeypatch):
    """`model = "biggan-deep-128"` plays what is in the cache, or falls back and says
    how to pull it."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("LATENTSTAGE_MODELS", str(cache))
    show_path = tmp_path / "show.toml"
    show_path.write_text(
        '[generator]\nkind = "biggan"\nmodel = "biggan-deep-128"\ndevice = "cpu"\n'
        'classes = ["goldfinch"]\n'
    )
    show = load_show(show_path)
    assert show.generator.weights == cache / "biggan-deep-128"
    generator, problem = build_with_fallback(show.generator)
    assert generator.kind == "cppn"
    assert "models pull biggan-deep-128" in problem and str(cache / "biggan-deep-128") in problem

    # A tiny network standing in for the real one, placed where the pull would put it.
    folder = cache / "biggan-deep-128"
    folder.mkdir(parents=True)
    config = standard_config(128, channel_width=8)
    (folder / "config.json").write_text(json.dumps(config.to_json()))
    torch.save(random_state_dict(config), folder / "pytorch_model.bin")
    assert require_cached("biggan-deep-128") == folder
    generator, problem = build_with_fallback(load_show(show_path).generator)
    assert problem is None and generator.kind == "biggan" and generator.size_px == (128, 128)


def test_show_model_mistakes_are_config_errors(tmp_path):
    show_path = tmp_path / "show.toml"
    show_path.write_text('[generator]\nkind = "biggan"\nmodel = "biggan-deep-12"\n')
    with pytest.raises(ConfigError, match=r"'model'.*did you mean 'biggan-deep-\d+'"):
        load_show(show_path)
    show_path.write_text('[generator]\nkind = "biggan"\nmodel = "stylegan3-t-ffhq-1024"\n')
    with pytest.raises(ConfigError, match='set kind = "stylegan"'):
        load_show(show_path)
    show_path.write_text('[generator]\nkind = "biggan"\nmodel = "biggan-deep-128"\nweights = "x"\n')
    with pytest.raises(ConfigError, match="either 'weights'"):
        load_show(show_path)
    assert lookup("biggan-deep-256").weights_path().name == "biggan-deep-256"


def test_cli_models_list_and_pull_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LATENTSTAGE_MODELS", str(tmp_path))
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert f"model cache: {tmp_path}" in out and "biggan-deep-512" in out
    assert main(["models", "pull", "no-such-model"]) == 1
    assert "no model 'no-such-model'" in capsys.readouterr().err
