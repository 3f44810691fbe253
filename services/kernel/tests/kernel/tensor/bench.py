"""tandem against numpy on the CPU, in one kernel (run as a cell by tensor.rs's ignored bench).

Prints a JSON summary as its last line: rows of (operation, numpy s, tandem s, flops).
"""
import json, os, time
import numpy as np
import tandem

def best(f, repeat):
    f()
    times = []
    for _ in range(repeat):
        start = time.perf_counter(); f(); times.append(time.perf_counter() - start)
    return min(times)

rng = np.random.default_rng(0)
rows = []
for n in (1024, 2048):
    x = rng.standard_normal((n, n), dtype=np.float32); y = rng.standard_normal((n, n), dtype=np.float32)
    tx, ty = tandem.from_numpy(x), tandem.from_numpy(y)
    rows.append((f"matmul f32 {n}x{n}", best(lambda: x @ y, 5), best(lambda: tx @ ty, 5), 2 * n**3))
m = 4 * 1024 * 1024
a, b, c = (rng.uniform(0.1, 1, m).astype(np.float32) for _ in range(3))
ta, tb, tc = (tandem.from_numpy(v) for v in (a, b, c))
rows.append(("((a*b)+c).exp().sqrt() 4M f32", best(lambda: np.sqrt(np.exp(a * b + c)), 10), best(lambda: ((ta * tb) + tc).exp().sqrt(), 10), None))
rows.append(("a*b+c 4M f32", best(lambda: a * b + c, 10), best(lambda: ta * tb + tc, 10), None))
rows.append(("sum 4M f32", best(lambda: a.sum(), 10), best(lambda: ta.sum(), 10), None))
s = a.reshape(4096, 1024); ts = ta.reshape(4096, 1024)
def np_softmax():
    z = np.exp(s - s.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)
rows.append(("softmax(-1) 4096x1024 f32", best(np_softmax, 10), best(lambda: ts.softmax(-1), 10), None))
config = np.show_config(mode="dicts")
blas = config["Build Dependencies"]["blas"]
print(json.dumps({
    "rows": rows,
    "blas": f"{blas.get('name')} {blas.get('version', '')}",
    "cpus": os.cpu_count(),
    "coretype": os.environ.get("OPENBLAS_CORETYPE"),
    "numpy": np.__version__,
}))
