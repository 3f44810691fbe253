//! `gpu_matmul`: candle's CUDA matmul throughput, the GPU half of the tensor benchmark (issue 4).
//!
//! On `cuda:0` it prints one JSON line per result:
//! - `{"kind":"device",…}`: the card's name, compute capability and memory;
//! - `{"kind":"check",…}`: a correctness spot check of an `n×n` matmul (default 256) on the GPU
//!   against candle's CPU f32 matmul of the same inputs, for f32 and bf16, with a tolerance;
//! - `{"kind":"matmul",…}`: an `n×n×n` matmul (default 8192) for bf16 and f32: `--warmup`
//!   products, then `--rounds` rounds of `--iters` products, each round timed from a synchronized
//!   device to a synchronized device. `tflops` = 2·n³ / (round time / iters), best round;
//!   `tflops_rounds` lists every round.
//!
//! `bench/python/torch_matmul.py` measures the same with PyTorch on the same card, and
//! `scripts/gpu-check` puts both side by side. Built only with `--features cuda`
//! (`scripts/gpu-build`), so CPU builds and CI never need CUDA.
//!
//! Exit status: 0 when every check passed, 1 when a check failed, 2 on an error (no device,
//! a library missing, …), with the error on stderr.

use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use clap::Parser;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "candle CUDA matmul benchmark (JSON lines on stdout)")]
struct Args {
    /// CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    device: usize,
    /// Size of the timed square matmul (n×n by n×n).
    #[arg(long, default_value_t = 8192)]
    n: usize,
    /// Untimed products before timing.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed products per round.
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Timed rounds; the best one is reported as `tflops`.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Size of the correctness spot check against the CPU.
    #[arg(long, default_value_t = 256)]
    check_n: usize,
    /// Dtypes to time, comma-separated (bf16, f16, f32).
    #[arg(long, default_value = "bf16,f32")]
    dtypes: String,
}

fn parse_dtype(s: &str) -> Result<DType> {
    Ok(match s.trim() {
        "bf16" => DType::BF16,
        "f16" => DType::F16,
        "f32" => DType::F32,
        other => anyhow::bail!("unsupported dtype {other:?} (bf16, f16 or f32)"),
    })
}

fn dtype_name(dtype: DType) -> &'static str {
    dtype.as_str()
}

/// Largest absolute difference between `got` and `want`, and the largest `|want|`.
fn max_abs_diff(got: &[f32], want: &[f32]) -> (f32, f32) {
    let mut err = 0f32;
    let mut scale = 0f32;
    for (g, w) in got.iter().zip(want) {
        err = err.max((g - w).abs());
        scale = scale.max(w.abs());
    }
    (err, scale)
}

/// Spot check: the GPU's `dtype` matmul of random inputs against the CPU's f32 matmul of the
/// same (dtype-rounded) inputs. Returns whether it is within the dtype's tolerance.
fn check(gpu: &Device, dtype: DType, n: usize) -> Result<bool> {
    let cpu = Device::Cpu;
    // Inputs rounded to `dtype` first, so the reference sees exactly what the GPU sees.
    let a = Tensor::randn(0f32, 1f32, (n, n), &cpu)?.to_dtype(dtype)?;
    let b = Tensor::randn(0f32, 1f32, (n, n), &cpu)?.to_dtype(dtype)?;
    let want = a
        .to_dtype(DType::F32)?
        .matmul(&b.to_dtype(DType::F32)?)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let got = a
        .to_device(gpu)?
        .matmul(&b.to_device(gpu)?)?
        .to_dtype(DType::F32)?
        .to_device(&cpu)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let (err, scale) = max_abs_diff(&got, &want);
    let rel = if scale > 0.0 { err / scale } else { err };
    // f32: cuBLAS's plain FP32 path (candle does not allow TF32 by default) agrees to ~1e-6;
    // TF32 would show as ~1e-3. bf16/f16: the output is rounded to 8 (11) mantissa bits.
    let tol = match dtype {
        DType::F32 => 1e-4,
        DType::F16 => 5e-3,
        _ => 2e-2,
    };
    let ok = rel.is_finite() && rel <= tol;
    println!(
        "{}",
        json!({
            "kind": "check", "impl": "candle", "op": "matmul", "dtype": dtype_name(dtype),
            "n": n, "max_abs_err": err, "max_abs_ref": scale, "rel_err": rel, "tol": tol, "ok": ok,
        })
    );
    Ok(ok)
}

/// Times `rounds` rounds of `iters` n×n×n products after `warmup` untimed ones.
fn bench(gpu: &Device, dtype: DType, args: &Args) -> Result<()> {
    let n = args.n;
    let a = Tensor::randn(0f32, 1f32, (n, n), gpu)?.to_dtype(dtype)?;
    let b = Tensor::randn(0f32, 1f32, (n, n), gpu)?.to_dtype(dtype)?;
    for _ in 0..args.warmup {
        drop(a.matmul(&b)?);
    }
    gpu.synchronize()?;
    let flops = 2.0 * (n as f64).powi(3);
    let mut rounds = Vec::with_capacity(args.rounds);
    let mut ms_rounds = Vec::with_capacity(args.rounds);
    let mut last = None;
    for _ in 0..args.rounds.max(1) {
        gpu.synchronize()?;
        let start = Instant::now();
        for _ in 0..args.iters.max(1) {
            last = Some(a.matmul(&b)?);
        }
        gpu.synchronize()?;
        let per_iter = start.elapsed().as_secs_f64() / args.iters.max(1) as f64;
        ms_rounds.push(per_iter * 1e3);
        rounds.push(flops / per_iter / 1e12);
    }
    // Read one element back: the products really ran and produced finite numbers.
    let sample = match last {
        Some(c) => c
            .narrow(0, 0, 1)?
            .narrow(1, 0, 1)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?,
        None => Vec::new(),
    };
    let best = rounds.iter().copied().fold(0f64, f64::max);
    let best_ms = ms_rounds.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "{}",
        json!({
            "kind": "matmul", "impl": "candle", "dtype": dtype_name(dtype), "n": n,
            "warmup": args.warmup, "iters": args.iters, "rounds": args.rounds,
            "ms": best_ms, "tflops": best, "ms_rounds": ms_rounds, "tflops_rounds": rounds,
            "sample_c00": sample.first().copied(),
            "tf32": candle_core::cuda_backend::gemm_reduced_precision_f32(),
            "bf16_reduced_precision": candle_core::cuda_backend::gemm_reduced_precision_bf16(),
        })
    );
    Ok(())
}

fn device_info(gpu: &Device, ordinal: usize) -> Result<()> {
    let ctx = gpu.as_cuda_device()?.cuda_stream().context().clone();
    let name = ctx.name().context("reading the device name")?;
    let (major, minor) = ctx
        .compute_capability()
        .context("reading the compute capability")?;
    let mem = ctx.total_mem().context("reading the device memory")?;
    println!(
        "{}",
        json!({
            "kind": "device", "impl": "candle", "device": format!("cuda:{ordinal}"), "name": name,
            "compute_capability": format!("{major}.{minor}"), "memory_bytes": mem,
            // The CUDA API version cudarc's bindings were built for (scripts/gpu-build sets it).
            "cudarc_cuda_version": option_env!("CUDARC_CUDA_VERSION"),
        })
    );
    Ok(())
}

fn run(args: &Args) -> Result<bool> {
    let dtypes = args
        .dtypes
        .split(',')
        .map(parse_dtype)
        .collect::<Result<Vec<_>>>()?;
    let gpu = Device::new_cuda(args.device)
        .with_context(|| format!("opening CUDA device {} with candle", args.device))?;
    device_info(&gpu, args.device)?;
    let mut ok = true;
    for dtype in [DType::F32, DType::BF16] {
        ok &= check(&gpu, dtype, args.check_n)
            .with_context(|| format!("{} correctness check", dtype_name(dtype)))?;
    }
    for dtype in dtypes {
        bench(&gpu, dtype, args).with_context(|| format!("{} benchmark", dtype_name(dtype)))?;
    }
    Ok(ok)
}

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("gpu_matmul: a correctness check failed (see the \"check\" lines)");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("gpu_matmul: error: {e:#}");
            std::process::exit(2);
        }
    }
}
