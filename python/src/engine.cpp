// facevault.Engine: the face pipeline on images in memory — detection, templates, 1:1
// verification — with no vault and no audit (like `facevault detect|embed|verify`).
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "bindings.h"
#include "convert.h"
#include "face/calibration.h"
#include "face/compare.h"
#include "face/pipeline.h"
#include "nn/model.h"
#include "nn/model_store.h"
#include "service/render.h"
#include "service/service.h"
#include "status_error.h"

namespace py = pybind11;

namespace fv::python {
namespace {

// `threads` pipelines, built here: Python threads calling one Engine at once (the GIL is
// released during analysis) each borrow their own, as the CLI's --threads workers do. Built
// eagerly so that a missing or altered model file fails in the constructor with its own code.
class Engine {
 public:
  Engine(std::optional<std::string> model_dir, int threads, std::string embedder)
      : store_(model_dir ? nn::ModelStore(*model_dir) : nn::ModelStore()) {
    if (threads < 1 || threads > 256) throw StatusError(invalid_argument("threads must be 1 to 256"));
    options_.embedder = std::move(embedder);
    // Parallelism comes from the pipelines; OpenCV's own pool stays at one thread each (what
    // the CLI does, which keeps templates identical to `facevault embed`). Process-wide.
    nn::set_inner_threads(1);
    const Status st = [&] {
      py::gil_scoped_release nogil;
      for (int i = 0; i < threads; ++i) {
        FV_ASSIGN_OR_RETURN(auto p, face::FacePipeline::create(store_, options_));
        free_.push_back(p.get());
        pipelines_.push_back(std::move(p));
      }
      return Status::ok();
    }();
    throw_if_error(st);
  }

  std::vector<face::Face> analyze(const py::handle& image, bool embed) {
    PixelSource source = pixel_source(image);
    Result<std::vector<face::Face>> faces = [&]() -> Result<std::vector<face::Face>> {
      py::gil_scoped_release nogil;
      FV_ASSIGN_OR_RETURN(cv::Mat rgb, source.decode());
      Borrowed pipeline(*this);
      return pipeline->analyze(rgb, embed);
    }();
    return value_or_throw(std::move(faces));
  }

  service::PhotoComparison verify(const py::handle& a, const py::handle& b, double fmr) {
    if (!(fmr >= 1e-7 && fmr <= 0.5)) throw StatusError(invalid_argument("fmr must be between 1e-7 and 0.5"));
    const std::vector<face::Face> fa = analyze(a, true), fb = analyze(b, true);
    // The rule of `facevault verify` and of the service: the largest face with a template.
    const int ka = face::verification_face(fa), kb = face::verification_face(fb);
    if (ka < 0 || kb < 0)
      throw StatusError(failed_precondition(std::string("no face found in photo ") + (ka < 0 ? "a" : "b")));
    const face::FaceTemplate& ta = *fa[ka].face_template;
    auto cal = face::Calibration::builtin(ta.model_id);  // absent for a model without a table
    service::PhotoComparison r;
    r.comparison = face::compare(ta, *fb[kb].face_template, cal.is_ok() ? &*cal : nullptr, fmr);
    r.box_a = fa[ka].detection.box;
    r.box_b = fb[kb].detection.box;
    r.faces_a = fa.size();
    r.faces_b = fb.size();
    r.model = ta.model_id;
    return r;
  }

  std::string model_dir() const { return store_.dir().string(); }
  const std::string& embedder() const { return options_.embedder; }
  size_t threads() const { return pipelines_.size(); }

 private:
  // A pipeline lent to one call (a pipeline is not thread-safe); waits while all are in use.
  class Borrowed {
   public:
    explicit Borrowed(Engine& e) : e_(e) {
      std::unique_lock<std::mutex> lock(e_.mu_);
      e_.cv_.wait(lock, [&] { return !e_.free_.empty(); });
      p_ = e_.free_.back();
      e_.free_.pop_back();
    }
    ~Borrowed() {
      {
        std::lock_guard<std::mutex> lock(e_.mu_);
        e_.free_.push_back(p_);
      }
      e_.cv_.notify_one();
    }
    Borrowed(const Borrowed&) = delete;
    Borrowed& operator=(const Borrowed&) = delete;
    face::FacePipeline* operator->() { return p_; }

   private:
    Engine& e_;
    face::FacePipeline* p_;
  };

  nn::ModelStore store_;
  face::PipelineOptions options_;
  std::vector<std::unique_ptr<face::FacePipeline>> pipelines_;
  std::vector<face::FacePipeline*> free_;  // guarded by mu_
  std::mutex mu_;
  std::condition_variable cv_;
};

py::object template_array(const face::Face& f) {
  if (!f.face_template) return py::none();
  const auto& v = f.face_template->values;
  py::array_t<float> a(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

// The pixels the engine analyzes for an image, as a new H×W×3 uint8 RGB array.
py::array_t<uint8_t> decode(const py::handle& image) {
  PixelSource source = pixel_source(image);
  Result<cv::Mat> decoded = [&] {
    py::gil_scoped_release nogil;
    return source.decode();
  }();
  const cv::Mat rgb = value_or_throw(std::move(decoded));
  py::array_t<uint8_t> a({rgb.rows, rgb.cols, 3});
  for (int y = 0; y < rgb.rows; ++y) std::memcpy(a.mutable_data(y), rgb.ptr(y), static_cast<size_t>(rgb.cols) * 3);
  return a;
}

}  // namespace

void bind_engine(py::module_& m) {
  m.def("decode", &decode, py::arg("image"),
        "The pixels the engine analyzes for an image (EXIF orientation applied), as a numpy uint8 array of\n"
        "shape (height, width, 3) in RGB order. Raises CorruptData, Unsupported or ResourceExhausted as the\n"
        "library's decoder does.");

  py::class_<face::Quality>(m, "Quality", "How fit a face is for enrollment, with the measurements behind the verdict.")
      .def_readonly("acceptable", &face::Quality::acceptable, "Whether the face passes the enrollment thresholds.")
      .def_readonly("reasons", &face::Quality::reasons, "Why not, one line each (empty when acceptable).")
      .def_readonly("box_height_px", &face::Quality::box_height_px, "Height of the face box in pixels.")
      .def_readonly("inter_eye_px", &face::Quality::inter_eye_px, "Distance between the eyes in pixels.")
      .def_readonly("sharpness", &face::Quality::sharpness, "Variance of the Laplacian of the aligned grey crop.")
      .def_readonly("yaw_deg", &face::Quality::yaw_deg, "Estimated yaw in degrees.")
      .def_readonly("roll_deg", &face::Quality::roll_deg, "Estimated roll in degrees.")
      .def_readonly("pitch_ratio", &face::Quality::pitch_ratio, "Estimated pitch as a ratio of the 5 points.")
      .def("__repr__", [](const face::Quality& q) {
        return std::string("Quality(acceptable=") + (q.acceptable ? "True" : "False") + ")";
      });

  py::class_<face::Face>(m, "Face", "A face found in an image: box, detector score, 5 keypoints, quality and, from embed(), its template.")
      .def_property_readonly("box", [](const face::Face& f) { return box_tuple(f.detection.box); },
                             "(x, y, width, height) in pixels of the (EXIF-oriented) image.")
      .def_property_readonly("score", [](const face::Face& f) { return f.detection.score; }, "Detector score, 0 to 1.")
      .def_property_readonly(
          "keypoints",
          [](const face::Face& f) {
            py::list l;
            for (const auto& p : f.landmarks.five) l.append(py::make_tuple(p.x, p.y));
            return l;
          },
          "Five (x, y) points: left eye, right eye (as seen in the image), nose tip, left and right mouth corner.")
      .def_property_readonly("quality", [](const face::Face& f) { return f.quality; }, "The face's Quality.")
      .def_property_readonly("template", &template_array,
                             "The L2-normalised biometric template (numpy float32), or None when not computed (detect()).")
      .def_property_readonly(
          "model",
          [](const face::Face& f) -> py::object {
            return f.face_template ? py::object(py::str(f.face_template->model_id)) : py::object(py::none());
          },
          "The embedder model that made the template, or None without one.")
      .def(
          "to_dict", [](const face::Face& f) { return to_python(service::render::face(f, true)); },
          "The face as the HTTP API renders it (box and keypoints rounded to 0.1 px, score to 4 decimals).")
      .def("__repr__", [](const face::Face& f) {
        const auto& b = f.detection.box;
        return "Face(box=(" + std::to_string(b.x1) + ", " + std::to_string(b.y1) + ", " + std::to_string(b.width()) +
               ", " + std::to_string(b.height()) + "), score=" + std::to_string(f.detection.score) + ")";
      });

  py::class_<service::PhotoComparison>(m, "Comparison", "The 1:1 comparison of the largest face of two photos.")
      .def_property_readonly("similarity", [](const service::PhotoComparison& r) { return r.comparison.similarity; },
                             "Cosine similarity of the two templates, unrounded.")
      .def_property_readonly("same", [](const service::PhotoComparison& r) { return r.comparison.same; },
                             "similarity >= threshold (False when the model has no calibration table).")
      .def_property_readonly("threshold", [](const service::PhotoComparison& r) { return r.comparison.threshold; },
                             "The similarity threshold at threshold_fmr, or None without a calibration table.")
      .def_property_readonly("threshold_fmr", [](const service::PhotoComparison& r) { return r.comparison.threshold_fmr; },
                             "The false-match rate the decision is made at.")
      .def_property_readonly("score_fmr", [](const service::PhotoComparison& r) { return r.comparison.score_fmr; },
                             "The false-match rate of this similarity, or None without a calibration table.")
      .def_property_readonly("calibration", [](const service::PhotoComparison& r) { return r.comparison.calibration; },
                             "Where the calibration table comes from (empty without one).")
      .def_readonly("model", &service::PhotoComparison::model, "The embedder model compared.")
      .def_readonly("faces_a", &service::PhotoComparison::faces_a, "Faces found in photo a.")
      .def_readonly("faces_b", &service::PhotoComparison::faces_b, "Faces found in photo b.")
      .def_property_readonly("box_a", [](const service::PhotoComparison& r) { return box_tuple(r.box_a); },
                             "The face of photo a that was compared, (x, y, width, height).")
      .def_property_readonly("box_b", [](const service::PhotoComparison& r) { return box_tuple(r.box_b); },
                             "The face of photo b that was compared, (x, y, width, height).")
      .def(
          "to_dict",
          [](const service::PhotoComparison& r) {
            nlohmann::json j = service::render::verify_photos(r);
            j.erase("audit_hash");  // the engine writes no audit: the vault's verification does
            return to_python(j);
          },
          "The comparison as the HTTP API renders it (similarity rounded to 4 decimals).")
      .def("__repr__", [](const service::PhotoComparison& r) {
        return "Comparison(similarity=" + std::to_string(r.comparison.similarity) +
               ", same=" + (r.comparison.same ? "True" : "False") + ")";
      });

  py::class_<Engine>(m, "Engine",
                     "The face pipeline (detector, landmarks, embedder) on images in memory: no vault, no audit.\n\n"
                     "Images are bytes (an encoded photo: JPEG, PNG, WebP, BMP, TIFF, PNM), a local file path, or a\n"
                     "numpy uint8 array of shape (height, width, 3) in RGB order. The models are loaded once, here.")
      .def(py::init<std::optional<std::string>, int, std::string>(), py::arg("model_dir") = py::none(),
           py::arg("threads") = 1, py::arg("embedder") = "faceplugin-mobilefacenet-512",
           "Loads the pinned models from model_dir (default: $FACEVAULT_MODEL_DIR, else ~/.cache/facevault/models),\n"
           "checking their checksums. threads: how many calls may analyze at once (one pipeline each).\n"
           "embedder: as `facevault embed --embedder`.")
      .def("detect", [](Engine& e, const py::handle& image) { return e.analyze(image, false); }, py::arg("image"),
           "Every face in the image, best score first, without templates.")
      .def("embed", [](Engine& e, const py::handle& image) { return e.analyze(image, true); }, py::arg("image"),
           "Every face in the image with its template (Face.template, Face.model), as `facevault embed`.")
      .def("verify", &Engine::verify, py::arg("a"), py::arg("b"), py::arg("fmr") = 1e-4,
           "Compares the largest face of two images at a false-match rate, as `facevault verify`.\n"
           "Raises FailedPrecondition when either image has no face.")
      .def_property_readonly("model_dir", &Engine::model_dir, "The folder the models were loaded from.")
      .def_property_readonly("embedder", &Engine::embedder, "The embedder in use.")
      .def_property_readonly("threads", &Engine::threads, "How many calls may analyze at once.");
}

}  // namespace fv::python
