//! The operation set of the IR.

use pyflame_core::DType;

/// Elementwise functions of one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// -x
    Neg,
    /// |x|
    Abs,
    /// square root
    Sqrt,
    /// e^x
    Exp,
    /// natural logarithm
    Log,
    /// sine
    Sin,
    /// cosine
    Cos,
    /// hyperbolic tangent
    Tanh,
    /// 1 / (1 + e^-x)
    Sigmoid,
    /// max(x, 0)
    Relu,
    /// x * Phi(x), exact (erf) form
    Gelu,
    /// tanh approximation of GELU
    GeluTanh,
    /// x * sigmoid(x)
    Silu,
    /// error function
    Erf,
    /// round toward -inf
    Floor,
    /// round toward +inf
    Ceil,
    /// round half to even
    Round,
    /// -1, 0 or 1
    Sign,
    /// 1 / x
    Reciprocal,
    /// logical not (result is bool)
    LogicalNot,
}

impl UnaryOp {
    /// Lower-case op name used in graph printing.
    pub fn name(self) -> &'static str {
        use UnaryOp::*;
        match self {
            Neg => "neg",
            Abs => "abs",
            Sqrt => "sqrt",
            Exp => "exp",
            Log => "log",
            Sin => "sin",
            Cos => "cos",
            Tanh => "tanh",
            Sigmoid => "sigmoid",
            Relu => "relu",
            Gelu => "gelu",
            GeluTanh => "gelu_tanh",
            Silu => "silu",
            Erf => "erf",
            Floor => "floor",
            Ceil => "ceil",
            Round => "round",
            Sign => "sign",
            Reciprocal => "reciprocal",
            LogicalNot => "logical_not",
        }
    }

    /// True when the op only makes sense on floats, so integer inputs are promoted to float32.
    pub fn needs_float(self) -> bool {
        use UnaryOp::*;
        matches!(
            self,
            Sqrt | Exp
                | Log
                | Sin
                | Cos
                | Tanh
                | Sigmoid
                | Gelu
                | GeluTanh
                | Silu
                | Erf
                | Reciprocal
        )
    }
}

/// Elementwise functions of two arguments (with broadcasting).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// a + b
    Add,
    /// a - b
    Sub,
    /// a * b
    Mul,
    /// true division (integers give float32)
    Div,
    /// floor division
    FloorDiv,
    /// remainder with the sign of the divisor (Python's %)
    Rem,
    /// a ** b
    Pow,
    /// elementwise max (NaN propagates)
    Maximum,
    /// elementwise min (NaN propagates)
    Minimum,
    /// a == b
    Eq,
    /// a != b
    Ne,
    /// a < b
    Lt,
    /// a <= b
    Le,
    /// a > b
    Gt,
    /// a >= b
    Ge,
    /// bitwise and (logical on bool)
    And,
    /// bitwise or (logical on bool)
    Or,
    /// bitwise xor (logical on bool)
    Xor,
}

impl BinaryOp {
    /// Lower-case op name used in graph printing.
    pub fn name(self) -> &'static str {
        use BinaryOp::*;
        match self {
            Add => "add",
            Sub => "sub",
            Mul => "mul",
            Div => "div",
            FloorDiv => "floor_divide",
            Rem => "remainder",
            Pow => "pow",
            Maximum => "maximum",
            Minimum => "minimum",
            Eq => "eq",
            Ne => "ne",
            Lt => "lt",
            Le => "le",
            Gt => "gt",
            Ge => "ge",
            And => "bitwise_and",
            Or => "bitwise_or",
            Xor => "bitwise_xor",
        }
    }

    /// True for comparisons (result dtype bool).
    pub fn is_comparison(self) -> bool {
        use BinaryOp::*;
        matches!(self, Eq | Ne | Lt | Le | Gt | Ge)
    }

    /// True for bitwise ops (integer and bool only).
    pub fn is_bitwise(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor)
    }
}

/// Reductions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// sum
    Sum,
    /// product
    Prod,
    /// maximum
    Max,
    /// minimum
    Min,
    /// arithmetic mean
    Mean,
}

impl ReduceOp {
    /// Lower-case op name.
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Prod => "prod",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
            ReduceOp::Mean => "mean",
        }
    }
}

/// Random distributions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RandDist {
    /// Uniform in [low, high).
    Uniform {
        /// lower bound
        low: f64,
        /// upper bound (exclusive)
        high: f64,
    },
    /// Normal with mean and standard deviation.
    Normal {
        /// mean
        mean: f64,
        /// standard deviation
        std: f64,
    },
    /// Integers uniform in [low, high).
    Int {
        /// lower bound
        low: i64,
        /// upper bound (exclusive)
        high: i64,
    },
}

/// Convolution hyper-parameters (2-D; 1-D convolutions use a unit height).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvAttrs {
    /// (sh, sw)
    pub stride: [usize; 2],
    /// (ph, pw)
    pub padding: [usize; 2],
    /// (dh, dw)
    pub dilation: [usize; 2],
    /// channel groups
    pub groups: usize,
}

impl ConvAttrs {
    /// Appends the attributes to a structural key (see [`Op::encode`]).
    fn encode(&self, key: &mut Vec<u64>) {
        key.extend(
            self.stride
                .iter()
                .chain(&self.padding)
                .chain(&self.dilation)
                .map(|&v| v as u64),
        );
        key.push(self.groups as u64);
    }
}

/// The inference-time epilogue of [`Op::Conv2dFused`]: `clamp(conv + bias + residual)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvEpilogue {
    /// the convolution
    pub conv: ConvAttrs,
    /// a per-output-channel bias `[O]` is an input
    pub bias: bool,
    /// a residual of the output's shape is an input (added after the bias)
    pub residual: bool,
    /// `(min, max)` applied last (ReLU is `(0, inf)`); NaN passes through
    pub clamp: Option<(f64, f64)>,
}

/// Pooling kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolKind {
    /// max over the window
    Max,
    /// mean over the window
    Avg,
    /// mean over PyTorch's adaptive windows (output size given by the node shape)
    AdaptiveAvg,
}

/// Pooling window hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolAttrs {
    /// (kh, kw)
    pub kernel: [usize; 2],
    /// (sh, sw)
    pub stride: [usize; 2],
    /// (ph, pw)
    pub padding: [usize; 2],
    /// (dh, dw)
    pub dilation: [usize; 2],
    /// output size rounds up
    pub ceil_mode: bool,
    /// average pooling divides by the window including padding
    pub count_include_pad: bool,
}

/// How a normalization op groups the elements of its `[N, C, S]` input into statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NormMode {
    /// One statistic per (sample `n`, group of `C / groups` consecutive channels), over the
    /// group's channels and all `S` positions: group norm, and layer norm with `groups = 1`
    /// (input viewed as `[rows, features, 1]`).
    Groups(usize),
    /// One statistic per channel, over the `N` samples and `S` positions: batch norm.
    Channels,
}

impl NormMode {
    /// Number of statistics for an input of shape `[n, c, s]`.
    pub fn num_stats(self, n: usize, c: usize) -> usize {
        match self {
            NormMode::Groups(g) => n * g,
            NormMode::Channels => c,
        }
    }

    fn encode(self) -> u64 {
        match self {
            NormMode::Groups(g) => g as u64,
            NormMode::Channels => u64::MAX,
        }
    }
}

/// The mask argument of [`Op::Attention`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttnMask {
    /// No mask input.
    None,
    /// A float mask input added to the scaled scores.
    Additive,
    /// A bool mask input: `true` marks the keys that take part.
    Keep,
}

/// Attributes of the fused scaled-dot-product attention ops.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttnAttrs {
    /// Factor applied to `q @ k^T`.
    pub scale: f64,
    /// Query `i` only sees keys `j <= i` (top-left aligned, like PyTorch's `is_causal`).
    pub causal: bool,
    /// Kind of the optional mask input.
    pub mask: AttnMask,
    /// What a query row without any finite score (every key masked with `-inf`, or hidden)
    /// gives: `false` zeros (PyTorch's fused kernels, ONNX `Attention`), `true` NaN like a
    /// plain `softmax` over the row followed by the matmul (the composed ONNX pattern).
    pub empty_rows_nan: bool,
}

/// Hyper-parameters of one Adam step ([`Op::AdamStep`]); the bias corrections of the step
/// number are folded in by the caller.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamAttrs {
    /// decay of the first moment
    pub beta1: f64,
    /// decay of the second moment
    pub beta2: f64,
    /// added to the denominator
    pub eps: f64,
    /// `lr / (1 - beta1^step)`
    pub step_size: f64,
    /// `sqrt(1 - beta2^step)`
    pub bias_correction2_sqrt: f64,
    /// keep the running maximum of the second moment (AMSGrad)
    pub amsgrad: bool,
}

/// One IR operation. The output shape and dtype live on the [`crate::Node`].
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Data supplied from outside (NumPy, Python lists); always realized.
    Input,
    /// Every element equal to `value` (cast to the node dtype). The value is a run-time
    /// parameter: graphs differing only in it share a schedule.
    Full {
        /// the fill value
        value: f64,
    },
    /// `start + i * step`.
    Arange {
        /// first value
        start: f64,
        /// increment
        step: f64,
    },
    /// `steps` values evenly spaced from `start` to `end` inclusive.
    Linspace {
        /// first value
        start: f64,
        /// last value
        end: f64,
    },
    /// Identity matrix (2-D).
    Eye,
    /// Random values; `seed` is a run-time parameter.
    Random {
        /// distribution
        dist: RandDist,
        /// counter-based generator seed
        seed: u64,
    },
    /// Elementwise unary op.
    Unary(UnaryOp),
    /// Elementwise binary op (inputs broadcast to the output shape).
    Binary(BinaryOp),
    /// `where(cond, a, b)`.
    Where,
    /// Conversion to the node dtype.
    Cast,
    /// Reduction over `axes` (sorted, unique) of the input.
    Reduce {
        /// reduction kind
        op: ReduceOp,
        /// reduced axes of the input
        axes: Vec<usize>,
        /// whether reduced axes are kept with size 1
        keepdim: bool,
    },
    /// Index of the max/min along `axis` (flattened input when `None`).
    ArgReduce {
        /// argmax when true, argmin otherwise
        is_max: bool,
        /// axis of the input
        axis: Option<usize>,
        /// keep the reduced axis
        keepdim: bool,
    },
    /// Reshape to the node shape.
    Reshape,
    /// Permutation of axes.
    Permute(Vec<usize>),
    /// Broadcast to the node shape.
    Expand,
    /// Strided slice: per axis start and (positive) step; the length is the node shape.
    Slice {
        /// start index per axis
        starts: Vec<usize>,
        /// step per axis
        steps: Vec<usize>,
    },
    /// Concatenation along `axis`.
    Cat {
        /// axis
        axis: usize,
    },
    /// Matrix product of the last two axes, batch axes broadcast.
    MatMul,
    /// Softmax (or log-softmax) along `axis`.
    Softmax {
        /// axis
        axis: usize,
        /// log-softmax when true
        log: bool,
    },
    /// `out = data.take(index, axis)`: output shape `data[..axis] + index + data[axis+1..]`.
    Take {
        /// axis of `data`
        axis: usize,
    },
    /// A contiguous copy of the input.
    Contiguous,
    /// Inverse of [`Op::Slice`] (its gradient): zeros of the node shape with the input
    /// written at the strided positions `starts[d] + i * steps[d]`.
    Unslice {
        /// start index per axis
        starts: Vec<usize>,
        /// step per axis
        steps: Vec<usize>,
    },
    /// 2-D convolution of input 0 ([N, C, H, W]) with weight input 1 ([O, C/g, kh, kw]).
    Conv2d(ConvAttrs),
    /// Gradient of [`Op::Conv2d`] with respect to its input: inputs (grad_out, weight).
    Conv2dGradInput(ConvAttrs),
    /// Gradient of [`Op::Conv2d`] with respect to its weight: inputs (input, grad_out).
    Conv2dGradWeight(ConvAttrs),
    /// Convolution with its epilogue applied as the output is written: inputs (input,
    /// weight, [bias], [residual]); see [`ConvEpilogue`]. Built only where no gradient is
    /// needed (`build::conv2d_fused` composes the plain ops otherwise), so it has no
    /// gradient rule.
    Conv2dFused(ConvEpilogue),
    /// 2-D pooling of input 0 ([N, C, H, W]).
    Pool2d {
        /// pooling kind
        kind: PoolKind,
        /// window
        attrs: PoolAttrs,
    },
    /// Gradient of [`Op::Pool2d`]: inputs (input, grad_out) for max, (grad_out) otherwise.
    Pool2dGrad {
        /// pooling kind
        kind: PoolKind,
        /// window
        attrs: PoolAttrs,
    },
    /// Gradient of [`Op::Take`]: zeros of the node shape (the data shape) into which the
    /// input slices are added at the positions in the index input (scatter-add).
    TakeGrad {
        /// axis of the data
        axis: usize,
    },
    /// Statistics of a normalization of input 0 (`[N, C, S]`): output `[2, R]` holding the
    /// mean (row 0) and the biased variance (row 1) of each of the `R` groups of `mode`.
    NormStats(NormMode),
    /// Normalization with saved statistics: inputs (x `[N, C, S]`, stats `[2, R]` from
    /// [`Op::NormStats`] of x, weight `[C]` when `weight`, bias `[C]` when `bias`); output
    /// `(x - mean) / sqrt(var + eps) * weight + bias`. Its gradient treats the statistics as
    /// those of x (the builder guarantees it).
    NormApply {
        /// grouping of the statistics
        mode: NormMode,
        /// added to the variance
        eps: f64,
        /// a weight input is present
        weight: bool,
        /// a bias input is present
        bias: bool,
    },
    /// Gradient of [`Op::NormApply`] with respect to x: inputs (grad_out, x, stats, weight
    /// when `weight`, then the [`Op::NormGradAffine`] output of the same arguments when
    /// `sums`, whose per-channel sums the kernel reuses instead of recomputing them).
    NormGradInput {
        /// grouping of the statistics
        mode: NormMode,
        /// added to the variance
        eps: f64,
        /// a weight input is present
        weight: bool,
        /// an affine-gradient input is present
        sums: bool,
    },
    /// Gradients of [`Op::NormApply`] with respect to weight and bias: inputs (grad_out, x,
    /// stats); output `[2, C]` (row 0 the weight gradient, row 1 the bias gradient).
    NormGradAffine {
        /// grouping of the statistics
        mode: NormMode,
        /// added to the variance
        eps: f64,
    },
    /// Scaled-dot-product attention `softmax(q @ k^T * scale + mask) @ v` over the last two
    /// axes: inputs (q `[..., Lq, D]`, k `[..., Lk, D]`, v `[..., Lk, Dv]`, mask broadcastable
    /// to `[..., Lq, Lk]` unless `mask` is [`AttnMask::None`]). Fully masked rows give zeros.
    Attention(AttnAttrs),
    /// Gradient of [`Op::Attention`]: inputs (grad_out, q, k, v, mask?); output 1-D, the
    /// gradients of q, k and v (each contiguous) one after the other.
    AttentionGrad(AttnAttrs),
    /// One Adam update in a single pass: inputs (param, grad, exp_avg, exp_avg_sq, and
    /// max_exp_avg_sq with AMSGrad), all of one shape; output `[3 or 4, *shape]`: the new
    /// param, exp_avg, exp_avg_sq (and max_exp_avg_sq).
    AdamStep(AdamAttrs),
}

impl Op {
    /// Lower-case name shown by graph inspection (`Node.op_type`).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Full { .. } => "full",
            Op::Arange { .. } => "arange",
            Op::Linspace { .. } => "linspace",
            Op::Eye => "eye",
            Op::Random { dist, .. } => match dist {
                RandDist::Uniform { .. } => "rand",
                RandDist::Normal { .. } => "randn",
                RandDist::Int { .. } => "randint",
            },
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.name(),
            Op::Where => "where",
            Op::Cast => "cast",
            Op::Reduce { op, .. } => op.name(),
            Op::ArgReduce { is_max, .. } => {
                if *is_max {
                    "argmax"
                } else {
                    "argmin"
                }
            }
            Op::Reshape => "reshape",
            Op::Permute(_) => "permute",
            Op::Expand => "expand",
            Op::Slice { .. } => "slice",
            Op::Cat { .. } => "cat",
            Op::MatMul => "matmul",
            Op::Softmax { log, .. } => {
                if *log {
                    "log_softmax"
                } else {
                    "softmax"
                }
            }
            Op::Take { .. } => "take",
            Op::Contiguous => "contiguous",
            Op::Unslice { .. } => "unslice",
            Op::TakeGrad { .. } => "take_grad",
            Op::Conv2d(_) => "conv2d",
            Op::Conv2dGradInput(_) => "conv2d_grad_input",
            Op::Conv2dGradWeight(_) => "conv2d_grad_weight",
            Op::Conv2dFused(_) => "conv2d_fused",
            Op::Pool2d { kind, .. } => match kind {
                PoolKind::Max => "max_pool2d",
                PoolKind::Avg => "avg_pool2d",
                PoolKind::AdaptiveAvg => "adaptive_avg_pool2d",
            },
            Op::Pool2dGrad { kind, .. } => match kind {
                PoolKind::Max => "max_pool2d_grad",
                PoolKind::Avg => "avg_pool2d_grad",
                PoolKind::AdaptiveAvg => "adaptive_avg_pool2d_grad",
            },
            Op::NormStats(_) => "norm_stats",
            Op::NormApply { .. } => "norm_apply",
            Op::NormGradInput { .. } => "norm_grad_input",
            Op::NormGradAffine { .. } => "norm_grad_affine",
            Op::Attention(_) => "attention",
            Op::AttentionGrad(_) => "attention_grad",
            Op::AdamStep(_) => "adam_step",
        }
    }

    /// True for ops computed elementwise (fusable into one pass).
    pub fn is_elementwise(&self) -> bool {
        matches!(
            self,
            Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Cast | Op::Full { .. }
        )
    }

    /// True for ops that only re-index their input (zero-copy where strides allow).
    pub fn is_view(&self) -> bool {
        matches!(
            self,
            Op::Reshape | Op::Permute(_) | Op::Expand | Op::Slice { .. }
        )
    }

    /// Appends a structural encoding (op kind and attributes that change the schedule) to
    /// `key`. Run-time parameters (fill values, seeds) are left out.
    pub fn encode(&self, key: &mut Vec<u64>) {
        let tag = |k: &mut Vec<u64>, t: u64| k.push(t);
        match self {
            Op::Input => tag(key, 1),
            Op::Full { .. } => tag(key, 2),
            Op::Arange { start, step } => {
                key.extend([3, start.to_bits(), step.to_bits()]);
            }
            Op::Linspace { start, end } => key.extend([4, start.to_bits(), end.to_bits()]),
            Op::Eye => tag(key, 5),
            Op::Random { dist, .. } => match dist {
                RandDist::Uniform { low, high } => key.extend([6, low.to_bits(), high.to_bits()]),
                RandDist::Normal { mean, std } => key.extend([7, mean.to_bits(), std.to_bits()]),
                RandDist::Int { low, high } => key.extend([8, *low as u64, *high as u64]),
            },
            Op::Unary(u) => key.extend([9, *u as u64]),
            Op::Binary(b) => key.extend([10, *b as u64]),
            Op::Where => tag(key, 11),
            Op::Cast => tag(key, 12),
            Op::Reduce { op, axes, keepdim } => {
                key.extend([13, *op as u64, *keepdim as u64, axes.len() as u64]);
                key.extend(axes.iter().map(|&a| a as u64));
            }
            Op::ArgReduce {
                is_max,
                axis,
                keepdim,
            } => key.extend([
                14,
                *is_max as u64,
                axis.map_or(u64::MAX, |a| a as u64),
                *keepdim as u64,
            ]),
            Op::Reshape => tag(key, 15),
            Op::Permute(p) => {
                key.extend([16, p.len() as u64]);
                key.extend(p.iter().map(|&a| a as u64));
            }
            Op::Expand => tag(key, 17),
            Op::Slice { starts, steps } => {
                key.extend([18, starts.len() as u64]);
                key.extend(starts.iter().map(|&a| a as u64));
                key.extend(steps.iter().map(|&a| a as u64));
            }
            Op::Cat { axis } => key.extend([19, *axis as u64]),
            Op::MatMul => tag(key, 20),
            Op::Softmax { axis, log } => key.extend([21, *axis as u64, *log as u64]),
            Op::Take { axis } => key.extend([22, *axis as u64]),
            Op::Contiguous => tag(key, 23),
            Op::Unslice { starts, steps } => {
                key.extend([24, starts.len() as u64]);
                key.extend(starts.iter().map(|&a| a as u64));
                key.extend(steps.iter().map(|&a| a as u64));
            }
            Op::TakeGrad { axis } => key.extend([25, *axis as u64]),
            Op::Conv2d(a) | Op::Conv2dGradInput(a) | Op::Conv2dGradWeight(a) => {
                let t = match self {
                    Op::Conv2d(_) => 26,
                    Op::Conv2dGradInput(_) => 27,
                    _ => 28,
                };
                key.push(t);
                a.encode(key);
            }
            Op::Conv2dFused(e) => {
                key.push(38);
                e.conv.encode(key);
                key.extend([e.bias as u64, e.residual as u64]);
                match e.clamp {
                    Some((lo, hi)) => key.extend([1, lo.to_bits(), hi.to_bits()]),
                    None => key.push(0),
                }
            }
            Op::Pool2d { kind, attrs } | Op::Pool2dGrad { kind, attrs } => {
                key.push(if matches!(self, Op::Pool2d { .. }) {
                    29
                } else {
                    30
                });
                key.push(*kind as u64);
                key.extend(
                    attrs
                        .kernel
                        .iter()
                        .chain(&attrs.stride)
                        .chain(&attrs.padding)
                        .chain(&attrs.dilation)
                        .map(|&v| v as u64),
                );
                key.extend([attrs.ceil_mode as u64, attrs.count_include_pad as u64]);
            }
            Op::NormStats(mode) => key.extend([31, mode.encode()]),
            Op::NormApply {
                mode,
                eps,
                weight,
                bias,
            } => key.extend([
                32,
                mode.encode(),
                eps.to_bits(),
                *weight as u64,
                *bias as u64,
            ]),
            Op::NormGradInput {
                mode,
                eps,
                weight,
                sums,
            } => key.extend([
                33,
                mode.encode(),
                eps.to_bits(),
                *weight as u64,
                *sums as u64,
            ]),
            Op::NormGradAffine { mode, eps } => key.extend([34, mode.encode(), eps.to_bits()]),
            Op::Attention(a) | Op::AttentionGrad(a) => key.extend([
                if matches!(self, Op::Attention(_)) {
                    35
                } else {
                    36
                },
                a.scale.to_bits(),
                a.causal as u64,
                a.mask as u64,
                a.empty_rows_nan as u64,
            ]),
            // The step-dependent factors are run-time values: one schedule serves every step.
            Op::AdamStep(a) => key.extend([
                37,
                a.beta1.to_bits(),
                a.beta2.to_bits(),
                a.eps.to_bits(),
                a.amsgrad as u64,
            ]),
        }
    }
}

/// The dtype an elementwise op computes in for inputs of `dtype`.
pub fn float_result(dtype: DType) -> DType {
    if dtype.is_float() {
        dtype
    } else {
        DType::Float32
    }
}
