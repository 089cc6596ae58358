#include "vault/folder_erase.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace fs = std::filesystem;

namespace fv::vault {
namespace {

Status overwrite(const fs::path& p) {
  const int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return os_error(errno, "open " + p.string() + ": " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  const off_t size = ::lseek(fd, 0, SEEK_END);
  if (size < 0 || ::lseek(fd, 0, SEEK_SET) != 0) return os_error(errno, "seek " + p.string() + ": " + std::strerror(errno));
  const std::vector<char> zeros(64 << 10, 0);
  for (off_t done = 0; done < size;) {
    const size_t n = static_cast<size_t>(std::min<off_t>(static_cast<off_t>(zeros.size()), size - done));
    const ssize_t w = ::write(fd, zeros.data(), n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return os_error(errno, "overwrite " + p.string() + ": " + std::strerror(errno));
    done += w;
  }
  if (::fsync(fd) != 0) return os_error(errno, "fsync " + p.string() + ": " + std::strerror(errno));
  return Status::ok();
}

}  // namespace

Status erase_folder(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return Status::ok();
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code e;
    if (it->is_symlink(e) || !it->is_regular_file(e)) continue;
    FV_RETURN_IF_ERROR(overwrite(it->path()));
  }
  if (ec) return io_error("list " + dir.string() + ": " + ec.message());
  fs::remove_all(dir, ec);
  if (ec) return io_error("remove " + dir.string() + ": " + ec.message());
  return Status::ok();
}

}  // namespace fv::vault
