// Untrusted image bytes → what the detector's network would be fed, without the network:
// container sniffing and the pixel-budget checks (decode_image with the production
// DecodeLimits except max_pixels: 4 MP instead of 80 MP, see below), OpenCV's decoders and its EXIF orientation (IMREAD_COLOR), the tiling plan
// for the decoded size, and the letterbox/stretch resize and tensor fill of the tiles.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include <opencv2/core.hpp>

#include "face/ultralight_detector.h"
#include "image/decode.h"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "image_fuzzer invariant broken: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cv::setNumThreads(1);  // one core per fuzzer; OpenCV's pool would only add noise
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using fv::face::UltraLightDetector;
  const std::span<const uint8_t> bytes(data, size);
  (void)fv::image::sniff_header(bytes);
  // The production limits, with a 4 MP pixel budget instead of 80 MP: the checks are the same
  // code, but inputs claiming tens of megapixels made every exec allocate and touch hundreds
  // of MB (measured: the run fell from ~4,000 to ~250 exec/s). The production constant goes
  // through decode_image in fuzz/http_fuzzer (every image route) and tests/image/decode_test.
  fv::image::DecodeLimits limits;
  limits.max_pixels = 4'000'000;
  auto img = fv::image::decode_image(bytes, limits);
  if (!img.is_ok()) return 0;
  const cv::Mat& rgb = img->rgb;
  if (rgb.empty() || rgb.type() != CV_8UC3) fail("decoded image is not non-empty RGB8");
  if (uint64_t(rgb.cols) * uint64_t(rgb.rows) > limits.max_pixels) fail("decoded image over the pixel limit");

  // The production plan for this size. Every tile costs the same resize + fill, so only the
  // first (whole frame: stretch or letterbox) and the last (finest level, at the border) are
  // rendered: a 30000-pixel-wide image has hundreds of tiles.
  const fv::face::UltraLightOptions options;
  const auto tiles = fv::face::plan_tiles(rgb.size(), options);
  if (tiles.empty()) fail("no tiles");
  for (const auto& t : tiles)
    if (t.rect.width <= 0 || t.rect.height <= 0) fail("empty tile");
  static cv::Mat blob = [] {
    int dims[4] = {1, 3, UltraLightDetector::kHeight, UltraLightDetector::kWidth};
    return cv::Mat(4, dims, CV_32F);
  }();
  for (size_t i : {size_t(0), tiles.size() - 1}) {
    const cv::Mat px = UltraLightDetector::tile_pixels(rgb, tiles[i]);
    if (px.rows != UltraLightDetector::kHeight || px.cols != UltraLightDetector::kWidth || px.type() != CV_8UC3)
      fail("tile pixels are not 320x240 RGB8");
    UltraLightDetector::fill_input(px, blob, 0);
    if (tiles.size() == 1) break;
  }
  return 0;
}
