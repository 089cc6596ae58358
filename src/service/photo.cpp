#include "service/photo.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "face/align.h"
#include "face/compare.h"
#include "image/decode.h"
#include "vault/crypto.h"

namespace fv::service {
namespace {

void report(const WipeHook& on_wipe, WipeKind kind, size_t bytes) {
  if (on_wipe) on_wipe(kind, bytes);
}

// Zeroes the decoded pixels when the analysis is over, whatever its outcome.
struct PixelWipe {
  cv::Mat& m;
  const WipeHook& on_wipe;
  ~PixelWipe() {
    if (!m.data) return;
    size_t n = 0;
    if (m.isContinuous()) {
      n = m.total() * m.elemSize();
      vault::wipe(m.data, n);
    } else {
      for (int r = 0; r < m.rows; ++r) {
        vault::wipe(m.ptr(r), m.cols * m.elemSize());
        n += m.cols * m.elemSize();
      }
    }
    report(on_wipe, WipeKind::kDecodedPixels, n);
  }
};

size_t wipe_mat(cv::Mat& m) {
  if (!m.data) return 0;
  size_t n = 0;
  for (int r = 0; r < m.rows; ++r) {
    vault::wipe(m.ptr(r), m.cols * m.elemSize());
    n += m.cols * m.elemSize();
  }
  return n;
}

// The face aligned on its 5 points: the ArcFace template scaled to 3/4 of the crop and
// centred, so the whole face and a margin around it show (what a reviewer compares), as a
// JPEG. The intermediate pixels are zeroed here (reported with the crop when it goes).
Result<std::vector<uint8_t>> aligned_crop_jpeg(const cv::Mat& rgb, const face::Face& f) {
  const double scale = 0.75 * kCropSize / 112.0, offset = (kCropSize - 112.0 * scale) / 2;
  std::array<cv::Point2d, 5> dst;
  for (size_t i = 0; i < dst.size(); ++i) dst[i] = face::kArcFace112[i] * scale + cv::Point2d(offset, offset);
  cv::Mat crop = face::warp_crop(rgb, face::similarity_transform(f.landmarks.five, dst), kCropSize);
  cv::Mat bgr;
  cv::cvtColor(crop, bgr, cv::COLOR_RGB2BGR);
  std::vector<uint8_t> jpeg;
  // One buffer, so that no reallocation of ours leaves a copy behind. (OpenCV's encoder still
  // passes the data through working buffers of its own that it frees without wiping: the
  // crop is small and short-lived, but not copy-free.)
  jpeg.reserve(64 * 1024);
  const bool ok = cv::imencode(".jpg", bgr, jpeg, {cv::IMWRITE_JPEG_QUALITY, 90});
  wipe_mat(crop);
  wipe_mat(bgr);
  if (!ok) {
    vault::wipe(jpeg);
    return internal_error("the face crop could not be encoded");
  }
  return jpeg;
}

}  // namespace

void Upload::wipe() {
  if (wiped_) return;
  wiped_ = true;
  const size_t n = bytes_.size();
  vault::wipe(bytes_);
  report(*on_wipe_, WipeKind::kUploadedBytes, n);
}

Photo::~Photo() {
  for (auto& f : faces_)
    if (f.face_template) {
      const size_t n = f.face_template->values.size() * sizeof(float);
      vault::wipe(f.face_template->values);
      report(*on_wipe_, WipeKind::kFaceTemplates, n);
    }
  for (auto& c : crops_)
    if (!c.empty()) {
      const size_t n = c.size();
      vault::wipe(c);
      report(*on_wipe_, WipeKind::kFaceCrops, n);
    }
  // kept_ wipes itself (reported as uploaded bytes).
}

Result<std::unique_ptr<Photo>> Photo::analyze(PipelinePool& pool, Upload upload, const PhotoOptions& options,
                                              const WipeHook& on_wipe) {
  std::unique_ptr<Photo> photo(new Photo(on_wipe));
  photo->byte_count_ = upload.bytes().size();
  if (options.hash) photo->sha256_ = vault::sha256_hex(upload.bytes());
  auto img = image::decode_image(upload.bytes());
  if (options.keep_bytes && img.is_ok()) photo->kept_.emplace(std::move(upload));
  else upload.wipe();
  if (!img.is_ok()) return img.status();
  PixelWipe pixel_wipe{img->rgb, on_wipe};
  photo->width_ = img->rgb.cols;
  photo->height_ = img->rgb.rows;
  photo->format_ = img->format;
  FV_ASSIGN_OR_RETURN(auto lease, pool.acquire());
  FV_ASSIGN_OR_RETURN(photo->faces_, lease->analyze(img->rgb, options.embed));
  if (options.crops) {
    // Every face the pipeline returns has its landmarks (it drops those without).
    photo->crops_.resize(photo->faces_.size());
    for (size_t i = 0; i < photo->faces_.size(); ++i) {
      FV_ASSIGN_OR_RETURN(photo->crops_[i], aligned_crop_jpeg(img->rgb, photo->faces_[i]));
    }
  }
  if (options.liveness) {
    const int k = face::verification_face(photo->faces_);
    if (k >= 0) {
      FV_ASSIGN_OR_RETURN(photo->liveness_, options.liveness->score(img->rgb, photo->faces_[k].detection.single_view_box()));
    }
  }
  return photo;
}

}  // namespace fv::service
