// Model: the one seam between facevault and an inference engine (OpenCV DNN).
// Everything above `nn` sees tensors in, tensors out; nothing else of the engine.
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>

#include "common/status.h"

namespace fv::nn {

// The tensor a model expects: NCHW float32, fixed C×H×W, any batch size N.
struct InputSpec {
  int channels = 3;
  int height = 0;
  int width = 0;
};

struct ModelOptions {
  // Zero float32 weights below FLT_MIN at load. fr_feature ships 8,938 denormal weights that
  // make every convolution 3-6x slower; flushing them changes no output (measured: max diff 0).
  bool flush_denormal_weights = true;
};

class Model {
 public:
  // Loads an ONNX graph as is. `outputs` names the graph outputs forward() returns, in order.
  static Result<std::unique_ptr<Model>> load_onnx(const std::filesystem::path& path, InputSpec input,
                                                  std::vector<std::string> outputs,
                                                  ModelOptions options = {});

  // Wraps a network built in code (e.g. from TF.js weights, see TfjsWeights), so every model
  // runs through this one seam whatever its file format.
  static Result<std::unique_ptr<Model>> from_net(cv::dnn::Net net, InputSpec input, std::vector<std::string> outputs,
                                                 std::string name, ModelOptions options = {});

  const InputSpec& input_spec() const { return input_; }
  const std::string& name() const { return name_; }
  // How many weights were flushed to zero at load (for tests and model cards).
  size_t flushed_denormals() const { return flushed_; }

  // batch: 4-D float32 N×C×H×W matching input_spec(). Returns one tensor per output name.
  // Thread-safe (calls are serialised): give each worker thread its own Model for parallelism.
  Result<std::vector<cv::Mat>> forward(const cv::Mat& batch);

 private:
  Model() = default;
  cv::dnn::Net net_;
  InputSpec input_;
  std::vector<std::string> outputs_;
  std::string name_;
  size_t flushed_ = 0;
  std::mutex mu_;
};

// Sets how many threads OpenCV may use inside one forward() (process-wide: OpenCV keeps one
// pool). facevault's own workers each call forward() with 1 inner thread by default.
void set_inner_threads(int n);

}  // namespace fv::nn
