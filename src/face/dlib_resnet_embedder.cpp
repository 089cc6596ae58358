#include "face/dlib_resnet_embedder.h"

#include <opencv2/imgproc.hpp>

#include "face/align.h"

namespace fv::face {
namespace {

// dlib/image_transforms/interpolation.h, get_face_chip_details(): mean face, points 17..67.
constexpr double kMeanX[51] = {
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124, 0.904991, 0.98004,
    0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036, 0.490127, 0.554217, 0.613373, 0.121737,
    0.187122, 0.265825, 0.334606, 0.260918, 0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751,
    0.719335, 0.254149, 0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
    0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874, 0.553364, 0.490127,
    0.42689};
constexpr double kMeanY[51] = {
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891, 0.0187482, 0.038915, 0.106454,
    0.203352, 0.307009, 0.409805, 0.515625, 0.587326, 0.609345, 0.628106, 0.609345, 0.587326, 0.216423,
    0.178758, 0.179852, 0.231733, 0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077,
    0.245099, 0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805, 0.902192,
    0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746, 0.784792, 0.824182, 0.831803,
    0.824182};
constexpr float kMeanRgb[3] = {122.782f, 117.001f, 104.298f};

// Builds face-api's FaceRecognitionNet layer by layer. Shapes are tracked here because the
// residual "down" blocks need them to decide on spatial and channel zero-padding.
class NetBuilder {
 public:
  NetBuilder(cv::dnn::Net& net, const nn::TfjsWeights& w) : net_(net), w_(w) {}

  struct T { int id; int c, h; };  // layer output: id, channels, height (= width)

  Result<T> conv(const std::string& prefix, T x, int stride, bool same, bool relu) {
    auto f = w_.get(prefix + "/conv/filters", 4);
    auto b = w_.get(prefix + "/conv/bias", 1);
    auto sw = w_.get(prefix + "/scale/weights", 1);
    auto sb = w_.get(prefix + "/scale/biases", 1);
    for (const Status& s : {f.status(), b.status(), sw.status(), sb.status()}) if (!s.is_ok()) return s;
    const auto& fs = (*f)->shape;  // HWIO
    const int kh = fs[0], kw = fs[1], in = fs[2], out = fs[3];
    if (kh != kw || in != x.c || int((*b)->values.size()) != out || int((*sw)->values.size()) != out ||
        int((*sb)->values.size()) != out)
      return corrupt_data("weight shapes of " + prefix + " do not fit the network");
    int dims[4] = {out, in, kh, kw};
    cv::Mat weights(4, dims, CV_32F), bias(1, out, CV_32F);
    for (int o = 0; o < out; ++o) {
      const float s = (*sw)->values[o];
      // (conv(x) + b)·s + c  =  conv(x)·s + (b·s + c): fold the scale into the filter.
      bias.at<float>(o) = (*b)->values[o] * s + (*sb)->values[o];
      for (int i = 0; i < in; ++i)
        for (int y = 0; y < kh; ++y)
          for (int xx = 0; xx < kw; ++xx)
            weights.ptr<float>(o, i)[y * kw + xx] = (*f)->values[((y * kw + xx) * in + i) * out + o] * s;
    }
    cv::dnn::LayerParams lp;
    lp.set("kernel_h", kh); lp.set("kernel_w", kw);
    lp.set("stride_h", stride); lp.set("stride_w", stride);
    const int pad = same ? (kh - 1) / 2 : 0;
    lp.set("pad_h", pad); lp.set("pad_w", pad);
    lp.set("num_output", out);
    lp.set("bias_term", true);
    lp.blobs = {weights, bias};
    T y{add(prefix, "Convolution", lp, {x.id}), out, (x.h + 2 * pad - kh) / stride + 1};
    return relu ? T{add(prefix + "/relu", "ReLU", empty(), {y.id}), y.c, y.h} : y;
  }

  T pool(const std::string& name, T x, const char* kind, int k, int s) {
    cv::dnn::LayerParams lp;
    lp.set("pool", kind);
    lp.set("kernel_h", k); lp.set("kernel_w", k);
    lp.set("stride_h", s); lp.set("stride_w", s);
    lp.set("ceil_mode", false);  // TF 'valid': floor
    return {add(name, "Pooling", lp, {x.id}), x.c, (x.h - k) / s + 1};
  }

  Result<T> residual(const std::string& prefix, T x) {
    auto a = conv(prefix + "/conv1", x, 1, true, true);
    if (!a.is_ok()) return a;
    auto b = conv(prefix + "/conv2", *a, 1, true, false);
    if (!b.is_ok()) return b;
    return sum_relu(prefix, *b, x);
  }

  Result<T> residual_down(const std::string& prefix, T x) {
    auto a = conv(prefix + "/conv1", x, 2, false, true);
    if (!a.is_ok()) return a;
    auto b = conv(prefix + "/conv2", *a, 1, true, false);
    if (!b.is_ok()) return b;
    T out = *b;
    T pooled = pool(prefix + "/avgpool", x, "ave", 2, 2);
    if (out.h < pooled.h) {  // face-api pads the conv branch with zeros at the bottom and right
      cv::dnn::LayerParams lp;
      const int d = pooled.h - out.h;
      std::vector<int> p = {0, 0, 0, 0, 0, d, 0, d};
      lp.set("paddings", cv::dnn::DictValue::arrayInt(p.data(), static_cast<int>(p.size())));
      lp.set("value", 0.0);
      out = {add(prefix + "/pad", "Padding", lp, {out.id}), out.c, pooled.h};
    }
    if (pooled.c != out.c) {  // shortcut channels zero-padded: a 1×1 identity into the first C of 2C
      int dims[4] = {out.c, pooled.c, 1, 1};
      cv::Mat eye(4, dims, CV_32F, cv::Scalar(0));
      for (int i = 0; i < pooled.c; ++i) eye.ptr<float>(i, i)[0] = 1.0f;
      cv::dnn::LayerParams lp;
      lp.set("kernel_h", 1); lp.set("kernel_w", 1);
      lp.set("num_output", out.c);
      lp.set("bias_term", false);
      lp.blobs = {eye};
      pooled = {add(prefix + "/chanpad", "Convolution", lp, {pooled.id}), out.c, pooled.h};
    }
    return sum_relu(prefix, out, pooled);
  }

  Result<T> head(T x) {
    cv::dnn::LayerParams gp;
    gp.set("pool", "ave");
    gp.set("global_pooling", true);
    T g{add("global_mean", "Pooling", gp, {x.id}), x.c, 1};
    auto fc = w_.get("fc", 2);
    if (!fc.is_ok()) return fc.status();
    const int in = (*fc)->shape[0], out = (*fc)->shape[1];
    if (in != x.c) return corrupt_data("fc does not fit the network");
    cv::Mat weights(out, in, CV_32F);  // OpenCV wants out×in; TF matMul(x, W) has W in×out
    for (int i = 0; i < in; ++i)
      for (int o = 0; o < out; ++o) weights.at<float>(o, i) = (*fc)->values[i * out + o];
    cv::dnn::LayerParams lp;
    lp.set("num_output", out);
    lp.set("bias_term", false);
    lp.set("axis", 1);
    lp.blobs = {weights};
    return T{add("fc", "InnerProduct", lp, {g.id}), out, 1};
  }

 private:
  static cv::dnn::LayerParams empty() { return {}; }
  Result<T> sum_relu(const std::string& prefix, T a, T b) {
    cv::dnn::LayerParams lp;
    lp.set("operation", "sum");
    const int s = add(prefix + "/add", "Eltwise", lp, {a.id, b.id});
    return T{add(prefix + "/out", "ReLU", empty(), {s}), a.c, a.h};
  }
  int add(const std::string& name, const std::string& type, cv::dnn::LayerParams lp, std::vector<int> inputs) {
    lp.name = name;
    lp.type = type;
    const int id = net_.addLayer(name, type, lp);
    for (size_t i = 0; i < inputs.size(); ++i) net_.connect(inputs[i], 0, id, static_cast<int>(i));
    return id;
  }
  cv::dnn::Net& net_;
  const nn::TfjsWeights& w_;
};

}  // namespace

cv::Matx23d dlib_chip_transform(const std::vector<cv::Point2d>& p68, int size, double padding) {
  // Fit chip → image on the 40 stable points: nose, eyes, outer lips and upper inner lip
  // (dlib drops the jaw, the eyebrows and the lower lip).
  std::vector<cv::Point2d> from, to;
  for (int i = 27; i < 68; ++i) {
    if ((i >= 55 && i <= 59) || (i >= 65 && i <= 67)) continue;
    from.emplace_back(size * (padding + kMeanX[i - 17]) / (2 * padding + 1), size * (padding + kMeanY[i - 17]) / (2 * padding + 1));
    to.push_back(p68[i]);
  }
  const cv::Matx23d fit = similarity_transform(from, to);
  const double a = fit(0, 0), b = fit(1, 0), tx = fit(0, 2), ty = fit(1, 2);
  // dlib's chip rectangle: centred at tform(size/2, size/2), side size·scale − 1, rotated by
  // the fit's angle; chip corners (0,0), (size−1,0), (0,size−1) map onto its corners.
  const double angle = std::atan2(b, a), scale = std::hypot(a, b);
  const double cx = a * size / 2 - b * size / 2 + tx, cy = b * size / 2 + a * size / 2 + ty;
  const double w = size * scale - 1, k = w / (size - 1), c = std::cos(angle), s = std::sin(angle);
  return cv::Matx23d(c * k, -s * k, cx + (-c + s) * w / 2, s * k, c * k, cy + (-s - c) * w / 2);
}

Result<std::unique_ptr<DlibResNetEmbedder>> DlibResNetEmbedder::create(const nn::ModelStore& store) {
  auto manifest = store.locate(kPackage, kManifest);
  if (!manifest.is_ok()) return manifest.status();
  auto shard = store.locate(kPackage, kShard);  // checks its sha256 too
  if (!shard.is_ok()) return shard.status();
  auto w = nn::TfjsWeights::load(*manifest);
  if (!w.is_ok()) return w.status();
  return from_weights(*w);
}

Result<std::unique_ptr<DlibResNetEmbedder>> DlibResNetEmbedder::from_weights(const nn::TfjsWeights& w) {
  std::unique_ptr<DlibResNetEmbedder> e(new DlibResNetEmbedder());
  cv::dnn::Net net;
  NetBuilder b(net, w);
  net.setInputsNames({"data"});
  using T = NetBuilder::T;
  Result<T> x = b.conv("conv32_down", T{0, 3, kSize}, 2, false, true);
  if (!x.is_ok()) return x.status();
  x = b.pool("maxpool", *x, "max", 3, 2);
  const std::vector<std::pair<std::string, bool>> blocks = {
      {"conv32_1", false}, {"conv32_2", false}, {"conv32_3", false}, {"conv64_down", true}, {"conv64_1", false},
      {"conv64_2", false}, {"conv64_3", false}, {"conv128_down", true}, {"conv128_1", false}, {"conv128_2", false},
      {"conv256_down", true}, {"conv256_1", false}, {"conv256_2", false}, {"conv256_down_out", true}};
  for (const auto& [name, down] : blocks) {
    x = down ? b.residual_down(name, *x) : b.residual(name, *x);
    if (!x.is_ok()) return x.status();
  }
  auto out = b.head(*x);
  if (!out.is_ok()) return out.status();
  auto model = nn::Model::from_net(std::move(net), {3, kSize, kSize}, {"fc"}, "faceapi-dlib-resnet");
  if (!model.is_ok()) return model.status();
  e->model_ = std::move(model).value();
  return e;
}

cv::Mat DlibResNetEmbedder::align(const cv::Mat& rgb, const Landmarks& landmarks) const { return chip(rgb, landmarks); }

cv::Mat DlibResNetEmbedder::chip(const cv::Mat& rgb, const Landmarks& landmarks) {
  cv::Mat chip;
  cv::warpAffine(rgb, chip, cv::Mat(dlib_chip_transform(landmarks.points68, kSize)), cv::Size(kSize, kSize),
                 cv::INTER_LINEAR | cv::WARP_INVERSE_MAP, cv::BORDER_CONSTANT, cv::Scalar(0, 0, 0));
  return chip;
}

void DlibResNetEmbedder::fill_input(const cv::Mat& chip, cv::Mat& blob, int i) {
  const int plane = kSize * kSize;
  float* base = blob.ptr<float>(i);
  for (int y = 0; y < kSize; ++y) {
    const uint8_t* row = chip.ptr<uint8_t>(y);
    for (int x = 0; x < kSize; ++x)
      for (int c = 0; c < 3; ++c) base[c * plane + y * kSize + x] = (float(row[3 * x + c]) - kMeanRgb[c]) / 255.0f;
  }
}

Result<cv::Mat> DlibResNetEmbedder::forward_raw(const cv::Mat& blob) {
  auto out = model_->forward(blob);
  if (!out.is_ok()) return out.status();
  return (*out)[0];
}

Result<std::vector<FaceTemplate>> DlibResNetEmbedder::embed(const std::vector<cv::Mat>& aligned) {
  return embed_crops(*model_, aligned, kSize, &fill_input, *this);
}

}  // namespace fv::face
