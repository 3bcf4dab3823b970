// Shared declarations of the CPU Hamming search: the candidate collector (top-k by histogram
// threshold, or radius), the per-ISA scan functions and the search entry points.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace chs {

// A result is packed as (distance << 48) | position, so sorting keys sorts by (distance, position):
// ties are broken by insertion order.
constexpr int kPosBits = 48;
inline uint64_t make_key(uint32_t d, uint64_t pos) { return (uint64_t(d) << kPosBits) | pos; }
inline uint32_t key_dist(uint64_t key) { return uint32_t(key >> kPosBits); }
inline int64_t key_pos(uint64_t key) { return int64_t(key & ((uint64_t(1) << kPosBits) - 1)); }

// Collects candidates of one query from one contiguous, increasing run of positions.
// kNN: admits d <= limit; `limit` is one below the current k-th distance, found from a histogram of
// the admitted distances (distances are integers in 0..bits, so the threshold walk is O(bits) in
// total and k has no upper bound). Radius: limit = r, fixed.
struct alignas(64) Collector {  // own cache lines: slots scanning in parallel never share one
  int32_t limit = 0;
  const uint8_t* deleted = nullptr;  // tombstone bitmap (bit i of byte i/8, LSB first) or null
  std::vector<uint64_t> keys;

  void reset_knn(uint32_t bits, size_t k, const uint8_t* tombstones);
  void reset_radius(uint32_t radius, const uint8_t* tombstones);
  bool is_deleted(size_t pos) const { return deleted && ((deleted[pos >> 3] >> (pos & 7)) & 1); }
  void push(uint32_t d, uint64_t pos);  // precondition: d <= limit
  void compact();                        // kNN: keep exactly the best min(k, admitted) keys

 private:
  bool knn_ = false;
  size_t k_ = 0;
  uint32_t kth_ = 0;   // current k-th distance once `below_ + hist_[kth_] >= k`
  size_t below_ = 0;   // admitted keys with d <= limit
  size_t cap_ = 0;     // compaction trigger
  std::vector<uint32_t> hist_;
};

using ScanFn = void (*)(const uint8_t* db, size_t begin, size_t end, const uint8_t* query,
                        size_t code_bytes, Collector& c);

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2, neon = 3 };

// Per-ISA scan function for a code size (bytes); generic=true forces the any-size kernel.
ScanFn scan_scalar(size_t code_bytes, bool generic);
ScanFn scan_avx2(size_t code_bytes, bool generic);
ScanFn scan_avx512(size_t code_bytes, bool generic);
ScanFn scan_neon(size_t code_bytes, bool generic);  // AArch64 only (nullptr elsewhere)

std::vector<std::string> isa_available();
Isa isa_best();
Isa isa_parse(const std::string& name);  // "auto", "scalar", "avx2", "avx512", "neon"; throws if unavailable
const char* isa_name(Isa isa);

struct SearchOptions {
  Isa isa = Isa::scalar;
  bool generic = false;
  int threads = 1;
  const uint8_t* deleted = nullptr;
};

// out_d/out_pos: nq*k, padded with -1 when fewer than k live codes exist.
void knn_search(const uint8_t* db, size_t n, size_t code_bytes, const uint8_t* queries, size_t nq,
                size_t k, const SearchOptions& opt, int32_t* out_d, int64_t* out_pos);

// Per-query sorted keys of every live code with d <= radius.
std::vector<std::vector<uint64_t>> range_search(const uint8_t* db, size_t n, size_t code_bytes,
                                                const uint8_t* queries, size_t nq, uint32_t radius,
                                                const SearchOptions& opt);

// Reads every byte with `threads` threads; returns an XOR checksum (a read-bandwidth probe).
uint64_t stream_read(const uint8_t* p, size_t bytes, int threads);

// Stable counting sort of keys (already in position order) by distance.
void counting_sort_by_distance(std::vector<uint64_t>& keys, uint32_t max_d);

}  // namespace chs
