// A real NATS cluster for tests: N nats-server processes with JetStream on loopback, each with
// its own ports and store directory under a temp directory removed at the end. Servers are
// started with fork/exec and stopped by pid; each dies with the thread that started it
// (PR_SET_PDEATHSIG), so a test killed by ctest leaves no server behind. Start and stop a
// cluster from one thread that outlives it (GoogleTest's main thread).
// nats-server is a required dependency (scripts/setup-deps.sh; Debian puts it in /usr/sbin);
// FV_NATS_SERVER names another binary.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nats/nats.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace fv::test {

class NatsTestCluster {
 public:
  // Starts `n` servers (n = 1: a single JetStream server, no cluster flags). Check
  // wait_ready() before use: the meta leader election takes a moment.
  explicit NatsTestCluster(int n, std::filesystem::path base = std::filesystem::temp_directory_path())
      : NatsTestCluster(n, std::move(base), false) {}

  // Starts `n` servers on the stores a cluster left in `root` (its root(), kept with
  // FV_KEEP_NATS_DIRS): names n0, n1, … as before, new ports (the servers know each other by
  // name). What the servers find there stays there at the end.
  static std::unique_ptr<NatsTestCluster> on_existing(int n, const std::filesystem::path& root) {
    return std::unique_ptr<NatsTestCluster>(new NatsTestCluster(n, root, true));
  }

 private:
  NatsTestCluster(int n, std::filesystem::path base, bool existing) : keep_(existing) {
    bin_ = server_binary();
    if (bin_.empty()) {
      ADD_FAILURE() << "nats-server is missing (looked for $FV_NATS_SERVER, /usr/sbin/nats-server, "
                    << "/usr/bin/nats-server): it is required for cluster tests, run scripts/setup-deps.sh";
      return;
    }
    static int counter = 0;
    root_ = existing ? base : base / ("fv_nats_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    if (existing && !std::filesystem::is_directory(root_ / "n0" / "store")) {
      ADD_FAILURE() << "no NATS store under " << root_ << " (expected n0/store, …)";
      return;
    }
    std::filesystem::create_directories(root_);
    const std::vector<int> ports = free_ports(2 * n);
    servers_.resize(n);
    for (int i = 0; i < n; ++i) {
      Server& s = servers_[i];
      s.name = std::to_string(i).insert(0, 1, 'n');  // "n0", ... (no "n" + string: GCC 12 -Wrestrict false alarm)
      s.port = ports[2 * i];
      s.cluster_port = ports[2 * i + 1];
      s.dir = root_ / s.name;
      s.store = s.dir / "store";
      std::filesystem::create_directories(s.store);
    }
    for (int i = 0; i < n; ++i) start(i);
  }

 public:
  ~NatsTestCluster() {
    for (auto& s : servers_) if (s.pid > 0) ::kill(s.pid, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (auto& s : servers_) {
      while (s.pid > 0 && std::chrono::steady_clock::now() < deadline) {
        if (::waitpid(s.pid, nullptr, WNOHANG) == s.pid) s.pid = -1;
        else std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (s.pid > 0) kill_pid(s);
    }
    if (!root_.empty() && !keep_ && std::getenv("FV_KEEP_NATS_DIRS") == nullptr) {
      std::error_code ec;
      std::filesystem::remove_all(root_, ec);
    }
  }
  NatsTestCluster(const NatsTestCluster&) = delete;
  NatsTestCluster& operator=(const NatsTestCluster&) = delete;

  int size() const { return static_cast<int>(servers_.size()); }
  std::string url(int i) const { return "nats://127.0.0.1:" + std::to_string(servers_.at(i).port); }
  std::vector<std::string> urls() const {
    std::vector<std::string> out;
    for (int i = 0; i < size(); ++i) out.push_back(url(i));
    return out;
  }
  const std::string& name(int i) const { return servers_.at(i).name; }  // server name: "n0", ...
  int index_of(const std::string& server_name) const {
    for (int i = 0; i < size(); ++i) if (servers_[i].name == server_name) return i;
    return -1;
  }
  const std::filesystem::path& store_dir(int i) const { return servers_.at(i).store; }
  const std::filesystem::path& root() const { return root_; }
  pid_t pid(int i) const { return servers_.at(i).pid; }
  bool running(int i) const { return servers_.at(i).pid > 0; }

  // SIGKILL, and reaped: no chance to flush or say goodbye to the cluster.
  void kill(int i) { kill_pid(servers_.at(i)); }
  // Starts server i again with the same ports, name and store (after kill()).
  void restart(int i) {
    if (servers_.at(i).pid > 0) kill(i);
    start(i);
  }

  // Bounded polling until every running server answers a JetStream request and, when they
  // form a cluster, a stream with min(3, N) replicas can be created (the meta leader is
  // elected and enough peers are known). The probe stream is deleted again.
  bool wait_ready(int timeout_ms) {
    if (servers_.empty()) return false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (int i = 0; i < size(); ++i) {
      if (!running(i)) continue;
      bool ok = false;
      while (!ok && std::chrono::steady_clock::now() < deadline) {
        ok = js_request_ok(url(i), i == first_running());
        if (!ok) std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      if (!ok) return false;
    }
    return true;
  }

  // The index of the server leading `stream`'s Raft group, or -1 (none now / no such stream).
  int stream_leader(const std::string& stream) {
    int leader = -1;
    with_js(running_urls(), [&](jsCtx* js) {
      jsStreamInfo* si = nullptr;
      if (js_GetStreamInfo(&si, js, stream.c_str(), nullptr, nullptr) != NATS_OK) return false;
      if (si->Cluster != nullptr && si->Cluster->Leader != nullptr) leader = index_of(si->Cluster->Leader);
      else if (size() == 1) leader = 0;
      jsStreamInfo_Destroy(si);
      return true;
    });
    return leader;
  }

  // True when server i is a current replica of `stream` with no lag (it has caught up).
  bool replica_current(const std::string& stream, int i) {
    bool current = false;
    with_js(running_urls(), [&](jsCtx* js) {
      jsStreamInfo* si = nullptr;
      if (js_GetStreamInfo(&si, js, stream.c_str(), nullptr, nullptr) != NATS_OK) return false;
      if (si->Cluster != nullptr) {
        if (si->Cluster->Leader != nullptr && name(i) == si->Cluster->Leader) current = true;
        for (int r = 0; r < si->Cluster->ReplicasLen; ++r) {
          const jsPeerInfo* p = si->Cluster->Replicas[r];
          if (p->Name != nullptr && name(i) == p->Name) current = p->Current && !p->Offline && p->Lag == 0;
        }
      }
      jsStreamInfo_Destroy(si);
      return true;
    });
    return current;
  }

 private:
  struct Server {
    std::string name;
    int port = 0;
    int cluster_port = 0;
    std::filesystem::path dir;
    std::filesystem::path store;
    pid_t pid = -1;
  };

  // Debian's package installs it in /usr/sbin.
  static std::string server_binary() {
    const char* env = std::getenv("FV_NATS_SERVER");
    if (env != nullptr && *env != '\0') return std::filesystem::exists(env) ? env : "";
    for (const char* p : {"/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"}) {
      if (std::filesystem::exists(p)) return p;
    }
    return "";
  }

  static std::vector<int> free_ports(int count) {
    // All sockets stay open until every port is chosen, so no port is handed out twice.
    std::vector<int> fds, ports;
    for (int i = 0; i < count; ++i) {
      const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = 0;
      socklen_t len = sizeof a;
      if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
          ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        ADD_FAILURE() << "no free loopback port";
      }
      fds.push_back(fd);
      ports.push_back(ntohs(a.sin_port));
    }
    for (int fd : fds) ::close(fd);
    return ports;
  }

  void start(int i) {
    Server& s = servers_.at(i);
    std::vector<std::string> args = {bin_, "-js", "-sd", s.store.string(), "-a", "127.0.0.1",
                                      "-p", std::to_string(s.port), "-n", s.name};
    if (size() > 1) {
      std::string routes;
      for (int j = 0; j < size(); ++j) {
        if (j == i) continue;
        if (!routes.empty()) routes += ',';
        routes += "nats://127.0.0.1:" + std::to_string(servers_[j].cluster_port);
      }
      args.insert(args.end(), {"--cluster_name", "fvtest", "--cluster",
                               "nats://127.0.0.1:" + std::to_string(s.cluster_port), "--routes", routes});
    }
    // Everything the child needs is built before fork: after it, only async-signal-safe calls.
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string log = (s.dir / "server.log").string();
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::close(fd);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    if (pid < 0) ADD_FAILURE() << "fork failed for nats-server " << s.name;
    s.pid = pid;
  }

  static void kill_pid(Server& s) {
    if (s.pid <= 0) return;
    ::kill(s.pid, SIGKILL);
    ::waitpid(s.pid, nullptr, 0);
    s.pid = -1;
  }

  int first_running() const {
    for (int i = 0; i < size(); ++i) if (running(i)) return i;
    return -1;
  }

  std::vector<std::string> running_urls() const {
    std::vector<std::string> out;
    for (int i = 0; i < size(); ++i) if (running(i)) out.push_back(url(i));
    return out;
  }

  // Connects to one of `urls`, runs f(js) once; false when connecting or f fails.
  template <class F>
  static bool with_js(const std::vector<std::string>& urls, F&& f) {
    std::vector<const char*> servers;
    for (const auto& u : urls) servers.push_back(u.c_str());
    natsOptions* opts = nullptr;
    natsConnection* nc = nullptr;
    jsCtx* js = nullptr;
    bool ok = !servers.empty() && natsOptions_Create(&opts) == NATS_OK &&
              natsOptions_SetServers(opts, servers.data(), static_cast<int>(servers.size())) == NATS_OK &&
              natsOptions_SetTimeout(opts, 1000) == NATS_OK && natsOptions_SetMaxReconnect(opts, 0) == NATS_OK &&
              natsConnection_Connect(&nc, opts) == NATS_OK;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 2000;
    ok = ok && natsConnection_JetStream(&js, nc, &jo) == NATS_OK && f(js);
    if (js != nullptr) jsCtx_Destroy(js);
    if (nc != nullptr) natsConnection_Destroy(nc);
    if (opts != nullptr) natsOptions_Destroy(opts);
    return ok;
  }

  bool js_request_ok(const std::string& u, bool probe_stream) {
    const int replicas = size() < 3 ? size() : 3;
    return with_js({u}, [&](jsCtx* js) {
      jsAccountInfo* ai = nullptr;
      if (js_GetAccountInfo(&ai, js, nullptr, nullptr) != NATS_OK) return false;
      jsAccountInfo_Destroy(ai);
      if (!probe_stream) return true;
      const std::string name = "fv-ready-probe";
      const std::string subject = "fv.ready-probe." + std::to_string(::getpid());
      const char* subjects[] = {subject.c_str()};
      jsStreamConfig cfg;
      jsStreamConfig_Init(&cfg);
      cfg.Name = name.c_str();
      cfg.Subjects = subjects;
      cfg.SubjectsLen = 1;
      cfg.Storage = js_MemoryStorage;
      cfg.Replicas = replicas;
      jsStreamInfo* si = nullptr;
      if (js_AddStream(&si, js, &cfg, nullptr, nullptr) != NATS_OK) return false;
      jsStreamInfo_Destroy(si);
      return js_DeleteStream(js, name.c_str(), nullptr, nullptr) == NATS_OK;
    });
  }

  bool keep_ = false;
  std::string bin_;
  std::filesystem::path root_;
  std::vector<Server> servers_;
};

}  // namespace fv::test
