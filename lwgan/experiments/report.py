"""`lwgan report`: the paper's Table 1 from the tracked runs of its variants, with the evaluation metrics and
the stability measures beside it.

Which runs. From the MLflow experiment, the finished train runs tagged ``lwgan.variant``. The baseline is the
newest baseline run (or the run given). For every other variant, the newest run that is that variant of
this baseline: its seed, its train params (but those that only change how a run executes: workers, device,
threads, checkpoint and sample cadence) and its feature-net sources equal the baseline's except the keys
the variant overrides, which hold the variant's values (relative ones computed from the baseline's), and it
trained on the same data (tag ``lwgan.data_key``). Runs that do not match (another scale, older params,
other data) are passed over and the newest one's reason is listed under the table. A variant's evaluate run
is the one of the same pipeline run (tag ``lwgan.run_group``), else the newest one of the variant started
after its train run.

What the columns hold (the CSV has every column, the Markdown the main ones):
    L_face, L_tsf, L_rec   the final losses: the mean over the last epoch (``metrics/train.json`` ``loss.*``,
                           weighted as the original logs them, as the paper compares them)
    dL_*                   100 * (L_variant - L_baseline) / L_baseline, per cent: negative = lower than the
                           baseline's (the paper's ΔL); paper_dL_*: what the paper reports on iPER, where it
                           gives a number
    ssim, psnr, masked_l1  self-imitation of the trained LWGAN on the validation videos (``eval.json``);
                           lpips, fid, inception_score too when the evaluate stage had their weights
    osc_*, rosc_*          oscillation of each tracked loss over the run's last third: RMS of the residual
                           after a straight-line fit (loss units), and relative to the tail's mean (%)
                           (`lwgan.experiments.stability`)
    d_real_q1..q4, d_fake_q1..q4  D's mean output on real / fake images in each quarter of the run
    d_margin, d_state      D's normalised margin over the last third and 'saturated' / 'flat' / 'balanced'
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lwgan import tracking
from lwgan.errors import UserError
from lwgan.experiments import stability, variants
from lwgan.experiments.plots import overlay
from lwgan.io import atomic_path

TABLE_LOSSES = ("L_face", "L_tsf", "L_rec")
CURVES = ("loss/G", "loss/D", "loss/L_adv", "loss/L_rec", "loss/L_tsf", "loss/L_face", "loss/L_mask",
          "loss/L_smooth", "loss/L_D_real", "loss/L_D_fake", "loss/L_GP", "d/real", "d/fake")
OSCILLATING = tuple(k for k in CURVES if k.startswith("loss/"))
EVAL_METRICS = (("ssim", "self_imitation.lwgan.ssim"), ("psnr", "self_imitation.lwgan.psnr"),
                ("masked_l1", "self_imitation.lwgan.masked_l1"), ("lpips", "self_imitation.lwgan.lpips"),
                ("fid", "cross_imitation.lwgan.fid"),
                ("inception_score", "cross_imitation.lwgan.inception_score"))
SETTINGS = ("spectral_norm", "gp_weight", "lr_g", "lr_d", "final_lr", "epochs_constant", "epochs_decay",
            "lambda_rec", "lambda_face", "real_target")
# Train params that change how a run executes or are derived from the others, not what it is.
IGNORED_PARAMS = frozenset(f"train.{k}" for k in ("workers", "device", "threads", "checkpoint_every",
                                                  "sample_every", "samples", "steps_per_epoch",
                                                  "total_steps"))
MARKDOWN = "report.md"
TABLE = "table1.csv"


class ReportError(UserError, RuntimeError):
    """No report can be built (no baseline run, a run given by id that is not a baseline train run)."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One variant's runs (plain dicts as `lwgan.tracking.search_runs` gives them)."""

    variant: variants.Variant
    train: dict[str, Any]
    evaluate: dict[str, Any] | None


@dataclasses.dataclass(frozen=True)
class Selection:
    """entries: the baseline first, then the variants found, in the registry's order; passed_over: variant
    name -> why its newest run(s) were passed over (another baseline's, other data)."""

    entries: tuple[Entry, ...]
    passed_over: Mapping[str, str]

    @property
    def baseline(self) -> Entry:
        return self.entries[0]


def _compared(key: str) -> bool:
    return key == "seed" or key.startswith("feature_net.") or (
        key.startswith("train.") and key not in IGNORED_PARAMS)


def _same(text: str | None, expected: Any) -> bool:
    if text is None:
        return False
    if isinstance(expected, bool):
        return text == str(expected)
    try:
        return math.isclose(float(text), float(expected), rel_tol=1e-9, abs_tol=1e-15)
    except ValueError:
        return text == str(expected)


def mismatch(variant: variants.Variant, run: Mapping[str, Any], baseline: Mapping[str, Any]) -> str | None:
    """Why `run` is not `variant` of the `baseline` run (None when it is): the first differing key."""
    expected = variants.resolve(variant, baseline["params"])
    mine, theirs = run["params"], baseline["params"]
    for key in sorted({k for k in (*mine, *theirs) if _compared(k)} | set(expected)):
        if key in expected:
            if not _same(mine.get(key), expected[key]):
                return f"{key} is {mine.get(key)}, the variant has {variants.format_value(expected[key])}"
        elif mine.get(key) != theirs.get(key):
            return f"{key} is {mine.get(key)}, the baseline's is {theirs.get(key)}"
    data, base_data = run["tags"].get(tracking.TAG_DATA), baseline["tags"].get(tracking.TAG_DATA)
    if data is None or data != base_data:
        return f"trained on other data ({tracking.TAG_DATA} {data}, the baseline's {base_data})"
    return None


def _variant_runs(runs: Sequence[Mapping[str, Any]], stage: str) -> dict[str, list[dict[str, Any]]]:
    """Finished runs of `stage` per variant tag, newest first."""
    out: dict[str, list[dict[str, Any]]] = {}
    for run in sorted(runs, key=lambda r: r.get("start_time") or 0, reverse=True):
        name = run["tags"].get(tracking.TAG_VARIANT)
        if run["tags"].get(tracking.TAG_STAGE) == stage and run["status"] == "FINISHED" and name:
            out.setdefault(name, []).append(dict(run))
    return out


def _evaluation(train: Mapping[str, Any], candidates: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    group = train["tags"].get(tracking.TAG_GROUP)
    for run in candidates:
        if group and run["tags"].get(tracking.TAG_GROUP) == group:
            return run
    later = [r for r in candidates if (r.get("start_time") or 0) >= (train.get("start_time") or 0)]
    return later[0] if later else None


def select(runs: Sequence[Mapping[str, Any]], baseline_run: str | None = None) -> Selection:
    """Pick the baseline and each variant's runs from all runs of the experiment (module docstring)."""
    trains, evals = _variant_runs(runs, "train"), _variant_runs(runs, "evaluate")
    if baseline_run:
        found = [r for rs in trains.values() for r in rs if r["run_id"] == baseline_run]
        if not found or found[0]["tags"].get(tracking.TAG_VARIANT) != variants.BASELINE:
            raise ReportError(f"run {baseline_run} is not a finished train run tagged "
                              f"{tracking.TAG_VARIANT}={variants.BASELINE}")
        base = found[0]
    elif trains.get(variants.BASELINE):
        base = trains[variants.BASELINE][0]
    else:
        raise ReportError(f"no finished train run tagged {tracking.TAG_VARIANT}={variants.BASELINE}: queue "
                          "the grid with the baseline (lwgan experiments queue) and run it (dvc exp run "
                          "--run-all)")
    if tracking.TAG_DATA not in base["tags"]:
        raise ReportError(f"baseline run {base['run_id']} has no {tracking.TAG_DATA} tag (tracked by an "
                          "older lwgan): run the baseline again")
    base_eval = _evaluation(base, evals.get(variants.BASELINE, []))
    entries = [Entry(variants.get(variants.BASELINE), base, base_eval)]
    passed_over: dict[str, str] = {}
    for name in variants.VARIANT_NAMES[1:]:
        variant = variants.get(name)
        reasons = []
        for run in trains.get(name, []):
            why = mismatch(variant, run, base)
            if why is None:
                entries.append(Entry(variant, run, _evaluation(run, evals.get(name, []))))
                break
            reasons.append(why)
        if reasons:
            found = len(reasons) < len(trains[name])
            what = (f"{len(reasons)} newer run(s) not of this baseline passed over, an older one is in the "
                    "table" if found else f"{len(reasons)} run(s), none of this baseline")
            passed_over[name] = f"{what}; the newest ({trains[name][0]['run_id'][:8]}): {reasons[0]}"
    return Selection(tuple(entries), passed_over)


Curve = tuple[np.ndarray, np.ndarray]  # steps (N,), values (N,)


def fetch_curves(run: Mapping[str, Any], tracking_uri: str | None = None) -> dict[str, Curve]:
    """The tracked per-step curves of `CURVES` that a train run has, as arrays in step order."""
    keys = [k for k in CURVES if k in run["metrics"]]
    out = {}
    for key, points in tracking.metric_histories(run["run_id"], keys, tracking_uri).items():
        by_step = dict(points)  # a step logged twice keeps its last value
        steps = np.array(sorted(by_step), dtype=float)
        out[key] = (steps, np.array([by_step[s] for s in sorted(by_step)], dtype=float))
    return out


def _number(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def row(entry: Entry, baseline: Entry, curves: Mapping[str, Curve],
        fraction: float = stability.TAIL_FRACTION) -> dict[str, Any]:
    """One line of the table (module docstring) for `entry`, Δ against `baseline`."""
    train, params = entry.train, entry.train["params"]
    out: dict[str, Any] = {
        "variant": entry.variant.name, "section": entry.variant.section, "train_run": train["run_id"],
        "evaluate_run": entry.evaluate["run_id"] if entry.evaluate else None,
        "dvc_exp": train["tags"].get(tracking.TAG_EXP), "steps": train["metrics"].get("steps"),
    }
    for key in SETTINGS:
        value = params.get(f"train.{key}")
        out[key] = value == "True" if key == "spectral_norm" else _number(value)
    for name in TABLE_LOSSES:
        out[name] = train["metrics"].get(f"loss.{name}")
    for name in TABLE_LOSSES:
        base = baseline.train["metrics"].get(f"loss.{name}")
        out[f"dL_{name}"] = (stability.relative_delta(out[name], base)
                             if out[name] is not None and base is not None else None)
    for name in TABLE_LOSSES:
        out[f"paper_dL_{name}"] = entry.variant.paper_delta.get(name)
    metrics = entry.evaluate["metrics"] if entry.evaluate else {}
    for name, key in EVAL_METRICS:
        out[name] = metrics.get(key)
    for key in OSCILLATING:
        short = key.removeprefix("loss/")
        if key in curves:
            out[f"osc_{short}"] = stability.oscillation(*curves[key], fraction)
            out[f"rosc_{short}"] = stability.relative_oscillation(*curves[key], fraction)
        else:
            out[f"osc_{short}"] = out[f"rosc_{short}"] = None
    for side in ("real", "fake"):
        key = f"d/{side}"
        parts = stability.quarters(*curves[key]) if key in curves else [None] * 4
        out.update({f"d_{side}_q{i + 1}": v for i, v in enumerate(parts)})
        out[f"d_{side}_tail"] = stability.tail_mean(*curves[key], fraction) if key in curves else None
    if "d/real" in curves and "d/fake" in curves:
        steps, real = curves["d/real"]
        state = stability.d_state(steps, real, curves["d/fake"][1], out["real_target"] or 1.0, fraction)
        out.update(d_margin=state.margin, d_saturated_share=state.saturated_share,
                   d_flat_share=state.flat_share, d_state=state.state, d_saturated=state.saturated)
    else:
        out.update(d_margin=None, d_saturated_share=None, d_flat_share=None, d_state=None, d_saturated=None)
    return out


# ------------------------------------------------------------------------------------------------ output


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Every column of every row; empty cells for values not available; floats at full precision."""
    columns = list(rows[0]) if rows else []
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for r in rows:
            writer.writerow([_cell(r.get(c)) for c in columns])
    return Path(path)


def _fmt(value: Any, spec: str, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:{spec}}{suffix}"


def _rate(value: float | None) -> str:
    if value is None:
        return "–"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _pct(value: Any) -> str:
    return _fmt(value, "+.2f", " %").replace("-", "−")


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(cells) + " |" for cells in lines]


def markdown(rows: Sequence[Mapping[str, Any]], selection: Selection, pictures: Sequence[Path],
             experiment: str, fraction: float) -> str:
    """The report page: Table 1 with the evaluation beside it, the stability table, passed-over variants,
    the curve overlays."""
    base = selection.baseline.train
    optional = [(name, label, spec) for name, label, spec in
                (("lpips", "LPIPS", ".3f"), ("fid", "FID", ".1f"), ("inception_score", "IS", ".2f"))
                if any(r.get(name) is not None for r in rows)]
    lines = [
        "# Table 1: the paper's experiments", "",
        f"MLflow experiment `{experiment}`; baseline: train run `{base['run_id']}` (DVC experiment "
        f"`{base['tags'].get(tracking.TAG_EXP)}`, commit `{base['tags'].get(tracking.TAG_COMMIT, '')[:12]}`, "
        f"seed {base['params'].get('seed')}, data `{base['tags'].get(tracking.TAG_DATA, '')[:12]}`). Every "
        "variant below is that baseline with only its own keys changed, on the same data and seed.", "",
        "ΔL = 100 × (L_variant − L_baseline) / L_baseline of the final losses (mean of the last epoch, "
        "weighted as logged): negative = lower than the baseline. *paper*: the ΔL the paper reports on iPER "
        "(face / tsf / rec), where it gives one. SSIM, PSNR, body L1: self-imitation on the validation "
        "videos (`metrics/eval.json`).", "",
    ]
    header = ["variant", "SN", "GP", "(η_G, η_D, η_F)", "epochs", "λ_rec", "λ_face", "real", "ΔL_face",
              "ΔL_tsf", "ΔL_rec", "paper", "SSIM", "PSNR", "body L1", *(label for _, label, _ in optional)]
    body = []
    for r in rows:
        paper = " / ".join(_fmt(r[f"paper_dL_{n}"], "+.2f").replace("-", "−") for n in TABLE_LOSSES)
        body.append([
            r["variant"], "✓" if r["spectral_norm"] else "–", _fmt(r["gp_weight"], "g"),
            f"({_rate(r['lr_g'])}, {_rate(r['lr_d'])}, {_rate(r['final_lr'])})",
            f"{_fmt(r['epochs_constant'], 'g')} + {_fmt(r['epochs_decay'], 'g')}", _fmt(r["lambda_rec"], "g"),
            _fmt(r["lambda_face"], "g"), _fmt(r["real_target"], "g"),
            *(_pct(r[f"dL_{n}"]) if r["variant"] != variants.BASELINE else _fmt(r[n], ".4g")
              for n in TABLE_LOSSES),
            paper if any(r[f"paper_dL_{n}"] is not None for n in TABLE_LOSSES) else "",
            _fmt(r["ssim"], ".3f"), _fmt(r["psnr"], ".2f"), _fmt(r["masked_l1"], ".4f"),
            *(_fmt(r[name], spec) for name, _, spec in optional)])
    lines += _table(header, body)
    lines += ["", "The baseline's row holds its final losses L_face / L_tsf / L_rec instead of Δ.", ""]

    lines += [
        "## Stability", "",
        f"Over the last {fraction:.0%} of each run's tracked steps: *osc* = RMS of the loss after a "
        "least-squares straight line is taken out, relative to its mean over that span (%); D real / fake = "
        "D's mean output on real / generated images in each quarter of the run (targets: real +1 or the "
        "smoothed target, fake −1); margin = (D real − D fake) / (real target + 1) over the last span, 1 = "
        "perfect separation; D = *saturated* (margin ≥ "
        f"{stability.SATURATED_MARGIN} in ≥ {stability.HELD:.0%} of the rows), *flat* (both outputs within "
        f"±{stability.FLAT_LEVEL} in ≥ {stability.HELD:.0%}) or *balanced*.", "",
    ]
    osc_keys = ("G", "D", "L_adv", "L_face", "L_tsf", "L_rec")
    header = ["variant", "steps", *(f"osc {k}" for k in osc_keys), "D real (quarters)", "D fake (quarters)",
              "margin", "D"]
    body = []
    for r in rows:
        quarters = {side: " → ".join(_fmt(r[f"d_{side}_q{i}"], ".2f") for i in range(1, 5))
                    for side in ("real", "fake")}
        body.append([r["variant"], _fmt(r["steps"], ".0f"), *(_fmt(r[f"rosc_{k}"], ".1f") for k in osc_keys),
                     quarters["real"], quarters["fake"], _fmt(r["d_margin"], ".2f"), r["d_state"] or "–"])
    lines += _table(header, body)
    if selection.passed_over:
        lines += ["", "## Runs passed over", ""]
        lines += [f"- `{name}`: {why}" for name, why in selection.passed_over.items()]
    missing = [n for n in variants.VARIANT_NAMES if n not in {r["variant"] for r in rows}
               and n not in selection.passed_over]
    if missing:
        lines += ["", f"Not run yet: {', '.join(f'`{n}`' for n in missing)} "
                  "(lwgan experiments queue NAMES...)."]
    lines += ["", "## Loss curves", "",
              "Every variant on one plot per curve (bold: moving average; faint: as tracked; shaded: the "
              f"last {fraction:.0%} of the longest run, the span the stability measures read).", ""]
    lines += [f"![{p.stem}]({p.name})" for p in pictures]
    return "\n".join(lines) + "\n"


@dataclasses.dataclass(frozen=True)
class Report:
    """What `build` wrote, and the table's rows (column name -> value, None when not available)."""

    rows: list[dict[str, Any]]
    markdown: Path
    table: Path
    pictures: list[Path]
    selection: Selection


def build(out_dir: str | Path, experiment: str = "lwgan", tracking_uri: str | None = None,
          baseline_run: str | None = None, fraction: float = stability.TAIL_FRACTION) -> Report:
    """Read the runs, write ``report.md``, ``table1.csv`` and ``curves_<name>.png`` into `out_dir`."""
    out_dir = Path(out_dir)
    selection = select(tracking.search_runs(experiment=experiment, tracking_uri=tracking_uri), baseline_run)
    curves = {e.variant.name: fetch_curves(e.train, tracking_uri) for e in selection.entries}
    rows = [row(e, selection.baseline, curves[e.variant.name], fraction) for e in selection.entries]
    table = write_csv(out_dir / TABLE, rows)
    pictures = []
    last_step = max((c[0][-1] for cs in curves.values() for c in cs.values() if len(c[0])), default=0.0)
    for key in CURVES:
        series = {name: cs[key] for name, cs in curves.items() if key in cs and len(cs[key][0])}
        if series:
            name = key.removeprefix("loss/").replace("/", "_")
            pictures.append(overlay(out_dir / f"curves_{name}.png", series, title=key,
                                    shade_from=(1.0 - fraction) * last_step))
    page = out_dir / MARKDOWN
    with atomic_path(page) as tmp:
        tmp.write_text(markdown(rows, selection, pictures, experiment, fraction))
    return Report(rows, page, table, pictures, selection)
