// detect_views: every raw candidate of the detector's pyramid, per image, for measuring scoring
// rules offline (scripts/detect-replay.py; docs/models.md "Pyramid evidence").
//
//   detect_views [--level-step S] [--min-face PX] [--floor F] IMAGE-LIST > views.jsonl
//
// One JSON line per image: {"file", "width", "height", "views": [[tile, level, mirrored, score,
// x1, y1, x2, y2], ...]}, where level is the tile's image pixels per input pixel (0 for the
// stretched whole-frame pass). The passes are those of `facevault detect` (every tile plain and
// mirrored), candidates at or above the floor (default 0.2, below the detector's 0.3), the best
// 750 of each pass; the replay applies the detector's own floor again.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "face/ultralight_detector.h"
#include "image/decode.h"

using namespace fv;

int main(int argc, char** argv) {
  face::UltraLightOptions options;
  float floor = 0.2f;
  std::string list;
  for (int i = 1; i < argc; ++i) {
    const bool more = i + 1 < argc;
    if (!std::strcmp(argv[i], "--level-step") && more) options.level_step = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--min-face") && more) options.min_face = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--floor") && more) floor = static_cast<float>(std::atof(argv[++i]));
    else list = argv[i];
  }
  if (list.empty()) {
    std::fprintf(stderr, "usage: detect_views [--level-step S] [--min-face PX] [--floor F] IMAGE-LIST\n");
    return 1;
  }
  auto detector = face::UltraLightDetector::create(nn::ModelStore(), options);
  if (!detector.is_ok()) { std::fprintf(stderr, "detect_views: %s\n", detector.status().to_string().c_str()); return 2; }
  std::ifstream in(list);
  std::string file;
  while (std::getline(in, file)) {
    auto image = image::read_image_file(file);
    if (!image.is_ok()) { std::fprintf(stderr, "detect_views: %s: %s\n", file.c_str(), image.status().to_string().c_str()); continue; }
    const cv::Mat& rgb = image->rgb;
    const auto tiles = (*detector)->plan_tiles(rgb.size());
    auto views = (*detector)->collect_views(rgb, tiles, floor, tiles.size() > 1, options.top_k);
    if (!views.is_ok()) { std::fprintf(stderr, "detect_views: %s: %s\n", file.c_str(), views.status().to_string().c_str()); continue; }
    std::printf("{\"file\":%s,\"width\":%d,\"height\":%d,\"views\":[", nlohmann::json(file).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str(), rgb.cols, rgb.rows);
    for (size_t k = 0; k < views->size(); ++k) {
      const auto& v = (*views)[k];
      const auto& b = v.detection.box;
      std::printf("%s[%d,%.4f,%d,%.5f,%.1f,%.1f,%.1f,%.1f]", k ? "," : "", v.tile, tiles[v.tile].stretch ? 0.0 : tiles[v.tile].level,
                  v.mirrored ? 1 : 0, v.detection.score, b.x1, b.y1, b.x2, b.y2);
    }
    std::printf("]}\n");
  }
  return 0;
}
