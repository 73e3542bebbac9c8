//! Vector-Jacobian products: for a node and the gradient of its output, the gradients of
//! its inputs, built as graph nodes.

use pyflame_core::Result;
use pyflame_ir::{build, BinaryOp, NodeRef, NormMode, Op, PoolKind, ReduceOp, UnaryOp};

fn scalar(v: f64, like: &NodeRef) -> NodeRef {
    build::full(vec![], v, like.dtype, like.layout)
}

fn bin(op: BinaryOp, a: &NodeRef, b: &NodeRef) -> Result<NodeRef> {
    build::binary(op, a, b)
}

fn mul(a: &NodeRef, b: &NodeRef) -> Result<NodeRef> {
    bin(BinaryOp::Mul, a, b)
}

fn un(op: UnaryOp, a: &NodeRef) -> Result<NodeRef> {
    build::unary(op, a)
}

fn shape_i64(s: &[usize]) -> Vec<i64> {
    s.iter().map(|&d| d as i64).collect()
}

/// Gradient of a broadcasting binary op's operand: sum over the broadcast axes.
fn unbroadcast(g: NodeRef, input: &NodeRef) -> Result<Option<NodeRef>> {
    Ok(Some(build::cast(
        &build::sum_to_shape(&g, &input.shape)?,
        input.dtype,
    )))
}

/// `g` of a reduced output, broadcast back over the reduced axes of `input`.
fn expand_reduced(g: &NodeRef, input: &NodeRef, axes: &[usize], keepdim: bool) -> Result<NodeRef> {
    let kept: Vec<i64> = if keepdim {
        shape_i64(&g.shape)
    } else {
        input
            .shape
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                if axes.contains(&i) || axes.is_empty() {
                    1
                } else {
                    d as i64
                }
            })
            .collect()
    };
    let r = build::reshape(g, &kept)?;
    build::broadcast_to(&r, &input.shape)
}

/// True for a permutation that only swaps the last two axes.
fn swaps_last_two(p: &[usize]) -> bool {
    let n = p.len();
    n >= 2
        && p[n - 1] == n - 2
        && p[n - 2] == n - 1
        && p[..n - 2].iter().enumerate().all(|(i, &a)| i == a)
}

/// The gradients of `node`'s inputs given the gradient `g` of its output (`None` where an
/// input has no gradient, e.g. integer or index inputs).
pub fn vjp(node: &NodeRef, inputs: &[NodeRef], g: &NodeRef) -> Result<Vec<Option<NodeRef>>> {
    let out = node;
    Ok(match &node.op {
        Op::Unary(op) => {
            let x = &inputs[0];
            let gx = match op {
                UnaryOp::Neg => un(UnaryOp::Neg, g)?,
                UnaryOp::Abs => mul(g, &un(UnaryOp::Sign, x)?)?,
                UnaryOp::Sqrt => bin(BinaryOp::Div, g, &mul(out, &scalar(2.0, out))?)?,
                UnaryOp::Exp => mul(g, out)?,
                UnaryOp::Log => bin(BinaryOp::Div, g, x)?,
                UnaryOp::Sin => mul(g, &un(UnaryOp::Cos, x)?)?,
                UnaryOp::Cos => un(UnaryOp::Neg, &mul(g, &un(UnaryOp::Sin, x)?)?)?,
                UnaryOp::Tanh => {
                    let one_minus = bin(BinaryOp::Sub, &scalar(1.0, out), &mul(out, out)?)?;
                    mul(g, &one_minus)?
                }
                UnaryOp::Sigmoid => {
                    let d = mul(out, &bin(BinaryOp::Sub, &scalar(1.0, out), out)?)?;
                    mul(g, &d)?
                }
                // From the output, as PyTorch does (zero where out <= 0, so a NaN passes the
                // gradient, and an infinite gradient is not turned into NaN by a product with
                // a zero mask): the input need not be kept for backward, so the producer of `x`
                // (a convolution's bias add, a normalization) fuses with the ReLU.
                UnaryOp::Relu => build::where_(
                    &bin(BinaryOp::Le, out, &scalar(0.0, out))?,
                    &scalar(0.0, g),
                    g,
                )?,
                UnaryOp::Gelu => {
                    // d/dx x*Phi(x) = Phi(x) + x*phi(x)
                    let cdf = mul(
                        &bin(
                            BinaryOp::Add,
                            &scalar(1.0, x),
                            &un(
                                UnaryOp::Erf,
                                &mul(x, &scalar(std::f64::consts::FRAC_1_SQRT_2, x))?,
                            )?,
                        )?,
                        &scalar(0.5, x),
                    )?;
                    let pdf = mul(
                        &un(UnaryOp::Exp, &mul(&mul(x, x)?, &scalar(-0.5, x))?)?,
                        &scalar(1.0 / (2.0 * std::f64::consts::PI).sqrt(), x),
                    )?;
                    mul(g, &bin(BinaryOp::Add, &cdf, &mul(x, &pdf)?)?)?
                }
                UnaryOp::GeluTanh => {
                    // 0.5*x*(1+tanh(u)), u = c*(x + 0.044715 x^3)
                    let c = (2.0 / std::f64::consts::PI).sqrt();
                    let x2 = mul(x, x)?;
                    let u = mul(
                        &mul(
                            x,
                            &bin(
                                BinaryOp::Add,
                                &scalar(1.0, x),
                                &mul(&x2, &scalar(0.044715, x))?,
                            )?,
                        )?,
                        &scalar(c, x),
                    )?;
                    let t = un(UnaryOp::Tanh, &u)?;
                    let du = mul(
                        &bin(
                            BinaryOp::Add,
                            &scalar(1.0, x),
                            &mul(&x2, &scalar(3.0 * 0.044715, x))?,
                        )?,
                        &scalar(c, x),
                    )?;
                    let sech2 = bin(BinaryOp::Sub, &scalar(1.0, x), &mul(&t, &t)?)?;
                    let left = mul(&bin(BinaryOp::Add, &scalar(1.0, x), &t)?, &scalar(0.5, x))?;
                    let right = mul(&mul(&mul(x, &sech2)?, &du)?, &scalar(0.5, x))?;
                    mul(g, &bin(BinaryOp::Add, &left, &right)?)?
                }
                UnaryOp::Silu => {
                    let s = un(UnaryOp::Sigmoid, x)?;
                    let one_minus = bin(BinaryOp::Sub, &scalar(1.0, x), &s)?;
                    let d = mul(
                        &s,
                        &bin(BinaryOp::Add, &scalar(1.0, x), &mul(x, &one_minus)?)?,
                    )?;
                    mul(g, &d)?
                }
                UnaryOp::Erf => {
                    let d = mul(
                        &un(UnaryOp::Exp, &un(UnaryOp::Neg, &mul(x, x)?)?)?,
                        &scalar(2.0 / std::f64::consts::PI.sqrt(), x),
                    )?;
                    mul(g, &d)?
                }
                UnaryOp::Reciprocal => un(UnaryOp::Neg, &mul(g, &mul(out, out)?)?)?,
                UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round | UnaryOp::Sign => {
                    mul(g, &scalar(0.0, g))?
                }
                UnaryOp::LogicalNot => return Ok(vec![None]),
            };
            vec![Some(build::cast(&gx, x.dtype))]
        }
        Op::Binary(op) => {
            let (a, b) = (&inputs[0], &inputs[1]);
            let (ga, gb) = match op {
                BinaryOp::Add => (g.clone(), g.clone()),
                BinaryOp::Sub => (g.clone(), un(UnaryOp::Neg, g)?),
                BinaryOp::Mul => (mul(g, b)?, mul(g, a)?),
                BinaryOp::Div => {
                    let ga = bin(BinaryOp::Div, g, b)?;
                    let gb = un(UnaryOp::Neg, &mul(&ga, out)?)?;
                    (ga, gb)
                }
                BinaryOp::Pow => {
                    // d/da a^b = b * a^(b-1); d/db a^b = a^b * ln(a) (0 where a == 0).
                    let bm1 = bin(BinaryOp::Sub, b, &scalar(1.0, b))?;
                    let ga = mul(g, &mul(b, &bin(BinaryOp::Pow, a, &bm1)?)?)?;
                    let ln = un(UnaryOp::Log, a)?;
                    let safe = build::where_(
                        &bin(BinaryOp::Gt, a, &scalar(0.0, a))?,
                        &ln,
                        &scalar(0.0, a),
                    )?;
                    let gb = mul(g, &mul(out, &safe)?)?;
                    (ga, gb)
                }
                BinaryOp::Maximum | BinaryOp::Minimum => {
                    // Ties split the gradient evenly, like PyTorch.
                    let cmp = if *op == BinaryOp::Maximum {
                        BinaryOp::Gt
                    } else {
                        BinaryOp::Lt
                    };
                    let wins_a = build::cast(&bin(cmp, a, b)?, g.dtype);
                    let ties = build::cast(&bin(BinaryOp::Eq, a, b)?, g.dtype);
                    let half_ties = mul(&ties, &scalar(0.5, g))?;
                    let wa = bin(BinaryOp::Add, &wins_a, &half_ties)?;
                    let wb = bin(BinaryOp::Sub, &scalar(1.0, g), &wa)?;
                    (mul(g, &wa)?, mul(g, &wb)?)
                }
                BinaryOp::Rem => {
                    let q = un(UnaryOp::Floor, &bin(BinaryOp::Div, a, b)?)?;
                    (g.clone(), un(UnaryOp::Neg, &mul(g, &q)?)?)
                }
                BinaryOp::FloorDiv => (mul(g, &scalar(0.0, g))?, mul(g, &scalar(0.0, g))?),
                _ => return Ok(vec![None, None]),
            };
            vec![unbroadcast(ga, a)?, unbroadcast(gb, b)?]
        }
        Op::Where => {
            let (c, a, b) = (&inputs[0], &inputs[1], &inputs[2]);
            let zero = scalar(0.0, g);
            let ga = build::where_(c, g, &zero)?;
            let gb = build::where_(c, &zero, g)?;
            vec![None, unbroadcast(ga, a)?, unbroadcast(gb, b)?]
        }
        Op::Cast => {
            let x = &inputs[0];
            if x.dtype.is_float() {
                vec![Some(build::cast(g, x.dtype))]
            } else {
                vec![None]
            }
        }
        Op::Reduce { op, axes, keepdim } => {
            let x = &inputs[0];
            let ge = expand_reduced(g, x, axes, *keepdim)?;
            let gx = match op {
                ReduceOp::Sum => ge,
                ReduceOp::Mean => {
                    let count: usize = if axes.is_empty() {
                        1
                    } else {
                        axes.iter().map(|&a| x.shape[a]).product()
                    };
                    mul(&ge, &scalar(1.0 / count.max(1) as f64, g))?
                }
                ReduceOp::Max | ReduceOp::Min => {
                    // Evenly among the elements equal to the extreme value.
                    let oe = expand_reduced(out, x, axes, *keepdim)?;
                    let hit = build::cast(&bin(BinaryOp::Eq, x, &oe)?, g.dtype);
                    let count = build::reduce(
                        ReduceOp::Sum,
                        &hit,
                        Some(&axes.iter().map(|&a| a as i64).collect::<Vec<_>>()),
                        true,
                    )?;
                    let count = build::broadcast_to(&count, &x.shape)?;
                    mul(&ge, &bin(BinaryOp::Div, &hit, &count)?)?
                }
                ReduceOp::Prod => {
                    let oe = expand_reduced(out, x, axes, *keepdim)?;
                    mul(&ge, &bin(BinaryOp::Div, &oe, x)?)?
                }
            };
            vec![Some(build::cast(&gx, x.dtype))]
        }
        Op::Reshape => vec![Some(build::reshape(g, &shape_i64(&inputs[0].shape))?)],
        Op::Permute(p) if swaps_last_two(p) && g.op == Op::MatMul && !g.is_realized() => {
            // transpose(A @ B) = B^T @ A^T: the product is computed directly in the layout
            // the input needs, instead of as a transposed view that later readers gather.
            let mm = g.inputs();
            let (a, b) = (&mm[0], &mm[1]);
            vec![Some(build::matmul(
                &build::transpose(b, -1, -2)?,
                &build::transpose(a, -1, -2)?,
            )?)]
        }
        Op::Permute(p) => {
            let mut inv = vec![0i64; p.len()];
            for (i, &a) in p.iter().enumerate() {
                inv[a] = i as i64;
            }
            vec![Some(build::permute(g, &inv)?)]
        }
        Op::Expand => vec![Some(build::sum_to_shape(g, &inputs[0].shape)?)],
        Op::Contiguous => vec![Some(g.clone())],
        Op::Slice { starts, steps } => {
            let ranges: Vec<(usize, usize, usize)> = starts
                .iter()
                .zip(steps)
                .zip(&node.shape)
                .map(|((&s, &st), &l)| (s, l, st))
                .collect();
            vec![Some(build::unslice(g, &inputs[0].shape, &ranges)?)]
        }
        Op::Cat { axis } => {
            let mut start = 0;
            let mut grads = Vec::with_capacity(inputs.len());
            for x in inputs {
                let len = x.shape[*axis];
                let ranges: Vec<(usize, usize, usize)> = g
                    .shape
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| {
                        if i == *axis {
                            (start, len, 1)
                        } else {
                            (0, d, 1)
                        }
                    })
                    .collect();
                grads.push(Some(build::cast(&build::slice(g, &ranges)?, x.dtype)));
                start += len;
            }
            grads
        }
        Op::MatMul => {
            let (a, b) = (&inputs[0], &inputs[1]);
            let ga = build::matmul(g, &build::transpose(b, -1, -2)?)?;
            let gb = build::matmul(&build::transpose(a, -1, -2)?, g)?;
            vec![unbroadcast(ga, a)?, unbroadcast(gb, b)?]
        }
        Op::Softmax { axis, log } => {
            let ax = [*axis as i64];
            let gx = if *log {
                let s = build::reduce(ReduceOp::Sum, g, Some(&ax), true)?;
                bin(BinaryOp::Sub, g, &mul(&un(UnaryOp::Exp, out)?, &s)?)?
            } else {
                let s = build::reduce(ReduceOp::Sum, &mul(g, out)?, Some(&ax), true)?;
                mul(out, &bin(BinaryOp::Sub, g, &s)?)?
            };
            vec![Some(gx)]
        }
        Op::Take { axis } => {
            let (data, index) = (&inputs[0], &inputs[1]);
            vec![Some(build::take_grad(g, index, *axis, &data.shape)?), None]
        }
        Op::Unslice { starts, steps } => {
            let ranges: Vec<(usize, usize, usize)> = starts
                .iter()
                .zip(steps)
                .zip(&inputs[0].shape)
                .map(|((&s, &st), &l)| (s, l, st))
                .collect();
            vec![Some(build::slice(g, &ranges)?)]
        }
        Op::TakeGrad { axis } => vec![Some(build::take(g, &inputs[1], *axis as i64)?), None],
        Op::Conv2d(a) => {
            let (x, w) = (&inputs[0], &inputs[1]);
            vec![
                Some(build::conv2d_grad_input(g, w, *a, &x.shape)),
                Some(build::conv2d_grad_weight(x, g, *a, &w.shape)),
            ]
        }
        Op::Pool2d { kind, attrs } => {
            let x = &inputs[0];
            let ins = if *kind == PoolKind::Max {
                vec![x.clone(), g.clone()]
            } else {
                vec![g.clone()]
            };
            vec![Some(build::pool2d_grad(*kind, *attrs, ins, &x.shape))]
        }
        Op::NormApply {
            mode,
            eps,
            weight,
            bias,
        } => {
            // The statistics are x's own (see `build::norm_apply`): the input gradient
            // accounts for them, and they get none themselves.
            let (x, stats) = (&inputs[0], &inputs[1]);
            let w = weight.then(|| &inputs[2]);
            let affine = inputs[2..].iter().any(|p| p.requires_grad());
            // Per-channel statistics: the input gradient reuses the affine gradient's sums.
            let both = (affine || (x.requires_grad() && *mode == NormMode::Channels))
                .then(|| build::norm_grad_affine(g, x, stats, *mode, *eps));
            let sums = both.as_ref().filter(|_| *mode == NormMode::Channels);
            let gx = x
                .requires_grad()
                .then(|| build::norm_grad_input(g, x, stats, w, sums, *mode, *eps));
            let mut grads = vec![gx, None];
            if let Some(both) = both.filter(|_| affine) {
                let c = x.shape[1];
                let row = |r: usize| -> Result<NodeRef> {
                    build::reshape(&build::slice(&both, &[(r, 1, 1), (0, c, 1)])?, &[c as i64])
                };
                if *weight {
                    grads.push(Some(row(0)?));
                }
                if *bias {
                    grads.push(Some(row(1)?));
                }
            } else {
                grads.extend(inputs[2..].iter().map(|_| None));
            }
            grads
        }
        Op::Attention(a) => {
            // One backward kernel computes the three gradients into one buffer; each is a
            // contiguous piece of it. The mask gets no gradient.
            let mut ins = vec![g.clone()];
            ins.extend(inputs.iter().cloned());
            let packed = build::attention_grad(ins, *a);
            let mut start = 0;
            let mut grads = Vec::with_capacity(inputs.len());
            for x in &inputs[..3] {
                let n = x.numel();
                let piece = build::slice(&packed, &[(start, n, 1)])?;
                grads.push(Some(build::reshape(&piece, &shape_i64(&x.shape))?));
                start += n;
            }
            grads.extend(inputs[3..].iter().map(|_| None));
            grads
        }
        // Sources and index-valued ops carry no gradient.
        _ => vec![None; inputs.len()],
    })
}
