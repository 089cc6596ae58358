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
  // Building loads the models (seconds): not under the lock, so other leases go on.
  ++building_;
  l.unlock();
  auto built = factory_();
  l.lock();
  --building_;
  if (!built.is_ok()) {
    cv_.notify_all();  // a waiter may try to build in our place
    return built.status();
  }
  all_.push_back(std::move(built).value());
  return Lease(this, all_.back().get());
}

void PipelinePool::reserve(size_t capacity) {
  std::lock_guard<std::mutex> l(mu_);
  if (!shared_) capacity_ = std::max(capacity_, capacity);
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
