// csrc/cpu/parallel: run_chunks runs every chunk exactly once whatever the
// helpers do, rethrows a chunk's exception, runs nested work serially, and
// lets two callers at once both finish; parallel_for covers [0, n) exactly.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "cpu/parallel.h"

namespace cpu = rltorch::cpu;

namespace {

struct Counts {
  std::vector<std::atomic<int>> hits;
  std::atomic<int> nested_serial{0};
  explicit Counts(int64_t n) : hits(static_cast<size_t>(n)) {}
};

void count_chunk(const void* ctx, int64_t c) {
  auto& counts = *const_cast<Counts*>(static_cast<const Counts*>(ctx));
  counts.hits[static_cast<size_t>(c)].fetch_add(1);
  if (cpu::in_chunk()) counts.nested_serial.fetch_add(1);
}

void test_every_chunk_runs_once() {
  for (int helpers : {0, 1, 3}) {
    for (int64_t chunks : {0, 1, 2, 7, 100, 5000}) {
      for (int repeat = 0; repeat < 20; ++repeat) {
        Counts counts(chunks);
        cpu::run_chunks(chunks, helpers, count_chunk, &counts);
        bool once = true;
        for (auto& h : counts.hits) once = once && h.load() == 1;
        EXPECT(once);
        EXPECT(counts.nested_serial.load() == chunks);  // every chunk knows it is inside one
      }
    }
  }
  EXPECT(!cpu::in_chunk());
}

void throw_on_chunk_three(const void* ctx, int64_t c) {
  auto& ran = *const_cast<std::atomic<int>*>(static_cast<const std::atomic<int>*>(ctx));
  ran.fetch_add(1);
  if (c == 3) throw std::runtime_error("chunk 3");
}

void test_an_exception_comes_back_to_the_caller() {
  for (int helpers : {0, 1, 3}) {
    std::atomic<int> ran{0};
    bool threw = false;
    try {
      cpu::run_chunks(64, helpers, throw_on_chunk_three, &ran);
    } catch (const std::runtime_error& e) {
      threw = std::string(e.what()) == "chunk 3";
    }
    EXPECT(threw);
    EXPECT(ran.load() >= 1 && ran.load() <= 64);
    EXPECT(!cpu::in_chunk());
    // The pool is usable again afterwards.
    Counts counts(50);
    cpu::run_chunks(50, helpers, count_chunk, &counts);
    bool once = true;
    for (auto& h : counts.hits) once = once && h.load() == 1;
    EXPECT(once);
  }
}

void test_two_callers_at_once_both_finish() {
  std::vector<std::thread> callers;
  std::atomic<int> good{0};
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&good] {
      for (int repeat = 0; repeat < 200; ++repeat) {
        Counts counts(33);
        cpu::run_chunks(33, 2, count_chunk, &counts);
        bool once = true;
        for (auto& h : counts.hits) once = once && h.load() == 1;
        good.fetch_add(once ? 1 : 0);
      }
    });
  }
  for (auto& caller : callers) caller.join();
  EXPECT(good.load() == 4 * 200);
}

void test_parallel_for_covers_the_range_exactly() {
  at::set_num_threads(3);
  cpu::set_parallel_mode(cpu::ParallelMode::kStatic);
  static cpu::ParallelSite site("test_parallel_for");
  for (int64_t n : {int64_t{1}, int64_t{17}, int64_t{4096}, int64_t{100003}}) {
    for (int64_t align : {int64_t{1}, int64_t{16}}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      cpu::parallel_for(
          site, n, 50.0,
          [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
          },
          align, 512);
      bool once = true;
      for (auto& h : hits) once = once && h.load() == 1;
      EXPECT(once);
    }
  }
  cpu::set_parallel_mode(cpu::ParallelMode::kAdaptive);
}

// The helpers exist in the parent only; a forked child (a forking server,
// multiprocessing's fork) must start its own and not wait for the parent's.
void test_a_forked_child_runs_chunks() {
  Counts warm(64);
  cpu::run_chunks(64, 2, count_chunk, &warm);  // the parent's helpers exist now
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(60);  // a hang ends the child with SIGALRM
    bool ok = true;
    for (int repeat = 0; repeat < 50; ++repeat) {
      Counts counts(97);
      cpu::run_chunks(97, 2, count_chunk, &counts);
      for (auto& h : counts.hits) ok = ok && h.load() == 1;
    }
    _exit(ok ? 0 : 3);
  }
  int status = 0;
  EXPECT(waitpid(pid, &status, 0) == pid);
  EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace

int main() {
  try {
    test_every_chunk_runs_once();
    test_an_exception_comes_back_to_the_caller();
    test_two_callers_at_once_both_finish();
    test_a_forked_child_runs_chunks();
    test_parallel_for_covers_the_range_exactly();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unexpected exception: %s\n", e.what());
    return 1;
  }
  return rltorch_test::report("test_parallel");
}
