// NEON kernels (AArch64, e.g. a Jetson's Cortex-A78AE): byte popcounts with vcntq_u8, summed per
// code by a tree of pairwise adds (vpaddq_u8), compared with the threshold per lane and packed into
// a 64-bit mask. Advanced SIMD is part of ARMv8-A, but it is still selected at run time (HWCAP_ASIMD)
// like the x86 paths, so "scalar" stays a separate, testable path.
#include <cstring>

#include "hamming.hpp"

#if defined(__aarch64__)
#include <arm_neon.h>

namespace chs {
namespace isa_neon {
#define CHS_TARGET
#include "scan_body.inc"

// 64 lanes of 0x00/0xff (four vectors, lane order = code order) -> one bit per lane.
inline uint64_t pack_mask64(uint8x16_t m0, uint8x16_t m1, uint8x16_t m2, uint8x16_t m3) {
  static const uint8_t kWeights[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  const uint8x16_t w = vld1q_u8(kWeights);
  const uint8x16_t a = vpaddq_u8(vandq_u8(m0, w), vandq_u8(m1, w));
  const uint8x16_t b = vpaddq_u8(vandq_u8(m2, w), vandq_u8(m3, w));
  const uint8x16_t c = vpaddq_u8(a, b);
  return vgetq_lane_u64(vreinterpretq_u64_u8(vpaddq_u8(c, c)), 0);
}

// `vectors` byte-count vectors -> one, by pairwise adds that keep code order (a power of two).
template <int N>
inline uint8x16_t pairwise_tree(uint8x16_t* c) {
  for (int w = N; w > 1; w /= 2)
    for (int j = 0; j < w / 2; ++j) c[j] = vpaddq_u8(c[2 * j], c[2 * j + 1]);
  return c[0];
}

inline uint8x16_t load_query(const uint8_t* q, int cb, int offset) {
  uint8_t buf[16];
  for (int j = 0; j < 16; ++j) buf[j] = q[(offset + j) % cb];
  return vld1q_u8(buf);
}

template <int CB>
struct K {
  struct Query {
    const uint8_t* p;
    uint8x16_t v0, v1;  // the code repeated over 16 bytes; CB == 32: its two halves
    Query(const uint8_t* q, size_t) : p(q), v0(load_query(q, CB, 0)), v1(load_query(q, CB, 16)) {}
  };
  static inline uint32_t dist(const uint8_t* code, const Query& q, size_t) {
    return dist_fixed<CB>(code, q.p);
  }
  // CB <= 16: the distances of 16 consecutive codes, one byte each (at most 128).
  static inline uint8x16_t counts16(const uint8_t* p, const Query& q) {
    uint8x16_t c[CB];
    for (int j = 0; j < CB; ++j) c[j] = vcntq_u8(veorq_u8(vld1q_u8(p + 16 * j), q.v0));
    return pairwise_tree<CB>(c);
  }
  // CB == 32: 8 codes -> 0xff where d <= thr, as 8 bytes (256 does not fit a byte: widen last).
  static inline uint8x8_t le8_wide(const uint8_t* p, const Query& q, uint16x8_t t) {
    uint8x16_t c[16];
    for (int j = 0; j < 16; ++j)
      c[j] = vcntq_u8(veorq_u8(vld1q_u8(p + 16 * j), (j & 1) ? q.v1 : q.v0));
    return vmovn_u16(vcleq_u16(vpaddlq_u8(pairwise_tree<16>(c)), t));
  }
  static inline uint64_t mask64(const uint8_t* p, const Query& q, uint32_t thr, size_t) {
    if (thr >= uint32_t(CB * 8)) return ~uint64_t(0);  // every code passes; thr now fits a byte
    uint8x16_t m[4];
    if constexpr (CB == 32) {
      const uint16x8_t t = vdupq_n_u16(uint16_t(thr));
      for (int g = 0; g < 4; ++g)
        m[g] = vcombine_u8(le8_wide(p + 512 * g, q, t), le8_wide(p + 512 * g + 256, q, t));
    } else {
      const uint8x16_t t = vdupq_n_u8(uint8_t(thr));
      for (int g = 0; g < 4; ++g) m[g] = vcleq_u8(counts16(p + 16 * CB * g, q), t);
    }
    return pack_mask64(m[0], m[1], m[2], m[3]);
  }
};

// Any size: 16-byte chunks counted with vcntq_u8 and accumulated pairwise into 16-bit lanes
// (vpadalq_u8); codes shorter than 16 bytes and the tail use the scalar popcount.
struct KGeneric {
  struct Query {
    const uint8_t* p;
    Query(const uint8_t* q, size_t) : p(q) {}
  };
  static inline uint32_t dist(const uint8_t* code, const Query& q, size_t cb) {
    if (cb < 16) return dist_bytes(code, q.p, cb);
    uint16x8_t acc = vdupq_n_u16(0);
    size_t j = 0;
    for (; j + 16 <= cb; j += 16)
      acc = vpadalq_u8(acc, vcntq_u8(veorq_u8(vld1q_u8(code + j), vld1q_u8(q.p + j))));
    return uint32_t(vaddlvq_u16(acc)) + dist_bytes(code + j, q.p + j, cb - j);
  }
  static inline uint64_t mask64(const uint8_t* p, const Query& q, uint32_t thr, size_t cb) {
    uint64_t m = 0;
    for (int j = 0; j < 64; ++j) m |= uint64_t(dist(p + j * cb, q, cb) <= thr) << j;
    return m;
  }
};

CHS_SCAN_TABLE(K, KGeneric)
#undef CHS_TARGET
}  // namespace isa_neon

ScanFn scan_neon(size_t cb, bool generic) { return isa_neon::pick(cb, generic); }
}  // namespace chs

#else
namespace chs {
ScanFn scan_neon(size_t, bool) { return nullptr; }
}  // namespace chs
#endif
