#include "service/pipeline_pool.h"

#include <algorithm>

namespace fv::service {

PipelinePool::PipelinePool(size_t capacity, Factory factory)
    : factory_(std::move(factory)), capacity_(std::max<size_t>(1, capacity)) {}

PipelinePool::PipelinePool(face::FacePipeline* shared) : shared_(true), capacity_(1) { free_.push_back(shared); }

Result<PipelinePool::Lease> PipelinePool::acquire() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    if (!free_.empty()) {
      auto* p = free_.back();
      free_.pop_back();
      return Lease(this, p);
    }
    if (!shared_ && all_.size() + building_ < capacity_) break;
    cv_.wait(l);
  }
  // Building loads the models (seconds): not under the lock, so other leases go on. The count
  // of pipelines being built goes down however the factory returns (a throw included), or a
  // pool at capacity would wait for a build that never ends.
  ++building_;
  l.unlock();
  struct BuildDone {
    PipelinePool& pool;
    std::unique_lock<std::mutex>& lock;
    ~BuildDone() {
      if (!lock.owns_lock()) lock.lock();
      --pool.building_;
      pool.cv_.notify_all();  // a waiter may build in our place, or take what we built
    }
  } done{*this, l};
  auto built = factory_();
  l.lock();
  if (!built.is_ok())
    return unavailable("the face pipeline could not be built (are the models fetched? make models): " +
                       built.status().message());
  all_.push_back(std::move(built).value());
  return Lease(this, all_.back().get());
}

void PipelinePool::reserve(size_t capacity) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!shared_) capacity_ = std::max(capacity_, capacity);
  }
  cv_.notify_all();  // waiters may now build a pipeline of their own
}

Status PipelinePool::warm_up() {
  std::vector<Lease> leases;
  for (size_t i = 0; i < capacity(); ++i) {
    FV_ASSIGN_OR_RETURN(Lease lease, acquire());
    leases.push_back(std::move(lease));
  }
  return Status::ok();
}

size_t PipelinePool::capacity() const {
  std::lock_guard<std::mutex> l(mu_);
  return capacity_;
}

void PipelinePool::release(face::FacePipeline* p) {
  {
    std::lock_guard<std::mutex> l(mu_);
    free_.push_back(p);
  }
  cv_.notify_one();
}

}  // namespace fv::service
