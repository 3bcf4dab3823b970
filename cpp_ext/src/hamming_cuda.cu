// CUDA Hamming search (bound by cuda_bindings.cpp; the contract is chain_sdk/index/reference.py). Design:
//  * every pass is a grid over the database, so one query uses the whole GPU; blocks hold a tile of
//    queries in shared memory and test every database code they read against the whole tile;
//  * k-selection by histogram: distances are integers 0..bits, so pass 1 builds a per-query
//    histogram, the k-th distance (kth) follows from its prefix sums, and there is no cap on k;
//  * an ordered compaction (pass 2 counts per block, a scan, pass 3 writes with warp ballots) keeps
//    every d < kth and the first (k - #(d < kth)) codes at d == kth in position order, which is the
//    insertion-order tie-break of the CPU kernels; a segmented radix sort of (d << 48 | pos) keys
//    orders each query's results. Radius search is the same with kth = radius + 1.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cub/cub.cuh>
#include <stdexcept>
#include <string>
#include <vector>

#include "hamming_cuda.hpp"

namespace chs_cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr size_t kQueryBatch = 8192;  // queries per launch sequence (bounds the scratch memory)

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA ") + what + ": " + cudaGetErrorString(e));
}

template <class T>
struct DevBuf {
  T* p = nullptr;
  explicit DevBuf(size_t n) {
    if (n) check(cudaMalloc(reinterpret_cast<void**>(&p), n * sizeof(T)), "cudaMalloc");
  }
  ~DevBuf() {
    if (p) cudaFree(p);
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  T* release() {
    T* r = p;
    p = nullptr;
    return r;
  }
};

__device__ __forceinline__ bool is_deleted(const uint8_t* del, size_t i) {
  return del != nullptr && ((del[i >> 3] >> (i & 7)) & 1);
}

// CB = code bytes for the word-load kernels, 0 for the any-size byte loop.
template <int CB>
__device__ __forceinline__ uint32_t dist(const uint8_t* __restrict__ code, const uint8_t* __restrict__ q, int cb) {
  if constexpr (CB == 0) {
    uint32_t d = 0;
    for (int j = 0; j < cb; ++j) d += __popc(uint32_t(code[j] ^ q[j]));
    return d;
  } else if constexpr (CB == 2) {
    return __popc(uint32_t(*reinterpret_cast<const uint16_t*>(code) ^ *reinterpret_cast<const uint16_t*>(q)));
  } else if constexpr (CB == 4) {
    return __popc(*reinterpret_cast<const uint32_t*>(code) ^ *reinterpret_cast<const uint32_t*>(q));
  } else {
    uint32_t d = 0;
#pragma unroll
    for (int j = 0; j < CB; j += 8)
      d += __popcll(*reinterpret_cast<const unsigned long long*>(code + j) ^
                    *reinterpret_cast<const unsigned long long*>(q + j));
    return d;
  }
}

__device__ __forceinline__ int qstride(int cb) { return (cb + 15) & ~15; }

// Copies this block's query tile into shared memory (16-byte aligned rows); returns its size.
__device__ int load_tile(uint8_t* sq, const uint8_t* queries, int nq, int cb, int qt) {
  const int q0 = blockIdx.y * qt, nt = min(qt, nq - q0);
  for (int i = threadIdx.x; i < nt * cb; i += blockDim.x) sq[(i / cb) * qstride(cb) + i % cb] = queries[size_t(q0) * cb + i];
  return nt;
}

template <int CB>
__global__ void hist_kernel(const uint8_t* __restrict__ db, size_t n, int cb, const uint8_t* __restrict__ queries,
                            int nq, int qt, const uint8_t* __restrict__ del, uint32_t* __restrict__ hist) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int bins = cb * 8 + 1;
  uint8_t* sq = smem;
  uint32_t* sh = reinterpret_cast<uint32_t*>(smem + qt * qstride(cb));
  const int nt = load_tile(sq, queries, nq, cb, qt);
  for (int i = threadIdx.x; i < nt * bins; i += blockDim.x) sh[i] = 0;
  __syncthreads();
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    if (is_deleted(del, i)) continue;
    const uint8_t* code = db + i * cb;
    for (int t = 0; t < nt; ++t) atomicAdd(&sh[t * bins + dist<CB>(code, sq + t * qstride(cb), cb)], 1u);
  }
  __syncthreads();
  const size_t q0 = size_t(blockIdx.y) * qt;
  for (int i = threadIdx.x; i < nt * bins; i += blockDim.x)
    if (sh[i]) atomicAdd(&hist[q0 * bins + i], sh[i]);
}

// One thread per query: kth (collect d < kth, then the first need_eq at d == kth) and the count.
__global__ void select_kernel(const uint32_t* __restrict__ hist, int nq, int bits, long long k, int radius,
                              uint32_t* kth, uint64_t* below, uint64_t* need_eq, int64_t* count) {
  const int q = blockIdx.x * blockDim.x + threadIdx.x;
  if (q >= nq) return;
  const uint32_t* h = hist + size_t(q) * (bits + 1);
  if (radius >= 0) {
    uint64_t c = 0;
    for (int d = 0; d <= min(radius, bits); ++d) c += h[d];
    kth[q] = uint32_t(radius) + 1;
    below[q] = c;
    need_eq[q] = 0;
    count[q] = int64_t(c);
    return;
  }
  uint64_t total = 0;
  for (int d = 0; d <= bits; ++d) total += h[d];
  const uint64_t keff = min(uint64_t(k), total);
  uint64_t pre = 0;
  int t = 0;
  if (keff == total) {
    t = bits + 1;
    pre = total;
  } else {
    for (; t <= bits && pre + h[t] < keff; ++t) pre += h[t];
  }
  kth[q] = uint32_t(t);
  below[q] = pre;
  need_eq[q] = keff - pre;
  count[q] = int64_t(keff);
}

template <int CB>
__global__ void count_kernel(const uint8_t* __restrict__ db, size_t n, int cb, const uint8_t* __restrict__ queries,
                             int nq, int qt, const uint8_t* __restrict__ del, const uint32_t* __restrict__ kth,
                             size_t span, uint32_t* lt_cnt, uint32_t* eq_cnt) {
  extern __shared__ __align__(16) unsigned char smem[];
  using Reduce = cub::BlockReduce<uint32_t, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  const int nt = load_tile(smem, queries, nq, cb, qt);
  __syncthreads();
  const size_t begin = blockIdx.x * span, end = min(n, begin + span);
  for (int t = 0; t < nt; ++t) {
    const int q = blockIdx.y * qt + t;
    const uint32_t K = kth[q];
    uint32_t lt = 0, eq = 0;
    for (size_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
      if (is_deleted(del, i)) continue;
      const uint32_t d = dist<CB>(db + i * cb, smem + t * qstride(cb), cb);
      lt += d < K;
      eq += d == K;
    }
    const uint32_t lt_sum = Reduce(tmp).Sum(lt);
    __syncthreads();
    const uint32_t eq_sum = Reduce(tmp).Sum(eq);
    __syncthreads();
    if (threadIdx.x == 0) {
      lt_cnt[size_t(q) * gridDim.x + blockIdx.x] = lt_sum;
      eq_cnt[size_t(q) * gridDim.x + blockIdx.x] = eq_sum;
    }
  }
}

// Exclusive scan of the per-block counts of each query (one thread per query; nblocks is small).
__global__ void scan_kernel(int nq, int nblocks, uint32_t* lt_cnt, uint32_t* eq_cnt) {
  const int q = blockIdx.x * blockDim.x + threadIdx.x;
  if (q >= nq) return;
  uint32_t a = 0, b = 0;
  for (int j = 0; j < nblocks; ++j) {
    const uint32_t x = lt_cnt[size_t(q) * nblocks + j], y = eq_cnt[size_t(q) * nblocks + j];
    lt_cnt[size_t(q) * nblocks + j] = a;
    eq_cnt[size_t(q) * nblocks + j] = b;
    a += x;
    b += y;
  }
}

template <int CB>
__global__ void write_kernel(const uint8_t* __restrict__ db, size_t n, int cb, const uint8_t* __restrict__ queries,
                             int nq, int qt, const uint8_t* __restrict__ del, const uint32_t* __restrict__ kth,
                             const uint64_t* __restrict__ below, const uint64_t* __restrict__ need_eq, size_t span,
                             const uint32_t* __restrict__ lt_off, const uint32_t* __restrict__ eq_off,
                             const int64_t* __restrict__ seg, unsigned long long* __restrict__ keys) {
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ uint32_t warp_lt[kWarps], warp_eq[kWarps];
  const int nt = load_tile(smem, queries, nq, cb, qt);
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const unsigned lower = (1u << lane) - 1u;
  const size_t begin = blockIdx.x * span, end = min(n, begin + span);
  for (int t = 0; t < nt; ++t) {
    const int q = blockIdx.y * qt + t;
    const uint32_t K = kth[q];
    const uint64_t ne = need_eq[q], bl = below[q];
    uint64_t base_lt = lt_off[size_t(q) * gridDim.x + blockIdx.x];
    uint64_t base_eq = eq_off[size_t(q) * gridDim.x + blockIdx.x];
    unsigned long long* out = keys + seg[q];
    for (size_t r = begin; r < end; r += blockDim.x) {  // every thread runs the same rounds
      const size_t i = r + threadIdx.x;
      uint32_t d = 0xffffffffu;
      if (i < end && !is_deleted(del, i)) d = dist<CB>(db + i * cb, smem + t * qstride(cb), cb);
      const bool lt = d < K, eq = d == K;
      const unsigned blt = __ballot_sync(0xffffffffu, lt), beq = __ballot_sync(0xffffffffu, eq);
      if (lane == 0) {
        warp_lt[warp] = __popc(blt);
        warp_eq[warp] = __popc(beq);
      }
      __syncthreads();
      uint32_t off_lt = 0, off_eq = 0, tot_lt = 0, tot_eq = 0;
      for (int w = 0; w < kWarps; ++w) {
        if (w < warp) {
          off_lt += warp_lt[w];
          off_eq += warp_eq[w];
        }
        tot_lt += warp_lt[w];
        tot_eq += warp_eq[w];
      }
      const unsigned long long key = (static_cast<unsigned long long>(d) << 48) | i;
      if (lt) out[base_lt + off_lt + __popc(blt & lower)] = key;
      if (eq) {
        const uint64_t rank = base_eq + off_eq + __popc(beq & lower);
        if (rank < ne) out[bl + rank] = key;
      }
      base_lt += tot_lt;
      base_eq += tot_eq;
      __syncthreads();
    }
  }
}

__global__ void unpack_kernel(const unsigned long long* __restrict__ keys, size_t m, int32_t* d, int64_t* pos) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < m; i += size_t(gridDim.x) * blockDim.x) {
    const unsigned long long k = keys[i];
    const bool empty = k == ~0ull;
    d[i] = empty ? -1 : int32_t(k >> 48);
    pos[i] = empty ? -1 : int64_t(k & ((1ull << 48) - 1));
  }
}

struct Launch {
  int cbt;     // template code size (0 = generic)
  int qt;      // queries per block tile
  size_t smem; // dynamic shared memory of the hist kernel
  int nblocks; // database blocks (grid.x)
  size_t span; // codes per block in the ordered passes
};

Launch plan(const uint8_t* db, size_t n, size_t cb, size_t nq) {
  Launch L{};
  int dev = 0, sms = 1;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "attribute");
  const bool aligned = reinterpret_cast<uintptr_t>(db) % 16 == 0;
  L.cbt = aligned && (cb == 2 || cb == 4 || cb == 8 || cb == 16 || cb == 32) ? int(cb) : 0;
  const size_t bins = cb * 8 + 1, qs = (cb + 15) & ~size_t(15);
  L.qt = int(std::max<size_t>(1, std::min<size_t>({8, nq, (40 * 1024) / (bins * 4 + qs)})));
  L.smem = size_t(L.qt) * (qs + bins * 4);
  if (L.smem > 48 * 1024) throw std::invalid_argument("the CUDA kernels support codes of up to 10,000 bits");
  const size_t want = std::max<size_t>(1, (n + kThreads - 1) / kThreads);
  L.nblocks = int(std::min<size_t>(want, size_t(sms) * 4));
  L.span = ((n + L.nblocks - 1) / L.nblocks + kThreads - 1) / kThreads * kThreads;
  if (L.span == 0) L.span = kThreads;
  return L;
}

#define CHS_LAUNCH(CBT, KERNEL, GRID, BLOCK, SMEM, ...)                      \
  switch (CBT) {                                                          \
    case 2: KERNEL<2><<<GRID, BLOCK, SMEM>>>(__VA_ARGS__); break;         \
    case 4: KERNEL<4><<<GRID, BLOCK, SMEM>>>(__VA_ARGS__); break;         \
    case 8: KERNEL<8><<<GRID, BLOCK, SMEM>>>(__VA_ARGS__); break;         \
    case 16: KERNEL<16><<<GRID, BLOCK, SMEM>>>(__VA_ARGS__); break;       \
    case 32: KERNEL<32><<<GRID, BLOCK, SMEM>>>(__VA_ARGS__); break;       \
    default: KERNEL<0><<<GRID, BLOCK, SMEM>>>(__VA_ARGS__); break;        \
  }

// Passes 1-3 for one batch of queries (radius < 0: kNN). Returns the per-query result counts in
// host_count_out; with dev_seg, also writes each query's keys at dev_keys + dev_seg[q].
void select_and_write(const uint8_t* db, size_t n, size_t cb, const uint8_t* queries, size_t nq, long long k,
                      int radius, const uint8_t* del, const Launch& L, const int64_t* dev_seg,
                      unsigned long long* dev_keys, std::vector<int64_t>* host_count_out) {
  const int bits = int(cb * 8), bins = bits + 1;
  const dim3 grid(L.nblocks, unsigned((nq + L.qt - 1) / L.qt));
  DevBuf<uint32_t> hist(nq * bins), kth(nq), lt(nq * L.nblocks), eq(nq * L.nblocks);
  DevBuf<uint64_t> below(nq), need(nq);
  DevBuf<int64_t> count(nq);
  check(cudaMemset(hist.p, 0, nq * bins * sizeof(uint32_t)), "memset");
  const int icb = int(cb), inq = int(nq);
  CHS_LAUNCH(L.cbt, hist_kernel, grid, kThreads, L.smem, db, n, icb, queries, inq, L.qt, del, hist.p)
  check(cudaGetLastError(), "hist_kernel");
  select_kernel<<<unsigned((nq + 127) / 128), 128>>>(hist.p, inq, bits, k, radius, kth.p, below.p, need.p, count.p);
  check(cudaGetLastError(), "select_kernel");
  const size_t tile_smem = size_t(L.qt) * ((cb + 15) & ~size_t(15));
  CHS_LAUNCH(L.cbt, count_kernel, grid, kThreads, tile_smem, db, n, icb, queries, inq, L.qt, del, kth.p, L.span, lt.p, eq.p)
  check(cudaGetLastError(), "count_kernel");
  scan_kernel<<<unsigned((nq + 127) / 128), 128>>>(inq, L.nblocks, lt.p, eq.p);
  check(cudaGetLastError(), "scan_kernel");
  host_count_out->resize(nq);
  check(cudaMemcpy(host_count_out->data(), count.p, nq * sizeof(int64_t), cudaMemcpyDeviceToHost), "copy counts");
  if (dev_seg == nullptr) return;  // caller only wanted the counts (radius sizing)
  CHS_LAUNCH(L.cbt, write_kernel, grid, kThreads, tile_smem, db, n, icb, queries, inq, L.qt, del, kth.p, below.p,
                                                               need.p, L.span, lt.p, eq.p, dev_seg, dev_keys)
  check(cudaGetLastError(), "write_kernel");
}

void sort_segments(unsigned long long* keys, size_t m, const std::vector<int64_t>& begin,
                   const std::vector<int64_t>& end, DevBuf<unsigned long long>& sorted) {
  const size_t ns = begin.size();
  DevBuf<int64_t> b(ns), e(ns);
  copy_to_device(b.p, begin.data(), ns * sizeof(int64_t));
  copy_to_device(e.p, end.data(), ns * sizeof(int64_t));
  size_t tmp_bytes = 0;
  check(cub::DeviceSegmentedRadixSort::SortKeys(nullptr, tmp_bytes, keys, sorted.p, (long long)m, (long long)ns,
                                                b.p, e.p, 0, 64),
        "sort size");
  DevBuf<unsigned char> tmp(std::max<size_t>(tmp_bytes, 1));
  check(cub::DeviceSegmentedRadixSort::SortKeys(tmp.p, tmp_bytes, keys, sorted.p, (long long)m, (long long)ns, b.p,
                                                e.p, 0, 64),
        "segmented sort");
}

}  // namespace

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver/device" error
    return 0;
  }
  return n;
}

std::string device_name(int device) {
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
  return p.name;
}

void* device_alloc(size_t bytes) {
  void* p = nullptr;
  check(cudaMalloc(&p, std::max<size_t>(bytes, 1)), "cudaMalloc");
  return p;
}
void device_free(void* p) noexcept { cudaFree(p); }
void copy_to_device(void* dev, const void* host, size_t bytes) {
  if (bytes) check(cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice), "copy to device");
}
void copy_to_host(void* host, const void* dev, size_t bytes) {
  if (bytes) check(cudaMemcpy(host, dev, bytes, cudaMemcpyDeviceToHost), "copy to host");
}

void knn(const uint8_t* db, size_t n, size_t cb, const uint8_t* queries, size_t nq, size_t k, const uint8_t* del,
         int32_t* out_d, int64_t* out_pos) {
  if (nq == 0 || k == 0) return;
  const size_t total = nq * k;
  if (n == 0) {
    check(cudaMemset(out_d, 0xff, total * sizeof(int32_t)), "memset");
    check(cudaMemset(out_pos, 0xff, total * sizeof(int64_t)), "memset");
    return;
  }
  for (size_t q0 = 0; q0 < nq; q0 += kQueryBatch) {
    const size_t bq = std::min(kQueryBatch, nq - q0);
    const Launch L = plan(db, n, cb, bq);
    DevBuf<unsigned long long> keys(bq * k), sorted(bq * k);
    check(cudaMemset(keys.p, 0xff, bq * k * sizeof(unsigned long long)), "memset");
    std::vector<int64_t> seg(bq), seg_end(bq), counts;
    for (size_t q = 0; q < bq; ++q) seg[q] = int64_t(q * k);
    DevBuf<int64_t> dseg(bq);
    copy_to_device(dseg.p, seg.data(), bq * sizeof(int64_t));
    select_and_write(db, n, cb, queries + q0 * cb, bq, (long long)k, -1, del, L, dseg.p, keys.p, &counts);
    for (size_t q = 0; q < bq; ++q) seg_end[q] = seg[q] + counts[q];
    check(cudaMemcpy(sorted.p, keys.p, bq * k * sizeof(unsigned long long), cudaMemcpyDeviceToDevice), "copy");
    sort_segments(keys.p, bq * k, seg, seg_end, sorted);
    unpack_kernel<<<unsigned(std::min<size_t>((bq * k + 255) / 256, 65535)), 256>>>(sorted.p, bq * k, out_d + q0 * k,
                                                                                     out_pos + q0 * k);
    check(cudaGetLastError(), "unpack_kernel");
  }
  check(cudaDeviceSynchronize(), "knn");
}

std::vector<int64_t> range_search(const uint8_t* db, size_t n, size_t cb, const uint8_t* queries, size_t nq,
                                  uint32_t radius, const uint8_t* del, int32_t** out_d, int64_t** out_pos) {
  std::vector<int64_t> lims(nq + 1, 0);
  std::vector<std::vector<int64_t>> batch_counts;
  const int r = int(std::min<uint32_t>(radius, uint32_t(cb * 8)));
  // Pass A: counts per query (sizes the output).
  for (size_t q0 = 0; q0 < nq && n > 0; q0 += kQueryBatch) {
    const size_t bq = std::min(kQueryBatch, nq - q0);
    std::vector<int64_t> counts;
    select_and_write(db, n, cb, queries + q0 * cb, bq, 0, r, del, plan(db, n, cb, bq), nullptr, nullptr, &counts);
    for (size_t q = 0; q < bq; ++q) lims[q0 + q + 1] = counts[q];
  }
  for (size_t q = 0; q < nq; ++q) lims[q + 1] += lims[q];
  const size_t total = size_t(lims[nq]);
  DevBuf<int32_t> d(std::max<size_t>(total, 1));
  DevBuf<int64_t> p(std::max<size_t>(total, 1));
  if (total > 0) {
    DevBuf<unsigned long long> keys(total), sorted(total);
    for (size_t q0 = 0; q0 < nq; q0 += kQueryBatch) {
      const size_t bq = std::min(kQueryBatch, nq - q0);
      std::vector<int64_t> seg(lims.begin() + q0, lims.begin() + q0 + bq), counts;
      DevBuf<int64_t> dseg(bq);
      copy_to_device(dseg.p, seg.data(), bq * sizeof(int64_t));
      select_and_write(db, n, cb, queries + q0 * cb, bq, 0, r, del, plan(db, n, cb, bq), dseg.p, keys.p, &counts);
    }
    std::vector<int64_t> begin(lims.begin(), lims.end() - 1), end(lims.begin() + 1, lims.end());
    sort_segments(keys.p, total, begin, end, sorted);
    unpack_kernel<<<unsigned(std::min<size_t>((total + 255) / 256, 65535)), 256>>>(sorted.p, total, d.p, p.p);
    check(cudaGetLastError(), "unpack_kernel");
  }
  check(cudaDeviceSynchronize(), "range_search");
  *out_d = d.release();
  *out_pos = p.release();
  return lims;
}

}  // namespace chs_cuda
