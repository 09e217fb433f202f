// Argument checks every kernel shares, so a bad call fails the same way on
// every device, with a message that names the argument.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <string>

namespace rltorch {

inline std::string shape_string(const at::Tensor& t) { return c10::str(t.sizes()); }

inline void check_same_device(const char* op, const at::Tensor& anchor, const char* anchor_name,
                              const at::Tensor& other, const char* other_name) {
  TORCH_CHECK(other.device() == anchor.device(), "rltorch.", op, ": `", other_name, "` is on ",
              other.device(), " but `", anchor_name, "` is on ", anchor.device(),
              "; move them to one device");
}

inline void check_same_shape(const char* op, const at::Tensor& anchor, const char* anchor_name,
                             const at::Tensor& other, const char* other_name) {
  TORCH_CHECK(other.sizes() == anchor.sizes(), "rltorch.", op, ": `", other_name,
              "` must have the shape of `", anchor_name, "` ", shape_string(anchor), ", got ",
              shape_string(other));
}

inline void check_floating(const char* op, const at::Tensor& t, const char* name) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), "rltorch.", op, ": `", name,
              "` must be a floating-point tensor, got ", t.scalar_type());
}

inline void check_same_dtype(const char* op, const at::Tensor& anchor, const char* anchor_name,
                             const at::Tensor& other, const char* other_name) {
  TORCH_CHECK(other.scalar_type() == anchor.scalar_type(), "rltorch.", op, ": `", other_name,
              "` must have the dtype of `", anchor_name, "` (", anchor.scalar_type(), "), got ",
              other.scalar_type());
}

inline void check_unit_interval(const char* op, double value, const char* name) {
  TORCH_CHECK_VALUE(value >= 0.0 && value <= 1.0, "rltorch.", op, ": `", name,
                    "` must lie in [0, 1], got ", value);
}

// Episode flags may come as bool, integers or 0/1 floats (CleanRL stores
// float `dones`); kernels read bool, so convert on the flag's own device
// (no host round trip) and make it contiguous.
at::Tensor as_contiguous_flags(const char* op, const at::Tensor& flags, const char* name);

}  // namespace rltorch
