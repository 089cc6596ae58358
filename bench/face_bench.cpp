// Speed of the face pipeline stages (Google Benchmark). Results and the command that made
// them: docs/benchmarks.md. Images come from ../shared (FACEVAULT_SHARED overrides).
#include <benchmark/benchmark.h>

#include <filesystem>
#include <mutex>
#include <tuple>

#include <opencv2/imgproc.hpp>

#include "face/pipeline.h"
#include "image/decode.h"
#include "nn/model.h"

namespace {

std::filesystem::path shared() {
  if (const char* s = std::getenv("FACEVAULT_SHARED"); s && *s) return s;
  return std::filesystem::path(FACEVAULT_SOURCE_DIR) / ".." / "shared";
}

cv::Mat load(const std::string& rel) {
  auto img = fv::image::read_image_file(shared() / rel);
  return img.is_ok() ? img->rgb : cv::Mat();
}

// One pipeline per benchmark thread, built once.
fv::face::FacePipeline& pipeline(int index, bool tiling = true, bool flip_tta = true) {
  static std::mutex mu;
  static std::map<std::tuple<int, bool, bool>, std::unique_ptr<fv::face::FacePipeline>> pipelines;
  std::lock_guard<std::mutex> lock(mu);
  auto& p = pipelines[{index, tiling, flip_tta}];
  if (!p) {
    fv::face::PipelineOptions o;
    o.components.ultralight.tiling = tiling;
    o.components.ultralight.flip_tta = flip_tta;
    auto r = fv::face::FacePipeline::create(fv::nn::ModelStore(), o);
    if (!r.is_ok()) { std::fprintf(stderr, "%s\n", r.status().to_string().c_str()); std::exit(2); }
    p = std::move(r).value();
  }
  return *p;
}

// Landmarks + alignment + embedding for one face (the per-face cost after detection).
void BM_PerFace(benchmark::State& state) {
  static const cv::Mat rgb = load("data/lfw/images/Abel_Pacheco/Abel_Pacheco_0001.jpg");
  auto& p = pipeline(state.thread_index());
  auto dets = p.detector().detect(rgb);
  if (rgb.empty() || !dets.is_ok() || dets->empty()) { state.SkipWithError("no LFW image / face"); return; }
  const auto box = (*dets)[0].box;
  for (auto _ : state) {
    auto lm = p.landmarker().locate(rgb, box);
    cv::Mat crop = p.embedder().align(rgb, *lm);
    auto t = p.embedder().embed({crop});
    benchmark::DoNotOptimize(t);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PerFace)->Threads(1)->Threads(2)->UseRealTime()->Unit(benchmark::kMillisecond);

void detect_at(benchmark::State& state, cv::Size size, bool tiling, bool flip_tta = true) {
  static const cv::Mat src = load("data/samples/face-api-js/images/bbt1.jpg");
  if (src.empty()) { state.SkipWithError("sample image absent"); return; }
  cv::Mat rgb;
  cv::resize(src, rgb, size, 0, 0, cv::INTER_AREA);
  auto& p = pipeline(state.thread_index(), tiling, flip_tta);
  size_t faces = 0;
  for (auto _ : state) {
    auto d = p.detector().detect(rgb);
    faces = d.is_ok() ? d->size() : 0;
  }
  state.counters["faces"] = static_cast<double>(faces);
}
void BM_Detect_640x480(benchmark::State& s) { detect_at(s, {640, 480}, true); }
void BM_Detect_1920x1080(benchmark::State& s) { detect_at(s, {1920, 1080}, true); }
void BM_DetectUntiled_640x480(benchmark::State& s) { detect_at(s, {640, 480}, false); }
void BM_DetectUntiled_1920x1080(benchmark::State& s) { detect_at(s, {1920, 1080}, false); }
// The pyramid without its mirrored pass: what the flip's evidence costs, in the same sitting.
void BM_DetectNoFlip_640x480(benchmark::State& s) { detect_at(s, {640, 480}, true, false); }
void BM_DetectNoFlip_1920x1080(benchmark::State& s) { detect_at(s, {1920, 1080}, true, false); }
BENCHMARK(BM_Detect_640x480)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DetectNoFlip_640x480)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DetectNoFlip_1920x1080)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Detect_1920x1080)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DetectUntiled_640x480)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DetectUntiled_1920x1080)->UseRealTime()->Unit(benchmark::kMillisecond);

// Whole pipeline on one LFW image (decode excluded): detect + landmarks + align + embed.
void BM_PipelineLfwImage(benchmark::State& state) {
  static const cv::Mat rgb = load("data/lfw/images/Abel_Pacheco/Abel_Pacheco_0001.jpg");
  if (rgb.empty()) { state.SkipWithError("LFW absent"); return; }
  auto& p = pipeline(state.thread_index());
  for (auto _ : state) benchmark::DoNotOptimize(p.analyze(rgb, true));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PipelineLfwImage)->Threads(1)->Threads(2)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  fv::nn::set_inner_threads(1);  // parallelism comes from benchmark threads, as in the CLI
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
