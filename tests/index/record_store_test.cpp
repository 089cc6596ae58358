// RecordStore: the re-rank records of the approximate indexes, in memory or sealed on disk.
#include "index/record_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include <gtest/gtest.h>

namespace fv::index {
namespace {

std::filesystem::path scratch(const char* tag) {
  return std::filesystem::temp_directory_path() / ("fv-recstore-" + std::string(tag) + "-" + std::to_string(::getpid()));
}

// Forces the file's pages out of the page cache (flushed first), so that the next reads come
// from the device: get_many's path for records the cache does not hold. (On a tmpfs /tmp the
// pages stay; the results must be the same either way, and on this project's ext4 machine
// strace shows the EAGAIN → POSIX_FADV_WILLNEED → pread path taken.)
void drop_cached_pages(const std::filesystem::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::fsync(fd), 0);
  ASSERT_EQ(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
  ::close(fd);
}

class RecordStoreTest : public ::testing::TestWithParam<bool> {};  // true: sealed on disk

TEST_P(RecordStoreTest, GetManyReturnsWhatGetReturnsInTheOrderAsked) {
  const auto path = GetParam() ? scratch("many") : std::filesystem::path();
  constexpr size_t kRec = 1028, kN = 300;
  auto store = RecordStore::create(kRec, path);
  ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  std::mt19937 rng(7);
  std::vector<uint8_t> plain(kN * kRec);
  for (auto& b : plain) b = static_cast<uint8_t>(rng());
  std::vector<uint32_t> slots(kN);
  ASSERT_TRUE((*store)->put(plain.data(), kN, slots.data()).is_ok());
  if (GetParam()) drop_cached_pages(path);
  // A re-rank's shape: slots in no order, one asked twice.
  std::vector<size_t> pick = {299, 3, 150, 0, 151, 3, 77, 298};
  std::vector<uint32_t> ask;
  for (size_t i : pick) ask.push_back(slots[i]);
  std::vector<uint8_t> got(ask.size() * kRec);
  ASSERT_TRUE((*store)->get_many(ask.data(), ask.size(), got.data()).is_ok());
  for (size_t i = 0; i < pick.size(); ++i)
    ASSERT_EQ(0, std::memcmp(got.data() + i * kRec, plain.data() + pick[i] * kRec, kRec)) << "record " << pick[i];
  // A mix in one call: some records cached (read one by one first), the others not.
  if (GetParam()) {
    drop_cached_pages(path);
    std::vector<uint8_t> warm(kRec);
    ASSERT_TRUE((*store)->get(ask[0], warm.data()).is_ok());
    ASSERT_TRUE((*store)->get(ask[4], warm.data()).is_ok());
    std::fill(got.begin(), got.end(), 0);
    ASSERT_TRUE((*store)->get_many(ask.data(), ask.size(), got.data()).is_ok());
    for (size_t i = 0; i < pick.size(); ++i)
      ASSERT_EQ(0, std::memcmp(got.data() + i * kRec, plain.data() + pick[i] * kRec, kRec)) << "mixed, record " << pick[i];
  }
  // Again, now from the cache, and one by one.
  ASSERT_TRUE((*store)->get_many(ask.data(), ask.size(), got.data()).is_ok());
  std::vector<uint8_t> one(kRec);
  for (size_t i = 0; i < pick.size(); ++i) {
    ASSERT_TRUE((*store)->get(ask[i], one.data()).is_ok());
    ASSERT_EQ(0, std::memcmp(got.data() + i * kRec, one.data(), kRec));
  }
  ASSERT_TRUE((*store)->get_many(ask.data(), 0, got.data()).is_ok());
  store->reset();
  EXPECT_FALSE(!path.empty() && std::filesystem::exists(path)) << "the sealed file outlives its key";
}

TEST_P(RecordStoreTest, GetManyRefusesAnErasedOrUnknownSlot) {
  const auto path = GetParam() ? scratch("erase") : std::filesystem::path();
  constexpr size_t kRec = 64;
  auto store = RecordStore::create(kRec, path);
  ASSERT_TRUE(store.is_ok());
  std::vector<uint8_t> plain(4 * kRec, 0x5a);
  uint32_t slots[4];
  ASSERT_TRUE((*store)->put(plain.data(), 4, slots).is_ok());
  ASSERT_TRUE((*store)->erase(&slots[2], 1).is_ok());
  std::vector<uint8_t> got(4 * kRec);
  const Status erased = (*store)->get_many(slots, 4, got.data());
  if (GetParam()) {
    // On disk the record is zeroes now, and zeroes do not authenticate.
    EXPECT_EQ(erased.code(), StatusCode::kCorruptData) << erased.to_string();
    if (!path.empty()) drop_cached_pages(path);
    EXPECT_EQ((*store)->get_many(slots, 4, got.data()).code(), StatusCode::kCorruptData);
  } else {
    // In memory the slot is wiped: its bytes are gone whatever is returned.
    ASSERT_TRUE(erased.is_ok());
    EXPECT_EQ(std::vector<uint8_t>(got.begin() + 2 * kRec, got.begin() + 3 * kRec), std::vector<uint8_t>(kRec, 0));
  }
  const uint32_t unknown[2] = {slots[0], 1000};
  EXPECT_EQ((*store)->get_many(unknown, 2, got.data()).code(), StatusCode::kInternal);
}

INSTANTIATE_TEST_SUITE_P(MemoryAndDisk, RecordStoreTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Disk" : "Memory"; });

}  // namespace
}  // namespace fv::index
