#include "parallel.h"

#include <torch/library.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace rltorch::cpu {
namespace {

std::atomic<int> g_mode{-1};

ParallelMode mode_from_name(const char* name, const char* what) {
  if (std::strcmp(name, "adaptive") == 0) return ParallelMode::kAdaptive;
  if (std::strcmp(name, "static") == 0) return ParallelMode::kStatic;
  if (std::strcmp(name, "serial") == 0) return ParallelMode::kSerial;
  TORCH_CHECK_VALUE(false, what, " must be 'adaptive', 'static' or 'serial', got '", name, "'");
  return ParallelMode::kAdaptive;
}

const char* mode_name(ParallelMode mode) {
  switch (mode) {
    case ParallelMode::kStatic: return "static";
    case ParallelMode::kSerial: return "serial";
    default: return "adaptive";
  }
}

// Sites register once, from their function-local statics; the list is only
// read for reports and resets.
std::mutex& registry_mutex() {
  static std::mutex mutex;
  return mutex;
}
std::vector<ParallelSite*>& registry() {
  static std::vector<ParallelSite*> sites;
  return sites;
}

int size_class_of(int64_t n) { return 63 - __builtin_clzll(static_cast<unsigned long long>(n)); }

}  // namespace

int64_t monotonic_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

ParallelMode parallel_mode() {
  int mode = g_mode.load(std::memory_order_relaxed);
  if (mode < 0) {
    const char* env = std::getenv("RLTORCH_CPU_PARALLEL");
    ParallelMode parsed = ParallelMode::kAdaptive;
    if (env != nullptr && env[0] != '\0') {
      try {
        parsed = mode_from_name(env, "RLTORCH_CPU_PARALLEL");
      } catch (const c10::Error&) {
        // An unreadable setting must not break every kernel: warn once, keep the default.
        std::fprintf(stderr, "rltorch: ignoring RLTORCH_CPU_PARALLEL='%s' (expected adaptive, static or serial)\n",
                     env);
      }
    }
    int expected = -1;
    g_mode.compare_exchange_strong(expected, static_cast<int>(parsed));
    mode = g_mode.load(std::memory_order_relaxed);
  }
  return static_cast<ParallelMode>(mode);
}

void set_parallel_mode(ParallelMode mode) { g_mode.store(static_cast<int>(mode), std::memory_order_relaxed); }

ParallelSite::ParallelSite(const char* name) : name_(name) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry().push_back(this);
}

ParallelSite::Decision ParallelSite::decide(int64_t n, double estimated_ns) {
  const int size_class = size_class_of(n);
  Decision serial{false, false, false, size_class, -1};
  if (estimated_ns < kSerialBelowNs || at::get_num_threads() <= 1 || at::in_parallel_region()) return serial;
  const ParallelMode mode = parallel_mode();
  if (mode == ParallelMode::kSerial) return serial;
  if (mode == ParallelMode::kStatic) return {true, false, false, size_class, -1};
  SizeClass& c = classes_[size_class];
  int left = c.try_left.load(std::memory_order_relaxed);
  while (left > 0) {  // a try under way: its warm-up calls, then its timed ones
    if (c.try_left.compare_exchange_weak(left, left - 1, std::memory_order_relaxed)) {
      return try_call(c, left, size_class);
    }
  }
  const float s = c.serial_ns.load(std::memory_order_relaxed);
  const float p = c.parallel_ns.load(std::memory_order_relaxed);
  if (p == 0.f) return start_try(c, true, size_class);
  if (s == 0.f) return start_try(c, false, size_class);
  const bool prefer_parallel = p < s;
  if (c.calls_since_probe.fetch_add(1, std::memory_order_relaxed) + 1 >= kProbeMinCalls) {
    const int64_t now = monotonic_ns();
    int64_t last = c.last_probe_ns.load(std::memory_order_relaxed);
    if (now - last > c.probe_interval_ns.load(std::memory_order_relaxed) &&
        c.last_probe_ns.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
      c.calls_since_probe.store(0, std::memory_order_relaxed);
      return start_try(c, !prefer_parallel, size_class);
    }
  }
  return {prefer_parallel, true, false, size_class, -1};
}

// Starts a try of one mode with this call: a parallel try's first calls wake
// the pool untimed, then kTryTimedCalls calls are timed and their median
// kept, so one call that the OS delayed cannot decide the next seconds.
ParallelSite::Decision ParallelSite::start_try(SizeClass& c, bool parallel, int size_class) {
  int idle = 0;
  const int calls = (parallel ? kParallelWarmupCalls : 0) + kTryTimedCalls;
  if (!c.try_left.compare_exchange_strong(idle, calls, std::memory_order_relaxed)) {
    return {parallel, false, false, size_class, -1};  // another thread's try is under way
  }
  c.try_parallel.store(parallel, std::memory_order_relaxed);
  return try_call(c, c.try_left.fetch_sub(1, std::memory_order_relaxed), size_class);
}

// The call of a try that found `left` calls left in it: untimed while warming up, then timed sample 0, 1, ...
ParallelSite::Decision ParallelSite::try_call(const SizeClass& c, int left, int size_class) {
  const int sample = kTryTimedCalls - left;  // negative while warming up
  return {c.try_parallel.load(std::memory_order_relaxed), sample >= 0, sample >= 0, size_class, sample};
}

void ParallelSite::record(const Decision& decision, int64_t n, int64_t elapsed_ns) {
  SizeClass& c = classes_[decision.size_class];
  std::atomic<float>& slot = decision.parallel ? c.parallel_ns : c.serial_ns;
  float observed = static_cast<float>(elapsed_ns) / static_cast<float>(n);
  if (decision.sample >= 0) {
    c.try_samples[decision.sample].store(observed, std::memory_order_relaxed);
    if (decision.sample < kTryTimedCalls - 1) return;
    float a = c.try_samples[0].load(std::memory_order_relaxed), b = c.try_samples[1].load(std::memory_order_relaxed);
    observed = std::max(std::min(a, b), std::min(std::max(a, b), observed));  // the median of the three
  }
  const float old = slot.load(std::memory_order_relaxed);
  const float other = (decision.parallel ? c.serial_ns : c.parallel_ns).load(std::memory_order_relaxed);
  if (old == 0.f) {
    slot.store(observed, std::memory_order_relaxed);  // this mode's first figure
    // The first tries (parallel, then serial) chose serial: confirm it soon (kConfirmIntervalNs).
    if (!decision.parallel && other != 0.f && observed < other) {
      c.probe_interval_ns.store(kConfirmIntervalNs, std::memory_order_relaxed);
    }
  } else if (decision.probe) {
    // A try replaces the stale figure outright. One that confirms the choice
    // makes the next try twice as rare (and never sooner than kProbeIntervalNs,
    // after the quick confirmation); one that flips it starts over.
    slot.store(observed, std::memory_order_relaxed);
    const int64_t interval = c.probe_interval_ns.load(std::memory_order_relaxed);
    c.probe_interval_ns.store(observed < other ? kProbeIntervalNs
                                               : std::clamp(2 * interval, kProbeIntervalNs, kProbeMaxIntervalNs),
                              std::memory_order_relaxed);
  } else {
    // The mode in use follows the machine smoothly, yet sustained load moves
    // it within a few calls. One call the OS delayed (on a VM, now and then
    // 10x its usual time) counts as at most twice the figure, or it would
    // keep the faster mode unused until the next try.
    const float updated = 0.75f * old + 0.25f * std::min(observed, 2.f * old);
    slot.store(updated, std::memory_order_relaxed);
    // The mode in use just lost to the other one's last figure: a burst of
    // delayed calls (a few milliseconds of a stolen core) does that as well as
    // lasting load, so the other mode is tried again at the shortest interval,
    // not after the up-to-8-s interval that quiet tries had built up.
    if (other != 0.f && old <= other && updated > other) {
      c.probe_interval_ns.store(kProbeIntervalNs, std::memory_order_relaxed);
    }
  }
  if (decision.probe) c.last_probe_ns.store(monotonic_ns(), std::memory_order_relaxed);
}

void ParallelSite::describe(std::vector<std::string>& lines) const {
  for (int k = 0; k < 64; ++k) {
    const float s = classes_[k].serial_ns.load(std::memory_order_relaxed);
    const float p = classes_[k].parallel_ns.load(std::memory_order_relaxed);
    if (s == 0.f && p == 0.f) continue;
    char line[160];
    std::snprintf(line, sizeof line, "%s n>=2^%d serial %.3g ns/item parallel %.3g ns/item -> %s", name_, k,
                  static_cast<double>(s), static_cast<double>(p),
                  s == 0.f || (p != 0.f && p < s) ? "parallel" : "serial");
    lines.emplace_back(line);
  }
}

void ParallelSite::reset() {
  for (SizeClass& c : classes_) {
    c.serial_ns.store(0.f, std::memory_order_relaxed);
    c.parallel_ns.store(0.f, std::memory_order_relaxed);
    c.last_probe_ns.store(0, std::memory_order_relaxed);
    c.probe_interval_ns.store(kProbeIntervalNs, std::memory_order_relaxed);
    c.calls_since_probe.store(0, std::memory_order_relaxed);
    c.try_left.store(0, std::memory_order_relaxed);
  }
}

namespace {

// Sets the mode when `mode` is given (and forgets what every site measured,
// so the next calls measure afresh); returns the mode in force.
std::string cpu_parallel_mode(const std::optional<std::string>& mode) {
  if (mode.has_value()) {
    set_parallel_mode(mode_from_name(mode->c_str(), "`mode`"));
    std::lock_guard<std::mutex> lock(registry_mutex());
    for (ParallelSite* site : registry()) site->reset();
  }
  return mode_name(parallel_mode());
}

std::vector<std::string> cpu_parallel_report() {
  std::vector<std::string> lines;
  std::lock_guard<std::mutex> lock(registry_mutex());
  for (const ParallelSite* site : registry()) site->describe(lines);
  return lines;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rltorch, m) {
  m.def("_cpu_parallel_mode(str? mode=None) -> str", &cpu_parallel_mode);
  m.def("_cpu_parallel_report() -> str[]", &cpu_parallel_report);
}

}  // namespace rltorch::cpu
