#include "nn/model.h"

#include <cfloat>
#include <cmath>

namespace fv::nn {
namespace {

size_t flush_denormals(cv::Mat& m) {
  if (m.depth() != CV_32F || !m.isContinuous()) return 0;
  size_t n = 0;
  auto* p = m.ptr<float>();
  const size_t total = m.total() * m.channels();
  for (size_t i = 0; i < total; ++i) {
    if (p[i] != 0.0f && std::fabs(p[i]) < FLT_MIN) {
      p[i] = 0.0f;
      ++n;
    }
  }
  return n;
}

}  // namespace

Result<std::unique_ptr<Model>> Model::load_onnx(const std::filesystem::path& path, InputSpec input,
                                                std::vector<std::string> outputs, ModelOptions options) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return not_found("model file " + path.string() + " is missing; run `make models` (scripts/fetch-models.sh)");
  }
  std::unique_ptr<Model> model(new Model());
  try {
    model->net_ = cv::dnn::readNetFromONNX(path.string());
  } catch (const cv::Exception& e) {
    return corrupt_data("cannot load ONNX model " + path.string() + ": " + e.what());
  }
  if (model->net_.empty()) return corrupt_data("ONNX model " + path.string() + " has no layers");
  return from_net(std::move(model->net_), input, std::move(outputs), path.filename().string(), options);
}

Result<std::unique_ptr<Model>> Model::from_net(cv::dnn::Net net, InputSpec input, std::vector<std::string> outputs,
                                               std::string name, ModelOptions options) {
  std::unique_ptr<Model> model(new Model());
  model->net_ = std::move(net);
  if (model->net_.empty()) return invalid_argument("model " + name + " has no layers");
  model->net_.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
  model->net_.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
#ifdef FACEVAULT_TSAN
  // Under ThreadSanitizer (make test-tsan) the networks run on the calling thread: OpenCV's
  // worker threads synchronise inside TBB, which is not instrumented, so TSan would report
  // every hand-off of a tensor to them as a race and could check nothing of ours there.
  cv::setNumThreads(1);
#endif
  if (options.flush_denormal_weights) {
    // Layer blobs share memory with the network, so flushing them in place before the first
    // forward() (when OpenCV fuses layers) changes the weights the network computes with.
    for (const auto& layer_name : model->net_.getLayerNames()) {
      auto layer = model->net_.getLayer(model->net_.getLayerId(layer_name));
      for (auto& blob : layer->blobs) model->flushed_ += flush_denormals(blob);
    }
  }
  model->input_ = input;
  model->outputs_ = std::move(outputs);
  model->name_ = std::move(name);
  return model;
}

Result<std::vector<cv::Mat>> Model::forward(const cv::Mat& batch) {
  if (batch.dims != 4 || batch.type() != CV_32F || batch.size[1] != input_.channels ||
      batch.size[2] != input_.height || batch.size[3] != input_.width) {
    return invalid_argument(name_ + ": input must be N×" + std::to_string(input_.channels) + "×" +
                            std::to_string(input_.height) + "×" + std::to_string(input_.width) + " float32");
  }
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<cv::Mat> out;
  try {
    net_.setInput(batch);
    net_.forward(out, outputs_);
  } catch (const cv::Exception& e) {
    return internal_error(name_ + ": forward failed: " + e.what());
  }
  // The network reuses its output buffers on the next call: hand out copies.
  for (auto& m : out) m = m.clone();
  return out;
}

void set_inner_threads(int n) { cv::setNumThreads(n); }

}  // namespace fv::nn
