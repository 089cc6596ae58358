// Files embedded in the binary at build time (web/ and src/server/openapi.json).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace fv::server {

struct Asset {
  std::string name;  // file name: "index.html", "app.js", "openapi.json"
  const unsigned char* data;
  size_t size;
};

const std::vector<Asset>& embedded_assets();

}  // namespace fv::server
