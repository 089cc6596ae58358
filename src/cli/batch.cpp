#include "cli/batch.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include "nn/model.h"

namespace fv::cli {
namespace {

class ProgressBar {
 public:
  ProgressBar(size_t total, bool on) : total_(total), on_(on && total > 1), start_(std::chrono::steady_clock::now()) {}
  void update(size_t done) {
    if (!on_) return;
    auto now = std::chrono::steady_clock::now();
    if (done != total_ && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const int width = 30, filled = static_cast<int>(width * done / std::max<size_t>(1, total_));
    std::fprintf(stderr, "\r[%s%s] %zu/%zu  %.1f img/s", std::string(filled, '#').c_str(),
                 std::string(width - filled, ' ').c_str(), done, total_, secs > 0 ? done / secs : 0.0);
    if (done == total_) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  size_t total_;
  bool on_;
  std::chrono::steady_clock::time_point start_, last_{};
};

}  // namespace

Result<std::vector<std::string>> read_list_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return not_found("cannot open list file " + path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    out.push_back(line);
  }
  return out;
}

Status run_batch(const std::vector<std::string>& files, const BatchOptions& options,
                 const std::function<void(const ImageResult&)>& emit) {
  const int threads = std::max(1, std::min<int>(options.threads, static_cast<int>(std::max<size_t>(1, files.size()))));
  // Parallelism comes from independent workers; OpenCV's own pool stays at one thread each.
  nn::set_inner_threads(1);
  nn::ModelStore store;
  std::vector<std::unique_ptr<face::FacePipeline>> pipelines;
  for (int i = 0; i < threads; ++i) {
    auto p = face::FacePipeline::create(store, options.pipeline);
    if (!p.is_ok()) return p.status();
    pipelines.push_back(std::move(p).value());
  }
  std::vector<std::optional<ImageResult>> results(files.size());
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<size_t> next{0};
  size_t emitted = 0;  // guarded by mu
  auto work = [&](face::FacePipeline& pipeline) {
    for (size_t i; (i = next.fetch_add(1)) < files.size();) {
      // Bound the look-ahead so a long list does not pile results up in memory.
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return i < emitted + 64 * static_cast<size_t>(threads); });
      }
      ImageResult r;
      r.file = files[i];
      auto img = image::read_image_file(files[i], options.limits);
      if (!img.is_ok()) {
        r.status = img.status();
      } else {
        r.width = img->rgb.cols;
        r.height = img->rgb.rows;
        auto faces = pipeline.analyze(img->rgb, options.embed);
        if (faces.is_ok()) r.faces = std::move(faces).value();
        else r.status = faces.status();
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        results[i] = std::move(r);
      }
      cv.notify_all();
    }
  };
  std::vector<std::thread> workers;
  for (int i = 0; i < threads; ++i) workers.emplace_back(work, std::ref(*pipelines[i]));
  ProgressBar bar(files.size(), options.progress);
  for (size_t i = 0; i < files.size(); ++i) {
    ImageResult r;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return results[i].has_value(); });
      r = std::move(*results[i]);
      results[i].reset();
      emitted = i + 1;
    }
    cv.notify_all();
    emit(r);
    bar.update(i + 1);
  }
  for (auto& w : workers) w.join();
  return Status::ok();
}

}  // namespace fv::cli
