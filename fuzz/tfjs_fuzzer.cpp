// The TF.js weights loader: a weights manifest (JSON) and its shards → dequantised tensors,
// then the dlib ResNet graph built from whatever loaded (shape checks of every layer).
// Input: the manifest text, then shards, each "\n@@\n" + name + "\n" + bytes. The first byte
// picks the entry point: even → TfjsWeights::parse (in memory); odd → TfjsWeights::load from
// files in a scratch folder (adds the shard path checks and file reading).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "face/dlib_resnet_embedder.h"
#include "nn/tfjs_weights.h"

namespace fs = std::filesystem;

namespace {

fs::path scratch;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  scratch = fs::temp_directory_path() / ("fv_tfjs_fuzz." + std::to_string(::getpid()));
  fs::create_directories(scratch);
  std::atexit([] { std::error_code ec; fs::remove_all(scratch, ec); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool from_files = data[0] & 1;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  constexpr std::string_view kSep = "\n@@\n";
  size_t cut = rest.find(kSep);
  const std::string manifest(rest.substr(0, cut));
  std::map<std::string, std::vector<uint8_t>> shards;
  while (cut != std::string_view::npos) {
    rest.remove_prefix(cut + kSep.size());
    cut = rest.find(kSep);
    const std::string_view part = rest.substr(0, cut);
    const size_t nl = part.find('\n');
    const std::string name(part.substr(0, nl));
    const std::string_view body = nl == std::string_view::npos ? std::string_view() : part.substr(nl + 1);
    shards[name] = std::vector<uint8_t>(body.begin(), body.end());
  }

  fv::Result<fv::nn::TfjsWeights> w = fv::Status(fv::StatusCode::kInternal, "unset");
  if (from_files) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(scratch, ec)) fs::remove_all(e.path(), ec);
    { std::ofstream(scratch / "model.json", std::ios::binary) << manifest; }
    for (const auto& [name, bytes] : shards) {
      // Only plain names are written: the loader must refuse the rest by itself.
      if (name.empty() || name.find('/') != std::string::npos || name == "." || name == ".." || name == "model.json" ||
          name.find('\0') != std::string::npos)
        continue;
      std::ofstream(scratch / name, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                          static_cast<std::streamsize>(bytes.size()));
    }
    w = fv::nn::TfjsWeights::load(scratch / "model.json");
  } else {
    w = fv::nn::TfjsWeights::parse(manifest, shards);
  }
  if (!w.is_ok()) return 0;
  (void)w->get("fc", 2);
  (void)fv::face::DlibResNetEmbedder::from_weights(*w);
  return 0;
}
