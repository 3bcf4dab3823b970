// Python bindings of the CPU kernels: chain_sdk._hamming.
// All arrays are C-contiguous host arrays; positions are row numbers of `db` (the Python
// HammingIndex maps them to user ids). The GIL is released while kernels run.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>

#include "hamming.hpp"
#include "mih.hpp"
#include "pool.hpp"

#if defined(__linux__)
#include <sched.h>
#endif

namespace nb = nanobind;
using namespace nb::literals;

namespace {
using Codes = nb::ndarray<const uint8_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using Bitmap = nb::ndarray<const uint8_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
template <class T>
using Out = nb::ndarray<nb::numpy, T>;

int default_threads() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
  return std::max(1u, std::thread::hardware_concurrency());
}
std::atomic<int> g_threads{0};

int threads_or_default(int threads) {
  if (threads > 0) return threads;
  const int g = g_threads.load();
  return g > 0 ? g : default_threads();
}

template <class T>
Out<T> to_numpy(T* data, std::initializer_list<size_t> shape) {
  nb::capsule owner(data, [](void* p) noexcept { delete[] static_cast<T*>(p); });
  return Out<T>(data, shape, owner);
}

// nq * k result slots (at least 1), refusing products that overflow size_t or the byte count
// of the positions array (k = 2**62 used to wrap around and corrupt the heap).
size_t result_slots(size_t nq, size_t k) {
  size_t slots = 0, bytes = 0;
  if (__builtin_mul_overflow(nq, k, &slots) || __builtin_mul_overflow(slots, sizeof(int64_t), &bytes))
    throw std::overflow_error("k=" + std::to_string(k) + " for " + std::to_string(nq) +
                              " queries: nq * k result slots overflow");
  return std::max<size_t>(slots, 1);
}

size_t check_pair(const Codes& db, const Codes& queries) {
  const size_t cb = db.shape(1);
  if (cb == 0 || cb > 8191) throw std::invalid_argument("code size must be 1..8191 bytes");
  if (queries.shape(1) != cb)
    throw std::invalid_argument("queries have " + std::to_string(queries.shape(1)) +
                                " bytes per code, the database has " + std::to_string(cb));
  return cb;
}

chs::SearchOptions options(const std::string& isa, int threads, bool generic,
                           const std::optional<Bitmap>& deleted, size_t n) {
  chs::SearchOptions opt;
  opt.isa = chs::isa_parse(isa);
  opt.threads = threads_or_default(threads);
  opt.generic = generic;
  if (deleted) {
    if (deleted->shape(0) < (n + 7) / 8) throw std::invalid_argument("tombstone bitmap is too short");
    opt.deleted = deleted->data();
  }
  return opt;
}

std::tuple<Out<int64_t>, Out<int32_t>, Out<int64_t>> pack_ranges(
    const std::vector<std::vector<uint64_t>>& per_query) {
  const size_t nq = per_query.size();
  auto* lims = new int64_t[nq + 1];
  lims[0] = 0;
  for (size_t q = 0; q < nq; ++q) lims[q + 1] = lims[q] + int64_t(per_query[q].size());
  const size_t total = size_t(lims[nq]);
  auto* d = new int32_t[std::max<size_t>(total, 1)];
  auto* p = new int64_t[std::max<size_t>(total, 1)];
  for (size_t q = 0; q < nq; ++q)
    for (size_t j = 0; j < per_query[q].size(); ++j) {
      d[size_t(lims[q]) + j] = int32_t(chs::key_dist(per_query[q][j]));
      p[size_t(lims[q]) + j] = chs::key_pos(per_query[q][j]);
    }
  return {to_numpy(lims, {nq + 1}), to_numpy(d, {total}), to_numpy(p, {total})};
}
}  // namespace

NB_MODULE(_hamming, m) {
  m.doc() = "CPU Hamming-distance kernels (AVX-512 VPOPCNTDQ / AVX2 / scalar, runtime dispatch)";
  m.def("abi_version", [] { return 2; });
  m.def("isa_available", &chs::isa_available, "Kernel paths this CPU can run, best first.");
  m.def("isa_default", [] { return std::string(chs::isa_name(chs::isa_best())); });
  m.def("set_num_threads", [](int n) { g_threads.store(std::max(0, n)); }, "n"_a,
        "Default thread count of every search (0: the CPUs this process may use).");
  m.def("get_num_threads", [] { return threads_or_default(0); });

  m.def(
      "stream_read",
      [](const Codes& buf, int threads) {
        const size_t bytes = buf.shape(0) * buf.shape(1);
        const int t = threads_or_default(threads);
        nb::gil_scoped_release nogil;
        return chs::stream_read(buf.data(), bytes, t);
      },
      "buf"_a.noconvert(), "threads"_a = 0, "Read-bandwidth probe: XOR of every byte (benchmarks).");

  m.def(
      "knn",
      [](const Codes& db, const Codes& queries, size_t k, std::optional<Bitmap> deleted,
         const std::string& isa, int threads, bool generic) {
        const size_t cb = check_pair(db, queries), n = db.shape(0), nq = queries.shape(0);
        const chs::SearchOptions opt = options(isa, threads, generic, deleted, n);
        const size_t slots = result_slots(nq, k);
        auto* d = new int32_t[slots];
        std::unique_ptr<int32_t[]> d_guard(d);  // freed if the second allocation throws
        auto* p = new int64_t[slots];
        d_guard.release();
        {
          nb::gil_scoped_release nogil;
          chs::knn_search(db.data(), n, cb, queries.data(), nq, k, opt, d, p);
        }
        return std::make_tuple(to_numpy(d, {nq, k}), to_numpy(p, {nq, k}));
      },
      "db"_a.noconvert(), "queries"_a.noconvert(), "k"_a, "deleted"_a.noconvert() = nb::none(), "isa"_a = "auto", "threads"_a = 0,
      "generic"_a = false,
      "k nearest codes: (distances int32 [nq,k], positions int64 [nq,k]) sorted by (distance, "
      "position); -1 pads rows with fewer than k live codes.");

  m.def(
      "range_search",
      [](const Codes& db, const Codes& queries, uint32_t radius, std::optional<Bitmap> deleted,
         const std::string& isa, int threads, bool generic) {
        const size_t cb = check_pair(db, queries), n = db.shape(0), nq = queries.shape(0);
        const chs::SearchOptions opt = options(isa, threads, generic, deleted, n);
        std::vector<std::vector<uint64_t>> res;
        {
          nb::gil_scoped_release nogil;
          res = chs::range_search(db.data(), n, cb, queries.data(), nq, radius, opt);
        }
        return pack_ranges(res);
      },
      "db"_a.noconvert(), "queries"_a.noconvert(), "radius"_a, "deleted"_a.noconvert() = nb::none(), "isa"_a = "auto", "threads"_a = 0,
      "generic"_a = false,
      "All codes with distance <= radius: (lims int64 [nq+1], distances int32, positions int64).");

  nb::class_<chs::MultiIndexHash>(m, "MultiIndexHash")
      .def(
          "__init__",
          [](chs::MultiIndexHash* self, const Codes& db, const std::vector<int>& sub_bits, int threads) {
            const int t = threads_or_default(threads);
            nb::gil_scoped_release nogil;
            new (self) chs::MultiIndexHash(db.data(), db.shape(0), db.shape(1), sub_bits, t);
          },
          "db"_a.noconvert(), "sub_bits"_a, "threads"_a = 0)
      .def_prop_ro("size", &chs::MultiIndexHash::size)
      .def_prop_ro("sub_bits", &chs::MultiIndexHash::sub_bits)
      .def_prop_ro("memory_bytes", &chs::MultiIndexHash::memory_bytes)
      .def(
          "cost",
          [](const chs::MultiIndexHash& self, const Codes& queries, uint32_t radius) {
            if (queries.shape(1) != self.code_bytes()) throw std::invalid_argument("query size mismatch");
            const size_t nq = queries.shape(0);
            auto* probes = new int64_t[std::max<size_t>(nq, 1)];
            auto* cands = new int64_t[std::max<size_t>(nq, 1)];
            for (size_t q = 0; q < nq; ++q) {
              uint64_t p, c;
              self.cost(queries.data() + q * self.code_bytes(), radius, p, c);
              probes[q] = int64_t(p);
              cands[q] = int64_t(c);
            }
            return std::make_tuple(to_numpy(probes, {nq}), to_numpy(cands, {nq}));
          },
          "queries"_a.noconvert(), "radius"_a, "Table probes and candidate entries each query would visit.")
      .def(
          "range_search",
          [](const chs::MultiIndexHash& self, const Codes& db, const Codes& queries, uint32_t radius,
             std::optional<Bitmap> deleted, const std::string& isa, int threads) {
            const size_t cb = check_pair(db, queries);
            if (cb != self.code_bytes() || db.shape(0) < self.size())
              throw std::invalid_argument("database does not match the one the tables were built on");
            const chs::SearchOptions opt = options(isa, threads, false, deleted, self.size());
            const size_t nq = queries.shape(0);
            std::vector<std::vector<uint64_t>> res(nq);
            {
              nb::gil_scoped_release nogil;
              std::atomic<size_t> next{0};
              const int slots = int(std::max<size_t>(1, std::min<size_t>(size_t(opt.threads), nq)));
              chs::Pool::instance().run(slots, [&](int) {
                for (size_t q; (q = next.fetch_add(1)) < nq;)
                  res[q] = self.range(db.data(), queries.data() + q * cb, radius, opt);
              });
            }
            return pack_ranges(res);
          },
          "db"_a.noconvert(), "queries"_a.noconvert(), "radius"_a, "deleted"_a.noconvert() = nb::none(), "isa"_a = "auto", "threads"_a = 0);
}
