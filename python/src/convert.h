// Values crossing between Python and the library: images in (bytes, a local path, a numpy
// array), JSON and boxes out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <pybind11/pybind11.h>

#include "common/status.h"
#include "face/types.h"

namespace fv::python {

// A JSON value as plain Python (dict, list, str, int, float, bool, None).
pybind11::object to_python(const nlohmann::json& j);

// A box as (x, y, width, height) in pixels of the image.
pybind11::tuple box_tuple(const face::Box& b);

// An encoded photo handed in: bytes, bytearray or memoryview; or str / os.PathLike naming a
// local file (read here: nothing is ever fetched from a URL). `name` is the file name when it
// came from a path (provenance), empty otherwise. A numpy array is refused with TypeError
// (the vault keeps the sha256 of the photo as received, so it takes encoded photos only).
struct EncodedPhoto {
  std::vector<uint8_t> bytes;
  std::string name;
};
EncodedPhoto encoded_photo(const pybind11::handle& image);

// An image for the engine, taken from Python with the GIL held: a numpy uint8 H×W×3 RGB array
// (copied: the caller may change it once the GIL is released), a local file path or an encoded
// photo. decode() then runs without the GIL.
struct PixelSource {
  cv::Mat rgb;  // from a numpy array
  std::string path;
  std::vector<uint8_t> bytes;
  // RGB8 pixels: the array as is, or the file or bytes through the library's decoder (limits
  // checked before decoding, EXIF orientation applied; for a file the CLI's own reader, so the
  // engine sees exactly the pixels `facevault embed` sees).
  Result<cv::Mat> decode() const;
};
PixelSource pixel_source(const pybind11::handle& image);

}  // namespace fv::python
