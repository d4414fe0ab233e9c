"""``dqt train`` and ``dqt eval`` subcommands."""
from __future__ import annotations

import json

from golden.formats import DQTValueError

__all__ = ["register"]


def _int_list(s: str):
    try:
        return tuple(int(v) for v in s.split(",") if v.strip())
    except ValueError:
        raise DQTValueError(f"{s!r} is not a comma-separated list of integers") from None


_TRAIN_KEYS = ("seed", "split_seed", "test_fraction", "n", "mode", "first_bits", "fp32_epochs",
               "qat_epochs", "batch_size", "lr", "qat_lr", "ctrl_lr", "alpha", "beta", "cost",
               "cost_form", "target", "tau_start", "tau_end", "tau_kind", "threads", "width",
               "hidden", "data", "device", "levels", "copies", "ctrl_loss", "lam",
               "balance", "budget")


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def recipe_from_args(args):
    """The training recipe of ``dqt train`` options, every option checked before anything
    runs; an error names the flag (and the default it clashes with)."""
    from .train import DATASETS, Recipe, with_dataset_defaults

    if args.dataset not in DATASETS:
        raise DQTValueError(f"--dataset {args.dataset!r} is not one of {list(DATASETS)}")
    over = {"dataset": args.dataset}
    for key in _TRAIN_KEYS:
        v = getattr(args, key)
        if v is not None:
            over[key] = v
    if args.B is not None:
        over["B"] = _int_list(args.B)
    if args.B_prime is not None:
        over["B_prime"] = _int_list(args.B_prime)
    d = with_dataset_defaults(Recipe().to_json(), args.dataset, over)
    if "B" in over and "B_prime" not in over:
        d["B_prime"] = None  # follow the new B
    if "B" in over:
        from .quant import QuantConfig
        try:
            QuantConfig(over.get("n", d["n"]), over["B"])
        except DQTValueError as e:
            raise DQTValueError(f"--B: {e}") from None
    if "B" in over and "first_bits" not in over and d["first_bits"] not in over["B"]:
        raise DQTValueError(f"--first-bits {d['first_bits']} (the default) is not in "
                            f"--B {list(over['B'])}: give --first-bits one of them")
    if args.dataset != "cifar10" and args.data is not None:
        raise DQTValueError(f"--data is only used with --dataset cifar10 (got --dataset "
                            f"{args.dataset!r})")
    d.update(over)
    try:
        recipe = Recipe.from_json(d)
    except DQTValueError as e:
        msg = str(e)
        hit = [k for k in d if f"{k}=" in msg or f"{k} " in msg.split("=")[0]]
        if hit:
            raise DQTValueError(f"{_flag(max(hit, key=len))}: {msg}") from None
        raise
    if recipe.n not in recipe.B:  # the export's static width of every controlled layer is n
        raise DQTValueError(f"--B {','.join(map(str, recipe.B))} must contain the master width "
                            f"n={recipe.n} (the static width of the controlled layers)")
    if recipe.dataset == "cifar10":
        from .data import check_cifar10_dir
        check_cifar10_dir(recipe.data)
    from .train import check_budget
    try:
        check_budget(recipe)
    except DQTValueError as e:
        raise DQTValueError(f"--budget: {e}") from None
    return recipe


def _cmd_train(args) -> int:
    from .train import train

    recipe = recipe_from_args(args)
    summary = train(args.out, recipe, progress=not args.no_progress)
    if not args.json:
        print(f"artifact   {summary['artifact']}  (sha256 of manifest {summary['digest'][:16]}...)")
        print(f"fp32 accuracy            {summary['fp32_accuracy']:.4f}")
        for b, a in summary["fakequant_static_accuracy"].items():
            print(f"fake-quant static {b:>2}b     {a:.4f}")
        print(f"fake-quant dynamic       {summary['fakequant_dynamic_accuracy']:.4f}  "
              f"(mean bits {summary['fakequant_dynamic_avg_bits']:.3f})")
        print(f"wall time                {summary['wall_s']:.1f} s")
    print(json.dumps(summary, sort_keys=True))
    return 0


def _cmd_eval(args) -> int:
    from .evaluate import evaluate

    res = evaluate(args.artifact, impl=args.impl, frontier=not args.no_frontier,
                   plot=not args.no_frontier, progress=not args.json)
    if not args.json:
        print(f"held-out images          {res['n_test']}")
        print(f"fp32 accuracy            {res['fp32_accuracy']:.4f}")
        for b, a in res["static_accuracy"].items():
            print(f"static {b:>2}b               {a:.4f}")
        if "dynamic_accuracy" in res:
            print(f"dynamic                  {res['dynamic_accuracy']:.4f}  (mean bits "
                  f"{res['dynamic_avg_bits']:.3f}, BitOPs ratio {res['dynamic_bitops_ratio']:.3f})")
        print(f"integer torch == golden  {res['integer_vs_torch_identical']:.4f}")
        print(f"fake-quant vs integer    {res['fakequant_vs_integer_top1_agreement']} (top-1), "
              f"{res['fakequant_vs_integer_code_agreement']} (codes)")
        for split in ("clean", "graded"):
            a = res.get(split)
            if a:
                dy = a["dynamic"]
                print(f"{split:<7} dynamic {dy['accuracy']:.4f} at {dy['bitops_per_image']:.4g} "
                      f"BitOPs/image, entropy {dy['assignment_entropy_bits']:.2f} bits; saving vs "
                      f"static {a['bitops_saving_vs_static']}, gain {a['accuracy_gain_vs_static_pts']} pts")
    print(json.dumps(res, sort_keys=True))
    return 0


def register(sub) -> None:
    """Add ``train`` and ``eval`` to the ``dqt`` subparsers."""
    p = sub.add_parser("train", help="train a DQT network and export the integer artifact",
                       description="Float pre-training, quantization-aware training with the "
                       "precision controller, export via golden.network.save_network.")
    p.add_argument("--dataset", default="digits",
                   help="digits (sklearn, bundled), digits-graded (corrupted digits at graded "
                   "levels, generated) or cifar10 (binary batches in --data)")
    p.add_argument("--data", help="cifar10: directory of the binary batches (cifar-10-batches-bin)")
    p.add_argument("--device", help="cpu or cuda (default cpu)")
    p.add_argument("--levels", type=int, help="digits-graded: severity levels (default 6)")
    p.add_argument("--copies", type=int, help="digits-graded: corrupted copies per training image")
    p.add_argument("--ctrl-loss", help="controller training: expected (per-input expected loss "
                   "and BitOPs), budget (each input's best widths under a BitOPs budget, "
                   "--budget) or gumbel (task loss through the gates only)")
    p.add_argument("--lam", type=float, help="weight of the per-input BitOPs ratio in the "
                   "expected controller loss")
    p.add_argument("--balance", type=float, help="expected controller loss: weight of the "
                   "entropy of the batch's width usage per controlled layer (default 0)")
    p.add_argument("--budget", type=float, help="--ctrl-loss budget: mean BitOPs per input "
                   "to hold, as a fraction of the all-n BitOPs, in (0, 1]")
    p.add_argument("--ctrl-lr", type=float)
    p.add_argument("--hidden", type=int, help="controller hidden width (default 64)")
    p.add_argument("--out", required=True, help="artifact directory to write")
    p.add_argument("--seed", type=int)
    p.add_argument("--split-seed", type=int)
    p.add_argument("--test-fraction", type=float)
    p.add_argument("--n", type=int, help="master width (default 8)")
    p.add_argument("--B", help="candidate bit-widths, comma separated (default 2,4,6,8)")
    p.add_argument("--B-prime", dest="B_prime", help="widths of the static loss terms (default B)")
    p.add_argument("--mode", help="nested conversion: floor or round")
    p.add_argument("--first-bits", type=int, help="static width up to the controller tap")
    p.add_argument("--fp32-epochs", type=int)
    p.add_argument("--qat-epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--qat-lr", type=float)
    p.add_argument("--alpha", type=float, help="weight of the static-width task losses")
    p.add_argument("--beta", type=float, help="weight of the cost penalty")
    p.add_argument("--cost", help="bits or bitops")
    p.add_argument("--cost-form", help="hinge per input (input) or on the batch mean (batch)")
    p.add_argument("--target", type=float, help="cost target (bits, or BitOPs ratio)")
    p.add_argument("--tau-start", type=float)
    p.add_argument("--tau-end", type=float)
    p.add_argument("--tau-kind", help="exp, linear or constant")
    p.add_argument("--threads", type=int)
    p.add_argument("--width", type=int, help="channels of the first convolution")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print only the JSON summary")
    p.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="evaluate an artifact on its held-out split (golden model)")
    e.add_argument("artifact", help="artifact directory")
    e.add_argument("--impl", default="fast", choices=["fast", "reference"])
    e.add_argument("--json", action="store_true", help="print only the JSON object")
    e.add_argument("--no-frontier", action="store_true",
                   help="skip the static frontier (every per-layer assignment) and its plot")
    e.set_defaults(func=_cmd_eval)
    from .experiments import register as register_experiments
    register_experiments(sub)
