// A child process for tests (a `facevault serve` node, say): fork/exec with its stdout and
// stderr in files, stopped by pid. As in nats_servers.h, the child dies with the thread that
// started it (PR_SET_PDEATHSIG), so a test killed by ctest leaves nothing behind: start and
// stop children from one thread that outlives them (GoogleTest's main thread).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fv::test {

class ChildProcess {
 public:
  // Starts args[0] (a path) with args; stdout goes to `out` (truncated), stderr is appended
  // to `err`. The child inherits the environment. nullptr when fork fails.
  static std::unique_ptr<ChildProcess> spawn(const std::vector<std::string>& args, const std::filesystem::path& out,
                                             const std::filesystem::path& err) {
    // Everything the child needs is built before fork: after it, only async-signal-safe calls.
    std::vector<std::string> copy = args;
    std::vector<char*> argv;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string out_s = out.string(), err_s = err.string();
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) return nullptr;
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      const int o = ::open(out_s.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      const int e = ::open(err_s.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (o >= 0) ::dup2(o, 1);
      if (e >= 0) ::dup2(e, 2);
      const int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull >= 0) ::dup2(devnull, 0);
      // Nothing of the test's (sockets, vault files) leaks into the child.
#ifdef SYS_close_range
      ::syscall(SYS_close_range, 3u, ~0u, 0u);
#else
      for (int fd = 3; fd < 4096; ++fd) ::close(fd);
#endif
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    return std::unique_ptr<ChildProcess>(new ChildProcess(pid));
  }

  ~ChildProcess() { stop(10000); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Whether the child still runs (reaps it when it exited).
  bool running() {
    if (pid_ <= 0) return false;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      status_ = st;
      pid_ = -1;
      return false;
    }
    return true;
  }
  // The raw wait status once exited (WIFEXITED/WIFSIGNALED), or nullopt.
  std::optional<int> wait_status() const { return status_; }

  // SIGKILL, and reaped: no chance to flush or say goodbye.
  void kill_now() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    status_ = st;
    pid_ = -1;
  }

  // SIGTERM, then at most timeout_ms for it to exit, then SIGKILL. True when it exited on its own.
  bool stop(int timeout_ms) {
    if (pid_ <= 0) return true;
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      if (!running()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill_now();
    return false;
  }

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// The whole text of a file ("" when absent).
inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The first complete line the child wrote to `out`, polled until timeout_ms; nullopt when the
// child exited first or the time ran out.
inline std::optional<std::string> wait_first_line(ChildProcess& p, const std::filesystem::path& out, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const std::string text = read_text(out);
    if (const auto nl = text.find('\n'); nl != std::string::npos) return text.substr(0, nl);
    if (!p.running()) {  // it may have written the line just before exiting
      const std::string last = read_text(out);
      if (const auto nl = last.find('\n'); nl != std::string::npos) return last.substr(0, nl);
      return std::nullopt;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace fv::test
