// AVX2 kernels: popcount by nibble lookup (vpshufb), summed per code with vpsadbw / vpmaddubsw.
// Only the functions marked CHS_TARGET use AVX2, so the binary still runs on any x86-64 CPU.
#include <cstring>

#include "hamming.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

namespace chs {
namespace isa_avx2 {
#define CHS_TARGET __attribute__((target("avx2,popcnt")))
#include "scan_body.inc"

CHS_TARGET inline __m256i popcnt8(__m256i x) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1,
                                       2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(x, low));
  const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(x, 4), low));
  return _mm256_add_epi8(lo, hi);
}

// Keeps the even bits of a 32-bit mask (two mask bits per 16-bit code) as a 16-bit mask.
CHS_TARGET inline uint32_t even_bits(uint32_t x) {
  x &= 0x55555555u;
  x = (x | (x >> 1)) & 0x33333333u;
  x = (x | (x >> 2)) & 0x0f0f0f0fu;
  x = (x | (x >> 4)) & 0x00ff00ffu;
  x = (x | (x >> 8)) & 0x0000ffffu;
  return x;
}

CHS_TARGET inline __m256i broadcast_query(const uint8_t* q, int cb) {
  alignas(32) uint8_t buf[32];
  for (int j = 0; j < 32; ++j) buf[j] = q[j % cb];
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
}

template <int CB>
struct K {
  struct Query {
    const uint8_t* p;
    __m256i v;
    CHS_TARGET Query(const uint8_t* q, size_t) : p(q), v(broadcast_query(q, CB)) {}
  };
  static CHS_TARGET inline uint32_t dist(const uint8_t* code, const Query& q, size_t) {
    return dist_fixed<CB>(code, q.p);
  }
  static CHS_TARGET inline uint64_t mask64(const uint8_t* p, const Query& q, uint32_t thr, size_t) {
    const __m256i zero = _mm256_setzero_si256();
    uint64_t reject = 0;  // bit i set: code i has d > thr
    if constexpr (CB == 2) {
      const __m256i t = _mm256_set1_epi16(short(thr));
      const __m256i ones = _mm256_set1_epi8(1);
      uint32_t rej[4];
      for (int j = 0; j < 4; ++j) {
        const __m256i x = _mm256_xor_si256(_mm256_loadu_si256((const __m256i*)(p + 32 * j)), q.v);
        const __m256i c = _mm256_maddubs_epi16(popcnt8(x), ones);
        rej[j] = uint32_t(_mm256_movemask_epi8(_mm256_cmpgt_epi16(c, t)));
      }
      if ((rej[0] & rej[1] & rej[2] & rej[3]) == 0xffffffffu) return 0;
      for (int j = 0; j < 4; ++j) reject |= uint64_t(even_bits(rej[j])) << (16 * j);
    } else if constexpr (CB == 4) {
      const __m256i t = _mm256_set1_epi32(int(thr));
      const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
      for (int j = 0; j < 8; ++j) {
        const __m256i x = _mm256_xor_si256(_mm256_loadu_si256((const __m256i*)(p + 32 * j)), q.v);
        const __m256i c = _mm256_madd_epi16(_mm256_maddubs_epi16(popcnt8(x), ones8), ones16);
        reject |= uint64_t(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(c, t)))) << (8 * j);
      }
    } else if constexpr (CB == 8) {
      const __m256i t = _mm256_set1_epi64x(thr);
      for (int j = 0; j < 16; ++j) {
        const __m256i x = _mm256_xor_si256(_mm256_loadu_si256((const __m256i*)(p + 32 * j)), q.v);
        const __m256i c = _mm256_sad_epu8(popcnt8(x), zero);
        reject |= uint64_t(_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(c, t)))) << (4 * j);
      }
    } else if constexpr (CB == 16) {
      // Two vectors (4 codes) at a time: the unpacks pair up the two 64-bit halves of each code,
      // giving counts in the order (c0, c2, c1, c3); a 16-entry table restores (c0, c1, c2, c3).
      static constexpr uint8_t kOrder[16] = {0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15};
      const __m256i t = _mm256_set1_epi64x(thr);
      for (int j = 0; j < 16; ++j) {
        const __m256i xa = _mm256_xor_si256(_mm256_loadu_si256((const __m256i*)(p + 64 * j)), q.v);
        const __m256i xb = _mm256_xor_si256(_mm256_loadu_si256((const __m256i*)(p + 64 * j + 32)), q.v);
        const __m256i sa = _mm256_sad_epu8(popcnt8(xa), zero), sb = _mm256_sad_epu8(popcnt8(xb), zero);
        const __m256i c = _mm256_add_epi64(_mm256_unpacklo_epi64(sa, sb), _mm256_unpackhi_epi64(sa, sb));
        const int r = _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(c, t)));
        reject |= uint64_t(kOrder[r]) << (4 * j);
      }
    } else {  // CB == 32: one code per vector
      const __m256i t = _mm256_set1_epi64x(thr);
      for (int j = 0; j < 64; ++j) {
        const __m256i x = _mm256_xor_si256(_mm256_loadu_si256((const __m256i*)(p + 32 * j)), q.v);
        __m256i c = _mm256_sad_epu8(popcnt8(x), zero);
        c = _mm256_add_epi64(c, _mm256_shuffle_epi32(c, 0x4e));
        c = _mm256_add_epi64(c, _mm256_permute4x64_epi64(c, 0x4e));
        reject |= uint64_t(_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(c, t))) & 1) << j;
      }
    }
    return ~reject;
  }
};

// Any size: hardware popcount per 8-byte word.
struct KGeneric {
  struct Query {
    const uint8_t* p;
    CHS_TARGET Query(const uint8_t* q, size_t) : p(q) {}
  };
  static CHS_TARGET inline uint32_t dist(const uint8_t* code, const Query& q, size_t cb) {
    return dist_bytes(code, q.p, cb);
  }
  static CHS_TARGET inline uint64_t mask64(const uint8_t* p, const Query& q, uint32_t thr, size_t cb) {
    uint64_t m = 0;
    for (int j = 0; j < 64; ++j) m |= uint64_t(dist_bytes(p + j * cb, q.p, cb) <= thr) << j;
    return m;
  }
};

CHS_SCAN_TABLE(K, KGeneric)
#undef CHS_TARGET
}  // namespace isa_avx2

ScanFn scan_avx2(size_t cb, bool generic) { return isa_avx2::pick(cb, generic); }
}  // namespace chs

#else
namespace chs {
ScanFn scan_avx2(size_t, bool) { return nullptr; }
}  // namespace chs
#endif
