//! How program inputs are read: contiguous, broadcast scalar or strided (with adjacent axes
//! merged), converted to the register kind.

use super::Input;
use pyflame_core::{numel, Element, Error, Result, Storage};
use pyflame_ir::Value;

/// How one input is read.
#[derive(Clone)]
pub(super) enum Loader<'a> {
    Scalar(f64),
    /// A contiguous block of the input held outside any storage (a matmul epilogue's freshly
    /// computed rows): element `i` of the input is `data[i - base]`, for the range the block
    /// covers.
    Block {
        data: BlockData<'a>,
        base: usize,
    },
    Contiguous {
        storage: &'a Storage,
        offset: usize,
    },
    /// A strided view; `shape`/`strides` are the output's, with adjacent axes that are
    /// contiguous with each other merged (so inner runs are long).
    Strided {
        storage: &'a Storage,
        offset: usize,
        shape: Vec<usize>,
        strides: Vec<isize>,
    },
}

/// A contiguous run of computed values that a program reads as one of its inputs (see
/// [`super::Program::fill_range_with_block`]).
#[derive(Clone, Copy, Debug)]
pub enum BlockData<'a> {
    /// float32 values
    F32(&'a [f32]),
    /// float64 values
    F64(&'a [f64]),
}

/// Broadcast strides of `v` against `out_shape` (`v`'s shape must broadcast to it).
pub fn broadcast_strides(v: &Value, out_shape: &[usize]) -> Result<Vec<isize>> {
    let nd = out_shape.len();
    if v.shape.len() > nd {
        return Err(Error::Shape(format!(
            "cannot broadcast {:?} to {:?}",
            v.shape, out_shape
        )));
    }
    let lead = nd - v.shape.len();
    let mut strides = vec![0isize; nd];
    for i in 0..v.shape.len() {
        let (d, o) = (v.shape[i], out_shape[lead + i]);
        if d == o {
            strides[lead + i] = if d == 1 { 0 } else { v.strides[i] };
        } else if d != 1 {
            return Err(Error::Shape(format!(
                "cannot broadcast {:?} to {:?}",
                v.shape, out_shape
            )));
        }
    }
    Ok(strides)
}

pub(super) fn make_loader<'a>(input: &'a Input, out_shape: &[usize]) -> Result<Loader<'a>> {
    match input {
        Input::Scalar(v) => Ok(Loader::Scalar(*v)),
        Input::Tensor(v) => {
            let strides = broadcast_strides(v, out_shape)?;
            // Bounds check: the furthest element reached must lie inside the storage.
            let mut max = v.offset as isize;
            for (s, &d) in strides.iter().zip(out_shape) {
                if d == 0 {
                    return Ok(Loader::Scalar(0.0));
                }
                if *s < 0 {
                    return Err(Error::Invalid("negative strides are not supported".into()));
                }
                max += s * (d as isize - 1);
            }
            if numel(out_shape) > 0 && max as usize >= v.storage.len() {
                return Err(Error::Invalid(format!(
                    "view out of bounds: element {max} of a storage of {}",
                    v.storage.len()
                )));
            }
            let contiguous = {
                let mut expect = 1isize;
                let mut ok = true;
                for i in (0..out_shape.len()).rev() {
                    if out_shape[i] != 1 && strides[i] != expect {
                        ok = false;
                        break;
                    }
                    expect *= out_shape[i] as isize;
                }
                ok
            };
            if strides
                .iter()
                .zip(out_shape)
                .all(|(&s, &d)| s == 0 || d == 1)
            {
                // Every element is the same one.
                let s = &*v.storage;
                let x = pyflame_core::dispatch_dtype!(s.dtype(), T => {
                    s.as_slice::<T>()?.get(v.offset).map(|e| e.to_f64())
                });
                return Ok(Loader::Scalar(x.unwrap_or(0.0)));
            }
            if contiguous {
                Ok(Loader::Contiguous {
                    storage: &v.storage,
                    offset: v.offset,
                })
            } else {
                let (shape, strides) = collapse(out_shape, &strides);
                Ok(Loader::Strided {
                    storage: &v.storage,
                    offset: v.offset,
                    shape,
                    strides,
                })
            }
        }
    }
}

/// Merges adjacent axes that are contiguous with each other (`stride[i] == stride[i+1] *
/// shape[i+1]`, which includes runs of broadcast axes) and drops size-1 axes, preserving the
/// row-major element order.
fn collapse(shape: &[usize], strides: &[isize]) -> (Vec<usize>, Vec<isize>) {
    let mut cs: Vec<usize> = Vec::with_capacity(shape.len());
    let mut cst: Vec<isize> = Vec::with_capacity(shape.len());
    for (&d, &st) in shape.iter().zip(strides) {
        if d == 1 {
            continue;
        }
        if let (Some(last_d), Some(last_st)) = (cs.last_mut(), cst.last_mut()) {
            if *last_st == st * d as isize {
                *last_d *= d;
                *last_st = st;
                continue;
            }
        }
        cs.push(d);
        cst.push(st);
    }
    if cs.is_empty() {
        cs.push(1);
        cst.push(0);
    }
    (cs, cst)
}

/// Compute-side element types of registers.
pub(super) trait Compute: Copy + Default + Send + Sync + 'static {
    fn from_elem<T: Element>(x: T) -> Self;
    fn from_f64(x: f64) -> Self;
}

impl Compute for f32 {
    #[inline(always)]
    fn from_elem<T: Element>(x: T) -> Self {
        x.to_f32()
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
}
impl Compute for f64 {
    #[inline(always)]
    fn from_elem<T: Element>(x: T) -> Self {
        x.to_f64()
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
}
impl Compute for i64 {
    #[inline(always)]
    fn from_elem<T: Element>(x: T) -> Self {
        x.to_i64()
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as i64
    }
}

#[inline(always)]
fn convert_slice<T: Element, C: Compute>(src: &[T], dst: &mut [C]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = C::from_elem(s);
    }
}

/// Reads elements `[start, start + dst.len())` (row-major over `shape`) of a strided view.
fn gather_strided<T: Element, C: Compute>(
    data: &[T],
    offset: usize,
    strides: &[isize],
    shape: &[usize],
    start: usize,
    dst: &mut [C],
) {
    let nd = shape.len();
    // The multi-index of `start`; on the stack for the usual ranks (this runs per chunk).
    let mut idx_stack = [0usize; 8];
    let mut idx_heap = Vec::new();
    let idx: &mut [usize] = if nd <= idx_stack.len() {
        &mut idx_stack[..nd]
    } else {
        idx_heap.resize(nd, 0);
        &mut idx_heap
    };
    let mut rem = start;
    for i in (0..nd).rev() {
        idx[i] = rem % shape[i];
        rem /= shape[i];
    }
    let mut pos: isize = offset as isize
        + idx
            .iter()
            .zip(strides)
            .map(|(&i, &s)| i as isize * s)
            .sum::<isize>();
    let inner = shape[nd - 1];
    let inner_stride = strides[nd - 1];
    let mut written = 0;
    while written < dst.len() {
        let run = (inner - idx[nd - 1]).min(dst.len() - written);
        let out = &mut dst[written..written + run];
        if inner_stride == 1 {
            convert_slice(&data[pos as usize..pos as usize + run], out);
        } else if inner_stride == 0 {
            out.fill(C::from_elem(data[pos as usize]));
        } else {
            let mut p = pos;
            for o in out.iter_mut() {
                *o = C::from_elem(data[p as usize]);
                p += inner_stride;
            }
        }
        written += run;
        // Advance the multi-index by `run`.
        idx[nd - 1] += run;
        pos += inner_stride * run as isize;
        let mut d = nd - 1;
        while idx[d] == shape[d] && d > 0 {
            pos -= strides[d] * shape[d] as isize;
            idx[d] = 0;
            d -= 1;
            idx[d] += 1;
            pos += strides[d];
        }
    }
}

pub(super) fn load_into<C: Compute>(loader: &Loader, start: usize, dst: &mut [C]) -> Result<()> {
    match loader {
        Loader::Scalar(v) => dst.fill(C::from_f64(*v)),
        Loader::Block { data, base } => {
            let range = start
                .checked_sub(*base)
                .map(|lo| lo..lo + dst.len())
                .ok_or_else(|| Error::Invalid("internal: read before an epilogue block".into()))?;
            let missing = || Error::Invalid("internal: read past an epilogue block".into());
            match data {
                BlockData::F32(d) => convert_slice(d.get(range).ok_or_else(missing)?, dst),
                BlockData::F64(d) => convert_slice(d.get(range).ok_or_else(missing)?, dst),
            }
        }
        Loader::Contiguous { storage, offset } => {
            pyflame_core::dispatch_dtype!(storage.dtype(), T => {
                let s = storage.as_slice::<T>()?;
                convert_slice(&s[offset + start..offset + start + dst.len()], dst);
            })
        }
        Loader::Strided {
            storage,
            offset,
            shape,
            strides,
        } => {
            pyflame_core::dispatch_dtype!(storage.dtype(), T => {
                gather_strided(storage.as_slice::<T>()?, *offset, strides, shape, start, dst);
            })
        }
    }
    Ok(())
}
