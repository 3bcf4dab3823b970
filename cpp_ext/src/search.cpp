// Search orchestration: the collector, ISA dispatch and the threading plan.
//
// Threading: one Pool::run (one parallel region) per search. With fewer queries than threads the
// database is cut into chunks that the threads claim dynamically (so even one query uses every
// thread); with more queries, threads claim tiles of queries and scan the database in L2-sized
// blocks for the whole tile (the block is read from memory once per tile).
#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>

#include "hamming.hpp"
#include "pool.hpp"

#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace chs {

// ---------------------------------------------------------------- collector
void Collector::reset_knn(uint32_t bits, size_t k, const uint8_t* tombstones) {
  knn_ = true;
  k_ = k;
  limit = int32_t(bits);
  kth_ = bits + 1;
  below_ = 0;
  cap_ = std::max<size_t>(2 * k, 256);
  deleted = tombstones;
  keys.clear();
  hist_.assign(bits + 2, 0);
}

void Collector::reset_radius(uint32_t radius, const uint8_t* tombstones) {
  knn_ = false;
  limit = int32_t(radius);
  deleted = tombstones;
  keys.clear();
}

void Collector::push(uint32_t d, uint64_t pos) {
  keys.push_back(make_key(d, pos));
  if (!knn_) return;
  ++hist_[d];
  if (++below_ < k_) return;
  // Walk the threshold down: kth = smallest t with (#admitted with d <= t) >= k.
  uint32_t t = uint32_t(limit);
  size_t prefix = below_;
  while (t > 0 && prefix - hist_[t] >= k_) prefix -= hist_[t--];
  kth_ = t;
  limit = int32_t(t) - 1;
  below_ = prefix - hist_[t];
  if (keys.size() >= cap_) compact();
}

void Collector::compact() {
  if (!knn_ || keys.size() <= k_) return;
  // Keys are in position order: keep every d < kth and the earliest (k - below) at d == kth.
  size_t at_kth = k_ - below_, w = 0;
  for (uint64_t key : keys) {
    const uint32_t d = key_dist(key);
    if (d < kth_ || (d == kth_ && at_kth > 0)) {
      if (d == kth_) --at_kth;
      keys[w++] = key;
    }
  }
  keys.resize(w);
  std::fill(hist_.begin(), hist_.end(), 0);
  for (uint64_t key : keys) ++hist_[key_dist(key)];
}

void counting_sort_by_distance(std::vector<uint64_t>& keys, uint32_t max_d) {
  if (keys.size() < 2) return;
  std::vector<size_t> start(max_d + 2, 0);
  for (uint64_t key : keys) ++start[key_dist(key) + 1];
  for (size_t d = 1; d < start.size(); ++d) start[d] += start[d - 1];
  std::vector<uint64_t> out(keys.size());
  for (uint64_t key : keys) out[start[key_dist(key)]++] = key;
  keys.swap(out);
}

// ---------------------------------------------------------------- dispatch
const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    case Isa::neon: return "neon";
    default: return "scalar";
  }
}

static bool cpu_has(Isa isa) {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vpopcntdq") &&
             __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt");
    case Isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
    default: return isa == Isa::scalar;
  }
#elif defined(__aarch64__) && defined(__linux__)
  return isa == Isa::scalar || (isa == Isa::neon && (getauxval(AT_HWCAP) & HWCAP_ASIMD));
#else
  return isa == Isa::scalar;
#endif
}

std::vector<std::string> isa_available() {
  std::vector<std::string> out;
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::neon, Isa::scalar})
    if (cpu_has(isa)) out.emplace_back(isa_name(isa));
  return out;
}

Isa isa_best() {
  static const Isa best = [] {
    for (Isa isa : {Isa::avx512, Isa::avx2, Isa::neon})
      if (cpu_has(isa)) return isa;
    return Isa::scalar;
  }();
  return best;
}

Isa isa_parse(const std::string& name) {
  Isa isa;
  if (name == "auto") return isa_best();
  if (name == "avx512") isa = Isa::avx512;
  else if (name == "avx2") isa = Isa::avx2;
  else if (name == "neon") isa = Isa::neon;
  else if (name == "scalar") isa = Isa::scalar;
  else throw std::invalid_argument("unknown ISA '" + name + "' (expected auto, scalar, avx2, avx512 or neon)");
  if (!cpu_has(isa)) throw std::invalid_argument("this CPU cannot run the '" + name + "' kernels");
  return isa;
}

static ScanFn pick_scan(const SearchOptions& opt, size_t cb) {
  switch (opt.isa) {
    case Isa::avx512: return scan_avx512(cb, opt.generic);
    case Isa::avx2: return scan_avx2(cb, opt.generic);
    case Isa::neon: return scan_neon(cb, opt.generic);
    default: return scan_scalar(cb, opt.generic);
  }
}

// ---------------------------------------------------------------- planning
namespace {
constexpr size_t kBlockBytes = 256 * 1024;   // database block kept in L2 while a query tile runs
constexpr size_t kMinBytesPerThread = 64 * 1024;

size_t codes_per(size_t bytes, size_t cb) { return std::max<size_t>(64, (bytes / cb) & ~size_t(63)); }

struct Plan {
  bool split_db;
  int slots;
  size_t chunk;      // codes per claimed database chunk (split_db)
  size_t tile;       // queries per claimed tile (!split_db)
};

Plan make_plan(size_t n, size_t cb, size_t nq, int threads) {
  Plan p{};
  const size_t bytes = n * cb;
  const int useful = int(std::max<size_t>(1, std::min<size_t>(threads, bytes / kMinBytesPerThread + 1)));
  if (nq < size_t(useful)) {
    p.split_db = true;
    const size_t chunk_bytes = std::clamp<size_t>(bytes / (8 * size_t(useful)), 16 * 1024, kBlockBytes);
    p.chunk = codes_per(chunk_bytes, cb);
    const size_t nchunks = (n + p.chunk - 1) / p.chunk;
    p.slots = int(std::max<size_t>(1, std::min<size_t>(useful, nchunks)));
  } else {
    p.split_db = false;
    p.tile = std::clamp<size_t>(nq / (4 * size_t(useful)), 1, 32);
    const size_t ntiles = (nq + p.tile - 1) / p.tile;
    p.slots = int(std::min<size_t>(useful, ntiles));
  }
  return p;
}

// Runs the scan of every query against the whole database; `reset(c)` prepares a collector and
// `emit(q, collectors_of_q)` consumes the per-slot collectors of query q.
template <class Reset, class Emit>
void run_search(const uint8_t* db, size_t n, size_t cb, const uint8_t* queries, size_t nq,
                const SearchOptions& opt, Reset reset, Emit emit) {
  const ScanFn scan = pick_scan(opt, cb);
  if (scan == nullptr) throw std::runtime_error("kernel not compiled for this architecture");
  const Plan plan = make_plan(n, cb, nq, std::max(1, opt.threads));
  if (plan.split_db) {
    std::vector<std::vector<Collector>> per_slot(plan.slots, std::vector<Collector>(nq));
    std::atomic<size_t> next{0};
    const size_t nchunks = (n + plan.chunk - 1) / plan.chunk;
    Pool::instance().run(plan.slots, [&](int slot) {
      auto& cs = per_slot[slot];
      for (auto& c : cs) reset(c);
      for (size_t ch; (ch = next.fetch_add(1)) < nchunks;) {
        const size_t b = ch * plan.chunk, e = std::min(n, b + plan.chunk);
        for (size_t q = 0; q < nq; ++q) scan(db, b, e, queries + q * cb, cb, cs[q]);
      }
    });
    std::vector<Collector*> group(plan.slots);
    for (size_t q = 0; q < nq; ++q) {
      for (int s = 0; s < plan.slots; ++s) group[s] = &per_slot[s][q];
      emit(q, group);
    }
  } else {
    std::atomic<size_t> next{0};
    const size_t ntiles = (nq + plan.tile - 1) / plan.tile;
    const size_t block = codes_per(kBlockBytes, cb);
    Pool::instance().run(plan.slots, [&](int) {
      std::vector<Collector> cs(plan.tile);
      std::vector<Collector*> one(1);
      for (size_t t; (t = next.fetch_add(1)) < ntiles;) {
        const size_t q0 = t * plan.tile, q1 = std::min(nq, q0 + plan.tile);
        for (size_t q = q0; q < q1; ++q) reset(cs[q - q0]);
        for (size_t b = 0; b < n; b += block) {
          const size_t e = std::min(n, b + block);
          for (size_t q = q0; q < q1; ++q) scan(db, b, e, queries + q * cb, cb, cs[q - q0]);
        }
        for (size_t q = q0; q < q1; ++q) {
          one[0] = &cs[q - q0];
          emit(q, one);
        }
      }
    });
  }
}

// Merges the collectors of one query into keys sorted by (distance, position).
std::vector<uint64_t> merged_keys(std::vector<Collector*>& group, uint32_t max_d, bool knn) {
  if (group.size() == 1) {
    auto& c = *group[0];
    if (knn) c.compact();
    std::vector<uint64_t> keys = std::move(c.keys);
    counting_sort_by_distance(keys, max_d);  // one slot: keys are in position order
    return keys;
  }
  std::vector<uint64_t> keys;
  size_t total = 0;
  for (auto* c : group) {
    if (knn) c->compact();
    total += c->keys.size();
  }
  keys.reserve(total);
  for (auto* c : group) keys.insert(keys.end(), c->keys.begin(), c->keys.end());
  std::sort(keys.begin(), keys.end());
  return keys;
}
}  // namespace

// ---------------------------------------------------------------- entry points
void knn_search(const uint8_t* db, size_t n, size_t cb, const uint8_t* queries, size_t nq, size_t k,
                const SearchOptions& opt, int32_t* out_d, int64_t* out_pos) {
  std::fill(out_d, out_d + nq * k, -1);
  std::fill(out_pos, out_pos + nq * k, -1);
  if (k == 0 || nq == 0 || n == 0) return;
  const uint32_t bits = uint32_t(cb * 8);
  const size_t kk = std::min(k, n);  // never keep more than n candidates per query
  run_search(
      db, n, cb, queries, nq, opt, [&](Collector& c) { c.reset_knn(bits, kk, opt.deleted); },
      [&](size_t q, std::vector<Collector*>& group) {
        const std::vector<uint64_t> keys = merged_keys(group, bits, true);
        const size_t m = std::min(keys.size(), k);
        for (size_t j = 0; j < m; ++j) {
          out_d[q * k + j] = int32_t(key_dist(keys[j]));
          out_pos[q * k + j] = key_pos(keys[j]);
        }
      });
}

std::vector<std::vector<uint64_t>> range_search(const uint8_t* db, size_t n, size_t cb,
                                                const uint8_t* queries, size_t nq, uint32_t radius,
                                                const SearchOptions& opt) {
  std::vector<std::vector<uint64_t>> out(nq);
  if (nq == 0 || n == 0) return out;
  const uint32_t r = std::min<uint32_t>(radius, uint32_t(cb * 8));
  run_search(
      db, n, cb, queries, nq, opt, [&](Collector& c) { c.reset_radius(r, opt.deleted); },
      [&](size_t q, std::vector<Collector*>& group) { out[q] = merged_keys(group, r, false); });
  return out;
}

// Reads `bytes` with `threads` threads (XOR of 32-byte words): the read bandwidth that a scan of the
// same array can reach, measured the same way the benchmark measures the kernels.
#if defined(__x86_64__) || defined(_M_X64)
__attribute__((target("avx2"))) static uint64_t xor_read_avx2(const uint8_t* p, size_t bytes) {
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  size_t i = 0;
  for (; i + 128 <= bytes; i += 128) {
    a = _mm256_xor_si256(a, _mm256_loadu_si256((const __m256i*)(p + i)));
    b = _mm256_xor_si256(b, _mm256_loadu_si256((const __m256i*)(p + i + 32)));
    c = _mm256_xor_si256(c, _mm256_loadu_si256((const __m256i*)(p + i + 64)));
    d = _mm256_xor_si256(d, _mm256_loadu_si256((const __m256i*)(p + i + 96)));
  }
  a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
  alignas(32) uint64_t w[4];
  _mm256_store_si256((__m256i*)w, a);
  uint64_t r = w[0] ^ w[1] ^ w[2] ^ w[3];
  for (; i < bytes; ++i) r ^= p[i];
  return r;
}
#endif

static uint64_t xor_read(const uint8_t* p, size_t bytes) {
#if defined(__x86_64__) || defined(_M_X64)
  if (cpu_has(Isa::avx2)) return xor_read_avx2(p, bytes);
#endif
  uint64_t r = 0;
  for (size_t i = 0; i < bytes; ++i) r ^= p[i];
  return r;
}

uint64_t stream_read(const uint8_t* p, size_t bytes, int threads) {
  const size_t chunk = 256 * 1024;
  const size_t nchunks = (bytes + chunk - 1) / chunk;
  const int slots = int(std::max<size_t>(1, std::min<size_t>(size_t(std::max(1, threads)), nchunks)));
  std::vector<uint64_t> acc(size_t(slots), 0);
  std::atomic<size_t> next{0};
  Pool::instance().run(slots, [&](int s) {
    for (size_t c; (c = next.fetch_add(1)) < nchunks;)
      acc[size_t(s)] ^= xor_read(p + c * chunk, std::min(chunk, bytes - c * chunk));
  });
  uint64_t r = 0;
  for (uint64_t a : acc) r ^= a;
  return r;
}

}  // namespace chs
