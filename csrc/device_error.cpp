// The per-device error record (layout in include/rltorch/device_error.h):
// exposes it to Python as a tensor view (rltorch.ops.check_device_errors reads
// and clears it) and turns a record into the exception the CPU kernel raises
// for the same bad input.
#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <array>
#include <cstring>
#include <vector>

#include "rltorch/acrobot.h"
#include "rltorch/device_error.h"
#include "rltorch/mountain_car.h"
#include "rltorch/pendulum.h"
#include "sumtree_common.h"

#ifdef RLTORCH_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace rltorch {

#ifdef RLTORCH_WITH_CUDA
namespace cuda {
// csrc/cuda/device_error.cu: the device's record (a __device__ array).
uint64_t* error_record(c10::DeviceIndex device);
}  // namespace cuda
#endif

namespace {

namespace de = device_error;

// No CPU kernel writes it (CPU kernels raise at once); it lets the decoding be
// tested without a GPU and makes check_device_errors("cpu") a valid no-op.
std::array<int64_t, de::kRecordSize> cpu_record = {-1, -1, 0, 0};

at::Tensor device_error_record(c10::Device device) {
  const auto options = at::TensorOptions().dtype(at::kLong).device(device);
  if (device.is_cpu()) return at::from_blob(cpu_record.data(), {de::kRecordSize}, options);
#ifdef RLTORCH_WITH_CUDA
  if (device.is_cuda()) {
    const c10::DeviceIndex index = device.has_index() ? device.index() : c10::cuda::current_device();
    return at::from_blob(cuda::error_record(index), {de::kRecordSize}, options.device(c10::Device(c10::kCUDA, index)));
  }
#endif
  TORCH_CHECK(false, "rltorch.check_device_errors: no error record for device ", device,
              " (this build of rltorch has ", (
#ifdef RLTORCH_WITH_CUDA
                  "CPU and CUDA"
#else
                  "CPU-only"
#endif
                  ), " kernels)");
}

double as_double(int64_t bits) {
  double d;
  std::memcpy(&d, &bits, sizeof(d));
  return d;
}

// The CPU kernel's exception for a classic-control env's bad action or
// ended env (csrc/cpu/classic_control_cpu.cpp words them).
template <class Env>
[[noreturn]] void raise_classic_error(bool ended, int64_t pos, bool has_payload, int64_t value) {
  if (ended) {
    TORCH_CHECK(false, "rltorch.", Env::kStepOp, ": env ", pos,
                " ended on the previous call and autoreset is disabled; reset the ended envs first (", Env::kClass,
                ".reset(options={\"reset_mask\": mask}), or ", Env::kResetOp, " with that mask). No env was stepped.");
  }
  const char* allowed = Env::kContinuous ? "finite" : "0, 1 or 2";
  if (!has_payload) {
    TORCH_CHECK_VALUE(false, "rltorch.", Env::kStepOp, ": `actions` must be ", allowed, ", got another value for env ",
                      pos, " (no env was stepped)");
  }
  if constexpr (Env::kContinuous) {
    TORCH_CHECK_VALUE(false, "rltorch.", Env::kStepOp, ": `actions` must be finite, got ", as_double(value),
                      " for env ", pos, " (no env was stepped)");
  } else {
    TORCH_CHECK_VALUE(false, "rltorch.", Env::kStepOp, ": `actions` must be 0, 1 or 2, got ", value, " for env ", pos,
                      " (no env was stepped)");
  }
}

// Raises what the CPU kernel raises for the recorded input (the messages are
// the CPU kernels' words; tests/test_device_errors.py holds them equal). A
// record without its payload (written from another stream at the same time)
// still names the op, the argument and the position.
void raise_device_error(c10::IntArrayRef record) {
  TORCH_CHECK(record.size() == de::kRecordSize, "rltorch._raise_device_error: expected ", de::kRecordSize,
              " words, got ", record.size());
  const uint64_t word = static_cast<uint64_t>(record[de::kWord]);
  if (word == de::kClear) return;
  const int code = de::key_code(word);
  const int64_t pos = de::key_position(word);
  const bool has_payload = static_cast<uint64_t>(record[de::kPayloadKey]) == word;
  const int64_t value = record[de::kValue], aux = record[de::kAux];
  switch (code) {
    case de::kSumtreeIndex:
      if (has_payload) {
        TORCH_CHECK_INDEX(false, "rltorch.sumtree_update_: `index` holds ", value, " at position ", pos,
                          ", outside [0, ", aux, ")");
      }
      TORCH_CHECK_INDEX(false, "rltorch.sumtree_update_: `index` holds an out-of-range value at position ", pos);
    case de::kSumtreePriority:
      if (has_payload) {
        TORCH_CHECK_VALUE(false, "rltorch.sumtree_update_: `priority` holds ", as_double(value), " at position ",
                          pos, "; priorities must be finite and >= 0");
      }
      TORCH_CHECK_VALUE(false, "rltorch.sumtree_update_: `priority` holds a bad value at position ", pos,
                        "; priorities must be finite and >= 0");
    case de::kTdTargetAction:
      if (has_payload) {
        TORCH_CHECK_INDEX(false, "rltorch.td_target: `next_action` holds ", value, " at position ", pos,
                          ", outside [0, ", aux, ")");
      }
      TORCH_CHECK_INDEX(false, "rltorch.td_target: `next_action` holds an out-of-range value at position ", pos);
    case de::kCartpoleBadAction:
      if (has_payload) {
        TORCH_CHECK_VALUE(false, "rltorch.cartpole_step_: `actions` must be 0 or 1, got ", value, " for env ", pos,
                          " (no env was stepped)");
      }
      TORCH_CHECK_VALUE(false, "rltorch.cartpole_step_: `actions` must be 0 or 1, got another value for env ", pos,
                        " (no env was stepped)");
    case de::kCartpoleEnded:
      TORCH_CHECK(false, "rltorch.cartpole_step_: env ", pos,
                  " ended on the previous call and autoreset is disabled; reset the ended envs first "
                  "(CartPoleVecEnv.reset(options={\"reset_mask\": mask}), or cartpole_reset_ with that mask). "
                  "No env was stepped.");
    case de::kPerTdNan:
    case de::kPerTdPosInf:
    case de::kPerTdNegInf: {
      const double td = code == de::kPerTdNan ? NAN : (code == de::kPerTdPosInf ? INFINITY : -INFINITY);
      TORCH_CHECK_VALUE(false, "rltorch.per_update_priorities_: `td_error` holds ", td, " at position ", pos,
                        "; td errors must be finite");
    }
    case de::kMountainCarBadAction:
    case de::kMountainCarEnded:
      raise_classic_error<classic::MountainCar>(code == de::kMountainCarEnded, pos, has_payload, value);
    case de::kMountainCarContinuousBadAction:
    case de::kMountainCarContinuousEnded:
      raise_classic_error<classic::MountainCarContinuous>(code == de::kMountainCarContinuousEnded, pos, has_payload,
                                                          value);
    case de::kPendulumBadAction:
    case de::kPendulumEnded:
      raise_classic_error<classic::Pendulum>(code == de::kPendulumEnded, pos, has_payload, value);
    case de::kAcrobotBadAction:
    case de::kAcrobotEnded:
      raise_classic_error<classic::Acrobot>(code == de::kAcrobotEnded, pos, has_payload, value);
    case de::kSumtreeNoMass: {
      const int64_t tree = pos / 4;
      const bool batched = pos % 2 == 1;
      const char* op = (pos / 2) % 2 == de::kSampleOpReplay ? "replay_sample" : "sumtree_sample";
      if (has_payload) check_sampling_mass(op, as_double(value), tree, batched);
      TORCH_CHECK_VALUE(false, "rltorch.", op, ": ", batched ? c10::str("tree ", tree, " of the batch") : std::string("the tree"),
                        " holds no priority mass or has a non-finite total: nothing can be sampled");
    }
    case de::kSumtreePriorityTooLarge:
      if (has_payload) {
        TORCH_CHECK_VALUE(false, "rltorch.sumtree_update_: `priority` holds ", as_double(value), " at position ",
                          pos, "; priority + eps must be <= ", as_double(aux),
                          " for this capacity and alpha, or the total of the tree could overflow");
      }
      TORCH_CHECK_VALUE(false, "rltorch.sumtree_update_: `priority` holds a value at position ", pos,
                        " whose priority + eps is above the bound for this capacity and alpha");
    case de::kPerTdTooLarge:
      if (has_payload) {
        TORCH_CHECK_VALUE(false, "rltorch.per_update_priorities_: `td_error` holds ", as_double(value),
                          " at position ", pos, "; |td_error| + eps must be <= ", as_double(aux),
                          " for this capacity and alpha, or the total of the tree could overflow");
      }
      TORCH_CHECK_VALUE(false, "rltorch.per_update_priorities_: `td_error` holds a value at position ", pos,
                        " whose |td_error| + eps is above the bound for this capacity and alpha");
    default:
      TORCH_CHECK(false, "rltorch.check_device_errors: unknown error record ", record[de::kWord],
                  " (code ", code, ", position ", pos, ")");
  }
}

// The key a kernel would record: lets tests write a record into the CPU
// buffer exactly as a CUDA kernel would.
int64_t device_error_key(int64_t code, int64_t position) {
  TORCH_CHECK_VALUE((code > de::kNone && code <= de::kPerTdNegInf) ||
                        (code >= de::kMountainCarBadAction && code <= de::kAcrobotEnded) ||
                        (code >= de::kSumtreeNoMass && code <= de::kPerTdTooLarge),
                    "rltorch._device_error_key: unknown code ", code);
  TORCH_CHECK_VALUE(position >= 0 && static_cast<uint64_t>(position) <= de::kMaxPosition,
                    "rltorch._device_error_key: position ", position, " out of range");
  return static_cast<int64_t>(de::make_key(static_cast<int>(code), position));
}

}  // namespace

// Private ops (leading underscore) behind rltorch/ops/device_errors.py.
TORCH_LIBRARY_FRAGMENT(rltorch, m) {
  m.def("_device_error_record(Device device) -> Tensor", &device_error_record);
  m.def("_raise_device_error(int[] record) -> ()", &raise_device_error);
  m.def("_device_error_key(int code, int position) -> int", &device_error_key);
}

}  // namespace rltorch
