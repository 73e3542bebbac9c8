//! Vectorizable elementwise math on `f32` chunks (and `f64` counterparts).
//!
//! Every `*_f32` function works in place on a chunk (the executor passes ~1-4K elements that
//! sit in L1). Each one is a loop over a branch-free `#[inline(always)]` scalar function made of
//! range reduction + polynomial, so LLVM vectorizes the loop; the loop is compiled twice and
//! dispatched at run time (baseline / AVX2+FMA, see [`super::simd`]).
//!
//! Accuracy, checked exhaustively over every `f32` in the tested ranges against `f64`
//! references (`exhaustive_max_error`, an ignored test): maximum relative error 2.5e-7
//! (`silu`, `gelu_tanh`; about 2 ulp), 2.2e-7 for `gelu` (1.96e-7 with FMA, 1.87e-7 with the
//! AVX-512 kernel), 1.8e-7 for
//! `sigmoid`/`tanh`, 8.5e-8 for `exp`/`log`, and 0.53 ulp (6.2e-8) for `erf`, `sin`, `cos`,
//! for every normal result. Special values
//! behave like `std`: `exp` overflows to `inf` and underflows gradually to 0, NaN propagates,
//! `log(0) = -inf`, `log(x < 0) = NaN`, `tanh`/`sigmoid` saturate exactly to ±1 / 0 / 1.
//! Both the baseline and the FMA builds are tested; they may differ in the last bit.
//!
//! Implementation notes:
//! * `exp`, `log`, `tanh`, `sigmoid`, `silu` and `gelu_tanh` are evaluated in `f32`
//!   (Cody-Waite reduction by ln 2, minimax / Taylor polynomials); `gelu_tanh` forms its
//!   argument in `f64` so that `exp` of it stays accurate in the tail.
//! * `gelu` (exact erf form) is evaluated in `f32` only: `Phi(-a) = t exp(-a^2/2 + Q(t))`
//!   with `t = 1.5 / (1.5 + a)` (minimax `Q`), `a^2` carried as an exact two-product and the
//!   rounding of `t` compensated in the exponent, which keeps it relatively accurate in its
//!   far negative tail where `1 + erf(x / sqrt 2)` would cancel. With AVX-512 a dedicated
//!   kernel (`gelu_avx512`, 2.0-2.5x faster) uses `Phi(-a) = F(a) exp(-a^2/2)` instead:
//!   `F` is a degree-6 polynomial per interval of width 1/2, its coefficients fetched with
//!   `vpermt2ps` from 32-entry tables (`scripts/fit_gelu_avx512.py`), the exponential gets
//!   the exact two-product `a^2` and `vscalefps` scales with a single rounding; vectors with
//!   |x| > 12.9 form subnormal results with integer arithmetic (no microcode assists).
//! * `erf` is evaluated in `f64` lanes: `erfc(v) = t exp(-v^2 + P(t))` with `t = 2 / (2 + v)`
//!   (minimax `P`, Estrin evaluation); it is the slowest function here.
//! * `sin`/`cos` reduce by pi/2 in `f64` (two-constant Cody-Waite, with an error far below
//!   `f32` resolution for |x| <= 1e5) and use Taylor polynomials; chunks containing
//!   |x| > 1e5, inf or NaN fall back to `std` per element.
//!
//! The `*_f64` functions loop over `std` (and `libm` for `erf`) and exist for API symmetry.

use super::simd::{madd_f32, madd_f64, multiversion};
use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_PI, FRAC_2_SQRT_PI};

// -------------------------------------------------------------------------------------------
// Constants
// -------------------------------------------------------------------------------------------

/// 1.5 * 2^23: adding it rounds an f32 of magnitude < 2^22 to an integer held in the low bits.
pub(super) const ROUND_MAGIC_F32: f32 = 12_582_912.0;
/// Bit pattern of [`ROUND_MAGIC_F32`].
const ROUND_MAGIC_F32_BITS: i32 = 0x4B40_0000;
/// 1.5 * 2^52: the f64 counterpart of [`ROUND_MAGIC_F32`].
const ROUND_MAGIC_F64: f64 = 6_755_399_441_055_744.0;
/// Bit pattern of [`ROUND_MAGIC_F64`].
const ROUND_MAGIC_F64_BITS: u64 = 0x4338_0000_0000_0000;

/// ln 2 split for Cody-Waite reduction: `LN2_HI` has 9 significant bits, so `n * LN2_HI` is
/// exact for |n| < 2^15.
const LN2_HI_F32: f32 = 0.693_359_4;
/// `ln 2 - LN2_HI_F32`.
const LN2_LO_F32: f32 = -0.000_212_194_44;

/// Arguments above this overflow `exp` (exp(88.7228...) is the largest finite f32).
const EXP_MAX_ARG: f32 = 89.0;
/// Arguments below this give exactly 0: exp(-112) < 2^-160, so even `m * exp(x)` with
/// |m| <= 112 (silu, gelu_tanh) underflows to 0 there.
const EXP_MIN_ARG: f32 = -112.0;

/// `(exp(r) - 1 - r) / r^2 ~= Q(r)` on |r| <= ln2/2, minimax for the relative error of
/// `exp(r)` (error 3.1e-9 before rounding).
const EXP_Q: [f32; 5] = [
    0.499_999_94,
    0.166_665_2,
    0.041_668_404,
    0.008_368_857,
    0.001_381_427_7,
];

/// `2 atanh(s) = 2s + s * R(s^2)` with `R(z) = 2z/3 + 2z^2/5 + 2z^3/7 + 2z^4/9` (Taylor; the
/// first omitted term is < 2.1e-9 relative for |s| <= 0.1716).
const LOG_R: [f32; 4] = [0.666_666_7, 0.4, 0.285_714_3, 0.222_222_22];

/// `tanh(x) = x + x^3 P(x^2)` on |x| < [`TANH_SMALL`], minimax for the relative error
/// (4.4e-9 before rounding).
const TANH_P: [f32; 5] = [
    -0.333_332_8,
    0.133_314_42,
    -0.053_739_674,
    0.020_638_943,
    -0.005_704_814_6,
];
/// Below this |x|, tanh uses the odd polynomial; above, `1 - 2 / (exp(2|x|) + 1)`.
const TANH_SMALL: f32 = 0.625;

/// ln 2 split for the f64 exponential (`LN2_HI_F64` has 32 significant bits).
const LN2_HI_F64: f64 = 0.693_147_180_369_123_8;
/// `ln 2 - LN2_HI_F64`.
const LN2_LO_F64: f64 = 1.908_214_929_270_587_7e-10;
/// `(exp(r) - 1 - r) / r^2 ~= Q(r)` on |r| <= ln2/2 for the f64 exponential, minimax for the
/// relative error of `exp(r)` (1.3e-12).
const EXP_F64_Q: [f64; 7] = [
    0.500_000_000_046_208_7,
    0.166_666_667_916_498_6,
    0.041_666_664_266_328_104,
    0.008_333_279_724_081_92,
    0.001_388_920_959_787_585_4,
    0.000_199_102_955_387_646_65,
    2.470_643_221_859_000_3e-5,
];

/// `erfc(v) = t exp(-v^2 + P(t - ERFC_CENTER))` with `t = 2/(2+v)`, v in [0, 10.5]:
/// minimax for the absolute error of the exponent, i.e. the relative error of erfc
/// (2.7e-9, 0.05 ulp of f32).
const ERFC_P: [f64; 12] = [
    -0.563_156_788_327_866_6,
    1.368_118_991_771_979_6,
    0.094_763_379_493_610_94,
    -0.406_917_683_517_457_33,
    -0.039_628_361_939_335_93,
    0.296_700_989_813_803_2,
    -0.046_772_223_201_301_49,
    -0.255_342_340_153_571_05,
    0.137_009_997_069_948_32,
    0.187_675_714_327_786_65,
    -0.140_969_656_812_986_87,
    -0.080_141_684_369_886_8,
];
/// Centre of the `t` interval [0.16, 1] used by [`ERFC_P`].
const ERFC_CENTER: f64 = 0.58;
/// Above this argument erfc(v) < 1e-49, i.e. 0 for every f32 result we produce.
const ERFC_MAX_ARG: f64 = 10.5;
/// Below this |x|, erf uses its Taylor series (first omitted term < 1e-9 relative).
const ERF_SMALL: f64 = 0.25;

/// pi/2 split for Cody-Waite: `PIO2_HI` has 33 significant bits, so `k * PIO2_HI` is exact for
/// |k| < 2^20.
const PIO2_HI: f64 = 1.570_796_326_734_125_6;
/// `pi/2 - PIO2_HI`.
const PIO2_LO: f64 = 6.077_100_506_506_192e-11;
/// Inputs with |x| above this take the `std` path in `sin_f32`/`cos_f32`.
const TRIG_MAX_ARG: f32 = 1.0e5;
/// Taylor coefficients of `sin(r) = r + r^3 S(r^2)`: -1/3!, 1/5!, ..., -1/11!.
const SIN_S: [f64; 5] = [
    -0.166_666_666_666_666_66,
    0.008_333_333_333_333_333,
    -0.000_198_412_698_412_698_4,
    2.755_731_922_398_589_3e-6,
    -2.505_210_838_544_172e-8,
];
/// Taylor coefficients of `cos(r) = 1 - r^2/2 + r^4 C(r^2)`: 1/4!, -1/6!, 1/8!, -1/10!.
const COS_C: [f64; 4] = [
    0.041_666_666_666_666_664,
    -0.001_388_888_888_888_889,
    2.480_158_730_158_73e-5,
    -2.755_731_922_398_589e-7,
];

/// `Phi(-a) = t exp(-a^2/2 + Q(t - GELU_CENTER))` with `t = GELU_C / (GELU_C + a)` for
/// `a` in [0, [`GELU_MAX_ARG`]] (`Phi` is the standard normal CDF): `Q(t) = ln(Phi(-a) /
/// (t phi(a) sqrt(2 pi)))`-style smooth remainder, fitted for the absolute error of the exponent
/// (1.0e-8 with these f32 coefficients), so `Phi(-a)` keeps a small relative error far into
/// the tail.
const GELU_Q: [f32; 13] = [
    -0.859_416_1,
    0.579_120_46,
    -0.555_870_4,
    0.142_597_93,
    0.242_732_02,
    -0.403_756_77,
    0.267_043_44,
    0.086_797_38,
    -0.477_378,
    0.729_939_3,
    -0.366_871_83,
    -0.832_183_5,
    1.077_574_1,
];
/// Scale of the rational map `t = GELU_C / (GELU_C + a)` used by [`GELU_Q`].
const GELU_C: f32 = 1.5;
/// Centre of the `t` interval [0.09375, 1] of [`GELU_Q`].
const GELU_CENTER: f32 = 0.546_875;
/// Mid value of `d ln(t exp(Q(t))) / d ln t` (between 1.09 and 1.32 on the interval): turns
/// the relative rounding error of `t` into a correction of the exponent (residual < 1.5e-8).
const GELU_T_SENS: f32 = 1.205;
/// Above this |x|, `|x| Phi(-|x|) < 1e-46`, which rounds to 0 in f32.
const GELU_MAX_ARG: f32 = 14.5;

/// sqrt(2/pi) * 2, the factor of `2y` in the tanh form of GELU.
const GELU_TANH_2K: f64 = 1.595_769_121_605_730_8;
/// Cubic coefficient of the tanh form of GELU.
const GELU_TANH_C: f64 = 0.044_715;

// -------------------------------------------------------------------------------------------
// Scalar building blocks (branch-free, always inlined so that the loops vectorize)
// -------------------------------------------------------------------------------------------

/// Horner evaluation of `c[0] + c[1] x + ...` in f32.
#[inline(always)]
fn horner_f32<const FMA: bool, const N: usize>(x: f32, c: &[f32; N]) -> f32 {
    let mut acc = c[N - 1];
    let mut i = N - 1;
    while i > 0 {
        i -= 1;
        acc = madd_f32::<FMA>(acc, x, c[i]);
    }
    acc
}

/// Horner evaluation of `c[0] + c[1] x + ...` in f64.
#[inline(always)]
fn horner_f64<const FMA: bool, const N: usize>(x: f64, c: &[f64; N]) -> f64 {
    let mut acc = c[N - 1];
    let mut i = N - 1;
    while i > 0 {
        i -= 1;
        acc = madd_f64::<FMA>(acc, x, c[i]);
    }
    acc
}

/// Estrin evaluation of `c[0] + c[1] x + ...` in f64: the same polynomial as Horner with a
/// dependency chain of depth ~log2(N) instead of N, so that long polynomials do not stall the
/// out-of-order window. (Fully unrolled for a constant `N`.)
#[inline(always)]
fn estrin_f64<const FMA: bool, const N: usize>(x: f64, c: &[f64; N]) -> f64 {
    let mut buf = *c;
    let mut len = N;
    let mut p = x;
    while len > 1 {
        let half = len.div_ceil(2);
        for i in 0..half {
            buf[i] = if 2 * i + 1 < len {
                madd_f64::<FMA>(buf[2 * i + 1], p, buf[2 * i])
            } else {
                buf[2 * i]
            };
        }
        len = half;
        p *= p;
    }
    buf[0]
}

/// The rounding error `a + b - s` of `s = fl(a + b)`, exactly (Knuth's TwoSum).
#[inline(always)]
fn two_sum_err_f32(a: f32, b: f32, s: f32) -> f32 {
    let bb = s - a;
    (a - (s - bb)) + (b - bb)
}

/// The rounding error `a * b - p` of `p = fl(a * b)`, exactly (one FMA, or Dekker's product
/// with Veltkamp splitting without FMA; no overflow for |a|, |b| < 1e30).
#[inline(always)]
fn two_prod_err_f32<const FMA: bool>(a: f32, b: f32, p: f32) -> f32 {
    if FMA {
        a.mul_add(b, -p)
    } else {
        let split = |v: f32| {
            let c = 4097.0 * v;
            let h = c - (c - v);
            (h, v - h)
        };
        let (ah, al) = split(a);
        let (bh, bl) = split(b);
        (((ah * bh - p) + ah * bl) + al * bh) + al * bl
    }
}

/// 2^n as f32 for n in [-126, 127] (garbage, but no UB or panic, outside).
#[inline(always)]
fn pow2i_f32(n: i32) -> f32 {
    f32::from_bits((n.wrapping_add(127) as u32) << 23)
}

/// `exp(hi + lo) = (p * s1) * s2`, where `|lo| <= ulp(hi)` carries extra bits of the argument.
///
/// Cody-Waite: `n = round(hi / ln 2)`, `r = hi - n ln2_hi - n ln2_lo + lo` (the first product
/// and difference are exact), `p = exp(r) = 1 + (r + r^2 Q(r))`, and `2^n = s1 * s2` is split
/// in two normal powers of two so that gradual underflow rounds only once, in the last
/// multiplication. Callers that multiply the result by a factor `m` should form
/// `((m * p) * s1) * s2` so that `m * exp(..)` is accurate even when `exp(..)` alone would be
/// subnormal.
#[inline(always)]
fn exp_parts<const FMA: bool>(hi: f32, lo: f32) -> (f32, f32, f32) {
    let (pm, s1, s2) = exp_parts_m1::<FMA>(hi, lo);
    (1.0 + pm, s1, s2)
}

/// [`exp_parts`] with `p - 1` instead of `p`: `exp(hi + lo) = ((1 + pm) * s1) * s2`, which
/// lets a caller fold the `1 + pm` into a fused multiply-add with one rounding.
#[inline(always)]
fn exp_parts_m1<const FMA: bool>(hi: f32, lo: f32) -> (f32, f32, f32) {
    // NaN-preserving clamp.
    let x = if hi > EXP_MAX_ARG { EXP_MAX_ARG } else { hi };
    let x = if x < EXP_MIN_ARG { EXP_MIN_ARG } else { x };
    let t = madd_f32::<FMA>(x, std::f32::consts::LOG2_E, ROUND_MAGIC_F32);
    let nf = t - ROUND_MAGIC_F32;
    let n = (t.to_bits() as i32).wrapping_sub(ROUND_MAGIC_F32_BITS);
    let r = madd_f32::<FMA>(-nf, LN2_HI_F32, x);
    let r = madd_f32::<FMA>(-nf, LN2_LO_F32, r) + lo;
    let q = horner_f32::<FMA, 5>(r, &EXP_Q);
    let pm = madd_f32::<FMA>(r * r, q, r);
    // Below the range the result is exactly 0 (and `m * exp` is a signed 0, or NaN for
    // infinite m); NaN stays NaN.
    let pm = if hi < EXP_MIN_ARG { -1.0 } else { pm };
    // n in [-162, 128]; both halves stay in the normal exponent range.
    let n1 = n >> 1;
    let n2 = n.wrapping_sub(n1);
    (pm, pow2i_f32(n1), pow2i_f32(n2))
}

#[inline(always)]
fn exp_scalar<const FMA: bool>(x: f32) -> f32 {
    // Adding -0.0 is an exact no-op that the compiler removes.
    let (p, s1, s2) = exp_parts::<FMA>(x, -0.0);
    p * s1 * s2
}

#[inline(always)]
fn log_scalar<const FMA: bool>(x: f32) -> f32 {
    // Scale subnormals into the normal range.
    let sub = x < f32::MIN_POSITIVE;
    let xs = if sub { x * 8_388_608.0 } else { x };
    let kadj: i32 = if sub { -23 } else { 0 };
    // Split x = 2^k * m with m in [sqrt(1/2), sqrt(2)).
    let ix = xs.to_bits().wrapping_add(0x3f80_0000 - 0x3f35_04f3);
    let k = ((ix >> 23) as i32).wrapping_sub(127).wrapping_add(kadj);
    let m = f32::from_bits((ix & 0x007f_ffff).wrapping_add(0x3f35_04f3));
    let f = m - 1.0;
    // log(1 + f) = f - hfsq + s (hfsq + R), s = f / (2 + f); every error lands in a term that
    // is small compared with f.
    let s = f / (2.0 + f);
    let z = s * s;
    let r = z * horner_f32::<FMA, 4>(z, &LOG_R);
    let hfsq = 0.5 * f * f;
    let kf = k as f32;
    let tail = madd_f32::<FMA>(s, hfsq + r, kf * LN2_LO_F32);
    let res = madd_f32::<FMA>(kf, LN2_HI_F32, f - (hfsq - tail));
    // Special values: log(+0/-0) = -inf, log(x < 0) = NaN, log(NaN) = NaN, log(+inf) = +inf.
    let res = if x > 0.0 { res } else { f32::NAN };
    let res = if x == 0.0 { f32::NEG_INFINITY } else { res };
    if x == f32::INFINITY {
        x
    } else {
        res
    }
}

#[inline(always)]
fn tanh_scalar<const FMA: bool>(x: f32) -> f32 {
    let a = x.abs();
    let z = a * a;
    let small = madd_f32::<FMA>(a * z, horner_f32::<FMA, 5>(z, &TANH_P), a);
    let e = exp_scalar::<FMA>(2.0 * a);
    let large = 1.0 - 2.0 / (e + 1.0);
    let r = if a < TANH_SMALL { small } else { large };
    r.copysign(x)
}

#[inline(always)]
fn sigmoid_scalar<const FMA: bool>(x: f32) -> f32 {
    // e = exp(-|x|) never overflows; x >= 0: 1/(1+e), x < 0: e/(1+e).
    let e = exp_scalar::<FMA>(-x.abs());
    let num = if x >= 0.0 { 1.0 } else { e };
    num / (1.0 + e)
}

#[inline(always)]
fn silu_scalar<const FMA: bool>(x: f32) -> f32 {
    // x >= 0: x / (1 + e); x < 0: x e / (1 + e), with x e rounded once (it can be normal
    // while e is subnormal).
    let (p, s1, s2) = exp_parts::<FMA>(-x.abs(), -0.0);
    let e = p * s1 * s2;
    let num = if x >= 0.0 { x } else { x * p * s1 * s2 };
    num / (1.0 + e)
}

#[inline(always)]
fn gelu_tanh_scalar<const FMA: bool>(x: f32) -> f32 {
    // 0.5 x (1 + tanh(y)) = x * sigmoid(2y), y = sqrt(2/pi) (x + 0.044715 x^3). The argument
    // is formed in f64 and handed to exp as hi + lo so that the far tail stays accurate.
    let xd = x as f64;
    let v = GELU_TANH_2K * madd_f64::<FMA>(GELU_TANH_C * xd, xd * xd, xd);
    let na = -v.abs();
    // Clamp (keeping NaN) so that the hi/lo split stays finite; exp(-200) is 0 anyway.
    let na = if na < -200.0 { -200.0 } else { na };
    let hi = na as f32;
    let lo = (na - hi as f64) as f32;
    let (p, s1, s2) = exp_parts::<FMA>(hi, lo);
    let e = p * s1 * s2;
    let num = if x >= 0.0 { x } else { x * p * s1 * s2 };
    num / (1.0 + e)
}

/// `exp(a)` in f64 for `a` in about [-700, 700] (relative error ~1.5e-12).
#[inline(always)]
fn exp_f64_core<const FMA: bool>(a: f64) -> f64 {
    let t = madd_f64::<FMA>(a, std::f64::consts::LOG2_E, ROUND_MAGIC_F64);
    let nf = t - ROUND_MAGIC_F64;
    let r = madd_f64::<FMA>(-nf, LN2_HI_F64, a);
    let r = madd_f64::<FMA>(-nf, LN2_LO_F64, r);
    let q = estrin_f64::<FMA, 7>(r, &EXP_F64_Q);
    let p = 1.0 + madd_f64::<FMA>(r * r, q, r);
    // t's low bits hold n; (n + 1023) << 52 is 2^n.
    let scale = t
        .to_bits()
        .wrapping_sub(ROUND_MAGIC_F64_BITS)
        .wrapping_add(1023)
        << 52;
    p * f64::from_bits(scale)
}

/// `erfc(v)` for `v >= 0` (or NaN), relative error ~3e-9.
#[inline(always)]
fn erfc_pos_f64<const FMA: bool>(v: f64) -> f64 {
    let vc = if v > ERFC_MAX_ARG { ERFC_MAX_ARG } else { v };
    let t = 2.0 / (2.0 + vc);
    let p = estrin_f64::<FMA, 12>(t - ERFC_CENTER, &ERFC_P);
    let r = t * exp_f64_core::<FMA>(madd_f64::<FMA>(-vc, vc, p));
    if v > ERFC_MAX_ARG {
        0.0
    } else {
        r
    }
}

#[inline(always)]
fn erf_scalar<const FMA: bool>(x: f32) -> f32 {
    let a = (x as f64).abs();
    let z = a * a;
    // erf(a) = 2/sqrt(pi) (a - a^3/3 + a^5/10 - a^7/42 + a^9/216 - ...)
    let series = madd_f64::<FMA>(z, 1.0 / 216.0, -1.0 / 42.0);
    let series = madd_f64::<FMA>(z, series, 0.1);
    let series = madd_f64::<FMA>(z, series, -1.0 / 3.0);
    let small = FRAC_2_SQRT_PI * madd_f64::<FMA>(a * z, series, a);
    let large = 1.0 - erfc_pos_f64::<FMA>(a);
    let r = if a < ERF_SMALL { small } else { large };
    (r as f32).copysign(x)
}

#[inline(always)]
fn gelu_scalar<const FMA: bool>(x: f32) -> f32 {
    // gelu(x) = x Phi(x); with a = |x|: x >= 0 -> x (1 - Phi(-a)), x < 0 -> x Phi(-a), and
    // Phi(-a) = t exp(-a^2/2 + Q(t)), t = C / (C + a). Everything that the relative error of
    // Phi(-a) is sensitive to is carried exactly or compensated: a^2/2 as hi + lo
    // (two-product; the halving is exact), the rounding of t (from C + a and the division)
    // and of x t as first-order corrections, and `exp` is applied as `m + m (p - 1)`.
    let a = x.abs();
    // NaN-preserving clamp.
    let ac = if a > GELU_MAX_ARG { GELU_MAX_ARG } else { a };
    let d = GELU_C + ac;
    let d_err = two_sum_err_f32(GELU_C, ac, d);
    let t = GELU_C / d;
    let td = t * d;
    // C - t d exactly (C - td is exact by Sterbenz's lemma).
    let rho = (GELU_C - td) - two_prod_err_f32::<FMA>(t, d, td);
    // C / (d + d_err) = t (1 + delta) to first order.
    let delta = (rho - d_err * t) * (1.0 / GELU_C);
    let q = horner_f32::<FMA, 13>(t - GELU_CENTER, &GELU_Q);
    let sq = ac * ac;
    let sq_err = two_prod_err_f32::<FMA>(ac, ac, sq);
    let hi = -0.5 * sq;
    let h = hi + q;
    // The tiny terms join the exact rounding error of hi + q.
    let l = two_sum_err_f32(hi, q, h) + madd_f32::<FMA>(GELU_T_SENS, delta, -0.5 * sq_err);
    let (pm, s1, s2) = exp_parts_m1::<FMA>(h, l);
    // Beyond the range Phi(-a) is 0 (x Phi(-a) would round to 0; x = -inf gives NaN).
    let beyond = a > GELU_MAX_ARG;
    let pos = x * (1.0 - madd_f32::<FMA>(t, pm, t) * s1 * s2);
    // x t (1 + pm) with x t = m + m_err exactly, scaled last so that gradual underflow rounds
    // once (see `exp_parts`).
    let m = x * t;
    let m_err = two_prod_err_f32::<FMA>(x, t, m);
    let neg = (m + madd_f32::<FMA>(m, pm, m_err)) * s1 * s2;
    let neg = if beyond { x * 0.0 } else { neg };
    // NaN takes the `neg` path and stays NaN.
    if x >= 0.0 {
        pos
    } else {
        neg
    }
}

/// `sin(x + offset * pi/2)` for |x| <= [`TRIG_MAX_ARG`] (garbage, not UB, outside).
#[inline(always)]
fn sin_quadrant<const FMA: bool>(x: f32, offset: u64) -> f32 {
    let xd = x as f64;
    let t = madd_f64::<FMA>(xd, FRAC_2_PI, ROUND_MAGIC_F64);
    let k = t - ROUND_MAGIC_F64;
    // The low bits of t hold k (two's complement), so q & 3 is the quadrant.
    let q = t.to_bits().wrapping_add(offset);
    let r = madd_f64::<FMA>(-k, PIO2_HI, xd);
    let r = madd_f64::<FMA>(-k, PIO2_LO, r);
    let z = r * r;
    let s = madd_f64::<FMA>(r * z, horner_f64::<FMA, 5>(z, &SIN_S), r);
    let c = madd_f64::<FMA>(
        z,
        madd_f64::<FMA>(z, horner_f64::<FMA, 4>(z, &COS_C), -0.5),
        1.0,
    );
    let v = if q & 1 == 0 { s } else { c };
    let v = f64::from_bits(v.to_bits() ^ ((q & 2) << 62)) as f32;
    // sin(-0) = -0 (the polynomial would give +0); cos(±0) = 1 either way.
    if x == 0.0 && offset == 0 {
        x
    } else {
        v
    }
}

/// Applies `sin_quadrant` to a chunk, falling back to `std` per element when the chunk holds
/// any |x| > [`TRIG_MAX_ARG`], inf or NaN.
#[inline(always)]
fn trig_body<const FMA: bool>(x: &mut [f32], offset: u64, fallback: fn(f32) -> f32) {
    let limit_bits = TRIG_MAX_ARG.to_bits();
    for chunk in x.chunks_mut(256) {
        let max_abs_bits = chunk
            .iter()
            .fold(0u32, |m, v| m.max(v.to_bits() & 0x7fff_ffff));
        if max_abs_bits <= limit_bits {
            for v in chunk.iter_mut() {
                *v = sin_quadrant::<FMA>(*v, offset);
            }
        } else {
            for v in chunk.iter_mut() {
                *v = if v.abs() <= TRIG_MAX_ARG {
                    sin_quadrant::<FMA>(*v, offset)
                } else {
                    fallback(*v)
                };
            }
        }
    }
}

#[inline(always)]
fn sin_body<const FMA: bool>(x: &mut [f32]) {
    trig_body::<FMA>(x, 0, f32::sin);
}

#[inline(always)]
fn cos_body<const FMA: bool>(x: &mut [f32]) {
    trig_body::<FMA>(x, 1, f32::cos);
}

// -------------------------------------------------------------------------------------------
// Public f32 API
// -------------------------------------------------------------------------------------------

/// Defines a vectorized in-place f32 map from a scalar function.
macro_rules! unary_f32 {
    ($(#[$attr:meta])* $vis:vis $name:ident, $body:ident, $scalar:ident) => {
        #[inline(always)]
        fn $body<const FMA: bool>(x: &mut [f32]) {
            // Blocks of 16 give the out-of-order core two independent vectors (four for the
            // f64-lane functions) per iteration to overlap long polynomial chains.
            let mut blocks = x.chunks_exact_mut(16);
            for b in &mut blocks {
                for v in b.iter_mut() {
                    *v = $scalar::<FMA>(*v);
                }
            }
            for v in blocks.into_remainder() {
                *v = $scalar::<FMA>(*v);
            }
        }
        multiversion! {
            $(#[$attr])*
            $vis fn $name(x: &mut [f32]) = $body;
        }
    };
}

unary_f32!(
    /// `x = exp(x)` in place (overflow gives `inf`, underflow is gradual down to 0, NaN
    /// propagates).
    pub exp_f32, exp_body, exp_scalar
);
unary_f32!(
    /// `x = ln(x)` in place (`ln(0) = -inf`, `ln(x < 0) = NaN`, subnormals handled).
    pub log_f32, log_body, log_scalar
);
unary_f32!(
    /// `x = tanh(x)` in place (saturates to ±1, keeps the sign of zero).
    pub tanh_f32, tanh_body, tanh_scalar
);
unary_f32!(
    /// `x = 1 / (1 + exp(-x))` in place, accurate in both tails.
    pub sigmoid_f32, sigmoid_body, sigmoid_scalar
);
unary_f32!(
    /// `x = x * sigmoid(x)` (SiLU / swish) in place. `silu(-inf)` is NaN, as in PyTorch.
    pub silu_f32, silu_body, silu_scalar
);
unary_f32!(
    /// The portable (baseline / AVX2+FMA) exact GELU behind [`gelu_f32`].
    gelu_portable_f32, gelu_body, gelu_scalar
);

/// `x = 0.5 x (1 + erf(x / sqrt 2))` in place: exact GELU, PyTorch's default
/// (`approximate="none"`). Accurate (relative) in the far negative tail too. Uses a
/// dedicated AVX-512 kernel where available (same accuracy contract, different rounding).
pub fn gelu_f32(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::simd::has_avx512() {
        // SAFETY: the running CPU supports AVX-512 F/VL/BW/DQ (checked just above).
        unsafe { super::gelu_avx512::gelu_avx512(x) };
        return;
    }
    gelu_portable_f32(x);
}
unary_f32!(
    /// `x = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` in place: GELU with
    /// `approximate="tanh"`, evaluated as `x * sigmoid(2y)` so that the tail does not cancel.
    pub gelu_tanh_f32, gelu_tanh_body, gelu_tanh_scalar
);
unary_f32!(
    /// `x = erf(x)` in place.
    pub erf_f32, erf_body, erf_scalar
);

multiversion! {
    /// `x = sin(x)` in place (vectorized for |x| <= 1e5, `std` beyond).
    pub fn sin_f32(x: &mut [f32]) = sin_body;
}

multiversion! {
    /// `x = cos(x)` in place (vectorized for |x| <= 1e5, `std` beyond).
    pub fn cos_f32(x: &mut [f32]) = cos_body;
}

// -------------------------------------------------------------------------------------------
// Public f64 API (plain loops over std / libm)
// -------------------------------------------------------------------------------------------

/// `x = exp(x)` in place.
pub fn exp_f64(x: &mut [f64]) {
    x.iter_mut().for_each(|v| *v = v.exp());
}

/// `x = ln(x)` in place.
pub fn log_f64(x: &mut [f64]) {
    x.iter_mut().for_each(|v| *v = v.ln());
}

/// `x = tanh(x)` in place.
pub fn tanh_f64(x: &mut [f64]) {
    x.iter_mut().for_each(|v| *v = v.tanh());
}

#[inline]
fn sigmoid_f64_scalar(x: f64) -> f64 {
    let e = (-x.abs()).exp();
    let num = if x >= 0.0 { 1.0 } else { e };
    num / (1.0 + e)
}

/// `x = 1 / (1 + exp(-x))` in place, accurate in both tails.
pub fn sigmoid_f64(x: &mut [f64]) {
    x.iter_mut().for_each(|v| *v = sigmoid_f64_scalar(*v));
}

/// `x = x * sigmoid(x)` in place.
pub fn silu_f64(x: &mut [f64]) {
    x.iter_mut().for_each(|v| {
        let e = (-v.abs()).exp();
        let num = if *v >= 0.0 { *v } else { *v * e };
        *v = num / (1.0 + e);
    });
}

/// `x = 0.5 x (1 + erf(x / sqrt 2))` in place (computed as `0.5 x erfc(-x / sqrt 2)`).
pub fn gelu_f64(x: &mut [f64]) {
    x.iter_mut()
        .for_each(|v| *v = 0.5 * *v * libm::erfc(-*v * FRAC_1_SQRT_2));
}

/// `x = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` in place (as `x * sigmoid(2y)`).
pub fn gelu_tanh_f64(x: &mut [f64]) {
    x.iter_mut().for_each(|v| {
        let two_y = GELU_TANH_2K * (*v + GELU_TANH_C * *v * *v * *v);
        *v *= sigmoid_f64_scalar(two_y);
    });
}

/// `x = erf(x)` in place.
pub fn erf_f64(x: &mut [f64]) {
    x.iter_mut().for_each(|v| *v = libm::erf(*v));
}

/// `x = sin(x)` in place.
pub fn sin_f64(x: &mut [f64]) {
    x.iter_mut().for_each(|v| *v = v.sin());
}

/// `x = cos(x)` in place.
pub fn cos_f64(x: &mut [f64]) {
    x.iter_mut().for_each(|v| *v = v.cos());
}

#[cfg(test)]
mod tests {
    use super::*;

    type Body = fn(&mut [f32]);

    struct Case {
        name: &'static str,
        api: Body,
        plain: Body,
        fused: Body,
        reference: fn(f64) -> f64,
        lo: f32,
        hi: f32,
    }

    fn ref_sigmoid(x: f64) -> f64 {
        sigmoid_f64_scalar(x)
    }
    fn ref_silu(x: f64) -> f64 {
        x * sigmoid_f64_scalar(x)
    }
    fn ref_gelu(x: f64) -> f64 {
        0.5 * x * libm::erfc(-x * FRAC_1_SQRT_2)
    }
    fn ref_gelu_tanh(x: f64) -> f64 {
        x * sigmoid_f64_scalar(GELU_TANH_2K * (x + GELU_TANH_C * x * x * x))
    }

    fn cases() -> Vec<Case> {
        vec![
            Case {
                name: "exp",
                api: exp_f32,
                plain: exp_body::<false>,
                fused: exp_body::<true>,
                reference: f64::exp,
                lo: -110.0,
                hi: 95.0,
            },
            Case {
                name: "log",
                api: log_f32,
                plain: log_body::<false>,
                fused: log_body::<true>,
                reference: f64::ln,
                lo: 0.0,
                hi: 1e38,
            },
            Case {
                name: "tanh",
                api: tanh_f32,
                plain: tanh_body::<false>,
                fused: tanh_body::<true>,
                reference: f64::tanh,
                lo: -20.0,
                hi: 20.0,
            },
            Case {
                name: "sigmoid",
                api: sigmoid_f32,
                plain: sigmoid_body::<false>,
                fused: sigmoid_body::<true>,
                reference: ref_sigmoid,
                lo: -110.0,
                hi: 110.0,
            },
            Case {
                name: "silu",
                api: silu_f32,
                plain: silu_body::<false>,
                fused: silu_body::<true>,
                reference: ref_silu,
                lo: -110.0,
                hi: 110.0,
            },
            Case {
                name: "gelu",
                api: gelu_f32,
                plain: gelu_body::<false>,
                fused: gelu_body::<true>,
                reference: ref_gelu,
                lo: -20.0,
                hi: 20.0,
            },
            Case {
                name: "gelu_tanh",
                api: gelu_tanh_f32,
                plain: gelu_tanh_body::<false>,
                fused: gelu_tanh_body::<true>,
                reference: ref_gelu_tanh,
                lo: -20.0,
                hi: 20.0,
            },
            Case {
                name: "erf",
                api: erf_f32,
                plain: erf_body::<false>,
                fused: erf_body::<true>,
                reference: libm::erf,
                lo: -6.0,
                hi: 6.0,
            },
            Case {
                name: "sin",
                api: sin_f32,
                plain: sin_body::<false>,
                fused: sin_body::<true>,
                reference: f64::sin,
                lo: -1e5,
                hi: 1e5,
            },
            Case {
                name: "cos",
                api: cos_f32,
                plain: cos_body::<false>,
                fused: cos_body::<true>,
                reference: f64::cos,
                lo: -1e5,
                hi: 1e5,
            },
        ]
    }

    /// Small deterministic PRNG (xorshift64*).
    struct Rng(u64);
    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn uniform(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Inputs: a uniform grid, random uniform values, random magnitudes (log-uniform), small
    /// values near zero, all restricted to [lo, hi].
    fn inputs(lo: f32, hi: f32) -> Vec<f32> {
        let mut out = Vec::new();
        let n = 200_000;
        for i in 0..=n {
            out.push(lo + (hi - lo) * (i as f32 / n as f32));
        }
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..200_000 {
            out.push(lo + (hi - lo) * rng.uniform() as f32);
            // log-uniform magnitude in [1e-30, max(|lo|, |hi|)], random sign.
            let m = lo.abs().max(hi.abs()) as f64;
            let mag = (1e-30f64.ln() + (m.ln() - 1e-30f64.ln()) * rng.uniform()).exp() as f32;
            let v = if rng.next_u64() & 1 == 0 { mag } else { -mag };
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
        out
    }

    /// Max relative error over `xs` (results whose reference is subnormal are checked with an
    /// absolute tolerance of 2 smallest subnormals instead).
    fn max_rel_err(xs: &[f32], ys: &[f32], reference: fn(f64) -> f64, name: &str) -> f64 {
        let mut worst = 0.0f64;
        for (&x, &y) in xs.iter().zip(ys) {
            let r = reference(x as f64);
            if r.is_nan() {
                assert!(y.is_nan(), "{name}({x:e}) = {y:e}, expected NaN");
                continue;
            }
            if r.is_infinite() || r.abs() > f32::MAX as f64 {
                assert_eq!(
                    y as f64,
                    r.signum() * f64::INFINITY,
                    "{name}({x:e}) = {y:e}"
                );
                continue;
            }
            if r.abs() < f32::MIN_POSITIVE as f64 {
                let tol = 2.0 * f32::from_bits(1) as f64;
                assert!(
                    (y as f64 - r).abs() <= tol,
                    "{name}({x:e}) = {y:e}, expected {r:e}"
                );
                continue;
            }
            let e = (y as f64 - r).abs() / r.abs();
            if e > worst {
                worst = e;
            }
            assert!(
                e <= 4e-7,
                "{name}({x:e}) = {y:e}, expected {r:e} (rel err {e:e})"
            );
        }
        worst
    }

    #[test]
    fn accuracy_against_f64_reference() {
        for c in cases() {
            let xs = inputs(c.lo, c.hi);
            for (variant, f) in [("api", c.api), ("plain", c.plain), ("fused", c.fused)] {
                let mut ys = xs.clone();
                f(&mut ys);
                let worst = max_rel_err(&xs, &ys, c.reference, c.name);
                eprintln!("{:>10} {:>6}: max rel err {:.3e}", c.name, variant, worst);
            }
        }
    }

    #[test]
    fn chunk_lengths_and_tails() {
        // Every length from 0 to 70 (vector remainders) gives the same as element-wise calls.
        for c in cases() {
            for len in 0..70 {
                let xs: Vec<f32> = (0..len).map(|i| (i as f32 - 30.0) * 0.37).collect();
                let mut ys = xs.clone();
                (c.api)(&mut ys);
                for (x, y) in xs.iter().zip(&ys) {
                    let mut one = [*x];
                    (c.api)(&mut one);
                    assert_eq!(one[0].to_bits(), y.to_bits(), "{} len {len}", c.name);
                }
            }
        }
    }

    #[test]
    fn gelu_lanes_are_independent() {
        // Vectors that mix tail lanes (subnormal or zero results, which the AVX-512 kernel
        // evaluates apart) with ordinary and special ones give every lane the value it gets
        // alone, and stay accurate.
        let specials = [
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MAX,
            -f32::MAX,
            1e-40,
            -1e-40,
            -1e30,
        ];
        let mut rng = Rng(0x5EED_1234_ABCD_0001);
        let xs: Vec<f32> = (0..40_000)
            .map(|i| match i % 4 {
                0 => specials[(rng.next_u64() % specials.len() as u64) as usize],
                1 => (-12.5 - 2.5 * rng.uniform()) as f32,
                _ => (40.0 * rng.uniform() - 20.0) as f32,
            })
            .collect();
        let mut ys = xs.clone();
        gelu_f32(&mut ys);
        for (x, y) in xs.iter().zip(&ys) {
            let mut one = [*x];
            gelu_f32(&mut one);
            assert!(
                one[0].to_bits() == y.to_bits() || (one[0].is_nan() && y.is_nan()),
                "gelu({x:e}) = {y:e} in a vector, {:e} alone",
                one[0]
            );
        }
        max_rel_err(&xs, &ys, ref_gelu, "gelu");
    }

    fn apply(f: Body, x: f32) -> f32 {
        let mut v = [x];
        f(&mut v);
        v[0]
    }

    #[test]
    fn special_values() {
        let inf = f32::INFINITY;
        let nan = f32::NAN;
        for c in cases() {
            for f in [c.api, c.plain, c.fused] {
                assert!(apply(f, nan).is_nan(), "{}(NaN)", c.name);
            }
        }
        for f in [exp_f32 as Body, exp_body::<false>, exp_body::<true>] {
            assert_eq!(apply(f, inf), inf);
            assert_eq!(apply(f, -inf), 0.0);
            assert_eq!(apply(f, 88.8), inf);
            assert_eq!(apply(f, -105.0), 0.0);
            assert_eq!(apply(f, 0.0), 1.0);
            assert_eq!(apply(f, -0.0), 1.0);
            assert_eq!(apply(f, 1.0), std::f32::consts::E);
            // Gradual underflow: exp(-100) is subnormal.
            let y = apply(f, -100.0);
            assert!(y > 0.0 && y < f32::MIN_POSITIVE);
            assert!(apply(f, 88.72).is_finite());
        }
        for f in [log_f32 as Body, log_body::<false>, log_body::<true>] {
            assert_eq!(apply(f, 0.0), -inf);
            assert_eq!(apply(f, -0.0), -inf);
            assert!(apply(f, -1.0).is_nan());
            assert!(apply(f, -inf).is_nan());
            assert_eq!(apply(f, inf), inf);
            assert_eq!(apply(f, 1.0), 0.0);
            assert_eq!(apply(f, 2.0), std::f32::consts::LN_2);
            let tiny = f32::from_bits(1);
            assert!((apply(f, tiny) as f64 - (tiny as f64).ln()).abs() < 1e-5);
            assert!((apply(f, f32::MAX) as f64 - (f32::MAX as f64).ln()).abs() < 1e-5);
        }
        for f in [tanh_f32 as Body, tanh_body::<false>, tanh_body::<true>] {
            assert_eq!(apply(f, inf), 1.0);
            assert_eq!(apply(f, -inf), -1.0);
            assert_eq!(apply(f, 30.0), 1.0);
            assert_eq!(apply(f, -30.0), -1.0);
            assert_eq!(apply(f, 0.0).to_bits(), 0.0f32.to_bits());
            assert_eq!(apply(f, -0.0).to_bits(), (-0.0f32).to_bits());
            assert_eq!(apply(f, 1e-30), 1e-30);
        }
        for f in [
            sigmoid_f32 as Body,
            sigmoid_body::<false>,
            sigmoid_body::<true>,
        ] {
            assert_eq!(apply(f, inf), 1.0);
            assert_eq!(apply(f, -inf), 0.0);
            assert_eq!(apply(f, 50.0), 1.0);
            assert_eq!(apply(f, -200.0), 0.0);
            assert_eq!(apply(f, 0.0), 0.5);
        }
        for f in [silu_f32 as Body, silu_body::<false>, silu_body::<true>] {
            assert_eq!(apply(f, inf), inf);
            assert!(apply(f, -inf).is_nan());
            assert_eq!(apply(f, 0.0), 0.0);
            assert_eq!(apply(f, 100.0), 100.0);
        }
        for f in [gelu_f32 as Body, gelu_body::<false>, gelu_body::<true>] {
            assert_eq!(apply(f, inf), inf);
            assert!(apply(f, -inf).is_nan());
            assert_eq!(apply(f, 0.0), 0.0);
            assert_eq!(apply(f, 30.0), 30.0);
            assert_eq!(apply(f, -30.0), 0.0);
            assert_eq!(apply(f, -1e30), 0.0);
            // Signs of zero results, the largest finite values, signalling NaN.
            let neg_zero = (-0.0f32).to_bits();
            assert_eq!(apply(f, -0.0).to_bits(), neg_zero);
            assert_eq!(apply(f, -f32::from_bits(1)).to_bits(), neg_zero);
            assert_eq!(apply(f, -30.0).to_bits(), neg_zero);
            assert_eq!(apply(f, -f32::MAX).to_bits(), neg_zero);
            assert_eq!(apply(f, f32::MAX), f32::MAX);
            assert!(apply(f, f32::from_bits(0x7f80_0001)).is_nan());
            assert!(apply(f, -nan).is_nan());
            // Subnormal result (gelu(-13.5) = -1.06e-40), to within 2 of its units.
            let r = ref_gelu(-13.5);
            assert!((apply(f, -13.5) as f64 - r).abs() <= 2.0 * f32::from_bits(1) as f64);
        }
        for f in [
            gelu_tanh_f32 as Body,
            gelu_tanh_body::<false>,
            gelu_tanh_body::<true>,
        ] {
            assert_eq!(apply(f, inf), inf);
            assert_eq!(apply(f, 0.0), 0.0);
            assert_eq!(apply(f, 30.0), 30.0);
            assert_eq!(apply(f, -30.0), 0.0);
        }
        for f in [erf_f32 as Body, erf_body::<false>, erf_body::<true>] {
            assert_eq!(apply(f, inf), 1.0);
            assert_eq!(apply(f, -inf), -1.0);
            assert_eq!(apply(f, 5.0), 1.0);
            assert_eq!(apply(f, -0.0).to_bits(), (-0.0f32).to_bits());
            assert_eq!(apply(f, 1e-30), (1e-30f64 * FRAC_2_SQRT_PI) as f32);
        }
        for f in [sin_f32 as Body, sin_body::<false>, sin_body::<true>] {
            assert!(apply(f, inf).is_nan());
            assert!(apply(f, -inf).is_nan());
            assert_eq!(apply(f, -0.0).to_bits(), (-0.0f32).to_bits());
            assert_eq!(apply(f, 1e30), 1e30f32.sin());
            assert_eq!(apply(f, 3e5), 3e5f32.sin());
        }
        for f in [cos_f32 as Body, cos_body::<false>, cos_body::<true>] {
            assert!(apply(f, inf).is_nan());
            assert_eq!(apply(f, 0.0), 1.0);
            assert_eq!(apply(f, -1e30), (-1e30f32).cos());
        }
    }

    #[test]
    fn trig_mixed_chunk_falls_back_per_element() {
        let xs: Vec<f32> = (0..600)
            .map(|i| {
                if i % 97 == 5 {
                    1e9 + i as f32
                } else {
                    i as f32 * 0.1
                }
            })
            .collect();
        let mut s = xs.clone();
        sin_f32(&mut s);
        let mut c = xs.clone();
        cos_f32(&mut c);
        for i in 0..xs.len() {
            let (rs, rc) = ((xs[i] as f64).sin(), (xs[i] as f64).cos());
            assert!(
                (s[i] as f64 - rs).abs() <= 4e-7 * rs.abs().max(1e-30) + 1e-7,
                "sin {}",
                xs[i]
            );
            assert!(
                (c[i] as f64 - rc).abs() <= 4e-7 * rc.abs().max(1e-30) + 1e-7,
                "cos {}",
                xs[i]
            );
        }
    }

    #[test]
    fn f64_versions() {
        let xs = [-3.0f64, -0.5, 0.0, 0.25, 2.0];
        let check = |f: fn(&mut [f64]), r: fn(f64) -> f64| {
            let mut v = xs;
            f(&mut v);
            for (x, y) in xs.iter().zip(v) {
                let e = r(*x);
                assert!(
                    (y - e).abs() <= 1e-15 * e.abs().max(1.0),
                    "{x} -> {y} vs {e}"
                );
            }
        };
        check(exp_f64, f64::exp);
        check(tanh_f64, f64::tanh);
        check(sin_f64, f64::sin);
        check(cos_f64, f64::cos);
        check(erf_f64, libm::erf);
        check(sigmoid_f64, |x| 1.0 / (1.0 + (-x).exp()));
        check(silu_f64, |x| x / (1.0 + (-x).exp()));
        check(gelu_f64, |x| 0.5 * x * (1.0 + libm::erf(x / 2f64.sqrt())));
        check(gelu_tanh_f64, |x| {
            0.5 * x
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
        });
        let mut l = [1.0f64, std::f64::consts::E, 0.0, -1.0];
        log_f64(&mut l);
        assert_eq!(l[0], 0.0);
        assert!((l[1] - 1.0).abs() < 1e-15);
        assert_eq!(l[2], f64::NEG_INFINITY);
        assert!(l[3].is_nan());
        // Known values (mpmath): erf(0.5), gelu(-5) stays relatively accurate.
        let mut e = [0.5f64];
        erf_f64(&mut e);
        assert!((e[0] - 0.520_499_877_813_046_5).abs() < 1e-15);
        let mut g = [-5.0f64];
        gelu_f64(&mut g);
        assert!((g[0] / -1.433_257_859_395_969_6e-6 - 1.0).abs() < 1e-12);
    }

    /// Exhaustive check over every f32 in the tested ranges (slow: run with
    /// `cargo test --release -p pyflame-cpu -- --ignored exhaustive --nocapture`).
    #[test]
    #[ignore]
    fn exhaustive_max_error() {
        use rayon::prelude::*;
        // Optional comma-separated filter, e.g. PYFLAME_EXHAUSTIVE=erf,gelu
        let only = std::env::var("PYFLAME_EXHAUSTIVE").unwrap_or_default();
        for c in cases() {
            if !only.is_empty() && !only.split(',').any(|n| n == c.name) {
                continue;
            }
            for (variant, f) in [("api", c.api), ("plain", c.plain)] {
                let worst = (0u32..=u16::MAX as u32)
                    .into_par_iter()
                    .map(|hi16| {
                        let mut xs: Vec<f32> = (0u32..=u16::MAX as u32)
                            .map(|lo16| f32::from_bits((hi16 << 16) | lo16))
                            .filter(|x| *x >= c.lo && *x <= c.hi)
                            .collect();
                        let orig = xs.clone();
                        f(&mut xs);
                        let mut worst = (0.0f64, 0.0f32);
                        for (x, y) in orig.iter().zip(&xs) {
                            let r = (c.reference)(*x as f64);
                            if r.is_finite()
                                && r.abs() >= f32::MIN_POSITIVE as f64
                                && r.abs() <= f32::MAX as f64
                            {
                                let e = (*y as f64 - r).abs() / r.abs();
                                if e > worst.0 || e.is_nan() {
                                    worst = (e, *x);
                                }
                            }
                        }
                        worst
                    })
                    .reduce(
                        || (0.0, 0.0),
                        |a, b| if b.0 > a.0 || b.0.is_nan() { b } else { a },
                    );
                eprintln!(
                    "{:>10} {:>6}: max rel err {:.3e} at x = {:e} ({} ulp-ish)",
                    c.name,
                    variant,
                    worst.0,
                    worst.1,
                    worst.0 / f32::EPSILON as f64
                );
            }
        }
    }
}
