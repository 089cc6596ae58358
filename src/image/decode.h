// Decoding untrusted image bytes into an RGB8 image, EXIF orientation applied.
// Every failure is a Status naming what was wrong; memory is bounded by DecodeLimits
// before the pixel decoder runs (a 100-byte PNG can claim 100000×100000 pixels).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

#include <opencv2/core.hpp>

#include "common/status.h"

namespace fv::image {

struct DecodeLimits {
  uint64_t max_file_bytes = 64ull << 20;  // 64 MiB
  uint64_t max_pixels = 80'000'000;       // 80 MP: ~240 MB as RGB8
  int max_side = 30'000;
};

// What the container header says, read without decoding pixels.
struct ImageHeader {
  std::string format;  // "jpeg", "png", "webp", "bmp", "tiff", "gif", "pnm", ... or "" if unknown
  int width = 0;       // 0 when the header does not tell us cheaply
  int height = 0;
};

ImageHeader sniff_header(std::span<const uint8_t> bytes);

struct Image {
  cv::Mat rgb;             // CV_8UC3, RGB order, EXIF orientation applied
  std::string format;
};

Result<Image> decode_image(std::span<const uint8_t> bytes, const DecodeLimits& limits = {});
Result<Image> read_image_file(const std::filesystem::path& path, const DecodeLimits& limits = {});

}  // namespace fv::image
