// A small blocking thread pool: workers sleep on a condition variable (no spin-waits, which collapse
// when the machine is oversubscribed), and a job is a number of "slots" that any participant (the
// calling thread included) claims with an atomic counter. A slot that nobody claimed yet is simply
// run by the caller, so a search never waits for a worker that was not scheduled.
#pragma once
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>
#include <unistd.h>

namespace chs {

class Pool {
 public:
  static Pool& instance() {
    static std::mutex guard;
    static Pool* pool = nullptr;  // leaked on purpose: no join at interpreter exit
    std::lock_guard<std::mutex> lk(guard);
    if (pool == nullptr || pool->pid_ != getpid()) pool = new Pool();  // fresh pool after fork()
    return *pool;
  }

  // Runs fn(slot) for slot in [0, nslots) on up to nslots threads; returns when all slots are done.
  void run(int nslots, const std::function<void(int)>& fn) {
    if (nslots <= 1) {
      fn(0);
      return;
    }
    auto job = std::make_shared<Job>();
    job->fn = &fn;
    job->nslots = nslots;
    ensure_workers(nslots - 1);
    {
      std::lock_guard<std::mutex> lk(m_);
      queue_.push_back(job);
    }
    for (int i = 0; i < nslots - 1; ++i) cv_.notify_one();
    execute(*job);
    {
      std::unique_lock<std::mutex> lk(job->m);
      job->cv.wait(lk, [&] { return job->done == job->nslots; });
    }
    {
      std::lock_guard<std::mutex> lk(m_);
      for (auto it = queue_.begin(); it != queue_.end(); ++it)
        if (it->get() == job.get()) {
          queue_.erase(it);
          break;
        }
    }
    if (job->error) std::rethrow_exception(job->error);
  }

 private:
  struct Job {
    const std::function<void(int)>* fn = nullptr;
    int nslots = 0;
    std::atomic<int> next{0};
    int done = 0;
    std::exception_ptr error;
    std::mutex m;
    std::condition_variable cv;
  };

  Pool() : pid_(getpid()) {}

  static void execute(Job& job) {
    for (int s; (s = job.next.fetch_add(1)) < job.nslots;) {
      std::exception_ptr err;
      try {
        (*job.fn)(s);
      } catch (...) {
        err = std::current_exception();
      }
      std::lock_guard<std::mutex> lk(job.m);
      if (err && !job.error) job.error = err;
      if (++job.done == job.nslots) job.cv.notify_all();
    }
  }

  void ensure_workers(int n) {
    std::lock_guard<std::mutex> lk(m_);
    while ((int)workers_.size() < n) {
      workers_.emplace_back([this] { worker_loop(); });
      workers_.back().detach();
    }
  }

  void worker_loop() {
    std::unique_lock<std::mutex> lk(m_);
    for (;;) {
      cv_.wait(lk, [&] { return !queue_.empty(); });
      auto job = queue_.front();
      if (job->next.load() >= job->nslots) {
        queue_.pop_front();
        continue;
      }
      lk.unlock();
      execute(*job);
      lk.lock();
    }
  }

  pid_t pid_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::vector<std::thread> workers_;
};

}  // namespace chs
