#include "sumtree_common.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <cmath>
#include <limits>

#include "checks.h"

namespace rltorch {

double max_raw_priority(int64_t capacity, double alpha) {
  const double max_leaf = std::numeric_limits<double>::max() / (2.0 * static_cast<double>(capacity));
  return std::pow(max_leaf, 1.0 / alpha);
}

namespace {

void check_not_alias(const char* op, const at::Tensor& tree, const at::Tensor& other, const char* name) {
  // Written while the tree is read (or read while it is written): a view of
  // the tree would corrupt it (running_max over the min-tree root) or race
  // on a GPU.
  TORCH_CHECK(!other.is_alias_of(tree), "rltorch.", op, ": `", name,
              "` must not share memory with `tree`; pass a separate tensor (.clone())");
}

// One value per transition index: the batch every leaf update reads.
void check_index_and_values(const char* op, const at::Tensor& index, const at::Tensor& values, const char* name) {
  TORCH_CHECK(index.scalar_type() == at::kLong, "rltorch.", op, ": `index` must be int64, got ",
              index.scalar_type());
  check_floating(op, values, name);
  TORCH_CHECK(values.numel() == index.numel(), "rltorch.", op, ": `", name, "` ", shape_string(values),
              " must have one value per entry of `index` ", shape_string(index));
}

}  // namespace

sumtree::Layout checked_tree_layout(const char* op, const at::Tensor& tree, int64_t capacity,
                                    int64_t fanout) {
  TORCH_CHECK_VALUE(capacity >= 1, "rltorch.", op, ": `capacity` must be >= 1, got ", capacity);
  sumtree::Layout layout;
  dispatch_fanout(fanout, [&](auto k) { layout = sumtree::make_layout(capacity, decltype(k)::value); });
  TORCH_CHECK(tree.scalar_type() == at::kDouble, "rltorch.", op,
              ": `tree` must be float64 (sums of many priorities need the precision), got ",
              tree.scalar_type());
  TORCH_CHECK(tree.dim() == 2 && tree.size(0) == 2 && tree.size(1) == layout.storage, "rltorch.", op,
              ": `tree` must have shape [2, ", layout.storage, "] for capacity ", capacity,
              " and fanout ", fanout, " (build it with rltorch.ops.SumTree), got ", shape_string(tree));
  TORCH_CHECK(tree.is_contiguous(), "rltorch.", op, ": `tree` must be contiguous");
  return layout;
}

SumtreeUpdateArgs prepare_sumtree_update(const at::Tensor& tree, int64_t capacity, int64_t fanout,
                                         const at::Tensor& index, const at::Tensor& priority,
                                         const std::optional<at::Tensor>& keep, double alpha,
                                         double eps, const std::optional<at::Tensor>& running_max) {
  constexpr const char* op = "sumtree_update_";
  SumtreeUpdateArgs args;
  args.layout = checked_tree_layout(op, tree, capacity, fanout);
  check_same_device(op, tree, "tree", index, "index");
  check_same_device(op, tree, "tree", priority, "priority");
  check_index_and_values(op, index, priority, "priority");
  // A view of the tree itself (tree.priorities()[a:b]) would be read while the
  // leaves are written: sequential on the CPU, a race on the GPU.
  check_not_alias(op, tree, index, "index");
  check_not_alias(op, tree, priority, "priority");
  TORCH_CHECK_VALUE(std::isfinite(alpha) && alpha > 0.0, "rltorch.", op,
                    ": `alpha` must be finite and > 0, got ", alpha);
  TORCH_CHECK_VALUE(std::isfinite(eps) && eps >= 0.0, "rltorch.", op,
                    ": `eps` must be finite and >= 0, got ", eps);
  if (keep.has_value() && keep->defined()) {
    check_same_device(op, tree, "tree", *keep, "keep");
    TORCH_CHECK(keep->scalar_type() == at::kBool, "rltorch.", op, ": `keep` must be bool, got ",
                keep->scalar_type());
    TORCH_CHECK(keep->numel() == index.numel(), "rltorch.", op, ": `keep` ", shape_string(*keep),
                " must have one flag per entry of `index` ", shape_string(index));
    check_not_alias(op, tree, *keep, "keep");
    args.keep = keep->contiguous().view({-1});
  }
  if (running_max.has_value() && running_max->defined()) {
    check_same_device(op, tree, "tree", *running_max, "running_max");
    TORCH_CHECK(running_max->scalar_type() == at::kDouble && running_max->numel() == 1, "rltorch.",
                op, ": `running_max` must be a one-element float64 tensor, got ",
                running_max->scalar_type(), " ", shape_string(*running_max));
    TORCH_CHECK(running_max->is_contiguous(), "rltorch.", op, ": `running_max` must be contiguous");
    check_not_alias(op, tree, *running_max, "running_max");
  }
  args.index = index.contiguous().view({-1});
  args.priority = priority.to(at::kDouble).contiguous().view({-1});
  args.batch = index.numel();
  return args;
}

at::Tensor prepare_sumtree_find(const at::Tensor& tree, int64_t capacity, int64_t fanout,
                                const at::Tensor& mass, sumtree::Layout* layout) {
  constexpr const char* op = "sumtree_find";
  *layout = checked_tree_layout(op, tree, capacity, fanout);
  check_same_device(op, tree, "tree", mass, "mass");
  check_floating(op, mass, "mass");
  return mass.to(at::kDouble).contiguous();
}

sumtree::Layout prepare_sumtree_sample(const at::Tensor& tree, int64_t capacity, int64_t fanout,
                                       int64_t batch_size, double beta) {
  constexpr const char* op = "sumtree_sample";
  sumtree::Layout layout = checked_tree_layout(op, tree, capacity, fanout);
  TORCH_CHECK_VALUE(batch_size >= 0, "rltorch.", op, ": `batch_size` must be >= 0, got ", batch_size);
  TORCH_CHECK_VALUE(std::isfinite(beta) && beta >= 0.0, "rltorch.", op,
                    ": `beta` must be finite and >= 0, got ", beta);
  return layout;
}

void check_sampling_mass(double total) {
  TORCH_CHECK_VALUE(std::isfinite(total), "rltorch.sumtree_sample: the tree's total priority is ", total,
                    ": nothing can be sampled from a non-finite total");
  TORCH_CHECK_VALUE(total > 0.0, "rltorch.sumtree_sample: the tree holds no priority mass (its total is ",
                    total, "): nothing can be sampled; give some leaf a priority > 0 first");
}

PerUpdateArgs prepare_per_update(const at::Tensor& tree, int64_t capacity, int64_t fanout,
                                 const at::Tensor& slot_ids, const at::Tensor& index,
                                 const at::Tensor& td_error, double alpha, double eps,
                                 const at::Tensor& running_max) {
  constexpr const char* op = "per_update_priorities_";
  PerUpdateArgs args;
  args.layout = checked_tree_layout(op, tree, capacity, fanout);
  check_same_device(op, tree, "tree", slot_ids, "slot_ids");
  check_same_device(op, tree, "tree", index, "index");
  check_same_device(op, tree, "tree", td_error, "td_error");
  check_same_device(op, tree, "tree", running_max, "running_max");
  TORCH_CHECK(slot_ids.scalar_type() == at::kLong && slot_ids.dim() == 1 && slot_ids.size(0) == capacity,
              "rltorch.", op, ": `slot_ids` must be int64 of shape [", capacity, "], got ",
              slot_ids.scalar_type(), " ", shape_string(slot_ids));
  check_index_and_values(op, index, td_error, "td_error");
  TORCH_CHECK(running_max.scalar_type() == at::kDouble && running_max.numel() == 1 && running_max.is_contiguous(),
              "rltorch.", op, ": `running_max` must be a contiguous one-element float64 tensor");
  TORCH_CHECK_VALUE(std::isfinite(alpha) && alpha > 0.0, "rltorch.", op,
                    ": `alpha` must be finite and > 0, got ", alpha);
  TORCH_CHECK_VALUE(std::isfinite(eps) && eps >= 0.0, "rltorch.", op,
                    ": `eps` must be finite and >= 0, got ", eps);
  check_not_alias(op, tree, slot_ids, "slot_ids");
  check_not_alias(op, tree, index, "index");
  check_not_alias(op, tree, td_error, "td_error");
  check_not_alias(op, tree, running_max, "running_max");
  args.slot_ids = slot_ids.contiguous();
  args.index = index.contiguous().view({-1});
  args.td_error = td_error.to(at::kDouble).contiguous().view({-1});
  args.batch = index.numel();
  return args;
}

at::Tensor prepare_replay_gather(at::TensorList columns, const at::Tensor& index, bool check_values) {
  constexpr const char* op = "replay_gather";
  TORCH_CHECK(index.scalar_type() == at::kLong && index.dim() == 1, "rltorch.", op,
              ": `index` must be a 1-D int64 tensor, got ", index.scalar_type(), " ", shape_string(index));
  TORCH_CHECK(!columns.empty(), "rltorch.", op, ": `columns` is empty");
  const int64_t rows = columns[0].dim() > 0 ? columns[0].size(0) : 0;
  for (size_t c = 0; c < columns.size(); ++c) {
    const at::Tensor& column = columns[c];
    TORCH_CHECK(column.device() == index.device(), "rltorch.", op, ": `columns[", c, "]` is on ",
                column.device(), " but `index` is on ", index.device());
    TORCH_CHECK(column.dim() >= 1 && column.size(0) == rows, "rltorch.", op, ": `columns[", c,
                "]` must have ", rows, " rows like `columns[0]`, got ", shape_string(column));
  }
  at::Tensor idx = index.contiguous();
  if (check_values) {
    const int64_t* ip = idx.const_data_ptr<int64_t>();
    for (int64_t i = 0; i < idx.numel(); ++i) {
      TORCH_CHECK_INDEX(ip[i] >= 0 && ip[i] < rows, "rltorch.", op, ": `index` holds ", ip[i],
                        " at position ", i, ", outside [0, ", rows, ")");
    }
  }
  return idx;
}

// Sampled indices, weights and gathered rows carry no gradient on any device,
// like the fallback (which runs under no_grad): replay data is data.
TORCH_LIBRARY_IMPL(rltorch, Autograd, m) {
  m.impl("sumtree_find", torch::CppFunction::makeFallthrough());
  m.impl("sumtree_sample", torch::CppFunction::makeFallthrough());
  m.impl("replay_gather", torch::CppFunction::makeFallthrough());
}

}  // namespace rltorch
