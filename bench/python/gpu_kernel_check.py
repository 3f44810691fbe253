#!/usr/bin/env python3
"""The product half of scripts/gpu-check: notebook cells in a real Tandem kernel on the GPU.

Against a running `tandem serve` (URL and token given), through the HTTP API and a document
client (`doc_state`, a y-websocket peer built from bench/src/bin/doc_state.rs):

  1. creates a notebook whose cells are below (POST /api/notebooks with an nbformat body);
  2. switches it to the GPU runtime (PUT /api/notebooks/{id}/runtime {"type":"gpu"}) and waits
     for `state.kernel.gpu` in the document; with --cpu, expects 409 `gpu_unavailable` instead
     (a CPU build) and stays on the CPU;
  3. runs cells on `device` ("cuda", or "cpu" for the dry run) that check elementwise ops,
     reductions, softmax and f32/bf16/f16 matmuls against numpy, time an n³ bf16 matmul (and
     PyTorch's on the same device in the same kernel, when torch imports), list the tensors in
     the variable inspector (with their device), interrupt a running GPU cell, exhaust GPU memory
     (a RuntimeError, and the kernel's variables survive it), and restart the kernel;
  4. reads every result twice: from the document (`doc_state`) and from GET .../ipynb.

Prints one JSON line per result (`{"kind": ...}`) and a last `{"kind":"summary"}`; exit status 0
when every check passed. Only the standard library: the GPU machine's Python is used as it is.
"""

import argparse
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

MARK = "GPUCHECK "

CELLS = {
    "setup": """
import json, time
import numpy as np
import tandem
DEV = __DEVICE__
def report(**fields):
    print("GPUCHECK " + json.dumps(fields), flush=True)
report(step="setup", device=DEV, default_device=tandem.default_device(),
       cuda_available=tandem.cuda_available())
""",
    "ops": """
rng = np.random.default_rng(0)
A = rng.standard_normal((256, 512), dtype=np.float32)
B = rng.standard_normal((512, 128), dtype=np.float32)
C = rng.standard_normal((256, 512), dtype=np.float32)
a, b, c = (tandem.from_numpy(x).to(DEV) for x in (A, B, C))
def rel(got, want):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))
def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)
checks = {
    "elementwise": (((a * c) + 1.5).exp().sqrt().relu().numpy(), np.sqrt(np.exp(A * C + 1.5)), 1e-5),
    "sum": (a.sum(dim=1).numpy(), A.sum(1), 1e-4),
    "mean": (a.mean().item(), A.mean(), 1e-4),
    "max": (a.max(dim=0).numpy(), A.max(0), 0.0),
    "argmax": (a.argmax(dim=1).numpy(), A.argmax(1), 0.0),
    "softmax": (a.softmax(-1).numpy(), softmax(A), 1e-5),
}
ref = A @ B
for dt, tol in (("float32", 1e-4), ("bfloat16", 3e-2), ("float16", 5e-3)):
    got = (a.to(dt) @ b.to(dt)).to("float32").numpy()
    checks["matmul_" + dt] = (got, ref, tol)
for name, (got, want, tol) in checks.items():
    err = rel(got, want)
    report(step="op", op=name, device=str(a.device), rel_err=err, tol=tol, ok=bool(err <= tol))
""",
    "bench": """
def sync(t):
    return t[0:1, 0:1].to("cpu").item()   # a device-to-host copy waits for the queue
N = __N__
x = tandem.randn(N, N, device=DEV).to("bfloat16")
y = tandem.randn(N, N, device=DEV).to("bfloat16")
for _ in range(__WARMUP__):
    z = x @ y
sync(z)
rounds = []
for _ in range(__ROUNDS__):
    t0 = time.perf_counter()
    for _ in range(__ITERS__):
        z = x @ y
    sync(z)
    rounds.append((time.perf_counter() - t0) / __ITERS__)
best = min(rounds)
report(step="matmul", impl="tandem", dtype="bf16", n=N, device=str(x.device), ms=best * 1e3,
       tflops=2 * N**3 / best / 1e12, tflops_rounds=[2 * N**3 / r / 1e12 for r in rounds])
del x, y, z
""",
    "torch": """
try:
    import torch
except Exception as error:
    report(step="torch", skipped=f"torch does not import here: {error}")
else:
    tdev = "cuda" if DEV.startswith("cuda") else "cpu"
    if tdev == "cuda" and not torch.cuda.is_available():
        report(step="torch", skipped="torch sees no CUDA device")
    else:
        def tsync():
            if tdev == "cuda":
                torch.cuda.synchronize()
        N = __N__
        tx = torch.randn(N, N, device=tdev, dtype=torch.bfloat16)
        ty = torch.randn(N, N, device=tdev, dtype=torch.bfloat16)
        for _ in range(__WARMUP__):
            tz = tx @ ty
        tsync()
        rounds = []
        for _ in range(__ROUNDS__):
            t0 = time.perf_counter()
            for _ in range(__ITERS__):
                tz = tx @ ty
            tsync()
            rounds.append((time.perf_counter() - t0) / __ITERS__)
        best = min(rounds)
        report(step="matmul", impl="torch", dtype="bf16", n=N, device=tdev, torch=torch.__version__,
               ms=best * 1e3, tflops=2 * N**3 / best / 1e12,
               tflops_rounds=[2 * N**3 / r / 1e12 for r in rounds])
        del tx, ty, tz
        if tdev == "cuda":
            torch.cuda.empty_cache()
""",
    "inspect": """
keep = tandem.ones(64, 32, device=DEV)
keep_bf16 = keep.to("bfloat16")
report(step="inspect", device=str(keep.device), sum=keep.sum().item())
""",
    "oom": """
# On the GPU: 4 GiB blocks until the card says no; the exception reaches the notebook, the
# blocks go with the cell's frame, and the kernel lives on. On the CPU (dry run) there is no
# card to exhaust (and host memory is the kernel's cgroup's): ask for a device that is not
# there, which takes the same path (a RuntimeError from the tensor library into the cell).
blocks = []
try:
    if DEV.startswith("cuda"):
        for _ in range(256):        # 1 TiB: more than any card has
            blocks.append(tandem.zeros(1 << 30, device=DEV))
    else:
        blocks.append(tandem.zeros(4, device="cuda"))
finally:
    report(step="oom", blocks=len(blocks), gib=len(blocks) * 4)
    del blocks
""",
    "after_oom": """
report(step="after_oom", keep_sum=keep.sum().item(), device=str(keep.device),
       default_device=tandem.default_device())
""",
    "interrupt": """
w = tandem.randn(512, 512, device=DEV)
for i in range(100000):
    w = (w @ w).softmax(-1)
    sync(w)
    time.sleep(0.01)
""",
    "after_restart": """
import tandem
print("GPUCHECK " + __import__("json").dumps({"step": "after_restart",
      "keep_defined": "keep" in globals(), "default_device": tandem.default_device()}))
""",
}


def log(**fields):
    print(json.dumps(fields), flush=True)


class Api:
    def __init__(self, url, token):
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method, path, body=None, expect=(200, 201, 202, 204)):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        if status not in expect:
            raise RuntimeError(f"{method} {path}: HTTP {status} (expected {expect}): {text}")
        return status, (json.loads(text) if text.strip() else None)


class Check:
    def __init__(self, args):
        self.args = args
        self.api = Api(args.url, args.token)
        self.failures = []
        self.results = []
        self.notebook = None

    def fail(self, what):
        self.failures.append(what)
        log(kind="failure", what=what)

    def doc(self, until=None, timeout=None):
        """The document as a client sees it (doc_state); None when --until did not hold."""
        cmd = [self.args.doc_state, "--url", self.args.url, "--token", self.args.token,
               "--notebook", self.notebook]
        if until:
            cmd += ["--until", until, "--timeout", str(timeout or self.args.cell_timeout)]
        run = subprocess.run(cmd, capture_output=True, text=True,
                             timeout=(timeout or self.args.cell_timeout) + 30)
        if run.returncode == 2 or not run.stdout.strip():
            raise RuntimeError(f"doc_state failed ({run.returncode}): {run.stderr.strip()}")
        snapshot = json.loads(run.stdout)
        return snapshot if run.returncode == 0 else (None if until else snapshot)

    def cell_source(self, name):
        a = self.args
        source = CELLS[name]
        for key, value in (("__DEVICE__", repr(a.device)), ("__N__", a.n), ("__WARMUP__", a.warmup),
                           ("__ROUNDS__", a.rounds), ("__ITERS__", a.iters)):
            source = source.replace(key, str(value))
        return source.strip("\n")

    def create(self):
        cells = [{"id": name, "cell_type": "code", "metadata": {}, "execution_count": None,
                  "outputs": [], "source": self.cell_source(name)} for name in CELLS]
        ipynb = {"nbformat": 4, "nbformat_minor": 5, "cells": cells,
                 "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}}}
        _, info = self.api.call("POST", "/api/notebooks", {"title": "gpu-check", "ipynb": ipynb},
                                expect=(200, 201))
        self.notebook = info["id"]
        log(kind="notebook", id=self.notebook, cells=list(CELLS))

    def switch_runtime(self):
        status, body = self.api.call("PUT", f"/api/notebooks/{self.notebook}/runtime",
                                     {"type": "gpu"}, expect=(200, 409))
        log(kind="runtime_switch", status=status, body=body)
        if self.args.cpu:
            if status != 409 or "gpu_unavailable" not in json.dumps(body):
                self.fail(f"a CPU build answered the GPU switch with {status} {body}, "
                          "not 409 gpu_unavailable")
            return
        if status != 200:
            self.fail(f"PUT runtime gpu: {status} {body}")
            return
        snap = self.doc(until="gpu", timeout=self.args.start_timeout)
        if snap is None:
            self.fail("state.kernel.gpu never appeared in the document")
            return
        kernel = snap["kernel"]
        log(kind="state_kernel", runtime=kernel.get("runtime"), gpu=kernel.get("gpu"),
            status=kernel.get("status"))
        if kernel.get("runtime") != "gpu":
            self.fail(f"state.kernel.runtime is {kernel.get('runtime')!r}, not 'gpu'")

    def run(self, name, timeout=None):
        """Runs one cell to its end; returns its outputs as the document has them."""
        self.api.call("POST", f"/api/notebooks/{self.notebook}/execute", {"cell_ids": [name]})
        return self.finish(name, timeout)

    def finish(self, name, timeout=None):
        snap = self.doc(until=f"ran:{name}", timeout=timeout)
        if snap is None:
            self.fail(f"cell {name} did not finish within {timeout or self.args.cell_timeout}s")
            return []
        cell = next(c for c in snap["cells"] if c["id"] == name)
        outputs = cell.get("outputs") or []
        for out in outputs:
            if out.get("output_type") == "stream":
                text = out.get("text")
                text = "".join(text) if isinstance(text, list) else (text or "")
                for line in text.splitlines():
                    if line.startswith(MARK):
                        record = json.loads(line[len(MARK):])
                        self.results.append(record)
                        log(kind="cell_result", cell=name, **record)
        return outputs

    @staticmethod
    def errors(outputs):
        return [o for o in outputs if o.get("output_type") == "error"]

    def expect_ok(self, name, outputs):
        for error in self.errors(outputs):
            self.fail(f"cell {name} raised {error.get('ename')}: {error.get('evalue')}")

    def main(self):
        a = self.args
        self.create()
        self.switch_runtime()
        if self.failures and not a.cpu:
            # No GPU runtime: every later step would fail for the same reason.
            log(kind="summary", device=a.device, failures=self.failures)
            return 1
        for name in ("setup", "ops", "bench", "torch", "inspect"):
            self.expect_ok(name, self.run(name, a.start_timeout if name == "setup" else None))
        setup = next((r for r in self.results if r["step"] == "setup"), {})
        want_default = "cpu" if a.cpu else "cuda:0"
        if setup.get("default_device") != want_default:
            self.fail(f"tandem.default_device() is {setup.get('default_device')!r}, "
                      f"not {want_default!r}")
        for r in self.results:
            if r["step"] == "op" and not r["ok"]:
                self.fail(f"{r['op']} on {r['device']}: rel. error {r['rel_err']:.2e} > {r['tol']}")
        self.check_inspector()
        self.check_oom()
        self.check_interrupt()
        self.check_restart()
        self.check_export()
        mm = {r["impl"]: r for r in self.results if r["step"] == "matmul"}
        ratio = (mm["tandem"]["tflops"] / mm["torch"]["tflops"]
                 if "tandem" in mm and "torch" in mm and mm["torch"]["tflops"] > 0 else None)
        log(kind="summary", device=a.device, n=a.n, tandem_tflops=mm.get("tandem", {}).get("tflops"),
            torch_tflops=mm.get("torch", {}).get("tflops"), tandem_vs_torch=ratio,
            goal_90pct=None if ratio is None else ratio >= 0.9, failures=self.failures,
            gpu=self.gpu_name)
        return 0 if not self.failures else 1

    gpu_name = None

    def check_inspector(self):
        snap = self.doc(until="var:keep_bf16", timeout=30)
        if snap is None:
            self.fail("the variable inspector never listed keep_bf16")
            return
        kernel = snap["kernel"]
        self.gpu_name = kernel.get("gpu")
        variables = kernel.get("variables") or []
        tensors = [v for v in variables if "Tensor" in str(v.get("type"))]
        log(kind="inspector", gpu=kernel.get("gpu"),
            tensors=[{k: v.get(k) for k in ("name", "dtype", "shape", "device")} for v in tensors])
        want = "cpu" if self.args.cpu else "cuda"
        for name in ("keep", "keep_bf16", "a"):
            var = next((v for v in tensors if v.get("name") == name), None)
            if var is None or not str(var.get("device", "")).startswith(want):
                self.fail(f"the inspector shows {name} as {var}, not a {want} tensor")
        if not self.args.cpu and not kernel.get("gpu"):
            self.fail("state.kernel.gpu is empty on the GPU runtime")

    def check_oom(self):
        outputs = self.run("oom", timeout=max(self.args.cell_timeout, 300))
        errors = self.errors(outputs)
        if not errors:
            self.fail("exhausting GPU memory raised nothing")
        else:
            e = errors[0]
            message = f"{e.get('ename')}: {e.get('evalue')}"
            log(kind="oom_error", error=message[:500])
            words = ("CUDA is not available",) if self.args.cpu else ("out of memory", "OUT_OF_MEMORY")
            if e.get("ename") != "RuntimeError" or not any(w in message for w in words):
                self.fail(f"the OOM cell raised {message[:300]}, not a RuntimeError naming {words}")
        after = self.run("after_oom")
        self.expect_ok("after_oom", after)
        r = next((r for r in self.results if r["step"] == "after_oom"), None)
        if not r or r.get("keep_sum") != 64 * 32:
            self.fail(f"after the OOM the kernel lost its state: {r}")

    def check_interrupt(self):
        self.api.call("POST", f"/api/notebooks/{self.notebook}/execute", {"cell_ids": ["interrupt"]})
        if self.doc(until="running:interrupt", timeout=60) is None:
            self.fail("the interrupt cell never started")
        time.sleep(1.5)
        t0 = time.monotonic()
        self.api.call("POST", f"/api/notebooks/{self.notebook}/interrupt", {})
        outputs = self.finish("interrupt", timeout=60)
        errors = self.errors(outputs)
        log(kind="interrupt", seconds=round(time.monotonic() - t0, 3),
            error=errors[0].get("ename") if errors else None)
        if not errors or errors[0].get("ename") != "KeyboardInterrupt":
            self.fail(f"interrupting a running cell gave {errors[:1]}, not KeyboardInterrupt")

    def check_restart(self):
        self.api.call("POST", f"/api/notebooks/{self.notebook}/restart", {})
        outputs = self.run("after_restart", timeout=self.args.start_timeout)
        self.expect_ok("after_restart", outputs)
        r = next((r for r in self.results if r["step"] == "after_restart"), None)
        want = "cpu" if self.args.cpu else "cuda:0"
        if not r or r["keep_defined"] or r["default_device"] != want:
            self.fail(f"after a restart: {r} (expected a fresh kernel on {want})")
        if not self.args.cpu:
            snap = self.doc(until="gpu", timeout=30)
            if snap is None or snap["kernel"].get("runtime") != "gpu":
                self.fail("after a restart the notebook is no longer on the GPU runtime")

    def check_export(self):
        _, ipynb = self.api.call("GET", f"/api/notebooks/{self.notebook}/ipynb")
        ran = [c["id"] for c in ipynb.get("cells", []) if c.get("execution_count") is not None]
        log(kind="export", cells_with_count=ran)
        missing = [name for name in CELLS if name not in ran]
        if missing:
            self.fail(f"GET .../ipynb shows no execution count for {missing}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--doc-state", required=True, help="the doc_state binary")
    p.add_argument("--cpu", action="store_true", help="dry run: device cpu, expect 409 on the switch")
    p.add_argument("--n", type=int, default=8192, help="matmul size (n×n×n)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--cell-timeout", type=float, default=120)
    p.add_argument("--start-timeout", type=float, default=180)
    args = p.parse_args()
    args.device = "cpu" if args.cpu else "cuda"
    try:
        return Check(args).main()
    except Exception as error:  # a plumbing failure: say which, as JSON like the rest
        log(kind="summary", failures=[f"{type(error).__name__}: {error}"])
        return 2


if __name__ == "__main__":
    sys.exit(main())
