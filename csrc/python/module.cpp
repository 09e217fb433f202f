// The Python module rltorch._C carries no functions (no pybind11), so it
// builds against the limited API; importing it loads this library, whose
// static initialisers register the operators. Only setup.py compiles this
// file: the CMake library is loaded with torch.ops.load_library instead.
#include <Python.h>

extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_C", "rltorch operators (use torch.ops.rltorch)", -1, nullptr,
  };
  return PyModule_Create(&module_def);
}
