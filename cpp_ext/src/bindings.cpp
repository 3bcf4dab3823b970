#include <nanobind/nanobind.h>
namespace nb = nanobind;
NB_MODULE(_hamming, m) { m.def("abi_version", [] { return 1; }); }
