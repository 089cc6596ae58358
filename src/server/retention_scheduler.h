// Retention that runs itself: `facevault serve` calls Service::expire on a schedule.
//
// Each run is the same use case as `facevault expire` and POST /v1/retention/run, with the
// actor "scheduler:retention" (role auditor): the same receipts, one `erase` audit entry per
// subject and one `expire` entry for the run. The scheduler only decides *when*; who may
// expire, what is due and what is written are the service's.
//
// One background thread waits on a condition variable (wait_for the interval), so stop()
// wakes it at once; a run in progress finishes first (it holds the service's lock for one
// transaction per subject). A failed run is logged on stderr (one line) and counted; the next
// run retries. The first run comes one interval after start().
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "service/service.h"

namespace fv::server {

// The actor of every scheduled run, as the audit log names it.
service::Actor retention_scheduler_actor();

// What the scheduler did so far (for /metrics and GET /v1/retention/last).
struct RetentionState {
  std::chrono::seconds interval{0};  // 0: disabled
  uint64_t runs = 0;                 // runs attempted
  uint64_t failures = 0;             // runs that returned an error
  // The last run (successful or not): its end on the wall clock (Unix seconds, for
  // Prometheus), its time on the service's clock (as in the audit log), and its outcome.
  std::optional<double> last_run_unix;
  std::optional<double> last_success_unix;
  std::string last_run_at;
  bool last_ok = false;
  std::string last_error;           // when !last_ok
  int64_t last_erased = 0;          // subjects erased by the last successful run
  // The last successful run's report as service::render::expire_report renders it: one
  // receipt per erased subject (null before the first successful run).
  nlohmann::json last_report;
  std::string last_report_at;

  nlohmann::json to_json() const;  // the body of GET /v1/retention/last
};

class RetentionScheduler {
 public:
  // `svc` must outlive the scheduler. interval 0: start() runs nothing.
  RetentionScheduler(service::Api& svc, std::chrono::seconds interval, bool log_runs = true);
  ~RetentionScheduler();
  RetentionScheduler(const RetentionScheduler&) = delete;
  RetentionScheduler& operator=(const RetentionScheduler&) = delete;

  void start();  // idempotent; nothing when disabled
  void stop();   // wakes the thread and joins it; idempotent
  bool enabled() const { return interval_.count() > 0; }
  RetentionState state() const;

  // One run now, on the calling thread (the thread calls it on schedule).
  void run_once();

 private:
  void loop();

  service::Api& svc_;
  const std::chrono::seconds interval_;
  const bool log_runs_;
  mutable std::mutex mu_;  // guards state_, stopping_, started_
  std::condition_variable cv_;
  bool stopping_ = false, started_ = false;
  RetentionState state_;
  std::mutex run_mu_;  // one run at a time
  std::thread thread_;
};

}  // namespace fv::server
