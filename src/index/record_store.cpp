#include "index/record_store.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

#include "index/kernels.h"
#include "index/parallel.h"

namespace fv::index {

void RerankRecord::encode(const float* x, size_t dim, int16_t* out) {
  const float s = kernels::quantize_s16(x, dim, out);
  std::memcpy(out + dim, &s, sizeof s);
}

float RerankRecord::score(const int16_t* rec, const float* q, size_t dim) {
  float s;
  std::memcpy(&s, rec + dim, sizeof s);
  return kernels::dot_s16f32(rec, q, dim) * s;
}

Result<std::unique_ptr<RecordStore>> RecordStore::create(size_t record_bytes, const std::filesystem::path& path) {
  if (sodium_init() < 0) return internal_error("libsodium failed to initialise");
  std::unique_ptr<RecordStore> s(new RecordStore());
  s->rec_ = record_bytes;
  if (!path.empty()) {
    s->path_ = path;
    s->fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (s->fd_ < 0) return os_error(errno, "cannot create " + path.string() + ": " + std::strerror(errno));
  }
  return s;
}

RecordStore::~RecordStore() {
  if (fd_ >= 0) {
    ::close(fd_);
    // The key dies with this object, so what remains on disk is ciphertext nobody can open;
    // the file is still removed so that it does not take space.
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
}

Status RecordStore::put(const uint8_t* plain, size_t n, uint32_t* slots, int threads) {
  for (size_t i = 0; i < n; ++i) {
    if (!free_.empty()) {
      slots[i] = free_.back();
      free_.pop_back();
    } else {
      if (slots_ == UINT32_MAX) return resource_exhausted("record store is full (2^32 records)");
      slots[i] = slots_++;
    }
  }
  live_ += n;
  if (fd_ < 0) {
    if (mem_.size() < size_t(slots_) * rec_) mem_.resize(size_t(slots_) * rec_);
    for (size_t i = 0; i < n; ++i) std::memcpy(mem_.data() + size_t(slots[i]) * rec_, plain + i * rec_, rec_);
    return Status::ok();
  }
  const size_t sb = sealed_bytes();
  std::vector<uint8_t> sealed(n * sb);
  run_parallel(threads, [&](int t) {
    auto [b, e] = split_range(n, threads, t);
    for (size_t i = b; i < e; ++i) {
      uint8_t* out = sealed.data() + i * sb;
      randombytes_buf(out, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
      const uint64_t ad = slots[i];
      crypto_aead_xchacha20poly1305_ietf_encrypt(out + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, nullptr, plain + i * rec_, rec_,
                                                 reinterpret_cast<const uint8_t*>(&ad), sizeof ad, nullptr, out, key_.bytes.data());
    }
  });
  // One write per run of consecutive slots (bulk adds are one run).
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && slots[j] == slots[j - 1] + 1) ++j;
    const size_t bytes = (j - i) * sb;
    if (::pwrite(fd_, sealed.data() + i * sb, bytes, off_t(slots[i]) * off_t(sb)) != static_cast<ssize_t>(bytes))
      return os_error(errno, "cannot write the re-rank store " + path_.string() + ": " + std::strerror(errno));
    i = j;
  }
  return Status::ok();
}

Status RecordStore::open_sealed(uint32_t slot, const uint8_t* sealed, uint8_t* plain) const {
  const uint64_t ad = slot;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, nullptr, nullptr, sealed + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
                                                 sealed_bytes() - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
                                                 reinterpret_cast<const uint8_t*>(&ad), sizeof ad, sealed, key_.bytes.data()) != 0)
    return corrupt_data("re-rank store: a record does not authenticate (erased or modified)");
  return Status::ok();
}

Status RecordStore::get(uint32_t slot, uint8_t* plain) const {
  if (slot >= slots_) return internal_error("record store: slot out of range");
  if (fd_ < 0) {
    std::memcpy(plain, mem_.data() + size_t(slot) * rec_, rec_);
    return Status::ok();
  }
  const size_t sb = sealed_bytes();
  uint8_t buf[8192];
  if (sb > sizeof buf) return internal_error("record store: record too large");
  if (::pread(fd_, buf, sb, off_t(slot) * off_t(sb)) != static_cast<ssize_t>(sb))
    return io_error("cannot read the re-rank store " + path_.string());
  return open_sealed(slot, buf, plain);
}

Status RecordStore::get_many(const uint32_t* slots, size_t n, uint8_t* plain) const {
  if (fd_ < 0 || n <= 1) {
    for (size_t i = 0; i < n; ++i) FV_RETURN_IF_ERROR(get(slots[i], plain + i * rec_));
    return Status::ok();
  }
  const size_t sb = sealed_bytes();
  uint8_t buf[8192];
  if (sb > sizeof buf) return internal_error("record store: record too large");
  // First pass: what the page cache holds (RWF_NOWAIT reads nothing from the device). Second:
  // the rest is announced at once (POSIX_FADV_WILLNEED starts the reads without waiting), then
  // read in order; the device serves the requests side by side.
  std::vector<size_t> missing;
  for (size_t i = 0; i < n; ++i) {
    if (slots[i] >= slots_) return internal_error("record store: slot out of range");
    struct iovec v{buf, sb};
    if (::preadv2(fd_, &v, 1, off_t(slots[i]) * off_t(sb), RWF_NOWAIT) == static_cast<ssize_t>(sb)) {
      FV_RETURN_IF_ERROR(open_sealed(slots[i], buf, plain + i * rec_));
    } else {
      missing.push_back(i);  // not cached, partly cached, or a kernel without RWF_NOWAIT
    }
  }
  if (missing.size() > 1)
    for (size_t i : missing) (void)::posix_fadvise(fd_, off_t(slots[i]) * off_t(sb), off_t(sb), POSIX_FADV_WILLNEED);
  for (size_t i : missing) {
    if (::pread(fd_, buf, sb, off_t(slots[i]) * off_t(sb)) != static_cast<ssize_t>(sb))
      return io_error("cannot read the re-rank store " + path_.string());
    FV_RETURN_IF_ERROR(open_sealed(slots[i], buf, plain + i * rec_));
  }
  return Status::ok();
}

Status RecordStore::erase(const uint32_t* slots, size_t n) {
  if (n == 0) return Status::ok();
  std::vector<uint8_t> zeros(fd_ >= 0 ? sealed_bytes() : 0);
  for (size_t i = 0; i < n; ++i) {
    if (slots[i] >= slots_) return internal_error("record store: slot out of range");
    if (fd_ < 0) {
      sodium_memzero(mem_.data() + size_t(slots[i]) * rec_, rec_);
    } else if (::pwrite(fd_, zeros.data(), zeros.size(), off_t(slots[i]) * off_t(zeros.size())) !=
               static_cast<ssize_t>(zeros.size())) {
      return io_error("cannot overwrite a record of " + path_.string());
    }
    free_.push_back(slots[i]);
  }
  live_ -= n;
  // The erase path waits for this: the zeros are on the device before removal reports done.
  if (fd_ >= 0 && ::fdatasync(fd_) != 0) return os_error(errno, "fdatasync " + path_.string() + ": " + std::strerror(errno));
  return Status::ok();
}

}  // namespace fv::index
