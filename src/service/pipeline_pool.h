// A fixed pool of face pipelines, leased one request at a time: photo analysis (most of a
// request's CPU) runs on a leased pipeline outside the service's lock. Pipelines are built on
// first need, so a service that never analyzes a photo never loads the models. With a caller's
// pipeline (ServiceOptions::shared_pipeline) the pool is that one pipeline, leased to one
// request at a time (a pipeline is not thread-safe).
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "common/status.h"
#include "face/pipeline.h"

namespace fv::service {

class PipelinePool {
 public:
  using Factory = std::function<Result<std::unique_ptr<face::FacePipeline>>()>;

  PipelinePool(size_t capacity, Factory factory);
  explicit PipelinePool(face::FacePipeline* shared);  // capacity 1, not owned

  class Lease {
   public:
    Lease(PipelinePool* pool, face::FacePipeline* p) : pool_(pool), p_(p) {}
    Lease(Lease&& o) noexcept : pool_(o.pool_), p_(o.p_) { o.p_ = nullptr; }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() {
      if (p_) pool_->release(p_);
    }
    face::FacePipeline& operator*() { return *p_; }
    face::FacePipeline* operator->() { return p_; }

   private:
    PipelinePool* pool_;
    face::FacePipeline* p_;
  };

  // Waits for a free pipeline; builds one when none is free and the pool is below capacity
  // (kUnavailable when the build fails).
  Result<Lease> acquire();
  // Raises the capacity (a batch asks for as many pipelines as it has workers); a shared
  // pipeline stays one.
  void reserve(size_t capacity);
  size_t capacity() const;
  // Builds every pipeline now (a server checks at start that the models load). A build that
  // fails is kUnavailable, whatever the factory said: the request was not at fault.
  Status warm_up();

 private:
  void release(face::FacePipeline* p);

  Factory factory_;
  bool shared_ = false;
  size_t capacity_ = 1;
  size_t building_ = 0;  // pipelines being built outside the lock
  std::vector<std::unique_ptr<face::FacePipeline>> all_;
  std::vector<face::FacePipeline*> free_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace fv::service
