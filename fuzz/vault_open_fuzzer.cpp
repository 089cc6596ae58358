// Opening a damaged vault: a template vault (made once) is copied to a scratch folder, its
// files are damaged as the input says, then Service::open (Vault::open: config, lock, SQLite,
// pragmas, schema version, interrupted key rotation, master key file, migrations, pending
// wipe) and some reads and writes: audit verify, audit show, API key list, a search over the
// empty gallery. Any outcome is fine except a crash, a hang or a leak.
//
// Input: up to 4 edits, each [file][op][offset u32][bytes…] (FuzzedDataProvider). Files:
// vault.db, master.key, config.json, master.key.new (absent in the template: an interrupted
// rotation), vault.db-wal. Ops: overwrite at offset, truncate at offset, replace, insert.
#include <fuzzer/FuzzedDataProvider.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "service/service.h"
#include "vault/vault.h"

namespace fs = std::filesystem;

namespace {

const char* const kFiles[] = {"vault.db", "master.key", "config.json", "master.key.new", "vault.db-wal"};
constexpr int kNumFiles = 5;

fs::path root, scratch;
std::vector<std::string> tmpl(kNumFiles);  // template contents ("" = absent)
std::vector<bool> present(kNumFiles);

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "vault_open_fuzzer setup: %s\n", what.c_str());
  std::abort();
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ::unsetenv(fv::vault::kMasterKeyEnv);
  ::unsetenv(fv::vault::kNewMasterKeyEnv);
  // tmpfs when there is one: every exec rewrites the vault's files.
  const fs::path base = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
  root = base / ("fv_vault_fuzz." + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_all(root, ec);
  const fs::path tdir = root / "template";
  scratch = root / "v";
  if (auto st = fv::vault::Vault::init(tdir); !st.is_ok()) die(st.to_string());
  {
    auto svc = fv::service::Service::open(tdir);
    if (!svc.is_ok()) die(svc.status().to_string());
    const fv::service::Actor setup{"fuzz-setup", fv::service::Role::kAdmin};
    auto k = (*svc)->create_api_key(setup, fv::service::Role::kInvestigator, {"access-control"}, "fuzz");
    if (!k.is_ok()) die(k.status().to_string());
  }
  for (int i = 0; i < kNumFiles; ++i) {
    present[i] = fs::exists(tdir / kFiles[i]);
    if (present[i]) tmpl[i] = slurp(tdir / kFiles[i]);
  }
  if (!present[0] || !present[1] || !present[2]) die("template vault lacks a file");
  fs::create_directories(scratch);
  fs::permissions(scratch, fs::perms::owner_all, fs::perm_options::replace);
  std::atexit([] { std::error_code e; fs::remove_all(root, e); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  std::vector<std::string> files = tmpl;
  std::vector<bool> exists = present;
  for (int edit = 0; edit < 4 && in.remaining_bytes() > 0; ++edit) {
    const int f = in.ConsumeIntegralInRange(0, kNumFiles - 1);
    const int op = in.ConsumeIntegralInRange(0, 3);
    std::string& s = files[f];
    const size_t off = in.ConsumeIntegral<uint32_t>() % (s.size() + 1);
    const std::string bytes = in.ConsumeRandomLengthString(512);
    exists[f] = true;
    switch (op) {
      case 0: s.replace(off, std::min(bytes.size(), s.size() - off), bytes); break;  // overwrite
      case 1: s.resize(off); break;                                                 // truncate
      case 2: s = bytes; break;                                                     // replace
      case 3: s.insert(off, bytes); break;                                          // insert
    }
  }
  // The scratch folder is reused (cheaper than a new one per exec): every file is rewritten or
  // removed, and so is whatever SQLite or the vault may have left beside them.
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(scratch, ec)) {
    const std::string name = e.path().filename().string();
    if (name != "vault.lock" && std::find(std::begin(kFiles), std::end(kFiles), name) == std::end(kFiles))
      fs::remove_all(e.path(), ec);
  }
  for (int i = 0; i < kNumFiles; ++i) {
    const fs::path p = scratch / kFiles[i];
    if (!exists[i]) {
      ::unlink(p.c_str());
      continue;
    }
    std::ofstream(p, std::ios::binary | std::ios::trunc).write(files[i].data(), static_cast<std::streamsize>(files[i].size()));
    ::chmod(p.c_str(), 0600);
  }

  auto svc = fv::service::Service::open(scratch);
  if (!svc.is_ok()) {
    if (svc.status().is_ok() || svc.status().message().empty()) { std::fprintf(stderr, "error without a message\n"); std::abort(); }
    return 0;
  }
  fv::service::Service& s = **svc;
  const fv::service::Actor admin{"fuzz", fv::service::Role::kAdmin};
  (void)s.audit_verify(admin);
  (void)s.audit_show(admin, {});
  (void)s.list_api_keys(admin);
  fv::face::FaceTemplate probe{"faceplugin-mobilefacenet-512", 1, std::vector<float>(512, 0.0f)};
  probe.values[0] = 1.0f;
  (void)s.search_templates(admin, fv::service::SearchRequest("access-control", "case-1"), {probe});
  return 0;
}
