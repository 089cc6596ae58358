// The HTTP paths that take a photo wipe what it leaves in memory (docs/privacy.md): the uploaded
// bytes (the request's own buffer, zeroed by the server once copied, and the copy handed to the
// service), the decoded pixels, and the templates computed from it. Every wipe is reported to
// ServiceOptions::on_wipe (ServerOptions::service_options); the counts below are exact, so
// removing any one wipe makes a test fail. Each expected count says which wipe it stands for.
//
// A request's events come in this order: the server's zeroing of each image part as it copies
// it (before the service runs: a wipe moved to the end of the request, or left to the
// dispatcher's safety net, fails the order check), then the service's.
//
// Mutations tried (applied locally, run, reverted):
//  - take_image_part() without its zeroing of the part (the dispatcher's end-of-request net
//    still zeroes it, later): Search, Detect, VerifyTwoPhotos, VerifyAgainstSubject, Enroll and
//    OptOut failed (the parts were zeroed after the pixels, not before the service ran).
//  - dispatch() without wipe_leftover_uploads(): Enroll failed (the photo of a request refused
//    before its photo was read stayed in the request's buffer).
// The service's wipes are counted exactly too (its uploaded copy, the pixels, the templates):
// removing one changes a count above.
// Needs the models and ../shared/data/samples; skips without them.
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <functional>

#include "photo_test_env.h"

namespace fv::test::photo {
namespace {

using service::WipeKind;

const char* kind_name(WipeKind k) {
  switch (k) {
    case WipeKind::kUploadedBytes: return "uploaded bytes";
    case WipeKind::kDecodedPixels: return "decoded pixels";
    case WipeKind::kFaceTemplates: return "face templates";
    case WipeKind::kFaceCrops: return "face crops";
  }
  return "?";
}

// What one request wiped.
struct Wipes {
  std::vector<std::pair<WipeKind, size_t>> events;
  size_t count(WipeKind k) const {
    size_t n = 0;
    for (auto& [kind, bytes] : events) n += kind == k;
    return n;
  }
  std::vector<size_t> bytes(WipeKind k) const {
    std::vector<size_t> v;
    for (auto& [kind, b] : events)
      if (kind == k) v.push_back(b);
    return v;
  }
  std::string str() const {
    std::string s;
    for (auto& [k, b] : events) s += std::string(kind_name(k)) + " " + std::to_string(b) + "; ";
    return s;
  }
};

size_t upload_size(const fs::path& p) { return fs::file_size(p); }
size_t pixel_bytes(const fs::path& p) {
  cv::Mat m = cv::imread(p.string(), cv::IMREAD_COLOR);
  return m.total() * m.elemSize();  // 8-bit, 3 channels: as the service decodes it
}
constexpr size_t kTemplateBytes = 512 * sizeof(float);

class WipeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FV_REQUIRE_MODELS();
    FV_REQUIRE_PATH(samples());
    ASSERT_NE(env()->srv, nullptr);
  }
  // The events of one request (the response is sent after every wipe of the request).
  Wipes run(const std::function<Resp()>& request, int want_status, Resp* out = nullptr) {
    env()->wipes.take();
    Resp r = request();
    EXPECT_EQ(r.status, want_status) << r.raw;
    if (out) *out = r;
    return {env()->wipes.take()};
  }
  // The first events are the server's zeroing of the request's image parts, in order, before
  // the service decodes anything: when the photo was decoded, the request's parts and the
  // service's copy of the first photo were zeroed already. (A server that left its parts to
  // the dispatcher's end-of-request net would show them after the pixels instead.)
  static void expect_server_zeroed_parts_first(const Wipes& w, const std::vector<fs::path>& parts) {
    ASSERT_GE(w.events.size(), parts.size()) << w.str();
    for (size_t i = 0; i < parts.size(); ++i) {
      EXPECT_EQ(w.events[i].first, WipeKind::kUploadedBytes) << "event " << i << ": " << w.str();
      EXPECT_EQ(w.events[i].second, upload_size(parts[i])) << "event " << i << ": " << w.str();
    }
    size_t uploads_before_pixels = 0;
    for (auto& [kind, bytes] : w.events) {
      if (kind == WipeKind::kDecodedPixels) {
        EXPECT_GE(uploads_before_pixels, parts.size() + 1) << "the request's parts were not zeroed before decoding: " << w.str();
        break;
      }
      uploads_before_pixels += kind == WipeKind::kUploadedBytes;
    }
  }
};

TEST_F(WipeTest, Search) {
  [[maybe_unused]] static const int64_t basis = enrolled_subject("wipe-penny", photo("penny", 1));
  const fs::path probe = photo("penny", 2);
  Resp r;
  auto w = run([&] { return post_form("/v1/search", "investigator",
                                      {img("image", probe), text("purpose", "access-control"), text("case", "wipe-1")}); },
               200, &r);
  ASSERT_EQ(r.body["faces"].size(), 1u) << r.raw;
  expect_server_zeroed_parts_first(w, {probe});
  // 2 uploaded: the request's part (server) and the copy handed to the service, once decoded.
  EXPECT_EQ(w.count(WipeKind::kUploadedBytes), 2u) << w.str();
  EXPECT_EQ(w.bytes(WipeKind::kUploadedBytes), std::vector<size_t>(2, upload_size(probe))) << w.str();
  // 1 decoded: the probe's pixels once the pipeline is done.
  EXPECT_EQ(w.bytes(WipeKind::kDecodedPixels), std::vector<size_t>{pixel_bytes(probe)}) << w.str();
  // 1 template: the probe face's, when the analyzed photo goes.
  EXPECT_EQ(w.bytes(WipeKind::kFaceTemplates), std::vector<size_t>{kTemplateBytes}) << w.str();
}

TEST_F(WipeTest, SearchRefusedBeforeAnalysis) {
  // A purpose outside the key's scope: refused (403) before decoding; both copies of the bytes
  // are still wiped, nothing was decoded.
  const fs::path probe = photo("penny", 3);
  auto w = run([&] { return post_form("/v1/search", "investigator",
                                      {img("image", probe), text("purpose", "marketing"), text("case", "wipe-2")}); },
               403);
  expect_server_zeroed_parts_first(w, {probe});
  // 2 uploaded: the request's part (server), the service's copy (refused unused).
  EXPECT_EQ(w.count(WipeKind::kUploadedBytes), 2u) << w.str();
  EXPECT_EQ(w.count(WipeKind::kDecodedPixels), 0u) << w.str();
  EXPECT_EQ(w.count(WipeKind::kFaceTemplates), 0u) << w.str();
}

TEST_F(WipeTest, Detect) {
  const fs::path p = photo("amy", 1);
  auto w = run([&] { return post_form("/v1/detect", "enroller", {img("image", p)}); }, 200);
  expect_server_zeroed_parts_first(w, {p});
  // 2 uploaded: the request's part (server), the service's copy once decoded.
  EXPECT_EQ(w.count(WipeKind::kUploadedBytes), 2u) << w.str();
  // 1 decoded: the photo's pixels.
  EXPECT_EQ(w.bytes(WipeKind::kDecodedPixels), std::vector<size_t>{pixel_bytes(p)}) << w.str();
  // No template: detection does not embed.
  EXPECT_EQ(w.count(WipeKind::kFaceTemplates), 0u) << w.str();
}

TEST_F(WipeTest, VerifyTwoPhotos) {
  const fs::path a = photo("amy", 1), b = photo("amy", 2);
  auto w = run([&] { return post_form("/v1/verify", "investigator", {img("a", a), img("b", b)}); }, 200);
  expect_server_zeroed_parts_first(w, {a, b});
  // 4 uploaded: parts a and b (server), the service's copies of a and b once decoded.
  EXPECT_EQ(w.count(WipeKind::kUploadedBytes), 4u) << w.str();
  // 2 decoded: a's pixels and b's.
  auto px = w.bytes(WipeKind::kDecodedPixels);
  std::sort(px.begin(), px.end());
  std::vector<size_t> want_px = {pixel_bytes(a), pixel_bytes(b)};
  std::sort(want_px.begin(), want_px.end());
  EXPECT_EQ(px, want_px) << w.str();
  // 2 templates: a's face and b's.
  EXPECT_EQ(w.bytes(WipeKind::kFaceTemplates), std::vector<size_t>(2, kTemplateBytes)) << w.str();
}

TEST_F(WipeTest, VerifyTwoPhotosSecondRefused) {
  // b is not an image (415) after a was taken: a's copy must not go unwiped.
  const fs::path a = photo("amy", 1);
  const std::string b = "not an image at all";
  auto w = run([&] {
    return post_form("/v1/verify", "investigator", {img("a", a), {"b", b, "b.txt", "text/plain"}});
  }, 415);
  // 4 uploaded: part a and the server's copy of a (held while b is read), part b and its copy
  // (refused as not an image). Nothing decoded.
  auto up = w.bytes(WipeKind::kUploadedBytes);
  std::sort(up.begin(), up.end());
  std::vector<size_t> want = {b.size(), b.size(), upload_size(a), upload_size(a)};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(up, want) << w.str();
  EXPECT_EQ(w.count(WipeKind::kDecodedPixels), 0u) << w.str();
}

TEST_F(WipeTest, VerifyAgainstSubject) {
  [[maybe_unused]] static const int64_t basis = enrolled_subject("wipe-amy", photo("amy", 3));
  const fs::path a = photo("amy", 2);
  auto w = run([&] { return post_form("/v1/verify", "investigator",
                                      {img("a", a), text("subject", "wipe-amy"), text("purpose", "access-control"),
                                       text("case", "wipe-3")}); },
               200);
  expect_server_zeroed_parts_first(w, {a});
  // 2 uploaded: part a (server), the service's copy once decoded.
  EXPECT_EQ(w.count(WipeKind::kUploadedBytes), 2u) << w.str();
  // 1 decoded: a's pixels.
  EXPECT_EQ(w.bytes(WipeKind::kDecodedPixels), std::vector<size_t>{pixel_bytes(a)}) << w.str();
  // 1 template: the probe face's.
  EXPECT_EQ(w.bytes(WipeKind::kFaceTemplates), std::vector<size_t>{kTemplateBytes}) << w.str();
}

TEST_F(WipeTest, Enroll) {
  auto b = post_json("/v1/subjects", "enroller",
                     {{"ref", "wipe-raj"}, {"kind", "consent"}, {"reference", "F"}, {"purposes", {"access-control"}}});
  ASSERT_EQ(b.status, 201) << b.raw;
  const std::string basis = std::to_string(b.body["id"].get<int64_t>());
  const fs::path p = photo("raj", 1);
  auto w = run([&] { return post_form("/v1/subjects/wipe-raj/faces", "enroller", {img("image", p), text("basis", basis)}); },
               201);
  expect_server_zeroed_parts_first(w, {p});
  // 2 uploaded: the request's part (server), the service's copy once decoded (no keep_image).
  EXPECT_EQ(w.count(WipeKind::kUploadedBytes), 2u) << w.str();
  // 1 decoded: the photo's pixels.
  EXPECT_EQ(w.bytes(WipeKind::kDecodedPixels), std::vector<size_t>{pixel_bytes(p)}) << w.str();
  // 1 template: the face's plaintext template, once sealed and committed.
  EXPECT_EQ(w.bytes(WipeKind::kFaceTemplates), std::vector<size_t>{kTemplateBytes}) << w.str();

  // Refused before the photo is read (no basis): the dispatcher zeroes the part it left.
  const fs::path q = photo("raj", 2);
  auto refused = run([&] { return post_form("/v1/subjects/wipe-raj/faces", "enroller", {img("image", q)}); }, 400);
  // 1 uploaded: the request's part, zeroed at the end of the request (the service never saw it).
  EXPECT_EQ(refused.count(WipeKind::kUploadedBytes), 1u) << refused.str();
  EXPECT_EQ(refused.bytes(WipeKind::kUploadedBytes), std::vector<size_t>{upload_size(q)}) << refused.str();
  EXPECT_EQ(refused.events.size(), 1u) << refused.str();

  // The same with an image part sent without a filename (curl -F 'image=<photo.jpg'): it is a
  // photo all the same, and zeroed all the same.
  auto nameless = run([&] {
    return post_form("/v1/subjects/wipe-raj/faces", "enroller", {{"image", sample_photos::file_text(q), "", "image/jpeg"}});
  }, 400);
  EXPECT_EQ(nameless.bytes(WipeKind::kUploadedBytes), std::vector<size_t>{upload_size(q)}) << nameless.str();
  EXPECT_EQ(nameless.events.size(), 1u) << nameless.str();
}

TEST_F(WipeTest, OptOut) {
  for (const std::string caller : {"", "auditor"}) {  // the public form and an officer's key
    SCOPED_TRACE(caller.empty() ? "public form" : caller);
    const fs::path p = photo("sheldon", caller.empty() ? 1 : 2);
    auto w = run([&] { return post_form("/v1/optout", caller, {img("image", p)}); }, 201);
    expect_server_zeroed_parts_first(w, {p});
    // 2 uploaded: the request's part (server), the service's copy once decoded.
    EXPECT_EQ(w.count(WipeKind::kUploadedBytes), 2u) << w.str();
    // 1 decoded: the photo's pixels.
    EXPECT_EQ(w.bytes(WipeKind::kDecodedPixels), std::vector<size_t>{pixel_bytes(p)}) << w.str();
    // 1 template: the face's plaintext template, once sealed into the registry.
    EXPECT_EQ(w.bytes(WipeKind::kFaceTemplates), std::vector<size_t>{kTemplateBytes}) << w.str();
  }
}

}  // namespace
}  // namespace fv::test::photo
