// align_dlib5_eval: MobileFaceNet templates of LFW faces aligned by dlib's public-domain 5-point
// shape predictor instead of the 68-point network (docs/models.md, landmark card: issue 19's lead).
//
//   align_dlib5_eval shape_predictor_5_face_landmarks.dat lfw.jsonl > lfw_dlib5.jsonl
//   scripts/lfw-ident-options.py --lfw ../shared/data/lfw --templates lfw_dlib5.jsonl
//
// lfw.jsonl is `facevault embed` output (its box and 5 points of the face nearest the centre).
// The predictor was trained on boxes of dlib's own detectors, so the box it is given is fitted
// first: the square whose mean shape best matches the points it finds, as an offset and size
// relative to our box, iterated to a fixed point. Its points (4 eye corners, the base of the
// nose) then get a template in the 112×112 crop: the median, over all faces, of where today's
// alignment puts them. Nothing is tuned on identification results.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <dlib/image_processing.h>
#include <dlib/opencv.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "face/align.h"
#include "face/embedder.h"
#include "image/decode.h"

using namespace fv;
using nlohmann::json;

namespace {

struct Face {
  std::string file;
  int width = 0, height = 0;
  json box;
  std::vector<cv::Point2d> ours, dlib5;
  cv::Mat rgb;
};

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) { std::fprintf(stderr, "usage: align_dlib5_eval PREDICTOR.dat LFW.jsonl\n"); return 1; }
  dlib::shape_predictor predictor;
  dlib::deserialize(argv[1]) >> predictor;
  dlib::matrix<float, 0, 1> mean;  // the predictor's mean shape, 0..1 of its box: its first field
  {
    std::ifstream in(argv[1], std::ios::binary);
    int version = 0;
    dlib::deserialize(version, in);
    dlib::deserialize(mean, in);
  }
  if (predictor.num_parts() != 5 || mean.size() != 10) {
    std::fprintf(stderr, "align_dlib5_eval: %s is not a 5-point predictor\n", argv[1]);
    return 1;
  }
  std::vector<Face> faces;
  std::ifstream in(argv[2]);
  for (std::string line; std::getline(in, line);) {
    auto j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("faces") || !j["faces"].is_array() || j["faces"].empty()) continue;
    const double cx = j["width"].get<double>() / 2, cy = j["height"].get<double>() / 2;
    auto centre_distance = [&](const json& f) {
      return std::hypot(f["box"][0].get<double>() + f["box"][2].get<double>() / 2 - cx, f["box"][1].get<double>() + f["box"][3].get<double>() / 2 - cy);
    };
    const json* best = &j["faces"][0];
    for (const auto& f : j["faces"]) if (centre_distance(f) < centre_distance(*best)) best = &f;
    Face face{j["file"], j["width"], j["height"], (*best)["box"], {}, {}, {}};
    for (const auto& p : (*best)["keypoints"]) face.ours.push_back({p[0].get<double>(), p[1].get<double>()});
    auto img = image::read_image_file(face.file);
    if (!img.is_ok()) continue;
    face.rgb = img->rgb;
    faces.push_back(std::move(face));
  }
  if (faces.empty()) {
    std::fprintf(stderr, "align_dlib5_eval: no face with its image in %s\n", argv[2]);
    return 1;
  }
  // The box the predictor expects: centre = our box's centre + (a·w, b·h), side = s·h.
  double a = 0, b = 0.04, s = 0.78;
  for (int round = 0; round < 3; ++round) {
    std::vector<double> as, bs, ss;
    for (auto& f : faces) {
      const double x = f.box[0], y = f.box[1], w = f.box[2], h = f.box[3];
      const double cx = x + w / 2 + a * w, cy = y + h / 2 + b * h, side = s * h;
      dlib::cv_image<dlib::rgb_pixel> view(f.rgb);
      auto shape = predictor(view, dlib::drectangle(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2));
      f.dlib5.clear();
      for (unsigned k = 0; k < shape.num_parts(); ++k) f.dlib5.push_back({double(shape.part(k).x()), double(shape.part(k).y())});
      // Least squares: points ≈ (left, top) + side' · mean.
      cv::Mat A(10, 3, CV_64F, cv::Scalar(0)), r(10, 1, CV_64F), sol;
      for (int k = 0; k < 5; ++k) {
        A.at<double>(2 * k, 0) = 1; A.at<double>(2 * k, 2) = mean(2 * k);
        A.at<double>(2 * k + 1, 1) = 1; A.at<double>(2 * k + 1, 2) = mean(2 * k + 1);
        r.at<double>(2 * k) = f.dlib5[k].x; r.at<double>(2 * k + 1) = f.dlib5[k].y;
      }
      cv::solve(A, r, sol, cv::DECOMP_SVD);
      const double fit = sol.at<double>(2);
      as.push_back((sol.at<double>(0) + fit / 2 - (x + w / 2)) / w);
      bs.push_back((sol.at<double>(1) + fit / 2 - (y + h / 2)) / h);
      ss.push_back(fit / h);
    }
    a = median(as); b = median(bs); s = median(ss);
    std::fprintf(stderr, "round %d: box centre + (%.4f w, %.4f h), side %.4f h\n", round, a, b, s);
  }
  // The template: where today's alignment puts dlib's points, median over all faces.
  std::vector<std::vector<double>> xs(5), ys(5);
  for (const auto& f : faces) {
    const auto M = face::similarity_transform(f.ours, face::kArcFace112);
    for (int k = 0; k < 5; ++k) {
      xs[k].push_back(M(0, 0) * f.dlib5[k].x + M(0, 1) * f.dlib5[k].y + M(0, 2));
      ys[k].push_back(M(1, 0) * f.dlib5[k].x + M(1, 1) * f.dlib5[k].y + M(1, 2));
    }
  }
  std::vector<cv::Point2d> tmpl;
  for (int k = 0; k < 5; ++k) tmpl.push_back({median(xs[k]), median(ys[k])});
  std::fprintf(stderr, "template:");
  for (const auto& p : tmpl) std::fprintf(stderr, " (%.2f, %.2f)", p.x, p.y);
  std::fprintf(stderr, "\n");
  auto embedder = face::MobileFaceNetEmbedder::create(nn::ModelStore());
  if (!embedder.is_ok()) { std::fprintf(stderr, "%s\n", embedder.status().to_string().c_str()); return 2; }
  for (const auto& f : faces) {
    cv::Mat crop = face::warp_crop(f.rgb, face::similarity_transform(f.dlib5, tmpl), face::MobileFaceNetEmbedder::kSize);
    auto t = (*embedder)->embed({crop});
    if (!t.is_ok()) continue;
    std::cout << json{{"file", f.file}, {"width", f.width}, {"height", f.height},
                      {"faces", json::array({json{{"box", f.box}, {"template", (*t)[0].values}}})}}
                     .dump(-1, ' ', false, json::error_handler_t::replace)
              << "\n";
  }
  return 0;
}
