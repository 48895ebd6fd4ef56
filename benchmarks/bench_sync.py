"""storage.sync to a real S3 server on loopback (moto): a full sync vs fsspec's own recursive `put`, and a rerun.

Goals, measured alternately in one run: a full sync (hashing, checking each upload, keeping the manifest)
takes ≤ 1.5 × a plain `fs.put(home, bucket, recursive=True)`; a rerun with nothing changed takes ≤ 0.2 × a
full sync (it only hashes and lists: incremental by content hash).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import compare, exit_with, isolate, report

FILES, SIZE = 120, 256 * 1024


def main() -> None:
    home = isolate("bench-sync")
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    import boto3
    from moto.server import ThreadedMotoServer

    import masuka_nb
    from masuka_nb import storage
    from masuka_nb.buckets import filesystem

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    masuka_nb.configure(s3_endpoint_url=endpoint)
    for i in range(FILES):
        path = home / "outputs" / f"batch{i % 6}" / f"image-{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(SIZE))
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench",
                      region_name="us-east-1")
    n = [0]

    def fresh_bucket() -> str:
        n[0] += 1
        s3.create_bucket(Bucket=f"bench-{n[0]}")
        return f"s3://bench-{n[0]}"

    def ours() -> None:
        report_ = storage.sync(fresh_bucket(), what=("outputs",))
        assert len(report_.uploaded) == FILES

    def plain() -> None:
        fs, base = filesystem(fresh_bucket())
        fs.put(str(home / "outputs") + "/", f"{base}/outputs", recursive=True)

    full = compare("storage.sync (full)", ours, "fs.put recursive", plain, repeat=3, warmup=1)
    mirrored = fresh_bucket()
    storage.sync(mirrored, what=("outputs",))

    def rerun() -> None:
        assert storage.sync(mirrored, what=("outputs",)).uploaded == []

    again = compare("storage.sync (rerun, unchanged)", rerun, "storage.sync (full)", ours, repeat=3, warmup=1)
    server.stop()
    mb = FILES * SIZE / 1e6
    ok1 = report(f"full sync of {FILES} files ({mb:.0f} MB)", full, goal="<= 1.5 x fs.put", ok=full.ratio <= 1.5)
    ok2 = report("rerun with nothing changed", again, goal="<= 0.2 x a full sync", ok=again.ratio <= 0.2)
    exit_with(ok1, ok2)


if __name__ == "__main__":
    main()
