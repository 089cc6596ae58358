#include "convert.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include <pybind11/numpy.h>

#include "image/decode.h"
#include "status_error.h"

namespace py = pybind11;
namespace fs = std::filesystem;

namespace fv::python {

py::object to_python(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: return py::none();
    case nlohmann::json::value_t::boolean: return py::bool_(j.get<bool>());
    case nlohmann::json::value_t::number_integer: return py::int_(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: return py::int_(j.get<uint64_t>());
    case nlohmann::json::value_t::number_float: return py::float_(j.get<double>());
    case nlohmann::json::value_t::string: return py::str(j.get_ref<const std::string&>());
    case nlohmann::json::value_t::array: {
      py::list l;
      for (const auto& v : j) l.append(to_python(v));
      return l;
    }
    case nlohmann::json::value_t::object: {
      py::dict d;
      for (const auto& [k, v] : j.items()) d[py::str(k)] = to_python(v);
      return d;
    }
    case nlohmann::json::value_t::binary:
    case nlohmann::json::value_t::discarded: break;
  }
  return py::none();
}

py::tuple box_tuple(const face::Box& b) { return py::make_tuple(b.x1, b.y1, b.width(), b.height()); }

namespace {

bool is_path(const py::handle& h) {
  return py::isinstance<py::str>(h) || py::hasattr(h, "__fspath__");
}

fs::path to_path(const py::handle& h) {
  return fs::path(py::str(py::module_::import("os").attr("fspath")(h)).cast<std::string>());
}

// Refused before reading when larger than the decoder accepts (as the CLI does).
std::vector<uint8_t> read_photo_file(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) throw StatusError(not_found("cannot read " + path.string() + ": " + ec.message()));
  if (size > image::DecodeLimits{}.max_file_bytes)
    throw StatusError(resource_exhausted(path.string() + " is larger than 64 MiB"));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw StatusError(not_found("cannot open " + path.string()));
  std::vector<uint8_t> b(size);
  in.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(size));
  if (!in) throw StatusError(io_error("cannot read " + path.string()));
  return b;
}

}  // namespace

EncodedPhoto encoded_photo(const py::handle& image) {
  if (py::isinstance<py::array>(image))
    throw py::type_error("the vault takes an encoded photo (bytes or a file path), not a pixel array: "
                         "it records the photo's SHA-256 as received");
  if (is_path(image)) {
    const fs::path path = to_path(image);
    return {read_photo_file(path), path.filename().string()};
  }
  if (py::isinstance<py::bytes>(image) || py::isinstance<py::bytearray>(image) ||
      py::isinstance<py::memoryview>(image)) {
    py::buffer_info info = py::reinterpret_borrow<py::buffer>(image).request();
    if (info.itemsize != 1 || info.ndim != 1)
      throw StatusError(invalid_argument("an encoded photo is a one-dimensional buffer of bytes"));
    const auto* p = static_cast<const uint8_t*>(info.ptr);
    return {std::vector<uint8_t>(p, p + info.size), ""};
  }
  throw py::type_error("an image is bytes (an encoded photo) or a file path, not " +
                       py::str(py::type::handle_of(image).attr("__name__")).cast<std::string>());
}

PixelSource pixel_source(const py::handle& image) {
  PixelSource s;
  if (py::isinstance<py::array>(image)) {
    auto a = py::reinterpret_borrow<py::array>(image);
    if (!a.dtype().is(py::dtype::of<uint8_t>()) || a.ndim() != 3 || a.shape(2) != 3)
      throw StatusError(invalid_argument("a pixel array is numpy uint8 of shape (height, width, 3), RGB"));
    if (a.shape(0) < 1 || a.shape(1) < 1) throw StatusError(invalid_argument("the pixel array is empty"));
    const image::DecodeLimits limits;
    const auto h = static_cast<uint64_t>(a.shape(0)), w = static_cast<uint64_t>(a.shape(1));
    if (h * w > limits.max_pixels || h > static_cast<uint64_t>(limits.max_side) ||
        w > static_cast<uint64_t>(limits.max_side))
      throw StatusError(resource_exhausted("the pixel array is larger than the decoder's limits"));
    auto c = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(a);
    s.rgb = cv::Mat(static_cast<int>(h), static_cast<int>(w), CV_8UC3);
    std::memcpy(s.rgb.data, c.data(), h * w * 3);
  } else if (is_path(image)) {
    s.path = to_path(image).string();
  } else {
    s.bytes = encoded_photo(image).bytes;
  }
  return s;
}

Result<cv::Mat> PixelSource::decode() const {
  if (!rgb.empty()) return rgb;
  FV_ASSIGN_OR_RETURN(image::Image img, path.empty() ? image::decode_image(bytes) : image::read_image_file(path));
  return img.rgb;
}

}  // namespace fv::python
