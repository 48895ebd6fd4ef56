"""The local Hub speaks the Hub's protocol to huggingface_hub's own client (and to MASUKA's download code)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from masuka_nb.errors import GatedModelError


@pytest.fixture
def repo(tmp_path) -> Path:
    folder = tmp_path / "repo"
    (folder / "transformer").mkdir(parents=True)
    (folder / "model_index.json").write_text('{"_class_name": "FluxPipeline"}')
    (folder / "transformer" / "config.json").write_text('{"num_layers": 1}')
    # over huggingface_hub's 10 MB download chunk, so a cut connection leaves bytes to resume from
    (folder / "transformer" / "w.safetensors").write_bytes(os.urandom(24_000_000))
    (folder / "big-checkpoint.safetensors").write_bytes(b"x" * 100)
    return folder


def test_listing_patterns_and_lfs_redirect_through_huggingface_hub(on_local_hub, repo, tmp_path):
    from huggingface_hub import HfApi, snapshot_download

    hub = on_local_hub
    commit = hub.add_repo("me/model", repo)
    info = HfApi().model_info("me/model", files_metadata=True)
    assert info.sha == commit
    assert {s.rfilename: s.size for s in info.siblings}["transformer/w.safetensors"] == 24_000_000
    hub.clear_log()
    out = Path(snapshot_download("me/model", allow_patterns=["transformer/*"], local_dir=tmp_path / "dl"))
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and ".cache" not in p.parts) \
        == ["transformer/config.json", "transformer/w.safetensors"]
    assert sorted(hub.downloads()) == ["transformer/config.json", "transformer/w.safetensors"]
    cdn = [e for e in hub.log if e["server"] == "cdn"]
    assert cdn and not any(e["auth"] for e in cdn)  # the token never leaves the Hub for the CDN
    sha = hashlib.sha256((out / "transformer/w.safetensors").read_bytes()).hexdigest()
    assert sha == hub.files("me/model")["transformer/w.safetensors"].sha256


def test_a_cut_download_resumes_with_a_range_request(on_local_hub, repo, tmp_path):
    from huggingface_hub import hf_hub_download

    hub = on_local_hub
    hub.add_repo("me/resume", repo)
    hub.cut_next_download("w.safetensors", after=12_000_000)
    path = hf_hub_download("me/resume", "transformer/w.safetensors", local_dir=tmp_path / "dl")
    assert Path(path).read_bytes() == (repo / "transformer" / "w.safetensors").read_bytes()
    ranges = [e["range"] for e in hub.log if e["server"] == "cdn" and e["repo"] == "me/resume"]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-", ranges


def test_revisions_branch_moves_and_old_commit_stays(on_local_hub, repo, tmp_path):
    from huggingface_hub import hf_hub_download

    hub = on_local_hub
    first = hub.add_repo("me/rev", repo)
    (repo / "model_index.json").write_text('{"_class_name": "FluxPipeline", "v": 2}')
    second = hub.add_repo("me/rev", repo)
    assert first != second
    new = hf_hub_download("me/rev", "model_index.json", cache_dir=tmp_path / "c")
    old = hf_hub_download("me/rev", "model_index.json", revision=first, cache_dir=tmp_path / "c")
    assert '"v": 2' in Path(new).read_text() and '"v"' not in Path(old).read_text()
    from huggingface_hub import errors

    with pytest.raises(errors.RevisionNotFoundError):
        hf_hub_download("me/rev", "model_index.json", revision="nope", cache_dir=tmp_path / "c")


def test_gated_repo_is_refused_without_a_granted_token_and_masuka_says_how_to_fix(on_local_hub, repo, tmp_path,
                                                                                   monkeypatch):
    from huggingface_hub import errors, hf_hub_download

    from masuka_nb.hub import DownloadPlan, _snapshot

    hub = on_local_hub
    hub.add_repo("black-forest-labs/FLUX.1-dev", repo, gated=True)
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(errors.GatedRepoError) as no_token:
        hf_hub_download("black-forest-labs/FLUX.1-dev", "model_index.json", cache_dir=tmp_path / "c")
    assert no_token.value.response.status_code == 401
    hub.grant("hf_someone_else")
    with pytest.raises(errors.GatedRepoError) as not_granted:
        hf_hub_download("black-forest-labs/FLUX.1-dev", "model_index.json", cache_dir=tmp_path / "c",
                        token="hf_someone_else")
    assert not_granted.value.response.status_code == 403
    dplan = DownloadPlan("black-forest-labs/FLUX.1-dev", "main", ("model_index.json",), ())
    with pytest.raises(GatedModelError) as err:  # MASUKA's own download path, translated once
        _snapshot(dplan, tmp_path / "target")
    assert "HF_TOKEN" in err.value.hint and "huggingface.co/black-forest-labs/FLUX.1-dev" in err.value.hint
    hub.grant("hf_someone_else", "black-forest-labs/FLUX.1-dev")
    monkeypatch.setenv("HF_TOKEN", "hf_someone_else")
    _snapshot(dplan, tmp_path / "target")
    assert (tmp_path / "target" / "model_index.json").is_file()


def test_tree_listing_pages_are_followed(on_local_hub, repo):
    from huggingface_hub import HfApi

    hub = on_local_hub
    hub.add_repo("me/pages", repo)
    hub.page_size = 2
    try:
        listed = sorted(f.path for f in HfApi().list_repo_tree("me/pages", recursive=True))
    finally:
        hub.page_size = 1000
    assert listed == ["big-checkpoint.safetensors", "model_index.json", "transformer", "transformer/config.json",
                      "transformer/w.safetensors"]
    assert sum(1 for e in hub.log if "/tree/" in e["path"]) >= 3


def test_command_line_serves_a_folder_of_repos(tmp_path, repo):
    root = tmp_path / "root" / "me"
    root.mkdir(parents=True)
    repo.rename(root / "model")
    proc = subprocess.Popen([sys.executable, "-m", "masuka_nb.testing.hub", str(tmp_path / "root"), "--gated",
                             "me/model", "--token", "t0k"], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    try:
        line = proc.stdout.readline()
        url = line.split(" on ")[1].strip()
        import httpx

        assert httpx.get(f"{url}/api/models/me/model").json()["gated"] == "manual"
        head = httpx.head(f"{url}/me/model/resolve/main/model_index.json")
        assert head.status_code == 401 and head.headers["X-Error-Code"] == "GatedRepo"
        ok = httpx.get(f"{url}/me/model/resolve/main/model_index.json", headers={"authorization": "Bearer t0k"})
        assert ok.status_code == 200 and ok.headers["X-Repo-Commit"] and "FluxPipeline" in ok.text
    finally:
        proc.terminate()
        proc.wait(timeout=10)
