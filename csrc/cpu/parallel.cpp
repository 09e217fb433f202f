#include "parallel.h"

#include <torch/library.h>

#include <pthread.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

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

// ---- the chunk pool behind run_chunks ----
//
// One job at a time, in a static slot. A helper enters a job by raising
// `inside` and then checking `open`; the caller publishes a job only while
// `inside` is 0 and closes it (`open` = false) before returning, so a helper
// that wakes late finds the job closed and touches nothing of the caller's
// (whose context lives on its stack). A caller that finds the slot taken
// (another thread's job, or a late helper still leaving the last one) runs
// its chunks serially rather than wait.

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

thread_local bool t_in_chunk = false;

// A helper spins this long for the next job before it sleeps, so calls a
// training loop makes between other work (an env step, a forward pass, the
// next env step) find it awake: waking one from its futex took over 300 us on
// the dev VM. libgomp's workers spin for a similar time by default.
constexpr int64_t kHelperSpinNs = 2'000'000;
constexpr int kMaxHelpers = 255;

class ChunkPool {
 public:
  static ChunkPool& get() {
    static ChunkPool* pool = [] {
      auto* p = new ChunkPool();  // never destroyed: detached helpers may still be asleep in it at exit
      pthread_atfork(nullptr, nullptr, [] { ChunkPool::get().forget_threads_after_fork(); });
      return p;
    }();
    return *pool;
  }

  void wake(int helpers, int64_t max_wait_ns) {
    helpers = std::min(helpers, kMaxHelpers);
    if (helpers <= 0) return;
    ensure_helpers(helpers);
    if (spinning_.load(std::memory_order_relaxed) >= helpers) return;
    generation_.fetch_add(1);  // no job is opened: the helpers wake, find none, and spin
    generation_.notify_all();
    const int64_t deadline = monotonic_ns() + max_wait_ns;
    while (spinning_.load(std::memory_order_relaxed) < helpers && monotonic_ns() < deadline) cpu_relax();
  }

  void run(int64_t chunks, int helpers, void (*fn)(const void*, int64_t), const void* ctx) {
    helpers = std::min(helpers, kMaxHelpers);
    if (helpers <= 0 || chunks <= 1 || busy_.test_and_set(std::memory_order_acquire)) {
      run_serially(chunks, fn, ctx);
      return;
    }
    if (inside_.load() != 0) {  // a late helper is still leaving the last job
      busy_.clear(std::memory_order_release);
      run_serially(chunks, fn, ctx);
      return;
    }
    ensure_helpers(helpers);
    fn_.store(fn, std::memory_order_relaxed);
    ctx_.store(ctx, std::memory_order_relaxed);
    chunks_.store(chunks, std::memory_order_relaxed);
    max_helpers_.store(helpers, std::memory_order_relaxed);
    tickets_.store(0, std::memory_order_relaxed);
    next_.store(0, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    failed_.store(false, std::memory_order_relaxed);
    error_ = nullptr;
    open_.store(true);
    generation_.fetch_add(1);
    generation_.notify_all();

    int64_t mine = 0;
    work(fn, ctx, chunks, mine);
    // Every chunk is claimed; wait for the ones helpers are running.
    for (int spins = 0; done_.load(std::memory_order_acquire) + mine < chunks; ++spins) {
      if (spins < 4096) {
        cpu_relax();
      } else {
        std::this_thread::yield();  // the helper holding a chunk was descheduled
      }
    }
    open_.store(false);
    std::exception_ptr error = failed_.load(std::memory_order_acquire) ? error_ : nullptr;
    busy_.clear(std::memory_order_release);
    if (error) std::rethrow_exception(error);
  }

 private:
  ChunkPool() = default;

  static void run_serially(int64_t chunks, void (*fn)(const void*, int64_t), const void* ctx) {
    const bool outer = t_in_chunk;
    t_in_chunk = true;
    try {
      for (int64_t c = 0; c < chunks; ++c) fn(ctx, c);
    } catch (...) {
      t_in_chunk = outer;
      throw;
    }
    t_in_chunk = outer;
  }

  // Claims chunks until none is left, counting those it claimed in `claimed`;
  // after a failure anywhere, claimed chunks are skipped, not run.
  void work(void (*fn)(const void*, int64_t), const void* ctx, int64_t chunks, int64_t& claimed) {
    const bool outer = t_in_chunk;
    t_in_chunk = true;
    for (int64_t c = next_.fetch_add(1, std::memory_order_relaxed); c < chunks;
         c = next_.fetch_add(1, std::memory_order_relaxed)) {
      if (!failed_.load(std::memory_order_relaxed)) {
        try {
          fn(ctx, c);
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mutex_);
          if (!failed_.load(std::memory_order_relaxed)) {
            error_ = std::current_exception();
            failed_.store(true, std::memory_order_release);
          }
        }
      }
      ++claimed;
    }
    t_in_chunk = outer;
  }

  void helper_loop() {
    uint64_t seen = generation_.load();
    for (;;) {
      uint64_t now = generation_.load(std::memory_order_acquire);
      if (now == seen) {
        spinning_.fetch_add(1, std::memory_order_relaxed);
        const int64_t spin_until = monotonic_ns() + kHelperSpinNs;
        while ((now = generation_.load(std::memory_order_acquire)) == seen && monotonic_ns() < spin_until) {
          cpu_relax();
        }
        spinning_.fetch_sub(1, std::memory_order_relaxed);
        if (now == seen) {
          generation_.wait(seen);
          continue;
        }
      }
      seen = now;
      inside_.fetch_add(1);
      if (open_.load() && tickets_.fetch_add(1) < max_helpers_.load(std::memory_order_relaxed)) {
        int64_t claimed = 0;
        work(fn_.load(std::memory_order_relaxed), ctx_.load(std::memory_order_relaxed),
             chunks_.load(std::memory_order_relaxed), claimed);
        done_.fetch_add(claimed, std::memory_order_release);
      }
      inside_.fetch_sub(1);
    }
  }

  void ensure_helpers(int helpers) {
    if (started_.load(std::memory_order_acquire) >= helpers) return;
    std::lock_guard<std::mutex> lock(start_mutex_);
    for (int k = started_.load(std::memory_order_relaxed); k < helpers; ++k) {
      std::thread([this] { helper_loop(); }).detach();
      started_.store(k + 1, std::memory_order_release);
    }
  }

  // The child of a fork has only the forking thread: no helper exists there,
  // and a job the parent had open is not the child's.
  void forget_threads_after_fork() {
    started_.store(0);
    spinning_.store(0);
    inside_.store(0);
    open_.store(false);
    busy_.clear();
    new (&start_mutex_) std::mutex();
    new (&error_mutex_) std::mutex();
  }

  std::atomic_flag busy_ = ATOMIC_FLAG_INIT;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> open_{false};
  std::atomic<int> inside_{0};
  std::atomic<int> tickets_{0};
  std::atomic<int> max_helpers_{0};
  std::atomic<int64_t> next_{0};
  std::atomic<int64_t> done_{0};
  std::atomic<int64_t> chunks_{0};
  std::atomic<void (*)(const void*, int64_t)> fn_{nullptr};
  std::atomic<const void*> ctx_{nullptr};
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
  std::mutex error_mutex_;
  std::mutex start_mutex_;
  std::atomic<int> started_{0};
  std::atomic<int> spinning_{0};  // helpers awake and waiting for a job
};

}  // namespace

void run_chunks(int64_t chunks, int helpers, void (*chunk)(const void* ctx, int64_t c), const void* ctx) {
  ChunkPool::get().run(chunks, helpers, chunk, ctx);
}

void wake_pool(int helpers, int64_t max_wait_ns) { ChunkPool::get().wake(helpers, max_wait_ns); }

bool in_chunk() { return t_in_chunk; }

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
  if (estimated_ns < kSerialBelowNs || at::get_num_threads() <= 1 || at::in_parallel_region() || in_chunk()) {
    return serial;
  }
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
  const bool parallel = c.try_parallel.load(std::memory_order_relaxed);
  return {parallel, sample >= 0, sample >= 0, size_class, sample, parallel && sample < 0};
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
  // A try replaces the stale figure outright; the mode in use follows the
  // machine smoothly, yet sustained load moves it within a few calls. One
  // call the OS delayed (on a VM, now and then 10x its usual time) counts as
  // at most twice the figure, or it would keep the faster mode unused until
  // the next try.
  const float old = slot.load(std::memory_order_relaxed);
  const bool first = old == 0.f;
  if (!decision.probe && !first) observed = std::min(observed, 2.f * old);
  const float updated = decision.probe || first ? observed : 0.75f * old + 0.25f * observed;
  slot.store(updated, std::memory_order_relaxed);
  if (!decision.probe && !first) {
    // The mode in use just lost to the other one's last figure: a burst of
    // delayed calls (a few milliseconds of a stolen core) does that as well as
    // lasting load, so the other mode is tried again at the shortest interval,
    // not after the up-to-8-s interval that quiet tries had built up.
    const float other = (decision.parallel ? c.serial_ns : c.parallel_ns).load(std::memory_order_relaxed);
    if (other != 0.f && old <= other && updated > other) {
      c.probe_interval_ns.store(kProbeIntervalNs, std::memory_order_relaxed);
    }
  }
  if (decision.probe && !first) {
    // A try that confirms the choice makes the next one twice as rare; one that flips it starts over.
    const float other = (decision.parallel ? c.serial_ns : c.parallel_ns).load(std::memory_order_relaxed);
    const bool flipped = observed < other;
    const int64_t interval = c.probe_interval_ns.load(std::memory_order_relaxed);
    c.probe_interval_ns.store(flipped ? kProbeIntervalNs : std::min(2 * interval, kProbeMaxIntervalNs),
                              std::memory_order_relaxed);
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
