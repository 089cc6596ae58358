#include "image/decode.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <cctype>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace fv::image {
namespace {

uint32_t be16(const uint8_t* p) { return (uint32_t(p[0]) << 8) | p[1]; }
uint32_t be32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }
uint32_t le16(const uint8_t* p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8); }
uint32_t le24(const uint8_t* p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16); }
uint32_t le32(const uint8_t* p) { return le16(p) | (le16(p + 2) << 16); }

bool starts_with(std::span<const uint8_t> b, const char* magic, size_t n, size_t at = 0) {
  return b.size() >= at + n && std::memcmp(b.data() + at, magic, n) == 0;
}

// Walks JPEG markers to the first SOFn frame header.
void sniff_jpeg(std::span<const uint8_t> b, ImageHeader& h) {
  size_t i = 2;
  while (i + 4 <= b.size()) {
    if (b[i] != 0xFF) return;
    uint8_t marker = b[i + 1];
    if (marker == 0xFF) { ++i; continue; }
    if (marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) { i += 2; continue; }
    uint32_t len = be16(&b[i + 2]);
    if (len < 2) return;
    bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (sof) {
      if (i + 9 > b.size()) return;
      h.height = static_cast<int>(be16(&b[i + 5]));
      h.width = static_cast<int>(be16(&b[i + 7]));
      return;
    }
    i += 2 + len;
  }
}

void sniff_webp(std::span<const uint8_t> b, ImageHeader& h) {
  if (b.size() < 30) return;
  if (starts_with(b, "VP8 ", 4, 12)) {
    h.width = static_cast<int>(le16(&b[26]) & 0x3FFF);
    h.height = static_cast<int>(le16(&b[28]) & 0x3FFF);
  } else if (starts_with(b, "VP8L", 4, 12) && b.size() >= 25) {
    uint32_t v = le32(&b[21]);
    h.width = static_cast<int>((v & 0x3FFF) + 1);
    h.height = static_cast<int>(((v >> 14) & 0x3FFF) + 1);
  } else if (starts_with(b, "VP8X", 4, 12)) {
    h.width = static_cast<int>(le24(&b[24]) + 1);
    h.height = static_cast<int>(le24(&b[27]) + 1);
  }
}

// PNM: "P<n>" then width, height as decimal tokens separated by whitespace and comments.
void sniff_pnm(std::span<const uint8_t> b, ImageHeader& h) {
  size_t i = 2;
  int values[2] = {0, 0};
  for (int& v : values) {
    while (i < b.size() && (std::isspace(b[i]) || b[i] == '#')) {
      if (b[i] == '#') while (i < b.size() && b[i] != '\n') ++i;
      else ++i;
    }
    if (i >= b.size() || !std::isdigit(b[i])) return;
    int64_t x = 0;
    while (i < b.size() && std::isdigit(b[i]) && x <= INT32_MAX) x = x * 10 + (b[i++] - '0');
    v = static_cast<int>(std::min<int64_t>(x, INT32_MAX));
  }
  h.width = values[0];
  h.height = values[1];
}

// Classic TIFF: ImageWidth (256) and ImageLength (257) from the first IFD.
void sniff_tiff(std::span<const uint8_t> b, ImageHeader& h) {
  const bool le = b[0] == 'I';
  auto u16 = [&](size_t o) { return le ? le16(&b[o]) : be16(&b[o]); };
  auto u32 = [&](size_t o) { return le ? le32(&b[o]) : be32(&b[o]); };
  if (b.size() < 8) return;
  const size_t ifd = u32(4);
  if (ifd + 2 > b.size()) return;
  const size_t n = u16(ifd);
  for (size_t k = 0; k < n && ifd + 2 + 12 * (k + 1) <= b.size(); ++k) {
    const size_t e = ifd + 2 + 12 * k;
    const uint32_t tag = u16(e), type = u16(e + 2);
    if (tag != 256 && tag != 257) continue;
    const uint32_t v = type == 3 ? u16(e + 8) : type == 4 ? u32(e + 8) : 0;
    (tag == 256 ? h.width : h.height) = static_cast<int>(std::min<uint32_t>(v, INT32_MAX));
  }
}

}  // namespace

ImageHeader sniff_header(std::span<const uint8_t> b) {
  ImageHeader h;
  if (starts_with(b, "\xFF\xD8\xFF", 3)) {
    h.format = "jpeg";
    sniff_jpeg(b, h);
  } else if (starts_with(b, "\x89PNG\r\n\x1a\n", 8)) {
    h.format = "png";
    if (b.size() >= 24 && starts_with(b, "IHDR", 4, 12)) {
      h.width = static_cast<int>(std::min<uint32_t>(be32(&b[16]), INT32_MAX));
      h.height = static_cast<int>(std::min<uint32_t>(be32(&b[20]), INT32_MAX));
    }
  } else if (starts_with(b, "RIFF", 4) && starts_with(b, "WEBP", 4, 8)) {
    h.format = "webp";
    sniff_webp(b, h);
  } else if (starts_with(b, "GIF87a", 6) || starts_with(b, "GIF89a", 6)) {
    h.format = "gif";
    if (b.size() >= 10) { h.width = static_cast<int>(le16(&b[6])); h.height = static_cast<int>(le16(&b[8])); }
  } else if (starts_with(b, "BM", 2)) {
    h.format = "bmp";
    if (b.size() >= 26) {
      h.width = std::abs(static_cast<int32_t>(le32(&b[18])));
      h.height = std::abs(static_cast<int32_t>(le32(&b[22])));
    }
  } else if (starts_with(b, "II*\0", 4) || starts_with(b, "MM\0*", 4)) {
    h.format = "tiff";
    sniff_tiff(b, h);
  } else if (b.size() >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '6') {
    h.format = "pnm";
    sniff_pnm(b, h);
  }
  return h;
}

Result<Image> decode_image(std::span<const uint8_t> bytes, const DecodeLimits& limits) {
  if (bytes.empty()) return corrupt_data("empty file");
  if (bytes.size() > limits.max_file_bytes) {
    return resource_exhausted("file of " + std::to_string(bytes.size()) + " bytes exceeds the " +
                              std::to_string(limits.max_file_bytes) + "-byte limit");
  }
  ImageHeader h = sniff_header(bytes);
  if (h.format.empty()) return unsupported("not a recognised image format (JPEG, PNG, WebP, BMP, TIFF, PNM)");
  if (h.format == "gif") return unsupported("GIF (and animated images) are not supported; convert a single frame to PNG or JPEG");
  // OpenCV reads its own pixel ceiling (2^30) once at load, so every format we accept must
  // tell us its size here, before any pixel buffer is allocated.
  if (h.width <= 0 || h.height <= 0) return corrupt_data(h.format + " header is truncated or gives no image size");
  if ( h.width > limits.max_side || h.height > limits.max_side ||
      uint64_t(h.width) * uint64_t(h.height) > limits.max_pixels) {
    return resource_exhausted(h.format + " header claims " + std::to_string(h.width) + "x" + std::to_string(h.height) +
                              " pixels, over the limit of " + std::to_string(limits.max_pixels) + " pixels / " +
                              std::to_string(limits.max_side) + " per side");
  }
  cv::Mat decoded;
  try {
    // IMREAD_COLOR: 8-bit, 3 channels whatever the source (grey, 16-bit, CMYK, alpha),
    // and JPEG EXIF orientation applied (we do not pass IMREAD_IGNORE_ORIENTATION).
    cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8U, const_cast<uint8_t*>(bytes.data()));
    decoded = cv::imdecode(buf, cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    return corrupt_data(h.format + " could not be decoded: " + e.msg);
  }
  if (decoded.empty()) return corrupt_data(h.format + " could not be decoded (truncated or damaged)");
  if (decoded.type() != CV_8UC3) return unsupported(h.format + " decoded to an unexpected pixel type");
  if (uint64_t(decoded.cols) * uint64_t(decoded.rows) > limits.max_pixels) {
    return resource_exhausted("decoded image exceeds the pixel limit");
  }
  Image img;
  img.format = h.format;
  cv::cvtColor(decoded, img.rgb, cv::COLOR_BGR2RGB);
  return img;
}

Result<Image> read_image_file(const std::filesystem::path& path, const DecodeLimits& limits) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return not_found("no such file: " + path.string());
  if (!std::filesystem::is_regular_file(path, ec)) return invalid_argument("not a regular file: " + path.string());
  auto size = std::filesystem::file_size(path, ec);
  if (ec) return io_error("cannot stat " + path.string() + ": " + ec.message());
  if (size > limits.max_file_bytes) {
    return resource_exhausted("file of " + std::to_string(size) + " bytes exceeds the " +
                              std::to_string(limits.max_file_bytes) + "-byte limit");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error("cannot open " + path.string());
  std::vector<uint8_t> bytes(size);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  if (static_cast<uint64_t>(in.gcount()) != size) return io_error("short read on " + path.string());
  return decode_image(bytes, limits);
}

}  // namespace fv::image
