#!/usr/bin/env python3
"""Summarises a gpu-check output folder (desdis.json, torch.json) as Markdown on stdout.

Usage: summary.py OUT_DIR
"""

import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def ms(seconds):
    return "–" if seconds is None else f"{seconds * 1e3:.2f} ms"


def ratio(ours, theirs):
    return "–" if ours is None or not theirs else f"{ours / theirs:.2f}"


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    ours = load(os.path.join(out, "desdis.json"))
    torch = load(os.path.join(out, "torch.json")) or {}
    lines = ["## gpu-check", ""]
    if ours is None:
        lines.append("No desdis.json: the desdis part did not finish (see desdis.log and run.log).")
        print("\n".join(lines))
        return
    gpu = torch.get("gpu", "?")
    lines.append(
        f"Device {ours['device']} ({gpu}); desdis {ours['version']}; "
        f"torch {torch.get('torch', '–')} (CUDA {torch.get('torch_cuda', '–')}, TF32 {torch.get('tf32', '–')}); "
        f"checks {'passed' if ours.get('ok') else 'FAILED'} in {ours.get('seconds', 0):.0f} s"
        + ("." if ours.get("complete") else " (INCOMPLETE: the run was cut short).")
    )
    lines.append("")

    lines += ["### Parity with the CPU", "",
              "| net | patches | eval max abs diff | train max abs diff | grad rel diff (norm) | ok |",
              "|---|---:|---:|---:|---:|---|"]
    for row in ours.get("parity") or []:
        def num(key):
            v = row.get(key)
            return "–" if v is None else f"{v:.1e}"
        ok = row.get("ok") if "error" not in row else "error: " + row["error"].replace("|", "/")[:200]
        lines.append(f"| {row['net']} | {row.get('patches', '–')} | {num('eval_max_abs_diff')} | "
                     f"{num('train_max_abs_diff')} | {num('grad_max_rel_diff')} | {ok} |")
    lines.append("")

    timings = [t for t in ours.get("timings") or [] if "error" not in t]
    failed_timings = [t for t in ours.get("timings") or [] if "error" in t]
    results = torch.get("results", {})
    if timings:
        pairs = sorted({int(k) for t in timings for k in t["train_s"]})
        head = "| arch | infer patches/s | torch | ratio |" + "".join(
            f" train {p} pairs | torch | ratio |" for p in pairs)
        rule = "|---|---:|---:|---:|" + "---:|---:|---:|" * len(pairs)
        lines += ["### Speed (candle time / PyTorch time: below 1 is faster)", "",
                  f"Inference on {timings[0]['infer_batch']} patches; a train step is two train-mode "
                  "forwards, the triplet loss, backward and an SGD update; medians of "
                  f"{timings[0]['reps']} synchronised runs.", "", head, rule]
        for t in timings:
            theirs = results.get(t["arch"], {})
            t_infer = theirs.get("infer_s")
            torch_pps = f"{t['infer_batch'] / t_infer:.0f}" if t_infer else "–"
            row = f"| {t['arch']} | {t['infer_patches_per_s']:.0f} | {torch_pps} | {ratio(t['infer_s'], t_infer)} |"
            for p in pairs:
                mine = t["train_s"].get(str(p))
                other = theirs.get("train_s", {}).get(str(p))
                row += f" {ms(mine)} | {ms(other)} | {ratio(mine, other)} |"
            lines.append(row)
        checks = [f"{a} {r['check_max_abs_diff']:.1e}" for a, r in results.items() if "check_max_abs_diff" in r]
        if checks:
            lines += ["", "PyTorch against candle on the device, eval-mode descriptors: " + ", ".join(checks) + "."]
        lines.append("")
    for t in failed_timings:
        lines.append(f"- timing {t['arch']} failed: {t['error']}")

    d = ours.get("distill")
    if d:
        lines += ["### Distillation", "",
                  f"{d['student']} from {os.path.basename(str(d['teacher']))}: {d['steps']} steps of {d['batch']} "
                  f"pairs in {d['seconds']:.1f} s ({d['pairs_per_s']:.0f} pairs/s), loss "
                  f"{d['first_epoch_loss']:.4f} -> {d['last_epoch_loss']:.4f}, validation FPR95 "
                  f"{', '.join(f'{v:.3f}' for v in d['val_fpr95'])}; first epoch against the CPU: "
                  f"relative loss difference {d.get('first_step_rel_loss_diff', float('nan')):.1e} at the first step, "
                  f"at most {d['max_rel_loss_diff']:.1e} ({'ok' if d['ok'] else 'FAILED'}).", ""]
    for e in ours.get("errors") or []:
        lines.append(f"- error in {e['section']}: {e['error']}")
    for f in ours.get("failures") or []:
        lines.append(f"- failed: {f}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
