"""Command line for LoRA training: the same `train()` entry point, one process or many.

    python -m masuka_nb.lora.cli train --dataset my-cat --trigger-word mycat
    accelerate launch --num_processes 2 -m masuka_nb.lora.cli train --dataset my-cat --trigger-word mycat

Running the same command again resumes the run from its last checkpoint. `--events` prints one JSON
line per progress event on stdout (for a parent process or a log collector).
"""

from __future__ import annotations

import argparse
import json
import sys

from masuka_nb.errors import MasukaError
from masuka_nb.lora.training import train


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m masuka_nb.lora.cli", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train (or resume) a LoRA on a dataset")
    t.add_argument("--dataset", required=True, help="dataset name or folder")
    t.add_argument("--trigger-word", required=True)
    t.add_argument("--base", default="flux1-dev")
    t.add_argument("--steps", type=int)
    t.add_argument("--rank", type=int)
    t.add_argument("--learning-rate", type=float)
    t.add_argument("--resolution", type=int)
    t.add_argument("--name")
    t.add_argument("--seed", type=int, default=None)  # None: random, recorded (a rerun resumes)
    t.add_argument("--batch-size", type=int, default=1)
    t.add_argument("--checkpoint-every", type=int)
    t.add_argument("--sample-every", type=int)
    t.add_argument("--target-modules", default="attention")
    t.add_argument("--events", action="store_true", help="print progress events as JSON lines")
    return p


def _event_printer(event) -> None:
    sys.stdout.write(json.dumps({"stage": event.stage, "step": event.step, "total": event.total,
                                 "message": event.message, "eta_s": event.eta_s, **event.data}) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        run = train(args.dataset, base=args.base, trigger_word=args.trigger_word, steps=args.steps, rank=args.rank,
                    learning_rate=args.learning_rate, resolution=args.resolution, name=args.name, seed=args.seed,
                    batch_size=args.batch_size, checkpoint_every=args.checkpoint_every,
                    sample_every=args.sample_every, target_modules=args.target_modules,
                    progress=_event_printer if args.events else None)
    except MasukaError as exc:
        sys.stderr.write(str(exc) + "\n")
        return 2
    sys.stdout.write(json.dumps({"run": run.name, "status": run.status, "step": run.step,
                                 "lora_path": str(run.lora_path) if run.lora_path else None}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
