"""`python -m masuka_nb` / `masuka`: the command line for a fresh machine and for CI.

    masuka demo      generate images with the embedded default model and say where they went
    masuka doctor    what this runtime can do
    masuka models    the model registry
"""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    import masuka_nb as mk

    model = args.model
    if model == "auto":
        info = mk.doctor() if args.verbose else __import__("masuka_nb.runtime", fromlist=["detect"]).detect()
        model = "tiny-flux" if not info.has_gpu else "flux1-schnell"
    prompts = args.prompt or ["a lighthouse on a cliff at dawn, oil painting", "a red fox in fresh snow, photo"]
    for prompt in prompts:
        result = mk.generate(prompt, model=model, num_images=args.num_images, seed=args.seed, steps=args.steps)
        for path, seed in zip(result.paths, result.seeds):
            sys.stdout.write(f"{model}  seed={seed}  {path}\n")
    spec = mk.get_model(model)
    if spec.tiny:
        from masuka_nb.models.tiny import TINY_LABEL

        sys.stdout.write(f"Note: {TINY_LABEL}.\n")
    sys.stdout.write(f"Images written to {mk.settings().outputs_dir}\n")
    return 0


def _models(_: argparse.Namespace) -> int:
    import masuka_nb as mk

    for m in mk.list_models(task=None):  # every task: images, edits, video
        gate = " (gated)" if m.gated else ""
        sys.stdout.write(f"{m.id:<18} {m.task:<15} {m.title}{gate} — {m.description}\n")
    return 0


def _doctor(_: argparse.Namespace) -> int:
    import masuka_nb as mk

    mk.doctor()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="masuka", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="generate images with the embedded default (tiny-flux on a CPU)")
    demo.add_argument("--model", default="auto")
    demo.add_argument("--prompt", action="append")
    demo.add_argument("--num-images", type=int, default=2)
    demo.add_argument("--steps", type=int, default=None)
    demo.add_argument("--seed", type=int, default=1234)
    demo.add_argument("--verbose", action="store_true")
    demo.set_defaults(func=_demo)
    sub.add_parser("doctor", help="what this runtime can do").set_defaults(func=_doctor)
    sub.add_parser("models", help="list the model registry").set_defaults(func=_models)
    args = parser.parse_args(argv)
    from masuka_nb.errors import MasukaError

    try:
        return args.func(args)
    except MasukaError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
