#include "service/gallery_evictor.h"

namespace fv::service {

GalleryEvictor::GalleryEvictor(std::function<void(int)> evict) : evict_(std::move(evict)) {
  thread_ = std::thread([this] { loop(); });
}

GalleryEvictor::~GalleryEvictor() { stop(); }

void GalleryEvictor::request(int s) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return;
    pending_.insert(s);
  }
  cv_.notify_all();
}

void GalleryEvictor::drain() {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [this] { return stopping_ || (pending_.empty() && !running_); });
}

void GalleryEvictor::stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
    pending_.clear();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void GalleryEvictor::loop() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [this] { return stopping_ || !pending_.empty(); });
    if (stopping_) break;
    const int s = *pending_.begin();
    pending_.erase(pending_.begin());
    running_ = true;
    l.unlock();
    evict_(s);
    l.lock();
    running_ = false;
    cv_.notify_all();  // drain()
  }
  running_ = false;
  cv_.notify_all();
}

}  // namespace fv::service
