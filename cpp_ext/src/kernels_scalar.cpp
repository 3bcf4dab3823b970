// Portable scalar kernels (any CPU, any architecture): the fallback and the reference fast path.
#include <cstring>

#include "hamming.hpp"

namespace chs {
namespace isa_scalar {
#define CHS_TARGET
#include "scan_body.inc"
template <int CB>
using KS = KScalar<CB>;
CHS_SCAN_TABLE(KS, KScalar<0>)
#undef CHS_TARGET
}  // namespace isa_scalar

ScanFn scan_scalar(size_t cb, bool generic) { return isa_scalar::pick(cb, generic); }
}  // namespace chs
