"""A 50 MB result over loopback: MASUKA's resumable, checked download vs a plain httpx stream to a file.

Goal: our throughput ≥ 0.8 × plain httpx (time ratio ours/plain ≤ 1.25), measured alternately in one run.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import compare, exit_with, report

SIZE = 50 * 1024 * 1024


def main() -> None:
    import httpx

    from masuka_nb.hosted.http import ProviderClient
    from masuka_nb.testing.fakes import FakeRunway
    from masuka_nb.testing.media import tiny_mp4
    from masuka_nb.video.media import is_mp4

    tmp = Path(tempfile.mkdtemp(prefix="bench-dl-"))
    video = tiny_mp4(pad_to=SIZE)
    with FakeRunway(video=video) as fake:
        job = fake.new_job("video", {})
        job.duration = 0
        url = fake.download_url(job)
        client = ProviderClient("runway", fake.base_url)
        plain_client = httpx.Client(timeout=30)

        def ours() -> None:
            part = tmp / "ours.mp4.part"
            part.unlink(missing_ok=True)
            res = client.download(url, part, content_types=("video/",))
            assert res.bytes == SIZE and is_mp4(part)
            os.replace(part, tmp / "ours.mp4")

        def plain() -> None:
            with plain_client.stream("GET", url) as r, open(tmp / "plain.mp4", "wb") as fh:
                for chunk in r.iter_bytes():
                    fh.write(chunk)

        comp = compare("masuka download", ours, "plain httpx stream", plain, repeat=6, warmup=1)
        client.close()
        plain_client.close()
    assert (tmp / "ours.mp4").read_bytes() == video
    mb = SIZE / 1e6
    ok = report("50 MB download", comp, goal="throughput >= 0.8 x plain (time ratio <= 1.25)", ok=comp.ratio <= 1.25,
                extra={"ours_MB_s": round(mb / comp.a_median, 1), "plain_MB_s": round(mb / comp.b_median, 1),
                       "throughput_ratio": round(comp.b_median / comp.a_median, 3)})
    exit_with(ok)


if __name__ == "__main__":
    main()
