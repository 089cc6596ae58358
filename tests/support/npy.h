// Minimal reader for the NumPy v1.0 .npy files in ../shared/golden (little-endian, C order,
// '<f4' or '|u1').
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace fv::test {

struct Npy {
  std::vector<int> shape;
  std::string dtype;
  std::vector<uint8_t> data;
  // As an OpenCV n-dimensional Mat (CV_32F or CV_8U), sharing nothing with this object.
  cv::Mat mat() const {
    const int type = dtype == "<f4" ? CV_32F : CV_8U;
    cv::Mat m(static_cast<int>(shape.size()), shape.data(), type);
    std::memcpy(m.data, data.data(), data.size());
    return m;
  }
  const float* f32() const { return reinterpret_cast<const float*>(data.data()); }
  size_t count() const { size_t n = 1; for (int s : shape) n *= s; return n; }
};

inline bool read_npy(const std::string& path, Npy& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  char magic[6];
  in.read(magic, 6);
  if (std::string(magic, 6) != "\x93NUMPY") return false;
  uint8_t ver[2];
  in.read(reinterpret_cast<char*>(ver), 2);
  uint16_t hlen = 0;
  in.read(reinterpret_cast<char*>(&hlen), 2);
  std::string header(hlen, ' ');
  in.read(header.data(), hlen);
  auto d = header.find("'descr': '");
  out.dtype = header.substr(d + 10, 3);
  auto s = header.find("'shape': (");
  auto e = header.find(')', s);
  std::string shape = header.substr(s + 10, e - s - 10);
  out.shape.clear();
  size_t pos = 0;
  while (pos < shape.size()) {
    while (pos < shape.size() && (shape[pos] == ' ' || shape[pos] == ',')) ++pos;
    if (pos >= shape.size()) break;
    size_t end = pos;
    while (end < shape.size() && isdigit(static_cast<unsigned char>(shape[end]))) ++end;
    out.shape.push_back(std::stoi(shape.substr(pos, end - pos)));
    pos = end;
  }
  const size_t elem = out.dtype == "<f4" ? 4 : 1;
  out.data.resize(out.count() * elem);
  in.read(reinterpret_cast<char*>(out.data.data()), static_cast<std::streamsize>(out.data.size()));
  return static_cast<size_t>(in.gcount()) == out.data.size();
}

}  // namespace fv::test
