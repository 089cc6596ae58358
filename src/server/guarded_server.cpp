#include "server/guarded_server.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

namespace fv::server {
namespace {

using Clock = std::chrono::steady_clock;

// Slow clients (slowloris). cpp-httplib 0.11 bounds each read of a request by the read
// timeout, but not the request as a whole: a client sending a byte every few seconds keeps
// its connection, and one of the HTTP threads, as long as it likes. GuardedServer runs the
// library's connection loop (keep-alive wait, then one process_request per request) over
// this stream, whose reads also stop at a deadline per request: request_timeout_s after the
// request's first byte, a request not yet read is refused and the connection closed. Writes
// and the handler's own time are not bounded by it. (security_test_limits SlowClients.)
class DeadlineStream final : public httplib::Stream {
 public:
  DeadlineStream(int sock, int read_timeout_s, int write_timeout_s)
      : sock_(sock), read_ms_(read_timeout_s * 1000), write_ms_(write_timeout_s * 1000) {}
  void start_request(Clock::time_point deadline) { deadline_ = deadline; }
  bool has_buffered() const { return off_ < len_; }

  bool is_readable() const override { return wait(POLLIN, read_wait_ms()); }
  bool is_writable() const override { return wait(POLLOUT, write_ms_); }
  ssize_t read(char* ptr, size_t size) override {
    if (off_ < len_) {
      const size_t n = std::min(size, len_ - off_);
      std::memcpy(ptr, buf_ + off_, n);
      off_ += n;
      return static_cast<ssize_t>(n);
    }
    if (Clock::now() >= deadline_ || !is_readable()) return -1;
    if (size >= sizeof buf_) return retry([&] { return ::recv(sock_, ptr, size, 0); });
    const ssize_t n = retry([&] { return ::recv(sock_, buf_, sizeof buf_, 0); });
    if (n <= 0) return n;
    off_ = 0;
    len_ = static_cast<size_t>(n);
    return read(ptr, size);
  }
  ssize_t write(const char* ptr, size_t size) override {
    if (!is_writable()) return -1;
    return retry([&] { return ::send(sock_, ptr, size, MSG_NOSIGNAL); });
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { address(true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address(false, ip, port); }
  socket_t socket() const override { return sock_; }

 private:
  template <class F>
  static ssize_t retry(F f) {
    ssize_t n;
    do n = f();
    while (n < 0 && errno == EINTR);
    return n;
  }
  int read_wait_ms() const {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
    return static_cast<int>(std::clamp<long long>(left, 0, read_ms_));
  }
  bool wait(short events, int ms) const {
    pollfd p{sock_, events, 0};
    int r;
    do r = ::poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    return r > 0 && !(p.revents & (POLLERR | POLLNVAL));
  }
  void address(bool peer, std::string& ip, int& port) const {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if ((peer ? ::getpeername(sock_, reinterpret_cast<sockaddr*>(&a), &len)
              : ::getsockname(sock_, reinterpret_cast<sockaddr*>(&a), &len)) != 0)
      return;
    char text[INET6_ADDRSTRLEN] = {};
    if (a.ss_family == AF_INET) {
      auto* v4 = reinterpret_cast<sockaddr_in*>(&a);
      ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
      port = ntohs(v4->sin_port);
    } else if (a.ss_family == AF_INET6) {
      auto* v6 = reinterpret_cast<sockaddr_in6*>(&a);
      ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
      port = ntohs(v6->sin6_port);
    }
    ip = text;
  }
  int sock_, read_ms_, write_ms_;
  Clock::time_point deadline_ = Clock::time_point::max();
  char buf_[4096];
  size_t off_ = 0, len_ = 0;
};

class GuardedServer final : public httplib::Server {
 public:
  explicit GuardedServer(int request_timeout_s) : request_timeout_(std::chrono::seconds(std::max(1, request_timeout_s))) {}

 private:
  // The loop of cpp-httplib 0.11's process_server_socket, over a DeadlineStream.
  bool process_and_close_socket(socket_t sock) override {
    DeadlineStream strm(sock, static_cast<int>(read_timeout_sec_), static_cast<int>(write_timeout_sec_));
    bool ret = false;
    for (size_t count = keep_alive_max_count_; count > 0 && svr_sock_ != INVALID_SOCKET; --count) {
      // Keep-alive: the next request's first byte within keep_alive_timeout, or close.
      if (!strm.has_buffered()) {
        pollfd p{sock, POLLIN, 0};
        int r;
        do r = ::poll(&p, 1, static_cast<int>(keep_alive_timeout_sec_ * 1000));
        while (r < 0 && errno == EINTR);
        if (r <= 0 || (p.revents & (POLLERR | POLLNVAL))) break;
      }
      strm.start_request(Clock::now() + request_timeout_);
      bool closed = false;
      ret = process_request(strm, count == 1, closed, nullptr);
      if (!ret || closed) break;
    }
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return ret;
  }
  std::chrono::seconds request_timeout_;
};

}  // namespace

std::unique_ptr<httplib::Server> make_guarded_server(int request_timeout_s) {
  return std::make_unique<GuardedServer>(request_timeout_s);
}

}  // namespace fv::server
