// Evicts in-memory galleries on a thread of its own. A cluster replica applies other nodes'
// erasures on its apply thread, which must not take a shard service's lock: a writer holding
// that lock waits for the same thread to apply its write. So the apply thread only names the
// shard here (request), and this thread takes the lock and runs the eviction, soon after:
// an erased subject's decrypted templates do not stay in a replica's memory until its next
// search. Requests for one shard made before its eviction runs are one eviction.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

namespace fv::service {

class GalleryEvictor {
 public:
  explicit GalleryEvictor(std::function<void(int)> evict);
  ~GalleryEvictor();  // stop()
  GalleryEvictor(const GalleryEvictor&) = delete;
  GalleryEvictor& operator=(const GalleryEvictor&) = delete;

  // Queues shard `s` (never blocks on an eviction). Ignored once stopping.
  void request(int s);
  // Runs what is queued, then returns. Never call it from `evict`.
  void drain();
  // Joins the thread; what is still queued is dropped (the gallery reloads from the vault at
  // its next search either way). Idempotent.
  void stop();

 private:
  void loop();

  std::function<void(int)> evict_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<int> pending_;
  bool running_ = false;  // an eviction is in progress
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace fv::service
