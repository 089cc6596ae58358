// fv::image::decode_image / read_image_file / sniff_header on fixtures built in memory:
// every image here is made with cv::imencode or by hand, nothing is read from disk.
#include <cstdint>
#include <cstring>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "image/decode.h"

namespace fv {
namespace {

using Bytes = std::vector<uint8_t>;
using image::decode_image;
using image::DecodeLimits;
using image::read_image_file;
using image::sniff_header;

Bytes encode(const std::string& ext, const cv::Mat& m, const std::vector<int>& params = {}) {
  std::vector<uchar> buf;
  EXPECT_TRUE(cv::imencode(ext, m, buf, params)) << ext;
  return Bytes(buf.begin(), buf.end());
}

Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }

void put_be16(Bytes& b, uint32_t v) { b.push_back(uint8_t(v >> 8)); b.push_back(uint8_t(v)); }
void put_be32(Bytes& b, uint32_t v) { put_be16(b, v >> 16); put_be16(b, v & 0xFFFF); }

// Random BGR noise: compresses badly, so a truncation lands inside the entropy-coded data.
cv::Mat noise_bgr(int w, int h, uint32_t seed) {
  cv::Mat m(h, w, CV_8UC3);
  std::mt19937 rng(seed);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      m.at<cv::Vec3b>(y, x) = cv::Vec3b(uchar(rng()), uchar(rng()), uchar(rng()));
  return m;
}

// A PNG signature and an IHDR claiming w×h, followed by junk instead of IDAT.
Bytes png_header_claiming(uint32_t w, uint32_t h) {
  Bytes b = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  put_be32(b, 13);
  for (char c : std::string("IHDR")) b.push_back(uint8_t(c));
  put_be32(b, w);
  put_be32(b, h);
  b.insert(b.end(), {8, 2, 0, 0, 0});   // 8-bit RGB, deflate, no filter, no interlace
  put_be32(b, 0xDEADBEEF);              // CRC (wrong: we must reject before anyone checks it)
  for (int i = 0; i < 64; ++i) b.push_back(uint8_t(i * 37));
  return b;
}

// The offset of the first SOFn marker of a JPEG (FFC0..FFCF but not DHT/JPG/DAC).
size_t find_sof(const Bytes& jpg) {
  size_t i = 2;
  while (i + 4 <= jpg.size()) {
    EXPECT_EQ(jpg[i], 0xFF);
    const uint8_t m = jpg[i + 1];
    if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) return i;
    i += 2 + ((size_t(jpg[i + 2]) << 8) | jpg[i + 3]);
  }
  ADD_FAILURE() << "no SOF marker";
  return 0;
}

// APP1 "Exif" segment: big-endian TIFF, IFD0 with a single Orientation (0x0112) entry.
Bytes exif_app1(uint16_t orientation) {
  Bytes tiff = {'M', 'M', 0x00, 0x2A};
  put_be32(tiff, 8);            // offset of IFD0
  put_be16(tiff, 1);            // one entry
  put_be16(tiff, 0x0112);       // Orientation
  put_be16(tiff, 3);            // SHORT
  put_be32(tiff, 1);            // count
  put_be16(tiff, orientation);  // value, left-justified in the 4-byte field
  put_be16(tiff, 0);
  put_be32(tiff, 0);            // no next IFD
  Bytes seg = {0xFF, 0xE1};
  put_be16(seg, uint32_t(2 + 6 + tiff.size()));
  for (char c : std::string("Exif\0\0", 6)) seg.push_back(uint8_t(c));
  seg.insert(seg.end(), tiff.begin(), tiff.end());
  return seg;
}

Bytes with_exif_after_soi(const Bytes& jpg, uint16_t orientation) {
  Bytes out(jpg.begin(), jpg.begin() + 2);  // FFD8
  const Bytes app1 = exif_app1(orientation);
  out.insert(out.end(), app1.begin(), app1.end());
  out.insert(out.end(), jpg.begin() + 2, jpg.end());
  return out;
}

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("fv_decode_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::error_code ec; std::filesystem::remove_all(path_, ec); }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path write(const std::string& name, const Bytes& b) const {
    auto p = path_ / name;
    std::ofstream out(p, std::ios::binary);
    out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
    return p;
  }

 private:
  std::filesystem::path path_;
};

// ---------------------------------------------------------------- garbage in

TEST(Decode, EmptyBytesAreCorruptData) {
  auto r = decode_image(Bytes{});
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruptData);
}

TEST(Decode, RandomBytesAreRejected) {
  std::mt19937 rng(1234);
  Bytes b(4096);
  for (auto& x : b) x = uint8_t(rng());
  b[0] = 0x00;  // no format starts with a NUL byte
  EXPECT_EQ(sniff_header(b).format, "");
  auto r = decode_image(b);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported) << r.status().to_string();
}

TEST(Decode, TextFileIsUnsupported) {
  auto r = decode_image(bytes_of("name,score\nalice,0.93\nbob,0.12\n"));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported) << r.status().to_string();
}

TEST(Decode, MagicAloneIsCorruptNotACrash) {
  for (const Bytes& b : {Bytes{0xFF, 0xD8, 0xFF}, Bytes{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'},
                         bytes_of("BM"), bytes_of("P6\n")}) {
    auto r = decode_image(b);
    ASSERT_FALSE(r.is_ok()) << sniff_header(b).format;
    EXPECT_NE(r.status().code(), StatusCode::kOk);
  }
}

TEST(Decode, TruncatedJpegIsAnErrorOrAPartialImageOfTheRightSize) {
  const Bytes full = encode(".jpg", noise_bgr(64, 48, 7), {cv::IMWRITE_JPEG_QUALITY, 95});
  ASSERT_TRUE(decode_image(full).is_ok());
  const Bytes cut(full.begin(), full.begin() + full.size() * 6 / 10);
  auto r = decode_image(cut);
  if (r.is_ok()) {
    // libjpeg may fill the missing scan lines and warn: acceptable, if the geometry is right.
    EXPECT_EQ(r->rgb.cols, 64);
    EXPECT_EQ(r->rgb.rows, 48);
    EXPECT_EQ(r->rgb.type(), CV_8UC3);
  } else {
    EXPECT_EQ(r.status().code(), StatusCode::kCorruptData) << r.status().to_string();
  }
}

TEST(Decode, TruncatedPngIsCorruptData) {
  const Bytes full = encode(".png", noise_bgr(64, 48, 8));
  ASSERT_TRUE(decode_image(full).is_ok());
  const Bytes cut(full.begin(), full.begin() + full.size() * 6 / 10);
  EXPECT_EQ(sniff_header(cut).width, 64);  // the header survives the cut
  auto r = decode_image(cut);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruptData) << r.status().to_string();
}

TEST(Decode, PngHeaderClaimingHugeSizeIsRejectedBeforeDecoding) {
  const Bytes b = png_header_claiming(100000, 100000);
  const auto h = sniff_header(b);
  EXPECT_EQ(h.format, "png");
  EXPECT_EQ(h.width, 100000);
  EXPECT_EQ(h.height, 100000);
  auto r = decode_image(b);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().to_string();
  EXPECT_NE(r.status().message().find("100000x100000"), std::string::npos) << r.status().message();
}

TEST(Decode, PngWithinSideLimitButOverPixelLimitIsRejected) {
  // 20000 per side is under max_side (30000) but 4e8 pixels is over max_pixels (8e7).
  auto r = decode_image(png_header_claiming(20000, 20000));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().to_string();
}

TEST(Decode, PngHeaderWithTopBitSetWidthIsRejected) {
  auto r = decode_image(png_header_claiming(0x80000001u, 16));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().to_string();
}

TEST(Decode, CustomLimitsApplyToTheHeader) {
  const Bytes png = encode(".png", noise_bgr(64, 48, 9));
  DecodeLimits side;
  side.max_side = 50;
  auto r1 = decode_image(png, side);
  ASSERT_FALSE(r1.is_ok());
  EXPECT_EQ(r1.status().code(), StatusCode::kResourceExhausted);
  DecodeLimits pixels;
  pixels.max_pixels = 64 * 48 - 1;
  auto r2 = decode_image(png, pixels);
  ASSERT_FALSE(r2.is_ok());
  EXPECT_EQ(r2.status().code(), StatusCode::kResourceExhausted);
  pixels.max_pixels = 64 * 48;
  EXPECT_TRUE(decode_image(png, pixels).is_ok());
}

TEST(Decode, PixelLimitAlsoHoldsForFormatsWhoseHeaderIsNotSniffed) {
  // PNM dimensions are not read by sniff_header; the limit must still hold.
  const Bytes pnm = encode(".ppm", noise_bgr(20, 20, 10));
  ASSERT_EQ(sniff_header(pnm).format, "pnm");
  ASSERT_TRUE(decode_image(pnm).is_ok());
  DecodeLimits l;
  l.max_pixels = 100;
  auto r = decode_image(pnm, l);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().to_string();
}

// Regression (was a bug in sniff_header + an OPENCV_IO_MAX_IMAGE_PIXELS fallback): PNM (and TIFF) dimensions
// are not sniffed, and the fallback — setenv("OPENCV_IO_MAX_IMAGE_PIXELS") at the first decode —
// has no effect: OpenCV 4.6 reads that variable into a namespace-scope static when
// libopencv_imgcodecs is loaded, before main(). (It would also only ever honour the first call's
// limits.) So a 30-byte PNM header claiming more than max_pixels reaches the pixel decoder, which
// allocates the full claimed frame (up to OpenCV's own 2^30-pixel ceiling, ~3 GB as RGB8), and the
// result is kCorruptData from the truncated body instead of kResourceExhausted from the header.
// Checked by hand: "P6\n9000 9000\n255\n"+junk with default limits (81 MP > 80 MP) fails in
// OpenCV's readData, not in its header size check, unless OPENCV_IO_MAX_IMAGE_PIXELS is exported
// before the process starts. Small limits keep this test's allocation to 12 MB.
TEST(Decode, PnmHeaderOverThePixelLimitIsRejectedBeforeDecoding) {
  const std::string header = "P6\n2000 2000\n255\n";
  Bytes pnm = bytes_of(header);
  for (int i = 0; i < 300; ++i) pnm.push_back(uint8_t(i));
  ASSERT_EQ(sniff_header(pnm).format, "pnm");
  DecodeLimits l;
  l.max_pixels = 1000;  // header claims 4,000,000
  auto r = decode_image(pnm, l);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted)
      << "PNM header size not checked against DecodeLimits before decoding: " << r.status().to_string();
}

TEST(Decode, HandMadeJpegSofClaimingHugeSizeIsRejected) {
  Bytes b = {0xFF, 0xD8, 0xFF, 0xC0};
  put_be16(b, 17);                 // SOF0 length: 8 + 3 components × 3
  b.push_back(8);                  // precision
  put_be16(b, 60000);              // height
  put_be16(b, 60000);              // width
  b.push_back(3);
  for (uint8_t c = 1; c <= 3; ++c) b.insert(b.end(), {c, 0x11, 0});
  for (int i = 0; i < 64; ++i) b.push_back(uint8_t(i));
  const auto h = sniff_header(b);
  EXPECT_EQ(h.format, "jpeg");
  EXPECT_EQ(h.width, 60000);
  EXPECT_EQ(h.height, 60000);
  auto r = decode_image(b);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().to_string();
}

TEST(Decode, RealJpegWithPatchedSofIsRejected) {
  // The SOF sits behind APP0/DQT/… segments: the sniffer has to walk them.
  Bytes jpg = encode(".jpg", noise_bgr(32, 16, 11));
  const size_t sof = find_sof(jpg);
  ASSERT_GT(sof, 2u);
  EXPECT_EQ(sniff_header(jpg).width, 32);
  EXPECT_EQ(sniff_header(jpg).height, 16);
  jpg[sof + 5] = 0xEA; jpg[sof + 6] = 0x60;  // height 60000
  jpg[sof + 7] = 0xEA; jpg[sof + 8] = 0x60;  // width 60000
  auto r = decode_image(jpg);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().to_string();
}

TEST(Decode, GifIsUnsupportedAndSaysSo) {
  for (const char* magic : {"GIF89a", "GIF87a"}) {
    Bytes b = bytes_of(magic);
    b.insert(b.end(), {10, 0, 20, 0, 0x80, 0, 0});
    EXPECT_EQ(sniff_header(b).format, "gif");
    EXPECT_EQ(sniff_header(b).width, 10);
    EXPECT_EQ(sniff_header(b).height, 20);
    auto r = decode_image(b);
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
    EXPECT_NE(r.status().message().find("GIF"), std::string::npos) << r.status().message();
  }
}

TEST(Decode, MaxFileBytesIsEnforced) {
  const Bytes png = encode(".png", noise_bgr(16, 16, 12));
  DecodeLimits l;
  l.max_file_bytes = png.size() - 1;
  auto r = decode_image(png, l);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  l.max_file_bytes = png.size();
  EXPECT_TRUE(decode_image(png, l).is_ok());
}

// ---------------------------------------------------------------- pixels out

TEST(Decode, SixteenBitPngBecomesEightBitScaled) {
  cv::Mat m(2, 3, CV_16UC3);
  // Multiples of 257 map to exactly v/257 whether the decoder strips or rounds the low byte.
  const uint16_t vals[6][3] = {{0, 257 * 10, 257 * 20}, {257 * 100, 257 * 128, 257 * 200},
                               {65535, 65535, 65535},   {257 * 1, 257 * 254, 0},
                               {257 * 64, 257 * 32, 257 * 16}, {257 * 250, 257 * 5, 257 * 99}};
  for (int i = 0; i < 6; ++i) m.at<cv::Vec3w>(i / 3, i % 3) = cv::Vec3w(vals[i][0], vals[i][1], vals[i][2]);
  const Bytes png = encode(".png", m);
  ASSERT_EQ(png[24], 16) << "fixture is not a 16-bit PNG";  // IHDR bit depth
  auto r = decode_image(png);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->rgb.type(), CV_8UC3);
  ASSERT_EQ(r->rgb.size(), cv::Size(3, 2));
  EXPECT_EQ(r->format, "png");
  for (int i = 0; i < 6; ++i) {
    const cv::Vec3b px = r->rgb.at<cv::Vec3b>(i / 3, i % 3);
    // m is BGR, the result RGB.
    EXPECT_EQ(px[0], vals[i][2] / 257) << "pixel " << i;
    EXPECT_EQ(px[1], vals[i][1] / 257) << "pixel " << i;
    EXPECT_EQ(px[2], vals[i][0] / 257) << "pixel " << i;
  }
}

TEST(Decode, SixteenBitPngArbitraryValuesWithinOneLevel) {
  cv::Mat m(1, 4, CV_16UC3);
  const uint16_t v[4] = {1000, 33000, 40000, 65000};
  for (int i = 0; i < 4; ++i) m.at<cv::Vec3w>(0, i) = cv::Vec3w(v[i], v[i], v[i]);
  auto r = decode_image(encode(".png", m));
  ASSERT_TRUE(r.is_ok());
  for (int i = 0; i < 4; ++i) {
    for (int c = 0; c < 3; ++c) EXPECT_NEAR(r->rgb.at<cv::Vec3b>(0, i)[c], v[i] / 257.0, 1.0) << i;
  }
}

TEST(Decode, GrayscalePngHasThreeEqualChannels) {
  cv::Mat g(5, 7, CV_8UC1);
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 7; ++x) g.at<uchar>(y, x) = uchar(x * 30 + y * 5);
  const Bytes png = encode(".png", g);
  ASSERT_EQ(png[25], 0) << "fixture is not a greyscale PNG";  // IHDR colour type
  auto r = decode_image(png);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->rgb.type(), CV_8UC3);
  ASSERT_EQ(r->rgb.size(), g.size());
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 7; ++x) {
      const cv::Vec3b px = r->rgb.at<cv::Vec3b>(y, x);
      EXPECT_EQ(px[0], g.at<uchar>(y, x));
      EXPECT_EQ(px[1], g.at<uchar>(y, x));
      EXPECT_EQ(px[2], g.at<uchar>(y, x));
    }
}

TEST(Decode, RgbaPngBecomesRgb) {
  cv::Mat m(2, 2, CV_8UC4, cv::Scalar(10, 20, 30, 255));   // B G R A
  m.at<cv::Vec4b>(1, 1) = cv::Vec4b(200, 100, 50, 128);     // half-transparent
  const Bytes png = encode(".png", m);
  ASSERT_EQ(png[25], 6) << "fixture is not an RGBA PNG";
  auto r = decode_image(png);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->rgb.type(), CV_8UC3);
  EXPECT_EQ(r->rgb.at<cv::Vec3b>(0, 0), cv::Vec3b(30, 20, 10));
  EXPECT_EQ(r->rgb.at<cv::Vec3b>(1, 1), cv::Vec3b(50, 100, 200));  // alpha dropped, not blended
}

TEST(Decode, BmpDecodes) {
  const cv::Mat m = noise_bgr(13, 9, 13);  // odd width: rows are padded in BMP
  const Bytes bmp = encode(".bmp", m);
  const auto h = sniff_header(bmp);
  EXPECT_EQ(h.format, "bmp");
  EXPECT_EQ(h.width, 13);
  EXPECT_EQ(h.height, 9);
  auto r = decode_image(bmp);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->format, "bmp");
  cv::Mat expect;
  cv::cvtColor(m, expect, cv::COLOR_BGR2RGB);
  EXPECT_EQ(cv::norm(r->rgb, expect, cv::NORM_INF), 0.0);
}

TEST(Decode, PngIsLosslessAndRgbOrdered) {
  cv::Mat m(3, 4, CV_8UC3, cv::Scalar(0, 0, 0));
  m.at<cv::Vec3b>(1, 2) = cv::Vec3b(0, 0, 255);  // pure red in OpenCV's BGR
  m.at<cv::Vec3b>(0, 0) = cv::Vec3b(255, 0, 0);  // pure blue
  auto r = decode_image(encode(".png", m));
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->rgb.at<cv::Vec3b>(1, 2), cv::Vec3b(255, 0, 0)) << "R must come first";
  EXPECT_EQ(r->rgb.at<cv::Vec3b>(0, 0), cv::Vec3b(0, 0, 255));
  EXPECT_EQ(r->rgb.at<cv::Vec3b>(2, 3), cv::Vec3b(0, 0, 0));
}

TEST(Decode, JpegDecodesWithRightSizeAndColour) {
  cv::Mat m(24, 40, CV_8UC3, cv::Scalar(0, 0, 255));  // red (BGR)
  const Bytes jpg = encode(".jpg", m, {cv::IMWRITE_JPEG_QUALITY, 95});
  auto r = decode_image(jpg);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->format, "jpeg");
  ASSERT_EQ(r->rgb.size(), cv::Size(40, 24));
  const cv::Vec3b px = r->rgb.at<cv::Vec3b>(12, 20);
  EXPECT_GT(px[0], 230);
  EXPECT_LT(px[1], 25);
  EXPECT_LT(px[2], 25);
}

// Four grey quadrants (luma is not subsampled, so JPEG keeps them apart).
cv::Mat quadrants_40x20() {
  cv::Mat m(20, 40, CV_8UC3);
  m(cv::Rect(0, 0, 20, 10)).setTo(cv::Scalar::all(0));     // top-left
  m(cv::Rect(20, 0, 20, 10)).setTo(cv::Scalar::all(80));   // top-right
  m(cv::Rect(0, 10, 20, 10)).setTo(cv::Scalar::all(160));  // bottom-left
  m(cv::Rect(20, 10, 20, 10)).setTo(cv::Scalar::all(240)); // bottom-right
  return m;
}

int grey_at(const cv::Mat& rgb, int x, int y) { return rgb.at<cv::Vec3b>(y, x)[1]; }

TEST(Decode, JpegWithoutExifKeepsItsOrientation) {
  auto r = decode_image(encode(".jpg", quadrants_40x20(), {cv::IMWRITE_JPEG_QUALITY, 100}));
  ASSERT_TRUE(r.is_ok());
  ASSERT_EQ(r->rgb.size(), cv::Size(40, 20));
  EXPECT_NEAR(grey_at(r->rgb, 10, 5), 0, 12);
  EXPECT_NEAR(grey_at(r->rgb, 30, 5), 80, 12);
  EXPECT_NEAR(grey_at(r->rgb, 10, 15), 160, 12);
  EXPECT_NEAR(grey_at(r->rgb, 30, 15), 240, 12);
}

TEST(Decode, ExifOrientation6RotatesClockwise) {
  const Bytes plain = encode(".jpg", quadrants_40x20(), {cv::IMWRITE_JPEG_QUALITY, 100});
  const Bytes jpg = with_exif_after_soi(plain, 6);
  // The sniffer must walk past the APP1 segment to the frame header (stored size).
  EXPECT_EQ(sniff_header(jpg).width, 40);
  EXPECT_EQ(sniff_header(jpg).height, 20);
  auto r = decode_image(jpg);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->rgb.size(), cv::Size(20, 40)) << "EXIF orientation 6 not applied";
  // 90° clockwise: (x, y) → (H-1-y, x). Top-left goes to top-right, bottom-left to top-left,
  // top-right to bottom-right, bottom-right to bottom-left.
  EXPECT_NEAR(grey_at(r->rgb, 5, 10), 160, 12);   // top-left     ← bottom-left
  EXPECT_NEAR(grey_at(r->rgb, 15, 10), 0, 12);    // top-right    ← top-left
  EXPECT_NEAR(grey_at(r->rgb, 5, 30), 240, 12);   // bottom-left  ← bottom-right
  EXPECT_NEAR(grey_at(r->rgb, 15, 30), 80, 12);   // bottom-right ← top-right
}

TEST(Decode, ExifOrientation3Rotates180AndOrientation1IsIdentity) {
  const Bytes plain = encode(".jpg", quadrants_40x20(), {cv::IMWRITE_JPEG_QUALITY, 100});
  auto r3 = decode_image(with_exif_after_soi(plain, 3));
  ASSERT_TRUE(r3.is_ok());
  ASSERT_EQ(r3->rgb.size(), cv::Size(40, 20));
  EXPECT_NEAR(grey_at(r3->rgb, 10, 5), 240, 12);
  EXPECT_NEAR(grey_at(r3->rgb, 30, 15), 0, 12);
  auto r1 = decode_image(with_exif_after_soi(plain, 1));
  ASSERT_TRUE(r1.is_ok());
  ASSERT_EQ(r1->rgb.size(), cv::Size(40, 20));
  EXPECT_NEAR(grey_at(r1->rgb, 10, 5), 0, 12);
  EXPECT_NEAR(grey_at(r1->rgb, 30, 15), 240, 12);
}

// ---------------------------------------------------------------- sniff_header

TEST(SniffHeader, ReadsPngAndJpegDimensionsWithoutDecoding) {
  const cv::Mat m = noise_bgr(37, 23, 14);
  auto png = sniff_header(encode(".png", m));
  EXPECT_EQ(png.format, "png");
  EXPECT_EQ(png.width, 37);
  EXPECT_EQ(png.height, 23);
  auto jpg = sniff_header(encode(".jpg", m));
  EXPECT_EQ(jpg.format, "jpeg");
  EXPECT_EQ(jpg.width, 37);
  EXPECT_EQ(jpg.height, 23);
}

TEST(SniffHeader, RecognisesOtherMagics) {
  EXPECT_EQ(sniff_header(bytes_of(std::string("II*\0", 4) + "xxxx")).format, "tiff");
  EXPECT_EQ(sniff_header(bytes_of(std::string("MM\0*", 4) + "xxxx")).format, "tiff");
  EXPECT_EQ(sniff_header(bytes_of("P6\n2 2\n255\n")).format, "pnm");
  EXPECT_EQ(sniff_header(bytes_of(std::string("RIFF\x10\0\0\0WEBPVP8 ", 16))).format, "webp");
  EXPECT_EQ(sniff_header(bytes_of("hello")).format, "");
  EXPECT_EQ(sniff_header(Bytes{}).format, "");
  EXPECT_EQ(sniff_header(Bytes{0xFF, 0xD8}).format, "");  // needs FF D8 FF
}

TEST(SniffHeader, WebpDimensionsWhenEncoderAvailable) {
  if (!cv::haveImageWriter(".webp")) GTEST_SKIP() << "OpenCV built without WebP";
  const Bytes webp = encode(".webp", noise_bgr(45, 31, 15), {cv::IMWRITE_WEBP_QUALITY, 80});
  const auto h = sniff_header(webp);
  EXPECT_EQ(h.format, "webp");
  EXPECT_EQ(h.width, 45);
  EXPECT_EQ(h.height, 31);
  auto r = decode_image(webp);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->rgb.size(), cv::Size(45, 31));
}

// ---------------------------------------------------------------- files

TEST(ReadImageFile, ReadsAPng) {
  TempDir dir;
  const cv::Mat m = noise_bgr(11, 7, 16);
  auto r = read_image_file(dir.write("a.png", encode(".png", m)));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  cv::Mat expect;
  cv::cvtColor(m, expect, cv::COLOR_BGR2RGB);
  EXPECT_EQ(cv::norm(r->rgb, expect, cv::NORM_INF), 0.0);
}

TEST(ReadImageFile, MissingPathIsNotFound) {
  TempDir dir;
  auto r = read_image_file(dir.path() / "does_not_exist.jpg");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

TEST(ReadImageFile, DirectoryIsAnError) {
  TempDir dir;
  auto r = read_image_file(dir.path());
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().to_string();
}

TEST(ReadImageFile, MaxFileBytesIsCheckedBeforeReading) {
  TempDir dir;
  const Bytes png = encode(".png", noise_bgr(16, 16, 17));
  const auto p = dir.write("big.png", png);
  DecodeLimits l;
  l.max_file_bytes = png.size() - 1;
  auto r = read_image_file(p, l);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  l.max_file_bytes = png.size();
  EXPECT_TRUE(read_image_file(p, l).is_ok());
}

TEST(ReadImageFile, EmptyAndTextFilesAreErrors) {
  TempDir dir;
  auto e = read_image_file(dir.write("empty.jpg", {}));
  ASSERT_FALSE(e.is_ok());
  EXPECT_EQ(e.status().code(), StatusCode::kCorruptData);
  auto t = read_image_file(dir.write("notes.jpg", bytes_of("not really a jpeg\n")));
  ASSERT_FALSE(t.is_ok());
  EXPECT_EQ(t.status().code(), StatusCode::kUnsupported);
}

}  // namespace
}  // namespace fv
