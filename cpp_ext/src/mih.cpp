#include "mih.hpp"

#include <algorithm>
#include <atomic>
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
  for (const auto& t : tables_) b += 4 * (t.offsets.size() + t.pos.size());
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

std::vector<uint64_t> MultiIndexHash::range(const uint8_t* db, const uint8_t* q, uint32_t radius,
                                            const SearchOptions& opt) const {
  const ScanFn verify = opt.isa == Isa::avx512 ? scan_avx512(cb_, false)
                        : opt.isa == Isa::avx2 ? scan_avx2(cb_, false)
                                               : scan_scalar(cb_, false);
  const int sub = int(radius / tables_.size());
  Collector c;
  c.reset_radius(std::min<uint32_t>(radius, uint32_t(cb_ * 8)), opt.deleted);
  std::vector<uint32_t> qkeys;
  for (const auto& t : tables_) qkeys.push_back(key_of(q, t));
  auto popcount32 = [](uint32_t x) { int c = 0; for (; x; x &= x - 1) ++c; return c; };
  for (size_t j = 0; j < tables_.size(); ++j) {
    const Table& t = tables_[j];
    auto visit = [&](uint32_t key) {
      for (uint32_t e = t.offsets[key]; e < t.offsets[key + 1]; ++e) {
        const uint32_t p = t.pos[e];
        const uint8_t* code = db + size_t(p) * cb_;
        bool seen = false;  // found already through an earlier table?
        for (size_t i = 0; i < j && !seen; ++i)
          seen = popcount32(key_of(code, tables_[i]) ^ qkeys[i]) <= sub;
        if (!seen) verify(db, p, size_t(p) + 1, q, cb_, c);
      }
    };
    for_each_neighbour(qkeys[j], 0, t.len, std::min(sub, t.len), visit);
  }
  std::sort(c.keys.begin(), c.keys.end());
  return std::move(c.keys);
}

}  // namespace chs
