#pragma once
// How every rltorch CPU kernel splits its work across threads.
//
// A fork-join region waits for its slowest thread. On an idle machine that
// costs a few microseconds; when another process shares the cores, a worker
// the OS has descheduled costs the region a whole time slice (milliseconds),
// and small regions (a 66 us env step) then ran 5-100x slower than on one
// thread. So:
//  - work estimated below kSerialBelowNs never forks;
//  - larger work runs parallel or serial, whichever this call site has
//    measured to be faster lately at this size (per power-of-two size
//    class), so a busy machine turns a site serial within a few calls. The
//    slower mode is tried again after kProbeMinCalls calls and
//    kProbeIntervalNs, an interval that doubles (to kProbeMaxIntervalNs)
//    each time the try confirms the choice: a parallel try on a busy machine
//    costs milliseconds, so it must stay rare, while an idle machine still
//    turns a site back to parallel within seconds. A try times a few calls
//    (after an untimed one that wakes the pool, for parallel) and keeps
//    their median;
//  - a parallel region splits the work into the same number of equal chunks
//    per worker (about kChunkNs each, by the site's own serial timing) and
//    hands them out from a shared counter, so a worker that starts late
//    takes less work instead of holding a fixed share.
// Results never depend on the choice: each item is computed by one thread
// with the same instructions either way (the tests compare the modes bit for bit).
//
// RLTORCH_CPU_PARALLEL=adaptive (default) | static (parallel whenever the work
// is above the threshold: the old behaviour) | serial, read at first use;
// rltorch.ops.set_cpu_parallel() changes it at run time.

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace rltorch::cpu {

enum class ParallelMode : int { kAdaptive = 0, kStatic = 1, kSerial = 2 };

ParallelMode parallel_mode();
void set_parallel_mode(ParallelMode mode);

// Measured on the 2-core dev VM: waking the OpenMP pool and joining it costs
// 5-15 us when idle, so work under ~30 us cannot gain from a second thread.
constexpr double kSerialBelowNs = 30e3;
// Dynamic chunks: small enough that a late worker delays the join by little,
// large enough that the shared counter is touched rarely.
constexpr double kChunkNs = 15e3;
constexpr int64_t kProbeIntervalNs = 250'000'000;
// A size class's first tries can lose parallel to a passing disturbance (a
// worker the VM wakes late, another process's burst): then parallel is tried
// once more this soon, instead of after kProbeIntervalNs, which outlasts a
// short job (a 0.2-s benchmark case ran serial at 1.6x its parallel time).
// Once only, so a busy machine pays one extra try per size class.
constexpr int64_t kConfirmIntervalNs = 20'000'000;
constexpr int64_t kProbeMaxIntervalNs = 8'000'000'000;
constexpr int64_t kProbeMinCalls = 32;
// After a run of serial calls the second core takes several parallel calls
// to come back to speed (on the dev VM, a 20 us DQN target at B = 65,536 ran
// 100, 40, 29, 27, 22, 21, 20 us on the first parallel calls after 0.5 s of
// serial ones), so a parallel try runs this many calls untimed first: with
// one, the try timed the wake-up and kept that site serial, 1.6x slower.
constexpr int kParallelWarmupCalls = 4;
// A try times this many calls and keeps their median: on a VM one call in a
// few dozen takes 2-3x its usual time, and a try decides for up to kProbeMaxIntervalNs.
constexpr int kTryTimedCalls = 3;

class ParallelSite {
 public:
  explicit ParallelSite(const char* name);
  ParallelSite(const ParallelSite&) = delete;
  ParallelSite& operator=(const ParallelSite&) = delete;

  const char* name() const { return name_; }

  struct Decision {
    bool parallel;
    bool record;  // time the call and learn from it
    bool probe;   // the call is part of a try (see start_try)
    int size_class;
    int sample;   // which of a try's timed calls (-1: none)
  };
  Decision decide(int64_t n, double estimated_ns);
  void record(const Decision& decision, int64_t n, int64_t elapsed_ns);

  // What this size class last measured serially, per item (0: not yet).
  double serial_ns_per_item(int size_class) const {
    return classes_[size_class].serial_ns.load(std::memory_order_relaxed);
  }

  // One line per size class seen: name, class, ns per item serial / parallel, preferred mode.
  void describe(std::vector<std::string>& lines) const;
  void reset();

 private:
  struct SizeClass {
    std::atomic<float> serial_ns{0.f};
    std::atomic<float> parallel_ns{0.f};
    std::atomic<int64_t> last_probe_ns{0};
    std::atomic<int64_t> probe_interval_ns{kProbeIntervalNs};
    std::atomic<int64_t> calls_since_probe{0};
    // A try under way: its mode, the calls it has left (untimed warm-up ones, then timed ones), their times.
    std::atomic<bool> try_parallel{false};
    std::atomic<int> try_left{0};
    std::array<std::atomic<float>, kTryTimedCalls> try_samples{};
  };
  Decision start_try(SizeClass& c, bool parallel, int size_class);
  static Decision try_call(const SizeClass& c, int left, int size_class);
  const char* name_;
  std::array<SizeClass, 64> classes_;
};

int64_t monotonic_ns();

// Runs body(begin, end) over [0, n) on one or more threads as described above.
// ns_per_item is the kernel's estimated serial cost per item; it sets the
// threshold, and the chunk size until the site has timed itself serially;
// never the results. Chunks start at multiples of `align` (a kernel's SIMD
// tile, or a cache line so that two threads never write one) and hold at
// least `min_chunk` items.
template <typename Body>
void parallel_for(ParallelSite& site, int64_t n, double ns_per_item, const Body& body, int64_t align = 1,
                  int64_t min_chunk = 1) {
  if (n <= 0) return;
  const ParallelSite::Decision decision = site.decide(n, static_cast<double>(n) * ns_per_item);
  const int64_t start = decision.record ? monotonic_ns() : 0;
  if (!decision.parallel) {
    body(int64_t{0}, n);
  } else {
    const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
    const double measured = site.serial_ns_per_item(decision.size_class);
    const double work_ns = static_cast<double>(n) * (measured > 0.0 ? measured : ns_per_item);
    // The same number of equal chunks for every worker, so an idle machine
    // splits the work evenly (chunks of kChunkNs each left the last worker up
    // to a chunk behind: 10% of a 60 us CartPole step), and several per
    // worker once the work is large, so a worker that starts late hands its
    // remaining chunks to the others.
    const int64_t per_worker = std::clamp<int64_t>(
        static_cast<int64_t>(work_ns / (static_cast<double>(threads) * kChunkNs) + 0.5), 1, 1 << 20);
    const int64_t even = (n + threads * per_worker - 1) / (threads * per_worker);
    const int64_t chunk = (std::max(even, min_chunk) + align - 1) / align * align;
    const int64_t chunks = (n + chunk - 1) / chunk;
    const int64_t workers = std::min<int64_t>(threads, chunks);
    std::atomic<int64_t> next{0};
    at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
      for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < chunks;
           c = next.fetch_add(1, std::memory_order_relaxed)) {
        body(c * chunk, std::min(n, (c + 1) * chunk));
      }
    });
  }
  if (decision.record) site.record(decision, n, monotonic_ns() - start);
}

}  // namespace rltorch::cpu
