// CMYK JPEG (print workflows, some scanners): decoded to RGB, not refused and not garbled.
// The fixture is made here with libjpeg itself, since OpenCV cannot write CMYK.
#include <cstdio>
#include <vector>

#include <jpeglib.h>

#include <gtest/gtest.h>

#include "image/decode.h"

namespace fv {
namespace {

std::vector<uint8_t> cmyk_jpeg(int w, int h) {
  jpeg_compress_struct c{};
  jpeg_error_mgr err{};
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &buf, &size);
  c.image_width = w;
  c.image_height = h;
  c.input_components = 4;
  c.in_color_space = JCS_CMYK;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 95, TRUE);
  jpeg_start_compress(&c, TRUE);
  std::vector<uint8_t> row(4 * w);
  while (c.next_scanline < c.image_height) {
    for (int x = 0; x < w; ++x) {
      // Left half: one ink pattern, right half: another (Adobe-style inverted values).
      const bool left = x < w / 2;
      row[4 * x + 0] = left ? 255 : 0;
      row[4 * x + 1] = left ? 0 : 255;
      row[4 * x + 2] = left ? 0 : 255;
      row[4 * x + 3] = 255;
    }
    JSAMPROW r = row.data();
    jpeg_write_scanlines(&c, &r, 1);
  }
  jpeg_finish_compress(&c);
  std::vector<uint8_t> out(buf, buf + size);
  jpeg_destroy_compress(&c);
  std::free(buf);
  return out;
}

TEST(Cmyk, JpegDecodesToThreeChannelRgb) {
  auto bytes = cmyk_jpeg(64, 32);
  auto img = image::decode_image(bytes);
  ASSERT_TRUE(img.is_ok()) << img.status().to_string();
  EXPECT_EQ(img->format, "jpeg");
  ASSERT_EQ(img->rgb.type(), CV_8UC3);
  EXPECT_EQ(img->rgb.cols, 64);
  EXPECT_EQ(img->rgb.rows, 32);
  const cv::Vec3b l = img->rgb.at<cv::Vec3b>(16, 8), r = img->rgb.at<cv::Vec3b>(16, 56);
  EXPECT_GT(cv::norm(cv::Vec3d(l) - cv::Vec3d(r)), 100.0) << "the two ink patterns must stay distinct colours";
}

TEST(Cmyk, TruncatedCmykJpegIsAnErrorOrAnImageNeverACrash) {
  auto bytes = cmyk_jpeg(64, 32);
  bytes.resize(bytes.size() / 2);
  auto img = image::decode_image(bytes);
  if (img.is_ok()) EXPECT_EQ(img->rgb.type(), CV_8UC3);
  else EXPECT_FALSE(img.status().message().empty());
}

}  // namespace
}  // namespace fv
