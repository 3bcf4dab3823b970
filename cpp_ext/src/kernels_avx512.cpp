// AVX-512 kernels: VPOPCNTDQ popcounts and a compare-into-mask against the current threshold, so
// the scan touches the collector only when one of 64 codes can enter the result.
#include <cstring>

#include "hamming.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

namespace chs {
namespace isa_avx512 {
#define CHS_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vpopcntdq,bmi2,popcnt")))
#include "scan_body.inc"

CHS_TARGET inline __m512i broadcast_query(const uint8_t* q, int cb) {
  alignas(64) uint8_t buf[64];
  for (int j = 0; j < 64; ++j) buf[j] = q[j % cb];
  return _mm512_load_si512(buf);
}

template <int CB>
struct K {
  struct Query {
    const uint8_t* p;
    __m512i v;
    CHS_TARGET Query(const uint8_t* q, size_t) : p(q), v(broadcast_query(q, CB)) {}
  };
  static CHS_TARGET inline uint32_t dist(const uint8_t* code, const Query& q, size_t) {
    return dist_fixed<CB>(code, q.p);
  }
  static CHS_TARGET inline __m512i load_xor(const uint8_t* p, int j, const Query& q) {
    return _mm512_xor_si512(_mm512_loadu_si512(p + 64 * j), q.v);
  }
  static CHS_TARGET inline uint64_t mask64(const uint8_t* p, const Query& q, uint32_t thr, size_t) {
    uint64_t m = 0;
    if constexpr (CB == 2) {
      // Two 16-bit codes per dword: popcount each half, put the counts back in 16-bit lanes.
      const __m512i lo16 = _mm512_set1_epi32(0xffff);
      const __m512i t = _mm512_set1_epi16(short(thr));
      for (int j = 0; j < 2; ++j) {
        const __m512i x = load_xor(p, j, q);
        const __m512i a = _mm512_popcnt_epi32(_mm512_and_si512(x, lo16));
        const __m512i b = _mm512_popcnt_epi32(_mm512_srli_epi32(x, 16));
        const __m512i c = _mm512_or_si512(a, _mm512_slli_epi32(b, 16));
        m |= uint64_t(_mm512_cmple_epu16_mask(c, t)) << (32 * j);
      }
    } else if constexpr (CB == 4) {
      const __m512i t = _mm512_set1_epi32(int(thr));
      for (int j = 0; j < 4; ++j)
        m |= uint64_t(_mm512_cmple_epu32_mask(_mm512_popcnt_epi32(load_xor(p, j, q)), t)) << (16 * j);
    } else if constexpr (CB == 8) {
      const __m512i t = _mm512_set1_epi64(thr);
      for (int j = 0; j < 8; ++j)
        m |= uint64_t(_mm512_cmple_epu64_mask(_mm512_popcnt_epi64(load_xor(p, j, q)), t)) << (8 * j);
    } else if constexpr (CB == 16) {
      const __m512i t = _mm512_set1_epi64(thr);
      for (int j = 0; j < 16; ++j) {
        __m512i c = _mm512_popcnt_epi64(load_xor(p, j, q));
        c = _mm512_add_epi64(c, _mm512_shuffle_epi32(c, _MM_PERM_BADC));  // both words of a code
        const uint32_t k = _mm512_cmple_epu64_mask(c, t);
        m |= uint64_t(_pext_u32(k, 0x55u)) << (4 * j);
      }
    } else {  // CB == 32: two codes per vector
      const __m512i t = _mm512_set1_epi64(thr);
      for (int j = 0; j < 32; ++j) {
        __m512i c = _mm512_popcnt_epi64(load_xor(p, j, q));
        c = _mm512_add_epi64(c, _mm512_shuffle_epi32(c, _MM_PERM_BADC));
        c = _mm512_add_epi64(c, _mm512_shuffle_i64x2(c, c, _MM_SHUFFLE(2, 3, 0, 1)));
        const uint32_t k = _mm512_cmple_epu64_mask(c, t);
        m |= uint64_t(_pext_u32(k, 0x11u)) << (2 * j);
      }
    }
    return m;
  }
};

// Any multiple of 8 bits: masked 64-byte loads, VPOPCNTQ and a horizontal sum per code (scalar
// POPCNT below 32 bytes).
struct KGeneric {
  struct Query {
    const uint8_t* p;
    CHS_TARGET Query(const uint8_t* q, size_t) : p(q) {}
  };
  static CHS_TARGET inline uint32_t dist(const uint8_t* code, const Query& q, size_t cb) {
    if (cb < 32) return dist_bytes(code, q.p, cb);  // short codes: scalar POPCNT beats masked loads
    __m512i acc = _mm512_setzero_si512();
    for (size_t j = 0; j < cb; j += 64) {
      const size_t rest = cb - j;
      const __mmask64 lm = rest >= 64 ? ~__mmask64(0) : ((__mmask64(1) << rest) - 1);
      const __m512i a = _mm512_maskz_loadu_epi8(lm, code + j);
      const __m512i b = _mm512_maskz_loadu_epi8(lm, q.p + j);
      acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(a, b)));
    }
    return uint32_t(_mm512_reduce_add_epi64(acc));
  }
  static CHS_TARGET inline uint64_t mask64(const uint8_t* p, const Query& q, uint32_t thr, size_t cb) {
    uint64_t m = 0;
    for (int j = 0; j < 64; ++j) m |= uint64_t(dist(p + j * cb, q, cb) <= thr) << j;
    return m;
  }
};

CHS_SCAN_TABLE(K, KGeneric)
#undef CHS_TARGET
}  // namespace isa_avx512

ScanFn scan_avx512(size_t cb, bool generic) { return isa_avx512::pick(cb, generic); }
}  // namespace chs

#else
namespace chs {
ScanFn scan_avx512(size_t, bool) { return nullptr; }
}  // namespace chs
#endif
