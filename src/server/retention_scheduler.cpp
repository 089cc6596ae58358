#include "server/retention_scheduler.h"

#include <cstdio>
#include <exception>

#include "service/render.h"

namespace fv::server {
namespace {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

nlohmann::json opt_num(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }

}  // namespace

service::Actor retention_scheduler_actor() { return {"scheduler:retention", service::Role::kAuditor}; }

nlohmann::json RetentionState::to_json() const {
  nlohmann::json last = nullptr;
  if (last_run_unix)
    last = {{"at", last_run_at}, {"ok", last_ok}, {"error", last_ok ? nlohmann::json(nullptr) : nlohmann::json(last_error)}};
  return {{"schedule", {{"enabled", interval.count() > 0}, {"interval_seconds", interval.count()},
                        {"actor", retention_scheduler_actor().name}}},
          {"runs", runs},
          {"failures", failures},
          {"last_run", last},
          {"last_run_timestamp_seconds", opt_num(last_run_unix)},
          {"last_success_timestamp_seconds", opt_num(last_success_unix)},
          {"last_report_at", last_report.is_null() ? nlohmann::json(nullptr) : nlohmann::json(last_report_at)},
          {"last_report", last_report}};
}

RetentionScheduler::RetentionScheduler(service::Api& svc, std::chrono::seconds interval, bool log_runs)
    : svc_(svc), interval_(interval.count() > 0 ? interval : std::chrono::seconds(0)), log_runs_(log_runs) {
  state_.interval = interval_;
}

RetentionScheduler::~RetentionScheduler() { stop(); }

void RetentionScheduler::start() {
  std::lock_guard<std::mutex> l(mu_);
  if (!enabled() || started_ || stopping_) return;
  started_ = true;
  thread_ = std::thread([this] { loop(); });
}

void RetentionScheduler::stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

RetentionState RetentionScheduler::state() const {
  std::lock_guard<std::mutex> l(mu_);
  return state_;
}

void RetentionScheduler::loop() {
  auto next = std::chrono::steady_clock::now() + interval_;
  for (;;) {
    {
      std::unique_lock<std::mutex> l(mu_);
      // Woken early by stop(); a spurious wake-up waits again for the rest of the interval.
      while (!stopping_ && std::chrono::steady_clock::now() < next)
        cv_.wait_until(l, next);
      if (stopping_) return;
    }
    run_once();
    // The next run is one interval after this one ended: a run that took longer than the
    // interval is not followed by a burst of catch-up runs.
    next = std::chrono::steady_clock::now() + interval_;
  }
}

void RetentionScheduler::run_once() {
  std::lock_guard<std::mutex> one(run_mu_);
  Result<service::ExpireReport> r = internal_error("not run");
  try {
    r = svc_.expire(retention_scheduler_actor(), std::nullopt, false);
  } catch (const std::exception& e) {  // the service does not throw; a bad_alloc would end the thread
    r = internal_error(std::string("retention run threw: ") + e.what());
  }
  const double t = unix_now();
  const std::string at = svc_.now();
  std::lock_guard<std::mutex> l(mu_);
  ++state_.runs;
  state_.last_run_unix = t;
  state_.last_run_at = at;
  state_.last_ok = r.is_ok();
  if (!r.is_ok()) {
    ++state_.failures;
    state_.last_error = r.status().to_string();
    std::fprintf(stderr, "facevault serve: retention run failed (%llu so far; retried in %lld s): %s\n",
                 static_cast<unsigned long long>(state_.failures), static_cast<long long>(interval_.count()),
                 state_.last_error.c_str());
    return;
  }
  if (!r->failed_shards.empty()) {
    // A cluster's run that ran on some shards and failed on others: its report is kept, and it
    // counts as failed until a run completes everywhere.
    state_.last_ok = false;
    ++state_.failures;
    state_.last_error = "shard " + std::to_string(r->failed_shards.front().first) + ": " + r->failed_shards.front().second;
    if (r->failed_shards.size() > 1) state_.last_error += " (and " + std::to_string(r->failed_shards.size() - 1) + " more)";
    std::fprintf(stderr, "facevault serve: retention run failed on %zu shard(s) (retried in %lld s): %s\n",
                 r->failed_shards.size(), static_cast<long long>(interval_.count()), state_.last_error.c_str());
  } else {
    state_.last_error.clear();
    state_.last_success_unix = t;
  }
  state_.last_erased = static_cast<int64_t>(r->erased.size());
  state_.last_report = service::render::expire_report(*r);
  state_.last_report_at = r->as_of;
  if (log_runs_ && (!r->erased.empty() || !r->bases_lapsed.empty()))
    std::fprintf(stderr, "facevault serve: retention run erased %zu subject(s) and the rows of %zu expired basis(es) (audit %s)\n",
                 r->erased.size(), r->bases_lapsed.size(), r->audit_hash.c_str());
}

}  // namespace fv::server
