// The fixture of the use-case tests: a fresh vault with a settable clock, a service over it,
// and short forms of the calls most tests make (record a basis, enroll a synthetic template,
// count rows, read the audit entries of one action). Templates are synthetic: no models.
#pragma once

#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "vault/audit.h"
#include "vault/vault_test_util.h"

namespace fv::test {

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(vault::ensure_sodium().is_ok());
    unsetenv(vault::kMasterKeyEnv);
    unsetenv(vault::kNewMasterKeyEnv);
    dir_ = tmp_.path() / "v";
    ASSERT_TRUE(vault::Vault::init(dir_, config_).is_ok());
    svc_ = open_service(dir_, &clock_);
    ASSERT_TRUE(svc_);
  }
  // As actor_ (the admin unless a test changes it).
  int64_t basis(const std::string& ref, std::vector<std::string> purposes,
                service::BasisKind kind = service::BasisKind::kConsent,
                std::optional<std::string> expires = std::nullopt) {
    auto r = svc_->add_basis(actor_, {ref, kind, "form-" + ref, purposes, expires});
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? r->basis_id : 0;
  }
  Result<service::EnrollResult> enroll(const std::string& ref, int64_t b, const face::FaceTemplate& t) {
    service::EnrollRequest req;
    req.subject_ref = ref;
    req.basis_id = b;
    return svc_->enroll_template(actor_, req, t);
  }
  int64_t count(const std::string& sql) { return *raw_db(*svc_).query_int(sql); }
  std::vector<vault::AuditEntry> read_audit_or_die(const vault::AuditQuery& q) {
    auto r = vault::read_audit(raw_db(*svc_), q);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : std::vector<vault::AuditEntry>{};
  }
  std::vector<vault::AuditEntry> audit(const std::string& action) {
    vault::AuditQuery q;
    q.action = action;
    return read_audit_or_die(q);
  }

  TempDir tmp_;
  std::filesystem::path dir_;
  vault::VaultConfig config_;
  Clock clock_;
  std::mt19937 rng_{42};
  service::Actor actor_ = kAdmin;  // who the helpers above act as
  std::unique_ptr<service::Service> svc_;
};

}  // namespace fv::test
