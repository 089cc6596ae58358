// The HTTP API as a client on the network sees it: one fv::server::Server on an ephemeral
// loopback port over a scratch vault (made once), and each input sent as raw bytes on a new
// connection, so cpp-httplib's request parser, our routing, authentication, JSON and
// multipart handling, the service calls behind them and the error mapping are all fuzzed.
// "@ADMIN@" and "@INV@" in the input are replaced by the secret of an admin and of an
// investigator API key, so the routes behind authentication are reachable.
// The face networks are replaced by stand-ins (registered under the production names) that
// find 0-2 "faces" from the pixels and hash the real 112 crop into a template: the real nets
// cost ~10 ms per image here (fuzz/face_post_fuzzer and image_fuzzer cover the code around
// them), and this fuzzer is about the request layer and the service calls behind it.
// A crash, a sanitizer report or a hang (libFuzzer -timeout) anywhere in the server is a bug.
// Every authenticated request appends to the audit chain and some create subjects, so the
// server is restarted on a fresh copy of the template vault every kRestartEvery inputs: a
// vault grown by a million requests would make every exec slower (audit verify is O(chain)).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include <opencv2/core.hpp>

#include "face/align.h"
#include "face/pipeline.h"
#include "server/server.h"
#include "service/service.h"
#include "vault/vault.h"

namespace fs = std::filesystem;

namespace {

constexpr long kRestartEvery = 1000;

fv::server::Server* server = nullptr;  // lives until exit (its threads serve every input)
std::string admin_key, inv_key;
fs::path root;
long execs = 0;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "http_fuzzer setup: %s\n", what.c_str());
  std::abort();
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
}

using namespace fv::face;

class StandInDetector final : public Detector {
 public:
  std::string name() const override { return "ultralight-rfb320"; }
  fv::Result<std::vector<Detection>> detect(const cv::Mat& rgb) override {
    // 0, 1 or 2 boxes, from the image's mean colour: deterministic, cheap, input-driven.
    const cv::Scalar m = cv::mean(rgb);
    const int n = static_cast<int>(m[0] + m[1] + m[2]) % 3;
    std::vector<Detection> out;
    for (int i = 0; i < n; ++i) {
      const double w = rgb.cols / (2.0 + i), h = rgb.rows / (1.5 + i);
      out.push_back({{rgb.cols / 4.0 - i, rgb.rows / 6.0, rgb.cols / 4.0 + w, rgb.rows / 6.0 + h}, 0.9f - 0.1f * i});
    }
    return out;
  }
};

class StandInLandmarker final : public Landmarker {
 public:
  std::string name() const override { return "faceplugin-lm68"; }
  fv::Result<Landmarks> locate(const cv::Mat&, const Box& box) override {
    if (box.width() < 2 || box.height() < 2) return fv::invalid_argument("box too small");
    Landmarks lm;
    lm.points68.assign(68, cv::Point2d((box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2));
    for (size_t i = 0; i < 5; ++i)  // a frontal face: the ArcFace template stretched onto the box
      lm.five[i] = {box.x1 + kArcFace112[i].x / 112 * box.width(), box.y1 + kArcFace112[i].y / 112 * box.height()};
    return lm;
  }
};

class StandInEmbedder final : public Embedder {
 public:
  std::string model_id() const override { return "faceplugin-mobilefacenet-512"; }
  int model_version() const override { return 1; }
  int dim() const override { return 512; }
  cv::Mat align(const cv::Mat& rgb, const Landmarks& lm) const override { return MobileFaceNetEmbedder::crop(rgb, lm); }
  fv::Result<std::vector<FaceTemplate>> embed(const std::vector<cv::Mat>& crops) override {
    std::vector<FaceTemplate> out;
    for (const auto& c : crops) {
      FaceTemplate t{model_id(), model_version(), std::vector<float>(512)};
      for (int i = 0; i < 512; ++i) t.values[i] = float(c.data[(i * 73) % (c.total() * 3)]) - 127.5f;
      l2_normalise(t.values);
      out.push_back(std::move(t));
    }
    return out;
  }
};

Registry stand_ins() {
  Registry r;
  r.detectors["ultralight-rfb320"] = [](const fv::nn::ModelStore&, const ComponentOptions&) -> fv::Result<std::unique_ptr<Detector>> {
    return std::unique_ptr<Detector>(new StandInDetector());
  };
  r.landmarkers["faceplugin-lm68"] = [](const fv::nn::ModelStore&) -> fv::Result<std::unique_ptr<Landmarker>> {
    return std::unique_ptr<Landmarker>(new StandInLandmarker());
  };
  r.embedders["faceplugin-mobilefacenet-512"] = [](const fv::nn::ModelStore&) -> fv::Result<std::unique_ptr<Embedder>> {
    return std::unique_ptr<Embedder>(new StandInEmbedder());
  };
  return r;
}

void start_server() {
  std::error_code ec;
  fs::remove_all(root / "vault", ec);
  fs::copy(root / "template", root / "vault", fs::copy_options::recursive, ec);
  if (ec) die("cannot copy the template vault: " + ec.message());
  fv::server::ServerOptions o;
  o.vault_dir = root / "vault";
  o.port = 0;
  o.http_threads = 2;
  o.pipelines = 1;
  o.rate_per_s = 0;  // no per-key limit: every input should reach its route
  // The public opt-out form keeps its production limit (5, then 1 per 5 s): it is the one route
  // that runs the real networks (the service's own pipeline), ~20 ms per decodable photo.
  o.access_log = false;
  o.pipeline_factory = [] { return FacePipeline::create(fv::nn::ModelStore(), PipelineOptions{}, stand_ins()); };
  auto s = fv::server::Server::create(o);
  if (!s.is_ok()) die(s.status().to_string());
  server = s->release();
  if (auto st = server->start(); !st.is_ok()) die(st.to_string());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cv::setNumThreads(1);
  ::unsetenv(fv::vault::kMasterKeyEnv);
  const fs::path base = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
  root = base / ("fv_http_fuzz." + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_all(root, ec);
  if (auto st = fv::vault::Vault::init(root / "template"); !st.is_ok()) die(st.to_string());
  {
    auto svc = fv::service::Service::open(root / "template");
    if (!svc.is_ok()) die(svc.status().to_string());
    const fv::service::Actor setup{"fuzz-setup", fv::service::Role::kAdmin};
    auto a = (*svc)->create_api_key(setup, fv::service::Role::kAdmin, {"access-control"}, "fuzz admin");
    auto i = (*svc)->create_api_key(setup, fv::service::Role::kInvestigator, {"access-control"}, "fuzz inv");
    if (!a.is_ok() || !i.is_ok()) die("cannot create API keys");
    admin_key = a->secret;
    inv_key = i->secret;
  }
  start_server();
  std::atexit([] { std::error_code e; fs::remove_all(root, e); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (++execs % kRestartEvery == 0) {
    delete server;  // stops it and joins its threads
    start_server();
  }
  std::string req(reinterpret_cast<const char*>(data), size);
  replace_all(req, "@ADMIN@", admin_key);
  replace_all(req, "@INV@", inv_key);

  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  timeval tv{5, 0};  // libFuzzer's -timeout catches a server that never answers
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(server->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return 0;
  }
  for (size_t sent = 0; sent < req.size();) {
    const ssize_t n = ::send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may refuse and close early (413, 431, 400)
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);  // end of the request stream: no keep-alive wait
  char buf[16384];
  while (::recv(fd, buf, sizeof buf, 0) > 0) {
  }
  ::close(fd);
  return 0;
}
