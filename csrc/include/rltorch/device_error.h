// The device-side error record: how a CUDA kernel reports bad input without a
// device-side assert (which poisons the whole CUDA context) and without a host
// sync. Shared by csrc/cuda (which writes it), csrc/device_error.cpp (which
// decodes it into the CPU kernels' exceptions) and rltorch/ops/device_errors.py.
//
// One record per device: four 64-bit words.
//   [0] word:        the error key (below), or kClear. Kernels atomicMin it, so
//                    the smallest key among the unchecked errors is kept.
//   [1] payload_key: the key the payload words belong to (kClear: none).
//   [2] value:       the offending value (int64, or a double's bits).
//   [3] aux:         context of the message (e.g. the capacity of the range).
// A key orders errors the way the CPU kernels report them: blocking errors
// (bad input; the op left its state unchanged) before reports (entries that
// were skipped, the rest written), then by the op's rank of the check (e.g.
// CartPole checks actions before ended envs), then by the position, then by
// the code (sumtree_update_ checks index before priority at one position).
#pragma once

#include <cstdint>

#include "rltorch/macros.h"

namespace rltorch::device_error {

constexpr uint64_t kClear = ~uint64_t(0);
constexpr int kWord = 0, kPayloadKey = 1, kValue = 2, kAux = 3, kRecordSize = 4;

// Bit layout of a key: [63:62] severity, [61:54] rank, [53:8] position, [7:0] code.
constexpr int kPositionBits = 46;
constexpr uint64_t kMaxPosition = (uint64_t(1) << kPositionBits) - 1;
constexpr uint64_t kReportBase = uint64_t(1) << 62;  // keys >= this are reports, not blocking errors

enum Code : int {
  kNone = 0,
  kSumtreeIndex = 1,        // value: the index, aux: capacity
  kSumtreePriority = 2,     // value: the priority's bits
  kTdTargetAction = 3,      // value: the action, aux: num_actions
  kCartpoleBadAction = 4,   // value: the action
  kCartpoleEnded = 5,       // no payload
  kPerTdNan = 6,            // reports (skipped entries), no payload: the code says the value
  kPerTdPosInf = 7,
  kPerTdNegInf = 8,
  // The classic-control envs, a pair per env: a bad action (value: the
  // action, or a continuous action's bits) and an ended env stepped with
  // autoreset disabled (no payload).
  kMountainCarBadAction = 9,
  kMountainCarEnded = 10,
  kMountainCarContinuousBadAction = 11,
  kMountainCarContinuousEnded = 12,
  kPendulumBadAction = 13,
  kPendulumEnded = 14,
  kAcrobotBadAction = 15,
  kAcrobotEnded = 16,
  // The replay codes below are numbered apart from the others so that codes
  // added elsewhere do not collide with them.
  kSumtreeNoMass = 40,            // position: sampling_position(); value: the tree's total's bits
  kSumtreePriorityTooLarge = 41,  // value: the priority's bits, aux: the bound's bits (max_raw_priority)
  kPerTdTooLarge = 42,            // a report; value: the td error's bits, aux: the bound's bits
};

RLTORCH_HOST_DEVICE_INLINE bool is_report(int code) {
  return (code >= kPerTdNan && code <= kPerTdNegInf) || code == kPerTdTooLarge;
}

// Which op sampled a tree without priority mass (kSumtreeNoMass): the CPU
// message names it.
enum SampleOp : int { kSampleOpSumtree = 0, kSampleOpReplay = 1 };

// The position of a kSumtreeNoMass key: the tree, then the op and whether the
// tree argument was a batch (the lowest tree still sorts first).
RLTORCH_HOST_DEVICE_INLINE int64_t sampling_position(int64_t tree, int op, bool batched) {
  return tree * 4 + op * 2 + (batched ? 1 : 0);
}

RLTORCH_HOST_DEVICE_INLINE bool is_classic_control(int code) {
  return code >= kMountainCarBadAction && code <= kAcrobotEnded;
}

// Env ops check actions before ended envs.
RLTORCH_HOST_DEVICE_INLINE int rank_of(int code) {
  return code == kCartpoleEnded || (is_classic_control(code) && (code - kMountainCarBadAction) % 2 == 1) ? 1 : 0;
}

RLTORCH_HOST_DEVICE_INLINE uint64_t make_key(int code, int64_t position) {
  const uint64_t pos = static_cast<uint64_t>(position) & kMaxPosition;
  return (is_report(code) ? kReportBase : 0) | (static_cast<uint64_t>(rank_of(code)) << 54) | (pos << 8) |
         static_cast<uint64_t>(code);
}

RLTORCH_HOST_DEVICE_INLINE int key_code(uint64_t key) { return static_cast<int>(key & 0xff); }

RLTORCH_HOST_DEVICE_INLINE int64_t key_position(uint64_t key) {
  return static_cast<int64_t>((key >> 8) & kMaxPosition);
}

// A blocking error is pending: kernels that validate their input leave their
// state unchanged until rltorch.ops.check_device_errors() has cleared it.
RLTORCH_HOST_DEVICE_INLINE bool is_blocking(uint64_t word) { return word < kReportBase; }

}  // namespace rltorch::device_error
