// failing_io: an LD_PRELOAD shim that makes file writes fail like a full or failing disk, for
// the fault-injection tests (tests/fault/fault_injection_test.cpp).
//
// It counts the "faultable" calls made on files under one directory and fails the Nth one:
//   FV_FAULT_DIR      absolute directory whose files are watched (the vault); unset: inert
//   FV_FAULT_AT       N >= 1: the Nth faultable call fails; 0 (default): count only
//   FV_FAULT_ERRNO    ENOSPC (default) or EIO
//   FV_FAULT_PERSIST  1: every faultable call from the Nth on fails (a disk that stays full);
//                     0 (default): only the Nth (a transient error)
//   FV_FAULT_REPORT   a file (outside the watched directory) that receives, appended, one
//                     line "fault N errno func path" per injected fault and, at exit,
//                     "count C" with the number of faultable calls the process made
//   FV_FAULT_TRACE    1: also one line "call N func path" per faultable call (the driver
//                     picks which N to fault from this trace of a clean run)
// Faultable calls: open/openat/creat with O_CREAT of a path under the directory, and
// write, pwrite, pwrite64, writev, pwritev, fsync, fdatasync, ftruncate, fallocate and
// posix_fallocate on a descriptor opened under it (descriptors are tracked from open to
// close).
// Writes through shared memory (SQLite's -shm file is mmap'ed) cannot be faulted here, and
// stdio writes (fwrite) do not go through the interposed symbols (glibc calls its internal
// write); nothing in the vault writes through stdio.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FD 65536

static char g_dir[4096];
static size_t g_dir_len;
static long g_at;
static int g_errno = ENOSPC;
static int g_persist;
static int g_trace;
static char g_report[4096];
static atomic_long g_count;
static atomic_uchar g_tracked[MAX_FD];
static char* g_paths[MAX_FD];

static void report(const char* line) {
  if (!g_report[0]) return;
  const int fd = (int)syscall(SYS_openat, AT_FDCWD, g_report, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return;
  (void)syscall(SYS_write, fd, line, strlen(line));
  (void)syscall(SYS_close, fd);
}

__attribute__((constructor)) static void init(void) {
  const char* d = getenv("FV_FAULT_DIR");
  if (d && *d && strlen(d) < sizeof g_dir - 1) {
    strcpy(g_dir, d);
    g_dir_len = strlen(g_dir);
    while (g_dir_len > 1 && g_dir[g_dir_len - 1] == '/') g_dir[--g_dir_len] = 0;
  }
  const char* at = getenv("FV_FAULT_AT");
  g_at = at ? atol(at) : 0;
  const char* e = getenv("FV_FAULT_ERRNO");
  if (e && strcmp(e, "EIO") == 0) g_errno = EIO;
  const char* p = getenv("FV_FAULT_PERSIST");
  g_persist = p && strcmp(p, "1") == 0;
  const char* t = getenv("FV_FAULT_TRACE");
  g_trace = t && strcmp(t, "1") == 0;
  const char* r = getenv("FV_FAULT_REPORT");
  if (r && strlen(r) < sizeof g_report) strcpy(g_report, r);
}

__attribute__((destructor)) static void fini(void) {
  if (!g_dir_len) return;
  char line[64];
  snprintf(line, sizeof line, "count %ld\n", atomic_load(&g_count));
  report(line);
}

static int under_dir(const char* path) {
  if (!g_dir_len || !path || path[0] != '/') return 0;
  if (strncmp(path, g_dir, g_dir_len) != 0) return 0;
  return path[g_dir_len] == 0 || path[g_dir_len] == '/';
}

// Counts one faultable call; returns 1 when it must fail (errno is then set).
static int fault(const char* func, const char* path) {
  const long n = atomic_fetch_add(&g_count, 1) + 1;
  if (g_trace) {
    char line[4400];
    snprintf(line, sizeof line, "call %ld %s %s\n", n, func, path ? path : "?");
    report(line);
  }
  if (g_at <= 0 || n < g_at || (n > g_at && !g_persist)) return 0;
  char line[4400];
  snprintf(line, sizeof line, "fault %ld %s %s %s\n", n, g_errno == EIO ? "EIO" : "ENOSPC", func, path ? path : "?");
  report(line);
  errno = g_errno;
  return 1;
}

static int fd_fault(int fd, const char* func) {
  if (fd < 0 || fd >= MAX_FD || !atomic_load(&g_tracked[fd])) return 0;
  return fault(func, g_paths[fd]);
}

static void track(int fd, const char* path) {
  if (fd < 0 || fd >= MAX_FD) return;
  if (under_dir(path)) {
    char* old = g_paths[fd];
    g_paths[fd] = strdup(path);
    free(old);
    atomic_store(&g_tracked[fd], 1);
  } else {
    atomic_store(&g_tracked[fd], 0);
  }
}

#define REAL(name, ret, args)                                 \
  static ret(*real_##name) args;                              \
  if (!real_##name) real_##name = (ret(*) args)dlsym(RTLD_NEXT, #name)

static int open_common(const char* func, const char* path, int flags) {
  return (flags & O_CREAT) && under_dir(path) && fault(func, path);
}

int open(const char* path, int flags, ...) {
  REAL(open, int, (const char*, int, ...));
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) { va_list a; va_start(a, flags); mode = va_arg(a, mode_t); va_end(a); }
  if (open_common("open", path, flags)) return -1;
  const int fd = real_open(path, flags, mode);
  track(fd, path);
  return fd;
}

int open64(const char* path, int flags, ...) {
  REAL(open64, int, (const char*, int, ...));
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) { va_list a; va_start(a, flags); mode = va_arg(a, mode_t); va_end(a); }
  if (open_common("open64", path, flags)) return -1;
  const int fd = real_open64(path, flags, mode);
  track(fd, path);
  return fd;
}

int __open_2(const char* path, int flags) { return open(path, flags); }
int __open64_2(const char* path, int flags) { return open64(path, flags); }

// Relative paths under a directory descriptor are not resolved: the vault code opens
// absolute paths (AT_FDCWD with an absolute path is handled).
int openat(int dirfd, const char* path, int flags, ...) {
  REAL(openat, int, (int, const char*, int, ...));
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) { va_list a; va_start(a, flags); mode = va_arg(a, mode_t); va_end(a); }
  if (open_common("openat", path, flags)) return -1;
  const int fd = real_openat(dirfd, path, flags, mode);
  track(fd, path);
  return fd;
}

int openat64(int dirfd, const char* path, int flags, ...) {
  REAL(openat64, int, (int, const char*, int, ...));
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) { va_list a; va_start(a, flags); mode = va_arg(a, mode_t); va_end(a); }
  if (open_common("openat64", path, flags)) return -1;
  const int fd = real_openat64(dirfd, path, flags, mode);
  track(fd, path);
  return fd;
}

int creat(const char* path, mode_t mode) { return open(path, O_CREAT | O_WRONLY | O_TRUNC, mode); }
int creat64(const char* path, mode_t mode) { return open64(path, O_CREAT | O_WRONLY | O_TRUNC, mode); }

int close(int fd) {
  REAL(close, int, (int));
  if (fd >= 0 && fd < MAX_FD) atomic_store(&g_tracked[fd], 0);
  return real_close(fd);
}

ssize_t write(int fd, const void* b, size_t n) {
  REAL(write, ssize_t, (int, const void*, size_t));
  if (fd_fault(fd, "write")) return -1;
  return real_write(fd, b, n);
}

ssize_t pwrite(int fd, const void* b, size_t n, off_t off) {
  REAL(pwrite, ssize_t, (int, const void*, size_t, off_t));
  if (fd_fault(fd, "pwrite")) return -1;
  return real_pwrite(fd, b, n, off);
}

ssize_t pwrite64(int fd, const void* b, size_t n, off64_t off) {
  REAL(pwrite64, ssize_t, (int, const void*, size_t, off64_t));
  if (fd_fault(fd, "pwrite64")) return -1;
  return real_pwrite64(fd, b, n, off);
}

ssize_t writev(int fd, const struct iovec* v, int n) {
  REAL(writev, ssize_t, (int, const struct iovec*, int));
  if (fd_fault(fd, "writev")) return -1;
  return real_writev(fd, v, n);
}

ssize_t pwritev(int fd, const struct iovec* v, int n, off_t off) {
  REAL(pwritev, ssize_t, (int, const struct iovec*, int, off_t));
  if (fd_fault(fd, "pwritev")) return -1;
  return real_pwritev(fd, v, n, off);
}

int fsync(int fd) {
  REAL(fsync, int, (int));
  if (fd_fault(fd, "fsync")) return -1;
  return real_fsync(fd);
}

int fdatasync(int fd) {
  REAL(fdatasync, int, (int));
  if (fd_fault(fd, "fdatasync")) return -1;
  return real_fdatasync(fd);
}

int ftruncate(int fd, off_t len) {
  REAL(ftruncate, int, (int, off_t));
  if (fd_fault(fd, "ftruncate")) return -1;
  return real_ftruncate(fd, len);
}

int ftruncate64(int fd, off64_t len) {
  REAL(ftruncate64, int, (int, off64_t));
  if (fd_fault(fd, "ftruncate64")) return -1;
  return real_ftruncate64(fd, len);
}

int fallocate(int fd, int mode, off_t off, off_t len) {
  REAL(fallocate, int, (int, int, off_t, off_t));
  if (fd_fault(fd, "fallocate")) return -1;
  return real_fallocate(fd, mode, off, len);
}

int fallocate64(int fd, int mode, off64_t off, off64_t len) {
  REAL(fallocate64, int, (int, int, off64_t, off64_t));
  if (fd_fault(fd, "fallocate64")) return -1;
  return real_fallocate64(fd, mode, off, len);
}

// posix_fallocate returns the error number instead of setting errno.
int posix_fallocate(int fd, off_t off, off_t len) {
  REAL(posix_fallocate, int, (int, off_t, off_t));
  if (fd_fault(fd, "posix_fallocate")) return errno;
  return real_posix_fallocate(fd, off, len);
}

int posix_fallocate64(int fd, off64_t off, off64_t len) {
  REAL(posix_fallocate64, int, (int, off64_t, off64_t));
  if (fd_fault(fd, "posix_fallocate64")) return errno;
  return real_posix_fallocate64(fd, off, len);
}
