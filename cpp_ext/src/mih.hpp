// Multi-index hashing (Norouzi, Punjani, Fleet, CVPR 2012) for exact radius search at small radii:
// codes are cut into m disjoint substrings, each indexed by a flat counting-sort table (offsets +
// positions, no hash maps). If d(q, x) <= r then some substring differs by at most floor(r/m) bits
// (pigeonhole), so probing every key within floor(r/m) of each query substring finds every hit.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "hamming.hpp"

namespace chs {

class MultiIndexHash {
 public:
  // sub_bits: lengths of the consecutive substrings (MSB-first), each 1..24 bits, summing to <= bits.
  MultiIndexHash(const uint8_t* db, size_t n, size_t code_bytes, const std::vector<int>& sub_bits,
                 int threads);
  size_t size() const { return n_; }
  size_t code_bytes() const { return cb_; }
  std::vector<int> sub_bits() const;
  size_t memory_bytes() const;
  // Number of table probes and of candidate entries a radius-r query would visit.
  void cost(const uint8_t* q, uint32_t radius, uint64_t& probes, uint64_t& candidates) const;
  // Keys (distance << 48 | position) of every live code within radius, sorted.
  std::vector<uint64_t> range(const uint8_t* db, const uint8_t* q, uint32_t radius,
                              const SearchOptions& opt) const;

 private:
  struct Table {
    int start = 0, len = 0;
    std::vector<uint32_t> offsets;  // 2^len + 1
    std::vector<uint32_t> pos;      // positions grouped by substring value, increasing within a bucket
    std::vector<uint8_t> codes;     // codes in bucket order (codes <= 64 bits): sequential verification
  };
  uint32_t key_of(const uint8_t* code, const Table& t) const;
  template <bool HwPopcnt>
  void probe_all(const uint8_t* db, const uint8_t* q, uint32_t radius, Collector& c) const;
  size_t n_, cb_;
  std::vector<Table> tables_;
};

}  // namespace chs
