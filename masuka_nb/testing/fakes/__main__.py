"""`python -m masuka_nb.testing.fakes PROVIDER --port PORT [--key KEY]`: serve one fake on 127.0.0.1."""

from __future__ import annotations

import argparse
import sys
import threading

from masuka_nb.testing.fakes import FAKES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m masuka_nb.testing.fakes",
                                     description="Serve a loopback SIMULATOR of a hosted video/training API.")
    parser.add_argument("provider", choices=sorted(FAKES))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", default=None, help="the only key accepted (kling: ACCESS:SECRET); default: any")
    parser.add_argument("--complete-after", type=float, default=3.0, help="seconds until a job finishes")
    args = parser.parse_args(argv)
    fake = FAKES[args.provider](key=args.key, port=args.port, complete_after=args.complete_after).start()
    env = f"MASUKA_{args.provider.upper()}_BASE_URL"
    sys.stdout.write(f"SIMULATOR {args.provider} serving on {fake.base_url}\n"
                     f"point MASUKA at it with {env}={fake.base_url}\n")
    sys.stdout.flush()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
