"""gs:// and s3:// against real local servers over real HTTP: moto's S3 server and gcp-storage-emulator.

Both servers are started here, on loopback, by the tests; MASUKA reaches them through its own settings
(`s3_endpoint_url`, `gcs_endpoint_url`). A sync is killed (SIGKILL, in a child process) half way and
completed by a rerun; every file in the bucket must then be byte-identical to the home's.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import masuka_nb
from masuka_nb import buckets, storage
from masuka_nb.errors import MasukaError

pytest.importorskip("s3fs")
pytest.importorskip("gcsfs")
pytest.importorskip("moto")
pytest.importorskip("gcp_storage_emulator")

ROOT = Path(__file__).resolve().parents[1]
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def gcs_server():
    from gcp_storage_emulator.server import create_server

    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


_count = [0]


@pytest.fixture(params=["s3", "gs"])
def bucket(request, monkeypatch, s3_server, gcs_server):
    """A fresh, empty bucket on one of the two servers; returns its URL (``s3://name`` or ``gs://name``)."""
    _count[0] += 1
    name = f"masuka-test-{_count[0]}"
    if request.param == "s3":
        for k, v in AWS.items():
            monkeypatch.setenv(k, v)
        masuka_nb.configure(s3_endpoint_url=s3_server)
        import boto3

        boto3.client("s3", endpoint_url=s3_server, **_boto_keys()).create_bucket(Bucket=name)
    else:
        masuka_nb.configure(gcs_endpoint_url=gcs_server)
        from gcsfs.core import GCSFileSystem

        GCSFileSystem(token="anon", endpoint_url=gcs_server, skip_instance_cache=True).mkdir(name)
    return f"{request.param}://{name}"


def _boto_keys() -> dict[str, str]:
    return {"aws_access_key_id": AWS["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": AWS["AWS_SECRET_ACCESS_KEY"],
            "region_name": AWS["AWS_DEFAULT_REGION"]}


def _fill_home(n: int = 24, size: int = 40_000) -> dict[str, bytes]:
    s = masuka_nb.settings()
    made = {}
    for i in range(n):
        folder = ("outputs", "loras", "history", "datasets")[i % 4]
        rel = f"{folder}/sub{i % 3}/file-{i:03d}.bin"
        # a fixed tail: gcp-storage-emulator drops a trailing b"\r" from multipart uploads (real GCS keeps it)
        data = os.urandom(size) + b"|%03d" % i
        path = Path(getattr(s, f"{folder}_dir")) / rel.split("/", 1)[1]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        made[rel] = data
    (Path(s.outputs_dir) / "half.mp4.part").write_bytes(b"never mirrored")
    return made


def _remote(url: str) -> dict[str, bytes]:
    from masuka_nb.buckets import filesystem

    fs, base = filesystem(url)
    return {p[len(base) + 1:]: fs.cat_file(p) for p in fs.find(base) if not p.endswith(".masuka-sync.json")}


def test_the_old_name_storage_sync_still_works_with_a_warning(bucket):
    _fill_home(n=1)
    with pytest.warns(DeprecationWarning, match="buckets.sync"):
        assert storage.sync(bucket).uploaded


def test_sync_mirrors_the_home_incrementally(bucket):
    made = _fill_home(n=8)
    events = []
    report = buckets.sync(bucket, progress=events.append)
    assert sorted(report.uploaded) == sorted(made) and not report.unchanged
    assert _remote(bucket) == made  # byte-identical, and no .part file went up
    assert events and events[-1].step == events[-1].total
    again = buckets.sync(bucket)
    assert again.uploaded == [] and sorted(again.unchanged) == sorted(made)
    changed = next(iter(made))
    made[changed] = b"new bytes"
    (Path(masuka_nb.settings().home) / changed).write_bytes(made[changed])
    third = buckets.sync(bucket)
    assert third.uploaded == [changed] and _remote(bucket) == made


def test_a_file_gone_from_the_bucket_is_sent_again(bucket):
    from masuka_nb.buckets import filesystem

    made = _fill_home(n=4)
    buckets.sync(bucket)
    fs, base = filesystem(bucket)
    gone = sorted(made)[0]
    fs.rm_file(f"{base}/{gone}")
    assert buckets.sync(bucket).uploaded == [gone] and _remote(bucket) == made


SYNC_CHILD = """
import sys, masuka_nb
from masuka_nb import buckets
def tell(event):
    print(event.step, flush=True)
buckets.sync(sys.argv[1], progress=tell)
"""


def test_sync_survives_a_kill_and_completes_on_rerun(bucket, s3_server, gcs_server, masuka_home):
    made = _fill_home(n=40, size=60_000)
    env = {**os.environ, **AWS, "PYTHONPATH": str(ROOT), "MASUKA_S3_ENDPOINT_URL": s3_server,
           "MASUKA_GCS_ENDPOINT_URL": gcs_server}
    proc = subprocess.Popen([sys.executable, "-c", SYNC_CHILD, bucket], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # kill it after a handful of files, in the middle of the run
            if line.strip().isdigit() and int(line) >= 12:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    partial = _remote(bucket)
    assert 0 < len(partial) < len(made)
    assert all(made[k] == v for k, v in partial.items())  # what is there is whole
    report = buckets.sync(bucket)
    assert len(report.uploaded) + len(report.unchanged) == len(made) and report.unchanged
    assert _remote(bucket) == made


def _zip_of_images(n: int = 3) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(n):
            img = io.BytesIO()
            Image.new("RGB", (300, 300), (40 * i, 120, 200)).save(img, format="PNG")
            zf.writestr(f"p{i}.png", img.getvalue())
            zf.writestr(f"p{i}.txt", f"caption {i}")
    return buf.getvalue()


def test_a_dataset_imports_from_the_bucket(bucket):
    from masuka_nb.buckets import filesystem
    from masuka_nb.lora import Dataset

    fs, base = filesystem(bucket)
    fs.pipe_file(f"{base}/sets/photos.zip", _zip_of_images())
    with zipfile.ZipFile(io.BytesIO(_zip_of_images(2))) as zf:
        for name in zf.namelist():
            fs.pipe_file(f"{base}/folder/{name}", zf.read(name))
    report = Dataset.create("from-zip").import_zip(f"{bucket}/sets/photos.zip")
    assert len(report.imported) == 3 and not report.rejected
    ds = Dataset.create("from-folder")
    report = ds.import_folder(f"{bucket}/folder")
    assert len(report.imported) == 2
    assert sorted(it.caption for it in ds.kept) == ["caption 0", "caption 1"]
    one = Dataset.create("one-by-one").import_files([f"{bucket}/folder/p1.png", f"{bucket}/folder/absent.png"])
    assert len(one.imported) == 1 and len(one.rejected) == 1


def test_missing_objects_and_bad_requests_are_masuka_errors(bucket):
    from masuka_nb.buckets import read_bytes
    from masuka_nb.lora import Dataset

    with pytest.raises(MasukaError) as info:
        Dataset.create("nothing").import_zip(f"{bucket}/absent.zip")
    assert info.value.code == "STORAGE_FAILED" and "absent.zip" in str(info.value)
    from masuka_nb.buckets import filesystem

    fs, base = filesystem(bucket)
    fs.pipe_file(f"{base}/big.bin", b"x" * 2000)
    with pytest.raises(MasukaError) as info:
        read_bytes(f"{bucket}/big.bin", max_bytes=1000)
    assert info.value.code == "INVALID_REQUEST"
    with pytest.raises(MasukaError) as info:
        buckets.sync(bucket, what=("everything",))
    assert info.value.argument == "what"


def test_the_one_downloader_fetches_bucket_urls_whole(bucket, tmp_path):
    from masuka_nb.buckets import filesystem
    from masuka_nb.hosted.download import download

    fs, base = filesystem(bucket)
    data = os.urandom(50_000) + b"|end"
    fs.pipe_file(f"{base}/loras/style.safetensors", data)
    target = download(f"{bucket}/loras/style.safetensors", tmp_path / "style.safetensors", max_bytes=1 << 20,
                      argument="loras")
    assert target.read_bytes() == data and not list(tmp_path.glob("*.part"))
    with pytest.raises(MasukaError) as info:
        download(f"{bucket}/loras/style.safetensors", tmp_path / "x", max_bytes=1000, argument="loras")
    assert info.value.argument == "loras" and not (tmp_path / "x").exists()


def test_reproduce_reads_a_png_from_the_bucket(bucket):
    import numpy as np

    from masuka_nb.buckets import filesystem

    made = masuka_nb.generate("a red kite", model="tiny-flux", width=32, height=32, steps=2, seed=3)
    fs, base = filesystem(bucket)
    fs.pipe_file(f"{base}/shared/kite.png", made.paths[0].read_bytes())
    again = masuka_nb.reproduce(f"{bucket}/shared/kite.png")
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(made.images[0]))
