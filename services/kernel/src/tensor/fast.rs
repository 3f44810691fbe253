//! Fast paths for elementwise ops on contiguous float32/float64 CPU tensors.
//!
//! candle's CPU unary ops call scalar libm functions on one thread; here the raw slice is
//! split into chunks across rayon's threads, each chunk a tight loop the compiler can
//! vectorize, written into a fresh `Vec` that becomes the result. float32 `exp` uses a
//! branch-free Cephes-style polynomial (about 1 ulp) so that it vectorizes too; everything
//! else is the same IEEE operation candle would do. Each function returns `None` when its
//! operands do not qualify, and the caller keeps candle's path.

use std::ops::{Add, Div, Sub};

use candle_core::{CpuStorage, Device, Storage, Tensor};
use rayon::prelude::*;

use super::ops::{Arith, Unary};
use crate::tensor::error::Result;

/// Elements per rayon task.
const CHUNK: usize = 1 << 14;
/// Below this many elements one thread is faster than waking others.
const PARALLEL_MIN: usize = 1 << 15;

/// A contiguous float CPU tensor's elements.
enum Slice<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
}

/// Runs `f` on `t`'s elements when it is a contiguous float32/float64 CPU tensor.
fn with_slice<R>(t: &Tensor, f: impl FnOnce(Slice<'_>) -> R) -> Option<R> {
    if !t.device().is_cpu() {
        return None;
    }
    let (storage, layout) = t.storage_and_layout();
    let (start, end) = layout.contiguous_offsets()?;
    match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => Some(f(Slice::F32(v.get(start..end)?))),
        Storage::Cpu(CpuStorage::F64(v)) => Some(f(Slice::F64(v.get(start..end)?))),
        _ => None,
    }
}

#[inline(always)]
fn map_chunk<T: Copy>(out: &mut [T], src: &[T], f: &impl Fn(T) -> T) {
    for (o, &x) in out.iter_mut().zip(src) {
        *o = f(x);
    }
}

#[inline(always)]
fn zip_chunk<T: Copy>(out: &mut [T], a: &[T], b: &[T], f: &impl Fn(T, T) -> T) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = f(x, y);
    }
}

/// `f` over every element, in parallel chunks.
fn map<T, F>(src: &[T], f: F) -> Vec<T>
where
    T: Copy + Default + Send + Sync,
    F: Fn(T) -> T + Sync,
{
    let mut out = vec![T::default(); src.len()];
    if src.len() < PARALLEL_MIN {
        map_chunk(&mut out, src, &f);
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(o, s)| map_chunk(o, s, &f));
    }
    out
}

/// `f` over pairs of elements of equal-length slices, in parallel chunks.
fn zip<T, F>(a: &[T], b: &[T], f: F) -> Vec<T>
where
    T: Copy + Default + Send + Sync,
    F: Fn(T, T) -> T + Sync,
{
    let mut out = vec![T::default(); a.len()];
    if a.len() < PARALLEL_MIN {
        zip_chunk(&mut out, a, b, &f);
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK))
            .zip(b.par_chunks(CHUNK))
            .for_each(|((o, x), y)| zip_chunk(o, x, y, &f));
    }
    out
}

/// `a op b` elementwise, for either float width.
fn arith<T>(op: Arith, a: &[T], b: &[T]) -> Vec<T>
where
    T: Copy
        + Default
        + Send
        + Sync
        + std::ops::Add<Output = T>
        + std::ops::Sub<Output = T>
        + std::ops::Mul<Output = T>
        + std::ops::Div<Output = T>,
{
    match op {
        Arith::Add => zip(a, b, |x, y| x + y),
        Arith::Sub => zip(a, b, |x, y| x - y),
        Arith::Mul => zip(a, b, |x, y| x * y),
        Arith::Div => zip(a, b, |x, y| x / y),
    }
}

/// `e^x` for float32 without libm, so that loops of it vectorize: Cephes' `expf`
/// reduction and polynomial, with 2^n applied in two halves so that results that
/// overflow give infinity and those that underflow give subnormals or zero. NaN stays NaN.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    // Beyond these, e^x is infinite or rounds to zero in float32.
    let x = x.clamp(-104.0, 89.0);
    // n = round(x / ln 2) by the 1.5 * 2^23 trick: the low mantissa bits of `t` hold n.
    const MAGIC: f32 = 12_582_912.0;
    // Plain multiply-adds: `mul_add` is a libm call without a target's FMA feature.
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * 0.693_359_4;
    let r = r + n * 2.121_944_4e-4;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // n + 150 in [0, 278], split into two halves each a normal power of two.
    let m = t.to_bits().wrapping_sub(0x4B40_0000).wrapping_add(150) & 0x1FF;
    let m1 = m >> 1;
    let s1 = f32::from_bits((m1 + 52) << 23);
    let s2 = f32::from_bits((m - m1 + 52) << 23);
    y * s1 * s2
}

/// A float-only function on a contiguous float CPU tensor.
pub fn unary(op: Unary, t: &Tensor) -> Option<Result<Tensor>> {
    with_slice(t, |slice| match slice {
        Slice::F32(v) => build(
            match op {
                Unary::Exp => map(v, exp_f32),
                Unary::Log => map(v, f32::ln),
                Unary::Sqrt => map(v, f32::sqrt),
            },
            t,
        ),
        Slice::F64(v) => build(
            match op {
                Unary::Exp => map(v, f64::exp),
                Unary::Log => map(v, f64::ln),
                Unary::Sqrt => map(v, f64::sqrt),
            },
            t,
        ),
    })
}

/// `max(t, 0)` on a contiguous float CPU tensor.
pub fn relu(t: &Tensor) -> Option<Result<Tensor>> {
    with_slice(t, |slice| match slice {
        Slice::F32(v) => build(map(v, |x| x.max(0.0)), t),
        Slice::F64(v) => build(map(v, |x| x.max(0.0)), t),
    })
}

/// `lhs op rhs` for two contiguous float CPU tensors of one dtype and identical shapes.
pub fn binary(op: Arith, lhs: &Tensor, rhs: &Tensor) -> Option<Result<Tensor>> {
    if lhs.dims() != rhs.dims() {
        return None;
    }
    with_slice(lhs, |a| {
        with_slice(rhs, |b| match (a, b) {
            (Slice::F32(a), Slice::F32(b)) => Some(build(arith(op, a, b), lhs)),
            (Slice::F64(a), Slice::F64(b)) => Some(build(arith(op, a, b), lhs)),
            _ => None,
        })
        .flatten()
    })
    .flatten()
}

/// Softmax along the last dimension of a contiguous float CPU tensor, rows in parallel.
pub fn softmax_last(t: &Tensor) -> Option<Result<Tensor>> {
    let cols = *t.dims().last()?;
    if cols == 0 {
        return None;
    }
    with_slice(t, |slice| match slice {
        Slice::F32(v) => build(softmax_rows(v, cols, exp_f32), t),
        Slice::F64(v) => build(softmax_rows(v, cols, f64::exp), t),
    })
}

/// Partial maxima and sums kept in this many lanes, so that those loops vectorize.
const LANES: usize = 8;

fn softmax_rows<T, F>(src: &[T], cols: usize, exp: F) -> Vec<T>
where
    T: Copy + Default + Send + Sync + PartialOrd + Add<Output = T> + Sub<Output = T>,
    T: Div<Output = T>,
    F: Fn(T) -> T + Sync,
{
    let mut out = vec![T::default(); src.len()];
    let run = |o: &mut [T], s: &[T]| {
        for (o, s) in o.chunks_exact_mut(cols).zip(s.chunks_exact(cols)) {
            softmax_row(o, s, &exp);
        }
    };
    if src.len() < PARALLEL_MIN {
        run(&mut out, src);
    } else {
        let task = (CHUNK / cols).max(1) * cols;
        out.par_chunks_mut(task)
            .zip(src.par_chunks(task))
            .for_each(|(o, s)| run(o, s));
    }
    out
}

#[inline(always)]
fn softmax_row<T, F>(out: &mut [T], src: &[T], exp: &F)
where
    T: Copy + Default + PartialOrd + Add<Output = T> + Sub<Output = T> + Div<Output = T>,
    F: Fn(T) -> T,
{
    let Some(&first) = src.first() else {
        return;
    };
    let mut lanes = [first; LANES];
    let mut chunks = src.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (m, &x) in lanes.iter_mut().zip(chunk) {
            if x > *m {
                *m = x;
            }
        }
    }
    let mut max = first;
    for &x in lanes.iter().chain(chunks.remainder()) {
        if x > max {
            max = x;
        }
    }
    for (o, &x) in out.iter_mut().zip(src) {
        *o = exp(x - max);
    }
    let mut lanes = [T::default(); LANES];
    let mut chunks = out.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (s, &x) in lanes.iter_mut().zip(chunk) {
            *s = *s + x;
        }
    }
    let mut sum = T::default();
    for &x in lanes.iter().chain(chunks.remainder()) {
        sum = sum + x;
    }
    for o in out.iter_mut() {
        *o = *o / sum;
    }
}

/// The result tensor, shaped like `like`.
fn build<T: candle_core::WithDType>(data: Vec<T>, like: &Tensor) -> Result<Tensor> {
    Ok(Tensor::from_vec(data, like.shape().clone(), &Device::Cpu)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_f32_is_close_to_libm() {
        let mut worst = 0f64;
        let mut x = -103.0f32;
        while x < 88.7 {
            let (got, want) = (f64::from(exp_f32(x)), f64::from(x).exp());
            if want > 1e-37 {
                worst = worst.max(((got - want) / want).abs());
            }
            x += 0.0137;
        }
        assert!(worst < 4e-7, "relative error {worst}");
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(exp_f32(-100.0) > 0.0);
    }

    #[test]
    fn fast_paths_match_candle() {
        let data: Vec<f32> = (0..70_000).map(|i| i as f32 * 1e-4 - 3.0).collect();
        let a = Tensor::from_vec(data.clone(), (700, 100), &Device::Cpu).unwrap();
        let b = a.sqr().unwrap();
        let fast = binary(Arith::Mul, &a, &b).unwrap().unwrap();
        assert_eq!(
            fast.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            a.mul(&b)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        );
        let r = relu(&a).unwrap().unwrap();
        assert_eq!(r.dims(), [700, 100]);
        assert!(unary(Unary::Exp, &a.t().unwrap()).is_none());
        assert!(binary(Arith::Add, &a, &a.reshape(70_000).unwrap()).is_none());
        let soft = softmax_last(&a).unwrap().unwrap();
        let want = candle_core::Tensor::exp(&a.broadcast_sub(&a.max_keepdim(1).unwrap()).unwrap())
            .unwrap();
        let want = want.broadcast_div(&want.sum_keepdim(1).unwrap()).unwrap();
        let diff = (soft - want).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_vec0::<f32>().unwrap() < 1e-6);
    }
}
