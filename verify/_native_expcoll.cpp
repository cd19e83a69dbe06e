// The whole step loop of exponential collocation in anchored coordinates, for one flow, in double, x86 long
// double and (with SSM_MPFR) MPFR numbers of any precision: the native engine of ssmpoison.verify._native
// (see its module docstring).
//
// Every formula here has its reference in Python, against which the test-suite holds it:
//   forcing()        verify/_anchored.py neg_grad_anchored, plus the split g = f - L (z - y_n)
//                    (verify/_compiled.py _stage_expressions writes the same expression for heyoka);
//   linear_part()    verify/_anchored.py anchored_linear_part (rows: verify/_compiled.py _linear_kernel);
//   weights()        verify/_expcoll.py _monomial_weights and W = I Lc^T, in long double as
//                    verify/_compiled.py _weight_kernel (the same starts and constants);
//   integrate()      verify/_expcoll.py _integrate (Picard iteration, spectral error estimate, step
//                    control, compensated state) with the stopping rules of verify/_flow.py _run;
//   Newton<Mp>, MpWeigh  the multiprecision engine's Newton corrections and real weights
//                    (verify/_compiled.py _RealSweeps, _real_weight_kernel).
// Compiled without contraction of multiply-adds (-ffp-contract=off): every operation rounds once.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <string>
#include <vector>
#ifdef SSM_MPFR
#include <mpfr.h>
#endif

namespace {

using ld = long double;

template <class T> inline T absv(T x) { return x < 0 ? -x : x; }
// In-place operations (the multiprecision type overloads them without temporaries): s += a b (the product
// rounded, then the sum), r = a b, r = a + b, r = a - b, r = 0, and the Horner step q = q x + c.
template <class T> inline void mac(T& s, const T& a, const T& b) { s += a * b; }
template <class T> inline void set_mul(T& r, const T& a, const T& b) { r = a * b; }
template <class T> inline void set_add(T& r, const T& a, const T& b) { r = a + b; }
template <class T> inline void set_sub(T& r, const T& a, const T& b) { r = a - b; }
template <class T> inline void set_zero(T& r) { r = 0; }
template <class T> inline void horner(T& q, const T& x, const T& c) { q = q * x + c; }
inline double todouble(ld x) { return static_cast<double>(x); }
inline double todouble(double x) { return x; }
inline ld sqrtv(ld x) { return sqrtl(x); }
inline double sqrtv(double x) { return std::sqrt(x); }

// The problem: anchored coordinates of one flow (anchor r), c_i b_i = kappa, inputs U (N x H), labels.
template <class T> struct Problem {
  int D, H, N, r;
  T kappa;
  const T* U;       // N * H
  const T* labels;  // N
  const T* gw;      // H - 1: 2 (l + 1) / N
  T scale;          // 2 / N
  // a = T z: a_r = z_r, a_i = z_r + z_i
  void entries(const T* z, T* a) const {
    for (int i = 0; i < D; ++i) a[i] = i == r ? z[r] : z[r] + z[i];
  }
};

// G = f(z) + sum_q mu_q p_q (q_q . (z - y_n)) and VG_q = q_q . G (R = N directions; P, Q rows of D).
// Written with the in-place operations above (set_add, set_mul, horner, mac), each one rounding as the
// expression it stands for: for the multiprecision type they use no temporaries.
template <class T>
void forcing(const Problem<T>& pb, const T* z, const T* yn, const T* mu, const T* P, const T* Q, T* G, T* VG,
             std::vector<T>& work) {
  const int D = pb.D, H = pb.H, N = pb.N, r = pb.r, L = H - 1;
  if (work.size() < static_cast<std::size_t>(D + H + N + 2 * H + D + 3)) work.resize(D + H + N + 2 * H + D + 3);
  T* a = work.data();
  T* K = a + D;
  T* delta = K + H;
  T* gam = delta + N;
  T* coeffs = gam + H;
  T* pw = coeffs + H;  // running powers a_i^j
  T& s = pw[D];
  T& q = pw[D + 1];
  T& tmp = pw[D + 2];
  for (int i = 0; i < D; ++i) {
    if (i == r)
      a[i] = z[r];
    else
      set_add(a[i], z[r], z[i]);
  }
  K[0] = pb.kappa * static_cast<T>(D);
  for (int i = 0; i < D; ++i) pw[i] = a[i];
  for (int j = 1; j < H; ++j) {
    set_zero(s);
    for (int i = 0; i < D; ++i) s += pw[i];
    set_mul(K[j], pb.kappa, s);
    if (j + 1 < H)
      for (int i = 0; i < D; ++i) set_mul(pw[i], pw[i], a[i]);
  }
  for (int n = 0; n < N; ++n) {
    set_zero(s);
    for (int j = 0; j < H; ++j) mac(s, K[j], pb.U[n * H + (H - 1 - j)]);
    set_sub(delta[n], pb.labels[n], s);
  }
  for (int l = 0; l < L; ++l) {
    set_zero(s);
    for (int n = 0; n < N; ++n) mac(s, delta[n], pb.U[n * H + (H - 2 - l)]);
    set_mul(gam[l], s, pb.gw[l]);
  }
  if (L == 0) {
    for (int i = 0; i < D; ++i) set_zero(G[i]);
  } else {
    q = gam[L - 1];
    for (int l = L - 2; l >= 0; --l) horner(q, a[r], gam[l]);  // phi(a_r)
    set_mul(G[r], pb.kappa, q);
    coeffs[L - 1] = gam[L - 1];
    for (int l = L - 2; l >= 1; --l) {
      set_mul(coeffs[l], coeffs[l + 1], a[r]);
      coeffs[l] += gam[l];
    }
    for (int i = 0; i < D; ++i) {
      if (i == r) continue;
      if (L < 2) {
        set_zero(G[i]);
        continue;
      }
      q = coeffs[L - 1];
      for (int l = L - 2; l >= 1; --l) horner(q, a[i], coeffs[l]);
      set_mul(tmp, z[i], q);
      set_mul(G[i], pb.kappa, tmp);
    }
  }
  const int R = N;
  T* QS = work.data() + D;  // K is no longer needed
  for (int k = 0; k < R; ++k) {
    set_zero(s);
    for (int i = 0; i < D; ++i) {
      set_sub(tmp, z[i], yn[i]);
      mac(s, Q[k * D + i], tmp);
    }
    set_mul(QS[k], mu[k], s);
  }
  for (int i = 0; i < D; ++i) {
    set_zero(s);
    for (int k = 0; k < R; ++k) mac(s, QS[k], P[k * D + i]);
    G[i] += s;
  }
  for (int k = 0; k < R; ++k) {
    set_zero(s);
    for (int i = 0; i < D; ++i) mac(s, Q[k * D + i], G[i]);
    VG[k] = s;
  }
}

// The training loss (1/N) sum_n delta_n^2 at a = T z (observe's loss: K_j = sum_i kappa a_i^j).
template <class T> T loss(const Problem<T>& pb, const T* z, std::vector<T>& work) {
  const int D = pb.D, H = pb.H, N = pb.N;
  work.resize(2 * D + H);
  T* a = work.data();
  T* pw = a + D;
  T* K = pw + D;
  pb.entries(z, a);
  for (int i = 0; i < D; ++i) pw[i] = 1;
  for (int j = 0; j < H; ++j) {
    T s = 0;
    for (int i = 0; i < D; ++i) s += pb.kappa * pw[i];
    K[j] = s;
    for (int i = 0; i < D; ++i) pw[i] = pw[i] * a[i];
  }
  T total = 0;
  for (int n = 0; n < N; ++n) {
    T s = 0;
    for (int j = 0; j < H; ++j) s += K[j] * pb.U[n * H + (H - 1 - j)];
    T d = pb.labels[n] - s;
    total += d * d;
  }
  return total / static_cast<T>(N);
}

// Eigenvectors of a symmetric n x n matrix (row-major, double) by cyclic Jacobi rotations, as columns of V,
// in the order of ascending eigenvalues.
void symmetric_eigenvectors(int n, std::vector<double> S, std::vector<double>& V) {
  V.assign(n * n, 0.0);
  for (int i = 0; i < n; ++i) V[i * n + i] = 1.0;
  for (int sweep = 0; sweep < 60; ++sweep) {
    double off = 0.0, diag = 0.0;
    for (int i = 0; i < n; ++i) {
      diag += S[i * n + i] * S[i * n + i];
      for (int j = i + 1; j < n; ++j) off += S[i * n + j] * S[i * n + j];
    }
    if (off == 0.0 || off <= 1e-36 * diag) break;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) {
        double apq = S[p * n + q];
        if (apq == 0.0) continue;
        double theta = (S[q * n + q] - S[p * n + p]) / (2.0 * apq);
        double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1.0));
        double c = 1.0 / std::sqrt(t * t + 1.0), s = t * c;
        for (int k = 0; k < n; ++k) {  // S <- S J (columns p, q)
          double skp = S[k * n + p], skq = S[k * n + q];
          S[k * n + p] = c * skp - s * skq;
          S[k * n + q] = s * skp + c * skq;
        }
        for (int k = 0; k < n; ++k) {  // S <- J^T S (rows p, q)
          double spk = S[p * n + k], sqk = S[q * n + k];
          S[p * n + k] = c * spk - s * sqk;
          S[q * n + k] = s * spk + c * sqk;
        }
        for (int k = 0; k < n; ++k) {
          double vkp = V[k * n + p], vkq = V[k * n + q];
          V[k * n + p] = c * vkp - s * vkq;
          V[k * n + q] = s * vkp + c * vkq;
        }
      }
  }
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return S[x * n + x] < S[y * n + y]; });
  std::vector<double> sorted(n * n);
  for (int k = 0; k < n; ++k)
    for (int c = 0; c < n; ++c) sorted[k * n + c] = V[k * n + order[c]];
  V.swap(sorted);
}

// The frozen stiff part -scale T^{-1} G^T G T = -sum_q mu_q p_q q_q^T at z: mu (R), P, Q (R x D), R = N.
template <class T> void linear_part(const Problem<T>& pb, const T* z, T* mu, T* P, T* Q) {
  const int D = pb.D, H = pb.H, N = pb.N, r = pb.r, L = H - 1;
  std::vector<T> a(D), G(N * D), Pn(N * D), Qn(N * D), c(std::max(L, 1)), b(std::max(L, 1));
  pb.entries(z, a.data());
  for (int n = 0; n < N; ++n) {
    for (int l = 0; l < L; ++l) c[l] = pb.U[n * H + (H - 2 - l)] * static_cast<T>(l + 1);  // p_n'
    if (L == 0) c[0] = 0;
    const int Lc = std::max(L, 1);
    for (int i = 0; i < D; ++i) {
      T q = c[Lc - 1];
      for (int l = Lc - 2; l >= 0; --l) q = q * a[i] + c[l];
      G[n * D + i] = pb.kappa * q;
    }
    if (Lc >= 2) {
      b[Lc - 1] = c[Lc - 1];
      for (int l = Lc - 2; l >= 1; --l) b[l] = b[l + 1] * a[r] + c[l];
    }
    T sum = 0;
    for (int i = 0; i < D; ++i) sum += G[n * D + i];
    for (int i = 0; i < D; ++i) {
      if (i == r) {
        Pn[n * D + i] = G[n * D + i];
        Qn[n * D + i] = sum;
        continue;
      }
      Qn[n * D + i] = G[n * D + i];
      if (Lc < 2) {
        Pn[n * D + i] = 0;
        continue;
      }
      T q = b[Lc - 1];
      for (int l = Lc - 2; l >= 1; --l) q = q * a[i] + b[l];
      Pn[n * D + i] = pb.kappa * (z[i] * q);
    }
  }
  std::vector<double> S(N * N), W;
  const double s64 = todouble(pb.scale);
  for (int n = 0; n < N; ++n)
    for (int m = 0; m < N; ++m) {
      double s = 0.0;
      for (int i = 0; i < D; ++i) s += todouble(G[n * D + i]) * todouble(G[m * D + i]);
      S[n * N + m] = s64 * s;
    }
  symmetric_eigenvectors(N, S, W);
  const int R = N;
  for (int q = 0; q < R; ++q)
    for (int i = 0; i < D; ++i) {
      T sp = 0, sq = 0;
      for (int n = 0; n < N; ++n) {
        T w = static_cast<T>(W[n * N + q]);
        sp += w * Pn[n * D + i];
        sq += w * Qn[n * D + i];
      }
      P[q * D + i] = sp;
      Q[q * D + i] = sq;
    }
  // Gram-Schmidt for the pair: q_k . p_s = delta_ks
  for (int k = 0; k < R; ++k) {
    T* p = P + k * D;
    T* q = Q + k * D;
    for (int s = 0; s < k; ++s) {
      const T* pp = P + s * D;
      const T* qq = Q + s * D;
      T dp = 0, dq = 0;
      for (int i = 0; i < D; ++i) dp += qq[i] * p[i];
      for (int i = 0; i < D; ++i) p[i] = p[i] - dp * pp[i];
      for (int i = 0; i < D; ++i) dq += pp[i] * q[i];
      for (int i = 0; i < D; ++i) q[i] = q[i] - dq * qq[i];
    }
    T n2 = 0;
    for (int i = 0; i < D; ++i) n2 += q[i] * p[i];
    if (todouble(n2) <= 0) {
      for (int i = 0; i < D; ++i) p[i] = q[i] = 0;
      continue;
    }
    T sn = sqrtv(n2);
    for (int i = 0; i < D; ++i) {
      p[i] = p[i] / sn;
      q[i] = q[i] / sn;
    }
  }
  for (int q = 0; q < R; ++q) {
    T s = 0;
    for (int n = 0; n < N; ++n) {
      T gp = 0;
      for (int i = 0; i < D; ++i) gp += P[q * D + i] * Qn[n * D + i];
      s += gp * gp;
    }
    mu[q] = pb.scale * s;
  }
}

// The weights W_k(x_p) = int_0^{x_p} e^{-(x_p - xi) z} l_k(xi) d xi of one rate z, in long double:
// out[p * M + k], p <= M. powers: x_p^j (j <= J), lc: Lagrange monomial coefficients (M x M), inv: 1/j.
struct WeightTables {
  int M, J;
  const ld* powers;  // (M + 1) * (J + 1)
  const ld* lc;      // M * M: lc[k * M + j]
  const ld* inv;     // J + 1
};

void weights(const WeightTables& wt, ld z, ld* out, std::vector<ld>& cols) {
  const int M = wt.M, J = wt.J;
  cols.resize(M);
  const bool forward = z >= static_cast<ld>(M);
  for (int p = 0; p <= M; ++p) {
    const ld* pw = wt.powers + p * (J + 1);
    if (forward) {
      cols[0] = -expm1l(-(pw[1] * z)) / z;
      for (int j = 1; j < M; ++j) cols[j] = (pw[j] - static_cast<ld>(j) * cols[j - 1]) / z;
    } else {
      ld I = 0;
      for (int j = J; j >= 1; --j) {
        I = (pw[j] - z * I) * wt.inv[j];
        if (j - 1 < M) cols[j - 1] = I;
      }
    }
    for (int k = 0; k < M; ++k) {
      ld s = 0;
      for (int j = 0; j < M; ++j) s += wt.lc[k * M + j] * cols[j];
      out[p * M + k] = s;
    }
  }
}

// The Picard iteration's rule (verify/_expcoll.py _picard_verdict).
const double PICARD_TOL = 1e-2, PICARD_TARGET = 0.2, ERR_TARGET = 0.2, MAX_GROWTH = 2.0;

void verdict(int it, double change, double previous, double& contraction, bool& converged, bool& abandon) {
  converged = abandon = false;
  if (change <= PICARD_TOL || (it >= 1 && change <= 1e-1 && change >= 0.5 * previous)) {
    converged = true;
    return;
  }
  if (it >= 1 && change > 1e-1) {
    contraction = std::max(contraction, change / previous);
    if (it >= 2 && contraction > 0.8) abandon = true;
  }
}

// The continuation of the last step's increment polynomial to this step's nodes (float64; a start only).
void continuation(int M, const double* c, double ratio, std::vector<double>& E) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.6g", ratio);
  ratio = std::strtod(buffer, nullptr);
  const int n = M + 2;
  std::vector<double> X(n);
  X[0] = 0.0;
  for (int k = 0; k < M; ++k) X[k + 1] = c[k];
  X[n - 1] = 1.0;
  std::vector<double> denom(n);
  for (int j = 0; j < n; ++j) {
    double d = 1.0;
    for (int m = 0; m < n; ++m) d *= m == j ? 1.0 : X[j] - X[m];
    denom[j] = d;
  }
  E.assign(M * (M + 1), 0.0);
  for (int k = 0; k < M; ++k) {
    const double x = 1.0 + c[k] * ratio;
    for (int j = 1; j < n; ++j) {
      double num = 1.0;
      for (int m = 0; m < n; ++m) num *= m == j ? 1.0 : x - X[m];
      double v = num / denom[j];
      if (j == n - 1) v -= 1.0;
      E[k * (M + 1) + (j - 1)] = v;
    }
  }
}

double monotonic() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

enum Outcome { T_END = 0, STOPPED = 1, BLOWUP = 2, STEP_TOO_SMALL = 3, MAX_STEPS = 4 };

// The weights of the fixed-width types: the long double recurrences, rounded once to the working type.
struct LdWeigh {
  WeightTables wt;
  mutable std::vector<ld> W, cols;
  template <class T> void operator()(const T& z, T* out) const {
    W.resize((wt.M + 1) * wt.M);
    weights(wt, static_cast<ld>(z), W.data(), cols);
    for (std::size_t n = 0; n < W.size(); ++n) out[n] = static_cast<T>(W[n]);
  }
};

// The Picard iteration's Newton corrections: none for the fixed-width types (plain Picard sweeps, as the
// reference); the multiprecision type specialises it.
template <class T> struct Newton {
  static constexpr bool enabled = false;
  Newton(int, int, int) {}
};

const double NEWTON_UNTIL = 1e4;

// scalars (T): t0, t_end, rtol, atol, h0, kappa, scale, loss_tol; doubles: blowup, deadline
// ints: D, H, N, anchor, M, J, max_picard, max_steps
// tables: A ((M+1) x M, T), legendre (M x M, T), nodes (M, double), weight tables (long double)
// out: y (D, T), t (T), t_converged (T), counts: status, steps, rejected, nfev, converged; cancel: read before
// every step attempt, the loop stops (STOPPED) once it is non-zero
template <class T, class Weigh>
void integrate(const int* ints, const T* scalars, const double* doubles, const T* U, const T* labels, const T* gw,
               const T* A, const T* legendre, const double* nodes, const Weigh& weigh, const T* y0, T* y_out, T* t_out,
               long* counts, const int* cancel) {
  const int D = ints[0], H = ints[1], N = ints[2], anchor = ints[3], M = ints[4], K = ints[6];
  const long max_steps = ints[7];
  const T t_end = scalars[1], rtol = scalars[2], atol = scalars[3];
  T t = scalars[0], h = scalars[4];
  const T loss_tol = scalars[7];
  const double blowup = doubles[0], deadline = doubles[1];
  Problem<T> pb{D, H, N, anchor, scalars[5], U, labels, gw, scalars[6]};
  const int R = N;

  std::vector<T> y(y0, y0 + D), y_lo(D, 0), mu(R), P(R * D), Q(R * D), WmA(R * (M + 1) * M), stages(M * D),
      Gs(M * D), VGs(M * R), incr((M + 1) * D), fresh((M + 1) * D), increments((M + 1) * D), work, corr(R * (M + 1));
  std::vector<T> end_incr(D), G_eff(D), damp(R), top(4 * D);
  std::vector<T> Wrow((M + 1) * M), guess(M * D);
  T ag = 0, st = 0;
  std::vector<double> E, coeffs(4 * D);
  Newton<T> newton(M, D, R);
  long steps = 0, rejected = 0, nfev = 1;
  int status = MAX_STEPS;
  bool just_rejected = false, have_previous = false, have_poly = false, predict = true, converged_flag = false;
  T h_previous = 0, h_old = 0, t_converged = 0;
  double e_previous = 0.0;
  const T one = 1;

  while (steps + rejected < max_steps) {
    if (t >= t_end) {
      status = T_END;
      break;
    }
    if (__atomic_load_n(cancel, __ATOMIC_RELAXED)) {  // the caller was interrupted (a signal): stop at once
      status = STOPPED;
      break;
    }
    if (t + h > t_end) h = t_end - t;
    linear_part(pb, y.data(), mu.data(), P.data(), Q.data());
    for (int q = 0; q < R; ++q) {
      weigh(h * mu[q], Wrow.data());
      for (int p = 0; p <= M; ++p)
        for (int k = 0; k < M; ++k) WmA[(q * (M + 1) + p) * M + k] = Wrow[p * M + k] - A[p * M + k];
    }
    for (int m = 0; m < M; ++m)
      for (int i = 0; i < D; ++i) stages[m * D + i] = y[i];
    if (have_poly && predict) {
      continuation(M, nodes, todouble(h / h_old), E);
      bool finite = true;
      for (int k = 0; k < M; ++k)
        for (int i = 0; i < D; ++i) {
          T s = 0;
          for (int j = 0; j <= M; ++j) mac(s, static_cast<T>(E[k * (M + 1) + j]), increments[j * D + i]);
          guess[k * D + i] = s;
          if (!std::isfinite(todouble(s))) finite = false;
        }
      if (finite)
        for (int k = 0; k < M * D; ++k) stages[k] = stages[k] + guess[k];
    }
    // the stages' forcing, the increments at the nodes and the end point, and the new values (one sweep)
    auto sweep = [&](const T* zs) {
      for (int m = 0; m < M; ++m)
        forcing(pb, &zs[m * D], y.data(), mu.data(), P.data(), Q.data(), &Gs[m * D], &VGs[m * R], work);
      for (int q = 0; q < R; ++q)
        for (int p = 0; p <= M; ++p) {
          T& s = corr[q * (M + 1) + p];
          set_zero(s);
          for (int k = 0; k < M; ++k) mac(s, WmA[(q * (M + 1) + p) * M + k], VGs[k * R + q]);
        }
      bool finite = true;
      for (int p = 0; p <= M; ++p)
        for (int i = 0; i < D; ++i) {
          set_zero(ag);
          set_zero(st);
          for (int k = 0; k < M; ++k) mac(ag, A[p * M + k], Gs[k * D + i]);
          for (int q = 0; q < R; ++q) mac(st, corr[q * (M + 1) + p], P[q * D + i]);
          set_add(ag, ag, st);
          set_mul(incr[p * D + i], h, ag);
          set_add(fresh[p * D + i], y[i], incr[p * D + i]);
          if (!std::isfinite(todouble(fresh[p * D + i]))) finite = false;
        }
      ++nfev;
      return finite;
    };
    // the sweep's change max |new - z| / (atol + rtol |new|): in the working type for the fixed-width types
    // (as the reference), in double from the exact difference for the multiprecision one (its use is to
    // compare with 1e-2, 0.1 and 1e4)
    auto change_from = [&](const T* zs) {
      double change = 0.0;
      if constexpr (Newton<T>::enabled) {
        const double at = todouble(atol), rt = todouble(rtol);
        for (int k = 0; k < M * D; ++k) {
          set_sub(ag, fresh[k], zs[k]);
          change = std::max(change, std::fabs(todouble(ag)) / (at + rt * std::fabs(todouble(fresh[k]))));
        }
      } else {
        for (int k = 0; k < M * D; ++k) {
          T v = absv(fresh[k] - zs[k]) / (atol + rtol * absv(fresh[k]));
          change = std::max(change, todouble(v));
        }
      }
      return change;
    };
    bool ok = false;
    double previous = std::numeric_limits<double>::infinity(), contraction = 0.0;
    if constexpr (Newton<T>::enabled) {
      // the multiprecision iteration: while a sweep changes the stages by more than NEWTON_UNTIL tolerances,
      // the next sweep is taken at z + d, d = r + J d solved in double (J: the Picard map's Jacobian)
      newton.start(stages);
      for (int it = 0; it < K; ++it) {
        const T* zs = newton.point();
        if (!sweep(zs)) break;
        const double change = change_from(zs);
        bool abandon;
        verdict(it, change, previous, contraction, ok, abandon);
        if (ok) {
          for (int k = 0; k < M * D; ++k) stages[k] = fresh[k];
          for (int i = 0; i < D; ++i) end_incr[i] = incr[M * D + i];
          break;
        }
        if (abandon) break;
        previous = change;
        if (change <= NEWTON_UNTIL) {
          newton.picard(fresh.data());
          continue;
        }
        newton.correct(pb, y.data(), mu.data(), P.data(), Q.data(), A, WmA.data(), h, fresh.data());
      }
    } else {
      for (int it = 0; it < K; ++it) {
        if (!sweep(stages.data())) break;
        const double change = change_from(stages.data());
        for (int k = 0; k < M * D; ++k) stages[k] = fresh[k];
        bool abandon;
        verdict(it, change, previous, contraction, ok, abandon);
        if (ok) {
          for (int i = 0; i < D; ++i) end_incr[i] = incr[M * D + i];
          break;
        }
        if (abandon) break;
        previous = change;
      }
    }
    if (!ok) {
      predict = false;
      ++rejected;
      h = h * static_cast<T>(contraction > 0 ? std::min(0.5, std::max(0.1, PICARD_TARGET / contraction)) : 0.25);
      if (t + h == t) {
        status = STEP_TOO_SMALL;
        break;
      }
      continue;
    }
    // g as the end point integrates it: stiff components damped by (1 - e^-z)/z; its top Legendre coefficients
    for (int q = 0; q < R; ++q) {
      const double zq = todouble(h * mu[q]);
      damp[q] = static_cast<T>(zq > 0 ? -std::expm1(-zq) / zq : 1.0) - one;
    }
    const int first = std::max(0, M - 4), count = M - first;
    for (int n = 0; n < 4 * D; ++n) top[n] = 0;
    for (int m = 0; m < M; ++m) {
      for (int i = 0; i < D; ++i) {
        T s = 0;
        for (int q = 0; q < R; ++q) mac(s, VGs[m * R + q] * damp[q], P[q * D + i]);
        G_eff[i] = Gs[m * D + i] + s;
      }
      for (int c = 0; c < count; ++c)
        for (int i = 0; i < D; ++i) mac(top[c * D + i], legendre[(first + c) * M + m], G_eff[i]);
    }
    for (int n = 0; n < 4 * D; ++n) coeffs[n] = 0.0;
    for (int c = 0; c < count; ++c)
      for (int i = 0; i < D; ++i) coeffs[(4 - count + c) * D + i] = std::fabs(todouble(top[c * D + i]));
    double err = 0.0;
    {
      const double tiny = 1e-300, hd = todouble(h), at = todouble(atol), rt = todouble(rtol);
      for (int i = 0; i < D; ++i) {
        const double c0 = coeffs[i], c1 = coeffs[D + i], c2 = coeffs[2 * D + i], c3 = coeffs[3 * D + i];
        const double r_odd = std::sqrt(c3 / std::max(c1, tiny)), r_even = std::sqrt(c2 / std::max(c0, tiny));
        double rho = (std::isnan(r_odd) || std::isnan(r_even)) ? 1.0 : std::max(r_odd, r_even);
        if (std::isinf(rho)) rho = 1.0;
        rho = std::min(rho, 1.0);
        const double tail = std::max(c3, c2 * rho);
        const double e = hd * tail * std::pow(rho, M + 1);
        const double sc = at + rt * std::fabs(todouble(fresh[M * D + i]));
        err = std::max(err, e / sc);
      }
    }
    if (err > 1) {
      ++rejected;
      h = h * static_cast<T>(std::max(0.1, std::pow(ERR_TARGET / err, 1.0 / (2 * M + 1))));
      just_rejected = true;
      continue;
    }
    t = t + h;
    h_old = h;
    for (int m = 0; m < M; ++m)
      for (int i = 0; i < D; ++i) increments[m * D + i] = stages[m * D + i] - y[i];
    for (int i = 0; i < D; ++i) increments[M * D + i] = end_incr[i];
    have_poly = predict = true;
    for (int i = 0; i < D; ++i) {  // compensated (TwoSum) update: the state carries y + y_lo
      const T d = end_incr[i] + y_lo[i];
      const T s = y[i] + d;
      const T bb = s - y[i];
      y_lo[i] = (y[i] - (s - bb)) + (d - bb);
      y[i] = s;
    }
    ++steps;
    if (!converged_flag && loss(pb, y.data(), work) <= loss_tol) {
      converged_flag = true;
      t_converged = t;
    }
    double largest = 0.0;
    for (int i = 0; i < D; ++i) largest = std::max(largest, std::fabs(todouble(y[i])));
    if (largest > blowup) {
      status = BLOWUP;
      break;
    }
    if (converged_flag || monotonic() >= deadline) {
      status = STOPPED;
      break;
    }
    const double k = 1.0 / (2 * M + 1);
    const double e = std::max(err, 1e-4);
    double fac = std::min(MAX_GROWTH, std::max(0.2, std::pow(ERR_TARGET / e, k)));
    if (have_previous)
      fac = std::min(fac, std::max(0.2, todouble(h / h_previous) * std::pow(e_previous / e, k) * std::pow(ERR_TARGET / e, k)));
    if (just_rejected) fac = std::min(fac, 1.0);
    just_rejected = false;
    have_previous = true;
    h_previous = h;
    e_previous = e;
    h = h * static_cast<T>(fac);
  }
  for (int i = 0; i < D; ++i) y_out[i] = y[i];
  t_out[0] = t;
  t_out[1] = t_converged;
  counts[0] = status;
  counts[1] = steps;
  counts[2] = rejected;
  counts[3] = nfev;
  counts[4] = converged_flag;
}


#ifdef SSM_MPFR
// ---- multiprecision: MPFR numbers of a working precision set per process ---------------------------------

// An MPFR number. New values (default, from double or int, copies) take the current precision
// Mp::precision; an assignment keeps the target's precision (it rounds into it).
struct Mp {
  mpfr_t v;
  static mpfr_prec_t precision;  // one loop at a time per process (verify/_native.py holds a lock around each call)
  Mp() { mpfr_init2(v, precision); mpfr_set_zero(v, 1); }
  Mp(double d) { mpfr_init2(v, precision); mpfr_set_d(v, d, MPFR_RNDN); }
  Mp(int i) { mpfr_init2(v, precision); mpfr_set_si(v, i, MPFR_RNDN); }
  Mp(long i) { mpfr_init2(v, precision); mpfr_set_si(v, i, MPFR_RNDN); }
  Mp(const Mp& o) { mpfr_init2(v, precision); mpfr_set(v, o.v, MPFR_RNDN); }
  Mp(Mp&& o) noexcept {
    v[0] = o.v[0];
    o.v[0]._mpfr_d = nullptr;
  }
  ~Mp() {
    if (v[0]._mpfr_d != nullptr) mpfr_clear(v);
  }
  Mp& operator=(const Mp& o) {
    if (this != &o) mpfr_set(v, o.v, MPFR_RNDN);
    return *this;
  }
  Mp& operator=(Mp&& o) noexcept {
    if (mpfr_get_prec(v) == mpfr_get_prec(o.v))
      mpfr_swap(v, o.v);
    else
      mpfr_set(v, o.v, MPFR_RNDN);
    return *this;
  }
  Mp& operator+=(const Mp& o) {
    mpfr_add(v, v, o.v, MPFR_RNDN);
    return *this;
  }
  Mp& operator-=(const Mp& o) {
    mpfr_sub(v, v, o.v, MPFR_RNDN);
    return *this;
  }
};
mpfr_prec_t Mp::precision = 128;

// s += a b without a temporary: the product into a scratch number of the working precision, then the sum
inline void mac(Mp& s, const Mp& a, const Mp& b) {
  static mpfr_t scratch;
  static bool ready = false;
  if (!ready) {
    mpfr_init2(scratch, Mp::precision);
    ready = true;
  }
  if (mpfr_get_prec(scratch) != Mp::precision) mpfr_set_prec(scratch, Mp::precision);
  mpfr_mul(scratch, a.v, b.v, MPFR_RNDN);
  mpfr_add(s.v, s.v, scratch, MPFR_RNDN);
}

inline void set_mul(Mp& r, const Mp& a, const Mp& b) { mpfr_mul(r.v, a.v, b.v, MPFR_RNDN); }
inline void set_add(Mp& r, const Mp& a, const Mp& b) { mpfr_add(r.v, a.v, b.v, MPFR_RNDN); }
inline void set_sub(Mp& r, const Mp& a, const Mp& b) { mpfr_sub(r.v, a.v, b.v, MPFR_RNDN); }
inline void set_zero(Mp& r) { mpfr_set_zero(r.v, 1); }
inline void horner(Mp& q, const Mp& x, const Mp& c) {
  mpfr_mul(q.v, q.v, x.v, MPFR_RNDN);
  mpfr_add(q.v, q.v, c.v, MPFR_RNDN);
}

inline Mp operator+(const Mp& a, const Mp& b) {
  Mp r;
  mpfr_add(r.v, a.v, b.v, MPFR_RNDN);
  return r;
}
inline Mp operator-(const Mp& a, const Mp& b) {
  Mp r;
  mpfr_sub(r.v, a.v, b.v, MPFR_RNDN);
  return r;
}
inline Mp operator*(const Mp& a, const Mp& b) {
  Mp r;
  mpfr_mul(r.v, a.v, b.v, MPFR_RNDN);
  return r;
}
inline Mp operator/(const Mp& a, const Mp& b) {
  Mp r;
  mpfr_div(r.v, a.v, b.v, MPFR_RNDN);
  return r;
}
inline Mp operator-(const Mp& a) {
  Mp r;
  mpfr_neg(r.v, a.v, MPFR_RNDN);
  return r;
}
inline bool operator<(const Mp& a, const Mp& b) { return mpfr_less_p(a.v, b.v); }
inline bool operator>(const Mp& a, const Mp& b) { return mpfr_greater_p(a.v, b.v); }
inline bool operator<=(const Mp& a, const Mp& b) { return mpfr_lessequal_p(a.v, b.v); }
inline bool operator>=(const Mp& a, const Mp& b) { return mpfr_greaterequal_p(a.v, b.v); }
inline bool operator==(const Mp& a, const Mp& b) { return mpfr_equal_p(a.v, b.v); }
inline bool operator<(const Mp& a, int b) { return mpfr_cmp_si(a.v, b) < 0; }
inline double todouble(const Mp& x) { return mpfr_get_d(x.v, MPFR_RNDN); }
inline Mp sqrtv(const Mp& x) {
  Mp r;
  mpfr_sqrt(r.v, x.v, MPFR_RNDN);
  return r;
}
inline Mp absv(const Mp& x) {
  Mp r;
  mpfr_abs(r.v, x.v, MPFR_RNDN);
  return r;
}
inline Mp expm1v(const Mp& x) {
  Mp r;
  mpfr_expm1(r.v, x.v, MPFR_RNDN);
  return r;
}

// A forward-mode dual number in double with up to DUAL_MAX partial derivatives (Dual::count in use):
// forcing<Dual> gives the Jacobian dG/dz of the Newton corrections.
constexpr int DUAL_MAX = 64;
struct Dual {
  double v;
  double g[DUAL_MAX];
  static int count;
  Dual(double x = 0.0) : v(x) { std::fill(g, g + count, 0.0); }
  Dual(int x) : Dual(static_cast<double>(x)) {}
};
int Dual::count = 0;
inline Dual operator+(const Dual& a, const Dual& b) {
  Dual r(a.v + b.v);
  for (int i = 0; i < Dual::count; ++i) r.g[i] = a.g[i] + b.g[i];
  return r;
}
inline Dual operator-(const Dual& a, const Dual& b) {
  Dual r(a.v - b.v);
  for (int i = 0; i < Dual::count; ++i) r.g[i] = a.g[i] - b.g[i];
  return r;
}
inline Dual operator*(const Dual& a, const Dual& b) {
  Dual r(a.v * b.v);
  for (int i = 0; i < Dual::count; ++i) r.g[i] = a.g[i] * b.v + a.v * b.g[i];
  return r;
}
inline Dual& operator+=(Dual& a, const Dual& b) { return a = a + b; }

// The Newton corrections of the multiprecision iteration (as verify/_compiled.py's _RealSweeps): the next
// sweep is taken at z + d, with d = r + J d (r the last sweep's residual, J the Picard map's Jacobian at the
// step's first corrected stages, from dG/dz by dual numbers), solved by fixed-point passes in double.
template <> struct Newton<Mp> {
  static constexpr bool enabled = true;
  int M, D, R;
  std::vector<Mp> x, zs;
  std::vector<double> Jg, P64, Q64, A64, W64, u, w, c, r, d, nd;
  double h64 = 0.0;
  bool corrected = false, have_jacobian = false;
  Newton(int M_, int D_, int R_) : M(M_), D(D_), R(R_), x(M_ * D_), zs(M_ * D_) {}
  void start(const std::vector<Mp>& stages) {
    for (int k = 0; k < M * D; ++k) x[k] = stages[k];
    corrected = have_jacobian = false;
  }
  const Mp* point() {
    if (!corrected) return x.data();
    for (int k = 0; k < M * D; ++k) mpfr_add_d(zs[k].v, x[k].v, d[k], MPFR_RNDN);  // z = x + d, d in double
    return zs.data();
  }
  void picard(const Mp* fresh) {  // the next sweep at the Picard map's image
    for (int k = 0; k < M * D; ++k) x[k] = fresh[k];
    corrected = false;
  }
  void correct(const Problem<Mp>& pb, const Mp* yn, const Mp* mu, const Mp* P, const Mp* Q, const Mp* A, const Mp* WmA,
               const Mp& h, const Mp* fresh) {
    if (corrected) std::swap(x, zs);  // x: the stages of the last sweep
    if (!have_jacobian) jacobian(pb, yn, mu, P, Q, A, WmA, todouble(h));
    const int n = M * D;
    r.resize(n);
    for (int k = 0; k < n; ++k) {
      Mp res = fresh[k] - x[k];
      r[k] = todouble(res);
    }
    d = r;
    nd.resize(n);
    for (int pass = 0; pass < 12; ++pass) {
      apply(d, nd);
      double step = 0.0, largest = 0.0;
      for (int k = 0; k < n; ++k) {
        nd[k] += r[k];
        step = std::max(step, std::fabs(nd[k] - d[k]));
        largest = std::max(largest, std::fabs(nd[k]));
      }
      d.swap(nd);
      if (!std::isfinite(step)) {
        d = r;
        break;
      }
      if (step <= 1e-17 * largest) break;
    }
    corrected = true;
  }
  // (J d)_(p, i) = h (sum_k A_k(x_p) (Jg_k d_k)_i + sum_r p_r[i] sum_k (W_{r,k}(x_p) - A_k(x_p)) (q_r . Jg_k d_k)),
  // the Picard map's Jacobian applied to d without forming it (Jg_k = dG/dz at stage k)
  void apply(const std::vector<double>& dv, std::vector<double>& out) {
    for (int k = 0; k < M; ++k)
      for (int i = 0; i < D; ++i) {
        double s = 0.0;
        const double* row = &Jg[(k * D + i) * D];
        for (int j = 0; j < D; ++j) s += row[j] * dv[k * D + j];
        u[k * D + i] = s;
      }
    for (int q = 0; q < R; ++q)
      for (int k = 0; k < M; ++k) {
        double s = 0.0;
        for (int i = 0; i < D; ++i) s += Q64[q * D + i] * u[k * D + i];
        w[q * M + k] = s;
      }
    for (int p = 0; p < M; ++p) {
      for (int q = 0; q < R; ++q) {
        double s = 0.0;
        for (int k = 0; k < M; ++k) s += W64[(q * M + p) * M + k] * w[q * M + k];
        c[q] = s;
      }
      for (int i = 0; i < D; ++i) {
        double s = 0.0;
        for (int k = 0; k < M; ++k) s += A64[p * M + k] * u[k * D + i];
        double t = 0.0;
        for (int q = 0; q < R; ++q) t += P64[q * D + i] * c[q];
        out[p * D + i] = h64 * (s + t);
      }
    }
  }
  void jacobian(const Problem<Mp>& pb, const Mp* yn, const Mp* mu, const Mp* P, const Mp* Q, const Mp* A,
                const Mp* WmA, double h) {
    Dual::count = D;
    std::vector<Dual> U(pb.N * pb.H), labels(pb.N), gw(std::max(pb.H - 1, 1)), ynd(D), mud(R), Pd(R * D), Qd(R * D),
        z(D), G(D), VG(R), work;
    for (int k = 0; k < pb.N * pb.H; ++k) U[k] = Dual(todouble(pb.U[k]));
    for (int k = 0; k < pb.N; ++k) labels[k] = Dual(todouble(pb.labels[k]));
    for (int k = 0; k < pb.H - 1; ++k) gw[k] = Dual(todouble(pb.gw[k]));
    for (int k = 0; k < D; ++k) ynd[k] = Dual(todouble(yn[k]));
    for (int k = 0; k < R; ++k) mud[k] = Dual(todouble(mu[k]));
    for (int k = 0; k < R * D; ++k) {
      Pd[k] = Dual(todouble(P[k]));
      Qd[k] = Dual(todouble(Q[k]));
    }
    Problem<Dual> pd{pb.D, pb.H, pb.N, pb.r, Dual(todouble(pb.kappa)), U.data(), labels.data(), gw.data(),
                     Dual(todouble(pb.scale))};
    Jg.resize(static_cast<std::size_t>(M) * D * D);
    for (int m = 0; m < M; ++m) {
      for (int i = 0; i < D; ++i) {
        z[i] = Dual(todouble(x[m * D + i]));
        z[i].g[i] = 1.0;
      }
      forcing(pd, z.data(), ynd.data(), mud.data(), Pd.data(), Qd.data(), G.data(), VG.data(), work);
      for (int i = 0; i < D; ++i)
        for (int j = 0; j < D; ++j) Jg[(m * D + i) * D + j] = G[i].g[j];
    }
    P64.resize(R * D);
    Q64.resize(R * D);
    for (int k = 0; k < R * D; ++k) {
      P64[k] = Pd[k].v;
      Q64[k] = Qd[k].v;
    }
    A64.resize(M * M);
    for (int p = 0; p < M; ++p)
      for (int k = 0; k < M; ++k) A64[p * M + k] = todouble(A[p * M + k]);
    W64.resize(R * M * M);
    for (int q = 0; q < R; ++q)
      for (int p = 0; p < M; ++p)
        for (int k = 0; k < M; ++k) W64[(q * M + p) * M + k] = todouble(WmA[(q * (M + 1) + p) * M + k]);
    h64 = h;
    u.resize(M * D);
    w.resize(R * M);
    c.resize(R);
    have_jacobian = true;
  }
};

// The weights of the multiprecision type: the recurrences at the guarded precision (forward for z >= M,
// backward from J1 for z < 1 and from JM for z < M), rounded once to the working precision.
struct MpWeigh {
  int M, J1, JM;
  mpfr_prec_t working, guarded;
  std::vector<Mp> powers, lc, inv;  // at the guarded precision: (M+1) x (Jmax+1), M x M, Jmax+1
  int stride;
  void operator()(const Mp& z_working, Mp* out) const {
    Mp::precision = guarded;
    Mp z(z_working);
    std::vector<Mp> cols(M);
    const double zd = todouble(z_working);
    const int start = zd >= M ? -1 : (zd < 1 ? J1 : JM);
    for (int p = 0; p <= M; ++p) {
      const Mp* pw = &powers[p * stride];
      if (start < 0) {
        cols[0] = -expm1v(-(pw[1] * z)) / z;
        for (int j = 1; j < M; ++j) cols[j] = (pw[j] - Mp(j) * cols[j - 1]) / z;
      } else {
        Mp I(0);
        for (int j = start; j >= 1; --j) {
          I = (pw[j] - z * I) * inv[j];
          if (j - 1 < M) cols[j - 1] = I;
        }
      }
      for (int k = 0; k < M; ++k) {
        Mp s(0);
        for (int j = 0; j < M; ++j) mac(s, lc[k * M + j], cols[j]);
        mpfr_set(out[p * M + k].v, s.v, MPFR_RNDN);  // rounded once to the working precision
      }
    }
    Mp::precision = working;
  }
};

// Numbers in and out as text: "mantissa exponent" pairs, the value mantissa 2^exponent (mantissa in hex).
struct Reader {
  const char* at;
  Mp next(mpfr_prec_t precision) {
    while (*at == ' ') ++at;
    const char* start = at;
    while (*at != ' ' && *at != 0) ++at;
    std::string mantissa(start, at);
    long exponent = std::strtol(at, const_cast<char**>(&at), 10);
    mpfr_t exact;
    mpfr_init2(exact, std::max<mpfr_prec_t>(precision, 4 * static_cast<mpfr_prec_t>(mantissa.size()) + 8));
    mpfr_set_str(exact, mantissa.c_str(), 16, MPFR_RNDN);
    mpfr_mul_2si(exact, exact, exponent, MPFR_RNDN);
    Mp::precision = precision;
    Mp value;
    mpfr_set(value.v, exact, MPFR_RNDN);
    mpfr_clear(exact);
    return value;
  }
  std::vector<Mp> many(int count, mpfr_prec_t precision) {
    std::vector<Mp> out;
    out.reserve(count);
    for (int k = 0; k < count; ++k) out.push_back(next(precision));
    return out;
  }
};

void write_number(const Mp& x, std::string& text) {
  mpfr_exp_t e;
  char* digits = mpfr_get_str(nullptr, &e, 16, 0, x.v, MPFR_RNDN);
  text += digits;
  text += ' ';
  text += std::to_string(static_cast<long>(e));
  text += '\n';
  mpfr_free_str(digits);
}
#endif  // SSM_MPFR

}  // namespace

extern "C" {

#define SSM_EXPORTS(SUFFIX, T)                                                                                       \
  void ssm_integrate_##SUFFIX(const int* ints, const T* scalars, const double* doubles, const T* U, const T* labels, \
                              const T* gw, const T* A, const T* legendre, const double* nodes, const ld* powers,    \
                              const ld* lc, const ld* inv, const T* y0, T* y_out, T* t_out, long* counts,           \
                              const int* cancel) {                                                                   \
    LdWeigh weigh{WeightTables{ints[4], ints[5], powers, lc, inv}, {}, {}};                                         \
    integrate<T>(ints, scalars, doubles, U, labels, gw, A, legendre, nodes, weigh, y0, y_out, t_out, counts, cancel);\
  }                                                                                                                  \
  void ssm_forcing_##SUFFIX(const int* ints, const T* scalars, const T* U, const T* labels, const T* gw,            \
                            const T* z, const T* yn, const T* mu, const T* P, const T* Q, T* G, T* VG) {            \
    Problem<T> pb{ints[0], ints[1], ints[2], ints[3], scalars[0], U, labels, gw, scalars[1]};                       \
    std::vector<T> work;                                                                                             \
    forcing(pb, z, yn, mu, P, Q, G, VG, work);                                                                       \
  }                                                                                                                  \
  void ssm_linear_part_##SUFFIX(const int* ints, const T* scalars, const T* U, const T* labels, const T* gw,        \
                                const T* z, T* mu, T* P, T* Q) {                                                     \
    Problem<T> pb{ints[0], ints[1], ints[2], ints[3], scalars[0], U, labels, gw, scalars[1]};                       \
    linear_part(pb, z, mu, P, Q);                                                                                    \
  }                                                                                                                  \
  void ssm_loss_##SUFFIX(const int* ints, const T* scalars, const T* U, const T* labels, const T* gw, const T* z,   \
                         T* out) {                                                                                   \
    Problem<T> pb{ints[0], ints[1], ints[2], ints[3], scalars[0], U, labels, gw, scalars[1]};                       \
    std::vector<T> work;                                                                                             \
    out[0] = loss(pb, z, work);                                                                                      \
  }

SSM_EXPORTS(f64, double)
SSM_EXPORTS(f80, long double)

void ssm_weights(int M, int J, const ld* powers, const ld* lc, const ld* inv, const ld* z, int count, ld* out) {
  WeightTables wt{M, J, powers, lc, inv};
  std::vector<ld> cols;
  for (int n = 0; n < count; ++n) weights(wt, z[n], out + n * (M + 1) * M, cols);
}

#ifdef SSM_MPFR
int ssm_has_mpfr() { return 1; }

// ints: D, H, N, anchor, M, JM, max_picard, max_steps, precision, J1, Jmax; numbers: text (Reader) in the order
// scalars (8), U, labels, gw, A, legendre, y0 at the working precision, then powers, lc, inv at the guarded one;
// out: the state, t and t_converged as text (write_number), at least out_size bytes.
int ssm_integrate_mp(const int* ints, const char* numbers, const double* doubles, const double* nodes, char* out,
                     long out_size, long* counts, const int* cancel) {
  const int D = ints[0], H = ints[1], N = ints[2], M = ints[4], JM = ints[5], J1 = ints[9], Jmax = ints[10];
  const mpfr_prec_t working = ints[8], guarded = working + 64;
  std::string text;
  {
    Reader in{numbers};
    auto scalars = in.many(8, working), U = in.many(N * H, working), labels = in.many(N, working),
         gw = in.many(std::max(H - 1, 0), working), A = in.many((M + 1) * M, working), legendre = in.many(M * M, working),
         y0 = in.many(D, working);
    MpWeigh weigh{M, J1, JM, working, guarded, in.many((M + 1) * (Jmax + 1), guarded), in.many(M * M, guarded),
                  in.many(Jmax + 1, guarded), Jmax + 1};
    Mp::precision = working;
    std::vector<Mp> y(D), t(2);
    integrate<Mp>(ints, scalars.data(), doubles, U.data(), labels.data(), gw.data(), A.data(), legendre.data(), nodes,
                  weigh, y0.data(), y.data(), t.data(), counts, cancel);
    for (const Mp& v : y) write_number(v, text);
    write_number(t[0], text);
    write_number(t[1], text);
  }
  if (static_cast<long>(text.size()) + 1 > out_size) return 1;
  std::copy(text.begin(), text.end(), out);
  out[text.size()] = 0;
  return 0;
}
#else
int ssm_has_mpfr() { return 0; }
#endif

}  // extern "C"
