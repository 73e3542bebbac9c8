"""Fits the tables of the AVX-512 exact-GELU kernel (`gelu_avx512` in
crates/pyflame-cpu/src/kernels/gelu_avx512.rs) and prints them as Rust constants.

The kernel evaluates, with a = min(|x|, ...),

    Phi(-a) = F(a) * exp(-a^2 / 2),    F(a) = Phi(-a) exp(a^2 / 2) = erfcx(a / sqrt 2) / 2,

where F (smooth, 0.5 at 0, ~1 / (a sqrt(2 pi)) for large a) is a degree-6 polynomial in
u = a - CENTER[k] on 32 intervals k = round(2a) of width 1/2 (the kernel fetches the 7
coefficients and the centre with one vpermt2ps each). Each CENTER[k] is an f32 within
~0.01 of k/2 chosen so that F(CENTER[k]) is within ~1e-4 ulp of an f32: the constant term
is then exact and the polynomial's error stays below 4e-9 relative. exp(-a^2/2) =
2^n exp(z/2) with z = -a^2 - 2 n ln 2 in [-ln 2, ln 2], and exp(z/2) = 1 + z Q(z) with
a degree-5 Q (z rather than -z so that z = +0 gives +0 for z Q(z), which keeps the sign of
zero results). All fits are minimax for the relative error (linear programming on
Chebyshev nodes), with the coefficients rounded to f32 one at a time, lowest degree first,
and the remaining ones refitted after each rounding.

Usage (needs numpy and scipy; takes a few seconds):

    python3 scripts/fit_gelu_avx512.py > /tmp/tables.rs

then paste the printed constants over GELU_F_CENTER, GELU_F_POLY and GELU_EXP_Q in gelu_avx512.rs.
The script also prints (to stderr) the fitted errors.
"""

import sys

import numpy as np
from scipy.optimize import linprog
from scipy.special import erfcx

F32 = np.float32
INTERVALS = 32
WIDTH = 0.5
DEGREE = 6
EXP_DEGREE = 5
EXP_Z_MAX = 0.7  # |z| <= ln 2 plus slack for the rounding of n


def phi_tail_ratio(a: np.ndarray | float) -> np.ndarray:
    """F(a) = Phi(-a) exp(a^2/2) in float64."""
    return 0.5 * erfcx(np.asarray(a, dtype=np.float64) / np.sqrt(2.0))


def chebyshev_nodes(lo: float, hi: float, n: int = 600) -> np.ndarray:
    k = np.arange(n)
    mid = (lo + hi) / 2 + (hi - lo) / 2 * np.cos(np.pi * (k + 0.5) / n)
    return np.concatenate([mid, [lo, hi]])


def minimax_relative(basis: np.ndarray, target: np.ndarray, fixed: list) -> np.ndarray:
    """Coefficients c minimising max |(basis @ c) / target - 1| with c[:len(fixed)] fixed.

    Least squares first, then a linear program for the (rescaled) correction, which keeps
    the LP well conditioned when the error is ~1e-9.
    """
    nf = len(fixed)
    base = basis[:, :nf] @ np.asarray(fixed, dtype=np.float64) if nf else 0.0
    a = basis[:, nf:] / target[:, None]
    r = (target - base) / target
    c_ls, *_ = np.linalg.lstsq(a, r, rcond=None)
    r0 = r - a @ c_ls
    scale = 1.0 / max(np.max(np.abs(r0)), 1e-30)
    col = np.max(np.abs(a), axis=0)
    an = a / col
    nfree = an.shape[1]
    ones = np.ones((len(target), 1))
    a_ub = np.vstack([np.hstack([an, -ones]), np.hstack([-an, -ones])])
    b_ub = np.concatenate([r0 * scale, -r0 * scale])
    cost = np.zeros(nfree + 1)
    cost[-1] = 1.0
    sol = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=[(None, None)] * (nfree + 1), method="highs")
    return list(fixed) + list(c_ls + sol.x[:nfree] / col / scale)


def fit_sequential(basis: np.ndarray, target: np.ndarray, first: list) -> np.ndarray:
    """f32 coefficients, rounded one at a time after refitting the rest."""
    fixed = list(first)
    while len(fixed) < basis.shape[1]:
        c = minimax_relative(basis, target, fixed)
        fixed.append(float(F32(c[len(fixed)])))
    return np.asarray(fixed)


def best_center(k: int) -> float:
    """An f32 near k * WIDTH at which F is (almost) exactly an f32."""
    if k == 0:
        return 0.0  # F(0) = 0.5
    bits = np.array([F32(k * WIDTH)]).view(np.int32)[0]
    cand = (bits + np.arange(-20000, 20001)).astype(np.int32).view(F32).astype(np.float64)
    y = phi_tail_ratio(cand)
    y32 = y.astype(F32)
    miss = np.abs(y - y32.astype(np.float64)) / np.spacing(y32).astype(np.float64)
    return float(cand[np.argmin(miss + 1e-3 * np.abs(cand - k * WIDTH))])


def fit_f() -> tuple:
    centers, polys, worst = [], [], 0.0
    for k in range(INTERVALS):
        c = best_center(k)
        lo, hi = max(0.0, (k - 0.52) * WIDTH), (k + 0.52) * WIDTH
        a = chebyshev_nodes(lo, hi)
        basis = np.vander(a - c, DEGREE + 1, increasing=True)
        p = fit_sequential(basis, phi_tail_ratio(a), [float(F32(phi_tail_ratio(c)))])
        aa = np.linspace(lo, hi, 4001)
        err = np.max(np.abs(np.polyval(p[::-1], aa - c) / phi_tail_ratio(aa) - 1))
        worst = max(worst, err)
        centers.append(c)
        polys.append(p)
    print(
        f"F: max relative error {worst:.2e} (f32 coefficients, exact arithmetic)",
        file=sys.stderr,
    )
    return centers, np.array(polys)


def fit_exp() -> np.ndarray:
    z = chebyshev_nodes(-EXP_Z_MAX, EXP_Z_MAX, 800)
    target = np.exp(z / 2)
    # 1 + z Q(z): the constant 1 is fixed, Q's coefficients are the unknowns.
    basis = np.vander(z, EXP_DEGREE + 2, increasing=True)
    q = fit_sequential(basis, target, [1.0])[1:]
    err = np.max(np.abs((1 + z * np.polyval(q[::-1], z)) / target - 1))
    print(f"exp(z/2): max relative error {err:.2e}", file=sys.stderr)
    return q


def rust_f32(v: float) -> str:
    """Shortest round-trip literal, digits grouped by three like the rest of math.rs."""
    f = F32(v)
    if f == 0 or 1e-4 <= abs(f) < 1e7:
        s = np.format_float_positional(f, unique=True, trim="0")
    else:
        s = np.format_float_scientific(f, unique=True, trim="0")
    mant, _, exp = s.partition("e")
    sign = "-" if mant.startswith("-") else ""
    mant = mant.lstrip("-")
    ip, _, fp = mant.partition(".")
    fp = fp or "0"
    fp = "_".join(fp[i : i + 3] for i in range(0, len(fp), 3))
    if len(ip) > 4:
        ip = f"{int(ip):_}"
    out = f"{sign}{ip}.{fp}"
    if exp:
        out += f"e{int(exp)}"
    return out


def main() -> None:
    centers, polys = fit_f()
    q = fit_exp()
    print(f"const GELU_F_CENTER: [f32; {INTERVALS}] = [")
    for c in centers:
        print(f"    {rust_f32(c)},")
    print("];")
    print(f"const GELU_F_POLY: [[f32; {INTERVALS}]; {DEGREE + 1}] = [")
    for j in range(DEGREE + 1):
        print("    [")
        for k in range(INTERVALS):
            print(f"        {rust_f32(polys[k, j])},")
        print("    ],")
    print("];")
    print(f"const GELU_EXP_Q: [f32; {EXP_DEGREE + 1}] = [")
    for v in q:
        print(f"    {rust_f32(v)},")
    print("];")


if __name__ == "__main__":
    main()
