#include "index/secure_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace fv::index {
namespace {

constexpr char kMagic[8] = {'F', 'V', 'I', 'N', 'D', 'E', 'X', '1'};
constexpr size_t kChunk = 1 << 20;
using Stream = crypto_secretstream_xchacha20poly1305_state;

}  // namespace

IndexKey IndexKey::random() {
  IndexKey k;
  randombytes_buf(k.bytes.data(), k.bytes.size());
  return k;
}

IndexKey::~IndexKey() { sodium_memzero(bytes.data(), bytes.size()); }

Result<std::unique_ptr<SealedWriter>> SealedWriter::create(const std::filesystem::path& path, const IndexKey& key) {
  if (sodium_init() < 0) return internal_error("libsodium failed to initialise");
  std::unique_ptr<SealedWriter> w(new SealedWriter());
  w->path_ = path;
  w->tmp_ = path;
  w->tmp_ += ".tmp";
  const int fd = ::open(w->tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return os_error(errno, "cannot create " + w->tmp_.string() + ": " + std::strerror(errno));
  w->f_ = ::fdopen(fd, "wb");
  if (!w->f_) {
    ::close(fd);
    return io_error("cannot open " + w->tmp_.string());
  }
  unsigned char header[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
  crypto_secretstream_xchacha20poly1305_init_push(&w->st_, header, key.bytes.data());
  if (std::fwrite(kMagic, 1, sizeof kMagic, w->f_) != sizeof kMagic || std::fwrite(header, 1, sizeof header, w->f_) != sizeof header)
    return io_error("cannot write " + w->tmp_.string());
  w->buf_.reserve(kChunk);
  return w;
}

SealedWriter::~SealedWriter() {
  if (!buf_.empty()) sodium_memzero(buf_.data(), buf_.size());
  if (f_) std::fclose(f_);
  if (!done_) {
    std::error_code ec;
    std::filesystem::remove(tmp_, ec);
  }
}

Status SealedWriter::flush(bool final) {
  out_.resize(buf_.size() + crypto_secretstream_xchacha20poly1305_ABYTES);
  unsigned long long clen = 0;
  crypto_secretstream_xchacha20poly1305_push(&st_, out_.data(), &clen, buf_.data(), buf_.size(), reinterpret_cast<const unsigned char*>(kMagic),
                                             sizeof kMagic, final ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0);
  const uint32_t len = static_cast<uint32_t>(clen);
  sodium_memzero(buf_.data(), buf_.size());
  buf_.clear();
  if (std::fwrite(&len, 4, 1, f_) != 1 || std::fwrite(out_.data(), 1, clen, f_) != clen)
    return io_error("cannot write " + tmp_.string());
  return Status::ok();
}

Status SealedWriter::write(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  while (n > 0) {
    const size_t take = std::min(n, kChunk - buf_.size());
    buf_.insert(buf_.end(), b, b + take);
    b += take;
    n -= take;
    if (buf_.size() == kChunk) FV_RETURN_IF_ERROR(flush(false));
  }
  return Status::ok();
}

Status SealedWriter::finish() {
  FV_RETURN_IF_ERROR(flush(true));
  if (std::fflush(f_) != 0 || ::fsync(::fileno(f_)) != 0) return io_error("cannot flush " + tmp_.string());
  std::fclose(f_);
  f_ = nullptr;
  std::error_code ec;
  std::filesystem::rename(tmp_, path_, ec);
  if (ec) return io_error("cannot rename " + tmp_.string() + ": " + ec.message());
  done_ = true;
  return Status::ok();
}

Result<std::unique_ptr<SealedReader>> SealedReader::open(const std::filesystem::path& path, const IndexKey& key) {
  if (sodium_init() < 0) return internal_error("libsodium failed to initialise");
  std::unique_ptr<SealedReader> r(new SealedReader());
  r->f_ = std::fopen(path.c_str(), "rb");
  if (!r->f_) return not_found("cannot open index file " + path.string() + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(::fileno(r->f_), &st) != 0 || !S_ISREG(st.st_mode)) return corrupt_data(path.string() + " is not a regular file");
  r->file_size_ = static_cast<uint64_t>(st.st_size);
  char magic[8];
  unsigned char header[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
  if (std::fread(magic, 1, 8, r->f_) != 8 || std::memcmp(magic, kMagic, 8) != 0)
    return corrupt_data(path.string() + " is not a facevault index file");
  if (std::fread(header, 1, sizeof header, r->f_) != sizeof header) return corrupt_data(path.string() + ": truncated header");
  if (crypto_secretstream_xchacha20poly1305_init_pull(&r->st_, header, key.bytes.data()) != 0)
    return corrupt_data(path.string() + ": invalid header");
  return r;
}

SealedReader::~SealedReader() {
  if (!buf_.empty()) sodium_memzero(buf_.data(), buf_.size());
  if (f_) std::fclose(f_);
}

Status SealedReader::next_chunk() {
  if (final_) return corrupt_data("index file: read past the end of the data");
  uint32_t len = 0;
  if (std::fread(&len, 4, 1, f_) != 1) return corrupt_data("index file is truncated");
  if (len < crypto_secretstream_xchacha20poly1305_ABYTES || len > kChunk + crypto_secretstream_xchacha20poly1305_ABYTES)
    return corrupt_data("index file: bad chunk length");
  in_.resize(len);
  if (std::fread(in_.data(), 1, len, f_) != len) return corrupt_data("index file is truncated");
  if (!buf_.empty()) sodium_memzero(buf_.data(), buf_.size());
  buf_.resize(len - crypto_secretstream_xchacha20poly1305_ABYTES);
  unsigned long long mlen = 0;
  unsigned char tag = 0;
  if (crypto_secretstream_xchacha20poly1305_pull(&st_, buf_.data(), &mlen, &tag, in_.data(), len,
                                                 reinterpret_cast<const unsigned char*>(kMagic), sizeof kMagic) != 0)
    return corrupt_data("index file does not authenticate (wrong key or modified bytes)");
  buf_.resize(mlen);
  pos_ = 0;
  final_ = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
  return Status::ok();
}

Status SealedReader::read(void* p, size_t n) {
  auto* b = static_cast<uint8_t*>(p);
  while (n > 0) {
    if (pos_ == buf_.size()) FV_RETURN_IF_ERROR(next_chunk());
    const size_t take = std::min(n, buf_.size() - pos_);
    std::memcpy(b, buf_.data() + pos_, take);
    pos_ += take;
    b += take;
    n -= take;
  }
  return Status::ok();
}

uint64_t SealedReader::bytes_left() const {
  const off_t at = ::ftello(f_);
  const uint64_t in_file = at >= 0 && static_cast<uint64_t>(at) <= file_size_ ? file_size_ - static_cast<uint64_t>(at) : 0;
  return (buf_.size() - pos_) + in_file;
}

Status SealedReader::expect_end() {
  if (pos_ != buf_.size() || !final_) return corrupt_data("index file: unexpected data after the index (or truncated)");
  char c;
  if (std::fread(&c, 1, 1, f_) != 0) return corrupt_data("index file: trailing bytes");
  return Status::ok();
}

}  // namespace fv::index
