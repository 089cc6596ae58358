// `facevault serve`: the HTTP API and web UI over the vault, until SIGINT or SIGTERM.
#include <signal.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/grammar.h"
#include "cli/vault_common.h"
#include "cluster/node.h"
#include "server/server.h"
#include "service/cluster_service.h"

namespace fv::cli {
namespace {

// --expire-every: "3600", "3600s", "5m", "1h", "1d" → seconds; 0 (in any unit) disables.
Result<std::chrono::seconds> parse_duration(const std::string& text) {
  const auto bad = [&] {
    return invalid_argument("--expire-every takes seconds or a number with s, m, h or d (30s, 5m, 1h; 0 disables), not '" +
                            text + "'");
  };
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 9 || text.size() - digits > 1) return bad();
  const long long n = std::stoll(text.substr(0, digits));
  const char unit = digits < text.size() ? text[digits] : 's';
  const long long mult = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : unit == 'd' ? 86400 : 0;
  if (mult == 0) return bad();
  if (n * mult > 366LL * 86400) return invalid_argument("--expire-every is at most 366 days");
  return std::chrono::seconds(n * mult);
}

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

void add_serve(CLI::App& app, int& exit_code) {
  struct A {
    std::string vault, listen = "127.0.0.1:8080", tls_cert, tls_key, web_root, expire_every = "1h";
    std::string cluster, node;
    int threads = 16, pipelines = 0;
    double max_upload_mb = 16, rate = 10, burst = 30;
    bool no_public_optout = false, quiet = false, json = false;
  };
  auto a = std::make_shared<A>();
  auto* cmd = app.add_subcommand("serve", "the HTTP/JSON API (/v1, OpenAPI at /v1/openapi.json) and the web UI");
  add_vault_dir_option(cmd, a->vault);
  cmd->add_option("--listen", a->listen, "HOST:PORT to listen on (default 127.0.0.1:8080; port 0 picks a free one)");
  cmd->add_option("--tls-cert", a->tls_cert, "serve HTTPS with this PEM certificate (with --tls-key)");
  cmd->add_option("--tls-key", a->tls_key, "PEM private key for --tls-cert");
  cmd->add_option("--web-root", a->web_root, "serve the UI from this folder instead of the copy built into the binary");
  // --http-threads: elsewhere --threads counts face pipelines, which serve calls --pipelines;
  // --threads stays as an alias of the HTTP workers for the scripts that use it.
  cmd->add_option("--http-threads,--threads", a->threads, "HTTP worker threads (default 16)")->check(CLI::Range(2, 256));
  cmd->add_option("--pipelines", a->pipelines, "face pipelines working concurrently (default: cores, at most 4)")
      ->check(CLI::Range(0, 64));
  cmd->add_option("--max-upload-mb", a->max_upload_mb, "largest request with an image, MiB (default 16)")
      ->check(CLI::Range(0.1, 64.0));
  cmd->add_option("--rate", a->rate, "requests per second per API key (default 10; 0: no limit)")->check(CLI::Range(0.0, 1e6));
  cmd->add_option("--burst", a->burst, "burst size per API key (default 30)")->check(CLI::Range(1.0, 1e6));
  cmd->add_option("--expire-every", a->expire_every,
                  "run retention expiry (as `facevault expire`, audited as scheduler:retention) this often: seconds, or "
                  "30s, 5m, 1h, 1d (default 1h; 0 disables; the first run comes one interval after start)");
  cmd->add_option("--cluster", a->cluster,
                  "serve as a node of the cluster on these NATS servers (nats://HOST:PORT,…; docs/cluster.md); "
                  "--vault is then the node's folder (its local vaults)");
  cmd->add_option("--node", a->node, "this node's name in the cluster (letters, digits, - and _; with --cluster)");
  cmd->add_flag("--no-public-optout", a->no_public_optout, "POST /v1/optout only with an API key (no public form)");
  cmd->add_flag("--quiet", a->quiet, "no access log on stderr");
  cmd->add_flag("--json", a->json, "announce the listening address as one JSON object {url, host, port, tls, vault}");
  set_examples(cmd, {"facevault serve --vault var/vault --listen 127.0.0.1:8080",
                     "facevault serve --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem --pipelines 4",
                     "facevault serve --listen 127.0.0.1:0 --json",
                     "facevault serve --vault var/vault --expire-every 15m",
                     "facevault serve --cluster nats://127.0.0.1:4222 --node n1 --vault var/n1 --listen 127.0.0.1:8081"});
  cmd->callback([a, &exit_code] {
    server::ServerOptions o;
    o.vault_dir = vault_dir(a->vault);
    const auto colon = a->listen.rfind(':');
    if (colon == std::string::npos) { exit_code = fail(invalid_argument("--listen takes HOST:PORT"), kExitUsage); return; }
    o.host = a->listen.substr(0, colon);
    if (o.host.size() > 2 && o.host.front() == '[' && o.host.back() == ']') o.host = o.host.substr(1, o.host.size() - 2);
    try {
      o.port = std::stoi(a->listen.substr(colon + 1));
    } catch (...) {
      o.port = -1;
    }
    if (o.port < 0 || o.port > 65535) { exit_code = fail(invalid_argument("bad port in --listen " + a->listen), kExitUsage); return; }
    o.tls_cert = a->tls_cert;
    o.tls_key = a->tls_key;
    o.web_root = a->web_root;
    o.http_threads = a->threads;
    o.pipelines = a->pipelines;
    o.max_upload_bytes = static_cast<size_t>(a->max_upload_mb * (1 << 20));
    o.rate_per_s = a->rate;
    o.rate_burst = a->burst;
    o.public_optout = !a->no_public_optout;
    o.access_log = !a->quiet;
    auto every = parse_duration(a->expire_every);
    if (!every.is_ok()) { exit_code = fail(every.status(), kExitUsage); return; }
    o.retention_interval = *every;
    if (!is_loopback(o.host) && o.tls_cert.empty())
      std::cerr << "facevault serve: warning: listening on " << o.host
                << " without TLS: API keys and photos would cross the network in clear text\n";
    // SIGINT/SIGTERM are taken by this thread with sigwait; the server's threads never see them.
    if (a->cluster.empty() != a->node.empty()) {
      exit_code = fail(invalid_argument("--cluster and --node go together"), kExitUsage);
      return;
    }
    // Blocked before any thread starts (NATS's included): sigwait below takes them.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    // Cluster mode: the node (its NATS connection, its hosted streams applied into local
    // vaults) outlives the server, which is destroyed first.
    std::unique_ptr<cluster::ClusterNode> node;
    if (!a->cluster.empty()) {
      cluster::NodeOptions no;
      for (size_t at = 0; at <= a->cluster.size();) {
        const size_t comma = std::min(a->cluster.find(',', at), a->cluster.size());
        if (comma > at) no.servers.push_back(a->cluster.substr(at, comma - at));
        at = comma + 1;
      }
      no.name = a->node;
      no.dir = o.vault_dir;
      if (o.port > 0) no.http = (o.tls_cert.empty() ? "http://" : "https://") + o.host + ":" + std::to_string(o.port);
      auto started = cluster::ClusterNode::start(std::move(no));
      if (!started.is_ok()) { exit_code = fail(started.status()); return; }
      node = std::move(*started);
      o.open_api = [&node](service::ServiceOptions so) -> Result<std::unique_ptr<service::Api>> {
        FV_ASSIGN_OR_RETURN(auto cs, service::ClusterService::open(*node, std::move(so)));
        return std::unique_ptr<service::Api>(std::move(cs));
      };
    }
    auto srv = server::Server::create(o);
    if (!srv.is_ok()) { exit_code = fail(srv.status()); return; }
    if (auto st = (*srv)->start(); !st.is_ok()) { exit_code = fail(st); return; }
    const std::string scheme = (*srv)->tls() ? "https" : "http";
    if (a->json) {
      const std::string host = o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host;
      print_json({{"url", scheme + "://" + host + ":" + std::to_string((*srv)->port()) + "/"}, {"host", o.host},
                  {"port", (*srv)->port()}, {"tls", (*srv)->tls()}, {"vault", o.vault_dir.string()},
                  {"node", a->node},
                  {"expire_every_seconds", o.retention_interval.count()}});
      std::cout.flush();
    } else {
      std::printf("facevault serve: %s://%s:%d/ (vault %s); API under /v1, OpenAPI at /v1/openapi.json; Ctrl-C stops\n",
                  scheme.c_str(), o.host.c_str(), (*srv)->port(), o.vault_dir.c_str());
      if (o.retention_interval.count() > 0)
        std::printf("facevault serve: retention expiry every %lld s (--expire-every; last run at /v1/retention/last)\n",
                    static_cast<long long>(o.retention_interval.count()));
      else
        std::printf("facevault serve: scheduled retention expiry is off (--expire-every 0): run `facevault expire`\n");
    }
    std::fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    std::fprintf(stderr, "facevault serve: stopping (signal %d)\n", sig);
    (*srv)->stop();
    exit_code = kExitOk;
  });
}

}  // namespace

void add_serve_commands(CLI::App& app, int& exit_code) { add_serve(app, exit_code); }

}  // namespace fv::cli
