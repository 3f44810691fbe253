#!/usr/bin/env python3
"""PyTorch's CUDA matmul throughput: the baseline for bench/src/bin/gpu_matmul.rs (issue 4).

Measures exactly what gpu_matmul measures, on the same card, and prints the same JSON lines:
- {"kind":"device",...}: the card's name, compute capability and memory;
- {"kind":"check",...}: an n x n matmul (default 256) on the GPU against a CPU f32 matmul of the
  same (dtype-rounded) inputs, for f32 and bf16, with the same tolerances;
- {"kind":"matmul",...}: an n x n x n matmul (default 8192) for bf16 and f32: --warmup products,
  then --rounds rounds of --iters products, each round timed from a synchronized device
  (torch.cuda.synchronize) to a synchronized device; tflops = 2 n^3 / (round time / iters), best
  round; tflops_rounds lists every round.

PyTorch's defaults are kept (no TF32 for f32 matmuls, like candle); they are printed with the
results. Exit status: 0 when every check passed, 1 when one failed, 2 on an error.
"""

import argparse
import json
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", type=int, default=0)
    p.add_argument("--n", type=int, default=8192)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--check-n", type=int, default=256)
    p.add_argument("--dtypes", default="bf16,f32")
    return p.parse_args()


def emit(obj):
    print(json.dumps(obj), flush=True)


def matmul_settings(torch):
    """PyTorch's matmul precision settings, read defensively (their API changes across versions)."""
    out = {}
    m = torch.backends.cuda.matmul
    for key, attr in (("tf32", "allow_tf32"),
                      ("bf16_reduced_precision", "allow_bf16_reduced_precision_reduction"),
                      ("fp32_precision", "fp32_precision")):
        try:
            out[key] = getattr(m, attr)
        except Exception:  # noqa: BLE001 - absent or deprecated in this version
            pass
    try:
        out["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    except Exception:  # noqa: BLE001
        pass
    return out


def main():
    args = parse_args()
    try:
        import torch
    except ImportError as e:
        print(f"torch_matmul: cannot import torch: {e}", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("torch_matmul: torch.cuda.is_available() is False", file=sys.stderr)
        return 2

    dtypes = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}
    dev = torch.device("cuda", args.device)
    props = torch.cuda.get_device_properties(dev)
    emit({
        "kind": "device", "impl": "torch", "device": f"cuda:{args.device}", "name": props.name,
        "compute_capability": f"{props.major}.{props.minor}", "memory_bytes": props.total_memory,
        "torch": torch.__version__, "cuda": torch.version.cuda,
    })

    ok = True
    tols = {"f32": 1e-4, "f16": 5e-3, "bf16": 2e-2}
    gen = torch.Generator().manual_seed(0)
    for name in ("f32", "bf16"):
        n = args.check_n
        a = torch.randn(n, n, generator=gen).to(dtypes[name])
        b = torch.randn(n, n, generator=gen).to(dtypes[name])
        want = a.float() @ b.float()
        got = (a.to(dev) @ b.to(dev)).float().cpu()
        err = (got - want).abs().max().item()
        scale = want.abs().max().item()
        rel = err / scale if scale > 0 else err
        passed = rel == rel and rel <= tols[name]  # rel == rel: not NaN
        ok &= passed
        emit({
            "kind": "check", "impl": "torch", "op": "matmul", "dtype": name, "n": n,
            "max_abs_err": err, "max_abs_ref": scale, "rel_err": rel, "tol": tols[name],
            "ok": passed,
        })

    n = args.n
    flops = 2.0 * n ** 3
    for name in args.dtypes.split(","):
        name = name.strip()
        if name not in dtypes:
            print(f"torch_matmul: unsupported dtype {name!r}", file=sys.stderr)
            return 2
        a = torch.randn(n, n, device=dev).to(dtypes[name])
        b = torch.randn(n, n, device=dev).to(dtypes[name])
        for _ in range(args.warmup):
            torch.matmul(a, b)
        torch.cuda.synchronize(dev)
        ms_rounds, tflops_rounds = [], []
        c = None
        for _ in range(max(args.rounds, 1)):
            torch.cuda.synchronize(dev)
            start = time.perf_counter()
            for _ in range(max(args.iters, 1)):
                c = torch.matmul(a, b)
            torch.cuda.synchronize(dev)
            per_iter = (time.perf_counter() - start) / max(args.iters, 1)
            ms_rounds.append(per_iter * 1e3)
            tflops_rounds.append(flops / per_iter / 1e12)
        emit({
            "kind": "matmul", "impl": "torch", "dtype": name, "n": n,
            "warmup": args.warmup, "iters": args.iters, "rounds": args.rounds,
            "ms": min(ms_rounds), "tflops": max(tflops_rounds),
            "ms_rounds": ms_rounds, "tflops_rounds": tflops_rounds,
            "sample_c00": c[0, 0].float().item() if c is not None else None,
            **matmul_settings(torch),
        })
        del a, b, c
        torch.cuda.empty_cache()

    if not ok:
        print("torch_matmul: a correctness check failed (see the \"check\" lines)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
