// `facevault serve` (the HTTP API and web UI) and the API-key commands `facevault key create |
// revoke | list`, which join the existing `key` group (master key rotation) of cmd_vault.cpp.
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "server/server.h"
#include "service/service.h"
#include "vault/api_keys.h"
#include "vault/vault.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace fv::cli {
namespace {

std::string os_user() {
  if (const char* u = std::getenv("USER"); u && *u) return u;
  if (const passwd* pw = getpwuid(getuid())) return pw->pw_name;
  return "uid-" + std::to_string(getuid());
}

int fail(const Status& st, int code = kExitFailure) {
  std::string m = st.message();
  for (auto& ch : m)
    if (ch == '\n') ch = ' ';
  std::cerr << "facevault: " << m << "\n";
  return code;
}

fs::path vault_dir(const std::string& v) { return v.empty() ? vault::default_vault_dir() : fs::path(v); }

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

void add_serve(CLI::App& app, int& exit_code) {
  struct A {
    std::string vault, listen = "127.0.0.1:8080", tls_cert, tls_key, web_root;
    int threads = 16, pipelines = 0;
    double max_upload_mb = 16, rate = 10, burst = 30;
    bool no_public_optout = false, quiet = false;
  };
  auto a = std::make_shared<A>();
  auto* cmd = app.add_subcommand("serve", "the HTTP/JSON API (/v1, OpenAPI at /v1/openapi.json) and the web UI");
  cmd->add_option("--vault", a->vault, "vault directory (default $FACEVAULT_VAULT, then ./var/vault)");
  cmd->add_option("--listen", a->listen, "HOST:PORT to listen on (default 127.0.0.1:8080; port 0 picks a free one)");
  cmd->add_option("--tls-cert", a->tls_cert, "serve HTTPS with this PEM certificate (with --tls-key)");
  cmd->add_option("--tls-key", a->tls_key, "PEM private key for --tls-cert");
  cmd->add_option("--web-root", a->web_root, "serve the UI from this folder instead of the copy built into the binary");
  cmd->add_option("--threads", a->threads, "HTTP worker threads (default 16)")->check(CLI::Range(2, 256));
  cmd->add_option("--pipelines", a->pipelines, "face pipelines working concurrently (default: cores, at most 4)")
      ->check(CLI::Range(0, 64));
  cmd->add_option("--max-upload-mb", a->max_upload_mb, "largest request with an image, MiB (default 16)")
      ->check(CLI::Range(0.1, 64.0));
  cmd->add_option("--rate", a->rate, "requests per second per API key (default 10; 0: no limit)")->check(CLI::Range(0.0, 1e6));
  cmd->add_option("--burst", a->burst, "burst size per API key (default 30)")->check(CLI::Range(1.0, 1e6));
  cmd->add_flag("--no-public-optout", a->no_public_optout, "POST /v1/optout only with an API key (no public form)");
  cmd->add_flag("--quiet", a->quiet, "no access log on stderr");
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
    if (!is_loopback(o.host) && o.tls_cert.empty())
      std::cerr << "facevault serve: warning: listening on " << o.host
                << " without TLS: API keys and photos would cross the network in clear text\n";
    // SIGINT/SIGTERM are taken by this thread with sigwait; the server's threads never see them.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    auto srv = server::Server::create(o);
    if (!srv.is_ok()) { exit_code = fail(srv.status()); return; }
    if (auto st = (*srv)->start(); !st.is_ok()) { exit_code = fail(st); return; }
    std::printf("facevault serve: %s://%s:%d/ (vault %s); API under /v1, OpenAPI at /v1/openapi.json; Ctrl-C stops\n",
                (*srv)->tls() ? "https" : "http", o.host.c_str(), (*srv)->port(), o.vault_dir.c_str());
    std::fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    std::fprintf(stderr, "facevault serve: stopping (signal %d)\n", sig);
    (*srv)->stop();
    exit_code = kExitOk;
  });
}

// Opens the vault (so the master key is checked: only its holder manages API keys).
Result<std::unique_ptr<vault::Vault>> open_vault(const std::string& dir) { return vault::Vault::open(vault_dir(dir)); }

void add_api_keys(CLI::App& app, int& exit_code) {
  // The `key` group exists already (cmd_vault.cpp: rotate, generate); join it, or create it.
  CLI::App* key = nullptr;
  try {
    key = app.get_subcommand("key");
  } catch (const CLI::OptionNotFound&) {
    key = app.add_subcommand("key", "keys");
    key->require_subcommand(1);
  }
  key->description("master key (rotate, generate) and API keys for `facevault serve` (create, revoke, list)");
  {
    struct A { std::string vault, role, label, actor; std::vector<std::string> purposes; bool json = false; };
    auto a = std::make_shared<A>();
    auto* cmd = key->add_subcommand("create", "create an API key for the HTTP API; prints the key once (only a hash is stored)");
    cmd->add_option("--role", a->role, "admin, enroller, investigator or auditor")->required();
    cmd->add_option("--purpose", a->purposes, "a purpose this key may search for (repeat for several)");
    cmd->add_option("--label", a->label, "who holds the key (free text)");
    cmd->add_option("--vault", a->vault, "vault directory (default $FACEVAULT_VAULT, then ./var/vault)");
    cmd->add_option("--actor", a->actor, "who creates it, recorded in the audit log (default: the OS user)");
    cmd->add_flag("--json", a->json, "machine-readable JSON output");
    cmd->callback([a, &exit_code] {
      auto v = open_vault(a->vault);
      if (!v.is_ok()) { exit_code = fail(v.status()); return; }
      auto k = vault::create_api_key((*v)->db(), a->role, a->purposes, a->label, a->actor.empty() ? os_user() : a->actor);
      if (!k.is_ok()) { exit_code = fail(k.status(), k.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure); return; }
      if (a->json) {
        json j = k->key.to_json();
        j["key"] = k->secret;
        std::cout << j.dump() << "\n";
      } else {
        std::printf("%s\n", k->secret.c_str());
        std::fprintf(stderr, "API key %s (role %s%s%s): shown once, only its hash is stored; revoke with `facevault key revoke %s`\n",
                     k->key.id.c_str(), k->key.role.c_str(), k->key.purposes.empty() ? "" : ", purposes ",
                     [&] { std::string s; for (auto& p : k->key.purposes) s += (s.empty() ? "" : ",") + p; return s; }().c_str(),
                     k->key.id.c_str());
      }
      exit_code = kExitOk;
    });
  }
  {
    struct A { std::string vault, id, actor; bool json = false; };
    auto a = std::make_shared<A>();
    auto* cmd = key->add_subcommand("revoke", "revoke an API key (by its id, the 12 hex digits after fvk_)");
    cmd->add_option("id", a->id, "key id")->required();
    cmd->add_option("--vault", a->vault, "vault directory (default $FACEVAULT_VAULT, then ./var/vault)");
    cmd->add_option("--actor", a->actor, "who revokes it, recorded in the audit log (default: the OS user)");
    cmd->add_flag("--json", a->json, "machine-readable JSON output");
    cmd->callback([a, &exit_code] {
      auto v = open_vault(a->vault);
      if (!v.is_ok()) { exit_code = fail(v.status()); return; }
      std::string id = a->id;
      if (id.rfind("fvk_", 0) == 0) id = id.substr(4, 12);  // a whole key pasted: take its id
      auto st = vault::revoke_api_key((*v)->db(), id, a->actor.empty() ? os_user() : a->actor);
      if (!st.is_ok()) { exit_code = fail(st); return; }
      if (a->json) std::cout << json{{"revoked", id}}.dump() << "\n";
      else std::printf("API key %s revoked\n", id.c_str());
      exit_code = kExitOk;
    });
  }
  {
    struct A { std::string vault; bool json = false; };
    auto a = std::make_shared<A>();
    auto* cmd = key->add_subcommand("list", "list API keys (ids, roles, purposes; never the keys)");
    cmd->add_option("--vault", a->vault, "vault directory (default $FACEVAULT_VAULT, then ./var/vault)");
    cmd->add_flag("--json", a->json, "machine-readable JSON output");
    cmd->callback([a, &exit_code] {
      auto v = open_vault(a->vault);
      if (!v.is_ok()) { exit_code = fail(v.status()); return; }
      auto keys = vault::list_api_keys((*v)->db());
      if (!keys.is_ok()) { exit_code = fail(keys.status()); return; }
      for (auto& k : *keys) {
        if (a->json) { std::cout << k.to_json().dump() << "\n"; continue; }
        std::string p;
        for (auto& x : k.purposes) p += (p.empty() ? "" : ",") + x;
        std::printf("%s  %-12s %-30s %s%s%s\n", k.id.c_str(), k.role.c_str(), p.empty() ? "-" : p.c_str(), k.created_at.c_str(),
                    k.revoked_at ? "  revoked " : "", k.revoked_at ? k.revoked_at->c_str() : "");
      }
      exit_code = kExitOk;
    });
  }
}

}  // namespace

void add_serve_commands(CLI::App& app, int& exit_code) {
  add_serve(app, exit_code);
  add_api_keys(app, exit_code);
}

}  // namespace fv::cli
