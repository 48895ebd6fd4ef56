"""Fault matrix, part B of issue 16: state files, checkpoints, disks, concurrent writers, limits, caches,
sync, HTML and argument checking. Everything here goes through real files, real processes, a real small
disk (tmpfs in a mount namespace), real loopback HTTP and a real S3/GCS protocol server.

The module counts what it does and prints one line at the end (the lead adds part A's counts):
faults injected, hand-made hostile inputs, generated (hypothesis) inputs, raw exceptions, data lost.
A raw exception or a lost file fails the test that met it, so the printed raw and lost counts are 0
exactly when the module passes.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import masuka_nb as mk
from masuka_nb import history, storage
from masuka_nb.errors import MasukaError
from masuka_nb.history import HistoryRecord

ROOT = Path(__file__).resolve().parents[1]
COUNTS: Counter[str] = Counter(faults=0, hostile=0, generated=0, raw=0, lost=0)
TINY = {"model": "tiny-flux", "width": 64, "height": 64, "steps": 1}


@pytest.fixture(scope="module", autouse=True)
def _print_counts(request):
    yield
    line = (f"fault matrix, state (part B): faults injected {COUNTS['faults']}, hostile inputs {COUNTS['hostile']}, "
            f"generated inputs {COUNTS['generated']}, raw exceptions {COUNTS['raw']}, data lost {COUNTS['lost']}")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        print("\n" + line)  # on the terminal even without -s: the lead adds it to part A's line


def outcome(fn, *args, **kwargs):
    """The result, or the MasukaError raised; anything else is counted as raw and fails the test."""
    try:
        return fn(*args, **kwargs)
    except MasukaError as exc:
        return exc
    except BaseException as exc:
        COUNTS["raw"] += 1
        raise AssertionError(f"raw {type(exc).__name__} from {getattr(fn, '__name__', fn)}: {exc}") from exc


def kept(condition: bool, what: str) -> None:
    """A data-loss check: counted when it fails."""
    if not condition:
        COUNTS["lost"] += 1
    assert condition, f"data lost: {what}"


def png_bytes(k: int, size: int = 300) -> bytes:
    arr = np.random.default_rng(k).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# ---------------------------------------------------------------------------------------------------------
# State files that fail alone: history
# ---------------------------------------------------------------------------------------------------------

BAD_RECORDS = {
    "a list": b"[]",
    "a bad created_at": json.dumps({"kind": "image", "status": "ok", "created_at": "yesterday", "id": "x"}).encode(),
    "cut short": b'{"kind": "image", "status": "ok", "created_at": "2026-12-01T10:00:00+00:00", "pro',
    "not UTF-8": b'{"kind": "image", "prompt": "caf\xe9"}',
    "a recipe that is a list": json.dumps({"kind": "image", "status": "ok", "recipe": [1, 2],
                                           "created_at": "2026-12-01T10:00:00+00:00"}).encode(),
    "paths that are not paths": json.dumps({"kind": "image", "status": "ok", "paths": [1, {"a": 2}],
                                            "created_at": "2026-12-01T10:00:00+00:00"}).encode(),
    "null bytes": b"\x00" * 64,
    "nested too deep": b"[" * 100_000 + b"]" * 100_000,
    "a number": b"42",
    "no kind": json.dumps({"status": "ok", "created_at": "2026-12-01T10:00:00+00:00"}).encode(),
}


@pytest.mark.parametrize("what", sorted(BAD_RECORDS))
def test_one_bad_history_record_is_quarantined_and_everything_else_keeps_working(what, masuka_home, caplog):
    good = history.record(HistoryRecord(kind="image", status="ok", model="tiny-flux", prompt="kept",
                                        timings={"generate": 0.5}, recipe={"steps": 1, "width": 64, "height": 64}))
    folder = next(p for p in (masuka_home / "history").iterdir() if p.is_dir())
    bad = folder / "20261201T100000000000-badbad.json"
    bad.write_bytes(BAD_RECORDS[what])
    COUNTS["faults"] += 1
    with caplog.at_level(logging.WARNING, logger="masuka_nb"):
        got = outcome(history.query)
        assert [r.id for r in got] == [good.id]
        assert [r.id for r in outcome(history.query, since="2026-01-01", kind="image")] == [good.id]
    assert not bad.exists() and len(list((folder / "quarantine").iterdir())) == 1
    assert sum("could not be read" in w for w in _warnings(caplog)) == 1  # one warning, once
    kept(history.get(good.id).prompt == "kept", "the good record")
    from masuka_nb.ui.helpers import history_stats

    stats = outcome(history_stats, history.history().all())
    assert stats.total == 1


def test_the_history_and_dashboard_tabs_batch_and_its_estimate_survive_a_history_holding_a_list(masuka_home):
    pytest.importorskip("ipywidgets")
    from masuka_nb.ui.dashboard import DashboardPanel
    from masuka_nb.ui.gallery import HistoryPanel

    folder = masuka_home / "history" / "2026-12"
    folder.mkdir(parents=True)
    (folder / "20261201T000000000000-aaaaaa.json").write_text("[]")
    (folder / "20261201T000000000001-bbbbbb.json").write_text(
        json.dumps({"kind": "image", "status": "ok", "created_at": "not a date"}))
    COUNTS["faults"] += 2
    tab = HistoryPanel()
    outcome(tab.refresh)
    dash = DashboardPanel()
    outcome(dash.refresh)
    assert dash.stats.total == 0
    est = outcome(mk.batch.estimate, "a {red|blue} car", model="tiny-flux")
    assert est.images == 2
    res = outcome(mk.batch, ["a fox"], seeds=[1], **TINY)
    assert res.status == "ok" and res.paths[0].is_file()
    assert len(list((folder / "quarantine").iterdir())) == 2


HISTORY_WRITER = """
import sys
from masuka_nb import history
from masuka_nb.history import HistoryRecord
for i in range(int(sys.argv[2])):
    history.record(HistoryRecord(kind="image", status="ok", prompt=f"{sys.argv[1]}-{i}"))
"""


def test_two_processes_recording_at_once_lose_no_history_record(masuka_home, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(HISTORY_WRITER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, str(script), name, "60"], env=env) for name in ("a", "b")]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    COUNTS["faults"] += 1
    prompts = {r.prompt for r in history.query()}
    kept(prompts == {f"{n}-{i}" for n in "ab" for i in range(60)}, f"{120 - len(prompts)} history records")


def test_a_full_history_write_after_a_saved_image_is_a_warning_not_a_failure(masuka_home, monkeypatch):
    """In process (the child-process matrix below does it on a real read-only mount too)."""
    from masuka_nb.errors import DiskFullError

    def full(_rec):
        raise DiskFullError("Could not write the history: the disk is full.", argument="path", value="history")

    monkeypatch.setattr(history.History, "record", lambda self, rec: full(rec))
    COUNTS["faults"] += 1
    res = outcome(mk.generate, "history is full", seed=4, **TINY)
    assert not isinstance(res, MasukaError), res
    kept(res.paths and res.paths[0].is_file(), "the saved image")
    assert any("history could not be updated" in w for w in res.warnings)
    out = outcome(mk.batch, ["a hen"], seeds=[2], **TINY)
    assert out.status == "ok" and out.paths and any("history could not be updated" in w for w in out.warnings)


# ---------------------------------------------------------------------------------------------------------
# Datasets: manifests read item by item, concurrent imports, limits on what is read
# ---------------------------------------------------------------------------------------------------------

@pytest.fixture
def ds():
    from masuka_nb.lora import Dataset

    d = Dataset.create("fm")
    d.import_files([(f"i{k}.png", png_bytes(k)) for k in range(3)])
    d.set_caption("i0.png", "a caption")  # a second save: dataset.json.bak holds the first
    return d


@pytest.mark.parametrize("damage", ["[]", "{\"items\": 5", "\x00\x00", "null"])
def test_a_damaged_manifest_is_quarantined_and_its_last_good_copy_read(ds, damage):
    from masuka_nb.lora import Dataset

    (ds.root / "dataset.json").write_text(damage)
    COUNTS["faults"] += 1
    again = outcome(Dataset.load, "fm")
    assert not isinstance(again, MasukaError), again
    kept(len(again.items) == 3, "dataset items after a damaged manifest")
    assert (ds.root / "quarantine").is_dir()


def test_a_bad_manifest_item_is_set_aside_and_the_rest_load(ds):
    from masuka_nb.lora import Dataset

    data = json.loads((ds.root / "dataset.json").read_text())
    data["items"] += [{"file": "../../../etc/passwd", "sha256": "x", "width": 1, "height": 1}, "junk",
                      {"file": "images/a.png", "sha256": "y", "width": "wide", "height": 1}]
    (ds.root / "dataset.json").write_text(json.dumps(data))
    COUNTS["faults"] += 3
    again = outcome(Dataset.load, "fm")
    kept(len(again.items) == 3, "good items beside bad ones")
    assert all(it.file.startswith("images/") for it in again.items)
    (aside,) = (ds.root / "quarantine").iterdir()
    assert len(json.loads(aside.read_text())) == 3


IMPORTER = """
import io, sys
import numpy as np
from PIL import Image
from masuka_nb.lora import Dataset
k0 = int(sys.argv[1])
def png(k):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(k).integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
report = Dataset.load("together").import_files([(f"i{k}.png", png(k)) for k in range(k0, k0 + 12)])
assert len(report.imported) == 12, report.summary()
"""


def test_two_imports_into_one_dataset_at_once_both_land(masuka_home, tmp_path):
    from masuka_nb.lora import Dataset

    Dataset.create("together")
    script = tmp_path / "importer.py"
    script.write_text(IMPORTER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, str(script), str(k0)], env=env) for k0 in (0, 100)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    COUNTS["faults"] += 1
    listed = Dataset.load("together").items
    on_disk = [p for p in (masuka_home / "datasets" / "together" / "images").iterdir() if p.suffix == ".png"]
    kept(len(listed) == 24 and len(on_disk) == 24, f"{len(listed)} of 24 images listed in the manifest")


def test_dev_zero_devices_fifos_sockets_and_big_files_are_refused_one_by_one(ds, tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    sock_path = tmp_path / "s.png"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    big = tmp_path / "big.png"
    big.write_bytes(png_bytes(7) + b"\0" * 2048)
    good = tmp_path / "good.png"
    good.write_bytes(png_bytes(8))
    sources = ["/dev/zero", "/dev/urandom", str(fifo), str(sock_path), str(big), str(good), str(tmp_path)]
    COUNTS["hostile"] += len(sources)
    result: list = []
    worker = threading.Thread(target=lambda: result.append(outcome(ds.import_files, sources,
                                                                   max_file_bytes=len(png_bytes(8)) + 100)))
    worker.start()
    worker.join(timeout=120)  # a FIFO opened for reading would block here for ever
    server.close()
    assert not worker.is_alive(), "reading a FIFO or /dev/zero hung"
    report = result[0]
    assert [it.source for it in report.imported] == [str(good)]
    reasons = {r.source: r.reason for r in report.rejected}
    assert "device" in reasons["/dev/zero"] and "FIFO" in reasons[str(fifo)] and "socket" in reasons[str(sock_path)]
    assert "above the limit" in reasons[str(big)] and "folder" in reasons[str(tmp_path)]


def test_a_write_never_replaces_a_device_or_a_pipe(ds, tmp_path):
    """Renaming over a special file would swap it for a regular one (as root: /dev/zero for the machine)."""
    import stat

    pipes = [tmp_path / "out.zip", tmp_path / "blob.bin", tmp_path / "clip.mp4"]
    for pipe in pipes:
        os.mkfifo(pipe)
    calls = [lambda: ds.to_zip(pipes[0]), lambda: storage.atomic_write_bytes(pipes[1], b"x"),
             lambda: mk.to_video([Image.new("RGB", (16, 16))] * 2, path=pipes[2])]
    for call in calls:
        COUNTS["hostile"] += 1
        err = outcome(call)
        assert isinstance(err, MasukaError) and "not a file to write" in err.message
    kept(all(stat.S_ISFIFO(os.stat(p).st_mode) for p in pipes), "a FIFO was replaced by a file")


def test_import_folder_skips_a_fifo_and_reads_captions_in_any_encoding(ds, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes(11))
    (folder / "a.txt").write_bytes("caf\xe9 au lait, na\xefve".encode("cp1252"))
    (folder / "b.png").write_bytes(png_bytes(12))
    (folder / "b.txt").write_bytes(b"\x00\x01\x02 not text")
    (folder / "c.png").write_bytes(png_bytes(13))
    (folder / "c.txt").write_bytes("\ufeffutf-8 with a BOM".encode())
    os.mkfifo(folder / "d.png")
    COUNTS["hostile"] += 4
    report = outcome(ds.import_folder, folder)
    assert len(report.imported) == 3 and not report.rejected
    caps = {Path(it.source).name: it.caption for it in report.imported}
    assert caps == {"a.png": "café au lait, naïve", "b.png": "", "c.png": "utf-8 with a BOM"}
    assert any("b.txt" in w for w in report.warnings)
    (ds.images_dir / f"{report.imported[0].stem}.txt").write_bytes(b"\xff\xfe" + "utf-16 caption".encode("utf-16-le"))
    assert outcome(ds.sync_captions) == 1 and ds.items[-3].caption == "utf-16 caption"


# ---------------------------------------------------------------------------------------------------------
# Limits: templates counted before expanding, text files one by one
# ---------------------------------------------------------------------------------------------------------

def test_a_wildcard_line_with_23_choice_groups_is_counted_not_expanded(tmp_path):
    from masuka_nb.creative.templates import count, expand

    (tmp_path / "big.txt").write_text("".join("{a|b}" for _ in range(23)) + "\n")
    COUNTS["hostile"] += 3
    tracemalloc.start()
    try:
        picks = outcome(expand, "__big__", mode="random", count=1, wildcards_dir=tmp_path)
        refused = outcome(expand, "__big__", wildcards_dir=tmp_path)
        estimate = outcome(mk.batch.estimate, "x __big__", model="tiny-flux", wildcards_dir=tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(picks) == 1 and len(picks[0]) == 23 and set(picks[0]) <= {"a", "b"}
    assert isinstance(refused, MasukaError) and "8,388,608 prompts" in refused.message
    assert isinstance(estimate, MasukaError) and estimate.code == "INVALID_REQUEST"
    assert count("__big__", wildcards_dir=tmp_path) == 2**23
    assert peak < 50 * 1024**2, f"expanding took {peak / 1e6:.0f} MB"  # the old code held 0.9 GB


def test_wildcards_that_nest_deep_or_name_themselves_are_refused_by_count(tmp_path):
    from masuka_nb.creative.templates import count, expand

    for k in range(4):  # each file: 10 lines, each naming the next file twice: text stays small, prompts do not
        (tmp_path / f"w{k}.txt").write_text("\n".join(f"x{i} __w{k + 1}__ __w{k + 1}__" for i in range(10)))
    (tmp_path / "w4.txt").write_text("\n".join(f"end{i}" for i in range(10)))
    (tmp_path / "loop.txt").write_text("__loop__\n")
    COUNTS["hostile"] += 2
    assert count("__w0__", wildcards_dir=tmp_path) == 10**31  # 10·(10·(10·(10·10²)²)²)²
    assert isinstance(outcome(expand, "__w0__", wildcards_dir=tmp_path), MasukaError)
    assert len(outcome(expand, "__w0__", mode="random", count=3, wildcards_dir=tmp_path)) == 3
    err = outcome(expand, "__loop__", wildcards_dir=tmp_path)
    assert isinstance(err, MasukaError) and "names itself" in err.message


def test_non_utf8_wildcard_and_prompt_files_are_read_or_refused_one_by_one(tmp_path):
    from masuka_nb.creative.templates import expand, read_prompts

    (tmp_path / "latin.txt").write_bytes("caf\xe9\nna\xefve\n".encode("cp1252"))
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    prompts = tmp_path / "prompts.txt"
    prompts.write_bytes("une cr\xeape\n# comment\nun g\xe2teau\n".encode("cp1252"))
    COUNTS["hostile"] += 3
    assert outcome(expand, "__latin__", wildcards_dir=tmp_path) == ["café", "naïve"]
    err = outcome(expand, "__binary__", wildcards_dir=tmp_path)
    assert isinstance(err, MasukaError) and "binary.txt" in err.message and "not a text file" in err.message
    assert outcome(read_prompts, prompts) == ["une crêpe", "un gâteau"]


# ---------------------------------------------------------------------------------------------------------
# Training checkpoints: no pickle, and resume from the newest intact one
# ---------------------------------------------------------------------------------------------------------

def _train(ds, **extra):
    from masuka_nb import lora

    args = dict(base="tiny-flux", trigger_word="mk", steps=6, learning_rate=1e-2, resolution=32, checkpoint_every=2,
                target_modules="double-blocks", name="fm-run")
    return lora.train(ds, **{**args, **extra})


@pytest.fixture
def interrupted(ds):
    """A run stopped after step 5: checkpoints at steps 2, 4 and 5."""
    from masuka_nb.progress import CancelToken

    token = CancelToken()

    def progress(event):
        if event.data.get("global_step") == 5:
            token.cancel("stop")

    err = outcome(_train, ds, cancel=token, progress=progress)
    assert isinstance(err, MasukaError) and err.code == "CANCELLED"
    from masuka_nb.lora import TrainingRun

    run = TrainingRun.load("fm-run")
    assert [c.name for c in run.checkpoints] == ["step-0000004", "step-0000005"]
    return run


def test_a_damaged_newest_checkpoint_is_quarantined_and_resume_takes_the_older_one(interrupted):
    newest = interrupted.checkpoints[-1]
    data = (newest / "trainer.safetensors").read_bytes()
    (newest / "trainer.safetensors").write_bytes(data[: len(data) // 2])
    COUNTS["faults"] += 1
    run = outcome(interrupted.resume)
    assert not isinstance(run, MasukaError), run
    assert run.finished and run.stats["resumed_from"] == 4 and run.lora_path.is_file()
    moved = [p.name.split(".")[0] for p in (run.run_dir / "checkpoints" / "quarantine").iterdir()]
    assert moved == ["step-0000005"]


def test_with_no_intact_checkpoint_left_resume_starts_over_instead_of_failing(interrupted, caplog):
    (interrupted.checkpoints[-1] / "lora.safetensors").write_bytes(b"\0" * 100)
    (interrupted.checkpoints[-2] / "state.json").write_text("{\"step\": 4, \"format\": 2, \"files\": ")
    COUNTS["faults"] += 2
    with caplog.at_level(logging.WARNING, logger="masuka_nb"):
        run = outcome(interrupted.resume)
    assert not isinstance(run, MasukaError), run
    assert run.finished and run.step == 6 and "resumed_from" not in run.stats
    assert any("no intact checkpoint" in w for w in _warnings(caplog))


def test_a_damaged_state_or_run_file_is_a_masuka_error_or_the_backup(interrupted):
    from masuka_nb.lora import TrainingRun

    (interrupted.checkpoints[-1] / "state.json").write_text("{not json")
    (interrupted.run_dir / "run.json").write_text("[]")
    (interrupted.run_dir / "loss.json").write_bytes(b"\xff\xfe\x00")
    COUNTS["faults"] += 3
    run = outcome(TrainingRun.load, "fm-run")
    assert not isinstance(run, MasukaError), run
    assert run.step == 4 and run.config.steps == 6  # from run.json.bak and the newest state.json that reads
    (interrupted.run_dir / "run.json").write_text("{")
    (interrupted.run_dir / "run.json.bak").write_text("{")
    COUNTS["faults"] += 1
    err = outcome(TrainingRun.load, "fm-run")
    assert isinstance(err, MasukaError) and err.code == "TRAINING_FAILED"


def test_a_planted_pickle_in_an_old_checkpoint_never_runs(interrupted, tmp_path):
    """A format-1 checkpoint (`*.pt` pickles) is read with weights_only=True: a payload is data, refused."""
    import torch

    from masuka_nb.lora.checkpoints import Damaged, read_checkpoint

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    old = interrupted.checkpoints[-1]
    state = json.loads((old / "state.json").read_text())
    state.pop("format")
    (old / "state.json").write_text(json.dumps(state))
    for name in ("optimizer.pt", "scheduler.pt"):
        torch.save({"state": {}, "param_groups": []}, old / name)
    torch.save({"torch": torch.get_rng_state(), "evil": Payload()}, old / "rng.pt")
    COUNTS["faults"] += 1
    with pytest.raises(Damaged, match="plain data"):
        read_checkpoint(old)
    assert not marker.exists()


def test_no_torch_load_in_the_package_goes_without_weights_only_true():
    offenders = []
    for path in (ROOT / "masuka_nb").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                flag = next((k.value for k in node.keywords if k.arg == "weights_only"), None)
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


# ---------------------------------------------------------------------------------------------------------
# Caches that heal
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["[]", "{\"paths\": 5}", "{\"paths\": [\"/etc/passwd\"], \"sha256\": [\"x\"]}",
                                    "not json"])
def test_a_wrong_shaped_result_cache_entry_is_a_miss_and_rebuilt(masuka_home, damage):
    first = mk.generate("cache me", seed=7, **TINY)
    entry = next(p for p in (Path(mk.settings().cache_dir) / "results").rglob("*.json")
                 if str(first.paths[0]) in p.read_text())
    entry.write_text(damage)
    COUNTS["faults"] += 1
    again = outcome(mk.generate, "cache me", seed=7, **TINY)
    assert not again.cached and np.array_equal(np.asarray(again.image), np.asarray(first.image))
    assert json.loads(entry.read_text())["sha256"]  # rebuilt
    assert outcome(mk.generate, "cache me", seed=7, **TINY).cached


def test_a_replaced_png_is_never_served_as_the_cached_image(masuka_home):
    first = mk.generate("replace me", seed=8, **TINY)
    other = Image.new("RGB", (64, 64), (255, 0, 0))
    other.save(first.paths[0])  # someone edits or replaces the saved file
    COUNTS["faults"] += 1
    again = outcome(mk.generate, "replace me", seed=8, **TINY)
    assert not again.cached
    assert np.array_equal(np.asarray(again.image), np.asarray(first.image))
    assert not np.array_equal(np.asarray(again.image), np.asarray(other))


class _Lora:
    """A loopback HTTP server that answers an HTML page first, then (once fixed) a real safetensors file."""

    def __init__(self):
        import http.server

        import torch
        from safetensors.torch import save

        self.body = b"<!DOCTYPE html><html><body>Please log in</body></html>"
        self.good = save({"transformer.a.lora_A.weight": torch.zeros(4, 8)})
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = owner.body
                self.send_response(200)
                self.send_header("Content-Type", "text/html" if body.startswith(b"<") else "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/style.safetensors"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_lora_url_that_answered_html_is_never_cached_and_heals(masuka_home):
    from masuka_nb.image.lora import resolve_lora

    mk.configure(offline=False)
    server = _Lora()
    try:
        COUNTS["faults"] += 1
        err = outcome(resolve_lora, server.url)
        assert isinstance(err, MasukaError) and "HTML" in err.message
        server.body = server.good
        path = outcome(resolve_lora, server.url)
        assert isinstance(path, Path) and path.read_bytes() == server.good
        path.write_bytes(b"<html>a page cached as the LoRA by an older version</html>")  # planted
        COUNTS["faults"] += 1
        healed = outcome(resolve_lora, server.url)
        assert healed.read_bytes() == server.good
    finally:
        server.close()


# ---------------------------------------------------------------------------------------------------------
# Full and read-only disks, in a child process on a real small file system
# ---------------------------------------------------------------------------------------------------------

def _namespace_ok() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt 2>/dev/null || exit 3"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def disk_results(tmp_path_factory, tiny_cache):
    """Every disk scenario of tests/state_disk_child.py, run once (about 40 s): name -> result.

    The tiny models live in the session's cache, outside the small disk (the child builds them there if
    this session has not yet)."""
    mnt = tmp_path_factory.mktemp("small-disk")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MASUKA_CACHE_DIR": str(tiny_cache)}
    child = str(ROOT / "tests" / "state_disk_child.py")
    if _namespace_ok():
        cmd = ["unshare", "-rm", "sh", "-c",
               f'mount -t tmpfs -o size=16m tmpfs "{mnt}" && exec "{sys.executable}" "{child}" "{mnt}" tmpfs']
    else:
        cmd = [sys.executable, child, str(mnt), "rlimit"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULTS ")), None)
    assert line, f"the disk child failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(line[len("RESULTS "):])


DISK_CASES = {
    "generate_full": ("DISK_FULL", "No image of this generation was saved"),
    "batch_full": ("DISK_FULL", "1 of 3 images of this batch are saved"),
    "import_full": ("DISK_FULL", "1 image(s) of this import were saved"),
    "train_full": ("DISK_FULL", "The checkpoint at step 2 is kept"),
    "generate_ro": ("NOT_WRITABLE", "No image of this generation was saved"),
    "batch_ro": ("NOT_WRITABLE", "None of the 2 images of this batch was saved"),
    "import_ro": ("NOT_WRITABLE", "Nothing of this import was saved"),
    "train_ro": ("NOT_WRITABLE", "Nothing of run 'ro-run' was written"),
}


@pytest.mark.parametrize("name", sorted(DISK_CASES))
def test_a_full_or_read_only_disk_is_one_code_that_says_what_was_saved(disk_results, name):
    res = disk_results[name]
    if res.get("skipped"):
        pytest.skip(res["skipped"])
    COUNTS["faults"] += 1
    if res["raised"] == "raw":
        COUNTS["raw"] += 1
    code, said = DISK_CASES[name]
    assert res["raised"] == "masuka", res
    assert res["code"] == code and said in res["message"] and "likely a bug" not in res["message"], res["message"]
    kept(res["lost"] == [], f"earlier files changed: {res['lost']}")
    kept(res["half_written"] == [], f"half-written files: {res['half_written']}")


def test_a_full_disk_mid_training_leaves_the_last_checkpoint_whole(disk_results):
    res = disk_results["after_train_full"]
    kept(res["raised"] is None and res["intact_step"] == 2, f"the step-2 checkpoint: {res}")


def test_only_the_history_unwritable_still_returns_the_saved_image(disk_results):
    res = disk_results["history_read_only"]
    if res.get("skipped"):
        pytest.skip(res["skipped"])
    COUNTS["faults"] += 1
    assert res["raised"] is None, res
    kept(res["saved"], "the image whose history could not be written")
    assert any("history could not be updated" in w for w in res["warnings"])


# ---------------------------------------------------------------------------------------------------------
# storage.sync against a real S3 / GCS protocol server
# ---------------------------------------------------------------------------------------------------------

try:
    from tests.test_buckets import _remote, bucket, gcs_server, s3_server  # noqa: F401  (pytest fixtures)
except pytest.skip.Exception:  # the cloud extras are not installed: the sync cases skip
    bucket = None


def _home_file(rel: str, data: bytes) -> Path:
    path = Path(mk.settings().home) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.skipif(bucket is None, reason="needs s3fs, gcsfs, moto and gcp-storage-emulator")
def test_sync_reports_a_file_deleted_mid_sync_and_sends_every_other_name(bucket):
    names = ["outputs/a.png", "outputs/line\nbreak.png", "outputs/100% [x] #1?.png", "outputs/z-last.png",
             "history/2026-12/tab\there.json"]
    for k, rel in enumerate(names):
        _home_file(rel, b"%d" % k * 100)
    doomed = Path(mk.settings().home) / "outputs" / "z-last.png"

    def progress(event):
        doomed.unlink(missing_ok=True)  # deleted while the sync runs

    from masuka_nb.buckets import sync

    COUNTS["faults"] += 1
    COUNTS["hostile"] += 3
    report = outcome(sync, bucket, what=("outputs", "history"), progress=progress, batch=1)
    assert not isinstance(report, MasukaError), report
    assert [f for f, _ in report.failed] == ["outputs/z-last.png"]
    assert sorted(report.uploaded) == sorted(n for n in names if n != "outputs/z-last.png")
    again = outcome(storage.sync, bucket, what=("outputs", "history"))
    assert again.failed == [] and sorted(again.unchanged) == sorted(report.uploaded)


@pytest.mark.skipif(bucket is None, reason="needs s3fs, gcsfs, moto and gcp-storage-emulator")
@pytest.mark.parametrize("manifest, aside", [(b"[]", True), (b"{\"files\": [1, 2]}", True), (b"\xff", True),
                                             (b"{\"files\": {\"outputs/a.png\": 5}}", False)])
def test_a_malformed_sync_manifest_is_set_aside_not_an_attribute_error(bucket, manifest, aside):
    from masuka_nb.buckets import MANIFEST, filesystem

    _home_file("outputs/a.png", b"pixels")
    fs, base = filesystem(bucket)
    fs.pipe_file(f"{base}/{MANIFEST}", manifest)
    COUNTS["faults"] += 1
    report = outcome(storage.sync, bucket, what=("outputs",))
    assert not isinstance(report, MasukaError), report
    assert report.uploaded == ["outputs/a.png"] and not report.failed
    assert any("/quarantine/" in p for p in fs.find(base)) == aside  # a bad entry alone is just ignored


# ---------------------------------------------------------------------------------------------------------
# HTML: every _repr_html_ and the app's HTML helpers escape user text
# ---------------------------------------------------------------------------------------------------------

MARKUP = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def _assert_escaped(html: str) -> None:
    # escaped, the markup is harmless text (&lt;script&gt;); unescaped it opens a tag or ends an attribute
    assert "<script" not in html and "<img src=x" not in html, html[:400]


def test_every_notebook_html_and_app_html_helper_escapes_markup(tmp_path):
    from masuka_nb.creative.runner import BatchItem, BatchResult
    from masuka_nb.image.generation import GenerationResult
    from masuka_nb.video.result import VideoResult

    img = Image.new("RGB", (8, 8))
    shown = [
        GenerationResult([img], [1], {"label": MARKUP}, []),
        BatchResult(MARKUP, [BatchItem(0, MARKUP, 1, image=img)], "tiny-flux"),
        VideoResult(Path(tmp_path / f"{MARKUP}.mp4"), MARKUP, MARKUP, 5, None),
    ]
    for obj in shown:
        COUNTS["hostile"] += 1
        _assert_escaped(outcome(obj._repr_html_))
    pytest.importorskip("ipywidgets")
    from masuka_nb.errors import InvalidRequestError
    from masuka_nb.lora.comparison import Cell, Comparison
    from masuka_nb.ui.dashboard import chips_html
    from masuka_nb.ui.gallery import record_html
    from masuka_nb.ui.generate import recipe_html
    from masuka_nb.ui.helpers import error_info
    from masuka_nb.ui.lora import _lora_html, comparison_legend

    rec = HistoryRecord(kind=MARKUP, status=MARKUP, model=MARKUP, prompt=MARKUP, recipe={MARKUP: MARKUP},
                        paths=[MARKUP], error={"code": MARKUP, "message": MARKUP}, created_at="2026-12-01")
    helpers = [
        lambda: record_html(rec),
        lambda: recipe_html({"prompt": MARKUP, "model": MARKUP, "seeds": [1], MARKUP: MARKUP}, path=MARKUP),
        lambda: chips_html([(MARKUP, "")]),
        lambda: error_info(InvalidRequestError(MARKUP, argument=MARKUP, value=MARKUP, hint=MARKUP)).to_html(),
        lambda: error_info(RuntimeError(MARKUP)).to_html(),
        lambda: comparison_legend(Comparison(img, [Cell(MARKUP, 1.0, MARKUP, 1, img)])),
        lambda: _lora_html(MARKUP, MARKUP, notes=[MARKUP]),
    ]
    for helper in helpers:
        COUNTS["hostile"] += 1
        _assert_escaped(outcome(helper))


# ---------------------------------------------------------------------------------------------------------
# Only MasukaErrors: every public entry point, one hostile value per argument, then generated mixtures
# ---------------------------------------------------------------------------------------------------------

HOSTILE = [None, True, -1, 5.0, float("nan"), 10**12, "16", "", "<b>x</b>", [], {}, [1, 2], object(),
           b"\x00\xff"]


def _hostile(home: Path) -> list:
    """The hostile values, with a link to /dev/zero inside the test's home (a path a call might also
    write next to: never /dev itself)."""
    zero = home / "zero"
    if not zero.is_symlink():
        home.mkdir(parents=True, exist_ok=True)
        zero.symlink_to("/dev/zero")
    return [*HOSTILE, zero]


def _cancelled():
    from masuka_nb.progress import CancelToken

    token = CancelToken()
    token.cancel("the fault matrix only checks the arguments")
    return token


def _entry_points(home: Path):
    """(name, function, valid keyword arguments, positional arguments, arguments to perturb)."""
    from masuka_nb import lora
    from masuka_nb.lora import Dataset

    img = Image.new("RGB", (64, 64), (120, 30, 200))
    home.mkdir(parents=True, exist_ok=True)
    img.save(home / "in.png")
    d = Dataset.create("hostile")
    d.import_files([("a.png", png_bytes(1)), ("b.png", png_bytes(2))])
    tok = _cancelled()
    import torch

    sd = {"transformer.x.lora_A.weight": torch.zeros(2, 4), "transformer.x.lora_B.weight": torch.zeros(4, 2)}
    return [
        ("generate", mk.generate, {**TINY, "cancel": tok}, ["a cat"],
         ["model", "negative_prompt", "width", "height", "steps", "guidance", "seed", "num_images", "loras", "image",
          "strength", "plan", "progress", "save", "previews"]),
        ("plan", mk.plan, {}, ["tiny-flux"], ["dtype", "quantization", "offload", "speed", "gpu", "compile", "width",
                                              "height", "num_images", "num_frames", "ram_gb", "first_block_cache"]),
        ("edit", mk.edit, {"steps": 1, "cancel": tok}, [img, "make it red"],
         ["model", "mask", "steps", "guidance", "seed", "num_images", "plan", "progress", "save"]),
        ("batch", mk.batch, {**TINY, "cancel": tok}, ["a {red|blue} car"],
         ["model", "seeds", "presets", "loras", "negative_prompt", "width", "height", "steps", "guidance", "mode",
          "count", "wildcards_dir", "resume", "save", "progress", "chunk"]),
        ("batch.estimate", mk.batch.estimate, {"model": "tiny-flux"}, ["a {red|blue} car"],
         ["model", "seeds", "presets", "width", "height", "steps", "mode", "count", "wildcards_dir"]),
        ("grid", mk.grid, {**TINY, "cancel": tok, "x": ("seed", (1, 2))}, ["a cat"],
         ["x", "y", "z", "model", "seed", "width", "height", "steps", "guidance", "loras", "presets", "save",
          "min_cell", "progress", "cancel"]),
        ("upscale", mk.upscale, {"factor": 2.0}, [img],
         ["factor", "method", "strength", "steps", "seed", "tile", "overlap", "weights", "save", "progress"]),
        ("to_video", mk.to_video, {"path": str(home / "v.mp4")}, [[img, img]],
         ["fps", "format", "size", "hold", "interpolate", "axis", "path", "quality", "loop"]),
        ("reproduce", mk.reproduce, {"cancel": tok}, [str(home / "in.png")], ["save", "progress", "cancel"]),
        ("Dataset.import_files", d.import_files, {}, [[]], ["max_file_bytes"]),
        ("Dataset.import_folder", d.import_folder, {}, [str(home)], ["recursive", "max_file_bytes"]),
        ("Dataset.set_keep", d.set_keep, {"key": "a.png", "keep": True}, [], ["key", "keep"]),
        ("Dataset.set_caption", d.set_caption, {"key": "a.png", "caption": "x"}, [], ["key", "caption"]),
        ("Dataset.curate", d.curate, {"scorer": None, "apply": False}, [],
         ["reference_image", "batch_size", "near_duplicate_distance", "min_blur", "min_side", "apply", "cancel"]),
        ("Dataset.caption", d.caption, {"cancel": tok}, [], ["model", "trigger_word", "overwrite", "batch_size"]),
        ("lora.train", lora.train, {"base": "tiny-flux", "trigger_word": "mk", "steps": 1, "resolution": 32,
                                    "cancel": tok}, [d],
         ["steps", "rank", "learning_rate", "resolution", "seed", "batch_size",
          "checkpoint_every", "sample_prompts", "sample_seeds", "target_modules", "gpu", "export_kohya"]),
        ("lora.compare", lora.compare, {"loras": ["/nonexistent.safetensors"], "prompts": ["a"], "seeds": [1],
                                        "model": "tiny-flux", "cancel": tok}, [],
         ["loras", "prompts", "seeds", "weights", "include_base", "steps"]),
        ("lora.export_lora", lora.export_lora, {"state_dict": sd, "name": "exp", "meta": {}}, [],
         ["state_dict", "name", "meta", "kohya", "loras_dir"]),
        ("storage.sync", storage.sync, {"destination": "s3://no-such-bucket-zz"}, [], ["destination", "what"]),
        ("history.query", history.query, {}, [], ["kind", "model", "text", "status", "since", "until", "limit"]),
        ("history.get", history.get, {"record_id": "x"}, [], ["record_id"]),
    ]


def _hostile_calls(home: Path):
    for name, fn, kwargs, args, params in _entry_points(home):
        for param in params:
            for value in _hostile(home):
                yield name, fn, args, {**kwargs, param: value}, f"{param}={value!r}"[:60]


def test_one_hostile_value_per_argument_of_every_entry_point_raises_only_masuka_errors(masuka_home, monkeypatch):
    masuka_home.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(masuka_home)  # `path="16"` is a relative path: it must land in the test's folder
    mk.configure(offline=True)  # no network lookups for names that look like repo ids
    raw = []
    for name, fn, args, kwargs, label in _hostile_calls(masuka_home):
        COUNTS["hostile"] += 1
        try:
            fn(*args, **kwargs)
        except MasukaError as exc:
            if "likely a bug" in exc.hint:  # a raw exception wrapped at the last boundary: a check is missing
                COUNTS["raw"] += 1
                raw.append(f"{name}({label}): {exc.message[:160]}")
        except BaseException as exc:
            COUNTS["raw"] += 1
            raw.append(f"{name}({label}): {type(exc).__name__}: {str(exc)[:120]}")
    assert raw == [], "\n".join(raw)


def test_generated_arguments_raise_only_masuka_errors(masuka_home, monkeypatch):
    """hypothesis mixes valid and hostile values across every argument of each entry point at once."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    masuka_home.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(masuka_home)  # relative paths among the values land in the test's folder
    mk.configure(offline=True)
    entries = _entry_points(masuka_home)
    pool = st.sampled_from([*_hostile(masuka_home), "tiny-flux", 64, 1, 0.5, 2, "a cat", ("seed", (1, 2)), [1], "all", "random"])
    raw: list[str] = []

    @settings(max_examples=160, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.integers(0, len(entries) - 1), st.data())
    def check(index, data):
        name, fn, kwargs, args, params = entries[index]
        picked = data.draw(st.lists(st.sampled_from(params), min_size=1, max_size=4, unique=True))
        call = {**kwargs, **{p: data.draw(pool) for p in picked}}
        COUNTS["generated"] += 1
        try:
            fn(*args, **call)
        except MasukaError as exc:
            if "likely a bug" in exc.hint:
                COUNTS["raw"] += 1
                raw.append(f"{name}({ {k: call[k] for k in picked} }): {exc.message[:160]}")
        except BaseException as exc:
            COUNTS["raw"] += 1
            raw.append(f"{name}({ {k: call[k] for k in picked} }): {type(exc).__name__}: {str(exc)[:120]}")

    check()
    assert raw == [], "\n".join(raw)


def test_generated_history_records_never_break_query_or_the_dashboard(masuka_home):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from masuka_nb.ui.helpers import history_stats

    json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                               lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                           max_size=3), max_leaves=8)
    fields = st.fixed_dictionaries({}, optional={k: json_values for k in HistoryRecord.__dataclass_fields__})
    folder = masuka_home / "history" / "2026-12"
    folder.mkdir(parents=True)

    @settings(max_examples=120, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(fields, json_values))
    def check(record):
        COUNTS["generated"] += 1
        (folder / "20261201T000000000000-gen000.json").write_text(json.dumps(record))
        records = outcome(history.query)
        outcome(history_stats, records)
        with contextlib.suppress(FileNotFoundError):
            (folder / "20261201T000000000000-gen000.json").unlink()

    check()
    assert all(r.created.tzinfo is not None for r in history.query())  # whatever was kept reads as a date


def test_the_counts_add_up():
    """Runs last in this module: the printed line is what the lead reads; here it must be clean."""
    assert COUNTS["raw"] == 0 and COUNTS["lost"] == 0
    print({k: COUNTS[k] for k in ("faults", "hostile", "generated", "raw", "lost")})

