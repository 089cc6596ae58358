// GalleryEvictor: requests are served on its own thread, requests for one shard made before its
// eviction runs are one eviction, a request never waits for an eviction, and nothing runs after
// stop(). Every wait is bounded; nothing here asserts how long anything took.
#include "service/gallery_evictor.h"

#include <atomic>
#include <map>
#include <thread>

#include <gtest/gtest.h>

namespace fv::service {
namespace {

TEST(GalleryEvictor, EvictsEachRequestedShardOnItsOwnThread) {
  std::mutex mu;
  std::map<int, int> evicted;
  std::thread::id where;
  GalleryEvictor ev([&](int s) {
    std::lock_guard<std::mutex> l(mu);
    ++evicted[s];
    where = std::this_thread::get_id();
  });
  ev.request(3);
  ev.request(5);
  ev.drain();
  std::lock_guard<std::mutex> l(mu);
  EXPECT_EQ(evicted, (std::map<int, int>{{3, 1}, {5, 1}}));
  EXPECT_NE(where, std::this_thread::get_id());
}

TEST(GalleryEvictor, RequestsQueuedBehindARunningEvictionAreOneAndNeverWait) {
  std::mutex gate;  // held by the test: the first eviction blocks on it
  std::atomic<int> started{0};
  std::map<int, int> evicted;
  std::mutex mu;
  gate.lock();
  GalleryEvictor ev([&](int s) {
    ++started;
    std::lock_guard<std::mutex> g(gate);  // the service's lock, held elsewhere
    std::lock_guard<std::mutex> l(mu);
    ++evicted[s];
  });
  ev.request(1);
  for (int i = 0; i < 2000 && started.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(started.load(), 1) << "the first eviction did not start";
  // The eviction waits for the lock the caller holds: requests return all the same.
  for (int i = 0; i < 100; ++i) ev.request(2);
  ev.request(1);
  gate.unlock();
  ev.drain();
  std::lock_guard<std::mutex> l(mu);
  EXPECT_EQ(evicted, (std::map<int, int>{{1, 2}, {2, 1}}));
}

TEST(GalleryEvictor, NothingRunsAfterStop) {
  std::atomic<int> runs{0};
  GalleryEvictor ev([&](int) { ++runs; });
  ev.request(0);
  ev.drain();
  ev.stop();
  ev.request(0);
  ev.drain();  // returns at once once stopped
  ev.stop();   // idempotent
  EXPECT_EQ(runs.load(), 1);
}

}  // namespace
}  // namespace fv::service
