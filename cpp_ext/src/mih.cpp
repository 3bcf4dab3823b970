#include "mih.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>

#include "pool.hpp"

namespace chs {
namespace {
// Calls fn(key') for every key' within Hamming distance `budget` of key over `len` bits, once each.
template <class Fn>
void for_each_neighbour(uint32_t key, int from, int len, int budget, Fn& fn) {
  fn(key);
  if (budget == 0) return;
  for (int i = from; i < len; ++i) for_each_neighbour(key ^ (1u << i), i + 1, len, budget - 1, fn);
}
}  // namespace

uint32_t MultiIndexHash::key_of(const uint8_t* code, const Table& t) const {
  const int b0 = t.start >> 3, b1 = (t.start + t.len - 1) >> 3;
  uint64_t v = 0;
  for (int b = b0; b <= b1; ++b) v = (v << 8) | code[b];
  const int shift = (b1 - b0 + 1) * 8 - ((t.start & 7) + t.len);
  return uint32_t((v >> shift) & ((uint64_t(1) << t.len) - 1));
}

MultiIndexHash::MultiIndexHash(const uint8_t* db, size_t n, size_t cb, const std::vector<int>& sub_bits,
                               int threads)
    : n_(n), cb_(cb) {
  if (n >= (size_t(1) << 32)) throw std::invalid_argument("multi-index hashing supports < 2^32 codes");
  int start = 0;
  for (int len : sub_bits) {
    if (len < 1 || len > 24) throw std::invalid_argument("substring lengths must be 1..24 bits");
    Table t;
    t.start = start;
    t.len = len;
    start += len;
    tables_.push_back(std::move(t));
  }
  if (tables_.empty() || size_t(start) > cb * 8)
    throw std::invalid_argument("substrings must be non-empty and fit in the code");
  Pool::instance().run(std::max(1, std::min<int>(threads, int(tables_.size()))), [&](int slot) {
    const int nslots = std::max(1, std::min<int>(threads, int(tables_.size())));
    for (size_t j = size_t(slot); j < tables_.size(); j += size_t(nslots)) {
      Table& t = tables_[j];
      t.offsets.assign((size_t(1) << t.len) + 1, 0);
      std::vector<uint32_t> keys(n);
      for (size_t i = 0; i < n; ++i) {
        keys[i] = key_of(db + i * cb, t);
        ++t.offsets[keys[i] + 1];
      }
      for (size_t b = 1; b < t.offsets.size(); ++b) t.offsets[b] += t.offsets[b - 1];
      t.pos.resize(n);
      std::vector<uint32_t> fill(t.offsets.begin(), t.offsets.end() - 1);
      for (size_t i = 0; i < n; ++i) t.pos[fill[keys[i]]++] = uint32_t(i);
      if (cb <= 8) {  // copy the codes into bucket order: a probe then reads one contiguous run
        t.codes.resize(n * cb);
        for (size_t e = 0; e < n; ++e) std::memcpy(&t.codes[e * cb], db + size_t(t.pos[e]) * cb, cb);
      }
    }
  });
}

std::vector<int> MultiIndexHash::sub_bits() const {
  std::vector<int> out;
  for (const auto& t : tables_) out.push_back(t.len);
  return out;
}

size_t MultiIndexHash::memory_bytes() const {
  size_t b = 0;
  for (const auto& t : tables_) b += 4 * (t.offsets.size() + t.pos.size()) + t.codes.size();
  return b;
}

void MultiIndexHash::cost(const uint8_t* q, uint32_t radius, uint64_t& probes, uint64_t& candidates) const {
  const int sub = int(radius / tables_.size());
  probes = candidates = 0;
  for (const auto& t : tables_) {
    auto count = [&](uint32_t key) {
      ++probes;
      candidates += t.offsets[key + 1] - t.offsets[key];
    };
    for_each_neighbour(key_of(q, t), 0, t.len, std::min(sub, t.len), count);
  }
}

namespace {
template <bool HwPopcnt>
inline uint32_t hamming(const uint8_t* a, const uint8_t* b, size_t cb);

// One portable body; the x86 variant inlines it under target("popcnt") so the compiler emits
// the POPCNT instruction there (a callee without target attributes may inline into any target).
__attribute__((always_inline)) inline uint32_t hamming_body(const uint8_t* a, const uint8_t* b, size_t cb) {
  uint32_t d = 0;
  size_t j = 0;
  for (; j + 8 <= cb; j += 8) {
    uint64_t x, y;
    std::memcpy(&x, a + j, 8);
    std::memcpy(&y, b + j, 8);
    d += uint32_t(__builtin_popcountll(x ^ y));
  }
  for (; j < cb; ++j) d += uint32_t(__builtin_popcount(unsigned(a[j] ^ b[j])));
  return d;
}

template <>
inline uint32_t hamming<false>(const uint8_t* a, const uint8_t* b, size_t cb) { return hamming_body(a, b, cb); }

#if defined(__x86_64__) || defined(_M_X64)
__attribute__((target("popcnt"))) inline uint32_t hamming_hw(const uint8_t* a, const uint8_t* b, size_t cb) {
  return hamming_body(a, b, cb);
}
template <>
inline uint32_t hamming<true>(const uint8_t* a, const uint8_t* b, size_t cb) { return hamming_hw(a, b, cb); }
#else
template <>
inline uint32_t hamming<true>(const uint8_t* a, const uint8_t* b, size_t cb) { return hamming<false>(a, b, cb); }
#endif
}  // namespace

template <bool HwPopcnt>
void MultiIndexHash::probe_all(const uint8_t* db, const uint8_t* q, uint32_t radius, Collector& c) const {
  const int sub = int(radius / tables_.size());
  std::vector<uint32_t> qkeys;
  for (const auto& t : tables_) qkeys.push_back(key_of(q, t));
  for (size_t j = 0; j < tables_.size(); ++j) {
    const Table& t = tables_[j];
    auto visit = [&](uint32_t key) {
      for (uint32_t e = t.offsets[key]; e < t.offsets[key + 1]; ++e) {
        const uint32_t p = t.pos[e];
        const uint8_t* code = t.codes.empty() ? db + size_t(p) * cb_ : &t.codes[size_t(e) * cb_];
        const uint32_t d = hamming<HwPopcnt>(code, q, cb_);
        if (int32_t(d) > c.limit || c.is_deleted(p)) continue;
        bool seen = false;  // found already through an earlier table?
        for (size_t i = 0; i < j && !seen; ++i)
          seen = __builtin_popcount(key_of(code, tables_[i]) ^ qkeys[i]) <= sub;
        if (!seen) c.push(d, p);
      }
    };
    for_each_neighbour(qkeys[j], 0, t.len, std::min(sub, t.len), visit);
  }
}

std::vector<uint64_t> MultiIndexHash::range(const uint8_t* db, const uint8_t* q, uint32_t radius,
                                            const SearchOptions& opt) const {
  Collector c;
  c.reset_radius(std::min<uint32_t>(radius, uint32_t(cb_ * 8)), opt.deleted);
  if (opt.isa != Isa::scalar) probe_all<true>(db, q, radius, c);  // AVX2/AVX-512 CPUs have POPCNT (AArch64: same code)
  else probe_all<false>(db, q, radius, c);
  std::sort(c.keys.begin(), c.keys.end());
  return std::move(c.keys);
}

}  // namespace chs
