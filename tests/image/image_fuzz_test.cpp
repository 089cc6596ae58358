// Feeds mutated images through decode → detect → landmarks → embed. Built and run under
// AddressSanitizer + UBSan by `make test-fuzz` (part of `make test`): any out-of-bounds access,
// use-after-free, overflow or crash fails the run. Every input must end in either a clean
// error Status or faces with finite, normalised templates.
#include <cmath>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "face/pipeline.h"
#include "image/decode.h"
#include "support/paths.h"

namespace fv {
namespace {

std::vector<uint8_t> read_all(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::vector<uint8_t> encode(const cv::Mat& bgr, const std::string& ext) {
  std::vector<uint8_t> out;
  cv::imencode(ext, bgr, out);
  return out;
}

// Seeds: real photos with faces when ../shared is present, plus self-made images of every
// format the decoder accepts.
std::vector<std::vector<uint8_t>> seeds() {
  std::vector<std::vector<uint8_t>> s;
  for (const auto& rel : {"golden/obama_small/source.jpg", "golden/Abel_Pacheco_0001/source.jpg",
                          "data/samples/face-api-js/images/sheldon/sheldon1.png"}) {
    auto p = test::shared_dir() / rel;
    if (std::filesystem::exists(p)) s.push_back(read_all(p));
  }
  cv::Mat img(96, 128, CV_8UC3);
  cv::randu(img, 0, 255);
  cv::ellipse(img, {64, 48}, {20, 28}, 0, 0, 360, {120, 160, 200}, -1);
  for (const char* ext : {".jpg", ".png", ".bmp", ".tiff", ".ppm", ".webp"}) s.push_back(encode(img, ext));
  cv::Mat grey;
  cv::cvtColor(img, grey, cv::COLOR_BGR2GRAY);
  s.push_back(encode(grey, ".png"));
  cv::Mat deep;
  img.convertTo(deep, CV_16UC3, 257);
  s.push_back(encode(deep, ".png"));
  return s;
}

std::vector<uint8_t> mutate(std::vector<uint8_t> b, std::mt19937& rng) {
  std::uniform_int_distribution<int> kind(0, 5);
  auto pos = [&] { return b.empty() ? 0 : std::uniform_int_distribution<size_t>(0, b.size() - 1)(rng); };
  const int rounds = 1 + static_cast<int>(rng() % 8);
  for (int r = 0; r < rounds && !b.empty(); ++r) {
    switch (kind(rng)) {
      case 0: b[pos()] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;          // bit flip
      case 1: b[pos()] = static_cast<uint8_t>(rng()); break;                         // random byte
      case 2: b.resize(pos()); break;                                                // truncate
      case 3: b.insert(b.begin() + pos(), static_cast<uint8_t>(rng())); break;       // insert
      case 4: {                                                                      // header field
        const size_t p = std::min<size_t>(b.size() - 1, rng() % 64);
        b[p] = static_cast<uint8_t>(rng() % 2 ? 0xFF : 0x00);
        break;
      }
      case 5: {                                                                      // duplicate a chunk
        const size_t p = pos(), n = std::min<size_t>(b.size() - p, rng() % 256);
        b.insert(b.begin() + pos(), b.begin() + p, b.begin() + p + n);
        break;
      }
    }
  }
  return b;
}

TEST(ImageFuzz, MutatedImagesNeverCrashTheEngine) {
  FV_REQUIRE_MODELS();
  auto pipeline = face::FacePipeline::create(nn::ModelStore());
  ASSERT_TRUE(pipeline.is_ok()) << pipeline.status().to_string();
  const auto corpus = seeds();
  ASSERT_GE(corpus.size(), 8u);
  std::mt19937 rng(20261126);
  image::DecodeLimits limits;
  limits.max_pixels = 4'000'000;  // keeps a run of a thousand images quick; the limit path is exercised too
  const int iterations = std::getenv("FACEVAULT_FUZZ_ITERATIONS") ? std::atoi(std::getenv("FACEVAULT_FUZZ_ITERATIONS")) : 1200;
  int decoded = 0, with_faces = 0, templates = 0;
  for (int i = 0; i < iterations; ++i) {
    const auto input = mutate(corpus[i % corpus.size()], rng);
    auto img = image::decode_image(input, limits);
    if (!img.is_ok()) {
      EXPECT_FALSE(img.status().message().empty());
      continue;
    }
    ++decoded;
    ASSERT_EQ(img->rgb.type(), CV_8UC3);
    auto faces = (*pipeline)->analyze(img->rgb, true);
    ASSERT_TRUE(faces.is_ok()) << faces.status().to_string();
    with_faces += !faces->empty();
    for (const auto& f : *faces) {
      ASSERT_TRUE(f.face_template.has_value());
      double norm = 0;
      for (float v : f.face_template->values) { ASSERT_TRUE(std::isfinite(v)); norm += double(v) * v; }
      EXPECT_NEAR(norm, 1.0, 1e-3);
      ++templates;
    }
  }
  std::printf("fuzz: %d mutated inputs, %d decoded, %d with faces, %d templates\n", iterations, decoded, with_faces,
              templates);
  EXPECT_GE(iterations, 1000);
  EXPECT_GT(decoded, 0);
}

}  // namespace
}  // namespace fv
