// Proves that OpenCV DNN and our preprocessing reproduce the reference tensors of
// ../shared/golden/faceplugin (onnxruntime + OpenCV 4.6 u8 ops), stage by stage.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "face/align.h"
#include "face/embedder.h"
#include "face/landmarker.h"
#include "face/pipeline.h"
#include "face/ultralight_detector.h"
#include "support/npy.h"
#include "support/paths.h"

namespace fv {
namespace {

using test::Npy;

// Models are loaded once for the whole binary (2-core CI machines).
struct Models {
  std::unique_ptr<face::UltraLightDetector> detector;
  std::unique_ptr<face::FacepluginLandmarker> landmarker;
  std::unique_ptr<face::MobileFaceNetEmbedder> embedder;
};
Models& models() {
  static Models m = [] {
    Models x;
    nn::ModelStore store;
    face::UltraLightOptions o;
    o.tiling = false;
    auto d = face::UltraLightDetector::create(store, o);
    auto l = face::FacepluginLandmarker::create(store);
    auto e = face::MobileFaceNetEmbedder::create(store);
    if (d.is_ok()) x.detector = std::move(d).value();
    if (l.is_ok()) x.landmarker = std::move(l).value();
    if (e.is_ok()) x.embedder = std::move(e).value();
    return x;
  }();
  return m;
}

Npy load(const std::string& image, const std::string& file, bool faceplugin = true) {
  Npy n;
  auto p = (faceplugin ? test::golden_dir() / "faceplugin" / image : test::golden_dir() / image) / file;
  EXPECT_TRUE(test::read_npy(p.string(), n)) << p;
  return n;
}

nlohmann::json meta(const std::string& image, const std::string& file) {
  std::ifstream in(test::golden_dir() / "faceplugin" / image / file);
  return nlohmann::json::parse(in);
}

float max_abs_diff(const float* a, const float* b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

class Golden : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    FV_REQUIRE_MODELS();
    FV_REQUIRE_PATH(test::golden_dir() / "faceplugin" / GetParam());
    ASSERT_TRUE(models().detector && models().landmarker && models().embedder);
    rgb_ = load(GetParam(), "image_rgb_u8.npy", false).mat();
    rgb_ = rgb_.reshape(3, {rgb_.size[0], rgb_.size[1]});
  }
  cv::Mat rgb_;
};

TEST_P(Golden, DetectorOutputsMatchOnnxruntime) {
  const Npy in = load(GetParam(), "det_input.npy");
  auto model = nn::Model::load_onnx(nn::ModelStore().dir() / face::UltraLightDetector::kPackage /
                                        face::UltraLightDetector::kFile, {3, 240, 320}, {"scores", "boxes"});
  ASSERT_TRUE(model.is_ok());
  auto out = (*model)->forward(in.mat());
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  const Npy scores = load(GetParam(), "det_scores.npy"), boxes = load(GetParam(), "det_boxes.npy");
  EXPECT_LE(max_abs_diff((*out)[0].ptr<float>(), scores.f32(), scores.count()), 5e-6);
  EXPECT_LE(max_abs_diff((*out)[1].ptr<float>(), boxes.f32(), boxes.count()), 5e-6);
}

TEST_P(Golden, DetectorPreprocessingIsExact) {
  const Npy ref = load(GetParam(), "det_input.npy");
  face::Tile whole{cv::Rect(0, 0, rgb_.cols, rgb_.rows), true, 0};
  int dims[4] = {1, 3, 240, 320};
  cv::Mat blob(4, dims, CV_32F);
  face::UltraLightDetector::fill_input(face::UltraLightDetector::tile_pixels(rgb_, whole), blob, 0);
  EXPECT_EQ(max_abs_diff(blob.ptr<float>(), ref.f32(), ref.count()), 0.0f);
}

TEST_P(Golden, DetectionsMatchReference) {
  const auto ref = meta(GetParam(), "detections.json");
  auto dets = models().detector->detect_frame(rgb_);
  ASSERT_TRUE(dets.is_ok());
  ASSERT_EQ(dets->size(), ref["detections"].size());
  for (size_t i = 0; i < dets->size(); ++i) {
    const auto& b = ref["detections"][i]["box"];
    const auto& d = (*dets)[i];
    EXPECT_NEAR(d.score, ref["detections"][i]["score"].get<double>(), 1e-5);
    EXPECT_NEAR(d.box.x1, b[0].get<double>(), 0.01);
    EXPECT_NEAR(d.box.y1, b[1].get<double>(), 0.01);
    EXPECT_NEAR(d.box.x2, b[2].get<double>(), 0.01);
    EXPECT_NEAR(d.box.y2, b[3].get<double>(), 0.01);
  }
}

TEST_P(Golden, LandmarksMatchReference) {
  const auto m = meta(GetParam(), "meta.json");
  const auto ref_box = meta(GetParam(), "detections.json")["detections"][0]["box"];
  face::Box box{ref_box[0].get<double>(), ref_box[1].get<double>(), ref_box[2].get<double>(), ref_box[3].get<double>()};
  const cv::Rect crop = face::FacepluginLandmarker::crop_rect(box, rgb_.size());
  EXPECT_EQ(crop, cv::Rect(m["landmark_crop_xywh"][0], m["landmark_crop_xywh"][1], m["landmark_crop_xywh"][2],
                           m["landmark_crop_xywh"][3]));
  const Npy lm_in = load(GetParam(), "lm_input.npy");
  cv::Mat t = face::FacepluginLandmarker::input_tensor(rgb_, crop);
  EXPECT_EQ(max_abs_diff(t.ptr<float>(), lm_in.f32(), lm_in.count()), 0.0f);

  auto lm = models().landmarker->locate(rgb_, box);
  ASSERT_TRUE(lm.is_ok());
  const auto& p68 = m["landmarks68_px_f64"];
  for (int i = 0; i < 68; ++i) {
    EXPECT_NEAR(lm->points68[i].x, p68[i][0].get<double>(), 1e-3) << "point " << i;
    EXPECT_NEAR(lm->points68[i].y, p68[i][1].get<double>(), 1e-3) << "point " << i;
  }
  const auto& p5 = m["points5_px_f64"];
  for (int i = 0; i < 5; ++i) {
    EXPECT_NEAR(lm->five[i].x, p5[i][0].get<double>(), 1e-3);
    EXPECT_NEAR(lm->five[i].y, p5[i][1].get<double>(), 1e-3);
  }
}

TEST_P(Golden, AlignmentMatrixAndCropAreExact) {
  const auto m = meta(GetParam(), "meta.json");
  face::FivePoints p5;
  for (int i = 0; i < 5; ++i) p5[i] = {m["points5_px_f64"][i][0].get<double>(), m["points5_px_f64"][i][1].get<double>()};
  const cv::Matx23d M = face::similarity_transform(p5, face::kArcFace112);
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 3; ++c) EXPECT_NEAR(M(r, c), m["align_M_f64"][r][c].get<double>(), 1e-9);
  const cv::Mat crop = face::warp_crop(rgb_, M, 112);
  const Npy ref = load(GetParam(), "aligned_112_rgb_u8.npy");
  ASSERT_EQ(crop.total() * 3, ref.count());
  EXPECT_EQ(std::memcmp(crop.data, ref.data.data(), ref.count()), 0);

  int dims[4] = {1, 3, 112, 112};
  cv::Mat blob(4, dims, CV_32F);
  face::MobileFaceNetEmbedder::fill_input(crop, blob, 0);
  const Npy feat_in = load(GetParam(), "feat_input_bgr.npy");
  EXPECT_EQ(max_abs_diff(blob.ptr<float>(), feat_in.f32(), feat_in.count()), 0.0f) << "BGR order and (x-127)/128";
}

TEST_P(Golden, EmbedderOutputMatchesOnnxruntime) {
  const Npy in = load(GetParam(), "feat_input_bgr.npy"), ref = load(GetParam(), "feat_output.npy");
  auto out = models().embedder->forward_raw(in.mat());
  ASSERT_TRUE(out.is_ok());
  EXPECT_LE(max_abs_diff(out->ptr<float>(), ref.f32(), ref.count()), 5e-6);
}

TEST_P(Golden, EndToEndTemplateMatchesReference) {
  face::PipelineOptions o;
  o.components.ultralight.tiling = false;
  auto p = face::FacePipeline::create(nn::ModelStore(), o);
  ASSERT_TRUE(p.is_ok());
  auto faces = (*p)->analyze(rgb_, true);
  ASSERT_TRUE(faces.is_ok());
  ASSERT_FALSE(faces->empty());
  const Npy ref = load(GetParam(), "feat_output.npy");
  std::vector<float> r(ref.f32(), ref.f32() + ref.count());
  face::l2_normalise(r);
  face::FaceTemplate want{"faceplugin-mobilefacenet-512", 1, r};
  EXPECT_GT(face::similarity(*(*faces)[0].face_template, want), 0.99999);
}

INSTANTIATE_TEST_SUITE_P(Images, Golden, ::testing::Values("obama_small", "Abel_Pacheco_0001", "two_people"));

TEST(ModelLoad, DenormalWeightsAreFlushed) {
  FV_REQUIRE_MODELS();
  ASSERT_TRUE(models().embedder);
  // fr_feature ships 8,938 denormal float32 weights.
  EXPECT_GT(models().embedder->flushed_denormals(), 8000u);
}

TEST(ModelLoad, MissingModelIsAClearError) {
  nn::ModelStore empty("/nonexistent-model-dir");
  auto d = face::UltraLightDetector::create(empty);
  ASSERT_FALSE(d.is_ok());
  EXPECT_NE(d.status().message().find("make models"), std::string::npos);
}

TEST(ModelLoad, TamperedModelIsRefused) {
  FV_REQUIRE_MODELS();
  auto dir = std::filesystem::temp_directory_path() / "fv-tampered-models";
  auto sub = dir / face::UltraLightDetector::kPackage / "model";
  std::filesystem::create_directories(sub);
  std::filesystem::copy_file(nn::ModelStore().dir() / face::UltraLightDetector::kPackage / face::UltraLightDetector::kFile,
                             sub / "fr_detect.onnx", std::filesystem::copy_options::overwrite_existing);
  { std::ofstream f(sub / "fr_detect.onnx", std::ios::app | std::ios::binary); f << "x"; }
  auto d = face::UltraLightDetector::create(nn::ModelStore(dir));
  ASSERT_FALSE(d.is_ok());
  EXPECT_EQ(d.status().code(), StatusCode::kCorruptData);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fv
