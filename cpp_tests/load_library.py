"""ctest: the CMake-built library loads into plain torch and its ops run."""

import sys

import torch

torch.ops.load_library(sys.argv[1])
y = torch.ops.rltorch.td_target(torch.ones(2), torch.tensor([False, True]), torch.tensor([[1.0, 3.0], [5.0, 7.0]]),
                                None, None, None, 0.5)
assert y.tolist() == [2.5, 1.0], y
print("load_library: 1 passed, 0 failed")
