// What every rltorch env kernel shares (CartPole and the classic-control
// suite): the autoreset codes, sin/cos computed by the same IEEE operations on
// every device, the counter-based reset generator, and the lane arithmetic
// that lets one physics template run on a double (CUDA, scalar CPU loops) or
// on a vector of four doubles (the CPU kernels' SIMD loops) with the same bits.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "rltorch/macros.h"

// The CPU kernels rely on these helpers being inlined into their vector loops
// (an out-of-line call would pass the vectors through memory, and would not be
// compiled for the kernel's instruction-set clone).
#if defined(__CUDACC__) || defined(__HIPCC__)
#define RLTORCH_ENV_INLINE __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define RLTORCH_ENV_INLINE inline __attribute__((always_inline))
#else
#define RLTORCH_ENV_INLINE inline
#endif

// Four doubles per operation on the CPU, written with GCC/Clang vector
// extensions (RLTORCH_NO_CPU_VECTOR=1 builds the one-env-at-a-time loops only).
#if !defined(__CUDACC__) && !defined(__HIPCC__) && defined(__GNUC__) && defined(__has_builtin) && \
    !defined(RLTORCH_NO_CPU_VECTOR)
#if __has_builtin(__builtin_shufflevector) && __has_builtin(__builtin_convertvector)
#define RLTORCH_ENV_VECTOR 1
#endif
#endif

namespace rltorch::env {

constexpr double kPi = 3.141592653589793;

// Values of the `autoreset_mode` argument (gymnasium.vector.AutoresetMode).
enum AutoresetMode : int64_t { kNextStep = 0, kSameStep = 1, kDisabled = 2 };

// ---- sin/cos ----
// libm's sin/cos are calls the compiler cannot vectorize, and they dominate a
// step; they also differ between glibc (CPU) and libdevice (CUDA). So sin and
// cos are computed here, by the same IEEE operations on every device (no FMA
// contraction: -ffp-contract=off / --fmad=false), for every angle: set_state
// and wide reset bounds can put any angle into a step.
//
// On |x| <= pi/4 a Taylor polynomial is used directly. Its series is truncated
// past x^17 (sin) and x^16 (cos): the truncation error is below 1e-19, and
// every result, reduced or not, is within 0.8 ulp of the exact value (measured
// against a 200-bit reference; checked in cpp_tests/test_cartpole.cpp). Wider
// angles are first reduced to r = x - k*pi/2 with |r| <= ~pi/4, then the
// quadrant k mod 4 picks +-sin(r) or +-cos(r).
constexpr double kPolyLimit = kPi / 4;

// sin's coefficients after x: -1/3! + z/5! - ... + z^7/17!.
template <typename T>
RLTORCH_ENV_INLINE T sin_tail_poly(T z) {
  return -1.0 / 6.0 +
         z * (1.0 / 120.0 +
              z * (-1.0 / 5040.0 +
                   z * (1.0 / 362880.0 +
                        z * (-1.0 / 39916800.0 +
                             z * (1.0 / 6227020800.0 +
                                  z * (-1.0 / 1307674368000.0 + z * (1.0 / 355687428096000.0)))))));
}

template <typename T>
RLTORCH_ENV_INLINE T sin_poly(T x) {
  const T z = x * x;
  // x + x*z*p keeps the leading term exact, which is what makes it < 1 ulp.
  return x + x * (z * sin_tail_poly(z));
}

// cos's coefficients after 1 - z/2: 1/4! - z/6! + ... + z^6/16!.
template <typename T>
RLTORCH_ENV_INLINE T cos_tail_poly(T z) {
  return 1.0 / 24.0 +
         z * (-1.0 / 720.0 +
              z * (1.0 / 40320.0 +
                   z * (-1.0 / 3628800.0 +
                        z * (1.0 / 479001600.0 + z * (-1.0 / 87178291200.0 + z * (1.0 / 20922789888000.0))))));
}

template <typename T>
RLTORCH_ENV_INLINE T cos_poly(T x) {
  const T z = x * x;
  const T half_z = 0.5 * z;
  const T w = 1.0 - half_z;
  // (1 - w) - half_z is the rounding error of w, exactly (fdlibm's __kernel_cos
  // trick): adding it back keeps cos within ~0.75 ulp instead of ~1.25.
  return w + (((1.0 - w) - half_z) + (z * z) * cos_tail_poly(z));
}

// sin(x + y) and cos(x + y) for a reduced angle x with |y| <= ulp(x)/2 (the
// reduction's rounding error): first-order corrections y*cos(x), -y*sin(x).
template <typename T>
RLTORCH_ENV_INLINE T sin_poly(T x, T y) {
  const T z = x * x;
  return x + (x * (z * sin_tail_poly(z)) + y * (1.0 - 0.5 * z));
}

template <typename T>
RLTORCH_ENV_INLINE T cos_poly(T x, T y) {
  const T z = x * x;
  const T half_z = 0.5 * z;
  const T w = 1.0 - half_z;
  return w + (((1.0 - w) - half_z) + ((z * z) * cos_tail_poly(z) - x * y));
}

// Cody-Waite reduction: pi/2 split into three doubles, the first two with 33
// significant bits, so k * kPiOver2Hi and k * kPiOver2Mid are exact while
// |k| < 2^20, and x - k * kPiOver2Hi is exact (the operands are close). The
// 119-bit value of pi/2 leaves r + r_err accurate far below 1 ulp of r for
// |x| <= kReductionLimit (2^20 * pi/2, about 1.6e6 rad). Beyond it the
// products round, so accuracy falls off (absolute error about |x| * 2^-53), but
// the arithmetic and thus CPU = CUDA still hold; inf and NaN give NaN.
constexpr double kTwoOverPi = 0x1.45f306dc9c883p-1;   // 2/pi rounded to nearest
constexpr double kPiOver2Hi = 0x1.921fb544p+0;        // pi/2's first 33 bits
constexpr double kPiOver2Mid = 0x1.0b4611a6p-34;      // its next 33 bits
constexpr double kPiOver2Lo = 0x1.3198a2e037073p-69;  // pi/2 - hi - mid, rounded
constexpr double kReductionLimit = 0x1p20 * kPiOver2Hi;

// x - k*pi/2 = r + r_err for k = round(x * 2/pi) (|r| <= ~pi/4, |r_err| <=
// ulp(r)/2), and k mod 4 in 0..3.
RLTORCH_ENV_INLINE double reduce_half_pi(double x, double* r_err, int* quadrant) {
  const double k = ::rint(x * kTwoOverPi);
  const double r1 = x - k * kPiOver2Hi;
  const double w = k * kPiOver2Mid;
  const double r2 = r1 - w;
  // (r1 - r2) - w is the rounding error of r2 exactly (|r1| >= |w|), folded
  // into the last term, as fdlibm's __ieee754_rem_pio2 does.
  const double tail = k * kPiOver2Lo - ((r1 - r2) - w);
  const double m = ::fmod(k, 4.0);  // exact, in (-4, 4); NaN for inf/NaN x
  *quadrant = m == m ? (static_cast<int>(m) & 3) : 0;
  const double r = r2 - tail;
  *r_err = (r2 - r) - tail;
  return r;
}

// sin and cos of any double, branching on the (common) small angle. CartPole's
// kernels call it: their angles are within pi/4 for a whole episode.
RLTORCH_ENV_INLINE void sincos_any(double x, double* s, double* c) {
  if (x >= -kPolyLimit && x <= kPolyLimit) {
    *s = sin_poly(x);
    *c = cos_poly(x);
    return;
  }
  int quadrant;
  double r_err;
  const double r = reduce_half_pi(x, &r_err, &quadrant);
  const double sr = sin_poly(r, r_err), cr = cos_poly(r, r_err);
  switch (quadrant) {
    case 0: *s = sr; *c = cr; break;
    case 1: *s = cr; *c = -sr; break;
    case 2: *s = -sr; *c = -cr; break;
    default: *s = -cr; *c = sr; break;
  }
}

// ---- reset generator ----
// Counter-based: the draw for (seed, env, episode, component) is a pure hash,
// so results do not depend on the device, the thread count or the order envs
// are processed in, and a reset needs no generator state on the host.
// SplitMix64's finaliser is a bijection with full avalanche; chaining it with
// each key part gives independent-looking 64-bit words.
RLTORCH_ENV_INLINE uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr uint64_t kGoldenGamma = 0x9e3779b97f4a7c15ULL;

RLTORCH_ENV_INLINE uint64_t episode_key(uint64_t seed, uint64_t env, uint64_t episode) {
  uint64_t h = mix64(seed + kGoldenGamma);
  h = mix64(h ^ env);
  return mix64(h ^ (episode * kGoldenGamma));
}

// A double in [0, 1) with 53 random bits.
RLTORCH_ENV_INLINE double unit_double(uint64_t key, uint64_t component) {
  const uint64_t bits = mix64(key + (component + 1) * kGoldenGamma);
  return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);
}

// uniform(low, high) as NumPy computes it: low + (high - low) * u.
RLTORCH_ENV_INLINE double reset_value(uint64_t key, uint64_t component, double low, double high) {
  return low + (high - low) * unit_double(key, component);
}

// ---- lane arithmetic ----
// The classic-control physics are templates on T: double (CUDA, the CPU's
// scalar loops and resets) or vdouble (four envs per CPU instruction). Each
// helper below does, lane by lane, exactly the IEEE operations of its double
// version, and there are no branches on values, so a vector lane and a CUDA
// thread given the same state compute the same bits. Comparisons give a lane
// mask: bool for double, an int64 vector (-1 / 0) for vdouble; combine masks
// with & and | only (never ! or ~, which differ between the two).

// m ? a : b.
template <typename M>
RLTORCH_ENV_INLINE double pick(M m, double a, double b) {
  return ::rltorch::select(static_cast<bool>(m), a, b);
}

RLTORCH_ENV_INLINE double abs_lane(double x) { return ::fabs(x); }
RLTORCH_ENV_INLINE double copysign_lane(double magnitude, double sign) { return ::copysign(magnitude, sign); }

// The double nearest x in float32 (NumPy's astype(float32), or its float32
// arithmetic: an operation on floats computed in double and rounded once to
// float gives the float operation's result, since 53 >= 2 * 24 + 2).
RLTORCH_ENV_INLINE double round_f32(double x) {
  float narrowed = static_cast<float>(x);
#if !defined(__CUDA_ARCH__) && defined(__GNUC__) && (defined(__x86_64__) || defined(__aarch64__))
  // An empty asm the compiler cannot see through: GCC 12's SLP vectorizer at
  // -O3 paired two of these round trips (MountainCarContinuous's final
  // stores) into one vector move and dropped the rounding, so the scalar
  // step returned unrounded float64 states (cpp_tests/test_classic_control).
#if defined(__x86_64__)
  __asm__("" : "+x"(narrowed));
#else
  __asm__("" : "+w"(narrowed));
#endif
#endif
  return static_cast<double>(narrowed);
}

#ifdef RLTORCH_ENV_VECTOR
typedef double vdouble __attribute__((vector_size(32)));
typedef int64_t vlong __attribute__((vector_size(32)));
typedef float vfloat __attribute__((vector_size(16)));
constexpr int kLanes = 4;

RLTORCH_ENV_INLINE vdouble pick(vlong m, vdouble a, vdouble b) { return m ? a : b; }

RLTORCH_ENV_INLINE vdouble abs_lane(vdouble x) {
  return (vdouble)((vlong)x & INT64_MAX);
}

RLTORCH_ENV_INLINE vdouble copysign_lane(vdouble magnitude, vdouble sign) {
  const vlong m = (vlong)magnitude & INT64_MAX;
  const vlong s = (vlong)sign & INT64_MIN;
  return (vdouble)(m | s);
}

RLTORCH_ENV_INLINE vdouble round_f32(vdouble x) {
  return __builtin_convertvector(__builtin_convertvector(x, vfloat), vdouble);
}
#endif

// rint (round half to even) by adding and removing 2^52, where the sum's ulp
// is 1: no libm call and no rounding-mode instruction, so it vectorizes and
// gives the same bits everywhere. |x| >= 2^52 is already an integer.
template <typename T>
RLTORCH_ENV_INLINE T rint_lane(T x) {
  const T a = abs_lane(x);
  return copysign_lane(pick(a < 0x1p52, (a + 0x1p52) - 0x1p52, a), x);
}

template <typename T>
RLTORCH_ENV_INLINE T floor_lane(T x) {
  const T r = rint_lane(x);
  return pick(r > x, r - 1.0, r);
}

// NumPy's clip / np.minimum(np.maximum(x, lo), hi) for lo <= hi: a NaN stays NaN.
template <typename T>
RLTORCH_ENV_INLINE T clip_lane(T x, double lo, double hi) {
  const T y = pick(x < lo, T{} + lo, x);
  return pick(y > hi, T{} + hi, y);
}

// sin and cos of any angle without a branch: every lane is reduced (for
// |x| <= pi/4, k = 0 leaves r = x and r_err = 0, so this is the polynomial,
// the same values sincos_any gives), and the quadrant is chosen by masks.
template <typename T>
RLTORCH_ENV_INLINE void sincos_lane(T x, T& s, T& c) {
  const T k = rint_lane(x * kTwoOverPi);
  const T r1 = x - k * kPiOver2Hi;
  const T w = k * kPiOver2Mid;
  const T r2 = r1 - w;
  const T tail = k * kPiOver2Lo - ((r1 - r2) - w);
  const T r = r2 - tail;
  const T r_err = (r2 - r) - tail;
  // k mod 4, exactly, as a double in {0, 1, 2, 3} (k * 0.25 is exact).
  const T q = k - 4.0 * floor_lane(k * 0.25);
  const T sr = sin_poly(r, r_err), cr = cos_poly(r, r_err);
  const auto odd = (q == 1.0) | (q == 3.0);
  const T s0 = pick(odd, cr, sr), c0 = pick(odd, sr, cr);
  s = pick(q >= 2.0, -s0, s0);
  c = pick((q == 1.0) | (q == 2.0), -c0, c0);
}

template <typename T>
RLTORCH_ENV_INLINE T cos_lane(T x) {
  T s, c;
  sincos_lane(x, s, c);
  return c;
}

template <typename T>
RLTORCH_ENV_INLINE T sin_lane(T x) {
  T s, c;
  sincos_lane(x, s, c);
  return s;
}

}  // namespace rltorch::env
