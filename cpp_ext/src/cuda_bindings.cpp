// Python bindings of the CUDA kernels: chain_sdk._hamming_cuda (optional module).
// DeviceDatabase holds the codes on the GPU: uploaded from a host array, or a zero-copy reference
// to a device array (anything exporting DLPack: torch, cupy, jax). Queries may be host arrays
// (results come back as numpy) or device arrays (results stay on the device, exported via DLPack).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>

#include <memory>
#include <optional>
#include <vector>
#include <stdexcept>
#include <string>

#include "hamming_cuda.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {
using AnyCodes = nb::ndarray<const uint8_t, nb::ndim<2>, nb::c_contig>;
using HostBitmap = nb::ndarray<const uint8_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

// Device memory owned by a Python object (freed when the last reference goes).
struct DevMem {
  void* p = nullptr;
  explicit DevMem(size_t bytes) : p(chs_cuda::device_alloc(bytes)) {}
  ~DevMem() { chs_cuda::device_free(p); }
  DevMem(const DevMem&) = delete;
  DevMem& operator=(const DevMem&) = delete;
};

template <class T>
nb::object device_array(T* p, std::initializer_list<size_t> shape, int device) {
  nb::capsule owner(p, [](void* q) noexcept { chs_cuda::device_free(q); });
  return nb::cast(nb::ndarray<T, nb::device::cuda>(p, shape, owner, {}, nb::dtype<T>(), nb::device::cuda::value, device));
}

template <class T>
nb::object host_copy(const T* dev, std::initializer_list<size_t> shape) {
  size_t count = 1;
  for (size_t s : shape) count *= s;
  T* host = new T[std::max<size_t>(count, 1)];
  chs_cuda::copy_to_host(host, dev, count * sizeof(T));
  nb::capsule owner(host, [](void* q) noexcept { delete[] static_cast<T*>(q); });
  return nb::cast(nb::ndarray<nb::numpy, T>(host, shape, owner));
}

class DeviceDatabase {
 public:
  explicit DeviceDatabase(const AnyCodes& codes) : n_(codes.shape(0)), cb_(codes.shape(1)) {
    if (cb_ == 0) throw std::invalid_argument("codes must have at least one byte");
    if (codes.device_type() == nb::device::cuda::value) {
      ptr_ = codes.data();
      device_ = codes.device_id();
      keepalive_ = nb::find(codes);
    } else if (codes.device_type() == nb::device::cpu::value) {
      owned_ = std::make_unique<DevMem>(n_ * cb_);
      chs_cuda::copy_to_device(owned_->p, codes.data(), n_ * cb_);
      ptr_ = static_cast<const uint8_t*>(owned_->p);
    } else {
      throw std::invalid_argument("codes must be a CPU or CUDA array");
    }
  }

  size_t size() const { return n_; }

  nb::tuple knn(const AnyCodes& queries, size_t k, std::optional<HostBitmap> deleted) const {
    const size_t nq = check(queries);
    Staged q(queries, cb_);
    std::unique_ptr<DevMem> del = upload_bitmap(deleted);
    size_t slots = 0, bytes = 0;  // k = 2**62 must not wrap nq * k around
    if (__builtin_mul_overflow(nq, k, &slots) || __builtin_mul_overflow(slots, sizeof(int64_t), &bytes))
      throw std::overflow_error("k=" + std::to_string(k) + " for " + std::to_string(nq) +
                                " queries: nq * k result slots overflow");
    auto* d = static_cast<int32_t*>(chs_cuda::device_alloc(slots * sizeof(int32_t)));
    nb::object od = device_array(d, {nq, k}, device_);  // owns d from here on
    auto* p = static_cast<int64_t*>(chs_cuda::device_alloc(bytes));
    nb::object op = device_array(p, {nq, k}, device_);
    {
      nb::gil_scoped_release nogil;
      chs_cuda::knn(ptr_, n_, cb_, q.ptr, nq, k, del ? static_cast<const uint8_t*>(del->p) : nullptr, d, p);
    }
    if (q.on_device) return nb::make_tuple(od, op);
    return nb::make_tuple(host_copy(d, {nq, k}), host_copy(p, {nq, k}));
  }

  nb::tuple range_search(const AnyCodes& queries, uint32_t radius, std::optional<HostBitmap> deleted) const {
    const size_t nq = check(queries);
    Staged q(queries, cb_);
    std::unique_ptr<DevMem> del = upload_bitmap(deleted);
    int32_t* d = nullptr;
    int64_t* p = nullptr;
    std::vector<int64_t> lims;
    {
      nb::gil_scoped_release nogil;
      lims = chs_cuda::range_search(ptr_, n_, cb_, q.ptr, nq, radius,
                                    del ? static_cast<const uint8_t*>(del->p) : nullptr, &d, &p);
    }
    const size_t total = size_t(lims.back());
    nb::object od = device_array(d, {total}, device_), op = device_array(p, {total}, device_);
    auto* l = new int64_t[lims.size()];
    std::copy(lims.begin(), lims.end(), l);
    nb::capsule lowner(l, [](void* x) noexcept { delete[] static_cast<int64_t*>(x); });
    nb::object ol = nb::cast(nb::ndarray<nb::numpy, int64_t>(l, {lims.size()}, lowner));
    if (q.on_device) return nb::make_tuple(ol, od, op);
    return nb::make_tuple(ol, host_copy(d, {total}), host_copy(p, {total}));
  }

 private:
  struct Staged {  // queries on the device, uploaded when they came from the host
    const uint8_t* ptr = nullptr;
    bool on_device = false;
    std::unique_ptr<DevMem> copy;
    Staged(const AnyCodes& a, size_t cb) {
      on_device = a.device_type() == nb::device::cuda::value;
      if (on_device) {
        ptr = a.data();
      } else {
        copy = std::make_unique<DevMem>(a.shape(0) * cb);
        chs_cuda::copy_to_device(copy->p, a.data(), a.shape(0) * cb);
        ptr = static_cast<const uint8_t*>(copy->p);
      }
    }
  };

  size_t check(const AnyCodes& queries) const {
    if (queries.shape(1) != cb_) throw std::invalid_argument("queries and database have different code sizes");
    return queries.shape(0);
  }

  std::unique_ptr<DevMem> upload_bitmap(const std::optional<HostBitmap>& deleted) const {
    if (!deleted) return nullptr;
    if (deleted->shape(0) < (n_ + 7) / 8) throw std::invalid_argument("tombstone bitmap is too short");
    auto mem = std::make_unique<DevMem>(deleted->shape(0));
    chs_cuda::copy_to_device(mem->p, deleted->data(), deleted->shape(0));
    return mem;
  }

  size_t n_, cb_;
  int device_ = 0;
  const uint8_t* ptr_ = nullptr;
  std::unique_ptr<DevMem> owned_;
  nb::object keepalive_;
};
}  // namespace

NB_MODULE(_hamming_cuda, m) {
  m.doc() = "CUDA Hamming-distance kernels (histogram k-selection, no k limit, radius search)";
  m.def("device_count", &chs_cuda::device_count);
  m.def("device_name", &chs_cuda::device_name, "device"_a = 0);
  nb::class_<DeviceDatabase>(m, "DeviceDatabase")
      .def(nb::init<const AnyCodes&>(), "codes"_a.noconvert())
      .def_prop_ro("size", &DeviceDatabase::size)
      .def("knn", &DeviceDatabase::knn, "queries"_a.noconvert(), "k"_a, "deleted"_a.noconvert() = nb::none(),
           "(distances int32 [nq,k], positions int64 [nq,k]); -1 pads; device queries -> device results")
      .def("range_search", &DeviceDatabase::range_search, "queries"_a.noconvert(), "radius"_a,
           "deleted"_a.noconvert() = nb::none(), "(lims int64 [nq+1] host, distances int32, positions int64)");
}
