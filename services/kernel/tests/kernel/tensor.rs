//! The `tandem` tensor module inside real kernels: numerical agreement with numpy for every
//! op and dtype, error paths, reprs, the variable inspector, the GIL, the default device.
//!
//! The numerical check draws fresh inputs each run from a printed seed; a failure names the
//! seed, op and dtype, so `TANDEM_TENSOR_SEED=<seed>` replays it.

use serde_json::Value;
use tandem_runtime::kernel::{KernelEvent, Variable};

use crate::support::{Cell, start, start_with};

/// The last line of a cell's stdout, parsed as JSON (the cells below end with a summary).
fn summary(cell: &Cell) -> Value {
    cell.assert_ok();
    let stdout = cell.stdout();
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("no JSON summary ({e}): {stdout}"))
}

/// Compares every op on every dtype with numpy in float64 on the same (dtype-rounded)
/// inputs. The error is max |got - want| over a scale: max |want| for elementwise ops, the
/// same op on |inputs| for sums and products (their natural condition), so the bounds are
/// about the dtype's precision, not about cancellation in the data.
const NUMERICS: &str = include_str!("tensor/numerics.py");

#[tokio::test]
async fn every_op_and_dtype_agrees_with_numpy() {
    let kernel = start_with(|options| {
        if let Ok(seed) = std::env::var("TANDEM_TENSOR_SEED") {
            options.env.push(("TANDEM_TENSOR_SEED".into(), seed));
        }
    })
    .await;
    let cell = kernel.run(NUMERICS).await;
    let summary = summary(&cell);
    let failures = summary["failures"].as_array().unwrap();
    assert!(
        failures.is_empty(),
        "seed {} (replay with TANDEM_TENSOR_SEED={}): {} of {} checks failed: {failures:#?}",
        summary["seed"],
        summary["seed"],
        failures.len(),
        summary["checked"]
    );
    assert!(summary["checked"].as_u64().unwrap() >= 300, "{summary}");
}

/// Each case: (name, code, expected exception, words its message must contain).
const ERROR_CASES: &[(&str, &str, &str, &str)] = &[
    (
        "broadcast",
        "tandem.ones(2, 3) + tandem.ones(4)",
        "ValueError",
        "(2, 3) and (4,) cannot be broadcast",
    ),
    (
        "matmul_shapes",
        "tandem.ones(2, 3) @ tandem.ones(4, 5)",
        "ValueError",
        "not aligned",
    ),
    (
        "dtype_mismatch",
        "tandem.ones(2) + tandem.ones(2, dtype=tandem.float64)",
        "TypeError",
        "dtype mismatch for +: float32 and float64",
    ),
    (
        "matmul_dtypes",
        "tandem.ones(2, 2) @ tandem.ones(2, 2, dtype='float16')",
        "TypeError",
        "dtype mismatch for @",
    ),
    (
        "unknown_device",
        "tandem.ones(2).to('tpu')",
        "RuntimeError",
        "unknown device",
    ),
    (
        "index_range",
        "tandem.ones(2, 3)[5]",
        "IndexError",
        "index 5 is out of bounds for dimension 0 with size 2",
    ),
    (
        "index_col_range",
        "tandem.ones(2, 3)[:, -4]",
        "IndexError",
        "dimension 1 with size 3",
    ),
    (
        "too_many",
        "tandem.ones(2)[0, 0]",
        "IndexError",
        "too many indices",
    ),
    ("index_kind", "tandem.ones(2)['a']", "IndexError", "not str"),
    (
        "dim_range",
        "tandem.ones(2, 3).sum(dim=2)",
        "IndexError",
        "dimension 2 is out of range",
    ),
    (
        "softmax_dim",
        "tandem.ones(2, 3).softmax(-3)",
        "IndexError",
        "out of range",
    ),
    (
        "reshape",
        "tandem.ones(2, 3).reshape(4, 2)",
        "ValueError",
        "cannot reshape a tensor of shape (2, 3)",
    ),
    (
        "cat_shapes",
        "tandem.cat([tandem.ones(2, 3), tandem.ones(2, 4)], 0)",
        "ValueError",
        "all dims but 0 must match",
    ),
    (
        "cat_dtypes",
        "tandem.cat([tandem.ones(2), tandem.ones(2, dtype='int64')])",
        "TypeError",
        "cat: tensor 1 is int64",
    ),
    (
        "ragged",
        "tandem.tensor([[1, 2], [3]])",
        "ValueError",
        "rectangular",
    ),
    (
        "not_numbers",
        "tandem.tensor(['a'])",
        "TypeError",
        "must be numbers",
    ),
    (
        "unknown_dtype",
        "tandem.zeros(2, dtype='complex64')",
        "TypeError",
        "unknown dtype",
    ),
    (
        "random_int",
        "tandem.randn(2, dtype='int64')",
        "TypeError",
        "floating dtype",
    ),
    ("item", "tandem.ones(2).item()", "ValueError", "one element"),
    ("bool", "bool(tandem.ones(2))", "ValueError", "ambiguous"),
    (
        "operand",
        "tandem.ones(2) + 'a'",
        "TypeError",
        "unsupported operand",
    ),
    ("numpy_lhs", "np.ones(2) + tandem.ones(2)", "TypeError", ""),
    (
        "negative_shape",
        "tandem.zeros(-1)",
        "ValueError",
        "negative dimension",
    ),
    (
        "arange_step",
        "tandem.arange(0, 5, 0)",
        "ValueError",
        "non-zero step",
    ),
    (
        "from_numpy_kind",
        "tandem.from_numpy([1, 2])",
        "TypeError",
        "numpy.ndarray",
    ),
    (
        "numpy_complex",
        "tandem.from_numpy(np.ones(2, dtype=np.complex64))",
        "TypeError",
        "no tensor equivalent",
    ),
    (
        "matmul_scalar",
        "tandem.tensor(2.0) @ tandem.ones(2)",
        "ValueError",
        "at least one dimension",
    ),
];

#[tokio::test]
async fn tensor_errors_are_python_exceptions_and_the_kernel_lives_on() {
    let kernel = start().await;
    let cases: Vec<(&str, &str)> = ERROR_CASES.iter().map(|c| (c.0, c.1)).collect();
    let mut code = String::from("import json\nimport numpy as np\nimport tandem\nraised = {}\n");
    code.push_str(&format!(
        "cases = {}\n",
        serde_json::to_string(&cases).unwrap()
    ));
    code.push_str(
        "for name, expr in cases:\n\
         \x20   try:\n\
         \x20       eval(expr)\n\
         \x20       raised[name] = ['nothing', '']\n\
         \x20   except Exception as error:\n\
         \x20       raised[name] = [type(error).__name__, str(error)]\n\
         print(json.dumps(raised))\n",
    );
    let raised = summary(&kernel.run(&code).await);
    for (name, _, kind, words) in ERROR_CASES {
        let [got_kind, message] = [&raised[name][0], &raised[name][1]].map(|v| v.as_str().unwrap());
        assert_eq!(got_kind, *kind, "{name}: {message}");
        assert!(
            message.contains(words),
            "{name}: {message:?} lacks {words:?}"
        );
    }

    // Uncaught, it is an ordinary error output; the next cell runs in the same kernel.
    let failed = kernel.run("x = tandem.ones(3)\nx @ tandem.ones(4)").await;
    let (ename, evalue, _) = failed.error();
    assert_eq!(
        (ename, evalue.contains("not aligned")),
        ("ValueError", true),
        "{evalue}"
    );
    let after = kernel.run("print((x * 2).sum().item())").await;
    assert_eq!(after.assert_ok().stdout(), "6.0\n");
}

#[cfg(not(feature = "cuda"))]
#[tokio::test]
async fn cpu_builds_explain_that_cuda_is_missing_even_in_a_gpu_runtime() {
    let kernel = start_with(|options| {
        options.env.push(("TANDEM_RUNTIME".into(), "gpu".into()));
    })
    .await;
    let cell = kernel
        .run(
            "import json, tandem\n\
             try:\n    tandem.ones(2).to('cuda')\n    moved = 'moved'\n\
             except RuntimeError as error:\n    moved = str(error)\n\
             print(json.dumps([tandem.default_device(), tandem.cuda_available(), \
             tandem.ones(1).device, moved]))",
        )
        .await;
    let [device, available, placed, moved] = summary(&cell)
        .as_array()
        .unwrap()
        .clone()
        .try_into()
        .unwrap();
    assert_eq!(
        (device, available, placed),
        ("cpu".into(), false.into(), "cpu".into())
    );
    assert!(
        moved
            .as_str()
            .unwrap()
            .contains("built without CUDA support"),
        "{moved}"
    );
}

#[tokio::test]
async fn tensors_show_as_text_and_as_an_html_table() {
    let kernel = start().await;
    let small = kernel
        .run("import tandem\ntandem.tensor([[1.0, 2.5], [-3.0, 4.0]])")
        .await;
    small.assert_ok();
    assert_eq!(
        small.result_text(),
        "tensor([[ 1.0000,  2.5000],\n        [-3.0000,  4.0000]], dtype=float32, device=cpu)"
    );
    let html = small.result()["text/html"].as_str().unwrap();
    assert!(html.contains("shape (2, 2) · float32 · cpu"), "{html}");
    assert!(
        html.contains("<td>-3.0000</td>") && html.contains("<table"),
        "{html}"
    );

    let ints = kernel.run("tandem.arange(3, dtype='uint8')").await;
    assert_eq!(
        ints.result_text(),
        "tensor([0, 1, 2], dtype=uint8, device=cpu)"
    );
    let big = kernel
        .run("tandem.ones(1000, 1000, dtype='bfloat16')")
        .await;
    let text = big.result_text();
    assert!(
        text.contains("...") && text.contains("shape=(1000, 1000)"),
        "{text}"
    );
    assert!(text.lines().count() < 10, "{text}");
    let cube = kernel.run("tandem.zeros(2, 2, 2)").await;
    assert!(
        cube.result()["text/html"]
            .as_str()
            .unwrap()
            .contains("<pre>")
    );
    let dtype = kernel.run("tandem.float16, tandem.ones(1).dtype").await;
    assert_eq!(dtype.result_text(), "(tandem.float16, tandem.float32)");
}

fn variables(cell: &Cell) -> Option<Vec<Variable>> {
    cell.events.iter().find_map(|event| match event {
        KernelEvent::Variables(variables) => Some(variables.clone()),
        _ => None,
    })
}

#[tokio::test]
async fn the_inspector_lists_tensors_arrays_frames_and_scalars_after_each_cell() {
    let kernel = start().await;
    let quiet = kernel.run("import numpy as np\ndef helper(): pass").await;
    assert_eq!(variables(quiet.assert_ok()), None, "nothing to list yet");

    let cell = kernel
        .run(
            "import pandas as pd, tandem\n\
             t = tandem.zeros(2, 3)\n\
             h = tandem.ones(4, dtype='bfloat16')\n\
             a = np.ones((4, 5), dtype=np.int32)\n\
             df = pd.DataFrame({'x': [1, 2, 3], 'y': [0.5, 1.5, 2.5]})\n\
             n, f, s, flag, v = 42, 1.5, 'hi', True, np.float32(2.5)\n\
             _private = tandem.ones(1)\n\
             class K: pass",
        )
        .await;
    let listed = variables(cell.assert_ok()).expect("a variables event");
    let names: Vec<&str> = listed.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["a", "df", "f", "flag", "h", "n", "s", "t", "v"]);
    let json = serde_json::to_value(&listed).unwrap();
    assert_eq!(
        json[7],
        serde_json::json!({"name": "t", "type": "tandem.Tensor", "shape": [2, 3],
            "dtype": "float32", "device": "cpu", "bytes": 24, "value": null})
    );
    assert_eq!(
        (json[4]["dtype"].as_str(), json[4]["bytes"].as_u64()),
        (Some("bfloat16"), Some(8))
    );
    assert_eq!(json[0]["type"], "numpy.ndarray");
    assert_eq!(
        (
            json[0]["shape"].clone(),
            json[0]["dtype"].clone(),
            json[0]["bytes"].clone()
        ),
        ([4, 5].into(), "int32".into(), 80.into())
    );
    assert_eq!(
        (json[1]["type"].as_str(), json[1]["shape"].clone()),
        (Some("pandas.DataFrame"), [3, 2].into())
    );
    assert!(json[1]["bytes"].as_u64().unwrap() >= 48, "{}", json[1]);
    assert_eq!(
        (json[5]["type"].as_str(), json[5]["value"].as_str()),
        (Some("int"), Some("42"))
    );
    assert_eq!(
        (json[3]["type"].as_str(), json[6]["value"].as_str()),
        (Some("bool"), Some("'hi'"))
    );
    assert_eq!(
        (json[8]["type"].as_str(), json[8]["dtype"].as_str()),
        (Some("numpy.float32"), Some("float32"))
    );

    let unchanged = kernel.run("t.sum()").await;
    assert_eq!(
        variables(unchanged.assert_ok()),
        None,
        "same variables: no event"
    );
    let deleted = kernel.run("del t, a").await;
    let names: Vec<String> = variables(&deleted)
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, ["df", "f", "flag", "h", "n", "s", "v"]);
}

#[tokio::test]
async fn heavy_ops_release_the_gil_and_interrupts_still_land() {
    let kernel = start().await;
    let cell = kernel
        .run(
            "import json, threading, time, tandem\n\
             a = tandem.randn(384, 384)\n\
             ticks, done = [], threading.Event()\n\
             def tick():\n    while not done.is_set():\n        ticks.append(time.perf_counter())\n        time.sleep(0.001)\n\
             thread = threading.Thread(target=tick)\nthread.start()\ntime.sleep(0.05)\n\
             start = time.perf_counter()\nb = a\n\
             for _ in range(10):\n    b = (b @ a) / 384\n\
             end = time.perf_counter()\ndone.set()\nthread.join()\n\
             print(json.dumps({'elapsed': end - start, 'ticks': sum(start < x < end for x in ticks)}))",
        )
        .await;
    let summary = summary(&cell);
    let elapsed = summary["elapsed"].as_f64().unwrap();
    // Python switches threads every 5 ms: a matmul holding the GIL would allow ~one tick
    // per call; without it the ticker runs about once a millisecond.
    if elapsed > 0.1 {
        assert!(
            summary["ticks"].as_f64().unwrap() > elapsed * 200.0,
            "{summary}"
        );
    }

    let execution = kernel
        .kernel
        .execute("while True:\n    a = (a @ a) / 384")
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    kernel.kernel.interrupt().unwrap();
    let events = tokio::time::timeout(std::time::Duration::from_secs(30), execution.collect())
        .await
        .expect("the interrupted cell ends");
    let interrupted = Cell { events };
    assert_eq!(interrupted.error().0, "KeyboardInterrupt");
    assert_eq!(kernel.run("print(a.shape)").await.stdout(), "(384, 384)\n");
}

/// The CPU benchmark of issue 4, side by side with numpy in the same kernel: `cargo test -p
/// tandem-kernel --release --test kernel -- --ignored bench_tensor --nocapture`.
const BENCH: &str = include_str!("tensor/bench.py");

#[tokio::test]
#[ignore = "a measurement, not a test; run it by name"]
async fn bench_tensor_against_numpy() {
    let kernel = start_with(|options| {
        // The kernel's environment is clean; pass the machine's BLAS core type on, if any,
        // so numpy runs as it would in a notebook on this machine.
        if let Ok(coretype) = std::env::var("OPENBLAS_CORETYPE") {
            options.env.push(("OPENBLAS_CORETYPE".into(), coretype));
        }
    })
    .await;
    let result = summary(&kernel.run(BENCH).await);
    println!(
        "numpy {} with {}, {} CPUs, OPENBLAS_CORETYPE={}",
        result["numpy"], result["blas"], result["cpus"], result["coretype"]
    );
    println!("| operation | numpy | tandem | tandem / numpy |");
    println!("|---|---|---|---|");
    for row in result["rows"].as_array().unwrap() {
        let (numpy, tandem) = (row[1].as_f64().unwrap(), row[2].as_f64().unwrap());
        let rate = |seconds: f64| match row[3].as_f64() {
            Some(flops) => format!(
                "{:.2} ms ({:.0} GFLOP/s)",
                seconds * 1e3,
                flops / seconds / 1e9
            ),
            None => format!("{:.2} ms", seconds * 1e3),
        };
        println!(
            "| {} | {} | {} | {:.2}× |",
            row[0].as_str().unwrap(),
            rate(numpy),
            rate(tandem),
            tandem / numpy
        );
    }
}
