// Disk full and I/O errors: the real `facevault` CLI runs `enroll --keep-image`, `erase` and
// `key rotate` under the failing_io shim (LD_PRELOAD), which fails the Nth write, sync,
// truncate, allocation or O_CREAT open of a file in the vault directory with ENOSPC (the disk
// stays full: every later call fails too) or EIO (once: a transient error). After each run,
// without the shim:
//   - the command exited (no signal) with "facevault: <reason>" on stderr when it failed, and
//     nothing on stderr looks like a crash (terminate, sanitizer, abort);
//   - the vault opens; SQLite integrity and foreign keys hold; no orphan row (template
//     without subject, basis or image record; subject without key or basis); no wipe left
//     pending; the audit chain verifies; no stray file in the directory;
//   - its state (row counts of subjects, keys, bases, images, kept images, templates,
//     opt-outs, audit entries; the master key id) is exactly the before-state or the
//     after-state of a clean run; every template still decrypts (a search scans them all);
//   - success (exit 0) only with the after-state. A failure with the after-state is accepted
//     only when the message says the change was committed (erase: "erased"; key rotate:
//     "committed"); otherwise a failure must leave the before-state, and a retry of the same
//     command without the shim then succeeds;
//   - erase: once done, no 16-byte window of the erased template (sealed and plain), kept
//     image or wrapped subject key is left in any file of the vault directory.
// What is tolerated after the commit point, and why: SQLite commits when the WAL is synced.
// Faults after that (the checkpoint when the last connection closes; the erasure's wipe of
// freed pages) cannot lose the change: the WAL is replayed and the wipe is finished by the
// next open. A failed checkpoint at close is silent (SQLite reports no error from close; the
// WAL holds the data); a failed wipe is reported as a warning with exit 0 and the receipt
// says "NOT wiped yet"; a failed key-file rename after the rotation's commit exits non-zero
// saying "committed" (the next open finishes it).
//
// Which N: a clean run with FV_FAULT_TRACE=1 lists every faultable call (function, file).
// Consecutive calls of the same function on the same file behave alike (64 page writes to the
// WAL, say), so each N where the call differs from the one before or after is tested (the
// first and last of every run) — every distinct step, every final fsync — capped at kMaxPoints
// per command and errno by an even stride that always keeps the last calls. Each point costs
// one CLI run (~0.3-0.5 s with the model load) plus a retry when it failed.
//
// Mutation tried (test must be able to fail): Service::erase without its transaction (the
// DELETEs and the audit entry each in autocommit). Result: both EraseOn* tests failed at call
// 33 (a WAL page write of the second DELETE): exit 2 "query failed: DELETE FROM source_image
// …: database or disk is full", and "state is neither the before- nor the after-state"
// (faces=1 while subjects=2: the template gone, the subject, its key and basis left);
// reverted. Without a mutation, key rotate failed on the final directory fsync (exit 2 with
// only "fsync DIR: No space left on device" although the rotation had committed): fixed in
// Vault::rotate_master_key, which now says it was committed.
#include <set>

#include "fault/fault_util.h"
#include "support/paths.h"

namespace fs = std::filesystem;

namespace fv::test {
namespace {

constexpr size_t kMaxPoints = 28;
// A sanitizer build (FACEVAULT_SANITIZE=address) refuses a preloaded library that is not its
// runtime unless told the order does not matter.
constexpr const char* kAsanOptions = "verify_asan_link_order=0";

fs::path samples() { return data_dir() / "samples" / "face-api-js" / "images"; }

struct Call {
  long n = 0;
  std::string func, path;
};

std::vector<Call> parse_calls(const std::string& report) {
  std::vector<Call> calls;
  std::istringstream in(report);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("call ", 0) != 0) continue;
    std::istringstream l(line.substr(5));
    Call c;
    l >> c.n >> c.func;
    std::getline(l, c.path);
    calls.push_back(c);
  }
  return calls;
}

// First and last call of every run of identical (function, file), capped by an even stride
// that keeps the last three calls (the final syncs).
std::vector<long> choose_points(const std::vector<Call>& calls) {
  std::vector<long> pts;
  for (size_t i = 0; i < calls.size(); ++i) {
    const bool first = i == 0 || calls[i].func != calls[i - 1].func || calls[i].path != calls[i - 1].path;
    const bool last = i + 1 == calls.size() || calls[i].func != calls[i + 1].func || calls[i].path != calls[i + 1].path;
    if (first || last) pts.push_back(calls[i].n);
  }
  if (pts.size() <= kMaxPoints) return pts;
  std::vector<long> out;
  const size_t keep_tail = 3, body = kMaxPoints - keep_tail;
  for (size_t k = 0; k < body; ++k) out.push_back(pts[k * (pts.size() - keep_tail) / body]);
  for (size_t k = pts.size() - keep_tail; k < pts.size(); ++k) out.push_back(pts[k]);
  return out;
}

VaultCounts without_audit(VaultCounts c) {
  c.audit = 0;
  c.master_key_id.clear();
  return c;
}

struct Secrets {
  std::vector<std::vector<uint8_t>> blobs;  // what must be gone after an erasure
};

enum class Op { kEnroll, kErase, kRotate };

class DiskFault : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(vault::ensure_sodium().is_ok());
    unsetenv(vault::kMasterKeyEnv);
    if (!models_present() || !fs::exists(samples())) return;
    tmp_ = new TempDir();
    const fs::path base = tmp_->path() / "base";
    // raj (to enroll again, or to erase: one template with its kept image) and penny (stays).
    auto cli = [&](std::vector<std::string> args) {
      args.push_back("--vault");
      args.push_back(base.string());
      auto p = run_cli(args, {}, tmp_->path());
      EXPECT_EQ(p.code(), 0) << args[0] << ": " << p.describe();
      std::string out = p.out;
      while (!out.empty() && (out.back() == '\n')) out.pop_back();
      return out;
    };
    cli({"init", base.string()});
    raj_basis_ = cli({"basis", "add", "--subject", "raj", "--kind", "consent", "--reference", "f-1", "--purpose", "access-control"});
    const std::string pb =
        cli({"basis", "add", "--subject", "penny", "--kind", "consent", "--reference", "f-2", "--purpose", "access-control"});
    cli({"enroll", "--subject", "penny", "--basis", pb, (samples() / "penny" / "penny1.png").string()});
    cli({"enroll", "--subject", "raj", "--basis", raj_basis_, "--keep-image", (samples() / "raj" / "raj1.png").string()});
  }
  static void TearDownTestSuite() {
    delete tmp_;
    tmp_ = nullptr;
  }
  void SetUp() override {
    FV_REQUIRE_MODELS();
    FV_REQUIRE_PATH(samples());
    ASSERT_TRUE(tmp_);
  }

  static fs::path base() { return tmp_->path() / "base"; }

  static std::vector<std::string> args(Op op, const fs::path& v) {
    switch (op) {
      case Op::kEnroll:
        return {"enroll", "--vault", v.string(), "--subject", "raj", "--basis", raj_basis_, "--keep-image",
                (samples() / "raj" / "raj2.png").string()};
      case Op::kErase:
        return {"erase", "raj", "--vault", v.string()};
      case Op::kRotate:
        return {"key", "rotate", "--vault", v.string()};
    }
    return {};
  }

  // Everything of raj's that an erasure must remove: sealed template, kept image and wrapped
  // key as stored, and the template's plain values.
  static Secrets raj_secrets(const fs::path& v) {
    Secrets s;
    auto svc = open_service(v);
    if (!svc) return s;
    auto& db = raw_db(*svc);
    auto q = db.prepare("SELECT f.id, f.subject_id, f.model_id, f.model_version, f.template, k.wrapped, i.image FROM face f "
                        "JOIN subject s ON s.id=f.subject_id JOIN subject_key k ON k.subject_id=s.id "
                        "JOIN source_image i ON i.id=f.image_id WHERE s.ref='raj'");
    EXPECT_TRUE(q.is_ok());
    while (*q->step()) {
      auto sealed = q->blob(4);
      s.blobs.push_back(sealed);
      s.blobs.push_back(q->blob(5));
      if (!q->is_null(6)) s.blobs.push_back(q->blob(6));
      auto key = svc->vault_for_testing().subject_key(q->i64(1));
      EXPECT_TRUE(key.is_ok());
      auto plain = vault::open_sealed(*key, sealed, vault::face_ad(q->i64(1), q->i64(0), q->text(2), static_cast<int>(q->i64(3))));
      EXPECT_TRUE(plain.is_ok());
      if (plain.is_ok()) s.blobs.push_back(*plain);
    }
    EXPECT_FALSE(s.blobs.empty());
    return s;
  }

  // Opens the vault as the next process would (no shim), checks it, and returns its counts.
  static std::optional<VaultCounts> check_vault(const fs::path& v, const std::string& what) {
    auto svc = open_service(v);
    if (!svc) {
      ADD_FAILURE() << what << ": the vault does not open";
      return std::nullopt;
    }
    VaultCounts c = counts(raw_db(*svc));
    expect_consistent(*svc, what);
    // Every template decrypts under the master key in force (the search decrypts them all).
    std::mt19937 rng(1);
    auto r = svc->search_templates(kAdmin, {"access-control", "fault-check"}, {random_template(rng)});
    EXPECT_TRUE(r.is_ok()) << what << ": " << r.status().to_string();
    // Every kept image decrypts.
    for (const char* ref : {"raj", "penny"}) {
      auto e = svc->export_subject(kAdmin, ref, false, v.parent_path() / "export");
      if (!e.is_ok()) {
        EXPECT_EQ(e.status().code(), StatusCode::kNotFound) << what << ": " << e.status().to_string();
      }
    }
    std::error_code ec;
    fs::remove_all(v.parent_path() / "export", ec);
    EXPECT_TRUE(unexpected_files(v).empty()) << what << ": stray file " << unexpected_files(v)[0];
    return c;
  }

  void sweep(Op op, const std::string& err) {
    const fs::path work = tmp_->path() / ("sweep-" + std::to_string(static_cast<int>(op)) + err);
    fs::create_directories(work);
    const fs::path v = work / "v", report = work / "report";
    // Before-state, after-state and the trace of a clean run.
    copy_tree(base(), v);
    const Secrets secrets = op == Op::kErase ? raj_secrets(v) : Secrets{};
    copy_tree(base(), v);
    auto before = check_vault(v, "before");
    ASSERT_TRUE(before);
    copy_tree(base(), v);
    fs::remove(report);
    auto clean = run_cli(args(op, v), {{"LD_PRELOAD", FV_FAILING_IO}, {"ASAN_OPTIONS", kAsanOptions}, {"FV_FAULT_DIR", v.string()},
                                       {"FV_FAULT_TRACE", "1"}, {"FV_FAULT_REPORT", report.string()}}, work);
    ASSERT_EQ(clean.code(), 0) << clean.describe();
    const auto calls = parse_calls(slurp(report));
    ASSERT_GT(calls.size(), 5u) << "the shim saw no writes: is LD_PRELOAD working?";
    auto after = check_vault(v, "after a clean run");
    ASSERT_TRUE(after);
    if (op == Op::kRotate) {
      ASSERT_NE(before->master_key_id, after->master_key_id);
    } else {
      ASSERT_NE(without_audit(*before), without_audit(*after));
    }
    const auto points = choose_points(calls);
    int failed = 0, succeeded = 0, committed_but_failed = 0;
    for (long n : points) {
      const std::string what = args(op, v)[0] + " with " + err + " at call " + std::to_string(n) + " (" +
                               calls[static_cast<size_t>(n - 1)].func + " " + calls[static_cast<size_t>(n - 1)].path + ")";
      SCOPED_TRACE(what);
      copy_tree(base(), v);
      fs::remove(report);
      auto p = run_cli(args(op, v), {{"LD_PRELOAD", FV_FAILING_IO}, {"ASAN_OPTIONS", kAsanOptions}, {"FV_FAULT_DIR", v.string()},
                                     {"FV_FAULT_AT", std::to_string(n)}, {"FV_FAULT_ERRNO", err},
                                     {"FV_FAULT_PERSIST", err == "ENOSPC" ? "1" : "0"}, {"FV_FAULT_REPORT", report.string()}},
                       work);
      EXPECT_NE(slurp(report).find("fault " + std::to_string(n) + " "), std::string::npos) << "the fault was not injected";
      expect_clean_exit(p, what);
      auto st = check_vault(v, what);
      if (!st) continue;
      VaultCounts got = *st;
      const bool is_before = got == *before;
      VaultCounts want_after = *after;
      want_after.master_key_id = op == Op::kRotate ? got.master_key_id : want_after.master_key_id;
      const bool is_after = got == want_after && (op != Op::kRotate || got.master_key_id != before->master_key_id);
      ASSERT_TRUE(is_before || is_after) << "state is neither the before- nor the after-state:\n  got    " << got.str()
                                         << "\n  before " << before->str() << "\n  after  " << after->str() << "\n"
                                         << p.describe();
      if (p.code() == 0) {
        ++succeeded;
        EXPECT_TRUE(is_after) << "exit 0 but the change is not in the vault";
        if (op == Op::kErase && p.err.find("warning") != std::string::npos) {
          EXPECT_NE(p.out.find("NOT wiped yet"), std::string::npos) << "a pending wipe must show on the receipt";
        }
      } else {
        ++failed;
        if (is_after) {
          // Only when the message says the change was made.
          ++committed_but_failed;
          EXPECT_TRUE(p.err.find("committed") != std::string::npos || p.err.find("erased") != std::string::npos)
              << "failed, yet the change is in the vault: " << p.describe();
        } else {
          auto retry = run_cli(args(op, v), {}, work);
          ASSERT_EQ(retry.code(), 0) << "retry after the fault: " << retry.describe();
          auto again = check_vault(v, what + ", retried");
          ASSERT_TRUE(again);
          EXPECT_EQ(without_audit(*again), without_audit(*after)) << again->str();
        }
      }
      if (op == Op::kErase) {
        std::vector<std::string> left;
        for (auto& b : secrets.blobs)
          for (auto& f : files_holding(v, b)) left.push_back(f);
        EXPECT_TRUE(left.empty()) << "erased data still in " << left[0];
      }
    }
    std::printf("%s %s: %zu faultable calls, %zu points: %d failed cleanly, %d succeeded, %d failed after the commit\n",
                args(op, v)[0].c_str(), err.c_str(), calls.size(), points.size(), failed, succeeded, committed_but_failed);
    EXPECT_GT(failed, 0);
  }

  static inline TempDir* tmp_ = nullptr;
  static inline std::string raj_basis_;
};

TEST_F(DiskFault, EnrollWithKeptImageOnAFullDisk) { sweep(Op::kEnroll, "ENOSPC"); }
TEST_F(DiskFault, EnrollWithKeptImageOnIoErrors) { sweep(Op::kEnroll, "EIO"); }
TEST_F(DiskFault, EraseOnAFullDisk) { sweep(Op::kErase, "ENOSPC"); }
TEST_F(DiskFault, EraseOnIoErrors) { sweep(Op::kErase, "EIO"); }
TEST_F(DiskFault, KeyRotateOnAFullDisk) { sweep(Op::kRotate, "ENOSPC"); }
TEST_F(DiskFault, KeyRotateOnIoErrors) { sweep(Op::kRotate, "EIO"); }

}  // namespace
}  // namespace fv::test
