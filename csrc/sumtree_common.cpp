#include "sumtree_common.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/DistributionsHelper.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <vector>

#include "checks.h"

namespace rltorch {

double max_raw_priority(int64_t capacity, double alpha) {
  constexpr double kMax = std::numeric_limits<double>::max();
  const double max_leaf = kMax / (2.0 * static_cast<double>(capacity));
  return std::min(std::pow(max_leaf, 1.0 / alpha), kMax);
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

// A batched call gives tree t the entries of row t.
void check_rows_per_tree(const char* op, const Trees& trees, const at::Tensor& t, const char* name) {
  if (!trees.batched) return;
  TORCH_CHECK(t.dim() >= 1 && t.size(0) == trees.count, "rltorch.", op, ": `", name,
              "` must have a leading dimension of ", trees.count, " (one row per tree of the batched `tree`), got ",
              shape_string(t));
}

void check_alpha_eps(const char* op, double alpha, double eps) {
  TORCH_CHECK_VALUE(std::isfinite(alpha) && alpha > 0.0, "rltorch.", op, ": `alpha` must be finite and > 0, got ",
                    alpha);
  TORCH_CHECK_VALUE(std::isfinite(eps) && eps >= 0.0, "rltorch.", op, ": `eps` must be finite and >= 0, got ", eps);
}

void check_running_max(const char* op, const Trees& trees, const at::Tensor& tree, const at::Tensor& running_max) {
  check_same_device(op, tree, "tree", running_max, "running_max");
  TORCH_CHECK(running_max.scalar_type() == at::kDouble && running_max.numel() == trees.count &&
                  running_max.is_contiguous(),
              "rltorch.", op, ": `running_max` must be a contiguous float64 tensor of ", trees.count,
              trees.count == 1 ? " element" : " elements (one per tree)", ", got ", running_max.scalar_type(), " ",
              shape_string(running_max), running_max.is_contiguous() ? "" : " (not contiguous)");
  check_not_alias(op, tree, running_max, "running_max");
}

}  // namespace

Trees checked_trees(const char* op, const at::Tensor& tree, int64_t capacity, int64_t fanout) {
  TORCH_CHECK_VALUE(capacity >= 1, "rltorch.", op, ": `capacity` must be >= 1, got ", capacity);
  Trees trees;
  dispatch_fanout(fanout, [&](auto k) { trees.layout = sumtree::make_layout(capacity, decltype(k)::value); });
  TORCH_CHECK(tree.scalar_type() == at::kDouble, "rltorch.", op,
              ": `tree` must be float64 (sums of many priorities need the precision), got ",
              tree.scalar_type());
  const int64_t size = trees.layout.size();
  const bool single = tree.dim() == 1 && tree.size(0) == size;
  const bool batch = tree.dim() == 2 && tree.size(1) == size;
  TORCH_CHECK(single || batch, "rltorch.", op, ": `tree` must have shape [", size, "] (one tree) or [T, ", size,
              "] (T trees) for capacity ", capacity, " and fanout ", fanout,
              " (build it with rltorch.ops.SumTree), got ", shape_string(tree));
  TORCH_CHECK(tree.is_contiguous(), "rltorch.", op, ": `tree` must be contiguous");
  trees.batched = batch;
  trees.count = batch ? tree.size(0) : 1;
  return trees;
}

SumtreeUpdateArgs prepare_sumtree_update(const at::Tensor& tree, int64_t capacity, int64_t fanout,
                                         const at::Tensor& index, const at::Tensor& priority,
                                         const std::optional<at::Tensor>& keep, double alpha,
                                         double eps, const std::optional<at::Tensor>& running_max) {
  constexpr const char* op = "sumtree_update_";
  SumtreeUpdateArgs args;
  args.trees = checked_trees(op, tree, capacity, fanout);
  check_same_device(op, tree, "tree", index, "index");
  check_same_device(op, tree, "tree", priority, "priority");
  check_index_and_values(op, index, priority, "priority");
  check_rows_per_tree(op, args.trees, index, "index");
  // A view of the tree itself (tree.priorities()[a:b]) would be read while the
  // leaves are written: sequential on the CPU, a race on the GPU.
  check_not_alias(op, tree, index, "index");
  check_not_alias(op, tree, priority, "priority");
  check_alpha_eps(op, alpha, eps);
  if (keep.has_value() && keep->defined()) {
    check_same_device(op, tree, "tree", *keep, "keep");
    TORCH_CHECK(keep->scalar_type() == at::kBool, "rltorch.", op, ": `keep` must be bool, got ",
                keep->scalar_type());
    TORCH_CHECK(keep->numel() == index.numel(), "rltorch.", op, ": `keep` ", shape_string(*keep),
                " must have one flag per entry of `index` ", shape_string(index));
    check_not_alias(op, tree, *keep, "keep");
    args.keep = keep->contiguous();
  }
  if (running_max.has_value() && running_max->defined()) check_running_max(op, args.trees, tree, *running_max);
  args.index = index.contiguous();
  args.priority = priority.scalar_type() == at::kDouble ? priority.contiguous() : priority.to(at::kDouble).contiguous();
  args.per_tree = args.trees.count > 0 ? index.numel() / args.trees.count : 0;
  return args;
}

at::Tensor prepare_sumtree_find(const at::Tensor& tree, int64_t capacity, int64_t fanout,
                                const at::Tensor& mass, Trees* trees) {
  constexpr const char* op = "sumtree_find";
  *trees = checked_trees(op, tree, capacity, fanout);
  check_same_device(op, tree, "tree", mass, "mass");
  check_floating(op, mass, "mass");
  check_rows_per_tree(op, *trees, mass, "mass");
  return mass.scalar_type() == at::kDouble ? mass.contiguous() : mass.to(at::kDouble).contiguous();
}

Trees prepare_sumtree_sample(const char* op, const at::Tensor& tree, int64_t capacity, int64_t fanout,
                             int64_t batch_size, double beta) {
  Trees trees = checked_trees(op, tree, capacity, fanout);
  TORCH_CHECK_VALUE(batch_size >= 0, "rltorch.", op, ": `batch_size` must be >= 0, got ", batch_size);
  TORCH_CHECK_VALUE(std::isfinite(beta) && beta >= 0.0, "rltorch.", op,
                    ": `beta` must be finite and >= 0, got ", beta);
  return trees;
}

void check_sampling_mass(const char* op, double total, int64_t tree, bool batched) {
  const std::string which = batched ? c10::str("tree ", tree, " of the batch") : std::string("the tree");
  TORCH_CHECK_VALUE(std::isfinite(total), "rltorch.", op, ": ", which, "'s total priority is ", total,
                    ": nothing can be sampled from a non-finite total");
  TORCH_CHECK_VALUE(total > 0.0, "rltorch.", op, ": ", which, " holds no priority mass (its total is ", total,
                    "): nothing can be sampled; give some leaf a priority > 0 first");
}

PerUpdateArgs prepare_per_update(const at::Tensor& tree, int64_t capacity, int64_t fanout,
                                 const at::Tensor& slot_ids, const at::Tensor& index,
                                 const at::Tensor& td_error, double alpha, double eps,
                                 const at::Tensor& running_max, bool float32_kept) {
  constexpr const char* op = "per_update_priorities_";
  PerUpdateArgs args;
  args.trees = checked_trees(op, tree, capacity, fanout);
  check_same_device(op, tree, "tree", slot_ids, "slot_ids");
  check_same_device(op, tree, "tree", index, "index");
  check_same_device(op, tree, "tree", td_error, "td_error");
  const bool ids_ok = args.trees.batched
                          ? slot_ids.dim() == 2 && slot_ids.size(0) == args.trees.count && slot_ids.size(1) == capacity
                          : slot_ids.dim() == 1 && slot_ids.size(0) == capacity;
  TORCH_CHECK(slot_ids.scalar_type() == at::kLong && ids_ok, "rltorch.", op, ": `slot_ids` must be int64 of shape ",
              args.trees.batched ? c10::str("[", args.trees.count, ", ", capacity, "]") : c10::str("[", capacity, "]"),
              ", got ", slot_ids.scalar_type(), " ", shape_string(slot_ids));
  check_index_and_values(op, index, td_error, "td_error");
  check_rows_per_tree(op, args.trees, index, "index");
  check_running_max(op, args.trees, tree, running_max);
  check_alpha_eps(op, alpha, eps);
  check_not_alias(op, tree, slot_ids, "slot_ids");
  check_not_alias(op, tree, index, "index");
  check_not_alias(op, tree, td_error, "td_error");
  args.slot_ids = slot_ids;
  args.ids_tree_stride = args.trees.batched ? slot_ids.stride(0) : 0;
  args.ids_stride = slot_ids.stride(slot_ids.dim() - 1);
  args.index = index.contiguous();
  const bool as_is = td_error.scalar_type() == at::kDouble || (float32_kept && td_error.scalar_type() == at::kFloat);
  args.td_error = as_is ? td_error.contiguous() : td_error.to(at::kDouble).contiguous();
  args.per_tree = args.trees.count > 0 ? index.numel() / args.trees.count : 0;
  return args;
}

namespace {

// Whether row r of `column` lies, for every r, in the line where row r of one
// of `earlier` starts: same strides, both multiples of the line, and the
// field inside that line.
bool shares_line_of_earlier(const std::vector<ColumnRows>& earlier, const ColumnRows& column) {
  constexpr uintptr_t kLine = 64;
  const auto line_of = [](const char* p) { return reinterpret_cast<uintptr_t>(p) / kLine; };
  if (column.row_stride % kLine != 0 || column.tree_stride % kLine != 0 || column.row_bytes <= 0) return false;
  for (const ColumnRows& e : earlier) {
    if (!e.dense || e.row_stride != column.row_stride || e.tree_stride != column.tree_stride) continue;
    if (line_of(column.base) == line_of(e.base) && line_of(column.base + column.row_bytes - 1) == line_of(e.base)) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::vector<ColumnRows> checked_columns(const char* op, at::TensorList columns, const at::Tensor& anchor,
                                        const char* anchor_name, int64_t trees, int64_t rows) {
  std::vector<ColumnRows> out;
  out.reserve(columns.size());
  const int64_t lead = trees > 0 ? 1 : 0;  // dims before the row dim
  for (size_t c = 0; c < columns.size(); ++c) {
    const at::Tensor& column = columns[c];
    TORCH_CHECK(column.device() == anchor.device(), "rltorch.", op, ": `columns[", c, "]` is on ", column.device(),
                " but `", anchor_name, "` is on ", anchor.device());
    const bool shape_ok = column.dim() >= 1 + lead && column.size(lead) == rows && (lead == 0 || column.size(0) == trees);
    TORCH_CHECK(shape_ok, "rltorch.", op, ": `columns[", c, "]` must have ",
                lead ? c10::str("shape [", trees, ", ", rows, ", ...]") : c10::str(rows, " rows"),
                lead ? "" : " like `columns[0]`", ", got ", shape_string(column));
    ColumnRows d;
    d.base = static_cast<const char*>(column.const_data_ptr());
    const int64_t element = column.element_size();
    d.tree_stride = lead ? column.stride(0) * element : 0;
    d.row_stride = column.stride(lead) * element;
    int64_t expected = 1;
    for (int64_t dim = column.dim() - 1; dim > lead; --dim) {
      if (column.size(dim) != 1 && column.stride(dim) != expected) d.dense = false;
      expected *= column.size(dim);
    }
    d.row_bytes = expected * element;
    d.in_earlier_line = d.dense && shares_line_of_earlier(out, d);
    out.push_back(d);
  }
  return out;
}

at::Tensor gathered_like(const at::Tensor& column, int64_t trees, int64_t batch) {
  std::vector<int64_t> shape(column.sizes().begin(), column.sizes().end());
  shape[trees > 0 ? 1 : 0] = batch;
  return at::empty(shape, column.options().memory_format(at::MemoryFormat::Contiguous));
}

namespace {

// The draws at::rand(n, generator, kDouble) makes on the CPU, in the same
// order (its kernel takes one uniform_real_distribution<double> value per
// element under the generator's lock), without a tensor and the dispatch of
// uniform_: about a microsecond of a small batch's sample.
const double* draw_uniform_on_host(std::optional<at::Generator> generator, int64_t n) {
  thread_local std::vector<double> draws;
  draws.resize(static_cast<size_t>(n));
  auto* gen = at::get_generator_or_default<at::CPUGeneratorImpl>(generator, at::detail::getDefaultCPUGenerator());
  std::lock_guard<std::mutex> lock(gen->mutex_);
  const at::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (int64_t i = 0; i < n; ++i) draws[static_cast<size_t>(i)] = uniform(gen);
  return draws.data();
}

}  // namespace

SampleOutputs prepare_sample(const char* op, const at::Tensor& tree, int64_t capacity, int64_t fanout,
                             at::TensorList columns, int64_t batch_size, double beta,
                             std::optional<at::Generator> generator, bool check_mass_on_host) {
  SampleOutputs out;
  out.trees = prepare_sumtree_sample(op, tree, capacity, fanout, batch_size, beta);
  const int64_t lead = out.trees.batched ? out.trees.count : 0;
  out.columns = checked_columns(op, columns, tree, "tree", lead, capacity);
  if (check_mass_on_host) {
    const double* base = tree.const_data_ptr<double>();
    for (int64_t t = 0; t < out.trees.count; ++t) {
      check_sampling_mass(op, base[t * out.trees.stride()], t, out.trees.batched);
    }
  }
  const std::vector<int64_t> shape =
      out.trees.batched ? std::vector<int64_t>{out.trees.count, batch_size} : std::vector<int64_t>{batch_size};
  if (tree.is_cpu()) {
    out.host_uniform = draw_uniform_on_host(generator, out.trees.count * batch_size);
  } else {
    out.uniform = at::rand(shape, generator, tree.options());
  }
  out.index = at::empty(shape, tree.options().dtype(at::kLong));
  out.weight = at::empty(shape, tree.options().dtype(at::kFloat));
  out.rows.reserve(columns.size());
  for (const at::Tensor& column : columns) out.rows.push_back(gathered_like(column, lead, batch_size));
  return out;
}

at::Tensor prepare_replay_gather(at::TensorList columns, const at::Tensor& index, bool check_values) {
  constexpr const char* op = "replay_gather";
  TORCH_CHECK(index.scalar_type() == at::kLong && (index.dim() == 1 || index.dim() == 2), "rltorch.", op,
              ": `index` must be a 1-D (or [T, B] for T buffers) int64 tensor, got ", index.scalar_type(), " ",
              shape_string(index));
  TORCH_CHECK(!columns.empty(), "rltorch.", op, ": `columns` is empty");
  const int64_t trees = index.dim() == 2 ? index.size(0) : 0;
  const int64_t lead = trees > 0 ? 1 : 0;
  const int64_t rows = columns[0].dim() > lead ? columns[0].size(lead) : 0;
  checked_columns(op, columns, index, "index", trees, rows);
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
  m.impl("replay_sample", torch::CppFunction::makeFallthrough());
}

}  // namespace rltorch
