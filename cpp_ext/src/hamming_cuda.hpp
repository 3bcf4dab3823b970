// Host-side interface of the CUDA kernels (no CUDA headers, so the bindings compile with the host
// compiler). Pointers marked "dev" are device pointers; everything else is host memory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace chs_cuda {

int device_count();
std::string device_name(int device);
void* device_alloc(size_t bytes);
void device_free(void* p) noexcept;
void copy_to_device(void* dev, const void* host, size_t bytes);
void copy_to_host(void* host, const void* dev, size_t bytes);

// k nearest: dev_out_d / dev_out_pos hold nq*k entries, padded with -1; sorted by (distance, position).
void knn(const uint8_t* dev_db, size_t n, size_t cb, const uint8_t* dev_queries, size_t nq, size_t k,
         const uint8_t* dev_deleted, int32_t* dev_out_d, int64_t* dev_out_pos);

// Radius (d <= radius): returns host lims (nq+1); *dev_d / *dev_pos are allocated with device_alloc.
std::vector<int64_t> range_search(const uint8_t* dev_db, size_t n, size_t cb, const uint8_t* dev_queries,
                                  size_t nq, uint32_t radius, const uint8_t* dev_deleted,
                                  int32_t** dev_d, int64_t** dev_pos);

}  // namespace chs_cuda
