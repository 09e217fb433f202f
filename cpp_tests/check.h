// A minimal test harness: each CHECK counts, main() reports and returns
// non-zero on any failure (ctest reads the exit status).
#pragma once

#include <cmath>
#include <cstdio>
#include <exception>
#include <string>

namespace rltorch_test {
inline int passed = 0;
inline int failed = 0;

inline void record(bool ok, const char* expr, const char* file, int line) {
  if (ok) {
    ++passed;
  } else {
    ++failed;
    std::fprintf(stderr, "%s:%d: EXPECT failed: %s\n", file, line, expr);
  }
}

inline bool near(double a, double b, double tol) { return std::fabs(a - b) <= tol * (1.0 + std::fabs(b)); }

inline int report(const char* name) {
  std::printf("%s: %d passed, %d failed\n", name, passed, failed);
  return failed == 0 ? 0 : 1;
}
}  // namespace rltorch_test

#define EXPECT(expr) ::rltorch_test::record(static_cast<bool>(expr), #expr, __FILE__, __LINE__)
#define EXPECT_NEAR(a, b, tol) \
  ::rltorch_test::record(::rltorch_test::near((a), (b), (tol)), #a " ~= " #b, __FILE__, __LINE__)
#define EXPECT_THROWS(stmt)                                           \
  do {                                                               \
    bool threw_ = false;                                             \
    try {                                                            \
      stmt;                                                          \
    } catch (const std::exception&) {                                \
      threw_ = true;                                                 \
    }                                                                \
    ::rltorch_test::record(threw_, "throws: " #stmt, __FILE__, __LINE__); \
  } while (0)
