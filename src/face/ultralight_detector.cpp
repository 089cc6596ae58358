#include "face/ultralight_detector.h"

#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

namespace fv::face {

Result<std::unique_ptr<UltraLightDetector>> UltraLightDetector::create(const nn::ModelStore& store,
                                                                       UltraLightOptions options) {
  auto path = store.locate(kPackage, kFile);
  if (!path.is_ok()) return path.status();
  auto model = nn::Model::load_onnx(*path, {3, kHeight, kWidth}, {"scores", "boxes"});
  if (!model.is_ok()) return model.status();
  if (options.batch < 1) options.batch = 1;
  return std::unique_ptr<UltraLightDetector>(new UltraLightDetector(std::move(model).value(), options));
}

std::vector<Tile> plan_tiles(cv::Size image, const UltraLightOptions& options) {
  constexpr int kWidth = UltraLightDetector::kWidth, kHeight = UltraLightDetector::kHeight;
  std::vector<Tile> tiles;
  tiles.push_back({cv::Rect(0, 0, image.width, image.height), true, 0});
  if (!options.tiling || image.width <= 0 || image.height <= 0) return tiles;
  // The smallest prior of RFB-320 is 10 px; 16 px faces are found reliably.
  const double t_min = std::max(options.min_face / 16.0, 0.25);
  // A small image (finer than the finest level, not badly stretched) needs one pass: a single
  // letterboxed tile, which keeps the face's aspect. Measured on LFW View-1: letterbox alone
  // 99.30 %, stretch alone 99.00 % (undistorted boxes give better landmarks).
  const double sx = image.width / double(kWidth), sy = image.height / double(kHeight);
  if (std::max(sx, sy) <= t_min && sx / sy < 1.5 && sy / sx < 1.5) {
    tiles[0] = {cv::Rect(0, 0, static_cast<int>(std::lround(kWidth * t_min)), static_cast<int>(std::lround(kHeight * t_min))), false, t_min};
    return tiles;
  }
  // A step near 1 would plan endless levels; NaN or nonsense falls back to the default.
  const double step = std::isfinite(options.level_step) && options.level_step >= 1.1 && options.level_step <= 4
                          ? options.level_step
                          : 2.0;
  for (double t = t_min;; t *= step) {
    const int tw = static_cast<int>(std::lround(kWidth * t));
    const int th = static_cast<int>(std::lround(kHeight * t));
    auto starts = [&](int extent, int tile) {
      std::vector<int> s;
      if (extent <= tile) { s.push_back(0); return s; }
      const int step = std::max(1, static_cast<int>(tile * (1.0 - options.tile_overlap)));
      const int n = static_cast<int>(std::ceil(double(extent - tile) / step)) + 1;
      for (int i = 0; i < n; ++i) {
        // Spread the tiles evenly so the last one ends at the image border.
        s.push_back(n == 1 ? 0 : static_cast<int>(std::lround(double(extent - tile) * i / (n - 1))));
      }
      return s;
    };
    const auto xs = starts(image.width, tw), ys = starts(image.height, th);
    for (int y : ys)
      for (int x : xs) tiles.push_back({cv::Rect(x, y, tw, th), false, t});
    if (xs.size() == 1 && ys.size() == 1) break;  // this level already sees the whole image
  }
  return tiles;
}

cv::Mat UltraLightDetector::tile_pixels(const cv::Mat& rgb, const Tile& tile) {
  cv::Mat out;
  if (tile.stretch) {
    cv::resize(rgb, out, cv::Size(kWidth, kHeight), 0, 0, cv::INTER_LINEAR);
    return out;
  }
  out = cv::Mat::zeros(kHeight, kWidth, CV_8UC3);
  const cv::Rect roi = tile.rect & cv::Rect(0, 0, rgb.cols, rgb.rows);
  if (roi.empty()) return out;
  const double scale = double(kWidth) / tile.rect.width;
  const int dx = static_cast<int>(std::lround((roi.x - tile.rect.x) * scale));
  const int dy = static_cast<int>(std::lround((roi.y - tile.rect.y) * scale));
  const int dw = std::clamp(static_cast<int>(std::lround(roi.width * scale)), 1, kWidth - dx);
  const int dh = std::clamp(static_cast<int>(std::lround(roi.height * scale)), 1, kHeight - dy);
  cv::Mat dst = out(cv::Rect(dx, dy, dw, dh));
  cv::resize(rgb(roi), dst, dst.size(), 0, 0, cv::INTER_LINEAR);
  return out;
}

void UltraLightDetector::fill_input(const cv::Mat& tile_rgb, cv::Mat& blob, int i) {
  const int plane = kWidth * kHeight;
  float* base = blob.ptr<float>(i);
  for (int y = 0; y < kHeight; ++y) {
    const uint8_t* row = tile_rgb.ptr<uint8_t>(y);
    for (int x = 0; x < kWidth; ++x) {
      for (int c = 0; c < 3; ++c) base[c * plane + y * kWidth + x] = (float(row[3 * x + c]) - 127.0f) / 128.0f;
    }
  }
}

void UltraLightDetector::decode_outputs(const float* s, const float* b, int priors, const Tile& tile, cv::Size image,
                                        float threshold, std::vector<Detection>& candidates) {
  const int W = image.width, H = image.height;
  for (int a = 0; a < priors; ++a) {
    // Network outputs can hold anything for hostile input: a NaN score would break the
    // ordering the sorts rely on, a non-finite box every IoU and average after it.
    const float score = s[2 * a + 1];
    if (!(score >= threshold) || !std::isfinite(score)) continue;
    if (!std::isfinite(b[4 * a]) || !std::isfinite(b[4 * a + 1]) || !std::isfinite(b[4 * a + 2]) || !std::isfinite(b[4 * a + 3]))
      continue;
    Detection d;
    d.score = score;
    if (tile.stretch) {
      d.box = {b[4 * a] * double(W), b[4 * a + 1] * double(H), b[4 * a + 2] * double(W), b[4 * a + 3] * double(H)};
    } else {
      // A face cut by a tile edge that lies inside the image is a partial face: the
      // overlapping neighbour tile (or the next level) sees it whole.
      const double margin = 2.0 / kWidth;
      const bool cut = (b[4 * a] < margin && tile.rect.x > 0) ||
                       (b[4 * a + 1] < margin && tile.rect.y > 0) ||
                       (b[4 * a + 2] > 1 - margin && tile.rect.x + tile.rect.width < W) ||
                       (b[4 * a + 3] > 1 - margin && tile.rect.y + tile.rect.height < H);
      if (cut) continue;
      d.box = {tile.rect.x + b[4 * a] * double(tile.rect.width), tile.rect.y + b[4 * a + 1] * double(tile.rect.height),
               tile.rect.x + b[4 * a + 2] * double(tile.rect.width),
               tile.rect.y + b[4 * a + 3] * double(tile.rect.height)};
      d.box.x1 = std::max(0.0, d.box.x1);
      d.box.y1 = std::max(0.0, d.box.y1);
      d.box.x2 = std::min(double(W), d.box.x2);
      d.box.y2 = std::min(double(H), d.box.y2);
      if (d.box.area() <= 0) continue;
    }
    candidates.push_back(d);
  }
}

void UltraLightDetector::keep_best(std::vector<Detection>& found, size_t k) {
  if (k == 0 || found.size() <= k) return;
  std::nth_element(found.begin(), found.begin() + static_cast<std::ptrdiff_t>(k), found.end(),
                   [](const Detection& a, const Detection& b) { return a.score > b.score; });
  found.resize(k);
}

void UltraLightDetector::unmirror_boxes(float* b, int priors) {
  for (int a = 0; a < priors; ++a) {
    const float x1 = 1.0f - b[4 * a + 2], x2 = 1.0f - b[4 * a];
    b[4 * a] = x1;
    b[4 * a + 2] = x2;
  }
}

Result<std::vector<ViewCandidate>> UltraLightDetector::collect_views(const cv::Mat& rgb, const std::vector<Tile>& tiles,
                                                                     float floor, bool mirrored, size_t top_k) {
  if (rgb.empty() || rgb.type() != CV_8UC3) return invalid_argument("detector input must be a non-empty RGB8 image");
  struct Pass { size_t tile; bool mirrored; };
  std::vector<Pass> passes;
  for (size_t t = 0; t < tiles.size(); ++t) {
    passes.push_back({t, false});
    if (mirrored) passes.push_back({t, true});
  }
  // Scale 0 is the whole-frame pass, then one scale per pyramid level.
  std::vector<int> scale_of(tiles.size(), 0);
  for (size_t t = 1; t < tiles.size(); ++t)
    scale_of[t] = scale_of[t - 1] + (tiles[t].level != tiles[t - 1].level || tiles[t - 1].stretch ? 1 : 0);
  std::vector<ViewCandidate> views;
  std::vector<float> mirrored_boxes;
  for (size_t start = 0; start < passes.size(); start += options_.batch) {
    const int n = static_cast<int>(std::min<size_t>(options_.batch, passes.size() - start));
    int dims[4] = {n, 3, kHeight, kWidth};
    cv::Mat blob(4, dims, CV_32F);
    for (int i = 0; i < n; ++i) {
      cv::Mat px = tile_pixels(rgb, tiles[passes[start + i].tile]);
      if (passes[start + i].mirrored) cv::flip(px, px, 1);
      fill_input(px, blob, i);
    }
    auto out = model_->forward(blob);
    if (!out.is_ok()) return out.status();
    const cv::Mat& scores = (*out)[0];  // N×4420×2 (softmax; column 1 = face)
    const cv::Mat& boxes = (*out)[1];   // N×4420×4 (x1,y1,x2,y2 in 0..1 of the input)
    const int priors = scores.size[1];
    for (int i = 0; i < n; ++i) {
      const Pass& pass = passes[start + i];
      const float* s = scores.ptr<float>(i);
      const float* b = boxes.ptr<float>(i);
      if (pass.mirrored) {
        mirrored_boxes.assign(b, b + 4 * priors);
        unmirror_boxes(mirrored_boxes.data(), priors);
        b = mirrored_boxes.data();
      }
      std::vector<Detection> found;
      decode_outputs(s, b, priors, tiles[pass.tile], rgb.size(), floor, found);
      keep_best(found, top_k);
      for (const auto& d : found) views.push_back({d, static_cast<int>(pass.tile), scale_of[pass.tile], pass.mirrored});
    }
  }
  return views;
}

Result<std::vector<Detection>> UltraLightDetector::run_tiles(const cv::Mat& rgb, const std::vector<Tile>& tiles) {
  // One pass over the whole image (stretched or letterboxed) is the reference pipeline:
  // its own threshold and plain NMS, no mirrored pass.
  if (tiles.size() <= 1) {
    auto views = collect_views(rgb, tiles, options_.score_threshold, false, 0);
    if (!views.is_ok()) return views.status();
    std::vector<Detection> candidates;
    for (auto& v : *views) candidates.push_back(v.detection);
    return nms(std::move(candidates), options_.nms_iou, options_.top_k);
  }
  auto collected = collect_views(rgb, tiles, options_.candidate_score, options_.flip_tta, options_.top_k);
  if (!collected.is_ok()) return collected.status();
  std::vector<ViewCandidate> views = std::move(collected).value();
  // Grouping the views is quadratic in their number in the worst case (no two overlap): a
  // bound keeps a hostile or highly textured photo from costing seconds. Real photos stay far
  // below it (≤ ~2,300 views on the WIDER event's 1,024-px photos).
  if (views.size() > kMaxViewsPerTopK * options_.top_k) {
    std::nth_element(views.begin(), views.begin() + kMaxViewsPerTopK * options_.top_k, views.end(),
                     [](const ViewCandidate& a, const ViewCandidate& b) { return a.detection.score > b.detection.score; });
    views.resize(kMaxViewsPerTopK * options_.top_k);
  }
  EvidenceOptions evidence;
  evidence.cluster_iou = options_.nms_iou;
  evidence.scales = options_.evidence_scales;
  evidence.average_mirrored = options_.flip_tta;
  evidence.vote_boxes = options_.box_voting;
  std::vector<Detection> candidates;
  for (auto& d : merge_views(std::move(views), evidence))
    if (d.score >= options_.pyramid_score_threshold) candidates.push_back(d);
  // Averaged boxes of neighbouring clusters can move onto each other.
  auto kept = nms(std::move(candidates), options_.nms_iou, options_.top_k);
  return drop_contained(std::move(kept), options_.containment);
}

std::vector<Detection> drop_contained(std::vector<Detection> dets, double containment) {
  std::vector<bool> drop(dets.size(), false);
  for (size_t i = 0; i < dets.size(); ++i) {
    for (size_t j = 0; j < dets.size(); ++j) {
      if (i == j || drop[j] || dets[i].box.area() >= dets[j].box.area() || dets[j].score < dets[i].score) continue;
      const Box& a = dets[i].box;
      const Box& b = dets[j].box;
      const double ix = std::min(a.x2, b.x2) - std::max(a.x1, b.x1), iy = std::min(a.y2, b.y2) - std::max(a.y1, b.y1);
      if (ix > 0 && iy > 0 && ix * iy >= containment * a.area()) { drop[i] = true; break; }
    }
  }
  std::vector<Detection> out;
  for (size_t i = 0; i < dets.size(); ++i) if (!drop[i]) out.push_back(dets[i]);
  return out;
}

Result<std::vector<Detection>> UltraLightDetector::detect_frame(const cv::Mat& rgb) {
  return run_tiles(rgb, {Tile{cv::Rect(0, 0, rgb.cols, rgb.rows), true, 0}});
}

Result<std::vector<Detection>> UltraLightDetector::detect(const cv::Mat& rgb) {
  const auto tiles = plan_tiles(rgb.size());
  auto found = run_tiles(rgb, tiles);
  // A small image gets one letterboxed pass; when that finds nothing, the stretched reference
  // pass gets its chance (it finds the one LFW face the letterboxed pass misses).
  if (found.is_ok() && found->empty() && tiles.size() == 1 && !tiles[0].stretch) return detect_frame(rgb);
  return found;
}

}  // namespace fv::face
