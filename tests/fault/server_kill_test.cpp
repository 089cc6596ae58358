// The server killed at random points: `facevault serve --listen 127.0.0.1:0` on a vault, a
// client enrolling (subject + basis, then a photo with keep_image, multipart over loopback)
// and erasing (DELETE /v1/subjects/REF) with an admin API key from `facevault key create`,
// and a SIGKILL at a seeded random moment; 30 times on the same vault, restarting the server
// each time. After each kill, as the next process opens the vault:
//   - integrity, foreign keys, no orphan (every template has its subject, basis and image
//     record; every subject its key and basis), the audit chain verifies, and no wipe is left
//     pending: an erasure cut off between its commit and the wipe of freed pages is finished
//     by the open (the vault's promise);
//   - every acknowledged enrollment (201) is there, every acknowledged erasure (200) is
//     complete (no row of the subject left) and its receipt's audit entry exists; the one
//     request in flight at the kill is all or nothing: an erasure left the subject whole or
//     gone, an enrollment added its template or not;
//   - every template decrypts (a search scans them all);
//   - a subject erased since the last check (acknowledged, or in flight and committed) has
//     left no 16-byte window of its sealed templates, kept images or wrapped key in any file
//     of the vault directory.
//
// Mutation tried (test must be able to fail): Vault::open without finishing a pending wipe.
// Result: failed at the first kill that landed during an erasure after its commit (while it
// wiped freed pages): "after kill 0: SELECT count(*) FROM meta WHERE key='wipe_pending'"
// was 1; reverted. With it, Service::erase also skipping its wipe of freed pages (and the
// test made to go on after the first failure), the byte scan failed 29 times: "data of
// erased subjects ( k0-1 k0-12 k0-20) still in vault.db@22285"; reverted.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include <httplib.h>

#include "fault/fault_util.h"
#include "support/paths.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace fv::test {
namespace {

constexpr int kIterations = 30;

pid_t spawn_server(const fs::path& vault, const fs::path& out, const fs::path& err) {
  std::vector<std::string> argv = {FACEVAULT_BINARY, "serve", "--vault", vault.string(), "--listen", "127.0.0.1:0"};
  std::vector<char*> a;
  for (auto& s : argv) a.push_back(s.data());
  a.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  if (posix_spawn(&pid, a[0], &fa, nullptr, a.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

// The port from "facevault serve: http://127.0.0.1:PORT/ ..." (0 if the server died first).
int wait_for_port(pid_t pid, const fs::path& out) {
  for (int i = 0; i < 600; ++i) {
    const std::string s = slurp(out);
    const auto at = s.find("http://127.0.0.1:");
    if (at != std::string::npos) {
      const auto end = s.find('/', at + 17);
      if (end != std::string::npos) return std::stoi(s.substr(at + 17, end - at - 17));
    }
    int st = 0;
    if (waitpid(pid, &st, WNOHANG) == pid) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return 0;
}

// What the client saw acknowledged, and what was in flight at the kill.
struct Ledger {
  std::mutex mu;
  std::map<std::string, int> enrolled;              // ref → acknowledged templates
  std::map<std::string, std::string> erased;        // ref → receipt audit hash
  std::string inflight_erase, inflight_enroll;      // ref, or empty
  std::vector<std::string> unexpected;              // HTTP answers other than success
  int acks = 0;
};

void client(int port, const std::string& key, int iteration, unsigned seed, Ledger& led, std::atomic<bool>& stop) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(5);
  c.set_read_timeout(60);
  const httplib::Headers auth = {{"Authorization", "Bearer " + key}};
  const fs::path photos = data_dir() / "samples" / "face-api-js" / "images";
  const std::vector<fs::path> imgs = {photos / "raj" / "raj1.png", photos / "penny" / "penny1.png",
                                      photos / "howard" / "howard1.png", photos / "raj" / "raj2.png"};
  std::mt19937 rng(seed);
  // The server limits each key's request rate (429 with Retry-After): wait and send again.
  auto send = [&](const std::function<httplib::Result()>& fn) {
    for (;;) {
      auto r = fn();
      if (!r || r->status != 429 || stop) return r;
      std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    }
  };
  for (int n = 0; !stop; ++n) {
    std::string victim;
    {
      std::lock_guard<std::mutex> l(led.mu);
      if (!led.enrolled.empty() && rng() % 3 == 0) {
        auto it = led.enrolled.begin();
        std::advance(it, static_cast<long>(rng() % led.enrolled.size()));
        victim = it->first;
        led.inflight_erase = victim;
      }
    }
    if (!victim.empty()) {
      auto r = send([&] { return c.Delete("/v1/subjects/" + victim, auth); });
      if (!r) return;  // the server is gone
      std::lock_guard<std::mutex> l(led.mu);
      led.inflight_erase.clear();
      if (r->status != 200) {
        led.unexpected.push_back("DELETE " + victim + ": " + std::to_string(r->status) + " " + r->body);
        return;
      }
      auto j = json::parse(r->body, nullptr, false);
      led.erased[victim] = j.is_object() ? j.value("audit_hash", "") : "";
      led.enrolled.erase(victim);
      ++led.acks;
      continue;
    }
    const std::string ref = "k" + std::to_string(iteration) + "-" + std::to_string(n);
    json body = {{"ref", ref}, {"kind", "consent"}, {"reference", "form"}, {"purposes", {"access-control"}}};
    auto b = send([&] { return c.Post("/v1/subjects", auth, body.dump(), "application/json"); });
    if (!b) return;
    if (b->status != 201) {
      std::lock_guard<std::mutex> l(led.mu);
      led.unexpected.push_back("POST /v1/subjects: " + std::to_string(b->status) + " " + b->body);
      return;
    }
    const auto basis = json::parse(b->body).value("id", int64_t{0});
    const fs::path& img = imgs[rng() % imgs.size()];
    httplib::MultipartFormDataItems items = {{"image", slurp(img), img.filename().string(), "image/png"},
                                             {"basis", std::to_string(basis), "", ""},
                                             {"keep_image", "true", "", ""}};
    {
      std::lock_guard<std::mutex> l(led.mu);
      led.inflight_enroll = ref;
    }
    auto e = send([&] { return c.Post("/v1/subjects/" + ref + "/faces", auth, items); });
    if (!e) return;
    std::lock_guard<std::mutex> l(led.mu);
    led.inflight_enroll.clear();
    if (e->status != 201) {
      led.unexpected.push_back("POST faces " + ref + ": " + std::to_string(e->status) + " " + e->body);
      return;
    }
    ++led.enrolled[ref];
    ++led.acks;
  }
}

// A subject's stored secrets: sealed templates and kept images, and the wrapped subject key.
std::vector<std::vector<uint8_t>> stored_secrets(vault::Db& db, const std::string& ref) {
  std::vector<std::vector<uint8_t>> out;
  auto s = db.prepare("SELECT f.template, i.image, k.wrapped FROM face f JOIN subject s ON s.id=f.subject_id "
                      "JOIN subject_key k ON k.subject_id=s.id LEFT JOIN source_image i ON i.id=f.image_id WHERE s.ref=?");
  s->bind(1, ref);
  while (*s->step())
    for (int c = 0; c < 3; ++c)
      if (!s->is_null(c)) out.push_back(s->blob(c));
  return out;
}

int64_t subject_faces(vault::Db& db, const std::string& ref, bool* exists) {
  auto s = db.prepare("SELECT (SELECT count(*) FROM subject WHERE ref=?1), "
                      "(SELECT count(*) FROM face f JOIN subject s ON s.id=f.subject_id WHERE s.ref=?1)");
  s->bind(1, ref);
  EXPECT_TRUE(*s->step());
  *exists = s->i64(0) > 0;
  return s->i64(1);
}

TEST(ServerKill, KilledAtRandomPointsTheVaultStaysConsistent) {
  FV_REQUIRE_MODELS();
  FV_REQUIRE_PATH(data_dir() / "samples" / "face-api-js" / "images");
  ASSERT_TRUE(vault::ensure_sodium().is_ok());
  unsetenv(vault::kMasterKeyEnv);
  TempDir tmp;
  const fs::path v = tmp.path() / "v";
  ASSERT_TRUE(vault::Vault::init(v).is_ok());
  auto k = run_cli({"key", "create", "--role", "admin", "--vault", v.string()}, {}, tmp.path());
  ASSERT_EQ(k.code(), 0) << k.describe();
  const std::string key = k.out.substr(0, k.out.find('\n'));
  ASSERT_EQ(key.rfind("fvk_", 0), 0u) << key;

  Ledger led;
  // Secrets of the subjects alive at a check, to look for once they are erased.
  std::map<std::string, std::vector<std::vector<uint8_t>>> secrets;
  size_t scanned = 0;
  std::mt19937 rng(2026);
  int kills_mid_erase = 0, kills_mid_enroll = 0, erase_committed_at_kill = 0, kills = 0;
  for (int it = 0; it < kIterations; ++it) {
    ++kills;
    SCOPED_TRACE("iteration " + std::to_string(it));
    const pid_t pid = spawn_server(v, tmp.path() / "serve.out", tmp.path() / "serve.err");
    ASSERT_GT(pid, 0);
    const int port = wait_for_port(pid, tmp.path() / "serve.out");
    if (port == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      FAIL() << "the server did not start after a kill: " << slurp(tmp.path() / "serve.err");
    }
    std::atomic<bool> stop{false};
    std::thread t(client, port, key, it, static_cast<unsigned>(it + 1), std::ref(led), std::ref(stop));
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 1200));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    stop = true;
    t.join();
    ASSERT_TRUE(WIFSIGNALED(status)) << "the server ended by itself: " << slurp(tmp.path() / "serve.err");
    {
      std::lock_guard<std::mutex> l(led.mu);
      ASSERT_TRUE(led.unexpected.empty()) << led.unexpected[0];
    }

    // The vault as the next process finds it.
    auto svc = open_service(v);
    ASSERT_TRUE(svc) << "the vault does not open after a kill";
    auto& db = raw_db(*svc);
    std::lock_guard<std::mutex> l(led.mu);
    if (!led.inflight_erase.empty()) {
      ++kills_mid_erase;
      bool exists = false;
      const int64_t n = subject_faces(db, led.inflight_erase, &exists);
      if (!exists) {
        // Committed before the kill: it must be whole and its entry in the log.
        ++erase_committed_at_kill;
        led.erased[led.inflight_erase] = "";
        led.enrolled.erase(led.inflight_erase);
      } else {
        EXPECT_EQ(n, led.enrolled[led.inflight_erase]) << led.inflight_erase << " half-erased";
      }
      led.inflight_erase.clear();
    }
    if (!led.inflight_enroll.empty()) {
      ++kills_mid_enroll;
      bool exists = false;
      const int64_t n = subject_faces(db, led.inflight_enroll, &exists);
      EXPECT_TRUE(exists) << "the basis of " << led.inflight_enroll << " was acknowledged";
      EXPECT_LE(n, 1) << led.inflight_enroll;
      if (n == 1) led.enrolled[led.inflight_enroll] = 1;  // committed, answer lost
      led.inflight_enroll.clear();
    }
    for (auto& [ref, faces] : led.enrolled) {
      bool exists = false;
      EXPECT_EQ(subject_faces(db, ref, &exists), faces) << "acknowledged enrollment of " << ref;
    }
    for (auto& [ref, hash] : led.erased) {
      bool exists = false;
      EXPECT_EQ(subject_faces(db, ref, &exists), 0) << ref;
      EXPECT_FALSE(exists) << "acknowledged erasure of " << ref << " undone";
      if (!hash.empty()) {
        auto s = db.prepare("SELECT count(*) FROM audit WHERE hash=? AND action='erase' AND outcome='ok'");
        s->bind(1, hash);
        ASSERT_TRUE(*s->step());
        EXPECT_EQ(s->i64(0), 1) << "acknowledged erasure of " << ref << " has no audit entry (receipt " << hash << ")";
      }
    }
    // Erasures in the log match the subjects gone: every erase entry names a subject no
    // longer in the vault.
    EXPECT_EQ(*db.query_int("SELECT count(*) FROM audit a JOIN subject s ON a.subjects LIKE '%' || s.uid || '%' "
                            "WHERE a.action='erase' AND a.outcome='ok'"),
              0);
    expect_consistent(*svc, "after kill " + std::to_string(it));
    // Erased means gone from every file of the vault (the open above finished any wipe the
    // kill interrupted): no 16-byte window of a sealed template, kept image or wrapped key of
    // a subject erased since the last check.
    // One scan for all of them (their secrets end to end: a window across two of them could
    // only match by chance, which would fail the test, never hide a leftover).
    std::vector<uint8_t> gone;
    std::string names;
    for (auto& [ref, hash] : led.erased) {
      auto s = secrets.find(ref);
      if (s == secrets.end()) continue;
      for (auto& blob : s->second) gone.insert(gone.end(), blob.begin(), blob.end());
      names += " " + ref;
      secrets.erase(s);
      ++scanned;
    }
    if (!gone.empty()) {
      auto left = files_holding(v, gone);
      EXPECT_TRUE(left.empty()) << "data of erased subjects (" << names << ") still in " << left[0];
    }
    for (auto& [ref, faces] : led.enrolled)
      if (!secrets.count(ref)) secrets[ref] = stored_secrets(db, ref);
    auto r = svc->search_templates(kAdmin, {"access-control", "kill-check"}, {random_template(rng)});
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    if (::testing::Test::HasFailure()) break;
  }
  std::printf("%d kills: %d acknowledged requests, %zu subjects enrolled, %zu erased (%zu byte-scanned); %d kills during "
              "an erasure (%d had committed), %d during an enrollment\n",
              kills, led.acks, led.enrolled.size(), led.erased.size(), scanned, kills_mid_erase, erase_committed_at_kill,
              kills_mid_enroll);
  EXPECT_GT(led.acks, kIterations);
  EXPECT_GT(led.erased.size(), 0u);
  EXPECT_GT(scanned, 0u);
}

}  // namespace
}  // namespace fv::test
