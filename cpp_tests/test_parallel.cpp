// The adaptive thread policy's schedule of tries (csrc/cpu/parallel.h), fed
// made-up timings so that the machine's own speed cannot decide the outcome.
#include <ATen/Parallel.h>

#include <chrono>
#include <thread>

#include "check.h"
#include "cpu/parallel.h"

namespace {

using rltorch::cpu::ParallelSite;

constexpr int64_t kItems = 1 << 16;
constexpr double kWorkNs = 1e6;  // far above kSerialBelowNs: the site may fork
// Past the quick confirmation's interval, well short of the ordinary one.
constexpr auto kSoon = std::chrono::milliseconds(rltorch::cpu::kConfirmIntervalNs / 1'000'000 + 10);

// One call as parallel_for makes it, taking `parallel_ns` or `serial_ns`
// in whichever mode the site picks; returns the decision.
ParallelSite::Decision call(ParallelSite& site, int64_t parallel_ns, int64_t serial_ns) {
  const ParallelSite::Decision d = site.decide(kItems, kWorkNs);
  if (d.record) site.record(d, kItems, d.parallel ? parallel_ns : serial_ns);
  return d;
}

// Steady calls (no try under way) until `wait` has passed since the last
// try; returns whether the call after them starts a parallel try.
bool parallel_try_after(ParallelSite& site, std::chrono::milliseconds wait, int64_t parallel_ns,
                        int64_t serial_ns) {
  for (int i = 0; i < 2 * rltorch::cpu::kProbeMinCalls; ++i) {
    const ParallelSite::Decision d = call(site, parallel_ns, serial_ns);
    EXPECT(!d.parallel && !d.probe);
  }
  std::this_thread::sleep_for(wait);
  const ParallelSite::Decision d = site.decide(kItems, kWorkNs);
  // A parallel try starts with untimed warm-up calls.
  return d.parallel && !d.record;
}

// Runs the try that parallel_try_after started, with these timings.
void finish_try(ParallelSite& site, int64_t parallel_ns, int64_t serial_ns) {
  for (int i = 1; i < rltorch::cpu::kParallelWarmupCalls + rltorch::cpu::kTryTimedCalls; ++i) {
    EXPECT(call(site, parallel_ns, serial_ns).parallel);
  }
}

// A fresh site's first tries: parallel (warm-up, then timed), then serial.
void first_tries(ParallelSite& site, int64_t parallel_ns, int64_t serial_ns) {
  for (int i = 0; i < rltorch::cpu::kParallelWarmupCalls + rltorch::cpu::kTryTimedCalls; ++i) {
    EXPECT(call(site, parallel_ns, serial_ns).parallel);
  }
  for (int i = 0; i < rltorch::cpu::kTryTimedCalls; ++i) EXPECT(!call(site, parallel_ns, serial_ns).parallel);
}

// First tries that chose serial are checked by one more parallel try within
// tens of milliseconds; when that one chooses serial too, the next waits the
// ordinary interval (250 ms), not another short one.
void test_a_first_serial_choice_is_confirmed_soon_and_once() {
  static ParallelSite site("test_confirm_serial");
  first_tries(site, 3'000'000, 1'000'000);  // parallel 3x slower: serial wins
  EXPECT(parallel_try_after(site, kSoon, 3'000'000, 1'000'000));
  finish_try(site, 3'000'000, 1'000'000);  // confirmed: still slower
  EXPECT(!parallel_try_after(site, kSoon, 3'000'000, 1'000'000));
}

// The confirmation try flips the site to parallel when parallel is faster now.
void test_the_confirmation_can_flip_the_site_to_parallel() {
  static ParallelSite site("test_confirm_flip");
  first_tries(site, 3'000'000, 1'000'000);
  EXPECT(parallel_try_after(site, kSoon, 500'000, 1'000'000));
  finish_try(site, 500'000, 1'000'000);
  EXPECT(call(site, 500'000, 1'000'000).parallel);
}

// First tries that chose parallel need no confirmation: the serial mode is
// tried again only after the ordinary interval.
void test_a_first_parallel_choice_is_not_retried_early() {
  static ParallelSite site("test_first_parallel");
  first_tries(site, 500'000, 1'000'000);
  for (int i = 0; i < 2 * rltorch::cpu::kProbeMinCalls; ++i) EXPECT(call(site, 500'000, 1'000'000).parallel);
  std::this_thread::sleep_for(kSoon);
  const ParallelSite::Decision d = site.decide(kItems, kWorkNs);
  EXPECT(d.parallel && !d.probe);
}

}  // namespace

int main() {
  at::set_num_threads(2);  // the policy never forks on one thread
  rltorch::cpu::set_parallel_mode(rltorch::cpu::ParallelMode::kAdaptive);
  test_a_first_serial_choice_is_confirmed_soon_and_once();
  test_the_confirmation_can_flip_the_site_to_parallel();
  test_a_first_parallel_choice_is_not_retried_early();
  return rltorch_test::report("test_parallel");
}
