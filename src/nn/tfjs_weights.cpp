#include "nn/tfjs_weights.h"

#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

namespace fv::nn {
namespace {

constexpr uint64_t kMaxElements = 1ull << 28;  // 1 GiB of float32: far above any face model

Result<std::vector<uint8_t>> read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return not_found("cannot open weight shard " + p.string());
  std::vector<uint8_t> b((std::istreambuf_iterator<char>(in)), {});
  if (in.bad()) return io_error("read error on " + p.string());
  return b;
}

}  // namespace

Result<TfjsWeights> TfjsWeights::load(const std::filesystem::path& manifest) {
  std::ifstream in(manifest);
  if (!in) return not_found("cannot open TF.js manifest " + manifest.string());
  std::string text((std::istreambuf_iterator<char>(in)), {});
  std::map<std::string, std::vector<uint8_t>> shards;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_array()) return corrupt_data(manifest.string() + ": not a TF.js weights manifest");
  for (const auto& group : j) {
    if (!group.is_object() || !group.contains("paths") || !group["paths"].is_array()) continue;
    for (const auto& p : group["paths"]) {
      if (!p.is_string()) return corrupt_data(manifest.string() + ": shard path is not a string");
      const std::string name = p.get<std::string>();
      // Shards must sit beside the manifest: no absolute paths, no "..".
      if (name.empty() || name.find('/') != std::string::npos || name.find("..") != std::string::npos)
        return corrupt_data(manifest.string() + ": shard path '" + name + "' leaves the model folder");
      auto bytes = read_file(manifest.parent_path() / name);
      if (!bytes.is_ok()) return bytes.status();
      shards[name] = std::move(bytes).value();
    }
  }
  return parse(text, shards);
}

Result<TfjsWeights> TfjsWeights::parse(const std::string& manifest_json,
                                       const std::map<std::string, std::vector<uint8_t>>& shards) {
  nlohmann::json j = nlohmann::json::parse(manifest_json, nullptr, false);
  if (j.is_discarded() || !j.is_array()) return corrupt_data("TF.js manifest is not a JSON array");
  TfjsWeights w;
  for (const auto& group : j) {
    if (!group.is_object() || !group.contains("paths") || !group.contains("weights") || !group["paths"].is_array() ||
        !group["weights"].is_array())
      return corrupt_data("TF.js manifest group needs 'paths' and 'weights' arrays");
    // The group's shards are one byte stream, weights stored back to back in manifest order.
    std::vector<uint8_t> stream;
    for (const auto& p : group["paths"]) {
      if (!p.is_string()) return corrupt_data("TF.js shard path is not a string");
      auto it = shards.find(p.get<std::string>());
      if (it == shards.end()) return not_found("TF.js shard " + p.get<std::string>() + " is missing");
      stream.insert(stream.end(), it->second.begin(), it->second.end());
    }
    size_t offset = 0;
    for (const auto& e : group["weights"]) {
      if (!e.is_object() || !e.contains("name") || !e["name"].is_string() || !e.contains("shape") || !e["shape"].is_array())
        return corrupt_data("TF.js weight entry needs a name and a shape");
      TfjsTensor t;
      const std::string name = e["name"].get<std::string>();
      uint64_t n = 1;
      for (const auto& d : e["shape"]) {
        if (!d.is_number_integer() || d.get<int64_t>() < 0 || d.get<int64_t>() > int64_t(kMaxElements))
          return corrupt_data("weight " + name + ": bad dimension");
        t.shape.push_back(static_cast<int>(d.get<int64_t>()));
        n *= static_cast<uint64_t>(t.shape.back());
        if (n > kMaxElements) return corrupt_data("weight " + name + ": too many elements");
      }
      if ((e.contains("dtype") && !e["dtype"].is_string()) ||
          (e.contains("quantization") && (!e["quantization"].is_object() || !e["quantization"].value("dtype", nlohmann::json("")).is_string())))
        return corrupt_data("weight " + name + ": dtype is not a string");
      const std::string dtype = e.value("dtype", std::string("float32"));
      if (dtype != "float32") return unsupported("weight " + name + ": dtype " + dtype);
      t.values.resize(n);
      if (e.contains("quantization")) {
        const auto& q = e["quantization"];
        const std::string qd = q.value("dtype", std::string());
        if (!q.contains("scale") || !q.contains("min") || !q["scale"].is_number() || !q["min"].is_number())
          return corrupt_data("weight " + name + ": quantization needs scale and min");
        const double scale = q["scale"].get<double>(), min = q["min"].get<double>();
        const size_t bytes_per = qd == "uint8" ? 1 : qd == "uint16" ? 2 : 0;
        if (!bytes_per) return unsupported("weight " + name + ": quantization dtype " + qd);
        if (offset + n * bytes_per > stream.size()) return corrupt_data("weight " + name + ": shard data ends early");
        for (uint64_t i = 0; i < n; ++i) {
          const uint32_t v = bytes_per == 1 ? stream[offset + i]
                                            : uint32_t(stream[offset + 2 * i]) | (uint32_t(stream[offset + 2 * i + 1]) << 8);
          t.values[i] = static_cast<float>(min + scale * v);  // TF.js: min + scale · q
        }
        offset += n * bytes_per;
      } else {
        if (offset + n * 4 > stream.size()) return corrupt_data("weight " + name + ": shard data ends early");
        // memcpy from or to a null pointer is undefined even for 0 bytes (an empty shape or
        // an empty stream); found by fuzz/tfjs_fuzzer.
        if (n) std::memcpy(t.values.data(), stream.data() + offset, n * 4);
        offset += n * 4;
      }
      w.tensors_[name] = std::move(t);
    }
    if (offset != stream.size()) return corrupt_data("TF.js shards hold " + std::to_string(stream.size() - offset) + " bytes no weight describes");
  }
  return w;
}

Result<const TfjsTensor*> TfjsWeights::get(const std::string& name, size_t rank) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) return not_found("weight " + name + " is not in the model");
  if (it->second.shape.size() != rank) return corrupt_data("weight " + name + " has rank " + std::to_string(it->second.shape.size()));
  return &it->second;
}

}  // namespace fv::nn
