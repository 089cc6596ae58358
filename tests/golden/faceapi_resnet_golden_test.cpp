// Proves the dlib ResNet built from face-api's TF.js weights manifest reproduces the
// TensorFlow.js descriptors in ../shared/golden (fa_rec_input → fa_rec_output).
#include <gtest/gtest.h>

#include "face/dlib_resnet_embedder.h"
#include "support/npy.h"
#include "support/paths.h"

namespace fv {
namespace {

face::DlibResNetEmbedder* resnet() {
  static std::unique_ptr<face::DlibResNetEmbedder> e = [] {
    auto r = face::DlibResNetEmbedder::create(nn::ModelStore());
    return r.is_ok() ? std::move(r).value() : nullptr;
  }();
  return e.get();
}

class ResnetGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(ResnetGolden, DescriptorMatchesTensorflowJs) {
  FV_REQUIRE_MODELS();
  const auto dir = test::golden_dir() / GetParam();
  FV_REQUIRE_PATH(dir / "fa_rec_input.npy");
  ASSERT_NE(resnet(), nullptr);
  test::Npy in, ref;
  ASSERT_TRUE(test::read_npy((dir / "fa_rec_input.npy").string(), in));
  ASSERT_TRUE(test::read_npy((dir / "fa_rec_output.npy").string(), ref));
  ASSERT_EQ(in.count(), 150u * 150 * 3);
  int dims[4] = {1, 3, 150, 150};
  cv::Mat blob(4, dims, CV_32F);
  for (int y = 0; y < 150; ++y)  // NHWC → NCHW
    for (int x = 0; x < 150; ++x)
      for (int c = 0; c < 3; ++c) blob.ptr<float>(0, c)[y * 150 + x] = in.f32()[(y * 150 + x) * 3 + c];
  auto out = resnet()->forward_raw(blob);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  ASSERT_EQ(out->total(), 128u);
  float max_ref = 0, max_diff = 0;
  for (size_t i = 0; i < 128; ++i) {
    max_ref = std::max(max_ref, std::fabs(ref.f32()[i]));
    max_diff = std::max(max_diff, std::fabs(out->ptr<float>()[i] - ref.f32()[i]));
  }
  // Float32 with a different summation order (and the scale layers folded into the filters):
  // ../shared/peers/REPORT.md expects a relative max-abs-diff of about 1e-5 or better.
  std::printf("%s: max |diff| %.3g of max |ref| %.3g\n", GetParam().c_str(), max_diff, max_ref);
  EXPECT_GT(max_ref, 0.05f);
  EXPECT_LE(max_diff / max_ref, 1e-5) << "max diff " << max_diff << " of " << max_ref;
}

INSTANTIATE_TEST_SUITE_P(Images, ResnetGolden, ::testing::Values("obama_small", "Abel_Pacheco_0001", "two_people"));

TEST(ResnetModel, ChipInputNormalisation) {
  cv::Mat chip(150, 150, CV_8UC3, cv::Scalar(200, 100, 50));
  int dims[4] = {1, 3, 150, 150};
  cv::Mat blob(4, dims, CV_32F);
  face::DlibResNetEmbedder::fill_input(chip, blob, 0);
  EXPECT_NEAR(blob.ptr<float>(0, 0)[0], (200 - 122.782f) / 255, 1e-6);  // R first: face-api is RGB
  EXPECT_NEAR(blob.ptr<float>(0, 2)[0], (50 - 104.298f) / 255, 1e-6);
}

}  // namespace
}  // namespace fv
