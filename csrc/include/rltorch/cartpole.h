// CartPole-v1 math shared by csrc/cpu and csrc/cuda: gymnasium's constants and
// equations in gymnasium's order of floating-point operations (see
// shared/FACTS.md section 1), the counter-based reset generator, and a sin/cos
// that the CPU compiler can vectorize.
#pragma once

#include <cmath>
#include <cstdint>

#include "rltorch/macros.h"

// The CPU kernel relies on these helpers being inlined into its vector loops
// (an out-of-line call would pass the vectors through memory, and would not be
// compiled for the kernel's instruction-set clone).
#if defined(__CUDACC__) || defined(__HIPCC__)
#define RLTORCH_CP_INLINE __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define RLTORCH_CP_INLINE inline __attribute__((always_inline))
#else
#define RLTORCH_CP_INLINE inline
#endif

namespace rltorch::cartpole {

// Constants written as gymnasium computes them, so every derived value is the
// same double (0.1 + 1.0 == 1.1 and 0.1 * 0.5 == 0.05 exactly in float64).
constexpr double kGravity = 9.8;
constexpr double kMassCart = 1.0;
constexpr double kMassPole = 0.1;
constexpr double kTotalMass = kMassPole + kMassCart;
constexpr double kLength = 0.5;  // half the pole's length
constexpr double kPoleMassLength = kMassPole * kLength;
constexpr double kForceMag = 10.0;
constexpr double kTau = 0.02;
constexpr double kPi = 3.141592653589793;
constexpr double kThetaThreshold = 12 * 2 * kPi / 360;  // (24 * pi) / 360, as in Python
constexpr double kXThreshold = 2.4;
constexpr double kFourThirds = 4.0 / 3.0;

constexpr double kDefaultResetLow = -0.05;
constexpr double kDefaultResetHigh = 0.05;

// Values of the `autoreset_mode` argument (gymnasium.vector.AutoresetMode).
enum AutoresetMode : int64_t { kNextStep = 0, kSameStep = 1, kDisabled = 2 };

// Action 1 pushes right, 0 left (gymnasium: sign(action - 0.5) * force_mag).
template <typename T>
RLTORCH_CP_INLINE T force_of(bool push_right) {
  return push_right ? T(kForceMag) : T(-kForceMag);
}

// One Euler step of the dynamics given sin/cos of the current angle.
// The association of every product and quotient mirrors gymnasium's NumPy
// expressions (e.g. polemass_length * theta_dot**2 * sin is (pml * thd^2) * s),
// so with the same sin/cos and no FMA contraction the result is bit-identical.
// T is double, or a GCC/Clang vector of doubles (the CPU kernel steps several
// envs per instruction); the double constants broadcast in either case.
template <typename T>
RLTORCH_CP_INLINE void physics(T& x, T& x_dot, T& theta, T& theta_dot, T force, T sin_t, T cos_t) {
  const T temp = (force + kPoleMassLength * (theta_dot * theta_dot) * sin_t) / kTotalMass;
  const T theta_acc =
      (kGravity * sin_t - cos_t * temp) / (kLength * (kFourThirds - kMassPole * (cos_t * cos_t) / kTotalMass));
  const T x_acc = temp - kPoleMassLength * theta_acc * cos_t / kTotalMass;
  // Positions move with the old velocities (explicit Euler, gymnasium's default).
  x = x + kTau * x_dot;
  x_dot = x_dot + kTau * x_acc;
  theta = theta + kTau * theta_dot;
  theta_dot = theta_dot + kTau * theta_acc;
}

// Tested on the new state with strict inequalities; a NaN state never
// terminates (NumPy's comparisons say the same). For vector T the result is a
// lane mask (-1 / 0).
template <typename T>
RLTORCH_CP_INLINE auto terminated(T x, T theta) {
  return (x < -kXThreshold) | (x > kXThreshold) | (theta < -kThetaThreshold) | (theta > kThetaThreshold);
}

// ---- sin/cos ----
// libm's sin/cos are calls the compiler cannot vectorize, and they dominate the
// step; they also differ between glibc (CPU) and libdevice (CUDA). So sin and
// cos are computed here, by the same IEEE operations on every device (no FMA
// contraction: -ffp-contract=off / --fmad=false), for every angle: set_state
// and wide reset bounds can put any theta into a step.
//
// On |x| <= pi/4 (every angle inside an episode: it ends at |theta| > 0.21) a
// Taylor polynomial is used directly. Its series is truncated past x^17 (sin)
// and x^16 (cos): the truncation error is below 1e-19, and every result, reduced
// or not, is within 0.8 ulp of the exact value (measured against a 200-bit
// reference; checked in cpp_tests/test_cartpole.cpp). Wider angles are first
// reduced to r = x - k*pi/2 with |r| <= ~pi/4, then the quadrant k mod 4
// picks +-sin(r) or +-cos(r). On |x| <= pi/4 (where k would be 0) sincos_any is the
// polynomial alone, so the CPU kernel's vectorized polynomial and sincos_any
// agree bit for bit.
constexpr double kPolyLimit = kPi / 4;

// sin's coefficients after x: -1/3! + z/5! - ... + z^7/17!.
template <typename T>
RLTORCH_CP_INLINE T sin_tail_poly(T z) {
  return -1.0 / 6.0 +
         z * (1.0 / 120.0 +
              z * (-1.0 / 5040.0 +
                   z * (1.0 / 362880.0 +
                        z * (-1.0 / 39916800.0 +
                             z * (1.0 / 6227020800.0 +
                                  z * (-1.0 / 1307674368000.0 + z * (1.0 / 355687428096000.0)))))));
}

template <typename T>
RLTORCH_CP_INLINE T sin_poly(T x) {
  const T z = x * x;
  // x + x*z*p keeps the leading term exact, which is what makes it < 1 ulp.
  return x + x * (z * sin_tail_poly(z));
}

// cos's coefficients after 1 - z/2: 1/4! - z/6! + ... + z^6/16!.
template <typename T>
RLTORCH_CP_INLINE T cos_tail_poly(T z) {
  return 1.0 / 24.0 +
         z * (-1.0 / 720.0 +
              z * (1.0 / 40320.0 +
                   z * (-1.0 / 3628800.0 +
                        z * (1.0 / 479001600.0 + z * (-1.0 / 87178291200.0 + z * (1.0 / 20922789888000.0))))));
}

template <typename T>
RLTORCH_CP_INLINE T cos_poly(T x) {
  const T z = x * x;
  const T half_z = 0.5 * z;
  const T w = 1.0 - half_z;
  // (1 - w) - half_z is the rounding error of w, exactly (fdlibm's __kernel_cos
  // trick): adding it back keeps cos within ~0.75 ulp instead of ~1.25.
  return w + (((1.0 - w) - half_z) + (z * z) * cos_tail_poly(z));
}

// sin(x + y) and cos(x + y) for a reduced angle x with |y| <= ulp(x)/2 (the
// reduction's rounding error): first-order corrections y*cos(x), -y*sin(x).
RLTORCH_CP_INLINE double sin_poly(double x, double y) {
  const double z = x * x;
  return x + (x * (z * sin_tail_poly(z)) + y * (1.0 - 0.5 * z));
}

RLTORCH_CP_INLINE double cos_poly(double x, double y) {
  const double z = x * x;
  const double half_z = 0.5 * z;
  const double w = 1.0 - half_z;
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
RLTORCH_CP_INLINE double reduce_half_pi(double x, double* r_err, int* quadrant) {
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

// sin and cos of any double; the one code path of every kernel.
RLTORCH_CP_INLINE void sincos_any(double x, double* s, double* c) {
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
RLTORCH_CP_INLINE uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr uint64_t kGoldenGamma = 0x9e3779b97f4a7c15ULL;

RLTORCH_CP_INLINE uint64_t episode_key(uint64_t seed, uint64_t env, uint64_t episode) {
  uint64_t h = mix64(seed + kGoldenGamma);
  h = mix64(h ^ env);
  return mix64(h ^ (episode * kGoldenGamma));
}

// A double in [0, 1) with 53 random bits.
RLTORCH_CP_INLINE double unit_double(uint64_t key, uint64_t component) {
  const uint64_t bits = mix64(key + (component + 1) * kGoldenGamma);
  return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);
}

// uniform(low, high) as NumPy computes it: low + (high - low) * u.
RLTORCH_CP_INLINE double reset_value(uint64_t key, uint64_t component, double low, double high) {
  return low + (high - low) * unit_double(key, component);
}

// Draws env `env`'s initial state (x, x_dot, theta, theta_dot) into a [4, N]
// structure-of-arrays state.
RLTORCH_CP_INLINE void draw_initial_state(double* state, int64_t n, int64_t env, uint64_t seed,
                                                   int64_t episode, double low, double high) {
  const uint64_t key = episode_key(seed, static_cast<uint64_t>(env), static_cast<uint64_t>(episode));
  for (int k = 0; k < 4; ++k) state[k * n + env] = reset_value(key, k, low, high);
}

}  // namespace rltorch::cartpole

namespace rltorch::cartpole {

// Writes one env's float32 observation row (NumPy's astype: round to nearest).
RLTORCH_CP_INLINE void write_obs(float* obs_row, double x, double x_dot, double theta,
                                          double theta_dot) {
  obs_row[0] = static_cast<float>(x);
  obs_row[1] = static_cast<float>(x_dot);
  obs_row[2] = static_cast<float>(theta);
  obs_row[3] = static_cast<float>(theta_dot);
}

// The bookkeeping of one env after its physics step: termination on the new
// state, the step count, truncation at max_steps (the 500th step for v1; both
// flags may hold), gymnasium's reward (1 every step incl. the terminating one;
// sutton_barto: -float(terminated), so -0.0 on ordinary steps), and the return
// and length of an episode that ends here (0 elsewhere).
struct StepOutcome {
  bool terminated, truncated, done;
  int32_t steps;
  float reward, episode_return;
  int32_t episode_length;
};

RLTORCH_CP_INLINE StepOutcome step_outcome(double x, double theta, int32_t steps_before,
                                           int32_t max_steps, bool sutton_barto) {
  StepOutcome out;
  out.terminated = terminated(x, theta);
  out.steps = steps_before + 1;
  out.truncated = out.steps >= max_steps;
  out.done = out.terminated | out.truncated;
  out.reward = sutton_barto ? -static_cast<float>(out.terminated) : 1.0f;
  out.episode_length = out.done ? out.steps : 0;
  out.episode_return =
      out.done ? (sutton_barto ? (out.terminated ? -1.0f : 0.0f) : static_cast<float>(out.steps)) : 0.0f;
  return out;
}

// Starts a new episode in env `env`: fresh state from the generator (keyed by
// its episode counter, which then advances), zero steps, nothing pending, and
// the new observation written to obs[env].
RLTORCH_CP_INLINE void reset_env(double* state, int32_t* steps, bool* prev_done, int64_t* episode,
                                          float* obs, int64_t n, int64_t env, uint64_t seed, double low,
                                          double high) {
  const int64_t ep = episode[env];
  episode[env] = ep + 1;
  draw_initial_state(state, n, env, seed, ep, low, high);
  steps[env] = 0;
  prev_done[env] = false;
  write_obs(obs + 4 * env, state[env], state[n + env], state[2 * n + env], state[3 * n + env]);
}

// One env of a reset call: envs in `mask` (all when null) start a new episode,
// the others only report their current observation.
RLTORCH_CP_INLINE void reset_or_observe(double* state, int32_t* steps, bool* prev_done, int64_t* episode,
                                        const bool* mask, float* obs, int64_t n, int64_t env, uint64_t seed,
                                        double low, double high) {
  if (mask == nullptr || mask[env]) {
    reset_env(state, steps, prev_done, episode, obs, n, env, seed, low, high);
  } else {
    write_obs(obs + 4 * env, state[env], state[n + env], state[2 * n + env], state[3 * n + env]);
  }
}

}  // namespace rltorch::cartpole
