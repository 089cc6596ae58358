// Everything after the networks, fed with fuzz-chosen network outputs (NaN, ±inf, huge,
// negative, denormal as well as plausible values), on a fuzz-chosen image size:
// tiling plan → detector output decoding (UltraLightDetector::decode_outputs) → NMS →
// drop_contained → landmark crop and its input tensor → 68-point mapping and the 5 points →
// similarity alignment and warp to the 112 crop → quality → MobileFaceNet input; dlib chip
// transform, 150 chip and its input; L2 normalisation of a fuzz-chosen embedding; central_face.
// The networks themselves are not run (see fuzz/README.md).
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <opencv2/core.hpp>

#include "face/align.h"
#include "face/dlib_resnet_embedder.h"
#include "face/embedder.h"
#include "face/landmarker.h"
#include "face/pipeline.h"
#include "face/quality.h"
#include "face/ultralight_detector.h"

namespace {

using namespace fv::face;

constexpr int kMaxSide = 800;   // the image is a view of one pre-made noise image
constexpr int kMaxPriors = 48;   // the real net has 4420; the decoding of each is the same code
constexpr size_t kMaxFaces = 3;  // faces taken past NMS (the pipeline: up to 200, same code each)

const cv::Mat& noise() {
  static const cv::Mat m = [] {
    cv::Mat n(kMaxSide, kMaxSide, CV_8UC3);
    cv::RNG rng(42);
    rng.fill(n, cv::RNG::UNIFORM, 0, 256);
    return n;
  }();
  return m;
}

// A network output: mostly plausible values (so the code past the thresholds is reached),
// sometimes any float bit pattern at all.
float net_value(FuzzedDataProvider& in) {
  const uint8_t kind = in.ConsumeIntegral<uint8_t>();
  if (kind % 4 == 0) {
    const uint32_t bits = in.ConsumeIntegral<uint32_t>();
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
  return -0.5f + 2.0f * in.ConsumeIntegral<uint16_t>() / 65535.0f;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cv::setNumThreads(1);
  (void)noise();
  // The embedders' tensor fills have no input-dependent branch (their crops are always 112 and
  // 150 px RGB8, checked per input below) but were ~60 % of an exec's time under coverage
  // instrumentation: they run once here, under ASan, on crops of the noise image.
  int d112[4] = {1, 3, 112, 112}, d150[4] = {1, 3, 150, 150};
  cv::Mat b112(4, d112, CV_32F), b150(4, d150, CV_32F);
  MobileFaceNetEmbedder::fill_input(noise()(cv::Rect(0, 0, 112, 112)).clone(), b112, 0);
  DlibResNetEmbedder::fill_input(noise()(cv::Rect(0, 0, 150, 150)).clone(), b150, 0);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const int W = in.ConsumeIntegralInRange(1, kMaxSide), H = in.ConsumeIntegralInRange(1, kMaxSide);
  const cv::Mat rgb = noise()(cv::Rect(0, 0, W, H));
  UltraLightOptions opt;
  opt.min_face = in.ConsumeIntegralInRange(8, 400);  // the CLI accepts 8..10000
  opt.tiling = in.ConsumeBool();
  const auto tiles = plan_tiles(rgb.size(), opt);
  const Tile& tile = tiles[in.ConsumeIntegralInRange<size_t>(0, tiles.size() - 1)];

  const int priors = in.ConsumeIntegralInRange(0, kMaxPriors);
  std::vector<float> scores(2 * priors), boxes(4 * priors);
  for (float& v : scores) v = net_value(in);
  for (float& v : boxes) v = net_value(in);
  std::vector<Detection> cand;
  std::vector<Detection> dets;
  if (tiles.size() == 1) {
    UltraLightDetector::decode_outputs(scores.data(), boxes.data(), priors, tile, rgb.size(), opt.score_threshold, cand);
    dets = nms(std::move(cand), opt.nms_iou, opt.top_k);
  } else {
    // UltraLightDetector::run_tiles() for the pyramid: a pass plain or mirrored, merged by face.
    const bool mirrored = in.ConsumeBool();
    if (mirrored) UltraLightDetector::unmirror_boxes(boxes.data(), priors);
    UltraLightDetector::decode_outputs(scores.data(), boxes.data(), priors, tile, rgb.size(), opt.candidate_score, cand);
    std::vector<ViewCandidate> views;
    for (const auto& d : cand) views.push_back({d, in.ConsumeIntegralInRange(0, 3), in.ConsumeIntegralInRange(0, 2), mirrored});
    EvidenceOptions evidence;
    evidence.scales = in.ConsumeIntegralInRange(1, 3);
    evidence.vote_boxes = in.ConsumeBool();
    for (const auto& d : merge_views(std::move(views), evidence))
      if (d.score >= opt.pyramid_score_threshold) dets.push_back(d);
    dets = drop_contained(nms(std::move(dets), opt.nms_iou, opt.top_k), opt.containment);
  }

  std::vector<Face> faces;
  for (size_t i = 0; i < dets.size() && i < kMaxFaces; ++i) {
    // FacepluginLandmarker::locate() up to the network, then its output mapping.
    const cv::Rect crop = FacepluginLandmarker::crop_rect(dets[i].box, rgb.size());
    if (crop.width < 2 || crop.height < 2 || (crop & cv::Rect(0, 0, rgb.cols, rgb.rows)) != crop) continue;
    (void)FacepluginLandmarker::input_tensor(rgb, crop);
    float lm_out[136];
    for (float& v : lm_out) v = net_value(in);
    Face f;
    f.detection = dets[i];
    f.landmarks = FacepluginLandmarker::from_output(lm_out, crop);
    // MobileFaceNetEmbedder::align(), quality, the embedder's input.
    const cv::Mat aligned = MobileFaceNetEmbedder::crop(rgb, f.landmarks);
    f.quality = assess_quality(dets[i], f.landmarks, aligned);
    if (aligned.rows != 112 || aligned.cols != 112 || aligned.type() != CV_8UC3) std::abort();
    // DlibResNetEmbedder::align() and its input.
    const cv::Mat chip = DlibResNetEmbedder::chip(rgb, f.landmarks);
    if (chip.rows != 150 || chip.cols != 150 || chip.type() != CV_8UC3) std::abort();
    faces.push_back(std::move(f));
  }
  (void)central_face(faces, rgb.size());

  // The embedder's raw output → template.
  std::vector<float> emb(in.ConsumeIntegralInRange(0, 512));
  for (float& v : emb) v = net_value(in);
  l2_normalise(emb);
  FaceTemplate a{"m", 1, emb}, b{"m", 1, std::vector<float>(emb.rbegin(), emb.rend())};
  (void)similarity(a, b);
  return 0;
}
