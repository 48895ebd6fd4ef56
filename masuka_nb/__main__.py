"""`python -m masuka_nb` / `masuka`: the command line for a fresh machine and for CI.

    masuka demo      two prompts × two seeds with the default model (tiny-flux on a CPU): where each image went,
                     and which came from the result cache
    masuka doctor    what this runtime can do
    masuka models    the model registry
"""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    import masuka_nb as mk
    from masuka_nb.image.generation import resolve_model

    if args.verbose:
        mk.doctor()
    model, note = resolve_model(args.model)  # the engine's own "auto" rule
    if note:
        sys.stdout.write(note + "\n")
    prompts = args.prompt or ["a lighthouse on a cliff at dawn, oil painting", "a red fox in fresh snow, photo"]
    made = cached = 0
    for prompt in prompts:
        result = mk.generate(prompt, model=model, num_images=args.num_images, seed=args.seed, steps=args.steps)
        tag = "  (cached: same recipe as an earlier run, not generated again)" if result.cached else ""
        for path, seed in zip(result.paths, result.seeds):
            sys.stdout.write(f"{model}  seed={seed}  {path}{tag}\n")
        cached += len(result.paths) if result.cached else 0
        made += 0 if result.cached else len(result.paths)
    spec = mk.get_model(model)
    if spec.tiny:
        from masuka_nb.models.tiny import TINY_LABEL

        sys.stdout.write(f"Note: {TINY_LABEL}.\n")
    summary = f"{made} image(s) generated"
    if cached:
        summary += f", {cached} answered from the result cache (MASUKA_RESULT_CACHE=0 or new seeds make new ones)"
    sys.stdout.write(f"{summary}; written to {mk.settings().outputs_dir}\n")
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
