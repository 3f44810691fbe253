"""Every tandem op on every dtype against numpy in float64 (run as one kernel cell by tensor.rs).

Prints a JSON summary as its last line: the seed, how many checks ran, the failures.
"""
import json, os, time
import numpy as np
import tandem

seed = int(os.environ.get("TANDEM_TENSOR_SEED") or time.time_ns() % 2**32)
rng = np.random.default_rng(seed)
TOL = {"float64": 1e-12, "float32": 1e-5, "float16": 1e-2, "bfloat16": 2e-2, "int64": 0, "uint8": 0}
checked, failures = [], []

def t_of(x, dtype):
    # Through float64 so bfloat16 (no numpy dtype) rounds from the exact values.
    return tandem.from_numpy(np.asarray(x, dtype=np.float64)).to(dtype)

def ref(t):
    return t.to("float64").numpy() if t.dtype.is_floating_point else t.numpy().astype(np.float64)

def check(name, dtype, got, want, scale=None):
    got_np = ref(got) if isinstance(got, tandem.Tensor) else np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    entry = f"{name}[{dtype}]"
    checked.append(entry)
    if got_np.shape != want.shape:
        failures.append({"check": entry, "why": f"shape {got_np.shape} != {want.shape}"})
        return
    if isinstance(got, tandem.Tensor) and got.shape != want.shape:
        failures.append({"check": entry, "why": f"tensor shape {got.shape}"})
        return
    s = np.max(np.abs(want if scale is None else scale), initial=0.0)
    err = float(np.max(np.abs(got_np - want), initial=0.0) / max(s, 1e-300))
    if not err <= TOL[dtype]:
        failures.append({"check": entry, "error": err, "bound": TOL[dtype]})

FLOATS = ["float64", "float32", "float16", "bfloat16"]
for dtype in FLOATS:
    a = t_of(rng.uniform(-2, 2, (7, 9)), dtype); A = ref(a)
    b = t_of(rng.uniform(-2, 2, (7, 9)), dtype); B = ref(b)
    p = t_of(rng.uniform(0.5, 3, (7, 9)), dtype); P = ref(p)
    row = t_of(rng.uniform(-2, 2, (9,)), dtype); ROW = ref(row)
    col = t_of(rng.uniform(-2, 2, (7, 1)), dtype); COL = ref(col)
    check("add", dtype, a + b, A + B)
    check("sub", dtype, a - b, A - B)
    check("mul", dtype, a * b, A * B)
    check("div", dtype, a / p, A / P)
    check("add_row_broadcast", dtype, a + row, A + ROW)
    check("mul_col_broadcast", dtype, a * col, A * COL)
    check("outer_broadcast", dtype, col - row, COL - ROW)
    check("scalar_add", dtype, a + 2.5, A + 2.5)
    check("scalar_radd", dtype, 2.5 + a, A + 2.5)
    check("scalar_rsub", dtype, 1.5 - a, 1.5 - A)
    check("scalar_mul_int", dtype, a * 3, A * 3)
    check("scalar_rdiv", dtype, 2 / p, 2 / P)
    check("scalar_div", dtype, a / 4.0, A / 4.0)
    check("neg", dtype, -a, -A)
    k = t_of(rng.uniform(-2, 2, (9, 5)), dtype); K = ref(k)
    check("matmul", dtype, a @ k, A @ K, np.abs(A) @ np.abs(K))
    check("matmul_method", dtype, a.matmul(k), A @ K, np.abs(A) @ np.abs(K))
    check("matvec", dtype, a @ row, A @ ROW, np.abs(A) @ np.abs(ROW))
    check("vecmat", dtype, tandem.matmul(col.reshape(7), a), COL.reshape(7) @ A, np.abs(COL.reshape(7)) @ np.abs(A))
    bt = t_of(rng.uniform(-2, 2, (3, 4, 6)), dtype); BT = ref(bt)
    bk = t_of(rng.uniform(-2, 2, (6, 2)), dtype); BK = ref(bk)
    check("batched_matmul", dtype, bt @ bk, BT @ BK, np.abs(BT) @ np.abs(BK))
    big = t_of(rng.uniform(-1, 1, (64, 128)), dtype); BIG = ref(big)
    big2 = t_of(rng.uniform(-1, 1, (128, 96)), dtype); BIG2 = ref(big2)
    check("matmul_64x128x96", dtype, big @ big2, BIG @ BIG2, np.abs(BIG) @ np.abs(BIG2))
    check("matmul_transposed", dtype, big2.transpose(0, 1) @ big.transpose(0, 1), BIG2.T @ BIG.T, np.abs(BIG2.T) @ np.abs(BIG.T))
    e = t_of(rng.uniform(-3, 3, (7, 9)), dtype); E = ref(e)
    check("exp", dtype, e.exp(), np.exp(E))
    check("log", dtype, p.log(), np.log(P), np.maximum(np.abs(np.log(P)), 1.0))
    check("sqrt", dtype, p.sqrt(), np.sqrt(P))
    check("relu", dtype, a.relu(), np.maximum(A, 0))
    def softmax(x, d):
        z = np.exp(x - x.max(axis=d, keepdims=True))
        return z / z.sum(axis=d, keepdims=True)
    check("softmax_last", dtype, e.softmax(-1), softmax(E, -1))
    check("softmax_0", dtype, e.softmax(0), softmax(E, 0))
    check("softmax_default", dtype, e.softmax(), softmax(E, -1))
    long = t_of(rng.uniform(-2, 2, (3, 5000)), dtype); LONG = ref(long)
    check("sum_all", dtype, a.sum(), A.sum(), np.abs(A).sum())
    check("sum_0", dtype, a.sum(0), A.sum(0), np.abs(A).sum(0))
    check("sum_1_keepdim", dtype, a.sum(dim=1, keepdim=True), A.sum(1, keepdims=True), np.abs(A).sum(1, keepdims=True))
    check("sum_long", dtype, long.sum(-1), LONG.sum(-1), np.abs(LONG).sum(-1))
    check("mean_all", dtype, a.mean(), A.mean(), np.abs(A).mean())
    check("mean_1", dtype, a.mean(1), A.mean(1), np.abs(A).mean(1))
    check("mean_long", dtype, long.mean(1), LONG.mean(1), np.abs(LONG).mean(1))
    check("max_all", dtype, a.max(), A.max())
    check("max_0", dtype, a.max(0), A.max(0))
    check("max_1_keepdim", dtype, a.max(1, keepdim=True), A.max(1, keepdims=True))
    # Rounding can tie values; the index must point at a maximum of the rounded input.
    idx = a.argmax(1)
    check("argmax_1_dtype", "int64", tandem.tensor(int(idx.dtype == tandem.int64)), 1)
    check("argmax_1", dtype, np.take_along_axis(A, ref(idx).astype(np.int64)[:, None], 1)[:, 0], A.max(1))
    check("argmax_all", dtype, A.reshape(-1)[int(a.argmax().item())], A.max())
    check("reshape", dtype, a.reshape(9, 7), A.reshape(9, 7))
    check("reshape_hole", dtype, a.reshape((3, -1)), A.reshape(3, -1))
    check("transpose", dtype, a.transpose(0, 1), A.T)
    check("transpose_neg", dtype, bt.transpose(-1, 0), np.swapaxes(BT, -1, 0))
    check("index_int", dtype, a[0], A[0])
    check("index_neg", dtype, a[-1], A[-1])
    check("index_slice", dtype, a[1:3], A[1:3])
    check("index_col", dtype, a[:, 2], A[:, 2])
    check("index_step", dtype, a[::2, 1::3], A[::2, 1::3])
    check("index_reverse", dtype, a[::-1], A[::-1])
    check("index_ellipsis_none", dtype, bt[..., None, 1], BT[..., None, 1])
    check("index_list", dtype, a[[0, 2, 2]], A[[0, 2, 2]])
    check("index_scalar", dtype, a[1, 2], A[1, 2])
    check("cat_0", dtype, tandem.cat([a, b], 0), np.concatenate([A, B], 0))
    check("cat_1", dtype, tandem.cat([a, b, a], dim=1), np.concatenate([A, B, A], 1))
    check("cat_neg", dtype, tandem.cat([a, col], -1), np.concatenate([A, COL], -1))
    check("to_dtype_f64", dtype, a.to(tandem.float64), A)
    check("tolist", dtype, np.array(a.tolist()), A)
    check("np_asarray", dtype, np.asarray(a).astype(np.float64), A)

for dtype in ["int64", "uint8"]:
    hi = 100 if dtype == "int64" else 10
    x = rng.integers(0, hi, (6, 8)); y = rng.integers(1, hi, (6, 8))
    a = tandem.from_numpy(x.astype(dtype)); b = tandem.from_numpy(y.astype(dtype))
    X, Y = x.astype(np.float64), y.astype(np.float64)
    check("add", dtype, a + b, X + Y)
    check("mul", dtype, a * b, X * Y)
    check("sub", dtype, (a + b) - b, X)
    check("scalar_add", dtype, a + 3, X + 3)
    check("scalar_rmul", dtype, 2 * a, 2 * X)
    check("div_is_float32", "float32", a / b, X / Y)
    check("div_scalar_float", "float32", a * 0.5, X * 0.5)
    check("exp_int_promotes", "float32", tandem.from_numpy((x % 5).astype(dtype)).exp(), np.exp(X % 5))
    check("sum_all", "int64", a.sum(), X.sum())
    check("sum_0", "int64", a.sum(0), X.sum(0))
    check("max_1", dtype, a.max(1), X.max(1))
    check("argmax_is_max", dtype, X.reshape(-1)[int(a.argmax().item())], X.max())
    check("relu", dtype, a.relu(), X)
    check("reshape", dtype, a.reshape(4, 12), X.reshape(4, 12))
    check("transpose", dtype, a.transpose(1, 0), X.T)
    check("index", dtype, a[1:4, ::3], X[1:4, ::3])
    check("cat", dtype, tandem.cat([a, b], 1), np.concatenate([X, Y], 1))
    if dtype == "int64":
        k = tandem.from_numpy(rng.integers(-50, 50, (8, 3)))
        check("matmul", dtype, a @ k, X @ k.numpy().astype(np.float64))

# Round trips and creation.
x32 = rng.standard_normal((5, 4)).astype(np.float32)
check("numpy_roundtrip", "float32", tandem.from_numpy(x32).numpy(), x32)
x16 = x32.astype(np.float16)
check("numpy_roundtrip", "float16", tandem.from_numpy(x16).numpy().astype(np.float64), x16.astype(np.float64))
check("numpy_roundtrip_bf16_to_f32", "bfloat16", tandem.from_numpy(x32).to("bfloat16").numpy(), x32)
check("numpy_fortran_order", "float64", tandem.from_numpy(np.asfortranarray(x32.astype(np.float64))), x32)
check("numpy_strided", "float32", tandem.from_numpy(x32[::2, ::-1]), x32[::2, ::-1])
check("numpy_int32_to_int64", "int64", tandem.from_numpy(np.arange(6, dtype=np.int32)), np.arange(6))
check("numpy_bool_to_int64", "int64", tandem.from_numpy(np.array([True, False])), [1, 0])
check("tensor_nested_float", "float32", tandem.tensor([[1.5, 2], [3, 4]]), [[1.5, 2], [3, 4]])
check("tensor_nested_int", "int64", tandem.tensor([[1, 2], [3, 4]]), [[1, 2], [3, 4]])
check("tensor_dtype_kw", "float16", tandem.tensor([1, 2, 3], dtype="float16"), [1, 2, 3])
check("tensor_from_ndarray", "float64", tandem.tensor(x32.astype(np.float64)), x32)
check("Tensor_ctor", "float32", tandem.Tensor([1.0, 2.0]), [1.0, 2.0])
check("zeros", "float32", tandem.zeros(2, 3), np.zeros((2, 3)))
check("ones_tuple", "float64", tandem.ones((2, 3), dtype=tandem.float64), np.ones((2, 3)))
check("full", "float32", tandem.full((2, 2), 7.5), np.full((2, 2), 7.5))
check("full_int", "int64", tandem.full(3, 7), np.full(3, 7))
check("arange", "int64", tandem.arange(5), np.arange(5))
check("arange_step", "float32", tandem.arange(0, 1, 0.25), np.arange(0, 1, 0.25))
check("arange_neg_step", "int64", tandem.arange(10, 0, -3), np.arange(10, 0, -3))
for dtype in FLOATS:
    r = tandem.rand(2000, dtype=dtype)
    check("rand_range", "int64", tandem.tensor(int(0 <= ref(r).min() and ref(r).max() <= 1)), 1)
    n = ref(tandem.randn(20000, dtype=dtype))
    check("randn_moments", "int64", tandem.tensor(int(abs(n.mean()) < 0.05 and abs(n.std() - 1) < 0.05)), 1)
check("dtype_names", "int64", tandem.tensor([int(tandem.float32 == "float32"), int(tandem.zeros(1).dtype == tandem.float32), int(str(tandem.bfloat16) == "bfloat16")]), [1, 1, 1])

print(json.dumps({"seed": seed, "checked": len(checked), "failures": failures}))
