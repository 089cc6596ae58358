// TF.js weights-manifest loader: dequantisation as TF.js does it, and clear errors (never a
// crash or an over-read) for manifests and shards that do not agree.
#include <cstring>
#include <fstream>

#include <gtest/gtest.h>

#include "face/dlib_resnet_embedder.h"
#include "nn/tfjs_weights.h"

namespace fv::nn {
namespace {

const char* kManifest = R"([{"paths": ["w.bin"], "weights": [
  {"name": "q", "shape": [2, 2], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
  {"name": "f", "shape": [1], "dtype": "float32"}]}])";

std::vector<uint8_t> shard() {
  std::vector<uint8_t> b(8);
  b[0] = 0, b[1] = 1, b[2] = 2, b[3] = 255;
  const float f = 3.25f;
  std::memcpy(b.data() + 4, &f, 4);
  return b;
}

TEST(TfjsWeights, DequantisesUint8AsMinPlusScaleTimesQ) {
  auto w = TfjsWeights::parse(kManifest, {{"w.bin", shard()}});
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  auto q = w->get("q", 2);
  ASSERT_TRUE(q.is_ok());
  EXPECT_EQ((*q)->shape, (std::vector<int>{2, 2}));
  EXPECT_FLOAT_EQ((*q)->values[0], -1.0f);
  EXPECT_FLOAT_EQ((*q)->values[1], -0.5f);
  EXPECT_FLOAT_EQ((*q)->values[3], -1.0f + 0.5f * 255);
  auto f = w->get("f", 1);
  ASSERT_TRUE(f.is_ok());
  EXPECT_FLOAT_EQ((*f)->values[0], 3.25f);
  EXPECT_EQ(w->get("f", 2).status().code(), StatusCode::kCorruptData) << "wrong rank";
  EXPECT_EQ(w->get("nope", 1).status().code(), StatusCode::kNotFound);
}

TEST(TfjsWeights, ShortOrLongShardsAreCorrupt) {
  auto s = shard();
  s.pop_back();
  EXPECT_EQ(TfjsWeights::parse(kManifest, {{"w.bin", s}}).status().code(), StatusCode::kCorruptData);
  s = shard();
  s.push_back(0);
  EXPECT_EQ(TfjsWeights::parse(kManifest, {{"w.bin", s}}).status().code(), StatusCode::kCorruptData);
  EXPECT_EQ(TfjsWeights::parse(kManifest, {}).status().code(), StatusCode::kNotFound);
}

TEST(TfjsWeights, HostileManifestsGiveErrors) {
  for (const char* m : {"", "{}", "[1]", "[{\"paths\": [\"w.bin\"]}]",
                        R"([{"paths": ["w.bin"], "weights": [{"name": "x", "shape": [-1]}]}])",
                        R"([{"paths": ["w.bin"], "weights": [{"name": "x", "shape": [100000, 100000]}]}])",
                        R"([{"paths": ["w.bin"], "weights": [{"name": "x", "shape": [4], "dtype": "int32"}]}])",
                        R"([{"paths": ["w.bin"], "weights": [{"name": "x", "shape": [4], "quantization": {"dtype": "uint8"}}]}])",
                        R"([{"paths": [7], "weights": []}])",
                        R"([{"paths": ["w.bin"], "weights": [{"name": "x", "shape": [4], "dtype": 5}]}])",
                        R"([{"paths": ["w.bin"], "weights": [{"name": "x", "shape": [4], "quantization": 3}]}])",
                        R"([{"paths": ["w.bin"], "weights": [{"name": "x", "shape": [4], "quantization": {"dtype": [], "scale": 1, "min": 0}}]}])",
                        R"([{"paths": ["w.bin"], "weights": [{"name": 1, "shape": [4]}]}])"}) {
    auto w = TfjsWeights::parse(m, {{"w.bin", shard()}});
    EXPECT_FALSE(w.is_ok()) << m;
  }
}

TEST(TfjsWeights, ShardPathsMayNotLeaveTheModelFolder) {
  auto dir = std::filesystem::temp_directory_path() / "fv-tfjs";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "m.json") << R"([{"paths": ["../etc/passwd"], "weights": []}])";
  auto w = TfjsWeights::load(dir / "m.json");
  ASSERT_FALSE(w.is_ok());
  EXPECT_NE(w.status().message().find("leaves the model folder"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(TfjsWeights, ANetworkWithMissingWeightsIsRefusedNotBuilt) {
  auto w = TfjsWeights::parse(kManifest, {{"w.bin", shard()}});
  ASSERT_TRUE(w.is_ok());
  auto e = face::DlibResNetEmbedder::from_weights(*w);
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("conv32_down"), std::string::npos);
}

}  // namespace
}  // namespace fv::nn
